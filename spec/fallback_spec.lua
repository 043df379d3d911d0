-- Issue 28: fallbacks. A client's call goes to the next client of
-- `fallback` once its own retries are spent, on a connection error, a
-- timeout before the first byte, 429 or 5xx; never on another 4xx, nor
-- after a stream delivered data. Two local servers: the primary and a
-- "local model" with its own key and model name.
local baseten = require("baseten")
local server = require("spec.support.server")
local core = require("baseten.core")

local function msgs(text)
  return { { role = "user", content = text } }
end

local function poll_until(client, cond, limit)
  local deadline = core.now() + (limit or 20)
  while not cond() and core.now() < deadline do client:poll(0.01) end
end

describe("fallback", function()
  local primary, spare, events, log

  setup(function()
    primary = server.start{ api_key = "k1" }
    spare = server.start{ api_key = "k2" }
  end)

  teardown(function()
    primary:stop()
    spare:stop()
  end)

  before_each(function()
    primary:reset()
    spare:reset()
    events = {}
    log = function(e) if e.event == "fallback" then events[#events + 1] = e end end
  end)

  local function local_model()
    return baseten.new{ api_key = "k2", base_url = spare.url, model = "test/local", max_retries = 0 }
  end

  local function client_with(opts)
    local o = { api_key = "k1", base_url = primary.url, model = "deepseek-ai/DeepSeek-V3.1", max_retries = 1,
                fallback = { local_model() }, log = log }
    for k, v in pairs(opts or {}) do o[k] = v end
    return baseten.new(o)
  end

  -- The spare answered: its own key and model; the primary's retries came first.
  local function answered_by_spare(resp, err, primary_requests)
    assert.is_table(resp, tostring(err))
    assert.equal(1, resp._baseten.via)
    assert.equal(spare.url, resp._baseten.base_url)
    assert.equal(primary_requests, #primary:requests())
    local reqs = spare:requests()
    assert.equal(1, #reqs)
    assert.equal("Bearer k2", reqs[1].header_map["authorization"])
    assert.equal("test/local", reqs[1].json and reqs[1].json.model or server.json_decode(reqs[1].body).model)
    assert.equal(1, #events)
    assert.equal(spare.url, events[1].to)
  end

  it("on 429, after the client's own retries", function()
    primary:enqueue({ status = 429, headers = { ["Retry-After"] = "0" } }, { status = 429, headers = { ["Retry-After"] = "0" } })
    local resp, err = client_with():chat{ messages = msgs("hi") }
    answered_by_spare(resp, err, 2)
    assert.equal("rate_limit", resp._baseten.errors[1].kind)
  end)

  it("on 5xx", function()
    primary:enqueue({ status = 503, headers = { ["Retry-After"] = "0" } }, { status = 500, headers = { ["Retry-After"] = "0" } })
    local resp, err = client_with():chat{ messages = msgs("hi") }
    answered_by_spare(resp, err, 2)
    assert.equal("server", resp._baseten.errors[1].kind)
  end)

  it("on a connection error", function()
    local resp, err = client_with{ base_url = "http://127.0.0.1:1/v1", max_retries = 0 }:chat{ messages = msgs("hi") }
    answered_by_spare(resp, err, 0)
    assert.equal("connection", resp._baseten.errors[1].kind)
  end)

  it("on a timeout before the first byte", function()
    primary:enqueue({ delay = 3, json = {} })
    local resp, err = client_with{ timeout = 0.5, max_retries = 0 }:chat{ messages = msgs("hi") }
    answered_by_spare(resp, err, 1)
    assert.equal("timeout", resp._baseten.errors[1].kind)
  end)

  it("never on another 4xx", function()
    for _, status in ipairs({ 400, 401, 404, 422 }) do
      primary:reset()
      primary:enqueue({ status = status, json = { error = "no" } })
      local resp, err = client_with{ max_retries = 0 }:chat{ messages = msgs("hi") }
      assert.is_nil(resp)
      assert.equal(status, err.status)
      assert.is_nil(err.via)
    end
    assert.equal(0, #spare:requests())
    assert.equal(0, #events)
  end)

  it("never once a stream delivered data", function()
    primary:enqueue({ chunks = { 'data: {"id":"c","object":"chat.completion.chunk","created":1,"model":"m",'
      .. '"choices":[{"index":0,"delta":{"content":"half"},"finish_reason":null}]}\n\n' }, truncate = true })
    local s = assert(client_with():stream{ messages = msgs("hi") })
    local _, err = s:final()
    assert.equal("connection", err.kind)
    assert.equal(0, #spare:requests())
  end)

  it("when every client fails: the last error, with the earlier ones and the attempts", function()
    primary:enqueue({ status = 500 }, { status = 500 })
    spare:enqueue({ status = 502 })
    local resp, err = client_with():chat{ messages = msgs("hi") }
    assert.is_nil(resp)
    assert.equal(502, err.status)
    assert.equal(1, err.via)
    assert.equal(3, err.attempts)
    assert.equal(500, err.fallbacks[1].status)
  end)

  it("per call, and off with an empty list", function()
    local plain = baseten.new{ api_key = "k1", base_url = primary.url, model = "deepseek-ai/DeepSeek-V3.1",
                               max_retries = 0 }
    primary:enqueue({ status = 429 })
    local resp, err = plain:chat({ messages = msgs("hi") }, { fallback = { local_model() } })
    assert.is_table(resp, tostring(err))
    assert.equal(1, resp._baseten.via)
    primary:enqueue({ status = 429 })
    resp, err = client_with{ max_retries = 0 }:chat({ messages = msgs("hi") }, { fallback = {} })
    assert.is_nil(resp)
    assert.equal("rate_limit", err.kind)
    primary:enqueue({ status = 503 })
    local done
    plain:start({ messages = msgs("hi") }, { fallback = { local_model() }, on_done = function(r, e) done = { r, e } end })
    poll_until(plain, function() return done ~= nil end)
    assert.is_table(done[1], tostring(done[2]))
    assert.equal(1, done[1]._baseten.via)
    primary:enqueue({ status = 503 })
    local resps = plain:batch({ { messages = msgs("hi") } }, { fallback = { local_model() } })
    assert.equal(1, resps[1]._baseten.via)
    primary:enqueue({ status = 503 })
    local tool = baseten.tool{ name = "get_weather", parameters = { type = "object",
      properties = { city = { type = "string" } } }, handler = function(a) return { city = a.city } end }
    local r2, t2 = plain:run_tools({ messages = msgs("Weather in Paris?"), tools = { tool } },
                                   { fallback = { local_model() } })
    assert.is_table(r2, tostring(t2))
    -- embeddings and model lists never fall back (another client's model answers chats)
    primary:enqueue({ status = 503 })
    assert.is_nil(client_with{ max_retries = 0 }:models())
    assert.has_error(function() plain:chat({ messages = msgs("hi") }, { fallback = { "x" } }) end)
    assert.has_error(function() baseten.new{ fallback = { {} } } end)
  end)

  it("non-blocking: start and start_tools go on on the fallback, inside poll", function()
    local client = client_with{ max_retries = 0 }
    primary:enqueue({ status = 503 })
    local done
    client:start({ messages = msgs("hi"), stream = true }, { on_done = function(r, e) done = { r, e } end })
    poll_until(client, function() return done ~= nil end)
    assert.is_table(done[1], tostring(done[2]))
    assert.equal(1, #spare:requests())
    primary:enqueue({ status = 503 }, { status = 503 })
    local tool = baseten.tool{ name = "get_weather", parameters = { type = "object",
      properties = { city = { type = "string" } } }, handler = function(a) return { city = a.city } end }
    local fin
    client:start_tools({ messages = msgs("Weather in Paris?"), tools = { tool } },
                       { on_done = function(r, t, e) fin = { r, t, e } end })
    poll_until(client, function() return fin ~= nil end)
    assert.is_table(fin[1], tostring(fin[3]))
    assert.equal(3, #spare:requests()) -- both rounds went to the spare
    local blocking = client_with{ max_retries = 0 }
    primary:enqueue({ status = 503 })
    local resps, errs = blocking:batch({ { messages = msgs("a") }, { messages = msgs("b") } })
    assert.is_table(resps[1], tostring(errs[1]))
    assert.is_table(resps[2], tostring(errs[2]))
  end)
end)
