-- Structured output you can watch (baseten.partial): client:json's on_partial, stream:partials(),
-- client:start with json = true, on_tool_call_delta, code fences; against the local test server,
-- whose structured-output replies stream in 4-character pieces.
local baseten = require("baseten")
local fixture = require("spec.support.fixture")

local json = baseten.json

local msgs = fixture.msgs

local NPC = {
  type = "object",
  properties = { mood = { type = "string", enum = { "happy", "angry" } }, say = { type = "string" } },
  required = { "mood", "say" },
  additionalProperties = false,
}

local WEATHER = {
  type = "function",
  ["function"] = { name = "get_weather", parameters = {
    type = "object", properties = { city = { type = "string" } }, required = { "city" } } },
}

-- An SSE body carrying content deltas.
local function sse(pieces)
  return table.concat(fixture.sse_events(pieces))
end

local function sse_reply(pieces)
  return { chunks = { sse(pieces) }, headers = { ["Content-Type"] = "text/event-stream" } }
end

describe("baseten.partial in the client", function()
  local srv, client
  fixture.client({ api_key = "k", model = "openai/gpt-oss-120b", max_retries = 0 },
                 function(s, c) srv, client = s, c end)

  describe("client:json with on_partial", function()
    it("streams, shows the say field growing in one live table, and returns the validated value", function()
      local seen, tables, paths = {}, {}, {}
      local value, resp = client:json({ messages = msgs("hi there"), schema = NPC }, {
        on_partial = function(snap, path)
          tables[snap] = true
          if snap.say then seen[#seen + 1] = snap.say end
          paths[#paths + 1] = table.concat(path, ".")
        end,
      })
      assert.are.same({ mood = "happy", say = "Well met, traveller! You said: hi there" }, value)
      assert.equal("chat.completion", resp.object)
      assert.is_true(json.decode(srv:requests()[1].body).stream)
      local n = 0
      for _ in pairs(tables) do n = n + 1 end
      assert.equal(1, n) -- one live table
      assert.is_true(#seen > 5) -- the line arrived in pieces
      for i = 2, #seen do assert.equal(seen[i - 1], seen[i]:sub(1, #seen[i - 1])) end
      assert.equal(value.say, seen[#seen])
      local named = {}
      for _, p in ipairs(paths) do named[p] = true end
      assert.is_true(named.say and named.mood) -- each member named the path while it grew
    end)

    it("a schema violation in the final value is schema_mismatch, as without on_partial", function()
      srv:enqueue(sse_reply({ '{"mood":', '"sad","say":"x"}' }))
      local calls = 0
      local v, err = client:json({ messages = msgs("x"), schema = NPC }, { on_partial = function() calls = calls + 1 end })
      assert.is_nil(v)
      assert.equal("schema_mismatch", err.kind)
      assert.is_true(calls > 0)
    end)

    it("skips a leading code fence and ignores a trailing one", function()
      srv:enqueue(sse_reply({ "``", "`js", "on\n{\"mo", 'od":"happy","say":"hi"}', "\n`", "``" }))
      local last
      local v = assert(client:json({ messages = msgs("x"), schema = NPC }, {
        on_partial = function(snap) last = snap end }))
      assert.are.same({ mood = "happy", say = "hi" }, v)
      assert.are.same(v, last)
    end)

    it("the bundled server's fenced model: partials and value both come through the fence", function()
      local n = 0
      local v = assert(client:json({ model = "test/fenced", messages = msgs("yo"), schema = NPC }, {
        on_partial = function() n = n + 1 end }))
      assert.equal("happy", v.mood)
      assert.is_true(n > 3)
    end)

    it("invalid JSON mid-stream stops the partials; the call returns invalid_json as today", function()
      local n = 0
      local v, err = client:json({ model = "test/not-json", messages = msgs("hello"), schema = NPC }, {
        on_partial = function() n = n + 1 end })
      assert.is_nil(v)
      assert.equal("invalid_json", err.kind)
      assert.is_true(n > 0)
    end)

    it("a raise in on_partial raises out of the call", function()
      assert.has_error(function()
        client:json({ messages = msgs("x"), schema = NPC }, { on_partial = function() error("boom") end })
      end)
      assert.is_truthy(client:json({ messages = msgs("x"), schema = NPC })) -- the client is usable
    end)

    it("the value is the last snapshot, equal to the value without on_partial", function()
      local pieces = { '{"mood":"ha', 'ppy","say":"hi ', 'there","n":[1,2.5,', 'true,{"k":"v"}]}' }
      srv:enqueue(sse_reply(pieces))
      local last
      local v = assert(client:json({ messages = msgs("x") }, { on_partial = function(snap) last = snap end }))
      srv:enqueue(sse_reply(pieces))
      local plain = assert(client:json({ messages = msgs("x"), stream = true }))
      assert.are.same(plain, v)
      assert.are.same(json.decode(table.concat(pieces)), v)
      assert.equal(last, v) -- the live table itself: its parse is not done twice
      assert.equal(getmetatable(plain.n), getmetatable(v.n)) -- arrays marked as the decoder marks them
    end)

    it("nulls: dropped from objects, kept in arrays, and a required nullable member validates, as without", function()
      local pieces = { '{"a":nu', 'll,"b":[1,null],', '"c":"x"}' }
      local schema = { type = "object", required = { "a", "c" },
                       properties = { a = { type = { "string", "null" } }, c = { type = "string" } } }
      srv:enqueue(sse_reply(pieces))
      local v = assert(client:json({ messages = msgs("x"), schema = schema }, { on_partial = function() end }))
      srv:enqueue(sse_reply(pieces))
      local plain = assert(client:json({ messages = msgs("x"), schema = schema, stream = true }))
      assert.are.same(plain, v)
      assert.is_nil(v.a)
      assert.equal(json.null, v.b[2])
    end)

    it("a stream that fails midway returns nil, err as without on_partial, and does not raise", function()
      local body = sse({ '{"mood":"happy",', '"say":"hel' }):gsub("data: %[DONE%]\n\n$", "")
      body = body:gsub('data: {[^\n]*"finish_reason":"stop"[^\n]*}\n\n', "")
        .. 'data: {"error":{"message":"overloaded","type":"server_error"}}\n\n'
      local reply = { chunks = { body }, headers = { ["Content-Type"] = "text/event-stream" } }
      srv:enqueue(reply)
      local n = 0
      local v, err = client:json({ messages = msgs("x"), schema = NPC }, { on_partial = function() n = n + 1 end })
      srv:enqueue(reply)
      local v2, err2 = client:json({ messages = msgs("x"), schema = NPC, stream = true })
      assert.is_nil(v)
      assert.is_nil(v2)
      assert.is_table(err)
      assert.equal(err2.kind, err.kind)
      assert.equal(err2.message, err.message)
      assert.is_true(n > 0)
    end)

    it("a bad on_partial raises at the caller", function()
      assert.has_error(function() client:json({ messages = msgs("x") }, { on_partial = 1 }) end)
    end)
  end)

  describe("stream:partials()", function()
    it("yields the live snapshot and path after each content delta; final() works after", function()
      local s = assert(client:stream({ messages = msgs("hey"),
        response_format = { type = "json_schema", json_schema = { name = "npc", schema = NPC } } }))
      local first, count, last_say
      for snap, path in s:partials() do
        first = first or snap
        assert.equal(first, snap)
        assert.is_table(path)
        count = (count or 0) + 1
        last_say = snap.say
      end
      assert.is_true(count > 5)
      assert.equal("Well met, traveller! You said: hey", last_say)
      local resp = assert(s:final())
      assert.equal(json.encode(first), json.encode(json.decode(resp.choices[1].message.content)))
    end)

    it("invalid JSON mid-stream raises invalid_json naming the byte, and final() keeps the text", function()
      srv:enqueue(sse_reply({ '{"say":', '"hi"', " x", '"}' }))
      local s = assert(client:stream({ messages = msgs("x") }))
      local ok, err = pcall(function()
        for _ in s:partials() do end
      end)
      assert.is_false(ok)
      assert.equal("invalid_json", err.kind)
      assert.matches("at byte 13", err.message)
      assert.equal('{"say":"hi" x', err.content) -- the text so far
      -- on 5.4 the generic for closed the stream as the error left it (its fourth value):
      -- final() then fails as canceled and carries what arrived
      local resp, ferr = s:final()
      resp = resp or ferr.partial
      assert.matches('^{"say":"hi" x', resp.choices[1].message.content)
    end)

    it("splits inside a UTF-8 sequence and inside a \\u escape pair show only whole characters", function()
      -- the pieces are valid UTF-8 each (the stream's rule), so the split sits in a \u pair
      srv:enqueue(sse_reply({ '{"say":"h\195\169 \\ud8', "3d\\u", "de00", '!"}' }))
      local seen = {}
      local s = assert(client:stream({ messages = msgs("x") }))
      for snap in s:partials() do seen[#seen + 1] = snap.say end
      assert.are.same({ "h\195\169 ", "h\195\169 ", "h\195\169 \240\159\152\128", "h\195\169 \240\159\152\128!" }, seen)
    end)
  end)

  describe("client:start with json = true", function()
    it("calls on_partial from poll only, and on_done with the judged value", function()
      local in_poll, outside, n = false, false, 0
      local done_value, done_resp
      local h = client:start({ model = "test/npc-paced", messages = msgs("hello"), schema = NPC }, {
        json = true,
        on_partial = function(snap)
          if not in_poll then outside = true end
          n = n + 1
          assert.is_table(snap)
        end,
        on_done = function(v, resp) done_value, done_resp = v, resp end,
      })
      while not h:done() do
        in_poll = true
        client:poll(0.01)
        in_poll = false
      end
      assert.is_false(outside)
      assert.is_true(n > 5)
      -- (that frames keep coming between pieces is counted in real LÖVE: hosts_spec, love-npc)
      assert.are.same({ mood = "happy", say = "Well met, traveller! You said: hello" }, done_value)
      assert.equal("chat.completion", done_resp.object)
      local sent = json.decode(srv:requests()[1].body)
      assert.is_true(sent.stream)
      assert.equal("json_schema", sent.response_format.type)
      assert.is_nil(sent.schema)
    end)

    it("on_done gets nil, err for content that is not JSON", function()
      local got
      local h = client:start({ model = "test/not-json", messages = msgs("x"), schema = NPC }, {
        json = true, on_done = function(v, err) got = { v, err } end })
      while not h:done() do client:poll(0.01) end
      assert.is_nil(got[1])
      assert.equal("invalid_json", got[2].kind)
    end)
  end)

  describe("on_tool_call_delta", function()
    local req = { messages = msgs("Weather in Paris and Tokyo?"), tools = { WEATHER } }

    it("client:stream: each call's arguments as a live table while they stream", function()
      local seen = {}
      local s = assert(client:stream(req, { on_tool_call_delta = function(index, name, args)
        seen[#seen + 1] = { index, name, args.city }
      end }))
      local resp = assert(s:final())
      assert.equal(2, #resp.choices[1].message.tool_calls)
      local last = {}
      for _, e in ipairs(seen) do
        assert.equal("get_weather", e[2])
        last[e[1]] = e[3]
      end
      assert.are.same({ "Paris", "Tokyo" }, last)
      assert.is_true(#seen > 4) -- the arguments came in pieces
    end)

    it("client:start: from poll", function()
      local seen = 0
      local h = client:start({ messages = req.messages, tools = req.tools, stream = true }, {
        on_tool_call_delta = function(_, name, args)
          assert.equal("get_weather", name)
          assert.is_table(args)
          seen = seen + 1
        end })
      while not h:done() do client:poll(0.01) end
      assert.is_true(seen > 4)
    end)

    it("run_tools: live arguments, then the handler once with the complete arguments", function()
      local deltas, handled = {}, {}
      local tool = { type = "function", ["function"] = WEATHER["function"],
                     handler = function(args) handled[#handled + 1] = args.city return { temp = 21 } end }
      local resp = assert(client:run_tools({
        messages = req.messages, tools = { tool }, stream = true,
        on_tool_call_delta = function(index, _, args) deltas[index] = args.city end,
      }))
      assert.is_string(resp.choices[1].message.content)
      assert.are.same({ "Paris", "Tokyo" }, handled)
      assert.are.same({ "Paris", "Tokyo" }, deltas)
      assert.is_nil(json.decode(srv:requests()[1].body).on_tool_call_delta)
    end)
  end)
end)
