-- The one request path (lua/baseten/request.lua): every public call sends
-- the same headers and body options, logs the same events, and ends its
-- errors the same way; plus the request-side items of issues 11, 12 and 18.
-- luacheck: std max+busted
local baseten = require("baseten")
local server = require("spec.support.server")
local core = require("baseten.core")
local util = require("spec.support.util")
local request = require("baseten.request")

local json = baseten.json
local KEY = "sk-test-PATH-0123456789"
local MODEL = "openai/gpt-oss-120b"

local function sse_chunk(delta, finish, extra)
  local c = {
    id = "chatcmpl-1", object = "chat.completion.chunk", created = 1, model = MODEL,
    choices = json.array({ { index = 0, delta = delta, finish_reason = finish or json.null } }),
  }
  for k, v in pairs(extra or {}) do c[k] = v end
  return "data: " .. json.encode(c) .. "\n\n"
end

local function sse(text)
  return {
    sse_chunk({ role = "assistant", content = "" }),
    sse_chunk({ content = text }),
    sse_chunk(json.object({}), "stop", { usage = { prompt_tokens = 3, completion_tokens = 4, total_tokens = 7 } }),
    "data: [DONE]\n\n",
  }
end

local completion = util.completion

local function run(c, limit) return util.drain(c, limit or 10) end

-- The request every call sends (each call adds what it must).
local function req()
  return { messages = { { role = "user", content = "Hi" } }, temperature = 0.5, max_tokens = 7, stop = {} }
end

local OPTS = { headers = { ["X-Call"] = "c1" }, max_retries = 1 }

-- Each public call, made once; `stream` says which kind of response to script.
local CALLS = {
  { name = "chat", stream = false, run = function(c) return c:chat(req(), OPTS) end },
  { name = "chat stream=true", stream = true, run = function(c)
      local r = req()
      r.stream = true
      return c:chat(r, OPTS)
    end },
  { name = "stream", stream = true, run = function(c)
      local s, err = c:stream(req(), OPTS)
      if not s then return nil, err end
      return s:final()
    end },
  { name = "json", stream = false, json = true, run = function(c) return c:json(req(), OPTS) end },
  { name = "run_tools", stream = false, run = function(c) return c:run_tools(req(), OPTS) end },
  { name = "start", stream = false, run = function(c)
      local out
      c:start(req(), { headers = OPTS.headers, max_retries = 1, on_done = function(r, e) out = { r, e } end })
      run(c)
      return out[1], out[2]
    end },
  { name = "start stream", stream = true, run = function(c)
      local out
      local r = req()
      r.stream = true
      c:start(r, { headers = OPTS.headers, max_retries = 1, on_done = function(x, e) out = { x, e } end })
      run(c)
      return out[1], out[2]
    end },
  { name = "await", stream = false, run = function(c)
      local out
      c:spawn(function() out = { c:await(req(), OPTS) } end)
      run(c)
      return out[1], out[2]
    end },
  { name = "batch", stream = false, run = function(c)
      local resps, errs = c:batch({ req() }, OPTS)
      return resps[1], errs[1]
    end },
  { name = "start_batch", stream = false, run = function(c)
      local h = c:start_batch({ req() }, OPTS)
      run(c)
      local resps, errs = h:result()
      return resps[1], errs[1]
    end },
}

