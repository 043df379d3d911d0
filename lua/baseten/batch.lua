--- Many requests at once: `client:batch` and `client:start_batch`.
--
--     local resps, errs = client:batch(requests, {
--       concurrency = 32,                       -- requests in flight at most
--       on_result = function(i, resp, err) end, -- once per request, as each ends
--       on_progress = function(p) end,         -- at most ~10 times a second
--     })
--     -- resps[i] or errs[i] is set for each i in 1..#requests
--
--     local h = client:start_batch(requests, opts) -- the same, driven by poll
--     client:poll(0) ... h:done(), h:progress(), h:cancel(), h:result()
--
-- A Batch is a task (see baseten.task) that `poll` drives, or that
-- `batch` drives itself, blocking. Every request is a non-streamed chat
-- Call (see baseten.request), driven the way async.lua's Handle drives
-- one: `launch`, `settled`, `judge`, `result`, so retries (the client's `max_retries` and backoff), logging
-- and usage totals are those of every other call. The batch watches each
-- attempt through `call.on_attempt`:
--
--   * the window (the most requests in flight) starts at `concurrency`; a
--     429 halves it (not below 1) as soon as it is seen, before its retry
--     is scheduled, and each success grows it by one, back up to
--     `concurrency`;
--   * a 429's `Retry-After` (at most 60 s, as the retry policy reads it)
--     holds back every launch, fresh requests and retries alike, until it
--     has passed;
--   * a retry waits for its backoff and then for a free slot in the window,
--     ahead of requests never sent. Each request makes at most
--     `1 + max_retries` attempts, so the server receives at most
--     `#requests * (1 + max_retries)` requests however many 429s it sends.
--
-- Bodies are encoded when their request is launched, not before, and a
-- request's transfer is closed as soon as it is decoded; with `keep =
-- false` the responses are only handed to `on_result`, so memory stays flat
-- however many requests the batch holds.
--
-- `M.batch(client, requests, opts)` and `M.start_batch(...)` are the
-- client's `batch` and `start_batch` methods (baseten.client puts them in
-- the method table).
-- @module baseten.batch
local core = require("baseten.core")
local errors = require("baseten.errors")
local request = require("baseten.request")
local options = require("baseten.options")
local task = require("baseten.task")

local now = core.now
local json_null = core.json.null
local floor, max, min = math.floor, math.max, math.min

local M = {}

--- Seconds between two `on_progress` calls, at least.
M.PROGRESS_INTERVAL = 0.1

--- The default `concurrency`.
M.DEFAULT_CONCURRENCY = 32

local Batch = setmetatable({}, { __index = task.Task })
Batch.__index = Batch
M.Batch = Batch

local PATH = "/chat/completions"

local raised = task.raised

-- The checks `request.chat_body` makes, made up front for every request,
-- so that a plainly wrong request raises before anything is sent; at
-- `level` counted from the caller of check_requests.
local function check_requests(client, requests, where, level)
  level = level + 1
  if type(requests) ~= "table" then error("baseten: " .. where .. " expects an array of requests", level) end
  local n = #requests
  local function bad(i, what) error("baseten: " .. where .. ": requests[" .. i .. "]" .. what, level + 1) end
  local default_model = client.model
  for i = 1, n do
    local req = requests[i]
    if type(req) ~= "table" then bad(i, " is not a request table") end
    local problem = request.messages_problem(req.messages)
    if problem then bad(i, ".messages " .. problem) end
    if req.model == nil and default_model == nil then bad(i, ".model is required (or set model on the client)") end
    if req.stream and req.stream ~= json_null then bad(i, ".stream: batch requests are not streamed") end
  end
  return n
end

local function check_options(opts, where, level)
  if opts == nil then return {} end
  if type(opts) ~= "table" then error("baseten: " .. where .. " options must be a table", level + 1) end
  options.check(options.BATCH, opts, "baseten: " .. where, level + 1)
  return opts
end

-- The tokens of a response, for progress: total_tokens, else prompt plus
-- completion, else 0.
local function tokens_of(resp)
  local u = resp.usage
  if type(u) ~= "table" then return 0 end
  local t = u.total_tokens
  if type(t) == "number" then return t end
  local p, c = u.prompt_tokens, u.completion_tokens
  return (type(p) == "number" and p or 0) + (type(c) == "number" and c or 0)
end

-- A new batch; raises at `level` counted from its caller. `track`: poll
-- drives it (start_batch), else its caller does (batch).
local function new_batch(client, requests, opts, where, level, track)
  local n = check_requests(client, requests, where, level + 1)
  opts = check_options(opts, where, level + 1)
  local copts = options.call(client, {
    timeout = opts.timeout, max_retries = opts.max_retries, headers = opts.headers, session = opts.session,
    fallback = opts.fallback,
  }, where, level + 1)
  local concurrency = opts.concurrency or M.DEFAULT_CONCURRENCY
  local t0 = now()
  local b = setmetatable({
    _requests = requests, _n = n, _copts = copts,
    _on_result = opts.on_result, _on_progress = opts.on_progress,
    _keep = opts.keep ~= false,
    _budget = opts.max_total_tokens, -- nil: no token budget
    _next = 1,        -- the next request never launched
    _active = {},     -- calls with a transfer on the engine
    _waiting = {},    -- calls waiting for their retry's time
    _ready = {},      -- calls whose retry is due, waiting for a slot (FIFO;
                      -- short: at most the calls of one window)
    _window = concurrency, _max = concurrency,
    _pause_until = 0, -- no launch before this time (a 429's Retry-After)
    _done = 0, _failed = 0, _tokens = 0, _retries = 0, _rate_limited = 0,
    _t0 = t0, _last_progress = t0,
    resps = {}, errs = {},
  }, Batch)
  task.init(b, client, opts.on_done, not track)
  return Batch._setup(b)
end

function Batch:_setup()
  self._observe = function(outcome, v) self:_observed(outcome, v) end
  local probe = request.new(self.client, "POST", PATH, nil, false, self._copts)
  self._refusal = self._n > 0 and probe:missing_key() or nil
  self._wire = request.wire(probe) -- one for every call of the batch
  return self
end

--- The window's rule, seen from every attempt (request.judge calls it).
function Batch:_observed(outcome, v)
  if outcome == "ok" then
    if self._window < self._max then self._window = self._window + 1 end
  elseif v.kind == "rate_limit" then -- "retry" or "fail": a 429 either way
    self._rate_limited = self._rate_limited + 1
    self._window = max(1, floor(self._window / 2))
    local ra = v.retry_after
    if ra and ra > 0 and ra <= 60 then
      local t = now() + ra
      if t > self._pause_until then self._pause_until = t end
    end
  end
end

-- A callback raised: no callback runs any more, what is left of the batch
-- is canceled, and the error goes out (boxed) of poll or batch.
function Batch:_raised(e, name)
  self._on_result, self._on_progress, self.on_done = nil, nil, nil
  self:abort(name .. " raised: " .. tostring(e))
  return raised(e)
end

-- Request i ends: records it, runs on_result. Returns a boxed error when
-- on_result raised (the batch is then canceled).
function Batch:_finish(i, resp, err, request_id)
  self._done = self._done + 1
  if resp then
    self._tokens = self._tokens + tokens_of(resp)
    if self._keep then self.resps[i] = resp end
    if self._budget and self._tokens >= self._budget then self._over = true end
  else
    self._failed = self._failed + 1
    if self._keep then self.errs[i] = err end
  end
  self.rt:touch()
  local cb = self._on_result
  if cb then
    local ok, e = pcall(cb, i, resp, err, request_id or (err and err.request_id))
    if not ok then return self:_raised(e, "on_result") end
  end
  return nil
end

-- A cancel inside a step (Batch:cancel) is taken at these points, between
-- two requests: a finalizer (or a hook) can call cancel anywhere, even
-- between reading `_next` and moving it on.
local function stopping(self)
  return self.ended or self._stop ~= nil
end

-- The next call to launch: a due retry first, else the next fresh request
-- (one whose body cannot be encoded ends here, as a bad_request). Returns
-- the call, or nil (with a boxed error when on_result raised).
function Batch:_take()
  if self._ready[1] then return table.remove(self._ready, 1) end
  local call
  local client = self.client
  while self._next <= self._n and not stopping(self) do
    local i = self._next
    self._next = i + 1
    if self._refusal then
      local r = self._refusal
      local e = self:_finish(i, nil, errors.new({ kind = r.kind, message = r.message, attempts = 0, elapsed = 0 }))
      if e then return nil, e end
    else
      local ok, body = pcall(request.chat_body, client, self._requests[i], nil, nil, "batch", 1)
      if ok then
        call = request.new(client, "POST", PATH, body, false, self._copts)
        call.i = i
        call.on_attempt = self._observe
        call.wire = self._wire
        return call
      end
      local e = self:_finish(i, nil, errors.new({ kind = "bad_request", attempts = 0, elapsed = 0,
        message = "the request could not be encoded (it was not sent): " .. tostring(body) }))
      if e then return nil, e end
    end
  end
  return nil
end

-- Judges one settled call. Returns a boxed error when on_result raised.
function Batch:_judge(call)
  local what, v = call:judge()
  if what == "retry" then
    self._retries = self._retries + 1
    local w = self._waiting
    w[#w + 1] = call
    return nil
  end
  if what == "fail" then return self:_finish(call.i, nil, v) end
  local rid = v:header("x-request-id")
  local resp, err = call:result(v)
  return self:_finish(call.i, resp, err, rid)
end

--- A snapshot of the batch: `done`, `failed`, `total`, `in_flight`,
-- `concurrency` (the current window), `elapsed`, `requests_per_second`,
-- `tokens`, and `retries`, `rate_limited` (429s seen), `waiting` (requests
-- waiting for a retry).
function Batch:progress()
  local elapsed = now() - self._t0
  return {
    done = self._done, failed = self._failed, total = self._n, in_flight = #self._active,
    concurrency = self._window, elapsed = elapsed,
    requests_per_second = elapsed > 0 and self._done / elapsed or 0,
    tokens = self._tokens, retries = self._retries, rate_limited = self._rate_limited,
    waiting = #self._waiting + #self._ready,
  }
end

-- on_progress, when its interval has passed (or `force`). Returns a boxed
-- error when it raised (the batch is then canceled).
function Batch:_report(t, force)
  local cb = self._on_progress
  if not cb or (not force and t - self._last_progress < M.PROGRESS_INTERVAL) then return nil end
  local p = self:progress()
  -- the interval counts from the call itself, not from when the caller
  -- looked at the clock (a slow step in between would shorten the next one)
  self._last_progress = core.now()
  local ok, e = pcall(cb, p)
  if not ok then return self:_raised(e, "on_progress") end
  return nil
end

-- Every request done: the batch ends (once), on_progress and on_done run.
function Batch:_complete()
  if self.ended then return nil end
  local e = self:_report(now(), true)
  local e2 = self:finish(self.resps, self.errs)
  return e or e2
end

-- Launches one call. A call that cannot start (a closed client, or a
-- failure inside the library) ends with its error: the batch goes on.
function Batch:_launch(call)
  local ok, t, err = pcall(call.launch, call)
  if ok and t then
    local active = self._active
    active[#active + 1] = call
    return nil
  end
  if not ok then
    err = errors.new({ kind = "canceled", attempts = call.attempt, message = "the request could not be started: "
      .. tostring(t) }, self.rt:secret())
  end
  return self:_finish(call.i, nil, err)
end

--- Advances the batch as far as it can go without waiting (task
-- interface: poll calls it; the blocking `batch` calls it in a loop).
-- Returns a boxed error when a callback raised.
local step

function Batch:step()
  if self.ended then return nil end
  self._in_step = true
  local ok, e = pcall(step, self) -- a raise must not leave cancel deferred forever
  self._in_step = false
  if not ok then error(e, 0) end
  local why = self._stop -- a cancel while the step ran
  if why and not self.ended then
    self._stop = nil
    local e2 = self:abort(why)
    e = e or e2
  end
  return e
end

step = function(self)
  if self.rt:closed() then return self:abort("the client was closed") end
  local active = self._active
  -- the attempts that ended (swap-remove: order in `active` is no matter)
  local i, n = 1, #active
  while i <= n do
    local call = active[i]
    if call:settled() then
      active[i] = active[n]
      active[n] = nil
      n = n - 1
      local e = self:_judge(call)
      if e or stopping(self) then return e end -- on_result may cancel the batch
    else
      i = i + 1
    end
  end
  if self._over then -- max_total_tokens reached: what is left ends as "budget"
    self._stop_kind = "budget"
    return self:abort("max_total_tokens (" .. self._budget .. ") reached: " .. self._tokens .. " tokens used")
  end
  local t = now()
  -- retries whose time has come queue up for a slot
  local waiting = self._waiting
  local j = 1
  while j <= #waiting do
    local call = waiting[j]
    if call:due() <= t then
      local ready = self._ready
      ready[#ready + 1] = call
      waiting[j] = waiting[#waiting]
      waiting[#waiting] = nil
    else
      j = j + 1
    end
  end
  -- launch into the window, unless a Retry-After holds us back
  if self.rt:closed() then return self:abort("the client was closed") end
  if t >= self._pause_until then
    while #active < self._window do
      local call, e = self:_take()
      if e or stopping(self) then
        if call then self._ready[#self._ready + 1] = call end -- abort ends it
        return e
      end
      if not call then break end
      e = self:_launch(call)
      if e or stopping(self) then return e end
    end
  end
  if self._done == self._n then return self:_complete() end
  return self:_report(t, false)
end

--- The next time the batch has something to do without the network (a
-- retry, the end of a pause, a progress call), or nil (task interface).
function Batch:next_due()
  if self.ended then return nil end
  local due = nil
  for _, call in ipairs(self._waiting) do
    local at = call:due()
    if due == nil or at < due then due = at end
  end
  local has_work = self._ready[1] ~= nil or self._next <= self._n
  if has_work and #self._active < self._window and self._pause_until > now() then
    due = due and min(due, self._pause_until) or self._pause_until
  end
  if self._on_progress then
    local p = self._last_progress + M.PROGRESS_INTERVAL
    due = due and min(due, p) or p
  end
  return due
end

--- Whether a request of the batch is on the engine (task interface).
function Batch:on_network()
  return #self._active > 0
end

-- Seconds until the batch's `next_due` (at most `cap`).
local function wait_for(b, cap)
  local due = b:next_due()
  if due == nil then return cap end
  return max(0, min(cap, due - now()))
end

--- Ends every unfinished request as canceled (its transfer closed at
-- once), then the batch (task interface). Returns a boxed error when a
-- callback raised (after one raised, the callbacks are dropped and the
-- rest ends quietly).
function Batch:abort(message)
  if self.ended or self._aborting then return nil end
  self._aborting = true
  local calls = {}
  for _, list in ipairs({ self._active, self._waiting, self._ready }) do
    for _, call in ipairs(list) do calls[#calls + 1] = call end
  end
  self._active, self._waiting, self._ready = {}, {}, {}
  local first = nil
  for _, call in ipairs(calls) do
    local err = call:cancel(message)
    err.kind = self._stop_kind or err.kind
    local e = self:_finish(call.i, nil, err)
    if first == nil then first = e end
  end
  while self._next <= self._n do
    local i = self._next
    self._next = i + 1
    local e = self:_finish(i, nil, errors.new({ kind = self._stop_kind or "canceled", message = message,
                                                attempts = 0 }))
    if first == nil then first = e end
  end
  local e = self:_complete()
  return first or e
end

--- Cancels every request not yet ended: transfers are closed at once, and
-- each such request ends with `err.kind == "canceled"` (on_result runs for
-- it). Idempotent. A callback that raises raises out of cancel.
function Batch:cancel()
  if self._in_step then -- taken when the step reaches a safe point
    if not self.ended and self._stop == nil then self._stop = "the batch was canceled" end
    return
  end
  local e = self:abort("the batch was canceled")
  if e ~= nil then error(e.err, 0) end
end

function Batch:__tostring()
  if self.ended then return "baseten.batch (done, " .. self._n .. " requests)" end
  return ("baseten.batch (%d/%d done, %d in flight)"):format(self._done, self._n, #self._active)
end

--- Sends many non-streamed chat requests at once and waits for all of them
-- (`client:batch`).
-- `opts`: `concurrency` (32: requests in flight at most), `on_result(i,
-- resp, err, request_id)` once per request as each ends, `on_progress(p)`
-- at most every 0.1 s and once at the end (see `Batch:progress`),
-- `on_done(resps, errs)`, `keep` (default true; false: responses and
-- errors go to on_result only, and resps and errs stay empty), and the
-- call options `timeout`, `max_retries`, `headers` for every request.
-- A request that fails never stops the batch. A callback that raises
-- cancels what is left and raises out of `batch`. On a closed client every
-- request ends as canceled.
-- @tparam Client client
-- @tparam table requests an array of chat requests (as for `chat`)
-- @tparam[opt] table opts
-- @treturn table resps: `resps[i]` the response of request i, or nil
-- @treturn table errs: `errs[i]` its error, or nil
function M.batch(client, requests, opts)
  local b = new_batch(client, requests, opts, "batch", 2, false)
  local rt = b.rt
  while true do
    local e = b:step()
    if e ~= nil then error(e.err, 0) end
    if b:done() then break end
    local wait = wait_for(b, 1)
    if b:on_network() then
      rt:perform(wait)
    elseif wait > 0 then
      core.sleep(wait)
    end
  end
  return b.resps, b.errs
end

--- The same as `batch`, without waiting (`client:start_batch`): returns a
-- Batch handle that `client:poll` drives (callbacks run inside poll; one
-- that raises raises out of poll and cancels what is left of the batch).
-- `handle:done()`, `handle:progress()`, `handle:cancel()`,
-- `handle:result()`. On a closed client every request ends as canceled
-- at the next poll.
-- @tparam Client client
-- @tparam table requests
-- @tparam[opt] table opts as for `batch`
-- @treturn Batch
function M.start_batch(client, requests, opts)
  local b = new_batch(client, requests, opts, "start_batch", 2, true)
  return b
end

return M
