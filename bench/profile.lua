-- bench/profile.lua: a Lua 5.4 (or LuaJIT) stream consumer under
-- valgrind's callgrind, for finding where the per-chunk instructions go
-- (instruction counts repeat exactly, unlike times on a busy machine).
--
--   bash bench/build_dev.sh 5.4 && source scripts/env.sh 5.4 &&
--   lua5.4 bench/profile.lua [chunks=20000] [lua5.4|luajit]
--
-- Debian's lua5.4 is stripped: build bench/prof_lua.c (see there) into
-- bench/out/prof_lua5.4 and it is used instead, so Lua's functions have
-- names. BENCH_PROF_CPATH overrides where baseten/core.so is loaded from
-- (e.g. a build with cJSON's source compiled in, to name its functions).
--
-- BENCH_PROF_NULLS=1 adds to each chunk the null members many servers
-- send (refusal, tool_calls, logprobs, usage).
--
-- BENCH_PROF_MODE=pieces (or text) reads the stream through stream:pieces()
-- (or stream:text()) instead of `for chunk in stream`; BENCH_PROF_MODE=c
-- measures the C floor (bench/out/c_consumer, built by bench/run.sh).
--
-- Loads the dev build (bench/out/dev) and lua/; writes
-- bench/out/callgrind.out and prints callgrind_annotate's summary, and
-- the instructions per chunk.
local server = require("spec.support.server")

local n = tonumber(arg[1] or "20000")
local interp = arg[2] or "lua5.4"
local v = interp == "luajit" and "5.1" or "5.4"
if interp == "lua5.4" and io.open("bench/out/prof_lua5.4") then interp = "bench/out/prof_lua5.4" end
local cpath = os.getenv("BENCH_PROF_CPATH") or ("bench/out/dev/" .. v)
local out = "bench/out/callgrind.out"

local HEAD = 'data: {"id":"chatcmpl-B9MBs8CjcvOU2jLn","object":"chat.completion.chunk",'
  .. '"created":1741569952,"model":"gpt-4o-mini","choices":[{"index":0,"delta":'
local unit = {}
for i, tok in ipairs{ " The", " quick", " brown", " fox", " jumps", " over", " the", " lazy",
                      " dog", ",", " and", " then", " it", " runs", " away", "." } do
  unit[i] = HEAD .. '{"content":"' .. tok .. '"},"finish_reason":null}]}\n\n'
  if os.getenv("BENCH_PROF_NULLS") then -- the nulls many servers add besides finish_reason
    unit[i] = HEAD .. '{"content":"' .. tok .. '","refusal":null,"tool_calls":null},"logprobs":null,'
      .. '"finish_reason":null}],"usage":null}\n\n'
  end
end

local env = ("env -u LUA_PATH_5_4 -u LUA_CPATH_5_4 LUA_PATH='lua/?.lua;lua/?/init.lua;;' "
  .. "LUA_CPATH='%s/?.so;;' "):format(cpath)

-- Total instructions of one consumer of `count` chunks under callgrind.
local function run(srv, count, file)
  srv:reset()
  srv:enqueue({ chunks = { { ["repeat"] = table.concat(unit), count = count // 16 }, "data: [DONE]\n\n" } })
  local mode = os.getenv("BENCH_PROF_MODE") or "stream"
  local consumer = mode == "c" and "bench/out/c_consumer " or (interp .. " bench/consumer.lua " .. mode .. " ")
  local cmd = env .. "valgrind --tool=callgrind --callgrind-out-file=" .. file
    .. " " .. consumer .. srv.url .. " >/dev/null 2>bench/out/callgrind.log"
  local ok = os.execute(cmd)
  assert(ok == true or ok == 0, "valgrind run failed: see bench/out/callgrind.log")
  local p = io.popen("callgrind_annotate " .. file .. " 2>/dev/null")
  local text = p:read("*a")
  p:close()
  return tonumber((text:match("([%d,]+)%s*%(100.0%%%)%s*PROGRAM TOTALS") or "0"):gsub(",", ""), 10)
end

-- The same consumer of 16 chunks measures the fixed cost (start-up, module
-- loading, connecting), so what is left is the cost per chunk.
local srv = server.start()
local ok, err = pcall(function()
  local base = run(srv, 16, out .. ".base")
  local total = run(srv, n, out)
  local p = io.popen("callgrind_annotate --inclusive=no " .. out .. " 2>/dev/null | head -45")
  io.write(p:read("*a"))
  p:close()
  print(("%d chunks: %.0f instructions per chunk (%.0f M fixed cost taken out)"):format(
    n, (total - base) / (n - 16), base / 1e6))
end)
srv:stop()
if not ok then error(err, 0) end
