-- bench/run.lua: baseten against a plain C consumer, openai-node and curl,
-- side by side in one run (`make bench`, through bench/run.sh).
--
-- Starts the local test server (spec/support/server.py), which floods a
-- stream of one-token chat.completion.chunk events as fast as loopback
-- allows and answers small blocking chats, runs every consumer against it
-- a few times, and writes a markdown table of ratios to stdout and to
-- bench/RESULTS.md. Each consumer prints one JSON line; CPU is measured
-- inside each consumer process around the measured part (getrusage,
-- os.clock, process.cpuUsage: user+sys, all threads), so interpreter
-- start-up is out; peak RSS is the process's VmHWM.
--
-- Knobs (environment): BENCH_N (chunks of the long stream, 1000000),
-- BENCH_SMALL_N (200000), BENCH_REPS (5; the best run counts, see best()),
-- BENCH_CHATS (2000), BENCH_CURL_LOOP (300: curl processes are slow),
-- BENCH_DEV=1 (load bench/out/dev builds and lua/, see bench/build_dev.sh),
-- BENCH_OUT (RESULTS.md path; "-" for stdout only).
--
-- The batch scenario (batch_scenario below): BENCH_BATCH_N (10000) small
-- non-streamed chats at BENCH_BATCH_C (64) in flight against nginx
-- returning a canned chat.completion, for client:batch on Lua 5.4 and
-- LuaJIT, openai-node with a pool of 64 and a C curl-multi floor; each
-- BENCH_BATCH_REPS (3) times, plus one run of 5 x BENCH_BATCH_N for the
-- memory check. BENCH_ONLY=batch runs the batch scenario alone and
-- replaces only its section of RESULTS.md.
--
-- The json.partial scenario (bench/partial.lua): the resumable parser's
-- cost by piece size, npm partial-json beside it, client:json's on_partial
-- overhead. BENCH_ONLY=partial runs it alone and replaces only its section.
local server = require("spec.support.server")
local json = require("baseten.core").json
local now = require("baseten.core").now
local common = require("bench.common")

local ROOT = os.getenv("BENCH_ROOT") or "."
local OUT = ROOT .. "/bench/out"
local N = tonumber(os.getenv("BENCH_N") or "1000000")
local SMALL_N = tonumber(os.getenv("BENCH_SMALL_N") or "200000")
local REPS = tonumber(os.getenv("BENCH_REPS") or "5")
local CHATS = tonumber(os.getenv("BENCH_CHATS") or "2000")
local CURL_LOOP = tonumber(os.getenv("BENCH_CURL_LOOP") or "300")
local DEV = os.getenv("BENCH_DEV") == "1"
local RESULTS = os.getenv("BENCH_OUT") or (ROOT .. "/bench/RESULTS.md")
local WARMUP = 50 -- chats each Lua and node consumer sends before timing

local q, sh, first_line, run_json, best = common.q, common.sh, common.first_line, common.run_json, common.best
local write_file = common.write_file

------------------------------------------------------------------ the stream

-- One-token chunks in OpenAI's shape, with an id and a model name of
-- realistic length: about 190 bytes each. 16 different tokens, so the
-- consumers see different content strings, not one string over and over.
local TOKENS = { " The", " quick", " brown", " fox", " jumps", " over", " the", " lazy",
                 " dog", ",", " and", " then", " it", " runs", " away", "." }
local HEAD = 'data: {"id":"chatcmpl-B9MBs8CjcvOU2jLn","object":"chat.completion.chunk",'
  .. '"created":1741569952,"model":"gpt-4o-mini","choices":[{"index":0,"delta":'

local function event(delta, finish)
  return HEAD .. delta .. ',"finish_reason":' .. finish .. '}]}\n\n'
end

local UNIT, UNIT_CHARS = {}, 0
for i, tok in ipairs(TOKENS) do
  UNIT[i] = event('{"content":"' .. tok .. '"}', "null")
  UNIT_CHARS = UNIT_CHARS + #tok
