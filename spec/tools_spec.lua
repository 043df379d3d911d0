-- client:run_tools: the tool-calling loop, against the local test server.
local baseten = require("baseten")
local fixture = require("spec.support.fixture")

local json = baseten.json
local null = json.null

local WEATHER_PARAMS, msgs, weather_tool = fixture.WEATHER_PARAMS, fixture.msgs, fixture.weather_tool

-- A whole chat.completion body whose message calls tools.
local function calls_reply(calls, content)
  local tcs = {}
  for i, c in ipairs(calls) do
    tcs[i] = { id = c.id or ("call_" .. i), type = "function",
               ["function"] = { name = c.name, arguments = c.arguments } }
  end
  local body = json.encode({
    id = "chatcmpl-t", object = "chat.completion", created = 1, model = "openai/gpt-oss-120b",
    choices = { { index = 0, finish_reason = "tool_calls", logprobs = null,
                  message = { role = "assistant", content = content or null, tool_calls = tcs } } },
    usage = { prompt_tokens = 1, completion_tokens = 1, total_tokens = 2 },
  })
  return { body = body, headers = { ["Content-Type"] = "application/json" } }
end

local function sse(deltas)
  local out = {}
  for _, d in ipairs(deltas) do
    out[#out + 1] = "data: " .. json.encode({ id = "c", object = "chat.completion.chunk", created = 1,
      model = "m", choices = { { index = 0, delta = d[1], finish_reason = d[2] or null } } }) .. "\n\n"
  end
  out[#out + 1] = "data: [DONE]\n\n"
  return table.concat(out)
end

-- Two parallel calls whose argument fragments interleave across deltas.
local function parallel_sse()
  local function tc(t) return { tool_calls = { t } } end
  return sse({
    { { role = "assistant" } },
    { { content = "Checking" } },
    { tc({ index = 0, id = "call_a", type = "function", ["function"] = { name = "get_weather", arguments = "" } }) },
    { tc({ index = 0, ["function"] = { arguments = '{"ci' } }) },
    { tc({ index = 1, id = "call_b", type = "function",
           ["function"] = { name = "get_weather", arguments = '{"city"' } }) },
    { tc({ index = 0, ["function"] = { arguments = 'ty": "Par' } }) },
    { tc({ index = 1, ["function"] = { arguments = ': "Tōk' } }) },
    { tc({ index = 0, ["function"] = { arguments = 'is"}' } }) },
    { tc({ index = 1, ["function"] = { arguments = 'yō"}' } }) },
    { {}, "tool_calls" },
  })
end

local function tool_messages(transcript)
  local out = {}
  for _, m in ipairs(transcript) do
    if m.role == "tool" then out[#out + 1] = m end
  end
  return out
end

describe("client:run_tools", function()
  local srv, client
  fixture.client({ api_key = "k", model = "deepseek-ai/DeepSeek-V3.1", max_retries = 0 },
                 function(s, c) srv, client = s, c end)

  describe("the loop", function()
    it("runs parallel calls in order and returns the final response and the transcript", function()
      local seen = {}
      local user = msgs("Weather in Paris and Tokyo?")
      local resp, messages = client:run_tools{
        messages = user,
        tools = { weather_tool(function(args, call)
          seen[#seen + 1] = { city = args.city, id = call.id, name = call["function"].name }
          return { city = args.city, temp = 21 }
        end) },
      }
      assert.is_table(resp, tostring(messages))
      assert.same({ { city = "Paris", id = "call_1", name = "get_weather" },
                    { city = "Tokyo", id = "call_2", name = "get_weather" } }, seen)
      assert.equal("stop", resp.choices[1].finish_reason)
      -- transcript: user, assistant (tool calls), tool, tool, assistant
      assert.equal(5, #messages)
      assert.equal(user[1], messages[1])
      assert.equal("assistant", messages[2].role)
      assert.equal(2, #messages[2].tool_calls)
      for i, city in ipairs({ "Paris", "Tokyo" }) do
        local m = messages[2 + i]
        assert.equal("tool", m.role)
        assert.equal("call_" .. i, m.tool_call_id)
        assert.same({ city = city, temp = 21 }, json.decode(m.content))
        assert.is_nil(m.name)
      end
      local content = resp.choices[1].message.content
      assert.equal("Here is what the tools returned: " .. messages[3].content .. "; " .. messages[4].content, content)
      assert.equal(resp.choices[1].message, messages[5])
      assert.is_true(json.is_array(messages))
      -- the caller's messages are not mutated
      assert.equal(1, #user)
      -- the second request carries the whole transcript
      local reqs = srv:requests()
      assert.equal(2, #reqs)
      local sent = json.decode(reqs[2].body)
      assert.equal(4, #sent.messages)
      assert.equal("call_2", sent.messages[4].tool_call_id)
      assert.equal("get_weather", sent.messages[2].tool_calls[1]["function"].name)
    end)

    it("never sends handlers or the client-side keys", function()
      local resp = client:run_tools{
        messages = msgs("Weather in Paris?"), max_rounds = 3,
        on_content = function() end, on_tool_call = function() end,
        tools = { weather_tool(function() return "sunny" end) },
      }
      assert.is_table(resp)
      for _, req in ipairs(srv:requests()) do
        for _, key in ipairs({ "handler", "max_rounds", "on_content", "on_tool_call" }) do
          assert.is_nil(req.body:find('"' .. key .. '"', 1, true), key)
        end
        local sent = json.decode(req.body)
        assert.same({ type = "function", ["function"] = { name = "get_weather",
          description = "Current weather in a city", parameters = json.decode(json.encode(WEATHER_PARAMS)) } },
          sent.tools[1])
      end
    end)

    it("sends a string result as it is, any other value JSON-encoded, nil as null", function()
      local results = { "sunny, 21°C", 42, true, nil, json.array(), { 1, 2 } }
      local i = 0
      local tools = { weather_tool(function()
        i = i + 1
        return results[i]
      end) }
      local expected = { "sunny, 21°C", "42", "true", "null", "[]", "[1,2]" }
      for n = 1, #expected do
        srv:reset()
        local _, messages = client:run_tools{ messages = msgs("Weather in Oslo?"), tools = tools }
        assert.equal(expected[n], tool_messages(messages)[1].content)
      end
    end)

    it("a handler that returns nil, why reports the failure", function()
      local _, messages = client:run_tools{ messages = msgs("Weather in Atlantis?"),
        tools = { weather_tool(function(args) return nil, "no such city: " .. args.city end) } }
      assert.equal('error: tool "get_weather" failed: no such city: Atlantis', tool_messages(messages)[1].content)
    end)

    it("a handler that raises is reported to the model and the loop goes on", function()
      local _
      local resp, messages = client:run_tools{ messages = msgs("Weather in Paris?"),
        tools = { weather_tool(function() error("boom", 0) end) } }
      assert.is_table(resp)
      assert.equal('error: tool "get_weather" raised: boom', tool_messages(messages)[1].content)
      assert.truthy(resp.choices[1].message.content:find('raised: boom', 1, true))
      -- a raised table
      srv:reset()
      _, messages = client:run_tools{ messages = msgs("Weather in Paris?"),
        tools = { weather_tool(function() error({ code = 7 }) end) } }
      assert.equal('error: tool "get_weather" raised: {"code":7}', tool_messages(messages)[1].content)
    end)

    it("an unknown tool is reported to the model and the loop goes on", function()
      srv:enqueue(calls_reply({ { name = "nope", arguments = "{}" } }))
      local ran = false
      local resp, messages = client:run_tools{ messages = msgs("Weather in Paris?"),
        tools = { weather_tool(function() ran = true end) } }
      assert.is_table(resp)
      assert.is_false(ran)
      local t = tool_messages(messages)
      assert.equal(1, #t)
      assert.equal("call_1", t[1].tool_call_id)
      assert.equal('error: unknown tool "nope" (the tools are: get_weather)', t[1].content)
      assert.equal("stop", resp.choices[1].finish_reason)
    end)

    it("arguments that do not decode are reported to the model", function()
      srv:enqueue(calls_reply({ { name = "get_weather", arguments = '{"city": "Par' } }))
      local ran = false
      local resp, messages = client:run_tools{ messages = msgs("Weather in Paris?"),
        tools = { weather_tool(function() ran = true end) } }
      assert.is_table(resp)
      assert.is_false(ran)
      local content = tool_messages(messages)[1].content
      assert.truthy(content:find('^error: the arguments of tool "get_weather" are not valid JSON'))
      assert.truthy(content:find('{"city": "Par', 1, true))
    end)

    it("a call without an id is given one, and answered with it", function()
      srv:enqueue(calls_reply({ { name = "get_weather", arguments = '{"city": "Rome"}', id = null } }))
      local resp, messages = client:run_tools{ messages = msgs("x"),
        tools = { weather_tool(function(args) return args.city end) } }
      assert.is_table(resp)
      assert.equal("call_1_1", messages[2].tool_calls[1].id)
      assert.same({ role = "tool", tool_call_id = "call_1_1", content = "Rome" }, messages[3])
    end)

    it("empty arguments are an empty object", function()
      srv:enqueue(calls_reply({ { name = "get_weather", arguments = "" } }))
      local got
      client:run_tools{ messages = msgs("x"), tools = { weather_tool(function(args) got = args end) } }
      assert.same({}, got)
    end)

    it("a result that cannot be encoded is reported like a raise", function()
      local _, messages = client:run_tools{ messages = msgs("Weather in Paris?"),
        tools = { weather_tool(function() return { f = print } end) } }
      assert.truthy(tool_messages(messages)[1].content:find(
        '^error: tool "get_weather" returned a value that cannot be encoded as JSON'))
    end)

    it("a tool without a handler is reported to the model", function()
      local _, messages = client:run_tools{ messages = msgs("Weather in Paris?"),
        tools = { baseten.tool{ name = "get_weather", parameters = WEATHER_PARAMS } } }
      assert.equal('error: tool "get_weather" has no handler', tool_messages(messages)[1].content)
    end)

    it("an OpenAI-shaped tool with a handler works; the handler is not sent", function()
      local _, got = nil, {}
      local tools = {
        { type = "function", ["function"] = { name = "lookup", parameters = WEATHER_PARAMS },
          handler = function(args) got[#got + 1] = args.city; return "ok " .. args.city end },
      }
      local resp, messages = client:run_tools{ messages = msgs("Weather in Lima?"), tools = tools }
      assert.is_table(resp)
      assert.same({ "Lima" }, got)
      assert.equal("ok Lima", tool_messages(messages)[1].content)
      -- a handler on the function table works too
      srv:reset()
      tools = { { type = "function", ["function"] = { name = "lookup", parameters = WEATHER_PARAMS,
                  handler = function(args) return "fn " .. args.city end } } }
      _, messages = client:run_tools{ messages = msgs("Weather in Lima?"), tools = tools }
      assert.equal("fn Lima", tool_messages(messages)[1].content)
      for _, req in ipairs(srv:requests()) do
        assert.is_nil(req.body:find("handler", 1, true))
      end
      assert.is_function(tools[1]["function"].handler) -- the caller's tool is untouched
    end)

    it("passes tool_choice and parallel_tool_calls through", function()
      local n = 0
      local choice = { type = "function", ["function"] = { name = "get_weather" } }
      local resp, messages = client:run_tools{
        messages = msgs("Weather in Paris and Tokyo?"), tool_choice = choice, parallel_tool_calls = false,
        tools = { weather_tool(function() n = n + 1; return "x" end) } }
      assert.is_table(resp)
      assert.equal(1, n) -- parallel_tool_calls = false: the mock makes one call
      assert.equal(1, #tool_messages(messages))
      for _, req in ipairs(srv:requests()) do
        local sent = json.decode(req.body)
        assert.same(choice, sent.tool_choice)
        assert.is_false(sent.parallel_tool_calls)
        assert.truthy(req.body:find('"parallel_tool_calls":false', 1, true))
      end
      srv:reset()
      assert(client:run_tools{ messages = msgs("Weather in Paris?"), tool_choice = "auto",
        tools = { weather_tool(function() return "x" end) } })
      assert.equal("auto", json.decode(srv:requests()[1].body).tool_choice)
    end)

    it("on_tool_call runs once per call, before its handler", function()
      local log = {}
      client:run_tools{
        messages = msgs("Weather in Paris and Tokyo?"),
        on_tool_call = function(call) log[#log + 1] = "call " .. call.id end,
        on_content = function() log[#log + 1] = "content" end,
        tools = { weather_tool(function(args) log[#log + 1] = "run " .. args.city; return "x" end) },
      }
      assert.same({ "call call_1", "run Paris", "call call_2", "run Tokyo", "content" }, log)
    end)
  end)

  describe("max_rounds", function()
    it("stops with tool calls pending and returns that response and the transcript", function()
      local ran = 0
      local tools = { weather_tool(function() ran = ran + 1; return "x" end) }
      local resp, messages = client:run_tools{ messages = msgs("Weather in Paris?"), tools = tools, max_rounds = 1 }
      assert.equal(0, ran)
      assert.equal("tool_calls", resp.choices[1].finish_reason)
      assert.equal(2, #messages)
      assert.equal(resp.choices[1].message, messages[2])
      assert.equal(1, #srv:requests())
      -- continuing with the transcript runs the pending calls first
      local resp2, messages2 = client:run_tools{ messages = messages, tools = tools }
      assert.equal(1, ran)
      assert.equal("stop", resp2.choices[1].finish_reason)
      assert.equal(4, #messages2)
      assert.equal("tool", messages2[3].role)
      assert.equal(2, #messages) -- not mutated
    end)

    it("counts model calls: max_rounds = 2 makes two", function()
      srv:enqueue(calls_reply({ { name = "get_weather", arguments = '{"city": "A"}' } }),
                  calls_reply({ { name = "get_weather", arguments = '{"city": "B"}', id = "call_9" } }),
                  calls_reply({ { name = "get_weather", arguments = '{"city": "C"}' } }))
      local cities = {}
      local resp, messages = client:run_tools{ messages = msgs("x"), max_rounds = 2,
        tools = { weather_tool(function(args) cities[#cities + 1] = args.city; return "ok" end) } }
      assert.same({ "A" }, cities)
      assert.equal(2, #srv:requests())
      assert.equal("tool_calls", resp.choices[1].finish_reason)
      assert.equal("call_9", resp.choices[1].message.tool_calls[1].id)
      assert.equal(4, #messages) -- user, assistant, tool, assistant (pending)
    end)

    it("defaults to 10", function()
      local r = {}
      for i = 1, 11 do r[i] = calls_reply({ { name = "get_weather", arguments = '{"city": "A"}' } }) end
      srv:enqueue(r)
      local resp = client:run_tools{ messages = msgs("x"), tools = { weather_tool(function() return "x" end) } }
      assert.equal("tool_calls", resp.choices[1].finish_reason)
      assert.equal(10, #srv:requests())
    end)
  end)

  describe("failure", function()
    it("returns nil, err with the transcript so far when a later round fails", function()
      srv:enqueue(calls_reply({ { name = "get_weather", arguments = '{"city": "Paris"}' } }),
                  { status = 400, json = { error = "context too long" } })
      local user = msgs("Weather in Paris?")
      local resp, err = client:run_tools{ messages = user, tools = { weather_tool(function() return "sunny" end) } }
      assert.is_nil(resp)
      assert.equal("bad_request", err.kind)
      assert.equal("context too long", err.message)
      assert.equal(3, #err.messages)
      assert.equal("user", err.messages[1].role)
      assert.equal("assistant", err.messages[2].role)
      assert.same({ role = "tool", tool_call_id = "call_1", content = "sunny" }, err.messages[3])
      assert.equal(1, #user)
    end)

    it("a first-round failure carries the caller's messages", function()
      srv:enqueue({ status = 401, json = { error = "bad key" } })
      local _, err = client:run_tools{ messages = msgs("x"), tools = { weather_tool(function() end) } }
      assert.equal("authentication", err.kind)
      assert.equal(1, #err.messages)
    end)

    it("a stream cut off in a round fails with the transcript", function()
      local body = parallel_sse()
      srv:enqueue({ chunks = { body:sub(1, 300) }, truncate = true })
      local _, err = client:run_tools{ messages = msgs("x"), stream = true,
        tools = { weather_tool(function() return "x" end) } }
      assert.equal("connection", err.kind)
      assert.equal(1, #err.messages)
    end)

    it("raises on misuse", function()
      local tools = { weather_tool(function() end) }
      assert.has_error(function() client:run_tools("x") end)
      assert.has_error(function() client:run_tools{ messages = {}, tools = tools } end)
      assert.has_error(function() client:run_tools{ messages = msgs("x"), tools = tools, max_rounds = 0 } end)
      assert.has_error(function() client:run_tools{ messages = msgs("x"), tools = tools, max_rounds = 1.5 } end)
      assert.has_error(function() client:run_tools{ messages = msgs("x"), tools = tools, on_content = 1 } end)
      assert.has_error(function() client:run_tools{ messages = msgs("x"), tools = "get_weather" } end)
      assert.has_error(function()
        client:run_tools{ messages = msgs("x"),
                          tools = { { type = "function", ["function"] = { name = "a" }, handler = 1 } } }
      end)
      assert.equal(0, #srv:requests())
    end)

    it("a callback that raises raises out of run_tools", function()
      assert.has_error(function()
        client:run_tools{ messages = msgs("Weather in Paris?"), stream = true,
          on_content = function() error("stop here") end,
          tools = { weather_tool(function() return "x" end) } }
      end, "stop here")
    end)
  end)

  describe("streaming", function()
    it("stream = true: on_content gets the deltas, on_tool_call each call before its handler", function()
      local pieces, log = {}, {}
      local resp, messages = client:run_tools{
        messages = msgs("Weather in Paris and Tokyo?"), stream = true,
        on_content = function(p) pieces[#pieces + 1] = p end,
        on_tool_call = function(call) log[#log + 1] = "call " .. call.id .. " " .. call["function"].arguments end,
        tools = { weather_tool(function(args) log[#log + 1] = "run " .. args.city; return args.city .. ": 21" end) },
      }
      assert.is_table(resp, tostring(messages))
      assert.same({ 'call call_1 {"city":"Paris"}', "run Paris", 'call call_2 {"city":"Tokyo"}', "run Tokyo" }, log)
      assert.is_true(#pieces > 1)
      assert.equal(resp.choices[1].message.content, table.concat(pieces))
      assert.equal("Here is what the tools returned: Paris: 21; Tokyo: 21", resp.choices[1].message.content)
      assert.equal(5, #messages)
      for _, req in ipairs(srv:requests()) do
        assert.is_true(json.decode(req.body).stream)
        assert.is_nil(req.body:find('"on_content"', 1, true))
      end
    end)

    for _, split in ipairs({ "byte", "random" }) do
      it("two parallel calls with arguments split across deltas (split = " .. split .. ")", function()
        srv:enqueue({ split = split, chunks = { parallel_sse() } })
        local seen, calls = {}, {}
        local resp, messages = client:run_tools{
          messages = msgs("Weather in Paris and Tōkyō?"), stream = true,
          on_tool_call = function(call) calls[#calls + 1] = call.id end,
          tools = { weather_tool(function(args, call) seen[#seen + 1] = call.id .. "=" .. args.city; return "ok" end) },
        }
        assert.is_table(resp, tostring(messages))
        assert.same({ "call_a", "call_b" }, calls)
        assert.same({ "call_a=Paris", "call_b=Tōkyō" }, seen)
        -- the accumulated assistant message goes into the transcript
        local a = messages[2]
        assert.equal("assistant", a.role)
        assert.equal("Checking", a.content)
        assert.equal(2, #a.tool_calls)
        local function call(id, args)
          return { id = id, type = "function", ["function"] = { name = "get_weather", arguments = args } }
        end
        assert.same(call("call_a", '{"city": "Paris"}'), a.tool_calls[1])
        assert.same(call("call_b", '{"city": "Tōkyō"}'), a.tool_calls[2])
        assert.same({ role = "tool", tool_call_id = "call_a", content = "ok" }, messages[3])
        assert.same({ role = "tool", tool_call_id = "call_b", content = "ok" }, messages[4])
        -- and it is what the second round sent back
        local sent = json.decode(srv:requests()[2].body)
        assert.equal('{"city": "Tōkyō"}', sent.messages[2].tool_calls[2]["function"].arguments)
        assert.is_nil(sent.messages[2].tool_calls[1].index)
        assert.equal("Here is what the tools returned: ok; ok", resp.choices[1].message.content)
      end)
    end
  end)
end)
