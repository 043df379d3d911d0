--- The client: `baseten.new{...}` and its blocking calls.
-- Every request runs as a transfer on the client's one libcurl multi
-- engine, so blocking, streaming and non-blocking requests share its
-- connections.
-- @module baseten.client
local core = require("baseten.core")
local errors = require("baseten.errors")
local toolmod = require("baseten.tool")

local json = core.json
local M = {}

--- Default base URL of Baseten's Model APIs.
M.DEFAULT_BASE_URL = "https://inference.baseten.co/v1"

---@class baseten.Client
local Client = {}
Client.__index = Client
M.Client = Client

-- The key lives here, not on the client table, so that no dump of the
-- client (inspect, vim.print, a debugger) can show it.
local secrets = setmetatable({}, { __mode = "k" })

local USER_AGENT = "baseten-lua/" .. core.VERSION

local function check_number(opts, name, default)
  local v = opts[name]
  if v == nil then return default end
  if type(v) ~= "number" or v < 0 then
    error("baseten.new: " .. name .. " must be a non-negative number", 3)
  end
  return v
end

local function stderr_logger(event)
  local parts = {}
  for k, v in pairs(event) do
    if k ~= "event" then parts[#parts + 1] = k .. "=" .. tostring(v) end
  end
  table.sort(parts)
  io.stderr:write("baseten: ", event.event, " ", table.concat(parts, " "), "\n")
end

local function header_list(headers, where)
  local list = {}
  if headers == nil then return list end
  if type(headers) ~= "table" then error(where .. ": headers must be a table", 4) end
  for k, v in pairs(headers) do
    if type(k) ~= "string" or (type(v) ~= "string" and type(v) ~= "number") then
      error(where .. ": headers must map names to strings", 4)
    end
    list[#list + 1] = k .. ": " .. v
  end
  table.sort(list)
  return list
end

--- Makes a client.
-- @tparam[opt] table opts
--   `api_key` (default `BASETEN_API_KEY`; `false` sends no key),
--   `base_url` (default `BASETEN_BASE_URL` or Baseten's),
--   `model` (default model slug), `timeout` (600 s, whole request),
--   `connect_timeout` (10 s), `idle_timeout` (none: seconds with no byte
--   received before a request fails), `max_retries` (2), `headers` (extra
--   headers on every request), `ca_file`, `ca_path`, `proxy` (else libcurl's
--   proxy environment variables apply), `insecure` (turns TLS verification
--   off: for local development only), `log` (function(event) called with a
--   table per request, retry, response and final error: `event`, `attempt`,
--   `method`, `url`, `status`, `kind`, `request_id`, `elapsed` seconds,
--   `http_version`, `authorization = "Bearer [REDACTED]"`; never the key;
--   `BASETEN_LOG=debug` logs them to stderr).
-- @treturn Client
---@param opts? baseten.ClientOptions
---@return baseten.Client
function M.new(opts)
  if opts == nil then opts = {} end
  if type(opts) ~= "table" then error("baseten.new: options must be a table", 2) end
  local key = opts.api_key
  if key == nil then key = os.getenv("BASETEN_API_KEY") end
  if key == false or key == "" then key = nil end
  if key ~= nil and type(key) ~= "string" then error("baseten.new: api_key must be a string", 2) end
  local base = opts.base_url or os.getenv("BASETEN_BASE_URL") or M.DEFAULT_BASE_URL
  if type(base) ~= "string" or not base:match("^https?://") then
    error("baseten.new: base_url must be an http(s) URL", 2)
  end
  if opts.model ~= nil and type(opts.model) ~= "string" then error("baseten.new: model must be a string", 2) end
  if opts.log ~= nil and type(opts.log) ~= "function" then error("baseten.new: log must be a function", 2) end
  local self = setmetatable({
    base_url = base:gsub("/+$", ""),
    model = opts.model,
    timeout = check_number(opts, "timeout", 600),
    connect_timeout = check_number(opts, "connect_timeout", 10),
    idle_timeout = check_number(opts, "idle_timeout", nil),
    max_retries = check_number(opts, "max_retries", 2),
    ca_file = opts.ca_file, ca_path = opts.ca_path, proxy = opts.proxy,
    insecure = opts.insecure and true or nil,
    _engine = core.engine(),
    _extra = header_list(opts.headers, "baseten.new"),
  }, Client)
  secrets[self] = key
  local log = opts.log or (os.getenv("BASETEN_LOG") == "debug" and stderr_logger or nil)
  if log then
    -- every string a log event carries is scrubbed of the key: a server may
    -- echo it back (in the request id), and the URL is the user's
    self.log = function(event)
      for k, v in pairs(event) do event[k] = errors.scrub(v, secrets[self]) end
      return log(event)
    end
  end
  return self
end

function Client:__tostring()
  return "baseten.client (" .. self.base_url .. (self.model and (", " .. self.model) or "") .. ")"
end

--- The API key as it must be scrubbed from any text (internal).
function Client:_secret()
  return secrets[self]
end

local function headers_for(self, accept, extra)
  local h = { "Accept: " .. accept, "Content-Type: application/json" }
  local key = secrets[self]
  if key then h[#h + 1] = "Authorization: Bearer " .. key end
  for _, line in ipairs(self._extra) do h[#h + 1] = line end
  for _, line in ipairs(extra) do h[#h + 1] = line end
  return h
end

--- Options of one call, from the client and the call's second argument.
local function call_options(self, copts)
  if copts ~= nil and type(copts) ~= "table" then error("baseten: call options must be a table", 3) end
  copts = copts or {}
  return {
    timeout = copts.timeout or self.timeout,
    max_retries = copts.max_retries or self.max_retries,
    headers = header_list(copts.headers, "baseten"),
  }
end

--- Checks a chat request and makes the JSON body (internal).
-- `over` sets keys (e.g. `stream = true`); `strip` names client-only keys
-- that must not reach the server.
function Client:_body(req, over, strip, where)
  if type(req) ~= "table" then error("baseten: " .. where .. " expects a request table", 3) end
  if type(req.messages) ~= "table" or (req.messages[1] == nil and next(req.messages) == nil) then
    error("baseten: " .. where .. ": req.messages must be a non-empty array", 3)
  end
  local body = {}
  for k, v in pairs(req) do
    if not (strip and strip[k]) then body[k] = v end
  end
  if body.model == nil then body.model = self.model end
  if body.model == nil then
    error("baseten: " .. where .. ": req.model is required (or set model on the client)", 3)
  end
  if type(body.tools) == "table" then
    local tools = json.array()
    for i, t in ipairs(body.tools) do tools[i] = toolmod.wire_shape(t) end
    body.tools = tools
  end
  for k, v in pairs(over or {}) do body[k] = v end
  return json.encode(body)
end

local function emit(self, event)
  if self.log then pcall(self.log, event) end
end

--- Starts one HTTP transfer on the engine (internal; used by the
-- non-blocking layer too).
-- @tparam table spec `method`, `path`, `body`, `stream`, and the call options
function Client:_start_transfer(spec)
  local url = self.base_url .. spec.path
  emit(self, { event = "request", method = spec.method, url = url, stream = spec.stream or false,
               bytes = spec.body and #spec.body or 0, attempt = spec.attempt or 1,
               authorization = secrets[self] and "Bearer [REDACTED]" or "none" })
  return self._engine:request{
    url = url, method = spec.method, body = spec.body, stream = spec.stream,
    headers = headers_for(self, spec.stream and "text/event-stream" or "application/json", spec.opts.headers),
    timeout = spec.opts.timeout, connect_timeout = self.connect_timeout,
    idle_timeout = self.idle_timeout, ca_file = self.ca_file, ca_path = self.ca_path,
    proxy = self.proxy, insecure = self.insecure, user_agent = USER_AGENT,
  }
end

local NET_KINDS = { dns = "connection", too_large = "invalid_response", nomem = "invalid_response" }

--- The error of a transfer that curl ended badly (internal).
function Client:_net_error(kind, message)
  kind = NET_KINDS[kind] or kind
  local retryable = kind == "connection" or kind == "timeout"
  return errors.new({ kind = kind, message = message, retryable = retryable }, secrets[self])
end

--- The error of a finished transfer with a non-2xx status (internal).
function Client:_status_error(t, status)
  local info = {
    request_id = t:header("x-request-id"),
    retry_after = errors.retry_after(t:header("retry-after-ms"), t:header("retry-after")),
  }
  return errors.from_response(status, t:body(), info, secrets[self])
end

--- Judges a transfer that has finished, or a stream whose headers are in
-- (internal). Returns the transfer when it succeeded, else nil, err (and
-- the transfer closed). A stream with a 2xx status is handed on whatever
-- happened after: its reader reports a drop once the data before it is read.
function Client:_judge(t, stream)
  local status, known = t:status()
  local is_2xx = known and status >= 200 and status < 300
  if stream and is_2xx then return t end
  local ok, kind, message = t:result()
  if ok == false then
    t:close()
    return nil, self:_net_error(kind, message)
  end
  if is_2xx then return t end
  local err = self:_status_error(t, status)
  t:close()
  return nil, err
end

-- Drives the engine until t is finished, or for a stream until its 2xx
-- headers are in (an error status is read to its end for the message).
local function settle(self, t, stream)
  local engine = self._engine
  while t:state() == "running" do
    if stream then
      local status, known = t:status()
      if known and status >= 200 and status < 300 then break end
    end
    engine:perform(1)
  end
  return self:_judge(t, stream)
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

-- Seconds since t0, to the millisecond, for log events.
local function elapsed(t0)
  return math.floor((core.now() - t0) * 1000 + 0.5) / 1000
end

--- Sends a request with retries until it succeeds or fails for good
-- (internal). Returns the transfer (2xx) or nil, err.
function Client:_request(spec)
  local n = 0
  while true do
    spec.attempt = n + 1
    local t0 = core.now()
    local t, err = settle(self, self:_start_transfer(spec), spec.stream)
    if t then
      local status = t:status()
      emit(self, { event = "response", status = status, attempt = n + 1,
                   request_id = t:header("x-request-id") or "-", elapsed = elapsed(t0),
                   http_version = self.log and t:info().http_version or nil })
      return t
    end
    err.attempts = n + 1
    if not err.retryable or n >= spec.opts.max_retries then
      emit(self, { event = "error", kind = err.kind, status = err.status or "-", attempt = n + 1,
                   request_id = err.request_id or "-", elapsed = elapsed(t0) })
      return nil, err
    end
    local delay = M.backoff(n, err.retry_after)
    emit(self, { event = "retry", kind = err.kind, status = err.status or "-", delay = delay, attempt = n + 1,
                 elapsed = elapsed(t0) })
    core.sleep(delay)
    n = n + 1
  end
end

--- Decodes a whole JSON response body (internal).
function Client:_decode_body(t)
  local text = t:body()
  local request_id = t:header("x-request-id")
  t:close()
  local doc, why = json.decode(text)
  if type(doc) ~= "table" then
    return nil, errors.new({ kind = "invalid_response", request_id = request_id, body = text,
      message = "response is not a JSON object: " .. (why or text:sub(1, 120)) }, secrets[self])
  end
  if doc.error ~= nil and doc.error ~= json.null and doc.choices == nil and doc.data == nil then
    local err = errors.from_response(200, text, { request_id = request_id }, secrets[self])
    err.kind, err.status = "invalid_response", 200
    return nil, err
  end
  return doc
end

--- Sends a chat completion and waits for it.
-- With `req.stream = true` the response is streamed and accumulated, and
-- the result has the same shape.
-- @tparam table req the request, as OpenAI's Chat Completions JSON
-- @tparam[opt] table opts `timeout`, `max_retries`, `headers` for this call
-- @treturn table the response (`resp.choices[1].message.content`, `resp.usage`), or nil, err
function Client:chat(req, opts)
  if type(req) == "table" and req.stream then
    local s, err = self:stream(req, opts)
    if not s then return nil, err end
    return s:final()
  end
  local body = self:_body(req, nil, nil, "chat")
  local t, err = self:_request({ method = "POST", path = "/chat/completions", body = body,
                                 opts = call_options(self, opts) })
  if not t then return nil, err end
  return self:_decode_body(t)
end

--- Starts a streamed chat completion.
-- Returns once the HTTP status is known; retries happen before that.
-- Returns four values on success (`stream, nil, nil, stream`) so that a
-- generic `for` over it closes the stream on `break` (Lua 5.4).
-- @tparam table req
-- @tparam[opt] table opts
-- @treturn Stream or nil, err
function Client:stream(req, opts)
  local body = self:_body(req, { stream = true }, nil, "stream")
  local t, err = self:_request({ method = "POST", path = "/chat/completions", body = body,
                                 stream = true, opts = call_options(self, opts) })
  if not t then return nil, err end
  local s = require("baseten.stream").new(self, t)
  return s, nil, nil, s
end

--- Lists the models the server offers (`GET /models`).
-- @tparam[opt] table opts
-- @treturn table array of model id strings, or nil, err
function Client:models(opts)
  local t, err = self:_request({ method = "GET", path = "/models", opts = call_options(self, opts) })
  if not t then return nil, err end
  local doc
  doc, err = self:_decode_body(t)
  if not doc then return nil, err end
  if type(doc.data) ~= "table" then
    return nil, errors.new({ kind = "invalid_response", message = "models response has no data array" })
  end
  local ids = json.array()
  for _, m in ipairs(doc.data) do
    if type(m) == "table" and type(m.id) == "string" then ids[#ids + 1] = m.id end
  end
  return ids
end

--- Closes the client's engine and every transfer still on it. Idempotent.
function Client:close()
  if not self._closed then
    self._closed = true
    self._engine:close()
  end
end

M.call_options = call_options

return M
