-- spec/support/gc_torture.lua: a busted --helper that keeps the garbage
-- collector running all the time, so that a C function holding a pointer
-- into a Lua value it did not anchor, a finalizer that runs while a
-- transfer is still on its engine, or a __gc that frees twice shows up
-- (under the ASan build: `make sanitize` runs the suite once this way).
--
--   busted --helper=spec/support/gc_torture.lua
--
-- Pause 0: a new cycle starts as soon as one ends. Step multiplier 1000:
-- every allocation pays for a large step. A count hook on the main thread
-- adds a step every 1000 VM instructions, so the collector also advances
-- where the code allocates little (the poll loops of streams, tool handlers
-- and non-blocking requests). GC_TORTURE_FULL=N also runs a full collection
-- (which runs finalizers) every N hook calls.
collectgarbage("collect")
pcall(collectgarbage, "incremental") -- 5.4 may start generational; 5.1 has no modes
collectgarbage("setpause", 0)
collectgarbage("setstepmul", 1000)

local step = collectgarbage
local full_every = tonumber(os.getenv("GC_TORTURE_FULL") or "")
local n = 0
debug.sethook(function()
  n = n + 1
  if full_every and n % full_every == 0 then
    step("collect")
  else
    step("step", 0)
  end
end, "", 1000)

if os.getenv("GC_TORTURE_VERBOSE") then
  io.stderr:write("gc_torture: pause 0, stepmul 1000, a step every 1000 instructions\n")
end
