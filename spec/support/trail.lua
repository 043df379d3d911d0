-- spec/support/trail.lua: a busted --helper that writes a line to the file
-- named by BASETEN_TEST_TRAIL as each test starts and ends, flushed at once,
-- so that a busted run killed for hanging (scripts/test.sh bounds each one)
-- says which test it was in rather than only how many dots it printed.
--
--   BASETEN_TEST_TRAIL=/tmp/trail busted --helper=spec/support/trail.lua
--
-- Without the variable it does nothing.
local file = os.getenv("BASETEN_TEST_TRAIL")
if not file or file == "" then return end
local out = assert(io.open(file, "w"))
out:setvbuf("no")

local busted = require("busted")
local clock = os.clock

local function where(element)
  local t = element.trace
  if t and t.short_src then return t.short_src .. ":" .. tostring(t.currentline) end
  return "?"
end

local function name(element)
  -- the describe blocks' names, outermost first, then the test's
  local parts, e = {}, element
  while e and (e.name or e.descriptor) and e.descriptor ~= "file" do
    table.insert(parts, 1, e.name or e.descriptor)
    e = busted.parent(e)
  end
  return table.concat(parts, " ")
end

busted.subscribe({ "test", "start" }, function(element)
  out:write(string.format("start %s %s (cpu %.1f s)\n", where(element), name(element), clock()))
  return nil, true
end)
busted.subscribe({ "test", "end" }, function(element, _, status)
  out:write(string.format("end   %s %s\n", where(element), tostring(status)))
  return nil, true
end)
