-- client:usage(): running token totals across every call (issue 13), and
-- the usage details final() and chat keep, against the local server.
local baseten = require("baseten")
local fixture = require("spec.support.fixture")

local json = baseten.json

local function msgs(text)
  return { { role = "user", content = text } }
end

local ZERO = { requests = 0, prompt_tokens = 0, completion_tokens = 0, reasoning_tokens = 0, cached_tokens = 0 }

-- Adds a response's usage to expected totals `t`.
local function add(t, usage)
  t.requests = t.requests + 1
  if not usage then return end
  t.prompt_tokens = t.prompt_tokens + usage.prompt_tokens
  t.completion_tokens = t.completion_tokens + usage.completion_tokens
  local d = usage.completion_tokens_details
  t.reasoning_tokens = t.reasoning_tokens + (d and d.reasoning_tokens or 0)
  d = usage.prompt_tokens_details
  t.cached_tokens = t.cached_tokens + (d and d.cached_tokens or 0)
end

local function copy(t)
  local c = {}
  for k, v in pairs(t) do c[k] = v end
  return c
end

-- A scripted stream: `n` content chunks, each with cumulative usage (as
-- vLLM's continuous usage stats send it): after chunk i, completion i.
local function usage_stream(n)
  local out = {}
  for i = 1, n do
    out[i] = "data: " .. json.encode({
      id = "c", object = "chat.completion.chunk", created = 1, model = "m",
      choices = { { index = 0, delta = { content = "w" .. i .. " " } } },
      usage = { prompt_tokens = 10, completion_tokens = i, total_tokens = 10 + i,
                prompt_tokens_details = { cached_tokens = 4 },
                completion_tokens_details = { reasoning_tokens = i - 1 } },
    }) .. "\n\n"
  end
  out[#out + 1] = "data: [DONE]\n\n"
  return { chunks = out, headers = { ["Content-Type"] = "text/event-stream" } }
end

local DETAILED = {
  prompt_tokens = 12, completion_tokens = 30, total_tokens = 42,
  prompt_tokens_details = { cached_tokens = 8 },
  completion_tokens_details = { reasoning_tokens = 21 },
}

describe("usage", function()
  local srv, client
  fixture.client({ api_key = "k", model = "test/reasoning", max_retries = 2 }, function(s, c) srv, client = s, c end)

  local function drain()
    while client:poll(1) > 0 do end
  end

  it("a new client starts at zero", function()
    assert.are.same(ZERO, client:usage())
  end)

  it("chat and final() keep reasoning_tokens and cached_tokens", function()
    srv:enqueue({ json = { id = "x", object = "chat.completion", created = 1, model = "m", usage = DETAILED,
                           choices = { { index = 0, finish_reason = "stop",
                                         message = { role = "assistant", content = "hi" } } } } })
    local resp = assert(client:chat{ messages = msgs("hi") })
    assert.are.same(DETAILED, resp.usage)
    srv:enqueue({ chunks = {
      'data: {"id":"x","object":"chat.completion.chunk","created":1,"model":"m",'
        .. '"choices":[{"index":0,"delta":{"content":"hi"},"finish_reason":"stop"}]}\n\n',
      'data: {"id":"x","object":"chat.completion.chunk","created":1,"model":"m","choices":[],"usage":'
        .. json.encode(DETAILED) .. '}\n\n',
      "data: [DONE]\n\n" }, headers = { ["Content-Type"] = "text/event-stream" } })
    local final = assert(assert(client:stream{ messages = msgs("hi") }):final())
    assert.are.same(DETAILED, final.usage)
    -- and the mock reasoning model's own report
    local r = assert(client:chat{ messages = msgs("hi") })
    assert.is_true(r.usage.completion_tokens_details.reasoning_tokens > 0)
  end)

  it("adds up blocking, streamed, non-blocking and retried calls; usage(true) returns and resets", function()
    local want = copy(ZERO)
    -- blocking
    add(want, assert(client:chat{ messages = msgs("one") }).usage)
    -- streamed, with stream() and with chat{stream = true}
    add(want, assert(assert(client:stream{ messages = msgs("two words") }):final()).usage)
    add(want, assert(client:chat{ messages = msgs("three more words"), stream = true }).usage)
    -- non-blocking, plain and streamed
    local got = {}
    client:start({ messages = msgs("four") }, { on_done = function(resp) got[1] = resp end })
    client:start({ messages = msgs("five five"), stream = true }, { on_done = function(resp) got[2] = resp end })
    drain()
    add(want, got[1].usage)
    add(want, got[2].usage)
    -- retried: two 503s, then the answer; counted once
    srv:enqueue({ status = 503, headers = { ["retry-after-ms"] = "0" } },
                { status = 503, headers = { ["retry-after-ms"] = "0" } })
    add(want, assert(client:chat{ messages = msgs("six") }).usage)
    srv:enqueue({ status = 503, headers = { ["retry-after-ms"] = "0" } })
    add(want, assert(assert(client:stream{ messages = msgs("seven") }):final()).usage)
    -- cached tokens
    srv:enqueue({ json = { id = "x", object = "chat.completion", created = 1, model = "m", usage = DETAILED,
                           choices = { { index = 0, finish_reason = "stop",
                                         message = { role = "assistant", content = "hi" } } } } })
    add(want, assert(client:chat{ messages = msgs("eight") }).usage)
    -- a models list is a request with no tokens; a failed call counts nothing
    assert(client:models())
    add(want, nil)
    srv:enqueue({ status = 400, json = { error = { message = "bad" } } })
    local none, err = client:chat{ messages = msgs("nine") }
    assert.is_nil(none)
    assert.are.equal("bad_request", err.kind)

    assert.are.equal(9, want.requests)
    assert.is_true(want.reasoning_tokens > 21 and want.cached_tokens == 8)
    assert.are.same(want, client:usage())
    assert.are.same(want, client:usage()) -- reading does not reset
    local u = client:usage(true)
    assert.are.same(want, u)
    assert.are.same(ZERO, client:usage())
    u.requests = 99 -- a copy: changing it changes nothing
    assert.are.same(ZERO, client:usage())
    local after = assert(client:chat{ messages = msgs("again") }).usage
    local w2 = copy(ZERO)
    add(w2, after)
    assert.are.same(w2, client:usage())
  end)

  it("run_tools counts each round", function()
    local want = copy(ZERO)
    local tool = baseten.tool{ name = "get_weather", parameters = { type = "object",
      properties = { city = { type = "string" } }, required = { "city" } }, handler = function() return "sunny" end }
    local resp = assert(client:run_tools{ messages = msgs("Weather in Paris?"), tools = { tool }, stream = true })
    assert.are.equal("stop", resp.choices[1].finish_reason)
    local u = client:usage()
    assert.are.equal(2, u.requests)
    add(want, resp.usage)
    assert.is_true(u.completion_tokens > want.completion_tokens) -- the first round counted too
  end)

  it("a closed stream counts what the server reported before the close, once", function()
    srv:enqueue(usage_stream(6))
    local s = assert(client:stream{ messages = msgs("hi") })
    assert(s:next())
    assert(s:next())
    assert.are.same(ZERO, client:usage()) -- still open: nothing counted yet
    s:close()
    local want = { requests = 1, prompt_tokens = 10, completion_tokens = 2, reasoning_tokens = 1, cached_tokens = 4 }
    assert.are.same(want, client:usage())
    s:close()
    assert.is_nil(s:final()) -- canceled
    s = nil -- luacheck: ignore
    collectgarbage()
    collectgarbage()
    assert.are.same(want, client:usage())
  end)

  it("a stream read to its end counts its last usage once, not each chunk's", function()
    srv:enqueue(usage_stream(5))
    local s = assert(client:stream{ messages = msgs("hi") })
    assert(s:final())
    s:close()
    assert.are.same({ requests = 1, prompt_tokens = 10, completion_tokens = 5, reasoning_tokens = 4,
                      cached_tokens = 4 }, client:usage())
  end)

  it("a canceled non-blocking stream counts what arrived before the cancel, once", function()
    srv:enqueue(usage_stream(6))
    local h, n, result
    h = client:start({ messages = msgs("hi"), stream = true }, {
      on_chunk = function()
        n = (n or 0) + 1
        if n == 3 then h:cancel() end
      end,
      on_done = function(resp, err) result = { resp, err } end,
    })
    drain()
    assert.are.equal(3, n)
    assert.is_nil(result[1])
    assert.are.equal("canceled", result[2].kind)
    h:cancel()
    collectgarbage()
    assert.are.same({ requests = 1, prompt_tokens = 10, completion_tokens = 3, reasoning_tokens = 2,
                      cached_tokens = 4 }, client:usage())
  end)

  it("a stream cut off counts the usage it had", function()
    local script = usage_stream(3)
    table.remove(script.chunks) -- no [DONE]
    script.truncate = true
    srv:enqueue(script)
    local s = assert(client:stream{ messages = msgs("hi") })
    local final, err = s:final()
    assert.is_nil(final)
    assert.are.equal("connection", err.kind)
    assert.are.same({ requests = 1, prompt_tokens = 10, completion_tokens = 3, reasoning_tokens = 2,
                      cached_tokens = 4 }, client:usage())
  end)
end)
