-- Issue 28: client:start_tools (a tool loop that poll drives), cancel that
-- stops everything, resume from a transcript, session affinity, budgets
-- and cost. Against the local test server; waits count events (polls,
-- requests the server saw), not seconds.
local baseten = require("baseten")
local fixture = require("spec.support.fixture")
local core = require("baseten.core")
local util = require("spec.support.util")

local json = baseten.json

local msgs, weather_tool = fixture.msgs, fixture.weather_tool

local function sync_weather(args)
  return { city = args.city, temp = 21 }
end

-- Polls until `cond()` or `limit` seconds pass; returns the polls made.
local function poll_until(client, cond, limit)
  local deadline, polls = core.now() + (limit or 20), 0
  while not cond() and core.now() < deadline do
    client:poll(0.01)
    polls = polls + 1
  end
  return polls
end

-- Keeps polling for `seconds` (the server gets a chance to see anything sent).
local function poll_for(client, seconds)
  local deadline = core.now() + seconds
  while core.now() < deadline do
    client:poll(0.02)
    core.sleep(0.01)
  end
end

local function count_requests(srv)
  return #srv:requests()
end

local function roles(transcript)
  local out = {}
  for i, m in ipairs(transcript) do out[i] = m.role end
  return table.concat(out, ",")
end

-- A streamed answer whose words come slowly (0.2 s apart).
local function slow_stream(words)
  return { chunks = fixture.sse_events(words), chunk_delay = 0.2 }
end

