-- Finalizers that close, drive or read a handle while C code is reading
-- it. Decoding a chunk, or building the events of parser:feed(), allocates,
-- and any allocation can run a garbage-collection step and so any __gc.
-- Such a __gc may close the stream or parser being read, or perform its
-- engine (which lets curl write more bytes); C must never read freed or
-- moved memory because of it. With the collector made eager here, these
-- tests crashed under `make sanitize` (heap-use-after-free in the JSON
-- decoder and in feed) before transfers and parsers marked their reads.
local baseten = require("baseten")
local core = require("baseten.core")
local fixture = require("spec.support.fixture")
local util = require("spec.support.util")

local json = baseten.json

-- Calls f when the collector finalizes a fresh object (tables have no __gc
-- on Lua 5.1 and LuaJIT: a proxy userdata there).
local function on_gc(f)
  if newproxy then
    local p = newproxy(true)
    getmetatable(p).__gc = function() f() end
  else
    setmetatable({}, { __gc = function() f() end })
  end
end

-- Runs f with the collector running cycle after cycle, in large steps.
-- The pause is 0 on 5.1 and LuaJIT, 100 on 5.2+, where 0 makes every step
-- a whole cycle (quadratic in the heap); 100 starts each cycle as soon as
-- the last one ends. On 5.4 that is collectgarbage("incremental", 100, 1000).
local function with_eager_gc(f)
  pcall(collectgarbage, "incremental")
  local pause = collectgarbage("setpause", _VERSION == "Lua 5.1" and 0 or 100)
  local mul = collectgarbage("setstepmul", 1000)
  collectgarbage("collect") -- the next cycle's threshold follows the new pause
  local ok, err = pcall(f)
  collectgarbage("setpause", pause)
  collectgarbage("setstepmul", mul)
  if not ok then error(err, 0) end
end

-- A chunk whose decoding allocates a lot, numbered so none is lost or torn.
local function big_chunk(i)
  local extra = {}
  for k = 1, 40 do extra["k" .. k] = { i, k, "v" .. k } end
  return "data: " .. json.encode{ id = "x", object = "chat.completion.chunk", seq = i, extra = extra,
    choices = { { index = 0, delta = { content = "p" .. i .. " " } } } } .. "\n\n"
end

-- Plain comparisons, not luassert: with the collector this eager every
-- assert costs milliseconds. Raises on a lost or torn chunk.
local function check_chunk(chunk, i)
  local ok = chunk.seq == i and chunk.choices[1].delta.content == "p" .. i .. " "
  for k = 1, 40 do
    local v = chunk.extra["k" .. k]
    ok = ok and v[1] == i and v[2] == k and v[3] == "v" .. k
  end
  if not ok then error("chunk " .. i .. " is torn: " .. json.encode(chunk), 2) end
end

-- Fewer under valgrind (scripts/valgrind.sh), where memcheck runs this 20-50x
-- slower, and in the sanitizer's GC pass, whose collector already runs
-- without pause: the sizes still put finalizers inside reads and feeds.
local VALGRIND = os.getenv("BASETEN_VALGRIND") ~= nil or os.getenv("BASETEN_GC_TORTURE") ~= nil
local N = VALGRIND and 20 or 150