describe("the one request path", function()
  local srv, client, events, finished

  setup(function()
    srv = server.start()
  end)

  teardown(function()
    if srv then srv:stop() end
  end)

  before_each(function()
    srv:reset()
    events, finished = {}, 0
    client = baseten.new{ api_key = KEY, base_url = srv.url, model = MODEL, max_retries = 2,
                          headers = { ["X-Client"] = "k1" },
                          log = function(e) events[#events + 1] = e end }
    -- the usage plug-in point: every finished response passes here once
    require("baseten.runtime").of(client):on_count(function() finished = finished + 1 end)
  end)

  after_each(function()
    client:close()
  end)

  -- name -> {event, sorted field names} of each log event
  local function shape(list)
    local out = {}
    for i, e in ipairs(list) do
      local keys = {}
      for k in pairs(e) do
        if k ~= "http_version" and k ~= "stream" then keys[#keys + 1] = k end
      end
      table.sort(keys)
      out[i] = e.event .. "(" .. table.concat(keys, ",") .. ")"
    end
    return table.concat(out, " ")
  end

  it("every public call sends the same headers and body options and logs the same events", function()
    local seen = {}
    for _, call in ipairs(CALLS) do
      srv:reset()
      events, finished = {}, 0
      local ok_resp = call.stream and { chunks = sse('{"a":1}') } or { json = completion('{"a":1}') }
      srv:enqueue({ status = 429, headers = { ["Retry-After"] = "0" }, json = { error = "slow down" } }, ok_resp)
      local resp, err = call.run(client)
      assert(resp, call.name .. ": " .. tostring(err))
      local reqs = srv:requests()
      assert.equal(2, #reqs, call.name)
      local r = reqs[2]
      local h = r.header_map
      assert.equal("Bearer " .. KEY, h.authorization, call.name)
      assert.equal("k1", h["x-client"], call.name)
      assert.equal("c1", h["x-call"], call.name)
      assert.equal("application/json", h["content-type"], call.name)
      assert.equal(call.stream and "text/event-stream" or "application/json", h.accept, call.name)
      assert.truthy(h["user-agent"]:find("^baseten%-lua/"), call.name)
      local body = r.json
      assert.equal(MODEL, body.model, call.name)
      assert.equal(0.5, body.temperature, call.name)
      assert.equal(7, body.max_tokens, call.name)
      assert.truthy(r.body:find('"stop":[]', 1, true), call.name .. ": stop = {} must go as []")
      if call.stream then
        assert.is_true(body.stream, call.name)
        assert.is_true(body.stream_options.include_usage, call.name)
      else
        assert.is_nil(body.stream, call.name)
        assert.is_nil(body.stream_options, call.name)
      end
      assert.equal(1, finished, call.name .. ": the usage point saw each response once")
      seen[#seen + 1] = { name = call.name, shape = shape(events), stream = call.stream }
    end
    local want = "request(attempt,authorization,bytes,event,method,url)"
      .. " retry(attempt,delay,elapsed,event,kind,status)"
      .. " request(attempt,authorization,bytes,event,method,url)"
      .. " response(attempt,elapsed,event,request_id,status)"
    for _, s in ipairs(seen) do -- and a stream's end, once
      assert.equal(s.stream and want .. " stream_end(event,how)" or want, s.shape, s.name)
    end
  end)

  it("models goes the same way (GET, same headers and events)", function()
    srv:enqueue({ status = 503, headers = { ["Retry-After"] = "0" } })
    local ids = assert(client:models(OPTS))
    assert.is_table(ids)
    local r = srv:last_request()
    assert.equal("GET", r.method)
    assert.equal("c1", r.header_map["x-call"])
    assert.equal("k1", r.header_map["x-client"])
    assert.equal("request(attempt,authorization,bytes,event,method,url)"
      .. " retry(attempt,delay,elapsed,event,kind,status)"
      .. " request(attempt,authorization,bytes,event,method,url)"
      .. " response(attempt,elapsed,event,request_id,status)", shape(events))
  end)

  it("blocking and non-blocking failures log the same events and carry attempts and elapsed", function()
    local function fail_twice()
      srv:reset()
      srv:enqueue({ status = 503, headers = { ["Retry-After"] = "0" } },
                  { status = 503, headers = { ["Retry-After"] = "0" } })
    end
    fail_twice()
    events = {}
    local _, e1 = client:chat(req(), { max_retries = 1 })
    local blocking = shape(events)
    fail_twice()
    events = {}
    local e2
    client:start(req(), { max_retries = 1, on_done = function(_, e) e2 = e end })
    run(client)
    assert.equal(blocking, shape(events))
    assert.truthy(blocking:find("error(attempt,elapsed,event,kind,request_id,status)", 1, true))
    for _, e in ipairs({ e1, e2 }) do
      assert.equal("server", e.kind)
      assert.equal(2, e.attempts)
      assert.is_number(e.elapsed)
      assert.is_true(e.elapsed >= 0 and e.elapsed < 30)
    end
  end)

  it("a call sees every attempt's outcome through on_attempt (the batch plug-in point)", function()
    srv:enqueue({ status = 429, headers = { ["Retry-After"] = "0" } })
    local call = request.new(client, "POST", "/chat/completions", json.encode({ model = MODEL, messages = req().messages }),
                             false, { timeout = 10, max_retries = 2, headers = {} })
    local seen = {}
    call.on_attempt = function(outcome, v)
      seen[#seen + 1] = outcome .. (outcome == "retry" and (":" .. v.status) or "")
    end
    assert(request.run(call))
    assert.same({ "retry:429", "ok" }, seen)
  end)

  it("encodes empty array fields of a request as [] (issue 12)", function()
    srv:enqueue({ json = completion("x") })
    local msgs = { { role = "user", content = {} }, { role = "assistant", content = "a", tool_calls = {} } }
    assert(client:chat{ messages = msgs, stop = {}, tools = {} })
    local body = srv:last_request().body
    assert.truthy(body:find('"stop":[]', 1, true), body)
    assert.truthy(body:find('"tools":[]', 1, true), body)
    assert.truthy(body:find('"content":[]', 1, true), body)
    assert.truthy(body:find('"tool_calls":[]', 1, true), body)
    assert.is_nil(getmetatable(msgs[1].content)) -- the caller's tables are left alone
  end)

  it("a retry that comes due in the poll where on_done closed the client ends as canceled (bug 5)", function()
    local c = baseten.new{ api_key = KEY, base_url = srv.url, model = MODEL, max_retries = 1 }
    -- A answers after 1 s, long after B's 503 has come in even on a busy
    -- machine (or with constant GC); B's retry (1.2 s after its 503) is
    -- still waiting when A ends, and due once A's on_done has slept 1.3 s
    srv:enqueue({ delay = 1.0, json = completion("A") },
                { status = 503, headers = { ["retry-after-ms"] = "1200" } })
    local hb, b_err, b_state
    c:start(req(), { on_done = function()
      b_state = tostring(hb)
      core.sleep(1.3) -- now B's retry is due, later in this same poll
      c:close()
    end })
    -- the server answers in arrival order: B starts once A's request is in
    local t_in = core.now() + 10
    while #srv:requests() < 1 and core.now() < t_in do c:poll(0.01) end
    hb = c:start(req(), { on_done = function(_, e) b_err = e end })
    local deadline = core.now() + 10
    while c:pending() > 0 and core.now() < deadline do c:poll(0.01) end
    assert.equal("baseten.handle (retry)", b_state)
    assert.equal("canceled", b_err.kind)
    assert.equal(0, c:poll(0))
  end)

  it("a canceled non-blocking stream gives err.partial (issue 11)", function()
    local chunks = sse("one ")
    table.insert(chunks, 3, sse_chunk({ content = "two " }))
    srv:enqueue({ chunks = chunks, chunk_delay = 0.2 })
    local r = req()
    r.stream = true
    local got, err, h = 0, nil, nil
    h = client:start(r, {
      on_chunk = function() got = got + 1 if got == 2 then h:cancel() end end,
      on_done = function(_, e) err = e end,
    })
    run(client)
    assert.equal("canceled", err.kind)
    assert.is_table(err.partial)
    assert.equal("one ", err.partial.choices[1].message.content)
    assert.equal(1, finished) -- a canceled stream ends once too
  end)

  describe("the key (issue 12, bug 8)", function()
    it("with no key, a call to Baseten's servers says how to set it and sends nothing", function()
      for _, url in ipairs({ "https://inference.baseten.co/v1",
                             "https://model-abc.api.baseten.co/environments/production/sync/v1" }) do
        local logged = {}
        local c = baseten.new{ api_key = "", base_url = url, model = MODEL, max_retries = 0, connect_timeout = 2,
                               log = function(e) logged[#logged + 1] = e.event end }
        local resp, err = c:chat(req())
        assert.is_nil(resp)
        assert.equal("authentication", err.kind)
        assert.truthy(err.message:find("BASETEN_API_KEY", 1, true))
        assert.same({}, logged)
        local done
        c:start(req(), { on_done = function(_, e) done = e end })
        run(c)
        assert.equal("authentication", done.kind)
        c:close()
      end
    end)

    it("api_key = false still sends no key to a local server", function()
      srv:enqueue({ json = completion("ok") })
      local c = baseten.new{ api_key = false, base_url = srv.url, model = MODEL }
      assert(c:chat(req()))
      assert.is_nil(srv:last_request().header_map.authorization)
    end)

    it("CR, LF and NUL in a header name or value, or in the key, raise", function()
      local bad = {
        { headers = { ["X-A"] = "1\r\nX-Injected: 2" } },
        { headers = { ["X-A"] = "1\nX-Injected: 2" } },
        { headers = { ["X-A\r\nX-B"] = "1" } },
        { headers = { ["X-A"] = "1\0" } },
        { api_key = "sk-1\r\nX-Injected: 2" },
        { api_key = "sk-1\0" },
      }
      for i, o in ipairs(bad) do
        o.base_url = srv.url
        if o.api_key == nil then o.api_key = KEY end
        assert.has_error(function() baseten.new(o) end, nil, "case " .. i)
      end
      assert.has_error(function() client:chat(req(), { headers = { ["X-A"] = "1\r\nX-Injected: 2" } }) end)
      assert.equal(0, #srv:requests())
    end)
  end)
end)