describe("client:start_tools", function()
  local srv, client
  fixture.client({ api_key = "k", model = "deepseek-ai/DeepSeek-V3.1", max_retries = 0 },
                 function(s, c) srv, client = s, c end)

  it("runs the loop inside poll with a synchronous handler, calling every callback", function()
    local events, done = {}, nil
    local h = client:start_tools({
      messages = msgs("Weather in Paris and Tokyo?"),
      tools = { weather_tool(sync_weather) },
    }, {
      on_tool_call = function(call) events[#events + 1] = "call " .. call.id end,
      on_tool_result = function(call, text)
        events[#events + 1] = "result " .. call.id .. " " .. json.decode(text).city
      end,
      on_round = function(n, resp) events[#events + 1] = "round " .. n .. " " .. resp.choices[1].finish_reason end,
      on_done = function(resp, transcript, err) done = { resp = resp, transcript = transcript, err = err } end,
    })
    assert.is_false(h:done())
    assert.equal(0, count_requests(srv)) -- nothing sent before the first poll
    local polls = poll_until(client, function() return done ~= nil end)
    -- it took several polls: none of them waited for the whole loop (not in
    -- the GC-torture pass, whose finalizers perform the engine inside a poll)
    if not util.skip_latency() then assert.is_true(polls > 1) end
    assert.is_nil(done.err)
    assert.equal("stop", done.resp.choices[1].finish_reason)
    assert.equal("user,assistant,tool,tool,assistant", roles(done.transcript))
    assert.same({ "round 1 tool_calls", "call call_1", "result call_1 Paris", "call call_2",
                  "result call_2 Tokyo", "round 2 stop" }, events)
    local resp, transcript = h:result()
    assert.equal(done.resp, resp)
    assert.equal(done.transcript, transcript)
    assert.equal(2, count_requests(srv))
  end)

  it("waits for an asynchronous handler's resolve without sending anything", function()
    local pending, done = nil, nil
    client:start_tools({
      messages = msgs("Weather in Paris?"),
      tools = { weather_tool(function(args)
        return function(resolve) pending = { resolve = resolve, city = args.city } end
      end) },
      on_done = function(resp, transcript, err) done = { resp, transcript, err } end,
    })
    poll_until(client, function() return pending ~= nil end)
    assert.is_table(pending)
    -- the loop waits: many polls, no second request
    for _ = 1, 20 do client:poll(0.01) end
    assert.equal(1, count_requests(srv))
    assert.is_nil(done)
    pending.resolve({ city = pending.city, temp = 7 })
    pending.resolve("a second resolve is ignored")
    poll_until(client, function() return done ~= nil end)
    assert.is_nil(done[3])
    local tool = done[2][3]
    assert.equal("tool", tool.role)
    assert.same({ city = "Paris", temp = 7 }, json.decode(tool.content))
    assert.equal(2, count_requests(srv))
  end)

  it("reports an asynchronous failure, resolve(nil, why), to the model", function()
    local done
    client:start_tools({
      messages = msgs("Weather in Paris?"),
      tools = { weather_tool(function() return function(resolve) resolve(nil, "no network") end end) },
      on_done = function(resp, transcript) done = { resp, transcript } end,
    })
    poll_until(client, function() return done ~= nil end)
    assert.equal('error: tool "get_weather" failed: no network', done[2][3].content)
  end)

  it("asks confirm(name, args, resolve) and waits for its answer", function()
    local asked, ran, done = {}, 0, nil
    client:start_tools({
      messages = msgs("Weather in Paris and Tokyo?"),
      tools = { weather_tool(function(args) ran = ran + 1; return sync_weather(args) end) },
      confirm = function(name, args, resolve) asked[#asked + 1] = { name = name, city = args.city, resolve = resolve } end,
      on_done = function(resp, transcript, err) done = { resp, transcript, err } end,
    })
    poll_until(client, function() return #asked == 1 end)
    for _ = 1, 10 do client:poll(0.01) end
    assert.equal(1, #asked) -- the second call waits for the first answer
    assert.equal(0, ran)
    assert.same({ "get_weather", "Paris" }, { asked[1].name, asked[1].city })
    asked[1].resolve(false, "not now")
    poll_until(client, function() return #asked == 2 end)
    asked[2].resolve(true)
    poll_until(client, function() return done ~= nil end)
    assert.is_nil(done[3])
    assert.equal(1, ran)
    assert.equal('error: the user refused to run tool "get_weather": not now', done[2][3].content)
    assert.equal("Tokyo", json.decode(done[2][4].content).city)
  end)

  it("takes a synchronous confirm answer too, in start_tools and run_tools", function()
    local done
    client:start_tools({
      messages = msgs("Weather in Paris?"), tools = { weather_tool(sync_weather) },
      confirm = function() return false end,
      on_done = function(resp, transcript) done = { resp, transcript } end,
    })
    poll_until(client, function() return done ~= nil end)
    assert.equal('error: the user refused to run tool "get_weather"', done[2][3].content)
    local resp, transcript = client:run_tools{
      messages = msgs("Weather in Paris?"), tools = { weather_tool(sync_weather) },
      confirm = function(_, _, resolve) resolve(true) end,
    }
    assert.is_table(resp, tostring(transcript))
    assert.equal("Paris", json.decode(transcript[3].content).city)
  end)

  it("run_tools drives asynchronous handlers that resolve at once, and raises for one that cannot", function()
    local resp, transcript = client:run_tools{
      messages = msgs("Weather in Paris?"),
      tools = { weather_tool(function(args) return function(resolve) resolve(sync_weather(args)) end end) },
    }
    assert.is_table(resp, tostring(transcript))
    assert.equal("Paris", json.decode(transcript[3].content).city)
    assert.has_error(function()
      client:run_tools{ messages = msgs("Weather in Paris?"),
                        tools = { weather_tool(function() return function() end end) } }
    end, 'baseten: run_tools: tool "get_weather" (or its confirm) answers later, through resolve,'
      .. " and nothing run_tools drives can answer it: use client:start_tools")
  end)

  it("run_tools drives the client's other tasks while a handler waits on one of them", function()
    local resp, transcript = client:run_tools{
      messages = msgs("Weather in Paris?"),
      tools = { weather_tool(function(args)
        return function(resolve) -- the handler asks another model, non-blocking
          client:start({ messages = msgs("about " .. args.city) }, { on_done = function(r, e)
            resolve(r and r.choices[1].message.content, e and tostring(e))
          end })
        end
      end) },
    }
    assert.is_table(resp, tostring(transcript))
    assert.equal("Hello from the local test server. You said: about Paris", transcript[3].content)
    assert.equal(3, count_requests(srv))
  end)

  it("streams each round's text to on_content", function()
    local pieces, done = {}, nil
    client:start_tools({
      messages = msgs("Weather in Paris?"), tools = { weather_tool(sync_weather) }, stream = true,
      on_content = function(p) pieces[#pieces + 1] = p end,
      on_done = function(resp, transcript, err) done = { resp, transcript, err } end,
    })
    poll_until(client, function() return done ~= nil end)
    assert.is_nil(done[3])
    assert.equal(done[1].choices[1].message.content, table.concat(pieces))
    assert.is_nil(done[2][2].tool_calls[1].index)
  end)

  it("raises plainly wrong arguments at the caller's line", function()
    assert.has_error(function() client:start_tools("x") end, "baseten: start_tools expects a request table")
    assert.has_error(function() client:start_tools({ messages = msgs("x") }, { on_done = 1 }) end,
      "baseten: start_tools: opts.on_done must be a function, not 1")
    assert.has_error(function() client:start_tools({ messages = msgs("x"), max_total_tokens = 0 }) end,
      "baseten: start_tools: req.max_total_tokens must be a positive integer, not 0")
    assert.has_error(function() client:chat({ messages = msgs("x") }, { session = "a\nb" }) end)
  end)
end)

describe("cancel", function()
  local srv, client
  fixture.client({ api_key = "k", model = "deepseek-ai/DeepSeek-V3.1", max_retries = 0 },
                 function(s, c) srv, client = s, c end)

  after_each(function()
    client:close() -- a test that made its own client (the fixture closes the one it made)
  end)

  it("during a stream: the transfer closes, err.partial has the text so far", function()
    srv:enqueue(slow_stream({ "one ", "two ", "three ", "four ", "five ", "six" }))
    local pieces, done = {}, nil
    local h = client:start_tools({
      messages = msgs("hi"), stream = true, tools = { weather_tool(sync_weather) },
      on_content = function(p) pieces[#pieces + 1] = p end,
      on_done = function(resp, transcript, err) done = { resp, transcript, err } end,
    })
    poll_until(client, function() return #pieces >= 1 end)
    h:cancel()
    assert.is_table(done)
    local err = done[3]
    assert.equal("canceled", err.kind)
    assert.equal(table.concat(pieces), err.partial.choices[1].message.content)
    assert.equal(err.transcript, done[2])
    assert.equal("user", roles(err.transcript))
    poll_for(client, 1)
    assert.equal(1, count_requests(srv))
    assert.equal(0, srv:stats().open_connections)
  end)

  it("during a retry's backoff: the retry is never sent", function()
    client = baseten.new{ api_key = "k", base_url = srv.url, model = "deepseek-ai/DeepSeek-V3.1", max_retries = 3 }
    srv:enqueue({ status = 429, headers = { ["Retry-After"] = "1" }, json = { error = "slow down" } })
    local done
    local h = client:start_tools({
      messages = msgs("Weather in Paris?"), tools = { weather_tool(sync_weather) },
      on_done = function(_, _, err) done = err end,
    })
    poll_until(client, function() return count_requests(srv) == 1 end)
    for _ = 1, 5 do client:poll(0) end
    assert.equal(1, count_requests(srv))
    h:cancel()
    assert.equal("canceled", done.kind)
    poll_for(client, 1.5) -- past the Retry-After
    assert.equal(1, count_requests(srv))
  end)

  it("a plain request during its retry's backoff, and a stream: nothing more is sent", function()
    client = baseten.new{ api_key = "k", base_url = srv.url, model = "deepseek-ai/DeepSeek-V3.1", max_retries = 3 }
    srv:enqueue({ status = 503, headers = { ["Retry-After"] = "1" } })
    local done
    local h = client:start({ messages = msgs("hi") }, { on_done = function(_, err) done = err end })
    poll_until(client, function() return count_requests(srv) == 1 end)
    for _ = 1, 5 do client:poll(0) end
    h:cancel()
    assert.equal("canceled", done.kind)
    srv:enqueue(slow_stream({ "a ", "b ", "c ", "d ", "e" }))
    local s = assert(client:stream{ messages = msgs("hi") })
    assert.is_table(s:next())
    s:close()
    poll_for(client, 1.5)
    assert.equal(2, count_requests(srv))
  end)

  it("between rounds: no next round; the transcript resumes with run_tools and start_tools", function()
    local done, h
    h = client:start_tools({
      messages = msgs("Weather in Paris?"), tools = { weather_tool(sync_weather) },
      on_round = function() h:cancel() end,
      on_done = function(_, _, err) done = err end,
    })
    poll_until(client, function() return done ~= nil end)
    assert.equal("canceled", done.kind)
    assert.equal("user,assistant", roles(done.transcript))
    poll_for(client, 0.5)
    assert.equal(1, count_requests(srv))
    -- resume: the unanswered call runs first, then the next round
    local resp, transcript = client:run_tools{ transcript = done.transcript, tools = { weather_tool(sync_weather) } }
    assert.is_table(resp, tostring(transcript))
    assert.equal("user,assistant,tool,assistant", roles(transcript))
    assert.equal(2, count_requests(srv))
    local again
    client:start_tools({ transcript = done.transcript, tools = { weather_tool(sync_weather) } },
                       { on_done = function(r, t, e) again = { r, t, e } end })
    poll_until(client, function() return again ~= nil end)
    assert.is_nil(again[3])
    assert.equal("user,assistant,tool,assistant", roles(again[2]))
  end)

  it("during a handler: the remaining handlers never start, a late resolve is ignored", function()
    local started, resolve, done = 0, nil, nil
    local h = client:start_tools({
      messages = msgs("Weather in Paris and Tokyo?"),
      tools = { weather_tool(function() started = started + 1; return function(r) resolve = r end end) },
      on_done = function(_, _, err) done = err end,
    })
    poll_until(client, function() return resolve ~= nil end)
    h:cancel()
    resolve({ temp = 1 })
    poll_for(client, 0.5)
    assert.equal(1, started)
    assert.equal("canceled", done.kind)
    assert.equal("user,assistant", roles(done.transcript))
    assert.equal(1, count_requests(srv))
  end)

  it("from on_tool_call: that handler and the next never start", function()
    local started, done, h = 0, nil, nil
    h = client:start_tools({
      messages = msgs("Weather in Paris and Tokyo?"),
      tools = { weather_tool(function(args) started = started + 1; return sync_weather(args) end) },
      on_tool_call = function() h:cancel() end,
      on_done = function(_, _, err) done = err end,
    })
    poll_until(client, function() return done ~= nil end)
    poll_for(client, 0.3)
    assert.equal(0, started)
    assert.equal("canceled", done.kind)
    assert.equal("user,assistant", roles(done.transcript))
    assert.equal(1, count_requests(srv))
  end)

  it("during a batch: queued requests are never sent", function()
    local reqs = {}
    for i = 1, 6 do reqs[i] = { messages = msgs("n" .. i) } end
    for _ = 1, 6 do srv:enqueue({ delay = 0.3, json = { id = "x", object = "chat.completion", created = 1,
      model = "m", choices = { { index = 0, finish_reason = "stop", message = { role = "assistant", content = "ok" } } } } })
    end
    local b = client:start_batch(reqs, { concurrency = 2 })
    poll_until(client, function() return count_requests(srv) >= 2 end)
    b:cancel()
    local _, errs = b:result()
    poll_for(client, 1)
    assert.equal(2, count_requests(srv))
    for i = 1, 6 do assert.equal("canceled", errs[i].kind) end
  end)
end)

describe("session affinity", function()
  local srv
  fixture.server(function(s) srv = s end)

  local function sessions()
    local out = {}
    for i, r in ipairs(srv:requests()) do out[i] = r.header_map["x-session-affinity"] or false end
    return out
  end

  it("run_tools sends one random id on every round of a conversation, another on the next", function()
    local client = baseten.new{ api_key = "k", base_url = srv.url, model = "deepseek-ai/DeepSeek-V3.1" }
    for _ = 1, 2 do
      assert.is_table(client:run_tools{ messages = msgs("Weather in Paris?"), tools = { weather_tool(sync_weather) } })
    end
    local s = sessions()
    assert.equal(4, #s)
    assert.is_string(s[1])
    assert.equal(s[1], s[2])
    assert.equal(s[3], s[4])
    assert.not_equal(s[1], s[3])
  end)

  it("takes the client's id, a per-call id, or none with session = false", function()
    local client = baseten.new{ api_key = "k", base_url = srv.url, model = "deepseek-ai/DeepSeek-V3.1",
                                session = "conv-1" }
    assert.is_table(client:chat{ messages = msgs("a") })
    assert.is_table(client:chat({ messages = msgs("a") }, { session = "conv-2" }))
    assert.is_table(client:run_tools{ messages = msgs("Weather in Paris?"), tools = { weather_tool(sync_weather) } })
    assert.is_table(client:run_tools({ messages = msgs("Weather in Paris?"), tools = { weather_tool(sync_weather) } },
                                     { session = false }))
    local plain = baseten.new{ api_key = "k", base_url = srv.url, model = "deepseek-ai/DeepSeek-V3.1" }
    assert.is_table(plain:chat{ messages = msgs("a") })
    local started
    plain:start({ messages = msgs("a") }, { session = "s-8", on_done = function() started = true end })
    poll_until(plain, function() return started end)
    local batched = plain:batch({ { messages = msgs("a") } }, { session = "s-7" })
    assert.is_table(batched[1])
    local done
    plain:start_tools({ messages = msgs("Weather in Paris?"), tools = { weather_tool(sync_weather) },
                        session = "s-9", on_done = function() done = true end })
    poll_until(plain, function() return done end)
    assert.same({ "conv-1", "conv-2", "conv-1", "conv-1", false, false, false, "s-8", "s-7", "s-9", "s-9" },
                sessions())
  end)
end)

describe("budgets and cost", function()
  local srv
  fixture.server(function(s) srv = s end)

  local function reply(usage, content)
    return { json = { id = "x", object = "chat.completion", created = 1, model = "served-name",
      choices = { { index = 0, finish_reason = "stop", message = { role = "assistant", content = content or "ok" } } },
      usage = usage } }
  end

  it("max_total_tokens stops a tool loop with err.kind budget, keeping the transcript", function()
    local client = baseten.new{ api_key = "k", base_url = srv.url, model = "deepseek-ai/DeepSeek-V3.1" }
    local resp, err = client:run_tools{ messages = msgs("Weather in Paris?"), tools = { weather_tool(sync_weather) },
                                        max_total_tokens = 1 }
    assert.is_nil(resp)
    assert.equal("budget", err.kind)
    assert.equal("user,assistant", roles(err.transcript))
    assert.is_true(err.usage.total_tokens >= 1)
    assert.equal(1, count_requests(srv))
    local done
    client:start_tools({ messages = msgs("Weather in Paris?"), tools = { weather_tool(sync_weather) } },
                       { max_total_tokens = 1, on_done = function(_, t, e) done = { t, e } end })
    poll_until(client, function() return done ~= nil end)
    assert.equal("budget", done[2].kind)
    assert.equal(done[1], done[2].transcript)
    -- a budget large enough changes nothing
    assert.is_table(client:run_tools{ messages = msgs("Weather in Paris?"), tools = { weather_tool(sync_weather) },
                                      max_total_tokens = 100000 })
  end)

  it("max_total_tokens stops a batch: what was done is kept, the rest ends as budget", function()
    local client = baseten.new{ api_key = "k", base_url = srv.url, model = "m" }
    for _ = 1, 5 do srv:enqueue(reply({ prompt_tokens = 5, completion_tokens = 5, total_tokens = 10 })) end
    local reqs = {}
    for i = 1, 5 do reqs[i] = { messages = msgs("n" .. i) } end
    local resps, errs = client:batch(reqs, { concurrency = 1, max_total_tokens = 20 })
    assert.is_table(resps[1])
    assert.is_table(resps[2])
    for i = 3, 5 do assert.equal("budget", errs[i].kind) end
    assert.equal(2, count_requests(srv))
  end)

  it("client:usage() adds up cost with prices, cached tokens at their own price", function()
    local client = baseten.new{ api_key = "k", base_url = srv.url, model = "m",
      prices = { m = { prompt = 2, completion = 10, cached = 1 } } }
    srv:enqueue(reply({ prompt_tokens = 1000, completion_tokens = 100, total_tokens = 1100,
                        prompt_tokens_details = { cached_tokens = 400 } }))
    srv:enqueue(reply({ prompt_tokens = 1000000, completion_tokens = 0, total_tokens = 1000000 }))
    assert.is_table(client:chat{ messages = msgs("a") })
    assert.is_table(client:chat{ messages = msgs("b") })
    -- an unpriced model counts tokens, no cost
    srv:enqueue(reply({ prompt_tokens = 7, completion_tokens = 7, total_tokens = 14 }))
    assert.is_table(client:chat{ model = "other", messages = msgs("c") })
    local u = client:usage(true)
    local want = (600 * 2 + 400 * 1 + 100 * 10) / 1e6 + 2
    assert.is_true(math.abs(u.cost - want) < 1e-9, tostring(u.cost))
    assert.equal(400, u.cached_tokens)
    assert.equal(0, client:usage().cost)
    assert.is_nil(baseten.new{ api_key = "k", base_url = srv.url }:usage().cost)
  end)
end)
