--- Embeddings, rerank and classify: `client:embed`, `client:start_embed`,
-- `client:rerank`, `client:classify`.
--
--     local vectors = baseten.check(client:embed(texts, {
--       model = "text-embedding-3-small", batch_size = 32, concurrency = 16,
--       hedge_delay = 0.5,                      -- resend a request still unanswered after 0.5 s
--     }))
--     local idx, scores = baseten.vector.top_k(query_vector, vectors, 5)
--
-- One scheduler serves the three calls. The inputs are split into requests
-- of at most `batch_size` inputs and `max_chars_per_request` characters (an
-- input longer than that goes alone and is never cut), at most
-- `concurrency` requests are in flight, and each request goes through the
-- client's one request path (`baseten.request`): retries on 429 and 5xx
-- with backoff, logging, usage totals. Results land at their inputs'
-- positions whatever order the requests finish in.
--
-- Hedging (`hedge_delay = d`): a request still unanswered after `d` seconds
-- is sent once more; the first answer wins and the other transfer is
-- closed at once, so its response is never read and `client:usage()`
-- counts the request once. Hedges never exceed 5 % of a call's requests
-- (`floor(requests / 20)`), and each is logged as a `hedge` event
-- (`outcome = "sent"`, then `"won"` or `"lost"`). A hedge is not retried.
--
-- Vectors come back as `baseten.vector` userdata (packed float32).
-- `encoding_format = "base64"` (the default) has the server send the
-- floats as base64, decoded in C straight into the vector; a server that
-- ignores it and sends arrays of numbers works the same. A vector with a
-- NaN, or a response that does not hold one embedding per input, is an
-- `invalid_response`.
-- @module baseten.embed
local core = require("baseten.core")
local errors = require("baseten.errors")
local request = require("baseten.request")
local options = require("baseten.options")
local task = require("baseten.task")
local shapes = require("baseten.embed_shapes")

local json = core.json
local now = core.now
local floor, max, min = math.floor, math.max, math.min

local M = {}

--- Inputs per request unless `batch_size` says otherwise.
M.DEFAULT_BATCH_SIZE = 32
--- Requests in flight at most unless `concurrency` says otherwise.
M.DEFAULT_CONCURRENCY = 16
--- The share of a call's requests that may be hedged.
M.HEDGE_SHARE = 0.05
--- Seconds between two `on_progress` calls, at least.
M.PROGRESS_INTERVAL = 0.1

-- A call is a task (baseten.task) that `poll` drives, or that the
-- blocking calls drive themselves.
local Job = setmetatable({}, { __index = task.Task })
Job.__index = Job
M.Job = Job

local raised = task.raised

local function bad_response(message, request_id)
  return errors.new({ kind = "invalid_response", message = message, request_id = request_id })
end

-- The engine options of every request of a job: BEI's /rerank and
-- /predict sit beside /v1, at the deployment's root.
local function job_wire(client, spec, copts)
  local probe = request.new(client, "POST", spec.path, nil, false, copts)
  local wire = request.wire(probe)
  if spec.bei then wire.url = client.base_url:gsub("/v1$", "") .. spec.path end
  return wire, probe:missing_key()
end

