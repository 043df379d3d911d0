-- bench/partial_worker.lua: one measurement of json.partial for
-- bench/partial.lua, in the interpreter that runs it (Lua 5.4, LuaJIT).
--
--   lua bench/partial_worker.lua FILE PIECE_BYTES   (0: the whole text at once)
--   lua bench/partial_worker.lua decode FILE        (json.decode, for reference)
--   lua bench/partial_worker.lua floor FILE         (the floor of 1-byte feeds: the same
--                                                   loop calling bench/partial_floor.c's
--                                                   feed, which does nothing, per byte)
--   lua bench/partial_worker.lua client URL on|off  (client:json, streamed, with
--                                                   on_partial or without, against
--                                                   the response the runner queued)
--
-- Prints one JSON line: CPU seconds (os.clock) around the feeds alone (the
-- pieces are cut before), the feeds, and whether the result equals
-- json.decode of the text (drop_nulls, as json.partial's default).
--
-- The measured part is between two calls of partial_floor.c's toggle: run
-- under callgrind --collect-atstart=no (BENCH_PARTIAL_IR=1: the check is
-- left out), the instructions are the measured part's alone. Every mode
-- ends with os.exit, without closing the Lua state: freeing the value
-- built is not part of what is measured.
local json = require("baseten.core").json

local mode, a, b = arg[1], arg[2], arg[3]
local IR = os.getenv("BENCH_PARTIAL_IR") == "1"
local helper
do
  local root = arg[0]:match("^(.*)/bench/partial_worker%.lua$") or "."
  local v = jit and "5.1" or _VERSION:match("%d%.%d")
  package.cpath = root .. "/bench/out/floor/" .. v .. "/?.so;" .. package.cpath
  helper = require("partial_floor")
end
local toggle = helper.toggle

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
  toggle()
  local t0 = os.clock()
  local v, err = client:json(req, opts)
  local cpu = os.clock() - t0
  toggle()
  if not v then error(tostring(err)) end
  io.write(json.encode({ cpu = cpu, feeds = calls, same = type(v) == "table" }), "\n")
  os.exit(0)
end

if mode == "decode" then
  local text = read(a)
  toggle()
  local t0 = os.clock()
  local v = json.decode(text, { drop_nulls = true })
  local cpu = os.clock() - t0
  toggle()
  io.write(json.encode({ cpu = cpu, feeds = 1, same = v ~= nil }), "\n")
  os.exit(0)
end

local floor -- "floor": the same loop below, over 1-byte pieces, calling the do-nothing feed
if mode == "floor" then mode, a, floor = a, "1", helper.feed end

local text, size = read(mode), tonumber(a)
local pieces = {}
if size == 0 then
  pieces[1] = text
else
  for at = 1, #text, size do pieces[#pieces + 1] = text:sub(at, at + size - 1) end
end
collectgarbage()
local p = json.partial()
local feed = floor or p.feed
toggle()
local t0 = os.clock()
for i = 1, #pieces do
  local snap, err = feed(p, pieces[i])
  if snap == nil and err then error(err) end
end
local cpu = os.clock() - t0
toggle()
local ok = floor ~= nil or IR or same(p:result(), json.decode(text, { drop_nulls = true }))
io.write(json.encode({ cpu = cpu, feeds = #pieces, same = ok }), "\n")
os.exit(0)
