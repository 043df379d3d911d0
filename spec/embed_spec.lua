-- client:embed, start_embed, rerank and classify (issue 27, lua/baseten/embed.lua)
-- against the test server's embedding model (spec/support/embed_mock.py):
-- order across out-of-order completions, splitting by batch_size and
-- max_chars_per_request, partial failure, retries on 429 and 5xx, hedging
-- (budget, loser canceled, usage once), base64 and its fallback, NaN,
-- rerank and classify shapes, the non-blocking handle, the call timeout.
-- luacheck: std max+busted
local baseten = require("baseten")
local fixture = require("spec.support.fixture")
local core = require("baseten.core")
local util = require("spec.support.util")

local vector = baseten.vector

local function texts(n, prefix)
  local list = {}
  for i = 1, n do list[i] = (prefix or "text number ") .. i end
  return list
end

-- The recorded requests to a route, in arrival order.
local function posts(srv, route)
  local out = {}
  for _, r in ipairs(srv:requests()) do
    if r.path == route then out[#out + 1] = r end
  end
  return out
end

local function count_events(events, name, outcome)
  local n = 0
  for _, e in ipairs(events) do
    if e.event == name and (outcome == nil or e.outcome == outcome) then n = n + 1 end
  end
  return n
end

describe("client:embed", function()
  local srv, client, events

  fixture.server(function(s) srv = s end)

  before_each(function()
    events = {}
    client = baseten.new{ api_key = false, base_url = srv.url, max_retries = 2,
                          log = function(e) e.at = core.now(); events[#events + 1] = e end }
  end)

  after_each(function() client:close() end)

  -- the vector the server gives one text alone
  local function alone(text, opts)
    local v = assert(client:embed(text, opts))
    return vector.tobytes(v[1])
  end

  it("returns one vector per input, in input order, whatever order the requests finish in", function()
    local list = texts(9)
    -- the first request is the slowest, the second slower than the third
    srv:config{ embed = { faults = { { match = "text number 1", delay = 1.0, times = 1 },
                                     { match = "text number 4", delay = 0.5, times = 1 } } } }
    local vectors = assert(client:embed(list, { batch_size = 3 }))
    assert.equal(9, #vectors)
    -- which request answered when: response events carry the server's request id
    local first_of = {}
    for _, r in ipairs(posts(srv, "/v1/embeddings")) do first_of["req-" .. r.index] = r.json.input[1] end
    local order = {}
    for _, e in ipairs(events) do
      if e.event == "response" then order[#order + 1] = first_of[e.request_id] end
    end
    assert.same({ "text number 7", "text number 4", "text number 1" }, order)
    srv:config{ embed = { faults = {} } }
    for i = 1, 9 do
      assert.equal(alone(list[i]), vector.tobytes(vectors[i]), "vector " .. i)
    end
  end)

  it("a string input gives an array of one", function()
    local v = assert(client:embed("hello"))
    assert.equal(1, #v)
    assert.equal(32, #v[1])
    assert.same({}, assert(client:embed({})), "no inputs: no request")
    assert.equal(2, #posts(srv, "/v1/embeddings") + 1)
  end)

  it("splits by batch_size", function()
    local vectors = assert(client:embed(texts(10), { batch_size = 3, concurrency = 1 }))
    assert.equal(10, #vectors)
    local sizes = {}
    for i, r in ipairs(posts(srv, "/v1/embeddings")) do sizes[i] = #r.json.input end
    assert.same({ 3, 3, 3, 1 }, sizes)
  end)

  it("splits by max_chars_per_request; a longer input goes alone and whole", function()
    local long = string.rep("word ", 40) -- 200 characters
    local list = { "aaaa", "bbbb", "cccc", long, "dddd", "eeee" }
    local vectors = assert(client:embed(list, { max_chars_per_request = 10, concurrency = 1 }))
    assert.equal(6, #vectors)
    local bodies = {}
    for i, r in ipairs(posts(srv, "/v1/embeddings")) do bodies[i] = r.json.input end
    assert.same({ { "aaaa", "bbbb" }, { "cccc" }, { long }, { "dddd", "eeee" } }, bodies)
    srv:reset()
    assert(client:embed(list, { max_chars_per_request = 10, batch_size = 1 }))
    assert.equal(6, #posts(srv, "/v1/embeddings"), "batch_size holds too")
  end)

  it("sends encoding_format base64 by default and decodes it; float and a server ignoring it give the same", function()
    local list = texts(5, "some words ")
    local b64 = assert(client:embed(list, { dimensions = 24 }))
    local req = posts(srv, "/v1/embeddings")[1].json
    assert.equal("base64", req.encoding_format)
    assert.equal(24, req.dimensions)
    local float = assert(client:embed(list, { dimensions = 24, encoding_format = "float" }))
    assert.equal("float", posts(srv, "/v1/embeddings")[2].json.encoding_format)
    local ignored = assert(client:embed(list, { dimensions = 24, model = "test/nobase64" }))
    for i = 1, 5 do
      assert.equal(24, #b64[i])
      assert.equal(vector.tobytes(b64[i]), vector.tobytes(float[i]))
      assert.equal(vector.tobytes(b64[i]), vector.tobytes(ignored[i]))
    end
  end)

  it("places each embedding by its index when the server lists them out of order", function()
    local list = texts(4)
    local v = assert(client:embed(list, { model = "test/shuffled" }))
    for i = 1, 4 do assert.equal(alone(list[i]), vector.tobytes(v[i])) end
  end)

  it("a NaN in the answer is an invalid_response (base64 and JSON alike)", function()
    local v, err = client:embed({ "a", "b" }, { model = "test/nan" })
    assert.is_nil(v)
    assert.equal("invalid_response", err.kind)
    assert.equal(1, err.index)
    v, err = client:embed({ "a", "b" }, { model = "test/nan", encoding_format = "float" })
    assert.is_nil(v)
    assert.equal("invalid_response", err.kind)
  end)

  it("a failed request fails the call with err.index at its first input", function()
    srv:config{ embed = { faults = { { match = "bad", status = 400 } } } }
    local list = { "a", "b", "c", "bad d", "e", "f" }
    local v, err = client:embed(list, { batch_size = 2, concurrency = 1 })
    assert.is_nil(v)
    assert.equal("bad_request", err.kind)
    assert.equal(3, err.index)
    assert.equal(2, #posts(srv, "/v1/embeddings"), "nothing is sent after the failure")
  end)

  it("with partial, failed inputs are nil and errs holds their errors", function()
    srv:config{ embed = { faults = { { match = "bad", status = 400 } } } }
    local list = { "a", "b", "c", "bad d", "e", "f" }
    local v, errs = client:embed(list, { batch_size = 2, partial = true })
    assert.is_table(v)
    assert.is_nil(v[3])
    assert.is_nil(v[4])
    for _, i in ipairs({ 1, 2, 5, 6 }) do assert.equal(32, #v[i]) end
    assert.equal("bad_request", errs[3].kind)
    assert.equal(errs[3], errs[4])
    assert.equal(3, errs[3].index)
    assert.is_nil(errs[1])
  end)

  it("retries 429 and 5xx through the client's retry policy", function()
    srv:config{ embed = { faults = { { match = "", status = 429, times = 2 } } } }
    local v = assert(client:embed(texts(4), { batch_size = 2 }))
    assert.equal(4, #v)
    assert.equal(4, #posts(srv, "/v1/embeddings"))
    assert.equal(2, count_events(events, "retry"))
    srv:reset()
    srv:config{ embed = { faults = { { match = "", status = 503, times = 1 } } } }
    assert(client:embed(texts(4), { batch_size = 2 }))
    assert.equal(3, #posts(srv, "/v1/embeddings"))
    srv:reset()
    srv:config{ embed = { faults = { { match = "", status = 500 } } } }
    local none, err = client:embed(texts(2))
    assert.is_nil(none)
    assert.equal("server", err.kind)
    assert.equal(3, #posts(srv, "/v1/embeddings"), "1 + max_retries attempts")
  end)

  it("hedges a slow request: the first answer wins, the loser is canceled, usage counts it once", function()
    -- 20 requests: a budget of one hedge; the 5th request's first copy takes
    -- 60 s. hedge_delay is 2 s, far above a plain request's time even under
    -- valgrind on a loaded machine, so the one hedge goes to the slow request.
    srv:config{ embed = { faults = { { match = "text number 5", delay = 60, times = 1 } } } }
    -- a handle, held until the end, so nothing but the cancel can close the loser
    local h = client:start_embed(texts(20), { batch_size = 1, hedge_delay = 2 })
    while not h:done() do client:poll(0.05) end
    local v = assert(h:result())
    assert.equal(20, #v)
    assert.equal(1, count_events(events, "hedge", "sent"))
    assert.equal(1, count_events(events, "hedge", "won"))
    -- the loser was canceled: its transfer closed while the server still held
    -- its answer back (stats.hung_up), with no poll since
    local deadline = core.now() + 10
    while srv:stats().hung_up == 0 and core.now() < deadline do core.sleep(0.02) end
    assert.equal(1, srv:stats().hung_up)
    assert.equal(20, client:usage().requests, "20 responses; the loser's never counted")
    local copies = 0
    for _, r in ipairs(posts(srv, "/v1/embeddings")) do
      if r.json.input[1] == "text number 5" then copies = copies + 1 end
    end
    assert.equal(2, copies, "the slow one and its hedge")
    assert.equal(alone("text number 5"), vector.tobytes(v[5]))
    assert.is_table(h)
  end)

  it("holds the hedge budget: at most 5 % of the requests", function()
    -- every request (hedges too) takes 3 s: all 40 are still in flight long
    -- after hedge_delay, however slowly this machine launches them
    srv:config{ embed = { slow = { share = 1, delay = 3 } } }
    local v = assert(client:embed(texts(40), { batch_size = 1, hedge_delay = 0.05, concurrency = 40 }))
    assert.equal(40, #v)
    assert.equal(2, count_events(events, "hedge", "sent"))
    assert.equal(42, #posts(srv, "/v1/embeddings"))
    assert.equal(40, client:usage().requests)
    srv:reset()
    events = {}
    srv:config{ embed = { slow = { share = 1, delay = 0.3 } } }
    assert(client:embed(texts(19), { batch_size = 1, hedge_delay = 0.05 }))
    assert.equal(0, count_events(events, "hedge", "sent"), "19 requests allow no hedge")
  end)

  it("times out the whole call", function()
    srv:config{ embed = { faults = { { match = "", delay = 20 } } } }
    local v, err = client:embed(texts(3), { timeout = 0.3 })
    assert.is_nil(v)
    assert.equal("timeout", err.kind)
    assert.equal(1, err.index)
  end)

  it("calls on_progress, last with everything done", function()
    local seen = {}
    assert(client:embed(texts(12), { batch_size = 2, on_progress = function(p) seen[#seen + 1] = p end }))
    local last = seen[#seen]
    assert.equal(12, last.done)
    assert.equal(12, last.total)
    assert.equal(6, last.requests)
    assert.equal(0, last.failed)
  end)

  it("calls on_batch once per request with its inputs' range, its error and its time", function()
    srv:config{ embed = { faults = { { match = "bad", status = 400 } } } }
    local seen = {}
    local v = client:embed({ "a", "b", "bad c", "d", "e" }, { batch_size = 2, partial = true,
      on_batch = function(first, last, err, seconds)
        seen[#seen + 1] = { first, last, err and err.kind or "ok" }
        assert.is_true(seconds >= 0)
      end })
    table.sort(seen, function(x, y) return x[1] < y[1] end)
    assert.same({ { 1, 2, "ok" }, { 3, 4, "bad_request" }, { 5, 5, "ok" } }, seen)
    assert.equal(32, #v[5])
    local ok, err = pcall(client.embed, client, { "a", "b" }, { batch_size = 1, on_batch = function() error("boom") end })
    assert.is_false(ok)
    assert.matches("boom", tostring(err))
    assert(client:embed({ "a" }), "the client stays usable")
  end)

  it("raises at the caller's line on bad arguments and options", function()
    local line = debug.getinfo(1, "l").currentline
    local cases = {
      function() client:embed(42) end,
      function() client:embed({ "a", 1 }) end,
      function() client:embed({ "a" }, { batch_size = 0 }) end,
      function() client:embed({ "a" }, { concurrency = 1.5 }) end,
      function() client:embed({ "a" }, { hedge_delay = -1 }) end,
      function() client:embed({ "a" }, { encoding_format = "hex" }) end,
      function() client:embed({ "a" }, { on_progress = 1 }) end,
      function() client:embed({ "a" }, "opts") end,
      function() client:rerank(1, { "a" }) end,
      function() client:classify({ {} }) end,
    }
    for i, f in ipairs(cases) do
      local ok, err = pcall(f)
      assert.is_false(ok)
      assert.matches("embed_spec.lua:" .. (line + 1 + i), err, 1, true)
    end
  end)
end)

describe("client:start_embed", function()
  local srv, client
  fixture.client({ api_key = false }, function(s, c) srv, client = s, c end)

  it("is driven by poll without blocking, and hands the vectors to on_done", function()
    srv:config{ embed = { faults = { { match = "", delay = 0.3 } } } }
    local got
    local h = client:start_embed(texts(6), { batch_size = 2, on_done = function(v, err) got = { v, err } end })
    assert.is_false(h:done())
    assert.is_nil(h:result())
    local polls = 0
    while not h:done() do
      client:poll(0)
      polls = polls + 1
      core.sleep(0.005)
      assert.is_true(polls < 20000, "did not finish")
    end
    assert.is_true(polls > 5, "poll(0) returned while the requests were pending")
    local v = h:result()
    assert.equal(6, #v)
    assert.equal(v, got[1])
    assert.equal(0, client:pending())
  end)

  it("cancel closes every transfer and ends the handle as canceled", function()
    srv:config{ embed = { faults = { { match = "", delay = 20 } } } }
    local h = client:start_embed(texts(6), { batch_size = 2 })
    client:poll(0)
    h:cancel()
    assert.is_true(h:done())
    local v, err = h:result()
    assert.is_nil(v)
    assert.equal("canceled", err.kind)
    assert.equal(0, client:pending())
    h:cancel() -- idempotent
  end)

  it("works beside other requests on the same client", function()
    local h = client:start_embed(texts(4), { batch_size = 1 })
    local resp = assert(client:chat{ model = "openai/gpt-oss-120b", messages = { { role = "user", content = "hi" } } })
    assert.is_table(resp.choices)
    util.drain(client)
    assert.equal(4, #h:result())
  end)
end)

describe("client:rerank and client:classify", function()
  local srv, client
  fixture.client({ api_key = false }, function(s, c) srv, client = s, c end)

  it("rerank returns {index, score[, text]} best first, indices into texts, batched like embed", function()
    local docs = { "the cat sat", "dogs bark loudly", "a cat and a dog", "stock prices fell" }
    local one = assert(client:rerank("cat", docs, { return_text = true }))
    assert.equal(4, #one)
    for i = 2, 4 do assert.is_true(one[i - 1].score >= one[i].score) end
    for _, r in ipairs(one) do assert.equal(docs[r.index], r.text) end
    assert.is_true(one[1].index == 1 or one[1].index == 3)
    local batched = assert(client:rerank("cat", docs, { batch_size = 1 }))
    assert.equal(4, #posts(srv, "/rerank") - 1)
    for i = 1, 4 do
      assert.equal(one[i].index, batched[i].index)
      assert.equal(one[i].score, batched[i].score)
      assert.is_nil(batched[i].text)
    end
    local body = posts(srv, "/rerank")[1].json
    assert.equal("cat", body.query)
    assert.same(docs, body.texts)
  end)

  it("classify returns, per input, an array of {label, score}", function()
    local out = assert(client:classify({ "good great day", "awful terrible", "hmm" }, { batch_size = 2 }))
    assert.equal(3, #out)
    assert.equal("positive", out[1][1].label)
    assert.equal("negative", out[2][1].label)
    for _, labels in ipairs(out) do
      local sum = 0
      for _, l in ipairs(labels) do sum = sum + l.score end
      assert.is_true(math.abs(sum - 1) < 1e-3)
    end
    local reqs = posts(srv, "/predict")
    assert.equal(2, #reqs)
    local first = reqs[1].json.inputs[1][1] == "hmm" and reqs[2] or reqs[1] -- both were in flight at once
    assert.same({ { "good great day" }, { "awful terrible" } }, first.json.inputs)
  end)

  it("a rerank answer of the wrong shape is an invalid_response", function()
    srv:enqueue({ json = { { index = 0 } } })
    local r, err = client:rerank("q", { "a" })
    assert.is_nil(r)
    assert.equal("invalid_response", err.kind)
  end)
end)
