-- bench/compare.lua: the JSON core before and after, side by side in one
-- run (bench/compare.sh builds both and starts this with Lua 5.4).
--
-- Streams: the same flood as bench/run.lua (one-token chunks of about 190
-- bytes, `for chunk in stream`), consumed by bench/consumer.lua on Lua 5.4
-- and LuaJIT, loading either core; runs interleaved (old, new, old, new,
-- ...) so a busy machine slows both alike; the best of COMPARE_REPS runs.
-- Decoding: bench/json_decode.lua under each core, with and without
-- drop_nulls. Writes a section of bench/RESULTS.md between the markers
-- below (replacing the previous one), and prints it.
--
-- Environment: COMPARE_OLD_TREE (the old builds: <tree>/<5.4|5.1>/baseten/core.so),
-- COMPARE_OLD (its commit, for the text), COMPARE_N (chunks, 200000),
-- COMPARE_REPS (5), BENCH_ROOT.
local server = require("spec.support.server")
local json = require("baseten.core").json
local common = require("bench.common")

local ROOT = os.getenv("BENCH_ROOT") or "."
local OLD_TREE = assert(os.getenv("COMPARE_OLD_TREE"), "COMPARE_OLD_TREE is not set")
local OLD = os.getenv("COMPARE_OLD") or "70362a3"
local N = tonumber(os.getenv("COMPARE_N") or "200000")
local REPS = tonumber(os.getenv("COMPARE_REPS") or "5")
local RESULTS = ROOT .. "/bench/RESULTS.md"
local BEGIN, END = "<!-- compare.lua: begin -->", "<!-- compare.lua: end -->"

local q = common.q
local function sh(cmd) return common.sh(cmd .. " 2>&1") end

-- the stream of bench/run.lua, 16 tokens over and over
local TOKENS = { " The", " quick", " brown", " fox", " jumps", " over", " the", " lazy",
                 " dog", ",", " and", " then", " it", " runs", " away", "." }
local HEAD = 'data: {"id":"chatcmpl-B9MBs8CjcvOU2jLn","object":"chat.completion.chunk",'
  .. '"created":1741569952,"model":"gpt-4o-mini","choices":[{"index":0,"delta":'
