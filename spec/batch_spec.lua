-- client:batch and client:start_batch (issue 16): order and completeness,
-- per-item errors, the adaptive window on 429, the bound on requests sent,
-- the on_progress rate, start_batch with cancel, usage totals. Against the
-- local test server, whose rate_limit config answers 429 to a share of
-- chat completions (spec/support/server.py, Handler.control).
-- luacheck: std max+busted
local baseten = require("baseten")
local fixture = require("spec.support.fixture")
local core = require("baseten.core")
local util = require("spec.support.util")

local KEY = "sk-test-BATCH-0123456789"
local MODEL = "openai/gpt-oss-120b"

local function req(text)
  return { messages = { { role = "user", content = text } } }
end

local function requests(n, prefix)
  local list = {}
  for i = 1, n do list[i] = req((prefix or "item") .. i) end
  return list
end

local function content_of(resp)
  return resp and resp.choices and resp.choices[1] and resp.choices[1].message.content
end

local completion = util.completion

local run = util.drain

describe("client:batch", function()
  local srv, client, events, on_event

  fixture.server(function(s) srv = s end)

  before_each(function()
    events, on_event = {}, nil
    client = baseten.new{ api_key = KEY, base_url = srv.url, model = MODEL, max_retries = 2,
                          log = function(e)
                            e.at = core.now(); events[#events + 1] = e
                            if on_event then on_event(e) end
                          end }
  end)

  after_each(function() client:close() end)

  it("answers every request, resps[i] for requests[i], and calls on_result once per request", function()
    local n = 40
    local seen, count = {}, 0
    local resps, errs = client:batch(requests(n), {
      concurrency = 6,
      on_result = function(i, resp, err, request_id)
        count = count + 1
        assert.is_nil(seen[i], "on_result twice for " .. i)
        seen[i] = true
        assert.is_nil(err)
        assert.equal("Hello from the local test server. You said: item" .. i, content_of(resp))
        assert.matches("^req%-%d+$", request_id)
      end,
    })
    assert.equal(n, count)
    assert.same({}, errs)
    for i = 1, n do
      assert.equal("Hello from the local test server. You said: item" .. i, content_of(resps[i]))
    end
    assert.equal(n, #srv:requests())
    -- never more than `concurrency` in flight: a request event is a launch,
    -- a response, retry or error event the end of an attempt
    local in_flight, most = 0, 0
    for _, e in ipairs(events) do
      if e.event == "request" then in_flight = in_flight + 1 else in_flight = in_flight - 1 end
      most = math.max(most, in_flight)
    end
    assert.equal(0, in_flight)
    assert.is_true(most <= 6 and most >= 1, "most in flight: " .. most)
  end)

  it("an empty batch returns two empty tables at once", function()
    local called = false
    local resps, errs = client:batch({}, { on_result = function() called = true end })
    assert.same({}, resps)
    assert.same({}, errs)
    assert.is_false(called)
    assert.equal(0, #srv:requests())
  end)

  it("a failed request never stops the batch: each gets its own error", function()
    local list = requests(12)
    for i = 3, 12, 3 do list[i].model = "no-such/model" end -- 404 from the mock
    list[5].temperature = function() end                     -- cannot be encoded: never sent
    local results = 0
    local resps, errs = client:batch(list, { concurrency = 4, on_result = function() results = results + 1 end })
    assert.equal(12, results)
    for i = 1, 12 do
      if i % 3 == 0 then
        assert.is_nil(resps[i])
        assert.equal("not_found", errs[i].kind)
        assert.equal(404, errs[i].status)
        assert.equal(1, errs[i].attempts) -- a 404 is never retried
      elseif i == 5 then
        assert.is_nil(resps[i])
        assert.equal("bad_request", errs[i].kind)
        assert.equal(0, errs[i].attempts)
      else
        assert.is_nil(errs[i])
        assert.equal("Hello from the local test server. You said: item" .. i, content_of(resps[i]))
      end
    end
    assert.equal(11, #srv:requests())
  end)

  it("plainly wrong arguments raise before anything is sent", function()
    assert.has_error(function() client:batch("x") end)
    assert.has_error(function() client:batch({ req("a"), 42 }) end)
    assert.has_error(function() client:batch({ req("a"), { messages = {} } }) end)
    assert.has_error(function() client:batch({ { messages = { { role = "user", content = "a" } }, stream = true } }) end)
    assert.has_error(function() client:batch({ req("a") }, { concurrency = 0 }) end)
    assert.has_error(function() client:batch({ req("a") }, { concurrency = 2.5 }) end)
    assert.has_error(function() client:batch({ req("a") }, { on_result = "no" }) end)
    local c = baseten.new{ api_key = KEY, base_url = srv.url } -- no default model
    assert.has_error(function() c:batch({ req("a") }) end)
    c:close()
    assert.equal(0, #srv:requests())
  end)

  it("a 429 halves the window (not below 1) and each success grows it back by one", function()
    -- the first 3 chat completions the server receives are answered 429
    srv:config{ rate_limit = { share = 1, count = 3, retry_after = "0" } }
    local h
    local trace = {} -- the window at every attempt's launch and end
    on_event = function() if h then trace[#trace + 1] = h:progress().concurrency end end
    h = client:start_batch(requests(40), { concurrency = 8 })
    run(client)
    local resps, errs = h:result()
    assert.same({}, errs) -- each 429 was retried
    for i = 1, 40 do assert.truthy(resps[i], i) end
    assert.equal(43, #srv:requests())
    local lowest = math.huge
    for _, w in ipairs(trace) do lowest = math.min(lowest, w) end
    -- a 429 met a window of at most 8: it was halved to 4 or less
    assert.is_true(lowest <= 4, "the window never shrank: " .. table.concat(trace, " "))
    assert.is_true(lowest >= 1)
    -- 32 or more successes after the last 429: back to the full window
    assert.equal(8, h:progress().concurrency)
  end)

  it("429s in a row halve the window down to 1, and no lower", function()
    srv:config{ rate_limit = { share = 1, count = 4, retry_after = "0" } }
    local h
    local trace = {}
    on_event = function() if h then trace[#trace + 1] = h:progress().concurrency end end
    -- one request at a time until the window is known: concurrency 8, but
    -- only one request, so its four 429s come one after the other
    client.max_retries = 4
    h = client:start_batch({ req("a") }, { concurrency = 8 })
    run(client)
    local resps = h:result()
    assert.truthy(resps[1])
    -- 8 -> 4 -> 2 -> 1 -> 1 (each seen at the next launch), then the success: 2
    local distinct, last = {}, nil
    for _, w in ipairs(trace) do
      if w ~= last then distinct[#distinct + 1] = w end
      last = w
    end
    assert.same({ 8, 4, 2, 1 }, distinct)
    assert.equal(2, h:progress().concurrency)
    assert.equal(5, #srv:requests())
  end)

  it("respects a 429's Retry-After: no launch until it has passed", function()
    srv:config{ rate_limit = { share = 1, count = 1, retry_after = "1" } }
    local t0 = core.now()
    local resps, errs = client:batch(requests(20), { concurrency = 2 })
    assert.same({}, errs)
    assert.equal(20, #resps)
    assert.is_true(core.now() - t0 >= 0.95)
    assert.equal(21, #srv:requests())
    -- on the client's own clock: from the moment it read the 429 (its retry
    -- event), no request is launched until the Retry-After has passed.
    -- (The server's clock cannot say this: on a busy machine the client may
    -- read the 429 late, and launches before that are allowed.)
    local seen_429
    for _, e in ipairs(events) do
      if e.event == "retry" and e.status == 429 then seen_429 = e.at; break end
    end
    assert.truthy(seen_429, "no retry event for the 429")
    local during = 0
    for _, e in ipairs(events) do
      if e.event == "request" and e.at > seen_429 and e.at - seen_429 < 0.95 then during = during + 1 end
    end
    assert.equal(0, during, during .. " requests launched during the Retry-After")
  end)

  it("a burst of 429s never becomes a retry storm: at most requests x (1 + max_retries) are sent", function()
    srv:config{ rate_limit = { share = 1, retry_after = "0" } } -- every request, forever
    local resps, errs = client:batch(requests(10), { concurrency = 4 })
    assert.same({}, resps)
    for i = 1, 10 do
      assert.equal("rate_limit", errs[i].kind)
      assert.equal(3, errs[i].attempts)
    end
    assert.equal(30, #srv:requests())

    srv:reset()
    srv:config{ rate_limit = { share = 1, retry_after = "0" } }
    client:batch(requests(10), { concurrency = 4, max_retries = 0 })
    assert.equal(10, #srv:requests())

    -- half of them: each request still makes at most three attempts
    srv:reset()
    srv:config{ rate_limit = { share = 0.5, retry_after = "0" } }
    local ok = 0
    resps = client:batch(requests(30), { concurrency = 8 })
    for i = 1, 30 do if resps[i] then ok = ok + 1 end end
    local sent = #srv:requests()
    assert.is_true(sent <= 90, sent .. " requests")
    assert.is_true(ok >= 1)
  end)

  it("calls on_progress at most every 0.1 s, and once at the end with every count", function()
    local scripted = {}
    for i = 1, 20 do scripted[i] = { delay = 0.1, json = completion("r" .. i) } end
    srv:enqueue(scripted)
    local calls = {}
    local t0 = core.now()
    client:batch(requests(20), { concurrency = 2, on_progress = function(p)
      calls[#calls + 1] = { at = core.now(), p = p }
    end })
    local elapsed = core.now() - t0
    assert.is_true(#calls >= 2, #calls .. " calls")
    assert.is_true(#calls <= elapsed / 0.1 + 2, #calls .. " calls in " .. elapsed .. " s")
    -- the gaps are latency: with constant GC (finalizers perform the
    -- engine inside the callback) and under valgrind they are not the code's
    if not util.skip_latency() then
      for k = 2, #calls - 1 do
        assert.is_true(calls[k].at - calls[k - 1].at >= 0.099, "calls " .. (k - 1) .. " and " .. k .. " too close")
      end
    end
    local last = calls[#calls].p
    assert.equal(20, last.done)
    assert.equal(0, last.failed)
    assert.equal(20, last.total)
    assert.equal(0, last.in_flight)
    assert.equal(2, last.concurrency)
    assert.equal(140, last.tokens) -- 20 x total_tokens 7
    assert.is_true(last.elapsed > 0 and last.requests_per_second > 0)
    for _, c in ipairs(calls) do
      local p = c.p
      assert.is_true(p.done <= p.total and p.failed <= p.done and p.in_flight <= p.concurrency)
    end
  end)

  it("on_result that raises cancels what is left and raises out of batch", function()
    local scripted = {}
    for i = 1, 10 do scripted[i] = { delay = 0.05, json = completion("r" .. i) } end
    srv:enqueue(scripted)
    local calls = 0
    assert.has_error(function()
      client:batch(requests(10), { concurrency = 2, on_result = function()
        calls = calls + 1
        error("stop here")
      end })
    end, nil)
    assert.equal(1, calls)
    assert.is_true(#srv:requests() <= 3)
    assert.truthy(client:chat(req("still usable")))
  end)
end)

describe("client:start_batch", function()
  local srv, client
  fixture.client({ api_key = KEY, model = MODEL }, function(s, c) srv, client = s, c end)

  it("runs inside poll, beside other non-blocking requests", function()
    local results, done_args = 0, nil
    local h = client:start_batch(requests(15), {
      concurrency = 3,
      on_result = function() results = results + 1 end,
      on_done = function(resps, errs) done_args = { resps, errs } end,
    })
    local other
    client:start(req("beside"), { on_done = function(resp) other = resp end })
    assert.is_false(h:done())
    assert.is_nil(h:result())
    run(client)
    assert.is_true(h:done())
    assert.equal(15, results)
    local resps, errs = h:result()
    assert.equal(resps, done_args[1])
    assert.equal(errs, done_args[2])
    for i = 1, 15 do
      assert.equal("Hello from the local test server. You said: item" .. i, content_of(resps[i]))
    end
    assert.equal("Hello from the local test server. You said: beside", content_of(other))
    assert.equal(0, client:poll(0))
  end)

  it("cancel ends every unfinished request as canceled and sends nothing more", function()
    local scripted = {}
    for i = 1, 20 do scripted[i] = { delay = 0.3, json = completion("r" .. i) } end
    srv:enqueue(scripted)
    local seen = {}
    local h = client:start_batch(requests(20), {
      concurrency = 4,
      on_result = function(i, resp, err)
        assert.is_nil(seen[i])
        seen[i] = resp and "ok" or err.kind
      end,
    })
    local deadline = core.now() + 20
    while next(seen) == nil do
      assert(core.now() < deadline)
      client:poll(0.05)
    end
    local sent = #srv:requests()
    h:cancel()
    assert.is_true(h:done())
    h:cancel() -- idempotent
    local resps, errs = h:result()
    local ok, canceled = 0, 0
    for i = 1, 20 do
      assert.truthy(seen[i], "no on_result for " .. i)
      if resps[i] then ok = ok + 1 else
        assert.equal("canceled", errs[i].kind)
        canceled = canceled + 1
      end
    end
    assert.is_true(ok >= 1 and canceled >= 12, ok .. " ok, " .. canceled .. " canceled")
    assert.equal(0, client:pending())
    assert.equal(0, client:poll(0))
    core.sleep(0.4)
    assert.is_true(#srv:requests() <= sent + 4) -- nothing launched after cancel
    assert.truthy(client:chat(req("after")))
  end)

  it("a client closed under a batch ends the rest as canceled at the next poll", function()
    local scripted = {}
    for i = 1, 6 do scripted[i] = { delay = 0.2, json = completion("r" .. i) } end
    srv:enqueue(scripted)
    local h = client:start_batch(requests(6), { concurrency = 2 })
    client:poll(0)
    client:close()
    assert.equal(0, client:poll(0))
    assert.is_true(h:done())
    local _, errs = h:result()
    for i = 1, 6 do assert.equal("canceled", errs[i].kind) end
  end)

  it("on_progress that raises raises out of poll and cancels the batch", function()
    local scripted = {}
    for i = 1, 6 do scripted[i] = { delay = 0.2, json = completion("r" .. i) } end
    srv:enqueue(scripted)
    local h = client:start_batch(requests(6), { concurrency = 2, on_progress = function() error({ mine = true }) end })
    local ok, e
    local deadline = core.now() + 10
    repeat
      ok, e = pcall(client.poll, client, 0.05)
      assert(core.now() < deadline)
    until not ok
    assert.same({ mine = true }, e)
    assert.is_true(h:done())
    assert.equal(0, client:pending())
  end)
end)

describe("batch usage totals", function()
  local srv
  fixture.server(function(s) srv = s end)

  -- client:usage() comes with the `reasoning` branch (request.finished):
  -- every batch response passes there once, like any other call's.
  it("adds every request's usage to client:usage()", function()
    local scripted = {}
    for i = 1, 10 do scripted[i] = { json = completion("r" .. i) } end
    srv:enqueue(scripted)
    srv:enqueue({ status = 500, json = { error = "boom" } }) -- a failure adds no tokens
    local client = baseten.new{ api_key = KEY, base_url = srv.url, model = MODEL, max_retries = 0 }
    local list = requests(11)
    local _, errs = client:batch(list, { concurrency = 3 })
    local failed = 0
    for _ in pairs(errs) do failed = failed + 1 end
    assert.equal(1, failed)
    local u = client:usage()
    assert.equal(10, u.requests)
    assert.equal(30, u.prompt_tokens)
    assert.equal(40, u.completion_tokens)
    client:close()
  end)
end)
