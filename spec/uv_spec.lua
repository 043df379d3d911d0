-- baseten.uv: the luv timer driver, against the local test server, with a
-- stand-in for luv whose timer the test fires by hand (the real loops run
-- in spec/hosts_spec.lua, inside Neovim). Runs on every Lua.
-- luacheck: std max+busted
local fixture = require("spec.support.fixture")
local buv = require("baseten.uv")
local core = require("baseten.core")

-- A fake luv: timers record start/stop/close; fire() runs a callback.
local function fake_uv()
  local uv = { timers = {} }
  function uv.new_timer()
    local t = { running = false, closed = false }
    function t.start(self, timeout, rep, cb)
      self.running, self.timeout, self.rep, self.cb = true, timeout, rep, cb
    end
    function t.stop(self) self.running = false end
    function t.close(self) self.closed = true end
    function t.is_closing(self) return self.closed end
    uv.timers[#uv.timers + 1] = t
    return t
  end
  return uv
end

-- Fires the running timer until `cond()` or 10 s; small sleeps between.
local function run_until(uv, cond)
  local deadline = core.now() + 10
  while not cond() and core.now() < deadline do
    for _, t in ipairs(uv.timers) do
      if t.running then t.cb() end
    end
    core.sleep(0.005)
  end
end

describe("baseten.uv", function()
  local client
  fixture.client({ api_key = "k", model = "openai/gpt-oss-120b" }, function(_, c) client = c end)

  it("runs a timer only while requests are pending, and restarts it with the next one", function()
    local uv = fake_uv()
    local d = buv.new(client, { uv = uv, interval = 7, schedule = false })
    assert.is_false(d:active())
    local text, done = "", false
    d:start({ messages = { { role = "user", content = "hi" } }, stream = true }, {
      on_chunk = function(c)
        local p = c.choices[1] and c.choices[1].delta.content
        if p then text = text .. p end
      end,
      on_done = function(_, err) done = err or true end,
    })
    assert.is_true(d:active())
    assert.equal(1, #uv.timers)
    assert.equal(7, uv.timers[1].timeout)
    assert.equal(7, uv.timers[1].rep)
    run_until(uv, function() return not d:active() end)
    assert.is_true(done)
    assert.truthy(#text > 0)
    assert.is_true(d.ticks > 0)
    -- stopped and closed by itself once nothing was pending
    assert.is_false(uv.timers[1].running)
    assert.is_true(uv.timers[1].closed)
    local ticks = d.ticks
    -- nothing pending: a tick that was queued before the stop does nothing
    d:tick()
    assert.equal(ticks, d.ticks)
    -- the next request starts a new timer
    local done2
    d:start({ messages = { { role = "user", content = "again" } } }, { on_done = function(r) done2 = r end })
    assert.equal(2, #uv.timers)
    assert.is_true(uv.timers[2].running)
    run_until(uv, function() return not d:active() end)
    assert.truthy(done2 and done2.choices)
  end)

  it("kick() after a client:start of your own; stop() leaves requests pending", function()
    local uv = fake_uv()
    local d = buv.new(client, { uv = uv, schedule = false })
    local done
    client:start({ messages = { { role = "user", content = "x" } } }, { on_done = function(r) done = r end })
    assert.is_false(d:active())
    d:kick()
    d:kick() -- idempotent
    assert.equal(1, #uv.timers)
    d:stop()
    assert.is_false(d:active())
    assert.equal(1, client:pending())
    d:kick()
    run_until(uv, function() return done ~= nil end)
    assert.truthy(done.choices)
  end)

  it("with a schedule function, at most one tick waits on the main loop", function()
    local uv = fake_uv()
    local queue = {}
    local d = buv.new(client, { uv = uv, schedule = function(fn) queue[#queue + 1] = fn end })
    d:start({ messages = { { role = "user", content = "x" } } }, {})
    uv.timers[1].cb()
    uv.timers[1].cb()
    uv.timers[1].cb()
    assert.equal(1, #queue) -- a busy main loop skips ticks instead of piling them up
    assert.equal(0, d.ticks)
    table.remove(queue, 1)()
    assert.equal(1, d.ticks)
    uv.timers[1].cb()
    assert.equal(2, #queue + d.ticks)
  end)

  it("when poll raises (a handler of yours failed), on_error gets it and polling goes on", function()
    local uv = fake_uv()
    local errs = {}
    -- a client whose first poll raises, as client:poll does when a handler
    -- error escapes it
    local polls, left = 0, 2
    local fake = {
      poll = function()
        polls = polls + 1
        if polls == 1 then error("handler broke") end
        left = left - 1
        return left
      end,
      pending = function() return left end,
      start = function() return {} end,
    }
    local d = buv.new(fake, { uv = uv, schedule = false, on_error = function(e) errs[#errs + 1] = tostring(e) end })
    d:start({}, {})
    uv.timers[1].cb()
    assert.equal(1, #errs)
    assert.truthy(errs[1]:find("handler broke", 1, true))
    assert.is_true(d:active()) -- still pending: the timer keeps going
    uv.timers[1].cb()
    assert.is_true(d:active())
    uv.timers[1].cb()
    assert.is_false(d:active()) -- nothing left
    assert.equal(3, d.ticks)
  end)

  it("on a real luv loop (the luv rock): uv.run returns once the reply is done", function()
    local ok, luv = pcall(require, "luv")
    if not ok then error("luv is not installed: `bash scripts/deps.sh hosts` installs lua-luv", 0) end
    local d = buv.new(client) -- outside Neovim: require("luv"), no schedule
    assert.equal(luv, d.uv)
    local text, done = "", nil
    d:start({ messages = { { role = "user", content = "hi" } }, stream = true }, {
      on_chunk = function(c)
        local p = c.choices[1] and c.choices[1].delta.content
        if p then text = text .. p end
      end,
      on_done = function(_, err) done = err or true end,
    })
    -- a guard, so that a bug cannot hang the run: 10 s, then the loop stops
    local guard = luv.new_timer()
    guard:start(10000, 0, function() guard:close() d:stop() end)
    guard:unref()
    luv.run("default") -- returns when no handle is left: the driver closed its timer
    assert.is_true(done)
    assert.truthy(#text > 0)
    assert.is_false(d:active())
    assert.is_true(d.ticks > 0)
    if not guard:is_closing() then guard:close() end
    luv.run("nowait")
  end)

  it("misuse raises", function()
    assert.has_error(function() buv.new(nil, { uv = fake_uv() }) end)
    assert.has_error(function() buv.new(client, { uv = fake_uv(), interval = 0 }) end)
    -- outside Neovim, without luv installed and no opts.uv: a clear error
    local ok_luv = pcall(require, "luv")
    if not ok_luv then
      assert.has_error(function() buv.new(client) end,
        "baseten.uv: no libuv binding: run inside Neovim, install the luv rock, or pass opts.uv")
    end
  end)
end)