local function event(delta, finish) return HEAD .. delta .. ',"finish_reason":' .. finish .. '}]}\n\n' end
local UNIT = {}
for i, tok in ipairs(TOKENS) do UNIT[i] = event('{"content":"' .. tok .. '"}', "null") end
UNIT = table.concat(UNIT)
local function flood(n)
  return { chunks = { event('{"role":"assistant","content":""}', "null"),
    { ["repeat"] = UNIT, count = n // #TOKENS }, event("{}", '"stop"'), "data: [DONE]\n\n" } }
end

local function env(v, which)
  local cp = (which == "old" and OLD_TREE or ROOT .. "/bench/out/dev") .. "/" .. v .. "/?.so;;"
  local lp = ROOT .. "/lua/?.lua;" .. ROOT .. "/lua/?/init.lua;;"
  return "env -u LUA_PATH_5_4 -u LUA_CPATH_5_4 LUA_PATH=" .. q(lp) .. " LUA_CPATH=" .. q(cp) .. " "
end

local CONFIGS = {}
for _, lua in ipairs({ { "Lua 5.4", "5.4", "lua5.4" }, { "LuaJIT", "5.1", "luajit" } }) do
  for _, which in ipairs({ "old", "new" }) do
    CONFIGS[#CONFIGS + 1] = { lua = lua[1], which = which, cpu = math.huge, env = env(lua[2], which),
      bin = lua[3], prefix = env(lua[2], which) .. lua[3] }
  end
end

local function run_json(cmd)
  local out, ok = sh(cmd)
  local r = json.decode(out:match("({[^\n]*})%s*$") or "")
  if not ok or type(r) ~= "table" then error("compare: " .. cmd .. " failed:\n" .. out, 0) end
  return r
end

local srv

-- Instructions per decode of the stream chunk (callgrind: the same on a
-- busy machine as on an idle one): the count for COUNT_N decodes less the
-- count for none, over COUNT_N; each count the least of 3 runs, as Lua
-- 5.4 seeds its string hashing per run (about 1% either way).
local COUNT_N = 20000
local HAS_VALGRIND = select(2, sh("command -v valgrind"))
local function instructions(c, mode)
  local function count(n)
    local least = math.huge
    for _ = 1, 3 do
      local out = sh(c.env .. "valgrind --tool=callgrind --callgrind-out-file=/dev/null " .. c.bin .. " "
        .. ROOT .. "/bench/json_decode.lua count " .. mode .. " " .. n)
      local ir = out:match("Collected%s*:%s*(%d+)")
      if not ir then error("compare: callgrind failed:\n" .. out, 0) end
      least = math.min(least, tonumber(ir))
    end
    return least
  end
  return (count(COUNT_N) - count(0)) / COUNT_N
end

-- Instructions per streamed chunk, the whole consumer (HTTP, SSE, JSON,
-- the Lua layer): the count for COUNT_N chunks less the count for none.
local function stream_instructions(c)
  local function count(n)
    local least = math.huge
    for _ = 1, 2 do
      srv:reset()
      srv:enqueue(flood(n))
      local out = sh(c.env .. "valgrind --tool=callgrind --callgrind-out-file=/dev/null " .. c.bin .. " "
        .. ROOT .. "/bench/consumer.lua stream " .. q(srv.url))
      local ir = out:match("Collected%s*:%s*(%d+)")
      if not ir then error("compare: callgrind failed:\n" .. out, 0) end
      least = math.min(least, tonumber(ir))
    end
    return least
  end
  return (count(COUNT_N) - count(0)) / COUNT_N
end

srv = server.start()
local ok_run, err = pcall(function()
  for rep = 1, REPS do
    for _, c in ipairs(CONFIGS) do
      srv:reset()
      srv:enqueue(flood(N))
      local r = run_json(c.prefix .. " " .. ROOT .. "/bench/consumer.lua stream " .. q(srv.url))
      if r.chunks ~= N + 2 then error(("compare: %d chunks, want %d"):format(r.chunks, N + 2), 0) end
      c.cpu = math.min(c.cpu, r.cpu)
      io.stderr:write(("  rep %d  %-8s %-3s cpu %.3f s\n"):format(rep, c.lua, c.which, r.cpu))
    end
  end
  for _, c in ipairs(CONFIGS) do
    c.decode = run_json(c.prefix .. " " .. ROOT .. "/bench/json_decode.lua")
    c.stream_instr = HAS_VALGRIND and stream_instructions(c) or nil
    c.instr = {}
    for _, mode in ipairs(HAS_VALGRIND and { "keep", "drop" } or {}) do
      if mode == "keep" or c.which == "new" then c.instr[mode] = instructions(c, mode) end
    end
  end
end)
srv:stop()
if not ok_run then
  io.stderr:write(tostring(err), "\n")
  os.exit(1)
end

local L = {}
local function add(s) L[#L + 1] = s end
local function us(v) return v == json.null and "—" or ("%.2f"):format(v) end
add(BEGIN)
add("### The JSON core before and after (bench/compare.sh core)")
add("")
local load = (sh("cat /proc/loadavg"):match("^(%S+ %S+ %S+)")) or "?"
add(("Measured in one run, %s, on the machine above (load average %s at the end: on a busy"
  .. " machine the times vary by tens of percent from run to run, the instruction counts below"
  .. " do not): the core of commit %s"):format(os.date("!%Y-%m-%d %H:%M UTC"), load, OLD)
  .. " (one json.c) against this tree's (json_scan.c, json_dec.c, json_enc.c), both built -O2 by"
  .. " the same compiler, with the same Lua modules. Stream: "
  .. N .. " one-token chunks of the flood above, `for chunk in stream`; CPU of the consumer, the best of "
  .. REPS .. " interleaved runs.")
add("")
add("| consumer | before: CPU s per 100k chunks | after | after ÷ before |"
  .. " before: instructions per chunk | after | after ÷ before |")
add("|---|---|---|---|---|---|---|")
for i = 1, #CONFIGS, 2 do
  local old, new = CONFIGS[i], CONFIGS[i + 1]
  local oi, ni = old.stream_instr, new.stream_instr
  add(("| baseten, %s | %.3f | %.3f | %.2fx | %s | %s | %s |"):format(old.lua, old.cpu / N * 1e5,
    new.cpu / N * 1e5, new.cpu / old.cpu, oi and ("%.0f"):format(oi) or "—",
    ni and ("%.0f"):format(ni) or "—", oi and ni and ("%.3fx"):format(ni / oi) or "—"))
end
add("")
add(("Instructions per chunk: callgrind over the consumer process, %d chunks less none, the least of"
  .. " 2 runs."):format(COUNT_N))
add("")
add("`json.decode` alone (bench/json_decode.lua), µs per decode, the best of 5 runs of 200000:"
  .. " a stream chunk with the null members servers send (`usage`, `logprobs`, `finish_reason`, ...),"
  .. " a chat completion with OpenAI's nulls, and a chunk with no null at all. `drop` is"
  .. " `{ drop_nulls = true }`, which the old core did not have.")
add("")
add("| payload | core | Lua 5.4: keep nulls | Lua 5.4: drop | LuaJIT: keep nulls | LuaJIT: drop |")
add("|---|---|---|---|---|---|")
for _, p in ipairs({ "chunk", "completion", "no_nulls" }) do
  for _, which in ipairs({ "old", "new" }) do
    local a = which == "old" and CONFIGS[1] or CONFIGS[2]
    local b = which == "old" and CONFIGS[3] or CONFIGS[4]
    add(("| %s | %s | %s | %s | %s | %s |"):format(p, which == "old" and "before" or "after",
      us(a.decode[p].keep), us(a.decode[p].drop), us(b.decode[p].keep), us(b.decode[p].drop)))
  end
end
if HAS_VALGRIND then
  add("")
  add("Instructions per decode of that stream chunk (callgrind; unlike times, the same on a busy machine):")
  add("")
  add("| core | Lua 5.4: keep nulls | Lua 5.4: drop | LuaJIT: keep nulls | LuaJIT: drop |")
  add("|---|---|---|---|---|")
  for _, which in ipairs({ "old", "new" }) do
    local a = which == "old" and CONFIGS[1] or CONFIGS[2]
    local b = which == "old" and CONFIGS[3] or CONFIGS[4]
    local function n(v) return v and ("%.0f"):format(v) or "—" end
    add(("| %s | %s | %s | %s | %s |"):format(which == "old" and "before" or "after",
      n(a.instr.keep), n(a.instr.drop), n(b.instr.keep), n(b.instr.drop)))
  end
end
add(END)
local section = table.concat(L, "\n")
print(section)

common.replace_marked(RESULTS, section, BEGIN, END)
io.stderr:write("compare: wrote " .. RESULTS .. "\n")