end
local EVENT_BYTES = #table.concat(UNIT) / #TOKENS
UNIT = table.concat(UNIT)

-- n content chunks (a multiple of 16) between a role chunk and a finish
-- chunk: n + 2 chunks in all, then [DONE].
local function flood(n)
  return { chunks = {
    event('{"role":"assistant","content":""}', "null"),
    { ["repeat"] = UNIT, count = n // #TOKENS },
    event("{}", '"stop"'),
    "data: [DONE]\n\n",
  } }
end

----------------------------------------------------------------- consumers

local function lua_env(v) return common.lua_env(ROOT, v, DEV) end

local LUA = {
  { name = "baseten, Lua 5.4", key = "lua54", cmd = lua_env("5.4") .. "lua5.4 " .. ROOT .. "/bench/consumer.lua" },
  { name = "baseten, LuaJIT", key = "luajit", cmd = lua_env("5.1") .. "luajit " .. ROOT .. "/bench/consumer.lua" },
}
local NODE = { name = "openai-node", key = "node", cmd = "node " .. ROOT .. "/bench/node_consumer.mjs" }
local C = { name = "C (libcurl + cJSON)", key = "c", cmd = OUT .. "/c_consumer" }

local function median(list)
  table.sort(list)
  local n = #list
  if n % 2 == 1 then return list[(n + 1) // 2] end
  return (list[n // 2] + list[n // 2 + 1]) / 2
end

-- results[key][n] = { cpu = {...}, wall = {...}, rss_kb = {...} } over reps;
-- results[key].meta = { count = chats sent, connections = server's count }
local results = {}
local function record(key, n, r)
  results[key] = results[key] or {}
  local slot = results[key][n] or { cpu = {}, wall = {}, rss_kb = {} }
  results[key][n] = slot
  for f in pairs(slot) do slot[f][#slot[f] + 1] = r[f] end
end
local function med(key, n, f)
  local list = results[key][n][f]
  return f == "rss_kb" and median(list) or best(list)
end

local srv

local function stream_once(c, n)
  srv:reset()
  srv:enqueue(flood(n))
  local r = run_json(c.cmd .. " " .. (c.key == "c" and "" or "stream ") .. q(srv.url))
  local want_chars = UNIT_CHARS * (n // #TOKENS)
  if r.chunks ~= n + 2 or r.chars ~= want_chars then
    error(("bench: %s got %s chunks / %s chars, want %d / %d"):format(c.name, r.chunks, r.chars, n + 2, want_chars), 0)
  end
  record(c.key, n, r)
  io.stderr:write(("  %-22s %8d chunks  cpu %6.3f s  wall %6.3f s  rss %6.1f MB\n")
    :format(c.name, n, r.cpu, r.wall, r.rss_kb / 1024))
end

-- chat: a client sends `count` blocking chats; checks the server saw them
local function chat_once(c, count, cmd, extra)
  srv:reset()
  local r = run_json(cmd)
  local st = srv:stats()
  if st.requests ~= count + (extra or 0) then
    error(("bench: %s: the server saw %d requests, want %d"):format(c.name, st.requests, count + (extra or 0)), 0)
  end
  record(c.key, "chat", r)
  results[c.key].meta = { connections = st.connections, count = count }
  io.stderr:write(("  %-22s %6d chats   cpu %6.3f s  wall %6.3f s  %d connection(s)\n")
    :format(c.name, count, r.cpu, r.wall, st.connections))
end

local CHAT_BODY = '{"model":"test/bench","messages":[{"role":"user","content":"go"}]}'

-- curl: one process per chat (a shell loop), or one process for them all
-- (a -K config file of `url`/`next` blocks, so the connection is reused)
local CURL_LOOP_C = { name = "curl, one process per chat", key = "curl_loop" }
local CURL_K = { name = "curl -K, one process", key = "curl_k" }

local function curl_cmds(url)
  local body = OUT .. "/chat.json"
  write_file(body, CHAT_BODY)
  local opts = "-s -o /dev/null -H 'Content-Type: application/json' -H 'Authorization: Bearer bench' --data-binary @" .. q(body)
  local loop = ("for i in $(seq %d); do curl %s %s || exit 1; done"):format(CURL_LOOP, opts, q(url .. "/chat/completions"))
  local cfg = { "silent" }
  for i = 1, CHATS do
    cfg[#cfg + 1] = ('url = "%s/chat/completions"\noutput = "/dev/null"\nheader = "Content-Type: application/json"\n'
      .. 'header = "Authorization: Bearer bench"\ndata-binary = "@%s"'):format(url, body)
    if i < CHATS then cfg[#cfg + 1] = "next" end
  end
  write_file(OUT .. "/curl_chats.cfg", table.concat(cfg, "\n") .. "\n")
  local function timed(cmd) -- bash's `time`: user+sys include the children
    return "bash -c " .. q("TIMEFORMAT='{\"wall\":%3R,\"user\":%3U,\"sys\":%3S}'; time ( " .. cmd .. " ) >/dev/null")
  end
  return timed("bash -c " .. q(loop)), timed("curl -K " .. q(OUT .. "/curl_chats.cfg"))
end

local function curl_once(c, cmd, count)
  srv:reset()
  local out, ok = sh(cmd .. " 2>&1")
  local r = json.decode(out:match("({[^\n]*})%s*$") or "")
  if not ok or type(r) ~= "table" then error("bench: " .. cmd .. " failed:\n" .. out, 0) end
  r.cpu = r.user + r.sys
  r.rss_kb = 0
  local st = srv:stats()
  if st.requests ~= count then error(("bench: %s: %d requests, want %d"):format(c.name, st.requests, count), 0) end
  record(c.key, "chat", r)
  results[c.key].meta = { connections = st.connections, count = count }
  io.stderr:write(("  %-22s %6d chats   cpu %6.3f s  wall %6.3f s  %d connection(s)\n")
    :format(c.name, count, r.cpu, r.wall, st.connections))
end

------------------------------------------------------------------- report

local function machine()
  local cpu = first_line("grep -m1 'model name' /proc/cpuinfo"):gsub("^model name%s*:%s*", "")
  local openai = sh("node -p \"require('" .. ROOT .. "/bench/node_modules/openai/package.json').version\" 2>/dev/null"):gsub("%s+$", "")
  return {
    ("- CPU: %s, %s cores (nproc); kernel %s; %s"):format(cpu, first_line("nproc"), first_line("uname -r"),
      first_line("grep -m1 PRETTY_NAME /etc/os-release"):match('"(.*)"') or "Linux"),
    ("- %s; %s; node %s with openai-node %s; %s"):format(first_line("lua5.4 -v"):match("Lua %S+"),
      first_line("luajit -v"):match("LuaJIT %S+"), first_line("node --version"), openai,
      first_line("curl --version"):match("^curl %S+") .. " (libcurl)"),
    ("- cJSON %s, %s; test server: %s (spec/support/server.py)"):format(
      first_line("dpkg-query -W -f='${Version}' libcjson-dev"), first_line("cc --version"),
      first_line("python3 --version")),
    ("- %s; %s build of baseten"):format(os.date("!%Y-%m-%d %H:%M UTC"), DEV and "bench/build_dev.sh (-O2 -g)" or "luarocks make (-O2)"),
  }
end

local function x(a, b) return ("%.2fx"):format(a / b) end
local function mb(kb) return ("%.1f MB"):format(kb / 1024) end
local function per100k(key) return med(key, N, "cpu") / N * 1e5 end
local function chats_per_s(key) return results[key].meta.count / med(key, "chat", "wall") end
local function cpu_per_chat(key) return med(key, "chat", "cpu") / results[key].meta.count end

local function ok(cond) return cond and "yes" or "**no**" end

local function report()
  local L = {}
  local function add(s) L[#L + 1] = s end
  local c100, n100 = per100k("c"), per100k("node")
  add("## Benchmark: baseten against C, openai-node and curl")
  add("")
  add(("`make bench`. Streams: %d and %d one-token `chat.completion.chunk` events of %d bytes "
    .. "(OpenAI's shape, 16 different tokens) flooded over loopback by the local test server; "
    .. "each consumer runs `for chunk in stream` (`for await` in node), reads "
    .. "`choices[1].delta.content`, and counts. CPU is user+sys of the consumer process "
    .. "around the request (start-up excluded); the best of %d runs (peak RSS: the median).")
    :format(SMALL_N, N, math.floor(EVENT_BYTES + 0.5), REPS))
  add("")
  add("| ratio | baseten, Lua 5.4 | baseten, LuaJIT | goal |")
  add("|---|---|---|---|")
  local row = {}
  for _, c in ipairs(LUA) do row[#row + 1] = x(per100k(c.key), c100) end
  add(("| stream CPU ÷ C consumer | %s | %s | at most 2.5x (%s, %s) |"):format(row[1], row[2],
    ok(per100k("lua54") <= 2.5 * c100), ok(per100k("luajit") <= 2.5 * c100)))
  row = {}
  for _, c in ipairs(LUA) do row[#row + 1] = x(per100k(c.key), n100) end
  add(("| stream CPU ÷ openai-node | %s | %s | at most 0.2x (%s, %s) |"):format(row[1], row[2],
    ok(per100k("lua54") <= 0.2 * n100), ok(per100k("luajit") <= 0.2 * n100)))
  row = {}
  local flat = {}
  for _, c in ipairs(LUA) do
    local d = med(c.key, N, "rss_kb") - med(c.key, SMALL_N, "rss_kb")
    row[#row + 1] = mb(d)
    flat[#flat + 1] = ok(d <= 8 * 1024)
  end
  add(("| peak RSS, %dk chunks − %dk chunks | %s | %s | at most 8 MB (%s, %s) |"):format(N // 1000, SMALL_N // 1000,
    row[1], row[2], flat[1], flat[2]))
  for _, other in ipairs{ { "curl_loop", "a curl process per chat" }, { "curl_k", "one curl process (-K)" }, { "node", "openai-node" } } do
    add(("| chats/s ÷ %s | %s | %s | |"):format(other[2], x(chats_per_s("lua54"), chats_per_s(other[1])),
      x(chats_per_s("luajit"), chats_per_s(other[1]))))
  end
  add("")
  add(("### Streaming, %d chunks"):format(N))
  add("")
  add("| consumer | CPU s per 100k chunks | µs per chunk | ÷ C | ÷ openai-node | wall s | chunks/s |")
  add("|---|---|---|---|---|---|---|")
  for _, c in ipairs{ C, LUA[1], LUA[2], NODE } do
    local v = per100k(c.key)
    add(("| %s | %.3f | %.2f | %s | %s | %.2f | %.0f |"):format(c.name, v, v * 10, x(v, c100), x(v, n100),
      med(c.key, N, "wall"), N / med(c.key, N, "wall")))
  end
  add("")
  add("### Peak RSS (VmHWM)")
  add("")
  add(("| consumer | %dk chunks | %dk chunks | difference |"):format(SMALL_N // 1000, N // 1000))
  add("|---|---|---|---|")
  for _, c in ipairs{ C, LUA[1], LUA[2], NODE } do
    local a, b = med(c.key, SMALL_N, "rss_kb"), med(c.key, N, "rss_kb")
    add(("| %s | %s | %s | %s |"):format(c.name, mb(a), mb(b), mb(b - a)))
  end
  add("")
  add(("The Lua figures include the accumulated text `stream:final()` needs "
    .. "(%.1f MB of content at %dk chunks). LuaJIT interns every string, and this "
    .. "stream repeats its 16 tokens, so its 512-token text segments are all one string: "
    .. "real text would cost LuaJIT about what it costs Lua 5.4.")
    :format(UNIT_CHARS * (N // #TOKENS) / 1048576, N // 1000))
  add("")
  add("### Small blocking chats, one connection reused")
  add("")
  add(("`client:chat` in a loop (%d chats after %d warm-up ones; openai-node likewise) against "
    .. "the test server's default mock (a %d-byte request, a ~330-byte chat.completion), "
    .. "against curl: a shell loop of %d curl processes, and one curl process given %d "
    .. "requests in a `-K` config file (`url`/`data-binary` blocks separated by `next`, run "
    .. "one after another on one connection). The server (Python) is the bottleneck of "
    .. "chats/s; client CPU per chat shows the clients' own cost.")
    :format(CHATS, WARMUP, #CHAT_BODY, CURL_LOOP, CHATS))
  add("")
  add("| client | chats/s | client CPU per chat | connections | chats/s ÷ baseten 5.4 |")
  add("|---|---|---|---|---|")
  for _, c in ipairs{ LUA[1], LUA[2], NODE, CURL_K, CURL_LOOP_C } do
    add(("| %s | %.0f | %.0f µs | %d | %s |"):format(c.name, chats_per_s(c.key), cpu_per_chat(c.key) * 1e6,
      results[c.key].meta.connections, x(chats_per_s(c.key), chats_per_s("lua54"))))
  end
  add("")
  add("Machine:")
  add("")
  for _, s in ipairs(machine()) do add(s) end
  return table.concat(L, "\n") .. "\n"
end

----------------------------------------------------------------- batch

local BATCH_N = tonumber(os.getenv("BENCH_BATCH_N") or "10000")
local BATCH_C = tonumber(os.getenv("BENCH_BATCH_C") or "64")
local BATCH_REPS = tonumber(os.getenv("BENCH_BATCH_REPS") or "3")
local ONLY = os.getenv("BENCH_ONLY")
local BATCH_BODY = '{"id":"chatcmpl-bench","object":"chat.completion","created":1735689600,'
  .. '"model":"test/bench","choices":[{"index":0,"message":{"role":"assistant","content":"Hello from nginx."},'
  .. '"finish_reason":"stop"}],"usage":{"prompt_tokens":1,"completion_tokens":4,"total_tokens":5}}'

-- nginx (one worker) answering every request with BATCH_BODY, under
-- bench/out/nginx; returns its base URL, a function that stops it, and the
-- root URL of its second port, which speaks HTTP/2 in cleartext (prior
-- knowledge: the only protocol the performance client's node binding uses).
local function start_nginx()
  local url, stop, h2_url = common.start_nginx(OUT .. "/nginx", {
    server = { "    location / { default_type application/json; return 200 '" .. BATCH_BODY .. "'; }" },
    probe = "/v1/chat/completions", expect = BATCH_BODY,
  })
  return url .. "/v1", stop, h2_url
end

local BATCH_C_FLOOR = { name = "C (curl multi + cJSON)", key = "c" }
local BATCH_LUA = {
  { name = "client:batch, Lua 5.4", key = "lua54" },
  { name = "client:batch, LuaJIT", key = "luajit" },
}
local BATCH_NODE = { name = "openai-node, pool of " .. BATCH_C, key = "node" }
local BATCH_PERF = { name = "performance client (npm; h2c port)", key = "perf" }
local PERF_VERSION = (function()
  local f = io.open(ROOT .. "/bench/node_modules/@basetenlabs/performance-client/package.json")
  local v = f and f:read("*a"):match('"version"%s*:%s*"([^"]+)"')
  if f then f:close() end
  return v or "?"
end)()
local batch_results = {} -- key -> { cpu = {...}, wall = {...}, rss10k, rss50k }

local function batch_cmd(c, url, n)
  if c.key == "c" then return ("%s/c_batch %s %d %d"):format(OUT, q(url), n, BATCH_C) end
  if c.key == "node" then return ("node %s/bench/node_consumer.mjs batch %s %d %d"):format(ROOT, q(url), n, BATCH_C) end
  if c.key == "perf" then return ("node %s/bench/perf_client.mjs %s %d %d"):format(ROOT, q(url), n, BATCH_C) end
  local lua = c.key == "lua54" and LUA[1] or LUA[2]
  return ("%s batch %s %d %d"):format(lua.cmd, q(url), n, BATCH_C)
end

local function batch_once(c, url, n)
  local r = run_json(batch_cmd(c, url, n))
  if r.requests ~= n or r.failed ~= 0 or r.tokens ~= 5 * n then
    error(("bench: %s: %s requests, %s failed, %s tokens; want %d, 0, %d"):format(c.name, r.requests, r.failed,
      r.tokens, n, 5 * n), 0)
  end
  local slot = batch_results[c.key] or { cpu = {}, wall = {} }
  batch_results[c.key] = slot
  if n == BATCH_N then
    slot.cpu[#slot.cpu + 1] = r.cpu
    slot.wall[#slot.wall + 1] = r.wall
    if c.key == "perf" then slot.rss_end = math.max(slot.rss_end or 0, r.rss_kb) end -- its peak
  else
    slot.rss10k, slot.rss_end = r.rss10k_kb, r.rss_kb
  end
  io.stderr:write(("  %-26s %6d chats   cpu %6.3f s  wall %6.3f s  %.0f req/s  rss %6.1f MB\n")
    :format(c.name, n, r.cpu, r.wall, n / r.wall, r.rss_kb / 1024))
end

local function batch_scenario()
  local url, stop, h2url = start_nginx()
  io.stderr:write(("bench: batch: nginx at %s; %d chats at %d in flight, %d reps\n"):format(url, BATCH_N, BATCH_C,
    BATCH_REPS))
  local ok_b, e = pcall(function()
    for _ = 1, BATCH_REPS do
      for _, c in ipairs{ BATCH_C_FLOOR, BATCH_LUA[1], BATCH_LUA[2], BATCH_NODE, BATCH_PERF } do
        batch_once(c, c == BATCH_PERF and h2url or url, BATCH_N)
      end
    end
    for _, c in ipairs{ BATCH_C_FLOOR, BATCH_LUA[1], BATCH_LUA[2] } do batch_once(c, url, 5 * BATCH_N) end
  end)
  stop()
  if not ok_b then error(e, 0) end
end

local function batch_report()
  local L = {}
  local function add(s) L[#L + 1] = s end
  local function rps(key) return BATCH_N / best(batch_results[key].wall) end
  local function cpu1k(key) return best(batch_results[key].cpu) / BATCH_N * 1000 end
  local yes = function(cond) return cond and "yes" or "**no**" end
  add(("## Batch: %d small chats, %d in flight, against nginx"):format(BATCH_N, BATCH_C))
  add("")
  add(("`make bench` (`BENCH_ONLY=batch make bench` for this section alone). %d non-streamed chats "
    .. "(a %d-byte request, a %d-byte canned chat.completion from nginx, one worker, on loopback), "
    .. "at most %d in flight: `client:batch` (`keep = false`, tokens summed in `on_result`); openai-node "
    .. "with %d workers each awaiting one `chat.completions.create` after another; a C program on the "
    .. "curl multi interface with %d reused easy handles, each response parsed by cJSON. Every consumer "
    .. "checks the count of requests and tokens. CPU is user+sys of the consumer process around the batch; "
    .. "the best of %d runs. RSS is VmRSS after 10,000 requests and at the end of one run of %d. "
    .. "Baseten's performance client (`@basetenlabs/performance-client` %s from npm, a Rust core over "
    .. "tokio and reqwest) sends the same payloads with one `batchPost` at %d in flight; its node binding "
    .. "speaks only HTTP/2 in cleartext (prior knowledge), so it talks to the same nginx on a second "
    .. "`listen ... http2` port, the others over HTTP/1.1; its RSS is its peak (VmHWM), with every payload "
    .. "and result held, as `batchPost` keeps them.")
    :format(BATCH_N, #CHAT_BODY, #BATCH_BODY, BATCH_C, BATCH_C, BATCH_C, BATCH_REPS, 5 * BATCH_N, PERF_VERSION,
      BATCH_C))
  add("")
  add("| goal | client:batch, Lua 5.4 | client:batch, LuaJIT |")
  add("|---|---|---|")
  local r, cpu, mem = {}, {}, {}
  for _, c in ipairs(BATCH_LUA) do
    r[#r + 1] = ("%s (%s)"):format(x(rps(c.key), rps("node")), yes(rps(c.key) >= 3 * rps("node")))
    cpu[#cpu + 1] = ("%s (%s)"):format(x(cpu1k(c.key), cpu1k("c")), yes(cpu1k(c.key) <= 2 * cpu1k("c")))
    local d = batch_results[c.key].rss_end - batch_results[c.key].rss10k
    mem[#mem + 1] = ("%s (%s)"):format(mb(d), yes(d <= 8 * 1024))
  end
  add(("| req/s at least 3x openai-node's | %s | %s |"):format(r[1], r[2]))
  add(("| CPU per request at most 2x the C floor's | %s | %s |"):format(cpu[1], cpu[2]))
  add(("| RSS after %dk requests − after 10k: at most 8 MB | %s | %s |"):format(5 * BATCH_N // 1000, mem[1], mem[2]))
  local pr, pc = {}, {}
  for _, c in ipairs(BATCH_LUA) do
    pr[#pr + 1] = ("%s (%s)"):format(x(rps(c.key), rps("perf")), yes(rps(c.key) >= rps("perf")))
    pc[#pc + 1] = ("%s (%s)"):format(x(cpu1k(c.key), cpu1k("perf")), yes(cpu1k(c.key) <= cpu1k("perf")))
  end
  add(("| req/s ahead of Baseten's performance client | %s | %s |"):format(pr[1], pr[2]))
  add(("| CPU per request below the performance client's | %s | %s |"):format(pc[1], pc[2]))
  add("")
  add("| consumer | req/s | CPU s per 1000 requests | µs CPU per request | CPU ÷ C | req/s ÷ openai-node | RSS 10k | RSS end |")
  add("|---|---|---|---|---|---|---|---|")
  for _, c in ipairs{ BATCH_C_FLOOR, BATCH_LUA[1], BATCH_LUA[2], BATCH_NODE, BATCH_PERF } do
    local b = batch_results[c.key]
    add(("| %s | %.0f | %.3f | %.0f | %s | %s | %s | %s |"):format(c.name, rps(c.key), cpu1k(c.key), cpu1k(c.key) * 1000,
      x(cpu1k(c.key), cpu1k("c")), x(rps(c.key), rps("node")), b.rss10k and mb(b.rss10k) or "-",
      b.rss_end and mb(b.rss_end) or "-"))
  end
  add("")
  add("Machine:")
  add("")
  for _, m in ipairs(machine()) do add(m) end
  add(("- %s; load average when the batch scenario ended: %s"):format(first_line("nginx -v"):gsub("^nginx version: ", ""),
    first_line("cut -d' ' -f1-3 /proc/loadavg")))
  return table.concat(L, "\n") .. "\n"
end

-------------------------------------------------------- json.partial

-- The "Structured output you can watch" section (bench/partial.lua).
local function partial_section()
  return dofile(ROOT .. "/bench/partial.lua").run({
    ROOT = ROOT, OUT = OUT, q = q, lua_env = lua_env, run_json = run_json, server = server, json = json,
    machine = function()
      local lines = { "Machine:", "" }
      for _, l in ipairs(machine()) do lines[#lines + 1] = l end
      local pj = sh("node -p \"require('" .. ROOT .. "/bench/node_modules/partial-json/package.json').version\""
        .. " 2>/dev/null"):gsub("%s+$", "")
      lines[#lines + 1] = "- npm partial-json " .. pj .. " (bench/package.json)"
      return lines
    end,
  })
end

--------------------------------------------------------------------- main

if ONLY == "partial" then
  local t0 = now()
  local text = partial_section()
  io.write("\n", text)
  if RESULTS ~= "-" then
    local old = common.read_file(RESULTS)
    local head = "\n## Structured output you can watch"
    local a = old:find(head, 1, true)
    if a then
      local b = old:find("\n## ", a + 1, true)
      old = old:sub(1, a) .. text .. (b and old:sub(b) or "")
    else
      old = old .. (old ~= "" and not old:find("\n\n$") and "\n" or "") .. "\n" .. text
    end
    write_file(RESULTS, old)
    io.stderr:write(("bench: wrote the json.partial section of %s in %.0f s\n"):format(RESULTS, now() - t0))
  end
  os.exit(0)
end

if ONLY == "batch" then
  local t0 = now()
  batch_scenario()
  local text = batch_report()
  io.write("\n", text)
  if RESULTS ~= "-" then
    local old = common.read_file(RESULTS)
    -- the batch section ends where the next section, note or marked block
    -- starts (the embeddings and instructions sections follow it)
    local at = old:find("\n## Batch:", 1, true) or (old:sub(1, 9) == "## Batch:" and 0)
    local rest = ""
    if at then
      local stop = #old + 1 -- batch_report writes no ### heading: one starts a note kept here
      for _, mark in ipairs({ "\n## ", "\n### ", "\n<!-- " }) do stop = math.min(stop, old:find(mark, at + 2, true) or stop) end
      rest = old:sub(stop + 1)
      old = old:sub(1, at)
    end
    write_file(RESULTS, old .. (old ~= "" and not old:find("\n\n$") and "\n" or "") .. text
      .. (rest ~= "" and "\n" .. rest or ""))
    io.stderr:write(("bench: wrote the batch section of %s in %.0f s\n"):format(RESULTS, now() - t0))
  end
  os.exit(0)
end

srv = server.start()
local t0 = now()
io.stderr:write(("bench: server at %s; %d reps; streams of %d and %d chunks\n"):format(srv.url, REPS, SMALL_N, N))
local ok_run, err = pcall(function()
  local consumers = { C, LUA[1], LUA[2], NODE }
  for _, n in ipairs{ SMALL_N, N } do
    for _ = 1, REPS do
      for _, c in ipairs(consumers) do stream_once(c, n) end
    end
  end
  local loop_cmd, k_cmd = curl_cmds(srv.url)
  for _ = 1, REPS do
    for _, c in ipairs{ LUA[1], LUA[2], NODE } do
      chat_once(c, CHATS, c.cmd .. " chat " .. q(srv.url) .. " " .. CHATS, WARMUP)
    end
    curl_once(CURL_K, k_cmd, CHATS)
    curl_once(CURL_LOOP_C, loop_cmd, CURL_LOOP)
  end
end)
srv:stop()
if ok_run then ok_run, err = pcall(batch_scenario) end
local partial_text
if ok_run then ok_run, partial_text = pcall(partial_section) end
if not ok_run then
  io.stderr:write(tostring(err or partial_text), "\n")
  os.exit(1)
end
local text = report() .. "\n" .. batch_report() .. "\n" .. partial_text
io.write("\n", text)
if RESULTS ~= "-" then
  write_file(RESULTS, text)
  io.stderr:write(("bench: wrote %s in %.0f s\n"):format(RESULTS, now() - t0))
end