-- A new call; raises at `level` counted from its caller. `track`: poll
-- drives it (start_embed), else its caller does.
-- `extra`: `query` (rerank), `partial = false` (rerank and classify).
local function new_job(client, kind, items, opts, where, level, track, extra)
  opts = shapes.check_options(opts, where, level + 1)
  local timeout = opts.timeout
  local copts = options.call(client, {
    timeout = timeout and min(timeout, client.timeout) or nil, max_retries = opts.max_retries,
    headers = opts.headers }, where, level + 1)
  local spec = shapes.KINDS[kind]
  local groups = shapes.split(items, opts.batch_size or M.DEFAULT_BATCH_SIZE, opts.max_chars_per_request)
  local t0 = now()
  local job = setmetatable({
    _kind = kind, _spec = spec, _items = items, _opts = opts, _groups = groups,
    _copts = copts, _hedge_copts = { timeout = copts.timeout, max_retries = 0, headers = copts.headers },
    _concurrency = opts.concurrency or M.DEFAULT_CONCURRENCY,
    _hedge_delay = opts.hedge_delay, _hedge_budget = floor(#groups * M.HEDGE_SHARE + 1e-9),
    _deadline = timeout and t0 + timeout, _partial = opts.partial and true or false,
    _on_progress = opts.on_progress, _on_batch = opts.on_batch,
    _next = 1, _open = 0, _active = {}, _waiting = {},
    _done = 0, _failed = 0, _requests = 0, _hedges = 0, _retries = 0,
    _t0 = t0, _last_progress = t0,
    results = {}, errs = {},
  }, Job)
  task.init(job, client, opts.on_done, not track)
  return Job._setup(job, copts, extra or {})
end

-- What the shapes (baseten.embed_shapes) read and fill, and the engine
-- options of every request.
function Job:_setup(copts, extra)
  if extra.partial == false then self._partial = false end
  self._ctx = { items = self._items, opts = self._opts, query = extra.query, model = self.client.model,
                results = self.results }
  self._wire, self._refusal = job_wire(self.client, self._spec, copts)
  return self
end

local function remove(list, x)
  for i = #list, 1, -1 do
    if list[i] == x then
      table.remove(list, i)
      return true
    end
  end
  return false
end

-- Closes a call's transfer, wherever it is (in flight or waiting).
function Job:_drop(call)
  call:cancel("the other copy of the request answered first")
  remove(self._active, call)
  remove(self._waiting, call)
end

-- Sends a request of group g (a hedge: a second copy). Returns a boxed
-- error when a callback raised. A request that cannot start (a closed
-- client, a failure inside the library) settles its group with the error.
function Job:_launch(g, hedge)
  local call = request.new(self.client, "POST", self._spec.path, g.body, false,
    hedge and self._hedge_copts or self._copts)
  call.wire, call.g, call.hedge = self._wire, g, hedge
  local ok, t, err = pcall(call.launch, call)
  if not (ok and t) then
    if hedge then return nil end -- the first copy is still on its way
    if not ok then
      err = errors.new({ kind = "canceled", message = "the request could not be started: " .. tostring(t) },
        self.rt:secret())
    end
    return self:_settle(g, err)
  end
  self._requests = self._requests + 1
  local calls = g.calls
  calls[#calls + 1] = call
  self._active[#self._active + 1] = call
  return nil
end

-- Starts the next request (the body is encoded now, not before).
function Job:_open_next()
  local g = self._groups[self._next]
  self._next = self._next + 1
  g.calls, g.t0 = {}, now()
  self._open = self._open + 1
  local ok, body = pcall(json.encode, self._spec.body(self._ctx, g))
  if not ok then
    return self:_settle(g, errors.new({ kind = "bad_request",
      message = "the request could not be encoded (it was not sent): " .. tostring(body) }))
  end
  g.body = body
  return self:_launch(g, false)
end

function Job:_hedge(call, t)
  local g = call.g
  self._hedges = self._hedges + 1
  g.hedged = true
  request.emit(self.client, { event = "hedge", outcome = "sent", first = g.first, last = g.last,
                              waited = t - call.t_attempt, hedges = self._hedges })
  return self:_launch(g, true)
end

-- A request's inputs are settled (ok or failed): its slot frees, and
-- on_batch hears of it. Returns a boxed error when a callback raised.
function Job:_settle(g, err)
  g.done, g.calls, g.body = true, nil, nil
  self._open = self._open - 1
  local count = g.last - g.first + 1
  self._done = self._done + count
  if err then
    self._failed = self._failed + count
    err.index = g.first
  end
  local cb = self._on_batch
  if cb then
    local ok, e = pcall(cb, g.first, g.last, err, now() - g.t0)
    if not ok then
      self._on_batch, self._on_progress, self.on_done = nil, nil, nil
      self:abort("on_batch raised: " .. tostring(e))
      return raised(e)
    end
  end
  if not err then return nil end
  if self._partial then
    for i = g.first, g.last do self.errs[i] = err end
    return nil
  end
  self._error = err
  return self:_end_now(nil)
end

-- Judges one settled call. Returns a boxed error when a callback raised.
function Job:_judge(call)
  local g = call.g
  local what, v = call:judge()
  if what == "retry" then
    self._retries = self._retries + 1
    self._waiting[#self._waiting + 1] = call
    return nil
  end
  remove(g.calls, call)
  if what == "fail" then
    if #g.calls > 0 then return nil end -- the other copy may still answer
    return self:_settle(g, v)
  end
  for _, other in ipairs(g.calls) do -- the first answer wins
    self:_drop(other)
    if other.hedge or call.hedge then
      request.emit(self.client, { event = "hedge", outcome = call.hedge and "won" or "lost",
                                  first = g.first, last = g.last })
    end
  end
  g.calls = {}
  local rid = v:header("x-request-id")
  local doc, err = call:result(v)
  if not doc then return self:_settle(g, err) end
  local why = self._spec.parse(self._ctx, g, doc)
  if why then return self:_settle(g, bad_response(why, rid)) end
  return self:_settle(g, nil)
end

--- A snapshot: `done` and `failed` (inputs), `total` (inputs), `requests`
-- (sent, retries and hedges included), `in_flight`, `hedges`, `retries`,
-- `elapsed` (seconds), `per_second` (inputs done per second).
function Job:progress()
  local elapsed = now() - self._t0
  return { done = self._done, failed = self._failed, total = #self._items, requests = self._requests,
           in_flight = #self._active, hedges = self._hedges, retries = self._retries, elapsed = elapsed,
           per_second = elapsed > 0 and self._done / elapsed or 0 }
end

function Job:_report(t, force)
  local cb = self._on_progress
  if not cb or (not force and t - self._last_progress < M.PROGRESS_INTERVAL) then return nil end
  self._last_progress = now()
  local ok, e = pcall(cb, self:progress())
  if not ok then
    self._on_progress, self._on_batch, self.on_done = nil, nil, nil
    self:abort("on_progress raised: " .. tostring(e))
    return raised(e)
  end
  return nil
end

-- The call ends (once): final progress, then on_done (task.finish).
function Job:_complete()
  if self.ended then return nil end
  local e = self:_report(now(), true)
  local e2 = self:finish(self:_results())
  return e or e2
end

-- Ends the call: every transfer closed at once. With a message, the
-- call's error is `kind` (`canceled` by default), unless `_error` already
-- holds one; with `partial` the inputs not done carry it instead.
function Job:_end_now(message, kind)
  if self.ended then return nil end
  for _, list in ipairs({ self._active, self._waiting }) do
    for _, call in ipairs(list) do call:cancel(message) end
  end
  self._active, self._waiting = {}, {}
  if message and not self._error then
    local err = errors.new({ kind = kind or "canceled", message = message })
    for _, g in ipairs(self._groups) do
      if not g.done then
        err.index = err.index or g.first
        -- partial: what finished stays, the rest carries the error
        if self._partial then
          for i = g.first, g.last do self.errs[i] = err end
        end
      end
    end
    if not self._partial then self._error = err end
  end
  return self:_complete()
end

--- Ends the call now as canceled (task interface). Returns a boxed error
-- when a callback raised.
function Job:abort(message)
  return self:_end_now(message or "the " .. self._kind .. " call was canceled")
end

--- Advances the call as far as it can go without waiting (task interface:
-- poll calls it; the blocking calls in a loop). Returns a boxed error when
-- a callback raised.
function Job:step()
  if self.ended then return nil end
  if self.rt:closed() then return self:abort("the client was closed") end
  if self._refusal then
    self._error = errors.new({ kind = self._refusal.kind, message = self._refusal.message, index = 1 })
    return self:_complete()
  end
  local active = self._active
  local i = 1
  while i <= #active do
    local call = active[i]
    if call:settled() then
      table.remove(active, i)
      local e = self:_judge(call)
      if e or self.ended then return e end
    else
      i = i + 1
    end
  end
  local t = now()
  if self._deadline and t >= self._deadline then
    return self:_end_now(("the %s call took longer than its timeout (%g s)"):format(self._kind, self._opts.timeout),
      "timeout")
  end
  local waiting = self._waiting
  local j = 1
  while j <= #waiting do
    local call = waiting[j]
    if call:due() <= t then
      table.remove(waiting, j)
      local ok, lt, lerr = pcall(call.launch, call)
      if ok and lt then
        self._requests = self._requests + 1
        active[#active + 1] = call
      else
        remove(call.g.calls, call)
        if #call.g.calls == 0 then
          local e = self:_settle(call.g, lerr or errors.new({ kind = "canceled",
            message = "the request could not be started: " .. tostring(lt) }, self.rt:secret()))
          if e or self.ended then return e end
        end
      end
    else
      j = j + 1
    end
  end
  while self._open < self._concurrency and self._next <= #self._groups do
    local e = self:_open_next()
    if e or self.ended then return e end
  end
  if self._hedge_delay and self._hedges < self._hedge_budget then
    for _, call in ipairs(active) do
      local g = call.g
      if not g.hedged and #g.calls == 1 and t - call.t_attempt >= self._hedge_delay then
        local e = self:_hedge(call, t)
        if e or self.ended then return e end
        if self._hedges >= self._hedge_budget then break end
      end
    end
  end
  if self._next > #self._groups and self._open == 0 then return self:_complete() end
  return self:_report(t, false)
end

--- The next time the call has work besides the network (a retry, a
-- hedge, the deadline, a progress call), or nil (task interface).
function Job:next_due()
  if self.ended then return nil end
  local due = self._deadline
  local function at(x) if due == nil or x < due then due = x end end
  for _, call in ipairs(self._waiting) do at(call:due()) end
  if self._hedge_delay and self._hedges < self._hedge_budget then
    for _, call in ipairs(self._active) do
      if not call.g.hedged then at(call.t_attempt + self._hedge_delay) end
    end
  end
  if self._on_progress then at(self._last_progress + M.PROGRESS_INTERVAL) end
  return due
end

--- Whether a request of the call is on the engine (task interface).
function Job:on_network()
  return #self._active > 0
end

-- Seconds until `next_due` (at most `cap`).
function Job:_wait(cap)
  local due = self:next_due()
  if due == nil then return cap end
  return max(0, min(cap, due - now()))
end

--- Ends the call now: every transfer is closed, and the result is `nil,
-- err` with `err.kind == "canceled"`. Idempotent.
function Job:cancel()
  local e = self:abort("the " .. self._kind .. " call was canceled")
  if e ~= nil then error(e.err, 0) end
end

-- The results in the call's shape (rerank sorts them best first).
function Job:_shaped()
  local r = self.results
  if self._kind ~= "rerank" then return r end
  local list = {}
  for i = 1, #self._items do
    if r[i] then list[#list + 1] = r[i] end
  end
  table.sort(list, function(a, b)
    if a.score ~= b.score then return a.score > b.score end
    return a.index < b.index
  end)
  return list
end

-- The two results of the call: the results and, with `partial`, the
-- errors by input (`errs[i]`); or `nil, err` (`err.index`: the first
-- input of the request that failed). `result()` (baseten.task) gives them
-- once done.
function Job:_results()
  if self._error then return nil, self._error end
  if self._partial then return self:_shaped(), self.errs end
  return self:_shaped()
end

function Job:__tostring()
  return ("baseten.%s (%d/%d inputs done%s)"):format(self._kind, self._done, #self._items,
    self.ended and "" or (", " .. #self._active .. " in flight"))
end

-- Runs a job to its end, blocking.
local function run(job)
  local rt = job.rt
  while true do
    local e = job:step()
    if e ~= nil then error(e.err, 0) end
    if job:done() then break end
    local wait = Job._wait(job, 1)
    if job:on_network() then
      rt:perform(wait)
    elseif wait > 0 then
      core.sleep(wait)
    end
  end
  return job:result()
end

--- Embeds texts: `client:embed(inputs, opts)`.
-- @tparam string|table inputs a string or an array of strings
-- @tparam[opt] table opts `model`, `dimensions`, `encoding_format`
--   ("base64" default, or "float"), `batch_size` (32), `max_chars_per_request`,
--   `concurrency` (16), `hedge_delay` (seconds; off by default), `timeout`
--   (seconds for the whole call), `partial`, `on_progress(p)` (see
--   `Job:progress`), `on_batch(first, last, err, seconds)` (once per
--   request as its inputs first..last settle; `seconds` from its first send
--   to its answer, hedges and retries included), `max_retries`, `headers`
-- @treturn table vectors, one `baseten.vector` per input in input order;
--   or nil, err; with `partial`, vectors (nil where failed) and errs
function M.embed(client, inputs, opts)
  local items = shapes.check_inputs(inputs, "embed", "inputs", 2)
  return run(new_job(client, "embed", items, opts, "embed", 2, false))
end

--- The same as `embed`, without waiting: a handle that `client:poll`
-- drives. `h:done()`, `h:progress()`, `h:cancel()`, `h:result()`;
-- `opts.on_done(vectors, err_or_errs)` runs inside poll when it ends.
-- @treturn Job
function M.start_embed(client, inputs, opts)
  local items = shapes.check_inputs(inputs, "start_embed", "inputs", 2)
  return new_job(client, "embed", items, opts, "start_embed", 2, true)
end

--- Reranks texts against a query (BEI `/rerank`): `client:rerank(query, texts, opts)`.
-- @tparam string query
-- @tparam table texts an array of strings
-- @tparam[opt] table opts `return_text`, `raw_scores`, `truncate`, and the
--   batching options of `embed`
-- @treturn table an array of `{index, score[, text]}` (index into `texts`),
--   best first; or nil, err
function M.rerank(client, query, texts, opts)
  if type(query) ~= "string" then error("baseten: rerank: query must be a string", 2) end
  local items = shapes.check_inputs(texts, "rerank", "texts", 2)
  return run(new_job(client, "rerank", items, opts, "rerank", 2, false, { query = query, partial = false }))
end

--- Classifies texts (BEI `/predict`): `client:classify(inputs, opts)`.
-- @tparam string|table inputs
-- @tparam[opt] table opts `raw_scores`, `truncate`, and the batching
--   options of `embed`
-- @treturn table for each input, an array of `{label, score}`; or nil, err
function M.classify(client, inputs, opts)
  local items = shapes.check_inputs(inputs, "classify", "inputs", 2)
  return run(new_job(client, "classify", items, opts, "classify", 2, false, { partial = false }))
end

return M
