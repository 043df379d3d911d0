-- bench/embed.lua: the embeddings benchmark (issue 27), `BENCH_ONLY=embed
-- make bench` (and the last part of a whole `make bench`). Writes its
-- section of bench/RESULTS.md (between the embed markers) and prints it.
--
--   1. client:embed against @basetenlabs/performance-client (npm, pinned in
--      bench/package.json), one run, the same nginx, the same BENCH_EMBED_N
--      (10000) texts of ~200 characters, batch size BENCH_EMBED_BATCH (16),
--      concurrency BENCH_EMBED_C (16); nginx answers every request with a
--      canned response of BATCH embeddings of 1024 dimensions (JSON floats,
--      or base64 for client:embed's default). Embeddings/s, CPU s per 1000
--      embeddings, peak RSS; the best (CPU, wall) and the median (RSS) of
--      BENCH_EMBED_REPS (3) runs.
--   2. Hedging against the Python test server in slow-tail mode: 2 % of the
--      requests take 50x the median request time; p50, p99 and total time
--      of one call without hedge_delay and with it, and the hedges sent.
--   3. vector.top_k over 10,000 and 100,000 vectors of 1024 dimensions,
--      ms per query, against a plain C loop over the same kind of floats.
--   4. The memory of 10,000 vectors of 1024 dimensions, packed and as tables.
local server = require("spec.support.server")
local core = require("baseten.core")
local vector = core.vector
local now = core.now
local common = require("bench.common")

local ROOT = os.getenv("BENCH_ROOT") or "."
local OUT = ROOT .. "/bench/out"
local RESULTS = os.getenv("BENCH_OUT") or (ROOT .. "/bench/RESULTS.md")
local N = tonumber(os.getenv("BENCH_EMBED_N") or "10000")
local BATCH = tonumber(os.getenv("BENCH_EMBED_BATCH") or "16")
local C = tonumber(os.getenv("BENCH_EMBED_C") or "16")
local REPS = tonumber(os.getenv("BENCH_EMBED_REPS") or "3")
local DIMS = 1024
local HEDGE_N = tonumber(os.getenv("BENCH_HEDGE_N") or "4000")

local q, sh, first_line, run_json, best = common.q, common.sh, common.first_line, common.run_json, common.best
local write_file = common.write_file
local function lua_env(v) return common.lua_env(ROOT, v) end
local LUA54 = lua_env("5.4") .. "lua5.4 " .. ROOT .. "/bench/embed_consumer.lua"
local LUAJIT = lua_env("5.1") .. "luajit " .. ROOT .. "/bench/embed_consumer.lua"

local function median(list)
  local t = {}
  for i, v in ipairs(list) do t[i] = v end
  table.sort(t)
  return t[(#t + 1) // 2]
end

-------------------------------------------------------------- canned answers

-- BATCH embeddings of DIMS floats: as JSON numbers (shortest float32 text,
-- as servers print them) and as base64 of little-endian float32.
local function canned()
  local seed = 99
  local data_f, data_b = {}, {}
  for i = 1, BATCH do
    local t, s = {}, {}
    for j = 1, DIMS do
      seed = (seed * 1103515245 + 12345) % 2147483648
      t[j] = (seed / 2147483648 - 0.5) / 16
    end
    local v = vector.from(t)
    for j = 1, DIMS do s[j] = ("%.8g"):format(v[j]) end
    data_f[i] = ('{"object":"embedding","index":%d,"embedding":[%s]}'):format(i - 1, table.concat(s, ","))
    data_b[i] = ('{"object":"embedding","index":%d,"embedding":"%s"}'):format(i - 1,
      server.b64encode(vector.tobytes(v)))
  end
  local tail = '],"model":"test/bench","usage":{"prompt_tokens":%d,"total_tokens":%d}}'
  local tokens = BATCH * 40
  return '{"object":"list","data":[' .. table.concat(data_f, ",") .. tail:format(tokens, tokens),
    '{"object":"list","data":[' .. table.concat(data_b, ",") .. tail:format(tokens, tokens)
end

-- nginx (one worker) answering POST /float/v1/embeddings and
-- /b64/v1/embeddings with the canned files; returns its root URL and a stop.
local function start_nginx()
  local dir = OUT .. "/nginx-embed"
  os.execute("mkdir -p " .. q(dir))
  local f_body, b_body = canned()
  write_file(dir .. "/float.json", f_body)
  write_file(dir .. "/b64.json", b_body)
  local url, stop, h2_url = common.start_nginx(dir, {
    http = { "  client_max_body_size 64m;", "  client_body_buffer_size 1m;" },
    server = { "    root " .. dir .. ";",
      -- a POST to a file is a 405: its error page is the file (as a GET)
      "    location = /float/v1/embeddings { error_page 405 =200 /float.json; return 405; }",
      "    location = /b64/v1/embeddings { error_page 405 =200 /b64.json; return 405; }",
      "    location ~ \\.json$ { internal; default_type application/json; }" },
    probe = "/b64/v1/embeddings", expect = b_body,
  })
  return url, h2_url, stop
end

------------------------------------------------------------------ 1. embed

local CONSUMERS = {
  { key = "node", name = "performance-client (npm), float" },
  { key = "lua54_f", name = "client:embed, Lua 5.4, float", lua = LUA54, format = "float" },
  { key = "lua54_b", name = "client:embed, Lua 5.4, base64", lua = LUA54, format = "base64" },
  { key = "luajit_f", name = "client:embed, LuaJIT, float", lua = LUAJIT, format = "float" },
  { key = "luajit_b", name = "client:embed, LuaJIT, base64", lua = LUAJIT, format = "base64" },
}
local results = {}

local function embed_once(c, url, h2_url)
  local cmd
  if c.key == "node" then
    cmd = ("node %s/bench/node_embed.mjs %s %d %d %d"):format(ROOT, q(h2_url .. "/float"), N, BATCH, C)
  else
    local base = url .. (c.format == "float" and "/float" or "/b64") .. "/v1"
    cmd = ("%s embed %s %d %d %d %s"):format(c.lua, q(base), N, BATCH, C, c.format)
  end
  local r = run_json(cmd)
  if r.count ~= N or r.dims ~= DIMS then
    error(("bench: %s: %s vectors of %s dimensions, want %d of %d"):format(c.name, r.count, r.dims, N, DIMS), 0)
  end
  local slot = results[c.key] or { cpu = {}, wall = {}, rss = {} }
  results[c.key] = slot
  slot.cpu[#slot.cpu + 1], slot.wall[#slot.wall + 1], slot.rss[#slot.rss + 1] = r.cpu, r.wall, r.rss_kb
  io.stderr:write(("  %-34s cpu %6.3f s  wall %6.3f s  %7.0f emb/s  rss %6.1f MB\n")
    :format(c.name, r.cpu, r.wall, N / r.wall, r.rss_kb / 1024))
end

----------------------------------------------------------------- 2. hedging

local hedge = {}

local function hedge_runs()
  local srv = server.start()
  local ok, e = pcall(function()
    local function run(delay)
      return run_json(("%s hedge %s %d %d %d %s"):format(LUA54, q(srv.url), HEDGE_N, BATCH, C, delay or ""))
    end
    local base = run()
    hedge.base_p50 = base.p50
    hedge.slow = 50 * base.p50
    -- past the normal tail (the slowest 1 % of a run without slow requests),
    -- far below the slow ones: the hedges go where they help
    hedge.delay = math.max(2 * base.p99, 5 * base.p50)
    srv:config{ embed = { slow = { share = 0.02, delay = hedge.slow } } }
    hedge.off = run()
    srv:config{ embed = { slow = { share = 0.02, delay = hedge.slow } } } -- the same requests slow again
    hedge.on = run(hedge.delay)
    for _, k in ipairs({ "off", "on" }) do
      local r = hedge[k]
      io.stderr:write(("  hedge %-3s wall %6.3f s  p50 %.4f s  p99 %.4f s  max %.4f s  hedges %d\n")
        :format(k, r.wall, r.p50, r.p99, r.max, r.hedges))
    end
  end)
  srv:stop()
  if not ok then error(e, 0) end
end

------------------------------------------------------------ 3. top_k, 4. memory

local topk = {}
local memory = {}

local function topk_runs()
  for _, n in ipairs({ 10000, 100000 }) do
    local queries = n == 10000 and 50 or 10
    topk[n] = {
      c = run_json(("%s/c_topk %d %d %d 10"):format(OUT, n, DIMS, queries)).ms_per_query,
      lua54 = run_json(("%s topk %d %d %d 10"):format(LUA54, n, DIMS, queries)).ms_per_query,
      luajit = run_json(("%s topk %d %d %d 10"):format(LUAJIT, n, DIMS, queries)).ms_per_query,
    }
    io.stderr:write(("  top_k %6d x %d: C %.2f ms, 5.4 %.2f ms, LuaJIT %.2f ms\n")
      :format(n, DIMS, topk[n].c, topk[n].lua54, topk[n].luajit))
  end
  memory.lua54 = run_json(("%s memory 10000 %d"):format(LUA54, DIMS))
  memory.luajit = run_json(("%s memory 10000 %d"):format(LUAJIT, DIMS))
end

------------------------------------------------------------------- report

local function x(a, b) return ("%.2fx"):format(a / b) end
local function mb(kb) return ("%.1f MB"):format(kb / 1024) end
local function yes(cond) return cond and "yes" or "**no**" end

local function report()
  local L = {}
  local function add(s) L[#L + 1] = s end
  local function eps(k) return N / best(results[k].wall) end
  local function cpu1k(k) return best(results[k].cpu) / N * 1000 end
  local function rss(k) return median(results[k].rss) end
  local pc = "performance-client " .. sh("node -p \"require('" .. ROOT
    .. "/bench/node_modules/@basetenlabs/performance-client/package.json').version\" 2>/dev/null"):gsub("%s+$", "")
  add("<!-- embed: begin -->")
  add(("## Embeddings: client:embed against @basetenlabs/%s"):format(pc))
  add("")
  add(("`BENCH_ONLY=embed make bench` (bench/embed.lua). %d texts of about 200 characters, %d per request, "
    .. "%d requests in flight, against nginx (one worker, loopback) answering every request with a canned "
    .. "response of %d embeddings of %d dimensions (JSON floats printed as servers print float32, %d KB; or "
    .. "base64, %d KB). The performance client asks for floats (it returns no vectors for base64); "
    .. "client:embed is shown with both, base64 being its default. The performance client speaks HTTP/2 (h2c, "
    .. "prior knowledge, as it does to any http:// URL) to a second port of the same nginx; client:embed HTTP/1.1 "
    .. "over its pool of keep-alive connections. CPU is user+sys of the whole process "
    .. "around the call (every thread), the best of %d runs; embeddings/s from the best wall time; peak RSS "
    .. "(VmHWM, the vectors still held) the median."):format(N, BATCH, C, BATCH, DIMS,
      #canned() // 1024, #select(2, canned()) // 1024, REPS))
  add("")
  add("| goal | Lua 5.4 (base64) | LuaJIT (base64) |")
  add("|---|---|---|")
  add(("| embeddings/s at least the performance client's | %s (%s) | %s (%s) |"):format(
    x(eps("lua54_b"), eps("node")), yes(eps("lua54_b") >= eps("node")),
    x(eps("luajit_b"), eps("node")), yes(eps("luajit_b") >= eps("node"))))
  add(("| CPU per embedding below the performance client's | %s (%s) | %s (%s) |"):format(
    x(cpu1k("lua54_b"), cpu1k("node")), yes(cpu1k("lua54_b") < cpu1k("node")),
    x(cpu1k("luajit_b"), cpu1k("node")), yes(cpu1k("luajit_b") < cpu1k("node"))))
  add(("| peak RSS below the performance client's | %s (%s) | %s (%s) |"):format(
    x(rss("lua54_b"), rss("node")), yes(rss("lua54_b") < rss("node")),
    x(rss("luajit_b"), rss("node")), yes(rss("luajit_b") < rss("node"))))
  add("")
  add("| client | embeddings/s | CPU s per 1000 embeddings | peak RSS | embeddings/s ÷ performance client | CPU ÷ performance client |")
  add("|---|---|---|---|---|---|")
  for _, c in ipairs(CONSUMERS) do
    add(("| %s | %.0f | %.4f | %s | %s | %s |"):format(c.name, eps(c.key), cpu1k(c.key), mb(rss(c.key)),
      x(eps(c.key), eps("node")), x(cpu1k(c.key), cpu1k("node"))))
  end
  add("")
  add(("### Hedging, slow-tail mode: 2 %% of requests 50x slower"):format())
  add("")
  add(("client:embed on Lua 5.4 of %d texts (%d requests of %d, %d in flight, 64 dimensions) against the Python "
    .. "test server, whose slow-tail mode (`embed.slow`, spec/support/embed_mock.py) delays every 50th request by "
    .. "%.3f s, 50x the median request time of a run without it (%.4f s). Request times from `on_batch` (first send "
    .. "to answer, the hedge included). hedge_delay = %.3f s: twice the p99 of that run (at least 5x its median), "
    .. "so hedges go to the slow requests; the budget is 5 %% of the requests.")
    :format(HEDGE_N, HEDGE_N // BATCH, BATCH, C, hedge.slow, hedge.base_p50, hedge.delay))
  add("")
  add("| run | total s | p50 s | p99 s | slowest request s | hedges sent |")
  add("|---|---|---|---|---|---|")
  for _, k in ipairs({ "off", "on" }) do
    local r = hedge[k]
    add(("| %s | %.3f | %.4f | %.4f | %.4f | %d |"):format(k == "off" and "no hedging" or
      ("hedge_delay %.3f s"):format(hedge.delay), r.wall, r.p50, r.p99, r.max, r.hedges))
  end
  add("")
  add(("p99 with hedging ÷ without: %s; total time: %s."):format(x(hedge.on.p99, hedge.off.p99),
    x(hedge.on.wall, hedge.off.wall)))
  add("")
  add("### vector.top_k against a plain C loop")
  add("")
  add(("`vector.top_k(q, vectors, 10)`: cosine against every vector, the best 10; CPU ms per query (the mean "
    .. "of 50 queries over 10,000 vectors, 10 over 100,000). The C floor (bench/c_topk.c, -O2) runs the same "
    .. "loop over one contiguous float array with no Lua at all. Goal: within 2x."))
  add("")
  add("| vectors × dimensions | C loop ms | Lua 5.4 ms | LuaJIT ms | 5.4 ÷ C | LuaJIT ÷ C |")
  add("|---|---|---|---|---|---|")
  for _, n in ipairs({ 10000, 100000 }) do
    local t = topk[n]
    add(("| %d × %d | %.2f | %.2f | %.2f | %s (%s) | %s (%s) |"):format(n, DIMS, t.c, t.lua54, t.luajit,
      x(t.lua54, t.c), yes(t.lua54 <= 2 * t.c), x(t.luajit, t.c), yes(t.luajit <= 2 * t.c)))
  end
  add("")
  add("### Memory of 10,000 vectors of 1024 dimensions")
  add("")
  add("`collectgarbage(\"count\")` before and after building them: packed (`baseten.vector`, float32) against "
    .. "Lua tables of numbers.")
  add("")
  add("| Lua | packed | tables | tables ÷ packed |")
  add("|---|---|---|---|")
  for _, k in ipairs({ "lua54", "luajit" }) do
    local m = memory[k]
    add(("| %s | %s | %s | %s |"):format(k == "lua54" and "5.4" or "LuaJIT", mb(m.packed_kb), mb(m.tables_kb),
      x(m.tables_kb, m.packed_kb)))
  end
  add("")
  add(("Machine: %s, %s cores; %s; %s; %s; node %s; %s; load average at the end: %s; %s UTC."):format(
    first_line("grep -m1 'model name' /proc/cpuinfo"):gsub("^model name%s*:%s*", ""), first_line("nproc"),
    first_line("lua5.4 -v"):match("Lua %S+"), first_line("luajit -v"):match("LuaJIT %S+"),
    first_line("nginx -v"):gsub("^nginx version: ", ""), first_line("node --version"),
    first_line("python3 --version"), first_line("cut -d' ' -f1-3 /proc/loadavg"), os.date("!%Y-%m-%d %H:%M")))
  add("<!-- embed: end -->")
  return table.concat(L, "\n") .. "\n"
end

--------------------------------------------------------------------- main

local t0 = now()
local url, h2_url, stop = start_nginx()
io.stderr:write(("bench: embed: nginx at %s; %d texts, batch %d, %d in flight, %d reps\n"):format(url, N, BATCH, C,
  REPS))
local ok, err = pcall(function()
  for _ = 1, REPS do
    for _, c in ipairs(CONSUMERS) do embed_once(c, url, h2_url) end
  end
end)
stop()
if ok then ok, err = pcall(hedge_runs) end
if ok then ok, err = pcall(topk_runs) end
if not ok then
  io.stderr:write(tostring(err), "\n")
  os.exit(1)
end
local text = report()
io.write("\n", text)
if RESULTS ~= "-" then
  local old = common.read_file(RESULTS)
  local a = old:find("<!-- embed: begin -->", 1, true)
  local b = a and select(2, old:find("<!-- embed: end -->", a, true))
  if b and old:sub(b + 1, b + 1) == "\n" then b = b + 1 end
  if a and b then
    old = old:sub(1, a - 1) .. text .. old:sub(b + 1)
  else
    old = old .. (old:find("\n\n$") and "" or "\n") .. text
  end
  write_file(RESULTS, old)
  io.stderr:write(("bench: wrote the embeddings section of %s in %.0f s\n"):format(RESULTS, now() - t0))
end
