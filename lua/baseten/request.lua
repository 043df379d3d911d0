--- The one request path (internal), and the Call: one HTTP request of a
-- client, with its retries. Every public call goes through it: `chat`,
-- `stream`, `models` (client.lua), `json` (structured.lua), `run_tools`
-- (agent.lua), `start` (async.lua) and `batch` (batch.lua).
--
--     local call = request.new(client, "POST", "/chat/completions", body, stream, copts)
--     -- blocking:      call:run()  -> resp | stream | nil, err
--     -- non-blocking:  call:launch(); ... until call:settled() ...
--     --                call:judge() -> "ok", t | "retry", delay | "fail", err
--     --                  ("retry": call:due() is when to launch again)
--     --                call:result(t) -> resp | stream | nil, err
--     --                call:cancel(message) -> the canceled error (transfer closed)
--
-- A Call's fields, read by its users: `client`, `method`, `path`, `body`
-- (JSON text), `stream`, `opts` (`timeout`, `max_retries`, `headers`
-- lines), `attempt` (the attempts launched so far), `t0` (when the first
-- started), and what its user sets: `on_attempt` (below), `wire` (the
-- engine options, see `M.wire`: a caller that sends many calls of one kind
-- builds them once), `i` (its index in a batch).
--
-- One retry policy: `judge` decides, for blocking and non-blocking calls
-- alike, whether an attempt succeeded, is retried (and after what delay), or
-- failed for good; it logs the attempt's `response`, `retry` or `error`
-- event and sets `err.attempts` and `err.elapsed`. The blocking `send` waits
-- out the delay; a non-blocking user launches again once `due()` has come.
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
--
-- A closed client: `send` and `run` return a `canceled` error, and so does
-- `launch` (nothing is sent).
-- @module baseten.request
local core = require("baseten.core")
local errors = require("baseten.errors")
local accumulate = require("baseten.accumulate")
local runtime = require("baseten.runtime")
local chatbody = require("baseten.chatbody")

local json = core.json
local M = {}

local USER_AGENT = "baseten-lua/" .. core.VERSION

local Call = {}
Call.__index = Call
M.Call = Call

--- The one log emitter: `event` goes to the client's `log` (a raising
-- logger never breaks a request).
function M.emit(client, event)
  runtime.of(client):emit(event)
end

--- A new call (nothing is sent yet).
-- @tparam Client client
-- @tparam string method
-- @tparam string path under the base URL
-- @tparam[opt] string body JSON text
-- @tparam boolean stream
-- @tparam table opts from `baseten.options.call`
-- @treturn Call
function M.new(client, method, path, body, stream, opts)
  -- the fields every call gets later are named here as nil, so the table
  -- is made with room for them (Lua 5.4 sizes it by the fields named) and
  -- never grows: on a batch's path, one rehash less per request
  return setmetatable({ client = client, rt = runtime.of(client), method = method, path = path, body = body,
                        stream = stream and true or false, opts = opts, attempt = 0,
                        t = nil, t0 = nil, t_attempt = nil, retry_at = nil, wire = nil, on_attempt = nil,
                        i = nil }, Call)
end

-- The name of a header line, lowercased.
local function name_of(line)
  return line:match("^[^:]*"):lower()
end

