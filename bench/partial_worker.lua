-- bench/partial_worker.lua: one measurement of json.partial for
-- bench/partial.lua, in the interpreter that runs it (Lua 5.4, LuaJIT).
--
--   lua bench/partial_worker.lua FILE PIECE_BYTES   (0: the whole text at once)
--   lua bench/partial_worker.lua decode FILE        (json.decode, for reference)
--   lua bench/partial_worker.lua floor FILE         (the floor of 1-byte feeds: the same
--                                                   loop calling bench/partial_floor.c, a C
--                                                   function that does nothing, per byte)
--   lua bench/partial_worker.lua client URL on|off  (client:json, streamed, with
--                                                   on_partial or without, against
--                                                   the response the runner queued)
--
-- Prints one JSON line: CPU seconds (os.clock) around the feeds alone (the
-- pieces are cut before), the feeds, and whether the result equals
-- json.decode of the text (drop_nulls, as json.partial's default).
--
-- BENCH_PARTIAL_IR, for instruction counts (bench/partial.lua runs the
-- worker under callgrind twice and takes the difference): "run" does the
-- measured part but not the check, "skip" everything but the measured part
-- (reading, cutting the pieces, loading the client) and not the check.
-- Every mode ends with os.exit, without closing the Lua state: freeing the
-- value built is not part of what is measured.
local json = require("baseten.core").json

local mode, a, b = arg[1], arg[2], arg[3]
local IR = os.getenv("BENCH_PARTIAL_IR")
local SKIP = IR == "skip"
local function read(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("*a")
  f:close()
  return s
end

local function same(x, y)
  if type(x) ~= type(y) then return false end
  if type(x) ~= "table" then return x == y end
  for k, v in pairs(x) do
    if not same(v, y[k]) then return false end
  end
  for k in pairs(y) do
    if x[k] == nil then return false end
  end
  return true
end

if mode == "client" then
  local client = require("baseten").new{ api_key = "k", base_url = a, model = "test/bench", max_retries = 0 }
  local calls = 0
  local opts = b == "on" and { on_partial = function() calls = calls + 1 end } or nil
  local req = { messages = { { role = "user", content = "bench" } }, stream = true }
  local t0 = os.clock()
  local v, err = true, nil
  if not SKIP then v, err = client:json(req, opts) end
  local cpu = os.clock() - t0
  if not v then error(tostring(err)) end
  io.write(json.encode({ cpu = cpu, feeds = calls, same = type(v) == "table" }), "\n")
  os.exit(0)
end

if mode == "decode" then
  local text = read(a)
  local t0 = os.clock()
  local v = SKIP or json.decode(text, { drop_nulls = true })
  local cpu = os.clock() - t0
  io.write(json.encode({ cpu = cpu, feeds = 1, same = v ~= nil }), "\n")
  os.exit(0)
end

if mode == "floor" then
  local root = arg[0]:match("^(.*)/bench/partial_worker%.lua$") or "."
  local v = jit and "5.1" or _VERSION:match("%d%.%d")
  package.cpath = root .. "/bench/out/floor/" .. v .. "/?.so;" .. package.cpath
  local floor = require("partial_floor")
  local text = read(a)
  local pieces = {}
  for at = 1, #text do pieces[at] = text:sub(at, at) end
  collectgarbage()
  local p = json.partial()
  local t0 = os.clock()
  for i = 1, SKIP and 0 or #pieces do
    local snap, err = floor(p, pieces[i])
    if snap == nil and err then error(err) end
  end
  local cpu = os.clock() - t0
  io.write(json.encode({ cpu = cpu, feeds = #pieces, same = true }), "\n")
  os.exit(0)
end

local text, size = read(mode), tonumber(a)
local pieces = {}
if size == 0 then
  pieces[1] = text
else
  for at = 1, #text, size do pieces[#pieces + 1] = text:sub(at, at + size - 1) end
end
collectgarbage()
local p = json.partial()
local feed = p.feed
local t0 = os.clock()
for i = 1, SKIP and 0 or #pieces do
  local snap, err = feed(p, pieces[i])
  if snap == nil and err then error(err) end
end
local cpu = os.clock() - t0
local ok = IR ~= nil or same(p:result(), json.decode(text, { drop_nulls = true }))
io.write(json.encode({ cpu = cpu, feeds = #pieces, same = ok }), "\n")
os.exit(0)
