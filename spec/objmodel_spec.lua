-- The Lua layer's object model (issue 22, part 1): a client is complete
-- when it is made; modules meet through documented methods, never through
-- another module's underscore fields; one raise-or-return rule (a closed
-- client is `canceled` on every path); options checked where they are
-- given; poll contains its failures.
-- luacheck: std max+busted
local baseten = require("baseten")
local fixture = require("spec.support.fixture")
local util = require("spec.support.util")

local KEY = "sk-test-OBJMODEL-0123456789"
local MODEL = "openai/gpt-oss-120b"
local THIS = "objmodel_spec.lua"

local function msgs() return fixture.msgs("Hi") end

-- The error `f` raises (fails when it returns).
local function raised(f)
  local ok, err = pcall(f)
  assert.is_false(ok, "did not raise")
  return tostring(err)
end

-- `f` raises at this file's line (the caller's), naming every `want`.
local function raises_here(f, ...)
  local msg = raised(f)
  assert.truthy(msg:find(THIS, 1, true), "not at the caller's line: " .. msg)
  for _, want in ipairs({ ... }) do assert.truthy(msg:find(want, 1, true), msg) end
end

-- Every `x._f` and `x:_f` of a line of code (`_f` a lower-case
-- underscore name, as `%._[a-z]`), even inside a chain (`a._b._c` gives
-- `a._b` and `_b._c`): iterates `i, x, _f` (x nil when the object is not
-- a plain name, e.g. a call's result).
local function private_reads(code)
  local found = {}
  for pos, field in code:gmatch("()[.:]%s*(_[a-z][%w_]*)") do
    local before = code:sub(1, pos - 1)
    if before:sub(-1) ~= "." then -- `.. _x` is a concatenation
      found[#found + 1] = { before:match("([%w_]+)%s*$"), field }
    end
  end
  local i = 0
  return function()
    i = i + 1
    local f = found[i]
    if f then return i, f[1], f[2] end
  end
end

local METHODS = { "chat", "stream", "json", "run_tools", "models", "start", "poll", "pending", "await",
                  "spawn", "drain", "batch", "start_batch", "usage", "close" }

describe("the object model", function()
  it("every module reads only its own underscore fields", function()
    -- An underscore field or method may be reached through `self`, or
    -- through a class table the same file defines (`Handle._begin(h)`);
    -- `x._f` or `x:_f()` with any other `x` reads another object's private part.
    local dir = util.ROOT .. "/lua/baseten/"
    local files = util.capture("ls " .. util.quote(dir))
    local bad, seen = {}, 0
    for name in files:gmatch("[^\n]+") do
      if name:match("%.lua$") then
        seen = seen + 1
        local text = util.read_file(dir .. name)
        local classes = { self = true }
        for class in text:gmatch("\nlocal (%u[%w_]*) = ") do classes[class] = true end
        local n = 0
        for line in (text .. "\n"):gmatch("([^\n]*)\n") do
          n = n + 1
          local code = line:gsub("%-%-.*$", "") -- comments say what fields are; code reads them
          for _, obj, field in private_reads(code) do
            if not classes[obj] then bad[#bad + 1] = name .. ":" .. n .. ": " .. tostring(obj) .. "." .. field end
          end
        end
      end
    end
    assert.is_true(seen > 10)
    assert.same({}, bad)
  end)

  it("the check finds a private field read across objects", function()
    -- the pattern above, on lines it must flag and lines it must pass
    local function flags(code)
      for _, obj in private_reads(code) do
        if obj ~= "self" then return true end
      end
      return false
    end
    assert.is_true(flags("local e = client._engine"))
    assert.is_true(flags("if h._phase == 'retry' then"))
    assert.is_true(flags("local k = client:_secret()"))
    assert.is_true(flags("self._client._activity = 1"))
    assert.is_false(flags("self._done = true"))
    assert.is_false(flags("local v = _VERSION"))
    assert.is_true(flags("local x = f()._private"))
    assert.is_false(flags("local s = 'a' .. _x"))
  end)

  describe("a client is complete when it is made", function()
    local saved

    before_each(function()
      saved = {}
      for name, mod in pairs(package.loaded) do
        if name:match("^baseten") and name ~= "baseten.core" then
          saved[name] = mod
          package.loaded[name] = nil
        end
      end
    end)

    after_each(function()
      for name in pairs(package.loaded) do
        if name:match("^baseten") and name ~= "baseten.core" then package.loaded[name] = nil end
      end
      for name, mod in pairs(saved) do package.loaded[name] = mod end
    end)

    it("from require('baseten.client') alone", function()
      local c = require("baseten.client").new{ api_key = false, base_url = "http://127.0.0.1:9" }
      for _, m in ipairs(METHODS) do assert.is_function(c[m], m) end
      c:close()
    end)

    it("from require('baseten')", function()
      local c = require("baseten").new{ api_key = false, base_url = "http://127.0.0.1:9" }
      for _, m in ipairs(METHODS) do assert.is_function(c[m], m) end
      c:close()
    end)

    it("and no module adds a method to the client class by being required", function()
      local Client = require("baseten.client").Client
      local before = {}
      for k, v in pairs(Client) do before[k] = v end
      for _, name in ipairs({ "baseten", "baseten.async", "baseten.batch", "baseten.agent", "baseten.structured",
                              "baseten.stream", "baseten.request", "baseten.uv", "baseten.task",
                              "baseten.runtime", "baseten.options", "baseten.schema", "baseten.tool" }) do
        require(name)
      end
      local after = {}
      for k, v in pairs(Client) do after[k] = v end
      assert.same(before, after)
    end)
  end)
end)

describe("against the test server", function()
  local srv, client
  fixture.client({ api_key = KEY, model = MODEL, max_retries = 0 }, function(s, c) srv, client = s, c end)

  it("a client dropped with a request pending is collected, on every Lua", function()
    srv:enqueue({ delay = 5, json = util.completion("late") })
    local weak = setmetatable({}, { __mode = "k" })
    local function make() -- its own frame, so no stack slot keeps the client
      local c = baseten.new{ api_key = KEY, base_url = srv.url, model = MODEL }
      c:start({ messages = msgs() })
      c:poll(0)
      weak[c] = true
    end
    make()
    for _ = 1, 4 do collectgarbage() end
    assert.is_nil(next(weak))
  end)

  describe("a closed client", function()
    before_each(function() client:close() end)

    local function canceled(v, err)
      assert.is_nil(v)
      assert.is_table(err)
      assert.equal("canceled", err.kind)
    end

    it("returns canceled from every blocking call, never raising", function()
      canceled(client:chat{ messages = msgs() })
      canceled(client:chat{ messages = msgs(), stream = true })
      canceled(client:stream{ messages = msgs() })
      canceled(client:json{ messages = msgs() })
      canceled(client:run_tools{ messages = msgs() })
      canceled(client:models())
      canceled(client:await{ messages = msgs() })
      local resps, errs = client:batch({ { messages = msgs() }, { messages = msgs() } })
      assert.same({}, resps)
      assert.equal("canceled", errs[1].kind)
      assert.equal("canceled", errs[2].kind)
      assert.equal(0, #srv:requests())
    end)

    it("ends every non-blocking call as canceled at the next poll", function()
      local got
      local h = client:start({ messages = msgs() }, { on_done = function(_, err) got = err end })
      local b = client:start_batch({ { messages = msgs() } })
      assert.equal(0, client:poll(0))
      assert.is_true(h:done())
      assert.equal("canceled", got.kind)
      assert.is_true(b:done())
      local _, errs = b:result()
      assert.equal("canceled", errs[1].kind)
      assert.equal(0, #srv:requests())
    end)

    it("ends a stream in progress as canceled", function()
      local c = baseten.new{ api_key = KEY, base_url = srv.url, model = MODEL, max_retries = 0 }
      srv:enqueue({ chunks = { 'data: {"choices":[{"index":0,"delta":{"content":"a"}}]}\n\n' }, stall = 5 })
      local s = assert(c:stream{ messages = msgs() })
      assert.equal("a", s:next().choices[1].delta.content)
      c:close()
      canceled(s:next())
    end)
  end)

  describe("options are checked where they are given", function()

    it("client options at baseten.new, naming the option, at the caller's line", function()
      local function new(opts)
        opts.api_key, opts.base_url = KEY, srv.url
        return baseten.new(opts)
      end
      raises_here(function() baseten.new{ base_url = srv.url, timeout = 0 / 0 } end, "timeout", "nan")
      raises_here(function() baseten.new{ base_url = srv.url, timeout = 1e300 } end, "timeout")
      raises_here(function() baseten.new{ base_url = srv.url, connect_timeout = -1 } end, "connect_timeout")
      raises_here(function() baseten.new{ base_url = srv.url, idle_timeout = "5" } end, "idle_timeout")
      raises_here(function() baseten.new{ base_url = srv.url, max_retries = "2" } end, "max_retries")
      raises_here(function() baseten.new{ base_url = srv.url, max_retries = 1.5 } end, "max_retries")
      raises_here(function() baseten.new{ base_url = srv.url, model = 42 } end, "model")
      raises_here(function() baseten.new{ base_url = srv.url, insecure = "yes" } end, "insecure")
      raises_here(function() baseten.new{ base_url = srv.url, log = "stderr" } end, "log")
      raises_here(function() baseten.new{ base_url = srv.url, headers = "X-A: b" } end, "headers")
      -- in range they are taken
      new({ timeout = 0, max_retries = 0, connect_timeout = 2147483 }):close()
    end)

    it("per-call options at the call, before anything is sent", function()
      local req = { messages = msgs() }
      raises_here(function() client:chat(req, { timeout = 0 / 0 }) end, "timeout")
      raises_here(function() client:chat(req, { max_retries = "1" }) end, "max_retries")
      raises_here(function() client:stream(req, { timeout = -1 }) end, "timeout")
      raises_here(function() client:chat({ messages = msgs(), stream = true }, { timeout = -1 }) end, "timeout")
      raises_here(function() client:json(req, { max_retries = -1 }) end, "max_retries")
      raises_here(function() client:run_tools(req, { timeout = "x" }) end, "timeout")
      raises_here(function() client:models({ timeout = 0 / 0 }) end, "timeout")
      raises_here(function() client:start(req, { max_retries = "x" }) end, "max_retries")
      raises_here(function() client:start(req, { on_done = 1 }) end, "on_done")
      raises_here(function() client:batch({ req }, { timeout = 0 / 0 }) end, "timeout")
      raises_here(function() client:start_batch({ req }, { max_retries = 1e9 }) end, "max_retries")
      raises_here(function() client:chat(req, "fast") end, "options")
      -- the client-side keys of a request, from the same tables
      raises_here(function() client:run_tools{ messages = msgs(), max_rounds = 0 } end, "req.max_rounds")
      raises_here(function() client:run_tools{ messages = msgs(), reasoning_history = "x" } end, '"keep" or "drop"')
      raises_here(function() client:json{ messages = msgs(), schema = 5 } end, "req.schema")
      assert.equal(0, client:pending())
      assert.equal(0, #srv:requests())
    end)
  end)

  describe("poll contains its failures", function()

    it("a bad per-call option raises at start, and later polls and a start_batch go on", function()
      raises_here(function() client:start({ messages = msgs() }, { timeout = 0 / 0 }) end, "timeout")
      for i = 1, 3 do srv:enqueue({ json = util.completion("r" .. i) }) end
      local b = client:start_batch({ { messages = msgs() }, { messages = msgs() }, { messages = msgs() } })
      util.drain(client)
      assert.is_true(b:done())
      local resps, errs = b:result()
      assert.same({}, errs)
      assert.equal(3, #resps)
    end)

    it("a task whose step raises ends with an error value; the error comes out of poll once", function()
      srv:enqueue({ json = util.completion("a"), delay = 0.3 })
      srv:enqueue({ json = util.completion("b"), delay = 0.3 })
      local got
      local h = client:start({ messages = msgs() }, { on_done = function(_, err) got = err end })
      h.step = function() error("boom") end -- a failure inside the library, as if
      local b = client:start_batch({ { messages = msgs() } })
      local msg = raised(function() client:poll(0) end)
      assert.truthy(msg:find("boom", 1, true), msg)
      assert.is_true(h:done())
      assert.equal("canceled", got.kind)
      assert.truthy(got.message:find("boom", 1, true))
      util.drain(client) -- no second raise
      assert.is_true(b:done())
      local resps = b:result()
      assert.truthy(resps[1])
      -- the client still works
      srv:enqueue({ json = util.completion("c") })
      assert.is_string(assert(client:chat{ messages = msgs() }).choices[1].message.content)
    end)

    it("an on_done that raises raises once; the batch beside it completes", function()
      for i = 1, 3 do srv:enqueue({ json = util.completion("r" .. i) }) end
      client:start({ messages = msgs() }, { on_done = function() error("user bug") end })
      local b = client:start_batch({ { messages = msgs() }, { messages = msgs() } })
      local raises, polls = 0, 0
      while client:pending() > 0 and polls < 2000 do
        polls = polls + 1
        local ok, err = pcall(client.poll, client, 0.05)
        if not ok then
          raises = raises + 1
          assert.truthy(tostring(err):find("user bug", 1, true))
        end
      end
      assert.equal(1, raises)
      assert.is_true(b:done())
      local resps, errs = b:result()
      assert.same({}, errs)
      assert.equal(2, #resps)
    end)
  end)
end)
