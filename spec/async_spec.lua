-- Non-blocking requests: client:start / poll / pending, Handle:done /
-- cancel / result, and the coroutine helpers spawn / await / drain.
-- Everything here runs against the local test server (spec/support).
-- luacheck: std max+busted
local baseten = require("baseten")
local server = require("spec.support.server")
local core = require("baseten.core")
local util = require("spec.support.util")

local json = baseten.json
local KEY = "sk-test-ASYNC-0123456789"
local MODEL = "openai/gpt-oss-120b"

local function msgs(text)
  return { { role = "user", content = text or "Hello" } }
end

-- One raw SSE event carrying a chat.completion.chunk.
local function sse_chunk(delta, finish)
  return "data: " .. json.encode({
    id = "chatcmpl-1", object = "chat.completion.chunk", created = 1, model = MODEL,
    choices = json.array({ { index = 0, delta = delta, finish_reason = finish or json.null } }),
  }) .. "\n\n"
end

-- The raw SSE strings of a whole stream whose content is the pieces.
local function sse(pieces)
  local out = { sse_chunk({ role = "assistant", content = "" }) }
  for _, p in ipairs(pieces) do out[#out + 1] = sse_chunk({ content = p }) end
  out[#out + 1] = sse_chunk(json.object({}), "stop")
  out[#out + 1] = "data: [DONE]\n\n"
  return out
end

local function words(n, prefix)
  local pieces = {}
  for i = 1, n do pieces[i] = (prefix or "w") .. i .. " " end
  return pieces, table.concat(pieces)
end

local function completion(text)
  return util.completion(text, { usage = { prompt_tokens = 1, completion_tokens = 1, total_tokens = 2 } })
end

local function content_of(resp)
  return resp and resp.choices and resp.choices[1] and resp.choices[1].message.content
end

local function run(c, limit) return util.drain(c, limit or 10) end

-- Waits (without polling the client) until f() holds, or fails.
local function eventually(f, limit, what)
  local deadline = core.now() + (limit or 3)
  while not f() do
    assert(core.now() < deadline, "timed out waiting for " .. (what or "a condition"))
    core.sleep(0.01)
  end
end

describe("non-blocking requests", function()
  local srv, client

  -- Polls until the server has received n requests: scripted responses go
  -- in arrival order, and a started request is sent only by a poll.
  local function arrived(n)
    eventually(function()
      client:poll(0)
      return srv:stats().requests >= n
    end, 3, n .. " requests to arrive")
  end

  setup(function()
    srv = server.start()
  end)

  teardown(function()
    srv:stop()
  end)

  before_each(function()
    srv:reset()
    client = baseten.new{ api_key = KEY, base_url = srv.url, model = MODEL, max_retries = 2 }
  end)

  after_each(function()
    client:close()
  end)

  describe("start and poll", function()
    it("run a request; on_done gets the response, only inside poll", function()
      local calls, in_poll, seen_outside = 0, false, false
      local h = client:start({ messages = msgs("ping") }, {
        on_done = function(resp, err)
          calls = calls + 1
          if not in_poll then seen_outside = true end
          assert.is_nil(err)
          assert.truthy(content_of(resp):find("ping", 1, true))
        end,
      })
      assert.is_false(h:done())
      assert.is_nil(h:result())
      assert.equal(1, client:pending())
      core.sleep(0.3) -- the response is in by now, but nobody polled
      assert.equal(0, calls)
      assert.is_false(h:done())
      local deadline = core.now() + 5
      while not h:done() and core.now() < deadline do
        in_poll = true
        client:poll(0.05)
        in_poll = false
      end
      assert.is_true(h:done())
      assert.equal(1, calls)
      assert.is_false(seen_outside)
      local resp, err = h:result()
      assert.is_nil(err)
      assert.truthy(content_of(resp):find("ping", 1, true))
      assert.equal(0, client:pending())
      assert.equal(0, client:poll(0))
      assert.equal("baseten.handle (done)", tostring(h))
    end)

    it("stream chunks to on_chunk, then on_done gets the accumulated response", function()
      local pieces, text = words(8)
      srv:enqueue({ chunks = sse(pieces), chunk_delay = 0.02 })
      local got, in_poll, outside = {}, false, 0
      local final
      local h = client:start({ messages = msgs(), stream = true }, {
        on_chunk = function(chunk)
          if not in_poll then outside = outside + 1 end
          local d = chunk.choices[1] and chunk.choices[1].delta
          if d and d.content and d.content ~= "" then got[#got + 1] = d.content end
        end,
        on_done = function(resp, err)
          if not in_poll then outside = outside + 1 end
          assert.is_nil(err)
          final = resp
        end,
      })
      local deadline = core.now() + 5
      while not h:done() and core.now() < deadline do
        in_poll = true
        client:poll(0.05)
        in_poll = false
      end
      assert.equal(0, outside)
      assert.same(pieces, got)
      assert.equal(text, content_of(final))
      assert.equal("stop", final.choices[1].finish_reason)
      assert.equal(final, (h:result()))
      assert.is_true(srv:requests()[1].json.stream)
    end)

    it("run many requests at once on one client, streaming or not", function()
      local handles, results = {}, {}
      for i = 1, 8 do
        local stream = i % 2 == 0
        handles[i] = client:start({ messages = msgs("request " .. i), stream = stream }, {
          on_done = function(resp, err)
            assert.is_nil(err)
            results[i] = content_of(resp)
          end,
        })
      end
      assert.equal(8, client:pending())
      run(client)
      for i = 1, 8 do
        assert.is_true(handles[i]:done())
        assert.truthy(results[i]:find("request " .. i .. "$"), results[i])
      end
      local stats = srv:stats()
      assert.equal(8, stats.requests)
      assert.is_true(stats.connections <= 8)
    end)

    it("share the engine with blocking calls, whose driving runs no callbacks", function()
      local pieces, text = words(5)
      srv:enqueue({ chunks = sse(pieces), chunk_delay = 0.05 }, -- about 0.35 s
                  { delay = 0.6, json = completion("blocking") })
      local chunks, done = 0, false
      local h = client:start({ messages = msgs(), stream = true }, {
        on_chunk = function() chunks = chunks + 1 end,
        on_done = function() done = true end,
      })
      arrived(1)
      local before = chunks
      -- the blocking call drives the same engine while the whole stream arrives...
      local resp = assert(client:chat{ messages = msgs() })
      assert.equal("blocking", content_of(resp))
      assert.equal(before, chunks) -- ...but callbacks wait for poll
      assert.is_false(done)
      run(client)
      assert.is_true(done)
      assert.equal(#pieces + 2, chunks)
      assert.equal(text, content_of((h:result())))
    end)

    it("report a stream cut off midway as a connection error with the partial response", function()
      srv:enqueue({ chunks = { sse_chunk({ role = "assistant", content = "" }), sse_chunk({ content = "Half" }) },
                    truncate = true })
      local got_err
      client:start({ messages = msgs(), stream = true }, { on_done = function(_, err) got_err = err end })
      run(client)
      assert.equal("connection", got_err.kind)
      assert.equal("Half", content_of(got_err.partial))
      assert.equal(1, #srv:requests()) -- a stream that delivered data is never retried
    end)

    it("give HTTP errors to on_done", function()
      srv:enqueue({ status = 400, json = { error = "bad thing" } })
      local h = client:start({ messages = msgs() })
      run(client)
      local resp, err = h:result()
      assert.is_nil(resp)
      assert.equal("bad_request", err.kind)
      assert.equal("bad thing", err.message)
    end)

    it("raise at once on plainly wrong arguments", function()
      assert.has_error(function() client:start({ messages = {} }) end)
      assert.has_error(function() client:start("hi") end)
      assert.has_error(function() client:start({ messages = msgs() }, "x") end)
      assert.has_error(function() client:start({ messages = msgs() }, { on_done = 1 }) end)
      assert.has_error(function() client:poll(-1) end)
      assert.has_error(function() client:poll("0") end)
      assert.equal(0, client:pending())
    end)

    it("cancel what is pending when the client is closed", function()
      srv:enqueue({ delay = 5, json = completion("late") })
      local got
      local h = client:start({ messages = msgs() }, { on_done = function(_, err) got = err end })
      client:poll(0)
      client:close()
      assert.equal(0, client:poll(0))
      assert.is_true(h:done())
      assert.equal("canceled", got.kind)
      -- a start on a closed client ends as canceled at the next poll (issue 22)
      local h2 = client:start({ messages = msgs() }, { on_done = function(_, err) got = err end })
      got = nil
      assert.equal(0, client:poll(0))
      assert.is_true(h2:done())
      assert.equal("canceled", got.kind)
      assert.equal(0, client:pending())
    end)
  end)

  describe("a callback that raises", function()
    it("raises out of poll; the other requests complete and the client still works", function()
      local pieces, text = words(6)
      srv:enqueue({ chunks = sse(pieces), chunk_delay = 0.03, delay = 0.3 }) -- for the first request
      local boom = { reason = "boom" }
      local bad_err, bad_chunks = nil, 0
      local bad = client:start({ messages = msgs("bad"), stream = true }, {
        on_chunk = function()
          bad_chunks = bad_chunks + 1
          error(boom)
        end,
        on_done = function(_, err) bad_err = err end,
      })
      arrived(1) -- the scripted stream goes to this request
      local others = {}
      for i = 1, 3 do
        others[i] = client:start({ messages = msgs("good " .. i), stream = i == 2 })
      end
      local raised, deadline = {}, core.now() + 10
      while client:pending() > 0 do
        assert(core.now() < deadline, "requests did not finish in time")
        local ok, e = pcall(client.poll, client, 0.05)
        if not ok then raised[#raised + 1] = e end
      end
      assert.equal(1, #raised)
      assert.equal(boom, raised[1]) -- the value itself, not a string
      assert.equal(1, bad_chunks)
      assert.is_true(bad:done())
      assert.equal("canceled", bad_err.kind)
      assert.truthy(bad_err.message:find("on_chunk raised", 1, true))
      for i = 1, 3 do
        local resp, err = others[i]:result()
        assert.is_nil(err)
        assert.truthy(content_of(resp):find("good " .. i, 1, true))
      end
      -- blocking calls and new non-blocking ones still work
      assert.truthy(content_of(assert(client:chat{ messages = msgs("after") })):find("after", 1, true))
      srv:enqueue({ chunks = sse(pieces) })
      local s = assert(client:stream{ messages = msgs() })
      assert.equal(text, content_of(assert(s:final())))
      local h = client:start({ messages = msgs("again") })
      run(client)
      assert.truthy(content_of((h:result())):find("again", 1, true))
    end)

    it("raises an on_done error out of poll, after the request is done", function()
      local h = client:start({ messages = msgs() }, { on_done = function() error("on_done failed") end })
      local other = client:start({ messages = msgs("other") })
      local ok, e
      local deadline = core.now() + 5
      repeat
        ok, e = pcall(client.poll, client, 0.05)
      until not ok or core.now() > deadline
      assert.is_false(ok)
      assert.truthy(tostring(e):find("on_done failed", 1, true))
      assert.is_true(h:done())
      run(client)
      assert.is_true(other:done())
      assert.is_nil(select(2, other:result()))
    end)

    it("keeps even error(nil) from passing unnoticed", function()
      client:start({ messages = msgs() }, { on_done = function() error(nil) end })
      local ok, e
      local deadline = core.now() + 5
      repeat
        ok, e = pcall(client.poll, client, 0.05)
      until not ok or core.now() > deadline
      assert.is_false(ok)
      assert.truthy(tostring(e):find("raised nil", 1, true))
      assert.equal(0, client:pending())
    end)
  end)

  describe("poll(0)", function()
    it("never blocks while the server delays, and poll(t) waits at most t", function()
      local skip = util.skip_latency()
      if skip then return pending(skip) end
      srv:enqueue({ delay = 0.8, json = completion("slow") },
                  { chunks = sse(words(3)), chunk_delay = 0.25 })
      local slow = client:start({ messages = msgs() })
      arrived(1)
      -- poll(0.1) waits at most about 0.1 s (10x here: only a wait for the
      -- server's 0.8 s fails it on a busy machine). It may return sooner:
      -- any socket activity (the request still being written) ends a wait
      local t0 = core.now()
      client:poll(0.1)
      local waited = core.now() - t0
      assert.is_true(waited < 1, "poll(0.1) took " .. waited)
      -- poll(0) returns at once, whether a chunk came or not: 200 of them
      -- end before the slow answer (0.8 s) or the stream's three chunks
      -- (0.25 s apart) could have, had any waited for the network
      local streamed = client:start({ messages = msgs(), stream = true })
      for _ = 1, 200 do client:poll(0) end
      assert.is_false(slow:done())
      assert.is_false(streamed:done())
      run(client)
      assert.equal("slow", content_of((slow:result())))
      assert.equal(select(2, words(3)), content_of((streamed:result())))
    end)
  end)

  describe("cancel", function()
    it("takes effect at once and frees the connection", function()
      local skip = util.skip_latency()
      if skip then return pending(skip) end
      srv:enqueue({ delay = 5, json = completion("never") })
      local calls, got = 0, nil
      local h = client:start({ messages = msgs() }, {
        on_done = function(resp, err)
          calls = calls + 1
          assert.is_nil(resp)
          got = err
        end,
      })
      arrived(1)
      -- what the server saw of this request's connection, not a count of
      -- what happens to be open (another test's kept-alive connection may
      -- close or be reused meanwhile: "1 where 2 was expected")
      local conn = srv:requests()[1].connection_id
      local function open(id)
        for _, c in ipairs(srv:stats().open_connection_ids) do
          if c == id then return true end
        end
        return false
      end
      assert.is_true(open(conn))
      h:cancel()
      assert.is_true(h:done()) -- at once: no poll, no wait
      assert.equal(1, calls)
      assert.equal("canceled", got.kind)
      local resp, err = h:result()
      assert.is_nil(resp)
      assert.equal(got, err)
      assert.equal(0, client:pending())
      h:cancel() -- idempotent
      client:poll(0)
      assert.equal(1, calls)
      -- the server sees the connection go away
      eventually(function() return not open(conn) end, 10, "the connection to close")
      -- and the next request works, on a new connection
      local r2 = assert(client:chat{ messages = msgs("next") })
      assert.truthy(content_of(r2):find("next", 1, true))
      local reqs = srv:requests()
      assert.equal(2, #reqs)
      assert.are_not.equal(reqs[1].connection_id, reqs[2].connection_id)
    end)

    it("stops a stream midway: no chunk after cancel, on_done once", function()
      local pieces = words(10)
      srv:enqueue({ chunks = sse(pieces), chunk_delay = 0.1 })
      local chunks, calls, got = 0, 0, nil
      local h = client:start({ messages = msgs(), stream = true }, {
        on_chunk = function() chunks = chunks + 1 end,
        on_done = function(_, err)
          calls = calls + 1
          got = err
        end,
      })
      local deadline = core.now() + 5
      while chunks < 3 and core.now() < deadline do client:poll(0.05) end
      h:cancel()
      assert.is_true(h:done())
      local at_cancel = chunks
      local stop = core.now() + 0.4
      while core.now() < stop do client:poll(0.05) end
      assert.equal(at_cancel, chunks)
      assert.equal(1, calls)
      assert.equal("canceled", got.kind)
      assert.truthy(content_of(assert(client:chat{ messages = msgs("after") })):find("after", 1, true))
    end)

    it("works from inside the request's own on_chunk", function()
      srv:enqueue({ chunks = sse(words(10)), chunk_delay = 0.02 })
      local chunks, got, h = 0, nil, nil
      h = client:start({ messages = msgs(), stream = true }, {
        on_chunk = function()
          chunks = chunks + 1
          h:cancel()
        end,
        on_done = function(_, err) got = err end,
      })
      run(client) -- raises nothing
      assert.equal(1, chunks)
      assert.equal("canceled", got.kind)
    end)

    it("of one request from another's callback leaves the rest alone", function()
      srv:enqueue({ delay = 0.2, json = completion("first") }, { delay = 5, json = completion("second") })
      local second
      client:start({ messages = msgs() }, { on_done = function() second:cancel() end })
      arrived(1)
      second = client:start({ messages = msgs() })
      run(client)
      assert.equal("canceled", select(2, second:result()).kind)
    end)

    it("during a retry wait sends nothing more", function()
      srv:enqueue({ status = 429, json = { error = "slow down" }, headers = { ["retry-after-ms"] = "3000" } })
      local h = client:start({ messages = msgs() })
      arrived(1)
      client:poll(0.1)
      assert.is_false(h:done())
      h:cancel()
      assert.equal("canceled", select(2, h:result()).kind)
      client:poll(0.1)
      assert.equal(1, srv:stats().requests)
    end)
  end)

  describe("retries", function()
    it("wait without blocking poll, then succeed", function()
      local events = {}
      local c = baseten.new{ api_key = KEY, base_url = srv.url, model = MODEL,
                             log = function(e) events[#events + 1] = e end }
      srv:enqueue({ status = 429, json = { error = "slow down" }, headers = { ["retry-after-ms"] = "300" } })
      local t0 = core.now()
      local h = c:start({ messages = msgs("retried") })
      local waiting = 0 -- polls that returned during the 0.3 s retry wait
      while not h:done() do
        assert(core.now() - t0 < 30, "the retry never finished")
        c:poll(0)
        if events[#events].event == "retry" then waiting = waiting + 1 end
        core.sleep(0.005)
      end
      local elapsed = core.now() - t0
      local resp, err = h:result()
      assert.is_nil(err)
      assert.truthy(content_of(resp):find("retried", 1, true))
      assert.equal(2, #srv:requests())
      assert.is_true(elapsed >= 0.28, "took " .. elapsed)
      -- a poll that slept through the wait would leave one or two
      assert.is_true(waiting >= 3, waiting .. " polls returned while the retry waited")
      local kinds = {}
      for _, e in ipairs(events) do kinds[#kinds + 1] = e.event end
      assert.same({ "request", "retry", "request", "response" }, kinds)
      c:close()
    end)

    it("retry a stream that failed before any data, and give up after max_retries", function()
      local pieces, text = words(4)
      srv:enqueue({ status = 503, json = { error = "busy" }, headers = { ["retry-after-ms"] = "50" } },
                  { chunks = sse(pieces) })
      local s = client:start({ messages = msgs(), stream = true })
      run(client)
      assert.equal(text, content_of((s:result())))
      srv:reset()
      srv:enqueue({ status = 500, json = { error = "a" }, headers = { ["retry-after-ms"] = "10" } },
                  { status = 500, json = { error = "b" }, headers = { ["retry-after-ms"] = "10" } },
                  { status = 500, json = { error = "c" }, headers = { ["retry-after-ms"] = "10" } })
      local h = client:start({ messages = msgs() }, { max_retries = 2 })
      run(client)
      local _, err = h:result()
      assert.equal("server", err.kind)
      assert.equal(3, err.attempts)
      assert.equal(3, #srv:requests())
    end)

    it("drain sleeps through a retry wait instead of spinning", function()
      srv:enqueue({ status = 429, json = { error = "x" }, headers = { ["retry-after-ms"] = "400" } })
      local h = client:start({ messages = msgs() })
      local c0 = os.clock()
      assert.equal(0, client:drain(5))
      assert.is_true(h:done())
      assert.is_true(os.clock() - c0 < 0.2, "drain used " .. (os.clock() - c0) .. " s of CPU")
    end)
  end)

  describe("connections", function()
    it("are reused by successive requests, streams included", function()
      for i = 1, 5 do
        local h = client:start({ messages = msgs("seq " .. i), stream = i % 2 == 0 })
        assert.equal(0, client:drain(5))
        assert.is_nil(select(2, h:result()))
      end
      -- blocking calls share the pool; a stream ended by [DONE] gives its
      -- connection back even when the body's last chunk is still on its way
      for _ = 1, 3 do assert(assert(client:stream{ messages = msgs() }):final()) end
      assert(client:chat{ messages = msgs("blocking too") })
      local h = client:start({ messages = msgs(), stream = true })
      assert.equal(0, client:drain(5))
      assert.is_nil(select(2, h:result()))
      local stats = srv:stats()
      assert.equal(10, stats.requests)
      -- one connection, or two when a stream's last body chunk came after
      -- the next request had started: the test server writes "[DONE]" and
      -- the chunked body's end apart, and on a busy machine it can be
      -- descheduled between the two (then curl cannot reuse that one yet)
      assert.is_true(stats.connections <= 2, stats.connections .. " connections")
      assert.is_true(stats.distinct_connections <= 2, stats.distinct_connections .. " connections")
    end)

    it("are reused by concurrent batches: 4 at once, then 4 more, use at most 4", function()
      for _ = 1, 2 do
        local hs = {}
        for i = 1, 4 do
          srv:enqueue({ delay = 0.1, json = completion("c" .. i) })
          hs[i] = client:start({ messages = msgs() })
        end
        assert.equal(0, client:drain(5))
        for i = 1, 4 do assert.is_nil(select(2, hs[i]:result())) end
      end
      local stats = srv:stats()
      assert.equal(8, stats.requests)
      assert.is_true(stats.distinct_connections <= 4, stats.distinct_connections .. " connections")
      assert.is_true(stats.connections <= 4, stats.connections .. " connections")
    end)
  end)

  it("from one poll loop, 12 streams that each take one second run side by side: all 12 are under way at once", function()
    -- Counted, not timed: a stream is under way from its first chunk to its
    -- end, as this loop sees them. One after another, at most one would be;
    -- side by side, all 12 are. The server holds every stream after its
    -- first chunk until all 12 have sent theirs (a "barrier", at most 60 s),
    -- so how slowly this client starts 12 requests (the sanitizer's GC pass
    -- on a busy machine once took longer than a whole stream) cannot end
    -- one stream before the last begins; one after another, the server
    -- would see one stream at the barrier, not 12. The GC pass's wider gaps
    -- leave its slow poll loop time to see each first chunk before an end.
    local gap = os.getenv("BASETEN_GC_TORTURE") and 0.5 or 1 / 12
    local pieces, text = words(10)
    for _ = 1, 12 do srv:enqueue({ chunks = sse(pieces), chunk_delay = gap, barrier = 12 }) end -- 13 gaps: 1.08 s (6.5 s)
    local t0 = core.now()
    local took, handles, chunks = {}, {}, {}
    local under_way, most = 0, 0
    for i = 1, 12 do
      chunks[i] = 0
      handles[i] = client:start({ messages = msgs(), stream = true }, {
        on_chunk = function()
          chunks[i] = chunks[i] + 1
          if chunks[i] == 1 then
            under_way = under_way + 1
            most = math.max(most, under_way)
          end
        end,
        on_done = function(_, err)
          assert.is_nil(err)
          took[i] = core.now() - t0
          under_way = under_way - 1
        end,
      })
    end
    while client:pending() > 0 do
      assert(core.now() - t0 < 120, "streams did not finish")
      client:poll(0.05)
    end
    assert.equal(12, srv:stats().barrier_most, "the server saw streams one after another")
    assert.equal(12, most, "at most " .. most .. " streams under way at once")
    for i = 1, 12 do
      assert.is_true(took[i] >= 13 * gap * 0.8, "stream " .. i .. " took only " .. took[i])
      assert.equal(text, content_of((handles[i]:result())))
    end
    assert.equal(12, srv:stats().requests)
  end)

  describe("coroutines", function()
    it("a blocking stream works inside one, blocking while it waits; it may yield between chunks", function()
      local pieces, text = words(5)
      srv:enqueue({ chunks = sse(pieces), chunk_delay = 0.2 })
      local co = coroutine.create(function()
        for chunk in assert(client:stream{ messages = msgs() }) do
          local d = chunk.choices[1] and chunk.choices[1].delta
          if d and d.content and d.content ~= "" then coroutine.yield(d.content) end
        end
        return "end"
      end)
      local got, longest, after_pause = {}, 0, nil
      while true do
        local t0 = core.now()
        local ok, v = coroutine.resume(co)
        local dt = core.now() - t0
        assert.is_true(ok, tostring(v))
        if v == "end" then break end
        longest = math.max(longest, dt)
        got[#got + 1] = v
        if #got == 1 then
          -- suspended mid-stream: the client serves a blocking call...
          assert.truthy(content_of(assert(client:chat{ messages = msgs("meanwhile") })):find("meanwhile", 1, true))
          -- ...and the coroutine is left alone while chunks arrive
          core.sleep(0.5)
        elseif #got == 2 then
          after_pause = dt
        end
      end
      assert.equal("dead", coroutine.status(co))
      assert.same(pieces, got)
      assert.equal(text, table.concat(got))
      assert.is_true(longest >= 0.15, "no resume waited for data: " .. longest) -- it blocked the thread
      -- the data waited for it: not another chunk interval (0.2 s); loose
      -- for a busy machine, which may pause a resume for a while
      assert.is_true(after_pause < 0.15, "buffered chunk took " .. after_pause)
    end)

    it("spawn and await: poll drives the coroutine", function()
      srv:enqueue({ delay = 0.1, json = completion("one") }, { json = completion("two") })
      local log = {}
      local co = client:spawn(function(a, b)
        log[#log + 1] = "start " .. a .. b
        local r1, e1 = client:await({ messages = msgs() })
        log[#log + 1] = content_of(r1) or tostring(e1)
        local r2 = client:await({ messages = msgs() })
        log[#log + 1] = content_of(r2)
      end, "x", "y")
      assert.equal("suspended", coroutine.status(co))
      assert.same({ "start xy" }, log)
      assert.equal(1, client:pending())
      run(client)
      assert.equal("dead", coroutine.status(co))
      assert.same({ "start xy", "one", "two" }, log)
    end)

    it("two coroutines wait at once", function()
      srv:enqueue({ delay = 0.5, json = completion("A") }, { delay = 0.5, json = completion("B") })
      local got, sent_at_first = {}, nil
      local function waiter()
        local text = content_of(client:await({ messages = msgs() }))
        sent_at_first = sent_at_first or #srv:requests()
        got[#got + 1] = text
      end
      local c1 = client:spawn(waiter)
      local c2 = client:spawn(waiter)
      assert.equal(2, client:pending())
      run(client)
      table.sort(got)
      assert.same({ "A", "B" }, got)
      assert.equal("dead", coroutine.status(c1))
      assert.equal("dead", coroutine.status(c2))
      -- they overlapped: both requests had reached the server when the first answer came
      assert.equal(2, sent_at_first)
    end)

    it("await streams with on_chunk and returns the accumulated response", function()
      local pieces, text = words(5)
      srv:enqueue({ chunks = sse(pieces), chunk_delay = 0.02 })
      local got, resp = {}, nil
      client:spawn(function()
        resp = client:await({ messages = msgs(), stream = true }, {
          on_chunk = function(chunk)
            local d = chunk.choices[1] and chunk.choices[1].delta
            if d and d.content and d.content ~= "" then got[#got + 1] = d.content end
          end,
        })
      end)
      assert.equal(0, #got)
      run(client)
      assert.same(pieces, got)
      assert.equal(text, content_of(resp))
    end)

    it("await returns nil, err on failure", function()
      srv:enqueue({ status = 404, json = { error = "Model not found" } })
      local r, e
      client:spawn(function() r, e = client:await({ messages = msgs() }) end)
      run(client)
      assert.is_nil(r)
      assert.equal("not_found", e.kind)
    end)

    it("await outside a coroutine is a blocking call", function()
      local resp, err = client:await({ messages = msgs("plain") })
      assert.is_nil(err)
      assert.truthy(content_of(resp):find("plain", 1, true))
      local pieces, text = words(3)
      srv:enqueue({ chunks = sse(pieces) })
      local got = {}
      local sresp = client:await({ messages = msgs(), stream = true }, {
        on_chunk = function(chunk)
          local d = chunk.choices[1] and chunk.choices[1].delta
          if d and d.content and d.content ~= "" then got[#got + 1] = d.content end
        end,
      })
      assert.same(pieces, got)
      assert.equal(text, content_of(sresp))
      assert.equal(0, client:pending())
    end)

    it("an error in a spawned coroutine comes out of spawn, or of poll after an await", function()
      assert.has_error(function() client:spawn(function() error("early") end) end, "early")
      client:spawn(function()
        client:await({ messages = msgs() })
        error({ late = true })
      end)
      local ok, e
      local deadline = core.now() + 5
      repeat
        ok, e = pcall(client.poll, client, 0.05)
      until not ok or core.now() > deadline
      assert.is_false(ok)
      assert.same({ late = true }, e)
      assert.equal(0, client:pending())
    end)

    it("a stray resume of an awaiting coroutine just yields again", function()
      srv:enqueue({ delay = 0.2, json = completion("ok") })
      local result
      local co = coroutine.create(function() result = content_of(client:await({ messages = msgs() })) end)
      assert.is_true(coroutine.resume(co))
      assert.is_true(coroutine.resume(co)) -- not from poll: waits on
      assert.equal("suspended", coroutine.status(co))
      assert.is_nil(result)
      run(client)
      assert.equal("dead", coroutine.status(co))
      assert.equal("ok", result)
    end)
  end)
end)
