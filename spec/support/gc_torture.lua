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

-- Finalizers that do what user finalizers may: perform every live engine,
-- read every live transfer and SSE parser again (a read that lands inside
-- another read is refused, and that refusal is swallowed here), and close
-- live handles -- only the torture's own, as closing a test's handles
-- would fail the test by design (spec/finalizer_spec.lua closes handles
-- being read). Its parsers are made here, at load: one made in a finalizer
-- while lua_close runs them would never be finalized, and would leak.
-- Handles are tracked weakly through wrapped constructors.
local ok_core, core = pcall(require, "baseten.core")
if ok_core then
  local engines = setmetatable({}, { __mode = "k" })
  local handles = setmetatable({}, { __mode = "k" })
  local new_engine, new_parser = core.engine, core.sse.new
  core.engine = function(...)
    local e = new_engine(...)
    engines[e] = true
    local mt = getmetatable(e)
    if not mt.__torture then
      local request = mt.request
      mt.request = function(self, opts)
        local t = request(self, opts)
        handles[t] = true
        return t
      end
      mt.__torture = true
    end
    return e
  end
  core.sse.new = function(...)
    local p = new_parser(...)
    handles[p] = true
    return p
  end
  local own = {}
  for i = 1, 256 do
    own[i] = new_parser()
    own[i]:feed("event: torture\ndata: half")
  end
  local function on_gc(f)
    if newproxy then
      local p = newproxy(true)
      getmetatable(p).__gc = f
    else
      setmetatable({}, { __gc = f })
    end
  end
  local function torment()
    for e in pairs(engines) do pcall(e.perform, e, 0) end
    for h in pairs(handles) do pcall(h.pending, h) end
    local p = table.remove(own)
    if p then
      pcall(p.feed, p, "\ndata: more")
      p:close()
    end
    on_gc(torment)
  end
  on_gc(torment)
end
