-- The bugs of issue 18 part 2 (one case each, numbered as in the issue),
-- the unbounded schema `pattern`, and the tool-error items of issue 12.
-- luacheck: std max+busted
local baseten = require("baseten")
local server = require("spec.support.server")
local fixture = require("spec.support.fixture")
local util = require("spec.support.util")
local core = require("baseten.core")
local accumulate = require("baseten.accumulate")
local structured = require("baseten.structured")
local agent = require("baseten.agent")
local schema = require("baseten.schema")

local json = baseten.json
local null = json.null
local KEY = "sk-test-BUGS-0123456789"
local MODEL = "openai/gpt-oss-120b"

local function msgs(text)
  return { { role = "user", content = text or "Hi" } }
end

local function completion(message, finish)
  return {
    id = "chatcmpl-x", object = "chat.completion", created = 1, model = MODEL,
    choices = { { index = 0, message = message, finish_reason = finish or "stop" } },
  }
end

local function chunk(choices)
  return "data: " .. json.encode({ id = "c", object = "chat.completion.chunk", created = 1, model = MODEL,
                                   choices = json.array(choices) }) .. "\n\n"
end

describe("issue 18 bugs", function()
  local srv, client
  fixture.client({ api_key = KEY, model = MODEL, max_retries = 0 }, function(s, c) srv, client = s, c end)

  it("1: client:json trims a long run of whitespace in linear time", function()
    local text = '{"a":1' .. string.rep(" ", 60000) .. "}" .. string.rep(" ", 60000)
    local t0 = os.clock()
    local value = structured.judge(nil, completion({ role = "assistant", content = text }), nil)
    local took = os.clock() - t0
    assert.equal(1, value.a)
    assert.is_true(took < 2, "took " .. took .. " s") -- linear: milliseconds; quadratic: ~20 s
  end)

  it("2: final() keeps every chunk's logprobs, in order", function()
    local acc = accumulate.new()
    for i = 1, 3 do
      acc:add({ choices = { { index = 0, delta = { content = "t" .. i },
        logprobs = { content = { { token = "t" .. i, logprob = -i } }, refusal = null } } } })
    end
    local lp = acc:result().choices[1].logprobs
    assert.equal(3, #lp.content)
    for i = 1, 3 do assert.equal("t" .. i, lp.content[i].token) end
  end)

  it("3: tool calls are ordered and labelled by the server's index", function()
    local acc = accumulate.new()
    acc:add({ choices = { { index = 0, delta = { tool_calls = {
      { index = 1, id = "call_b", type = "function", ["function"] = { name = "b", arguments = "{}" } } } } } } })
    acc:add({ choices = { { index = 0, delta = { tool_calls = {
      { index = 0, id = "call_a", type = "function", ["function"] = { name = "a", arguments = "{}" } } } } } } })
    local calls = acc:result().choices[1].message.tool_calls
    assert.equal("call_a", calls[1].id)
    assert.equal(0, calls[1].index)
    assert.equal("call_b", calls[2].id)
    assert.equal(1, calls[2].index)
  end)

  it("4: stream:text() yields choice 0 only with n = 2", function()
    srv:enqueue({ chunks = {
      chunk({ { index = 0, delta = { content = "A1" } }, { index = 1, delta = { content = "B1" } } }),
      chunk({ { index = 1, delta = { content = "B2" } }, { index = 0, delta = { content = "A2" } } }),
      "data: [DONE]\n\n",
    } })
    local s = assert(client:stream{ messages = msgs(), n = 2 })
    local got = {}
    for piece in s:text() do got[#got + 1] = piece end
    assert.same({ "A1", "A2" }, got)
  end)

  it("4: stream:pieces() yields choice 0 only with n = 2", function()
    srv:enqueue({ chunks = {
      chunk({ { index = 1, delta = { reasoning_content = "b0" } }, { index = 0, delta = { reasoning_content = "a0" } } }),
      chunk({ { index = 0, delta = { content = "A1" } }, { index = 1, delta = { content = "B1" } } }),
      chunk({ { index = 1, delta = { refusal = "B2" } }, { index = 0, delta = { content = "A2" } } }),
      "data: [DONE]\n\n",
    } })
    local s = assert(client:stream{ messages = msgs(), n = 2 })
    local got = {}
    for piece, kind in s:pieces() do got[#got + 1] = kind .. ":" .. piece end
    assert.same({ "reasoning:a0", "content:A1", "content:A2" }, got)
  end)

  it("6: an HTTP-date Retry-After is exact in a zone on daylight saving time", function()
    local f = io.open("/usr/share/zoneinfo/Australia/Sydney", "rb")
    assert(f, "tzdata for Australia/Sydney is needed")
    f:close()
    local code = "local e = require('baseten.errors'); "
      .. "io.write(e.retry_after(nil, os.date('!%a, %d %b %Y %H:%M:%S GMT', os.time() + 5)))"
    -- a date in January (summer time in Sydney) and one now
    local _, out = util.run_lua(code, { env = "TZ=Australia/Sydney", merge = true })
    local n = tonumber(out)
    assert(n, out)
    assert.is_true(math.abs(n - 5) < 60, out) -- an hour off in a DST zone; loose for a busy machine
    local at = os.time({ year = 2027, month = 1, day = 15, hour = 12 })
    local date = os.date("!%a, %d %b %Y %H:%M:%S GMT", at)
    local errors = require("baseten.errors")
    local want = at - os.time()
    local got = errors.retry_after(nil, date)
    assert.is_true(math.abs(got - want) < 60, ("%s: %s vs %s"):format(date, got, want))
  end)

  it("9: arguments = \"null\" give the handler {}", function()
    local seen
    local text = agent.answer({ id = "c1", type = "function", ["function"] = { name = "f", arguments = "null" } },
      { f = function(args) seen = args return "x=" .. tostring(args.x) end }, { "f" })
    assert.equal("x=nil", text)
    assert.same({}, seen)
  end)

  it("10: two tools with the same name raise before any request", function()
    local function tool(h)
      return baseten.tool{ name = "dup", parameters = { type = "object" }, handler = h }
    end
    assert.has_error(function()
      client:run_tools{ messages = msgs(), tools = { tool(function() return 1 end), tool(function() return 2 end) } }
    end)
    assert.equal(0, #srv:requests())
  end)

  it("11: a recursive schema validates a 150-level tree, and a $ref cycle is found", function()
    local root = { type = "array", items = { ["$ref"] = "#" } }
    local v = json.array()
    for _ = 1, 150 do v = json.array({ v }) end -- 2 schema frames a level: 300
    assert.is_true((schema.validate(v, root)))
    local cyc = { ["$ref"] = "#/$defs/a", ["$defs"] = { a = { ["$ref"] = "#/$defs/a" } } }
    local ok, _, msg = schema.validate(1, cyc)
    assert.is_false(ok)
    assert.truthy(msg:find("cycle", 1, true))
    local deep = json.array()
    for _ = 1, schema.MAX_DEPTH + 5 do deep = json.array({ deep }) end
    ok, _, msg = schema.validate(deep, root)
    assert.is_false(ok)
    assert.truthy(msg:find("nested too deeply", 1, true))
  end)

  it("a schema pattern has a bound on its work: past it the check is skipped and logged, never failed", function()
    local s = { type = "string", pattern = ".*a.*b.*c" }
    local events = {}
    local c = baseten.new{ api_key = KEY, base_url = srv.url, model = MODEL,
                           log = function(e) if e.event == "schema_skipped" then events[#events + 1] = e end end }
    local text = string.rep("ab", 300) -- 600 characters: 14 s and more unbounded
    local value, resp = structured.judge(c, completion({ role = "assistant", content = json.encode(text) }), s)
    assert.equal(text, value, resp and resp.message) -- issue 22: "too costly" was a false mismatch
    assert.equal(1, #events)
    assert.same({ "$", ".*a.*b.*c", "budget" }, { events[1].path, events[1].pattern, events[1].reason })
    local ok, _, _, report = schema.validate(text, s)
    assert.is_true(ok)
    assert.equal(1, #report.skipped)
    -- short strings still match as before
    assert.is_true((schema.validate("xaxbxc", s)))
    assert.is_false((schema.validate("xxx", s)))
    c:close()
  end)

  describe("tool errors (issue 12)", function()
    local function tool_round(between)
      srv:enqueue({ json = completion({ role = "assistant", content = server.null, tool_calls = {
        { id = "call_1", type = "function", ["function"] = { name = "db", arguments = "{}" } } } }, "tool_calls") })
      if between then srv:enqueue(between) end
      srv:enqueue({ json = completion({ role = "assistant", content = "done" }) })
    end

    it("the model gets a raising handler's message without its Lua position; the Lua side gets it all", function()
      tool_round()
      local full, logged
      local c = baseten.new{ api_key = KEY, base_url = srv.url, model = MODEL, max_retries = 0,
                             log = function(e) if e.event == "tool_error" then logged = e.error end end }
      local _, messages = assert(c:run_tools{ messages = msgs(),
        tools = { baseten.tool{ name = "db", parameters = { type = "object" },
                                handler = function() error("database is down") end } },
        on_tool_error = function(_, text) full = text end })
      assert.equal('error: tool "db" raised: database is down', messages[3].content)
      assert.truthy(full:find("bugs18_spec.lua:%d+: database is down"), full)
      assert.truthy(full:find("traceback", 1, true), full)
      assert.truthy(logged:find("database is down", 1, true))
      assert.is_nil(srv:requests()[2].json.on_tool_error)
    end)

    -- README: a handler may yield through await on 5.2+ and LuaJIT (not PUC 5.1)
    local can_yield = _VERSION ~= "Lua 5.1" or rawget(_G, "jit") ~= nil
    if can_yield then
      it("a tool handler may yield through await inside spawn", function()
        tool_round({ json = completion({ role = "assistant", content = "inner" }) })
        local result
        client:spawn(function()
          local _, messages = client:run_tools{ messages = msgs(),
            tools = { baseten.tool{ name = "db", parameters = { type = "object" }, handler = function()
              local r = assert(client:await{ messages = msgs("inner") })
              return r.choices[1].message.content
            end } } }
          result = messages
        end)
        local deadline = core.now() + 10
        while result == nil and core.now() < deadline do client:poll(0.05) end
        assert.is_table(result)
        assert.equal("inner", result[3].content)
      end)
    end
  end)
end)
