-- Reasoning models (issue 13): stream:pieces(), reasoning_content whichever
-- spelling the server used, run_tools' on_reasoning and reasoning_history,
-- provider options passed through, include_usage, against the local server.
local baseten = require("baseten")
local fixture = require("spec.support.fixture")

local json = baseten.json

local function msgs(text)
  return { { role = "user", content = text } }
end

-- The mock's words: its reasoning, then its answer, for a plain question.
local function thought_of(text) return "The user said: " .. text .. " I should answer." end
local function answer_of(text) return "Hello from the local test server. You said: " .. text end

-- A scripted SSE body: each item a delta of choice 0, or a whole chunk
-- (a table with `choices` or `usage`).
local function sse(items)
  local out = {}
  for _, d in ipairs(items) do
    local chunk = (d.choices or d.usage) and d
      or { choices = { { index = 0, delta = d, finish_reason = json.null } } }
    chunk.id, chunk.object, chunk.created, chunk.model = "c", "chat.completion.chunk", 1, "m"
    out[#out + 1] = "data: " .. json.encode(chunk) .. "\n\n"
  end
  out[#out + 1] = "data: [DONE]\n\n"
  return { chunks = out, headers = { ["Content-Type"] = "text/event-stream" } }
end

local function weather_tool()
  return baseten.tool{
    name = "get_weather", description = "Current weather in a city",
    parameters = { type = "object", properties = { city = { type = "string" } }, required = { "city" } },
    handler = function(args) return { city = args.city, temp = 21 } end,
  }
end

describe("reasoning", function()
  local srv, client
  fixture.client({ api_key = "k", max_retries = 0 }, function(s, c) srv, client = s, c end)

  describe("stream:pieces()", function()
    for _, model in ipairs({ "test/reasoning", "test/reasoning-alt" }) do
      it("gives the reasoning, then the content, each piece with its kind (" .. model .. ")", function()
        local s = assert(client:stream{ model = model, messages = msgs("Why is the sky blue?") })
        local kinds, text = {}, { reasoning = {}, content = {} }
        for piece, kind in s:pieces() do
          assert.is_string(piece)
          assert.is_true(#piece > 0)
          kinds[#kinds + 1] = kind
          local list = assert(text[kind], "unexpected kind " .. tostring(kind))
          list[#list + 1] = piece
        end
        assert.are.equal(thought_of("Why is the sky blue?"), table.concat(text.reasoning))
        assert.are.equal(answer_of("Why is the sky blue?"), table.concat(text.content))
        assert.is_true(#text.reasoning > 3 and #text.content > 3)
        -- the order: every reasoning piece comes before the first content piece
        local first_content
        for i, k in ipairs(kinds) do
          if k == "content" then first_content = first_content or i
          else assert.is_nil(first_content, "reasoning after content at piece " .. i) end
        end
        assert.are.equal(#text.reasoning + 1, first_content)
      end)
    end

    it("keeps arrival order and kind across spellings, refusals and choices; text() stays content-only", function()
      local script = sse({
        { role = "assistant", content = "" },
        { reasoning_content = "r1 " },
        { reasoning = "r2 " },
        { content = "c1 ", reasoning_content = "r3 " }, -- one chunk, two kinds: reasoning first
        { choices = { { index = 1, delta = { content = "other choice", reasoning_content = "x" } } } },
        { reasoning_content = "r4", reasoning = "r4" }, -- both spellings in one chunk: once
        { content = "" },
        { refusal = "no" },
        { content = "c2" },
      })
      srv:enqueue(script, script)
      local s = assert(client:stream{ model = "m", messages = msgs("hi") })
      local got = {}
      for piece, kind in s:pieces() do got[#got + 1] = kind .. ":" .. piece end
      assert.are.same({ "reasoning:r1 ", "reasoning:r2 ", "reasoning:r3 ", "content:c1 ",
                        "reasoning:r4", "refusal:no", "content:c2" }, got)
      -- final() has the same reasoning, content and refusal as the pieces
      local m = s:snapshot().choices[1].message
      assert.are.same({ "r1 r2 r3 r4", "c1 c2", "no" }, { m.reasoning_content, m.content, m.refusal })
      local s2 = assert(client:stream{ model = "m", messages = msgs("hi") })
      local text = {}
      for piece in s2:text() do text[#text + 1] = piece end
      assert.are.same({ "c1 ", "c2" }, text)
    end)

    it("raises the stream's failure", function()
      srv:enqueue({ chunks = { 'data: {"choices":[{"index":0,"delta":{"reasoning_content":"a"}}]}\n\n' },
                    truncate = true })
      local s = assert(client:stream{ model = "m", messages = msgs("hi") })
      local got = {}
      local ok, err = pcall(function()
        for piece in s:pieces() do got[#got + 1] = piece end
      end)
      assert.is_false(ok)
      assert.are.equal("connection", err.kind)
      assert.are.same({ "a" }, got)
    end)

    it("stops after the end, and pieces after final() give nothing", function()
      local s = assert(client:stream{ model = "test/reasoning", messages = msgs("hi") })
      local final = assert(s:final())
      assert.are.equal(thought_of("hi"), final.choices[1].message.reasoning_content)
      local iter = s:pieces()
      assert.is_nil(iter())
      assert.is_nil(iter())
    end)
  end)

  describe("reasoning_content whichever spelling", function()
    for _, model in ipairs({ "test/reasoning", "test/reasoning-alt" }) do
      it("final() and chat, streamed and not (" .. model .. ")", function()
        local want = thought_of("hello")
        local s = assert(client:stream{ model = model, messages = msgs("hello") })
        local final = assert(s:final())
        assert.are.equal(want, final.choices[1].message.reasoning_content)
        assert.are.equal(answer_of("hello"), final.choices[1].message.content)
        local resp = assert(client:chat{ model = model, messages = msgs("hello") })
        assert.are.equal(want, resp.choices[1].message.reasoning_content)
        assert.are.equal(answer_of("hello"), resp.choices[1].message.content)
        local sresp = assert(client:chat{ model = model, messages = msgs("hello"), stream = true })
        assert.are.equal(want, sresp.choices[1].message.reasoning_content)
        if model == "test/reasoning-alt" then -- the server's own spelling stays too
          assert.are.equal(want, resp.choices[1].message.reasoning)
          assert.are.equal(want, final.choices[1].message.reasoning)
        else
          assert.is_nil(resp.choices[1].message.reasoning)
          assert.is_nil(final.choices[1].message.reasoning)
        end
      end)
    end

    it("non-blocking calls too", function()
      local got = {}
      client:start({ model = "test/reasoning-alt", messages = msgs("a") },
                   { on_done = function(resp) got.plain = resp end })
      client:start({ model = "test/reasoning-alt", messages = msgs("a"), stream = true },
                   { on_done = function(resp) got.streamed = resp end })
      while client:poll(1) > 0 do end
      assert.are.equal(thought_of("a"), got.plain.choices[1].message.reasoning_content)
      assert.are.equal(thought_of("a"), got.streamed.choices[1].message.reasoning_content)
    end)
  end)

  describe("run_tools", function()
    for _, model in ipairs({ "test/reasoning", "test/reasoning-alt" }) do
      it("streamed: on_reasoning and on_content get their pieces; the transcript has reasoning_content ("
         .. model .. ")", function()
        local reasoning, content = {}, {}
        local resp, messages = client:run_tools{
          model = model, stream = true, messages = msgs("Weather in Paris?"), tools = { weather_tool() },
          on_reasoning = function(p) reasoning[#reasoning + 1] = p end,
          on_content = function(p) content[#content + 1] = p end,
        }
        assert.is_table(resp, tostring(messages))
        assert.are.equal(4, #messages)
        local r1, r2 = messages[2].reasoning_content, messages[4].reasoning_content
        assert.truthy(r1:find("I should call get_weather", 1, true))
        assert.are.equal("The tools answered, so I can reply.", r2)
        assert.are.equal(r1 .. r2, table.concat(reasoning))
        assert.are.equal(messages[2].content .. messages[4].content, table.concat(content))
        assert.is_true(#reasoning > 2)
        -- nothing client-side reached the server
        local body = srv:last_request().json
        assert.is_nil(body.on_reasoning)
        assert.is_nil(body.reasoning_history)
      end)
    end

    it("not streamed: on_reasoning gets each round's whole reasoning", function()
      local reasoning = {}
      local _, messages = assert(client:run_tools{
        model = "test/reasoning-alt", messages = msgs("Weather in Paris?"), tools = { weather_tool() },
        on_reasoning = function(p) reasoning[#reasoning + 1] = p end,
      })
      assert.are.same({ messages[2].reasoning_content, messages[4].reasoning_content }, reasoning)
    end)

    it("checks reasoning_history", function()
      assert.has_error(function()
        client:run_tools{ model = "test/reasoning", messages = msgs("x"), reasoning_history = "yes" }
      end, 'baseten: run_tools: req.reasoning_history must be "keep" or "drop", not "yes"')
      assert.has_error(function()
        client:run_tools{ model = "test/reasoning", messages = msgs("x"), on_reasoning = 1 }
      end, "baseten: run_tools: req.on_reasoning must be a function, not 1")
    end)

    -- A server that needs the reasoning back, and one that refuses it: each
    -- setting works with its server and fails with the other.
    local CASES = {
      { history = nil, model = "test/reasoning-require", ok = true },
      { history = "keep", model = "test/reasoning-require", ok = true },
      { history = "keep", model = "test/reasoning-alt-require", ok = true },
      { history = "drop", model = "test/reasoning-require", ok = false },
      { history = "drop", model = "test/reasoning-reject", ok = true },
      { history = "drop", model = "test/reasoning-alt-reject", ok = true },
      { history = "keep", model = "test/reasoning-reject", ok = false },
      { history = nil, model = "test/reasoning-reject", ok = false },
    }
    for _, c in ipairs(CASES) do
      it(("streamed tool loop, reasoning_history = %s against %s: %s")
         :format(tostring(c.history), c.model, c.ok and "answers" or "400"), function()
        local resp, messages = client:run_tools{
          model = c.model, stream = true, reasoning_history = c.history,
          messages = msgs("Weather in Paris?"), tools = { weather_tool() },
        }
        local sent = srv:requests()
        assert.are.equal(2, #sent)
        local assistant = sent[2].json.messages[2]
        assert.are.equal("assistant", assistant.role)
        assert.is_table(assistant.tool_calls)
        if c.history == "drop" then
          assert.is_nil(assistant.reasoning_content)
          assert.is_nil(assistant.reasoning)
        else
          assert.truthy(assistant.reasoning_content or assistant.reasoning)
        end
        if c.ok then
          assert.is_table(resp, tostring(messages))
          assert.are.equal("stop", resp.choices[1].finish_reason)
          assert.are.equal(4, #messages)
        else
          assert.is_nil(resp)
          assert.are.equal("bad_request", messages.kind)
          assert.are.equal(400, messages.status)
          assert.are.equal(3, #messages.messages)
        end
        -- either way the transcript keeps the reasoning
        local transcript = c.ok and messages or messages.messages
        assert.truthy(transcript[2].reasoning_content:find("get_weather", 1, true))
      end)
    end

    it("the default is keep", function()
      assert.are.equal("keep", require("baseten.agent").DEFAULT_REASONING_HISTORY)
    end)
  end)

  describe("provider options", function()
    -- The encoder does not sort keys: each member's bytes are checked, and
    -- the whole body as JSON.
    local function has(body, bytes)
      assert(body:find(bytes, 1, true), "the body lacks " .. bytes .. ": " .. body)
    end

    it("reasoning_effort and chat_template_args go as they are, byte for byte", function()
      assert(client:chat{ model = "test/reasoning", messages = msgs("hi"), reasoning_effort = "high",
                          chat_template_args = { enable_thinking = true } })
      local r = srv:last_request()
      has(r.body, '"reasoning_effort":"high"')
      has(r.body, '"chat_template_args":{"enable_thinking":true}')
      assert.are.same({ chat_template_args = { enable_thinking = true }, messages = { { content = "hi", role = "user" } },
                        model = "test/reasoning", reasoning_effort = "high" }, r.json)
      local s = assert(client:stream{ model = "test/reasoning", messages = msgs("hi"), reasoning_effort = "low",
                                      chat_template_args = { thinking = true } })
      assert(s:final())
      r = srv:last_request()
      has(r.body, '"reasoning_effort":"low"')
      has(r.body, '"chat_template_args":{"thinking":true}')
      assert.are.same({ chat_template_args = { thinking = true }, messages = { { content = "hi", role = "user" } },
                        model = "test/reasoning", reasoning_effort = "low", stream = true,
                        stream_options = { include_usage = true } }, r.json)
      assert(client:run_tools{ model = "test/reasoning", messages = msgs("hi"), stream = true,
                               reasoning_effort = "medium", chat_template_args = { enable_thinking = false } })
      r = srv:last_request()
      has(r.body, '"reasoning_effort":"medium"')
      has(r.body, '"chat_template_args":{"enable_thinking":false}')
    end)
  end)

  describe("stream_options", function()
    it("include_usage is sent by every streaming call, and final() has the usage", function()
      local s = assert(client:stream{ model = "test/reasoning", messages = msgs("hi") })
      local final = assert(s:final())
      assert.same({ include_usage = true }, srv:last_request().json.stream_options)
      assert.is_table(final.usage)
      local done
      client:start({ model = "test/reasoning", messages = msgs("hi"), stream = true },
                   { on_done = function(resp) done = resp end })
      while client:poll(1) > 0 do end
      assert.same({ include_usage = true }, srv:last_request().json.stream_options)
      assert.is_table(done.usage)
      assert(client:run_tools{ model = "test/reasoning", messages = msgs("hi"), stream = true })
      assert.same({ include_usage = true }, srv:last_request().json.stream_options)
    end)

    it("is never overridden: the request's own stream_options go as they are", function()
      local s = assert(client:stream{ model = "test/reasoning", messages = msgs("hi"),
                                      stream_options = { include_usage = false } })
      local final = assert(s:final())
      assert.truthy(srv:last_request().body:find('"stream_options":{"include_usage":false}', 1, true))
      assert.is_nil(final.usage) -- opted out: the server sent none
      s = assert(client:stream{ model = "test/reasoning", messages = msgs("hi"),
                                stream_options = { continuous_usage_stats = true } })
      assert(s:final())
      assert.truthy(srv:last_request().body:find('"stream_options":{"continuous_usage_stats":true}', 1, true))
      assert.is_nil(srv:last_request().json.stream_options.include_usage)
    end)

    it("a non-streamed call sends none", function()
      assert(client:chat{ model = "test/reasoning", messages = msgs("hi") })
      assert.is_nil(srv:last_request().json.stream_options)
    end)
  end)
end)