-- The request's headers: the library's, then the client's, then the
-- call's; a later one replaces an earlier one of the same name (names
-- match case-insensitively), so a user `Authorization` or `Content-Type`
-- is sent once, the user's.
local function headers_for(call)
  local rt = call.rt
  local h = { "Accept: " .. (call.stream and "text/event-stream" or "application/json"),
              "Content-Type: application/json" }
  local key = rt:secret()
  if key then h[#h + 1] = "Authorization: Bearer " .. key end
  local extra, own = rt:headers(), call.opts.headers
  if #extra == 0 and #own == 0 then return h end
  local at = {}
  for i, line in ipairs(h) do at[name_of(line)] = i end
  for _, list in ipairs({ extra, own }) do
    for _, line in ipairs(list) do
      local name = name_of(line)
      local i = at[name] or #h + 1
      h[i], at[name] = line, i
    end
  end
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

--- Starts the call's next attempt on the client's engine. Returns the
-- transfer (also kept as `call.t`), or nil, err: the `canceled` error on a
-- closed client (nothing is sent).
function Call:launch()
  local rt = self.rt
  if rt:closed() then return nil, self:canceled() end
  self.attempt = self.attempt + 1
  self.retry_at = nil
  local now = core.now()
  self.t0 = self.t0 or now
  self.t_attempt = now
  local wire = self.wire or M.wire(self)
  if rt:logging() then -- no event table (nor header lookups) on the hot path without a logger
    rt:emit({ event = "request", method = self.method, url = wire.url, stream = self.stream,
              bytes = self.body and #self.body or 0, attempt = self.attempt,
              authorization = rt:secret() and "Bearer [REDACTED]" or "none" })
  end
  wire.body = self.body -- the transfer keeps its own reference to the body
  local ok, t = pcall(rt.request, rt, wire)
  wire.body = nil
  if not ok then error(t, 0) end
  self.t = t
  return t
end

--- Whether the current attempt can be judged: its transfer has ended, or
-- for a stream its 2xx headers are in.
function Call:settled()
  local t = self.t
  if t == nil or t:state() ~= "running" then return true end -- nil: canceled meanwhile
  if not self.stream then return false end
  local status, known = t:status()
  return known and status >= 200 and status < 300
end

--- Whether an attempt of the call is on the engine.
function Call:on_network()
  return self.t ~= nil
end

--- When (core.now() seconds) a retry judged by `judge` is due, or nil.
function Call:due()
  return self.retry_at
end

local NET_KINDS = { dns = "connection", too_large = "invalid_response", nomem = "invalid_response" }

--- The error of a transfer that curl ended badly.
function M.net_error(client, kind, message)
  return M.net_error_of(runtime.of(client):secret(), kind, message)
end

--- The same, given the key to scrub.
function M.net_error_of(secret, kind, message)
  kind = NET_KINDS[kind] or kind
  local retryable = kind == "connection" or kind == "timeout"
  return errors.new({ kind = kind, message = message, retryable = retryable }, secret)
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
  local err = errors.from_response(status, t:body(), info, runtime.of(client):secret())
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
-- it, and decides. Returns `"ok", transfer`, `"retry", delay` (seconds;
-- `due()` is then when to launch again) or `"fail", err`; an error carries
-- `attempts` and `elapsed` (seconds since the first attempt started).
function Call:judge()
  local rt = self.rt
  -- canceled since it settled (a finalizer, or a hook, can cancel it
  -- anywhere): nothing to judge
  local attempt = self.t
  if attempt == nil then return "fail", self:canceled("the request was canceled") end
  local t, err = outcome_of(self.client, attempt, self.stream)
  self.t = nil
  if t then
    if rt:logging() then
      rt:emit({ event = "response", status = (t:status()), attempt = self.attempt,
                request_id = t:header("x-request-id") or "-", elapsed = ms(core.now() - self.t_attempt),
                http_version = t:info().http_version })
    end
    observe(self, "ok", t)
    return "ok", t
  end
  local now = core.now()
  local took = ms(now - self.t_attempt)
  err.attempts = (self.spent or 0) + self.attempt
  err.elapsed = now - self.t0
  if self.via then err.via, err.fallbacks = self.via, self.tried end
  if err.retryable and self.attempt <= self.opts.max_retries then
    local delay = M.backoff(self.attempt - 1, err.retry_after)
    rt:emit({ event = "retry", kind = err.kind, status = err.status or "-", delay = delay,
              attempt = self.attempt, elapsed = took })
    self.retry_at = now + delay
    observe(self, "retry", err)
    return "retry", delay
  end
  if M.falls_back(err) and self:next_fallback() then return self:fall_back(err, took) end
  self:release()
  rt:emit({ event = "error", kind = err.kind, status = err.status or "-", attempt = self.attempt,
            request_id = err.request_id or "-", elapsed = took })
  observe(self, "fail", err)
  return "fail", err
end

-- The errors a call falls back on once its client's retries are spent:
-- no connection, a timeout before any byte, 429 and 5xx. Never another
-- 4xx, and never a stream that delivered data (it is not judged again).
local FALLBACK_KINDS = { connection = true, timeout = true, rate_limit = true, server = true }

--- Whether `err` (a call's final error) sends the call to a fallback client.
function M.falls_back(err)
  return FALLBACK_KINDS[err.kind] == true and (err.status ~= nil or err.retryable == true)
end

--- The fallback client the call would go to next, or nil.
function Call:next_fallback()
  local list = self.opts.fallback
  -- chat completions only: another client's model answers a chat, not an
  -- embedding request nor a models list
  if not list or self.path ~= "/chat/completions" or self.rt:closed() then return nil end
  local home = self.home_rt or self.rt
  if home:closed() then return nil end
  local c = list[(self.via or 0) + 1]
  if c ~= nil and runtime.of(c):closed() then return nil end
  return c
end

-- The body with `model` replaced (a fallback client's own model).
local function with_model(body, model)
  local ok, doc = pcall(json.decode, body)
  if not ok or type(doc) ~= "table" or doc.model == model then return body end
  doc.model = model
  local eok, text = pcall(json.encode, doc)
  return eok and text or body
end

--- A call that fell back has ended: its first client's poll stops
-- running the fallback's engine for it. Idempotent.
function Call:release()
  local home = self.home_rt
  if home and not self.released and self.rt ~= home then
    self.released = true
    home:unborrow(self.rt)
  end
end

--- Moves the call to its next fallback client after `err` (the current
-- client's last error): the fallback's base URL, key, model, timeout and
-- retries from now on (the call's own header lines stay). Logs a
-- `fallback` event on the first client's log, and returns `"retry", 0`:
-- the next attempt goes at once, on the fallback.
function Call:fall_back(err, took)
  local to = self:next_fallback()
  local home = self.home_rt or self.rt
  self.home_rt = home
  self.tried = self.tried or {}
  self.tried[#self.tried + 1] = err
  self.via = (self.via or 0) + 1
  home:emit({ event = "fallback", kind = err.kind, status = err.status or "-", attempt = self.attempt,
              from = self.client.base_url, to = to.base_url, via = self.via, elapsed = took })
  self.spent = (self.spent or 0) + self.attempt
  self.attempt = 0
  if self.rt ~= home then home:unborrow(self.rt) end
  self.client, self.rt = to, runtime.of(to)
  home:borrow(self.rt)
  self.opts = { timeout = to.timeout, max_retries = to.max_retries, headers = self.opts.headers,
                fallback = self.opts.fallback }
  self.wire = nil
  if to.model ~= nil and self.body and self.method == "POST" then self.body = with_model(self.body, to.model) end
  self.model = nil
  self.retry_at = core.now()
  observe(self, "retry", err)
  return "retry", 0
end

--- The `canceled` error of this call (default message: the client was closed).
function Call:canceled(message)
  local err = errors.new({ kind = "canceled", message = message or "the client was closed",
                           attempts = (self.spent or 0) + self.attempt })
  if self.t0 then err.elapsed = core.now() - self.t0 end
  return err
end

--- Ends the call's attempt in flight, if any (its transfer closed at
-- once), and returns the `canceled` error with `message`.
function Call:cancel(message)
  local t = self.t
  self.t, self.retry_at = nil, nil
  if t then t:close() end
  self:release()
  return self:canceled(message)
end

--- Plug-in point for usage totals: every response that ends passes here
-- once, with its `usage` table or nil (a models list, a stream cut off
-- before its usage chunk). `client:usage()` adds it up there (see
-- `baseten.runtime`), and nowhere else: a stream's usage is the last one
-- it received (servers send it cumulative), so a stream closed early
-- counts what arrived before.
function Call:finished(usage, model)
  self:release()
  local rt = self.rt
  if rt:priced() and usage then model = self:model_name() or model end
  rt:count(usage, model)
end

--- The model the call's body names (decoded once; for prices only).
function Call:model_name()
  if self.model == nil then
    local ok, doc = pcall(json.decode, self.body or "null")
    self.model = ok and type(doc) == "table" and type(doc.model) == "string" and doc.model or false
  end
  return self.model or nil
end

--- How responses are decoded: what the client returns holds no null
-- member (`"content": null` is an absent key, so `if msg.content then`
-- works); a null inside an array stays `json.null`. A lone surrogate escape
-- is an error in a whole body (streams tolerate it: see baseten.stream).
M.DECODE_OPTS = { drop_nulls = true }
local DECODE_OPTS = M.DECODE_OPTS

--- Decodes a whole JSON response body (closes the transfer).
function Call:decode(t)
  local text = t:body()
  local doc, why = json.decode(text, DECODE_OPTS)
  -- the request id only for an error (one header lookup less per response)
  local bad = type(doc) ~= "table" or (doc.error ~= nil and doc.choices == nil and doc.data == nil)
  local request_id = bad and t:header("x-request-id") or nil
  t:close()
  if bad then
    local secret = self.rt:secret()
    if type(doc) ~= "table" then
      return nil, errors.new({ kind = "invalid_response", request_id = request_id, body = text,
        message = "response is not a JSON object: " .. (why or text:sub(1, 120)) }, secret)
    end
    local err = errors.from_response(200, text, { request_id = request_id }, secret)
    err.kind, err.status = "invalid_response", 200
    return nil, err
  end
  accumulate.normalize(doc) -- `reasoning` also as `reasoning_content`
  self:finished(type(doc.usage) == "table" and doc.usage or nil, doc.model)
  return doc
end

--- What a successful attempt gives: the decoded response, or for a
-- streaming call a Stream (which reports to `finished` when it ends).
function Call:result(t)
  if not self.stream then
    local doc, err = self:decode(t)
    if doc and self.via then doc[M.ANSWERED_KEY] = self:answered_by() end
    return doc, err
  end
  local stream_mod = require("baseten.stream") -- here: stream.lua requires this module
  local s = stream_mod.new(self.client, t, function(usage) self:finished(usage) end)
  if self.via then s.via = self:answered_by() end
  return s
end

--- The key of a response from a fallback client that says who answered
-- (`resp._baseten.via`): a documented key of the response table, not a
-- private field of an object.
M.ANSWERED_KEY = "_baseten"

--- Which client answered a call that fell back: `{via = n (the n-th
-- fallback), client = it, base_url, model, errors = the earlier clients'
-- errors}`; a response of a fallback carries it as `resp._baseten`.
function Call:answered_by()
  local c = self.client
  return { via = self.via, client = c, base_url = c.base_url, model = c.model, errors = self.tried }
end

--- The error of a call to Baseten's own servers (inference.baseten.co,
-- *.api.baseten.co) with no key: nothing is sent, since the answer could
-- only be a 401. A client made with `api_key = false` sends no key anywhere.
-- @treturn table|nil the `authentication` error, or nil when the call may go
function Call:missing_key()
  local rt = self.rt
  if rt:secret() or rt:sends_no_key() then return nil end
  local host = (self.client.base_url:match("^%a+://([^/:?#]+)") or ""):lower()
  if host ~= "inference.baseten.co" and not host:find("%.api%.baseten%.co$") then return nil end
  return errors.new({ kind = "authentication", attempts = 0, elapsed = 0,
    message = "no API key: set the BASETEN_API_KEY environment variable or pass api_key to baseten.new"
      .. " (the request was not sent)" })
end

--- Blocking: attempts until one succeeds or the policy gives up, waiting
-- out each retry's delay. Returns the transfer or nil, err (`canceled` on
-- a closed client).
function Call:send()
  local no_key = self:missing_key()
  if no_key then return nil, no_key end
  while true do
    local _, cerr = self:launch()
    if cerr then return nil, cerr end
    while not self:settled() do
      local rt = self.rt -- (a fallback moves the call to another client)
      if rt:closed() then return nil, self:cancel() end
      rt:perform(1)
    end
    local what, v = self:judge()
    if what == "ok" then return v end
    if what == "fail" then return nil, v end
    core.sleep(v)
  end
end

--- Blocking: the whole call, `resp` (or a Stream) or nil, err.
function Call:run()
  local t, err = self:send()
  if not t then return nil, err end
  return self:result(t)
end

-- The functions as the module's too: request.run(call), ...
for _, name in ipairs({ "launch", "settled", "judge", "canceled", "result", "decode", "missing_key",
                        "send", "run" }) do
  M[name] = Call[name]
end

-- Building chat bodies lives in baseten.chatbody; its functions stay
-- reachable here, where every caller finds them.
M.map_messages = chatbody.map_messages
M.messages_problem = chatbody.messages_problem
M.chat_body = chatbody.chat_body

return M