local function chunks()
  local list = {}
  for i = 1, N do list[i] = big_chunk(i) end
  list[#list + 1] = "data: [DONE]\n\n"
  return list
end

describe("a finalizer during a read", function()
  local srv
  fixture.server(function(s) srv = s end)

  it("that closes the stream being read ends it as canceled, reading no freed memory", function()
    local client = baseten.new{ api_key = "k", base_url = srv.url, model = "m", max_retries = 0 }
    srv:enqueue({ chunks = chunks() })
    local s = assert(client:stream{ messages = { { role = "user", content = "hi" } } })
    local n, closed = 0, false
    local ok, err
    with_eager_gc(function()
      ok, err = pcall(function()
        for chunk in s do
          n = n + 1
          check_chunk(chunk, n)
          if not closed then on_gc(function() closed = true; s:close() end) end
        end
      end)
    end)
    assert.is_true(closed, "no finalizer ran")
    assert.is_false(ok, "the stream ended cleanly after " .. n .. " chunks")
    assert.equal("canceled", err.kind, tostring(err))
    assert.is_true(n < N)
    client:close()
  end)

  -- Sweeps a count hook over what `run(name, arm)` does, for each name:
  -- first it counts the instructions run does once it calls arm(); then,
  -- for each instruction `at` of those (every `stride`th) and a few more,
  -- runs it again with arm(act) making the hook call act() at `at`. run
  -- clears the hook when its work is done and returns what goes to
  -- check(where, state, ...) (state.fired: act ran). Returns the runs made.
  local function sweep(names, stride, run, check)
    local jit = rawget(_G, "jit")
    if jit then jit.off() end -- count hooks do not fire in compiled code
    local hook, mask, count = debug.gethook() -- the GC-torture pass's own hook
    local tried = 0
    local ok, why = pcall(function()
      for _, name in ipairs(names) do
        local steps = 0
        run(name, function() debug.sethook(function() steps = steps + 1 end, "", 1) end)
        assert(steps > 50, name .. " took " .. steps .. " instructions")
        for at = 1, steps + 10, stride do
          local state = { fired = false }
          local function arm(act)
            debug.sethook(function() debug.sethook(); state.fired = true; act() end, "", at)
          end
          check(name .. ": at instruction " .. at .. " of " .. steps, state, run(name, arm))
          tried = tried + 1
        end
      end
    end)
    debug.sethook()
    if hook then debug.sethook(hook, mask, count) end
    if jit then jit.on() end
    assert(ok, why)
    return tried
  end
  local STRIDE = VALGRIND and 29 or 1 -- valgrind and the GC-torture pass: fewer

  -- A finalizer runs wherever an allocation does, and a hook anywhere: a
  -- close at any instruction of a read must end it as canceled (or not at
  -- all, after its end), never as a raw error (it was "attempt to use a
  -- closed transfer": the sanitizer's GC pass once caught a finalizer
  -- closing the stream between two reads of its transfer). Every
  -- instruction of a short stream's read, in both readers.
  it("that closes the stream at any step of its read ends it as canceled", function()
    local client = baseten.new{ api_key = "k", base_url = srv.url, model = "m", max_retries = 0 }
    local small = {}
    for i = 1, 3 do
      small[i] = 'data: {"choices":[{"index":0,"delta":{"content":"p' .. i .. '"}}]}\n\n'
    end
    small[4] = 'data: {"choices":[{"index":0,"delta":{"role":"x","tool_calls":[]}}]}\n\n' -- the full path
    small[5] = "event: ping\ndata: {}\n\n" -- an event that carries nothing: the loop goes on
    small[6] = "data: [DONE]\n\n"
    local function read_all(s, how)
      if how == "chunks" then
        for _ in s do end -- luacheck: ignore 512
      else
        for _ in s:text() do end -- luacheck: ignore 512
      end
    end
    local tried = sweep({ "chunks", "text" }, STRIDE, function(how, arm)
      srv:enqueue({ chunks = small })
      local s = assert(client:stream{ messages = { { role = "user", content = "hi" } } })
      arm(function() s:close() end)
      local ok, err = pcall(read_all, s, how)
      debug.sethook()
      s:close()
      return ok, err
    end, function(where, state, ok, err)
      if ok then return end
      if type(err) ~= "table" or err.kind ~= "canceled" then error(where .. ": " .. tostring(err), 0) end
      if not state.fired then error(where .. ": canceled without a close: " .. tostring(err), 0) end
    end)
    assert.is_true(tried > 20, tried .. " runs")
    client:close()
  end)

  -- The same for what poll drives: a finalizer that cancels a request (a
  -- game object's __gc, say) can run between any two steps of poll. At
  -- every instruction of a poll that runs a request, a streamed request
  -- and a batch, a cancel ends it as canceled (or finds it ended): poll
  -- never raises, and a batch answers for every request. (Every 2nd
  -- instruction.)
  it("that cancels a request, a stream or a batch at any step of poll ends it as canceled", function()
    local client = baseten.new{ api_key = "k", base_url = srv.url, model = "m", max_retries = 0 }
    local reply = { json = { choices = { { index = 0, finish_reason = "stop",
                                           message = { role = "assistant", content = "x" } } } } }
    local small = {}
    for i = 1, 3 do
      small[i] = 'data: {"choices":[{"index":0,"delta":{"content":"p' .. i .. '"}}]}\n\n'
    end
    small[4] = "data: [DONE]\n\n"
    local function msgs(text) return { { role = "user", content = text } } end
    local kinds = {
      -- twice what a run needs: a request of a canceled run may reach the
      -- server after the next run's reset, and take one
      request = function() srv:enqueue(reply, reply); return client:start({ messages = msgs("a") }) end,
      stream = function()
        srv:enqueue({ chunks = small }, { chunks = small })
        return client:start({ messages = msgs("a"), stream = true }, { on_chunk = function() end })
      end,
      batch = function()
        srv:enqueue(reply, reply, reply, reply, reply, reply)
        return client:start_batch({ { messages = msgs("a") }, { messages = msgs("b") }, { messages = msgs("c") } },
                                  { concurrency = 2 })
      end,
    }
    local tried = sweep({ "request", "stream", "batch" }, STRIDE * 2, function(name, arm)
      srv:reset() -- what a canceled run left queued
      local h = kinds[name]()
      arm(function() h:cancel() end)
      local ok, err = pcall(function()
        for _ = 1, 400 do
          if h:done() then return end
          client:poll(0.05)
        end
        error("not done after 400 polls")
      end)
      debug.sethook()
      return name, h, ok, err
    end, function(where, _, name, h, ok, err)
      if not ok then error(where .. " raised " .. tostring(err), 0) end
      local resps, errs = h:result()
      if name == "batch" then
        for i = 1, 3 do
          local e = errs[i]
          if not (resps[i] or e) then error(where .. ": request " .. i .. " has no answer", 0) end
          if e and e.kind ~= "canceled" then error(where .. ": request " .. i .. " " .. tostring(e), 0) end
        end
      elseif errs and errs.kind ~= "canceled" then
        error(where .. " gave " .. tostring(errs), 0)
      end
    end)
    assert.is_true(tried > 20, tried .. " runs")
    client:close()
  end)

  it("that performs the engine or reads the transfer again leaves the read intact", function()
    srv:enqueue({ chunks = chunks(), write_delay = 0.0002 })
    local e = core.engine()
    local t = e:request{ url = srv.url .. "/chat/completions", body = "{}", stream = true }
    local n, fired, refused, over, odd = 0, 0, 0, false, nil
    local function torment()
      if over then return end
      fired = fired + 1
      e:perform(0)
      local ok, why = pcall(t.pending, t)
      if not ok then
        refused = refused + 1
        if not tostring(why):find("being read", 1, true) then odd = why end
      end
    end
    with_eager_gc(function()
      while true do
        on_gc(torment)
        local kind, chunk = t:next_event()
        if kind == "chunk" then
          n = n + 1
          check_chunk(chunk, n)
        elseif kind == "done" then
          break
        elseif kind ~= nil then
          error("unexpected " .. tostring(kind) .. " " .. tostring(chunk))
        elseif t:state() ~= "running" then
          break
        else
          e:perform(0.05)
        end
      end
    end)
    over = true
    util.finish(e, t)
    assert.is_nil(odd) -- an error in __gc is only a warning on 5.4
    assert.equal(N, n)
    assert.is_true(fired > 0, "no finalizer ran")
    assert.is_true(refused > 0, "no finalizer ran during a read") -- the case under test
    assert.is_true(t:result())
    t:close()
    e:close()
  end)
end)

describe("a finalizer during parser:feed()", function()
  local function stream_text(count)
    local parts = {}
    for i = 1, count do
      parts[i] = ("event: type%d\nid: id%d\ndata: line one %d\ndata: line two %d\n\n"):format(i, i, i, i)
    end
    return table.concat(parts)
  end

  local function check_event(ev, i)
    if ev.event ~= "type" .. i or ev.id ~= "id" .. i or ev.data ~= ("line one %d\nline two %d"):format(i, i) then
      error(("event %d is torn: %s %s %q"):format(i, tostring(ev.event), tostring(ev.id), tostring(ev.data)), 2)
    end
  end

  -- Only feeds run under the eager collector, so that nearly every step,
  -- and so every finalizer, lands inside one; the checks come after.
  local M = VALGRIND and 100 or 300
  local ROUNDS = VALGRIND and 4 or 20

  it("that closes the parser stops the feed, reading no freed memory", function()
    local text, runs = stream_text(M), {}
    with_eager_gc(function()
      for r = 1, ROUNDS do
        local p = core.sse.new()
        local run, delay = { p = p }, r - 1
        -- the close comes after r - 1 more cycles (later in the feed each
        -- round), or at once when p is being read (its pending() refuses)
        local function close()
          if delay > 0 and pcall(p.pending, p) then
            delay = delay - 1
            return on_gc(close)
          end
          run.closed = true
          p:close()
        end
        on_gc(close)
        run.events = p:feed(text)
        runs[r] = run
      end
    end)
    local stopped = 0
    for _, run in ipairs(runs) do
      for i, ev in ipairs(run.events) do check_event(ev, i) end
      if #run.events < M then -- closed in the middle of the feed
        stopped = stopped + 1
        assert.is_true(run.closed)
        assert.truthy(tostring(run.p):find("(closed)", 1, true))
      end
      run.p:close()
    end
    assert.is_true(stopped > 0, "no finalizer ran during a feed")
  end)

  it("that feeds, resets or reads the parser again is refused; the feed stays intact", function()
    local text, runs = stream_text(M), {}
    local refused, odd = 0, nil
    with_eager_gc(function()
      for r = 1, ROUNDS do
        local p = core.sse.new()
        local armed = true
        local function torment()
          if not armed then return end
          for _, call in ipairs{ function() return p:feed("") end, function() return p:reset() end,
                                 function() return p:pending() end } do
            local ok, why = pcall(call)
            if not ok then
              refused = refused + 1
              if not tostring(why):find("being read", 1, true) then odd = why end
            end
          end
          on_gc(torment)
        end
        on_gc(torment)
        runs[r] = { p = p, events = p:feed(text) }
        armed = false
      end
    end)
    assert.is_nil(odd) -- an error in __gc is only a warning on 5.4
    assert.is_true(refused > 0, "no finalizer ran during a feed")
    for _, run in ipairs(runs) do
      assert.equal(M, #run.events)
      for i, ev in ipairs(run.events) do check_event(ev, i) end
      run.p:close()
    end
  end)
end)
