#!/usr/bin/env bash
# make fuzz: libFuzzer targets, built with clang under ASan + UBSan, for the
# SSE parser (csrc/fuzz/fuzz_sse.c), for JSON decode then encode
# (csrc/fuzz/fuzz_json.c), for the JSON scanner alone (fuzz_json_scan.c),
# for the decoder against cJSON (fuzz_json_diff.c: the two must agree
# but for the deliberate differences listed there), for base64 into
# float32 vectors (fuzz_vec_b64.c), for the line splitter of MCP's
# stdio transport (fuzz_lines.c), for the text fast path's extractor
# against the decoder (fuzz_delta.c) and for the resumable parser
# json.partial (fuzz_jpartial.c: every split against the decoder). Each runs FUZZ_TIME
# seconds (default 120). The JSON targets share the json dictionary, seeds
# and checked-in corpus; each keeps its own build/fuzz/corpus/<target>.
#
# Corpus: new inputs go to build/fuzz/corpus/<target> (kept between runs);
# the seeds are the checked-in csrc/fuzz/corpus/<target>, the string
# literals of spec/*.lua that look like SSE or JSON (scripts/fuzz_seeds.lua)
# and a few whole streams of the test server's mock model. A crash, a leak,
# an oracle failure or an input slower than 10 s is a finding: the input is
# saved as build/fuzz/artifacts/<target>-crash-* and the script fails.
# FUZZ_ARGS adds libFuzzer flags; FUZZ_JOBS (2) targets run at once.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib.sh
source scripts/lib.sh
FUZZ_TIME=${FUZZ_TIME:-120}
CLANG=${CLANG:-clang}
OUT=build/fuzz
FLAGS=(-std=c99 -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all)
JSON_SRC=(csrc/json_enc.c csrc/json_mod.c csrc/json_dec.c csrc/json_scan.c csrc/buf.c)
mkdir -p "$OUT/corpus/sse" "$OUT/corpus/json" "$OUT/corpus/json_scan" "$OUT/corpus/json_diff" \
  "$OUT/corpus/vec_b64" "$OUT/corpus/lines" "$OUT/corpus/delta" "$OUT/corpus/jpartial" \
  "$OUT/artifacts"

"$CLANG" "${FLAGS[@]}" -o "$OUT/fuzz_sse" csrc/fuzz/fuzz_sse.c csrc/sse.c csrc/buf.c
"$CLANG" "${FLAGS[@]}" -I/usr/include/lua5.4 -o "$OUT/fuzz_json" \
  csrc/fuzz/fuzz_json.c "${JSON_SRC[@]}" -llua5.4
"$CLANG" "${FLAGS[@]}" -o "$OUT/fuzz_json_scan" csrc/fuzz/fuzz_json_scan.c csrc/json_scan.c
"$CLANG" "${FLAGS[@]}" -Icsrc -o "$OUT/fuzz_lines" csrc/fuzz/fuzz_lines.c csrc/lines.c csrc/buf.c
"$CLANG" "${FLAGS[@]}" -I/usr/include/lua5.4 -o "$OUT/fuzz_json_diff" \
  csrc/fuzz/fuzz_json_diff.c "${JSON_SRC[@]}" -llua5.4 -lcjson
"$CLANG" "${FLAGS[@]}" -o "$OUT/fuzz_vec_b64" csrc/fuzz/fuzz_vec_b64.c csrc/vecmath.c -lm
"$CLANG" "${FLAGS[@]}" -I/usr/include/lua5.4 -o "$OUT/fuzz_delta" \
  csrc/fuzz/fuzz_delta.c csrc/delta.c "${JSON_SRC[@]}" -llua5.4
