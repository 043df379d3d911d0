--- The one request path (internal). Every public call goes through it:
-- `chat`, `stream`, `models` (client.lua), `json` (structured.lua),
-- `run_tools` (agent.lua), `start`/`poll`/`await` (async.lua), and `batch`.
--
--     local call = request.new(client, "POST", "/chat/completions", body, stream, copts)
--     -- blocking:      request.run(call)  -> resp | stream | nil, err
--     -- non-blocking:  request.launch(call); ... request.settled(call) ...
--     --                request.judge(call) -> "ok", t | "retry", delay | "fail", err
--     --                request.result(call, t) -> resp | stream | nil, err
--
-- A call is a plain table: `client`, `method`, `path`, `body` (JSON text),
-- `stream`, `opts` (`timeout`, `max_retries`, `headers`), `attempt` (the
-- number of attempts launched), `t0` (when the first one started), and
-- optionally `on_attempt` (below) and `wire` (the engine options, see
-- `M.wire`: a caller that sends many calls of one kind builds them once).
--
-- One retry policy: `judge` decides, for blocking and non-blocking calls
-- alike, whether an attempt succeeded, is retried (and after what delay), or
-- failed for good; it logs the attempt's `response`, `retry` or `error`
-- event and sets `err.attempts` and `err.elapsed`. The blocking `send` waits
-- out the delay; the non-blocking layer schedules the next launch.
--
-- The two plug-in points:
--   * usage totals (`client:usage()`) plug into `finished` only: every
--     response that ends passes there exactly once with its usage (blocking
--     and non-blocking bodies, streams at their end, on a failure and when
--     closed or canceled; a retried attempt never produced a response).
--   * `client:batch` plugs into `judge` only, through `call.on_attempt(outcome,
--     err_or_transfer)`: it sees every attempt's outcome ("ok", "retry" with
--     the error, e.g. a 429 about to be retried, or "fail"), so its window can
--     halve on a 429 before the retry is even scheduled.
-- @module baseten.request
local core = require("baseten.core")
local errors = require("baseten.errors")
local accumulate = require("baseten.accumulate")

local json = core.json
local M = {}

local USER_AGENT = "baseten-lua/" .. core.VERSION

--- The one log emitter: `event` goes to the client's `log` (a raising
-- logger never breaks a request).
function M.emit(client, event)
  if client.log then pcall(client.log, event) end
end
local emit = M.emit

--- A new call (nothing is sent yet).
-- @tparam Client client
-- @tparam string method
-- @tparam string path under the base URL
-- @tparam[opt] string body JSON text
-- @tparam boolean stream
-- @tparam table opts from `call_options`
function M.new(client, method, path, body, stream, opts)
  return { client = client, method = method, path = path, body = body,
           stream = stream and true or false, opts = opts, attempt = 0 }
end

