-- bench/consumer.lua: the baseten side of the benchmark (Lua 5.4 or LuaJIT;
-- bench/run.lua starts it with LUA_PATH/LUA_CPATH set by scripts/env.sh).
--
--   consumer.lua stream BASE_URL       one streamed chat: for chunk in stream
--   consumer.lua pieces BASE_URL       the same stream: for piece in stream:pieces()
--   consumer.lua text BASE_URL         the same stream: for piece in stream:text()
--   consumer.lua chat BASE_URL N       N blocking client:chat calls
--   consumer.lua batch BASE_URL N C    one client:batch of N chats, C at a
--                                      time (keep = false: results counted
--                                      in on_result); adds rss_kb (VmRSS at
--                                      the end) and rss10k_kb (after 10,000)
--
-- Prints one JSON line: {"chunks"|"requests":N, "chars":N, "cpu":s,
-- "wall":s, "rss_kb":N}. cpu is os.clock() (process user+sys) around the
-- measured part only, so interpreter start-up and module loading are out,
-- as they are for the node and C consumers.
local baseten = require("baseten")
local core = require("baseten.core")

local mode, url, n = arg[1], arg[2], tonumber(arg[3] or "0")
local WARMUP = 50 -- blocking chats before the clock starts (as node does)

local function status_kb(field)
  local f = io.open("/proc/self/status", "r")
  if not f then return -1 end
  local kb = f:read("*a"):match(field .. ":%s*(%d+)")
  f:close()
  return tonumber(kb) or -1
end

local function peak_rss_kb() return status_kb("VmHWM") end

local client = baseten.new{ api_key = "bench", base_url = url, model = "test/bench", max_retries = 0 }
local messages = { { role = "user", content = "go" } }
local out

if mode == "stream" then
  local cpu0, wall0 = os.clock(), core.now()
  local chunks, chars = 0, 0
  local stream = assert(client:stream{ messages = messages })
  for chunk in stream do
    chunks = chunks + 1
    local c = chunk.choices[1]
    local s = c and c.delta.content
    if type(s) == "string" then chars = chars + #s end
  end
  out = { chunks = chunks, chars = chars, cpu = os.clock() - cpu0, wall = core.now() - wall0 }
elseif mode == "pieces" or mode == "text" then
  local cpu0, wall0 = os.clock(), core.now()
  local pieces, chars = 0, 0
  local stream = assert(client:stream{ messages = messages })
  for piece in stream[mode](stream) do
    pieces = pieces + 1
    chars = chars + #piece
  end
  out = { chunks = pieces, chars = chars, cpu = os.clock() - cpu0, wall = core.now() - wall0 }
elseif mode == "chat" then
  local chars = 0
  for _ = 1, WARMUP do assert(client:chat{ messages = messages }) end
  local cpu0, wall0 = os.clock(), core.now()
  for _ = 1, n do
    local resp = assert(client:chat{ messages = messages })
    chars = chars + #resp.choices[1].message.content
  end
  out = { requests = n, chars = chars, cpu = os.clock() - cpu0, wall = core.now() - wall0 }
elseif mode == "batch" then
  local c = tonumber(arg[4] or "64")
  local reqs = {}
  local one = { messages = messages }
  for i = 1, n do reqs[i] = one end
  local done, failed, tokens, rss10k = 0, 0, 0, -1
  collectgarbage()
  local cpu0, wall0 = os.clock(), core.now()
  client:batch(reqs, { concurrency = c, keep = false, on_result = function(_, resp)
    done = done + 1
    if resp then
      tokens = tokens + resp.usage.total_tokens
    else
      failed = failed + 1
    end
    if done == 10000 then rss10k = status_kb("VmRSS") end
  end })
  out = { requests = done, failed = failed, tokens = tokens, cpu = os.clock() - cpu0, wall = core.now() - wall0,
          rss10k_kb = rss10k }
  out.rss_kb = status_kb("VmRSS")
  print(baseten.json.encode(out))
  os.exit(failed == 0 and 0 or 1)
else
  io.stderr:write("usage: consumer.lua stream|pieces|text|chat BASE_URL [N] | batch BASE_URL N C\n")
  os.exit(2)
end
out.rss_kb = peak_rss_kb()
print(baseten.json.encode(out))