# the resumable parser: core.c registers json.partial, so the whole core
"$CLANG" "${FLAGS[@]}" -I/usr/include/lua5.4 -o "$OUT/fuzz_jpartial" \
  csrc/fuzz/fuzz_jpartial.c csrc/*.c -llua5.4 -lcurl

rm -rf "$OUT/seeds"
lua5.4 scripts/fuzz_seeds.lua "$OUT/seeds" spec/*.lua
mkdir -p "$OUT/seeds/vec_b64" # its seeds are the checked-in corpus
mkdir -p "$OUT/seeds/lines" # the line splitter's seeds are its checked-in corpus
python3 - "$OUT/seeds" <<'EOF'
# whole streams of the mock model: content, usage, parallel tool calls
import json, os, sys
sys.path.insert(0, "spec/support")
import server
tool = {"type": "function", "function": {"name": "get_weather", "parameters": {
    "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}
reqs = [
    {"messages": [{"role": "user", "content": "Hi h\u00e9llo \U0001F600 Paris"}],
     "stream_options": {"include_usage": True}},
    {"messages": [{"role": "user", "content": "Weather in Paris and Tokyo?"}], "tools": [tool]},
    {"messages": [{"role": "user", "content": "x"}], "response_format": {"type": "json_object"}},
]
for i, q in enumerate(reqs):
    q.update(model="openai/gpt-oss-120b", stream=True)
    r = server.mock_response("POST", "/v1/chat/completions", json.dumps(q).encode(), i)
    body = b"".join(c if isinstance(c, bytes) else c.encode() for c in r["chunks"])
    for j, (cut, limit) in enumerate([(0x80, 0x80), (0x11, 0x80), (0xf0, 0x40)]):
        with open(os.path.join(sys.argv[1], "sse", "mock-%d-%d" % (i, j)), "wb") as f:
            f.write(bytes([cut, limit]) + body)
    with open(os.path.join(sys.argv[1], "json", "mock-request-%d" % i), "w") as f:
        json.dump(q, f)
EOF
# the differential chunks of spec/text_path_spec.lua, each whole (the spec
# writes them as concatenations, which fuzz_seeds.lua sees in pieces)
lua5.4 - "$OUT/seeds/json" <<'EOF'
local src = io.open("spec/text_path_spec.lua"):read("a")
local code = src:match("(local HEAD = .-\n)") .. src:match("(local CHUNKS = {.-\n}\n)")
  .. src:match("(local FAILING = {.-\n}\n)") .. "return CHUNKS, FAILING"
local n = 0
for _, list in ipairs({ load(code, "chunks", "t", {})() }) do
  for _, s in ipairs(list) do
    n = n + 1
    local f = assert(io.open(("%s/text-path-%03d"):format(arg[1], n), "wb"))
    f:write(s)
    f:close()
  end
end
EOF

run() { # target max_len [seed set: dictionary, seeds and checked-in corpus; default the target]
  local name=$1 max_len=$2 seeds=${3:-$1} log="$OUT/$1.log" rc=0
  # shellcheck disable=SC2086 # FUZZ_ARGS: extra libFuzzer flags, split on spaces
  "./$OUT/fuzz_$name" -max_total_time="$FUZZ_TIME" -max_len="$max_len" -timeout=10 ${FUZZ_ARGS:-} \
    -dict="csrc/fuzz/$seeds.dict" -artifact_prefix="$OUT/artifacts/$name-" -print_final_stats=1 \
    "$OUT/corpus/$name" "csrc/fuzz/corpus/$seeds" "$OUT/seeds/$seeds" >"$log" 2>&1 || rc=$?
  local runs
  runs=$(grep -E '^stat::number_of_executed_units' "$log" | awk '{print $2}')
  if [ $rc -ne 0 ]; then
    echo "fuzz_$name: FINDING (exit $rc) after ${runs:-?} runs; input and log:" >&2
    ls -1 "$OUT/artifacts/$name-"* >&2 2>/dev/null || true
    grep -E -A40 '^==[0-9]+==( ERROR|ERROR)|runtime error|fuzz_(json[a-z_]*|delta):|deadly signal|timeout after|out-of-memory' \
      "$log" | head -80 >&2
    return 1
  fi
  echo "fuzz_$name: ${runs:-?} runs in ${FUZZ_TIME} s, corpus $(ls "$OUT/corpus/$name" | wc -l) files, no findings"
}

# FUZZ_JOBS (2) targets at a time, each on its own core
run_target() { # "name max_len [seeds]"
  local a
  read -r -a a <<<"$1"
  run "${a[@]}" >"$OUT/${a[0]}.out" 2>&1
}
# jpartial checks every prefix (quadratic in the input): inputs up to 1 KB
targets=("sse 8192" "json 16384" "json_scan 16384 json" "json_diff 16384 json" "vec_b64 4096" "lines 4096"
  "delta 16384 json" "jpartial 1024 json")
status=0
parallel "${FUZZ_JOBS:-2}" run_target "${targets[@]}" || status=1
for t in "${targets[@]}"; do cat "$OUT/${t%% *}.out"; done
exit $status