local function headers_for(call)
  local client = call.client
  local h = { "Accept: " .. (call.stream and "text/event-stream" or "application/json"),
              "Content-Type: application/json" }
  local key = client:_secret()
  if key then h[#h + 1] = "Authorization: Bearer " .. key end
  for _, line in ipairs(client._extra) do h[#h + 1] = line end
  for _, line in ipairs(call.opts.headers) do h[#h + 1] = line end
  return h
end

--- What the engine is given for an attempt, all but the body: the URL,
-- method, headers, time limits, TLS and proxy options. The same for every
-- attempt of a call, and for every call of one kind of one client, so a
-- caller that sends many (`client:batch`) builds it once and sets it as
-- `call.wire`.
function M.wire(call)
  local client = call.client
  return {
    url = client.base_url .. call.path, method = call.method, stream = call.stream,
    headers = headers_for(call), timeout = call.opts.timeout, connect_timeout = client.connect_timeout,
    idle_timeout = client.idle_timeout, ca_file = client.ca_file, ca_path = client.ca_path,
    proxy = client.proxy, insecure = client.insecure, ssl_no_revoke = client.ssl_no_revoke, user_agent = USER_AGENT,
  }
end

--- Starts the call's next attempt on the client's engine (a closed client
-- raises here). Returns the transfer, also kept as `call.t`.
function M.launch(call)
  local client = call.client
  call.attempt = call.attempt + 1
  local now = core.now()
  call.t0 = call.t0 or now
  call.t_attempt = now
  local wire = call.wire or M.wire(call)
  if client.log then -- no event table (nor header lookups) on the hot path without a logger
    emit(client, { event = "request", method = call.method, url = wire.url, stream = call.stream,
                   bytes = call.body and #call.body or 0, attempt = call.attempt,
                   authorization = client:_secret() and "Bearer [REDACTED]" or "none" })
  end
  wire.body = call.body -- the transfer keeps its own reference to the body
  local t = client._engine:request(wire)
  wire.body = nil
  call.t = t
  return t
end

--- Whether the current attempt can be judged: its transfer has ended, or
-- for a stream its 2xx headers are in.
function M.settled(call)
  local t = call.t
  if t:state() ~= "running" then return true end
  if not call.stream then return false end
  local status, known = t:status()
  return known and status >= 200 and status < 300
end

local NET_KINDS = { dns = "connection", too_large = "invalid_response", nomem = "invalid_response" }

--- The error of a transfer that curl ended badly.
function M.net_error(client, kind, message)
  kind = NET_KINDS[kind] or kind
  local retryable = kind == "connection" or kind == "timeout"
  return errors.new({ kind = kind, message = message, retryable = retryable }, client:_secret())
end

-- The transfer when the attempt succeeded, else nil, err (transfer closed).
-- A stream with a 2xx status is handed on whatever happened after: its
-- reader reports a drop once the data before it is read.
local function outcome_of(client, t, stream)
  local status, known = t:status()
  local is_2xx = known and status >= 200 and status < 300
  if stream and is_2xx then return t end
  local ok, kind, message = t:result()
  if ok == false then
    t:close()
    return nil, M.net_error(client, kind, message)
  end
  if is_2xx then return t end
  local info = {
    request_id = t:header("x-request-id"),
    retry_after = errors.retry_after(t:header("retry-after-ms"), t:header("retry-after")),
  }
  local err = errors.from_response(status, t:body(), info, client:_secret())
  t:close()
  return nil, err
end

--- The wait before retry n (0-based): the server's Retry-After when it
-- gave one of at most 60 s, else 0.5 s doubling to 8 s, less up to 25 %
-- jitter so that many clients do not retry in step.
function M.backoff(n, retry_after)
  if retry_after and retry_after >= 0 and retry_after <= 60 then return retry_after end
  local base = math.min(0.5 * 2 ^ n, 8)
  local frac = (core.now() * 7919) % 1
  return base * (1 - 0.25 * frac)
end

-- Seconds, to the millisecond, for log events.
local function ms(s)
  return math.floor(s * 1000 + 0.5) / 1000
end

-- Plug-in point for client:batch: every attempt's outcome passes here.
local function observe(call, outcome, v)
  if call.on_attempt then call.on_attempt(outcome, v) end
end

--- The one retry policy: judges the settled attempt (see `settled`), logs
-- it, and decides. Returns `"ok", transfer`, `"retry", delay` (seconds) or
-- `"fail", err`; an error carries `attempts` and `elapsed` (seconds since
-- the first attempt started).
function M.judge(call)
  local client = call.client
  local t, err = outcome_of(client, call.t, call.stream)
  call.t = nil
  local now = core.now()
  local took = ms(now - call.t_attempt)
  if t then
    if client.log then
      emit(client, { event = "response", status = (t:status()), attempt = call.attempt,
                     request_id = t:header("x-request-id") or "-", elapsed = took,
                     http_version = t:info().http_version })
    end
    observe(call, "ok", t)
    return "ok", t
  end
  err.attempts = call.attempt
  err.elapsed = now - call.t0
  if err.retryable and call.attempt <= call.opts.max_retries then
    local delay = M.backoff(call.attempt - 1, err.retry_after)
    emit(client, { event = "retry", kind = err.kind, status = err.status or "-", delay = delay,
                   attempt = call.attempt, elapsed = took })
    observe(call, "retry", err)
    return "retry", delay
  end
  emit(client, { event = "error", kind = err.kind, status = err.status or "-", attempt = call.attempt,
                 request_id = err.request_id or "-", elapsed = took })
  observe(call, "fail", err)
  return "fail", err
end

--- The error a call ends with when its client was closed under it.
function M.canceled(call, message)
  local err = errors.new({ kind = "canceled", message = message or "the client was closed",
                           attempts = call.attempt })
  if call.t0 then err.elapsed = core.now() - call.t0 end
  return err
end

-- A token count of a usage table, or 0 (absent, null, not a number).
local function count(t, k)
  local v = type(t) == "table" and t[k]
  return type(v) == "number" and v or 0
end

--- Plug-in point for usage totals: every response that ends passes here
-- once, with its `usage` table or nil (a models list, a stream cut off
-- before its usage chunk). `client:usage()` adds it up here, and nowhere
-- else: a stream's usage is the last one it received (servers send it
-- cumulative), so a stream closed early counts what arrived before.
function M.finished(call, usage)
  local client = call.client
  local u = client._usage
  if u then
    u.requests = u.requests + 1
    if type(usage) == "table" then
      u.prompt_tokens = u.prompt_tokens + count(usage, "prompt_tokens")
      u.completion_tokens = u.completion_tokens + count(usage, "completion_tokens")
      u.reasoning_tokens = u.reasoning_tokens + count(usage.completion_tokens_details, "reasoning_tokens")
      u.cached_tokens = u.cached_tokens + count(usage.prompt_tokens_details, "cached_tokens")
    end
  end
  local hook = client._on_finished
  if hook then hook(usage, call) end
end

--- How responses are decoded: what the client returns holds no null
-- member (`"content": null` is an absent key, so `if msg.content then`
-- works); a null inside an array stays `json.null`. A lone surrogate escape
-- is an error in a whole body (streams tolerate it: see baseten.stream).
M.DECODE_OPTS = { drop_nulls = true }
local DECODE_OPTS = M.DECODE_OPTS

--- Decodes a whole JSON response body (closes the transfer).
function M.decode(call, t)
  local client = call.client
  local text = t:body()
  local request_id = t:header("x-request-id")
  t:close()
  local doc, why = json.decode(text, DECODE_OPTS)
  if type(doc) ~= "table" then
    return nil, errors.new({ kind = "invalid_response", request_id = request_id, body = text,
      message = "response is not a JSON object: " .. (why or text:sub(1, 120)) }, client:_secret())
  end
  if doc.error ~= nil and doc.choices == nil and doc.data == nil then
    local err = errors.from_response(200, text, { request_id = request_id }, client:_secret())
    err.kind, err.status = "invalid_response", 200
    return nil, err
  end
  accumulate.normalize(doc) -- `reasoning` also as `reasoning_content`
  M.finished(call, type(doc.usage) == "table" and doc.usage or nil)
  return doc
end

--- What a successful attempt gives: the decoded response, or for a
-- streaming call a Stream (which reports to `finished` when it ends).
function M.result(call, t)
  if not call.stream then return M.decode(call, t) end
  local stream_mod = require("baseten.stream") -- here: stream.lua requires this module
  return stream_mod.new(call.client, t, function(usage) M.finished(call, usage) end)
end

--- The error of a call to Baseten's own servers (inference.baseten.co,
-- *.api.baseten.co) with no key: nothing is sent, since the answer could
-- only be a 401. A client made with `api_key = false` sends no key anywhere.
-- @treturn table|nil the `authentication` error, or nil when the call may go
function M.missing_key(call)
  local client = call.client
  if client:_secret() or client._keyless then return nil end
  local host = (client.base_url:match("^%a+://([^/:?#]+)") or ""):lower()
  if host ~= "inference.baseten.co" and not host:find("%.api%.baseten%.co$") then return nil end
  return errors.new({ kind = "authentication", attempts = 0, elapsed = 0,
    message = "no API key: set the BASETEN_API_KEY environment variable or pass api_key to baseten.new"
      .. " (the request was not sent)" })
end

--- Blocking: attempts until one succeeds or the policy gives up, waiting
-- out each retry's delay. Returns the transfer or nil, err.
function M.send(call)
  local engine = call.client._engine
  local no_key = M.missing_key(call)
  if no_key then return nil, no_key end
  while true do
    M.launch(call)
    while not M.settled(call) do engine:perform(1) end
    local what, v = M.judge(call)
    if what == "ok" then return v end
    if what == "fail" then return nil, v end
    core.sleep(v)
  end
end

--- Blocking: the whole call, `resp` (or a Stream) or nil, err.
function M.run(call)
  local t, err = M.send(call)
  if not t then return nil, err end
  return M.result(call, t)
end

return M
