--- The client: `baseten.new{...}` and its blocking calls.
-- Every request runs as a transfer on the client's one libcurl multi
-- engine, so blocking, streaming and non-blocking requests share its
-- connections.
-- @module baseten.client
local core = require("baseten.core")
local errors = require("baseten.errors")
local toolmod = require("baseten.tool")
local request = require("baseten.request")

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

local function option_number(opts, name, default)
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

-- Whether a header name, value or key holds a byte that would end the
-- header line (CR, LF) or the C string (NUL): such text could inject headers.
local function breaks_header(s)
  return s:find("\r", 1, true) or s:find("\n", 1, true) or s:find("\0", 1, true)
end

local function header_list(headers, where)
  local list = {}
  if headers == nil then return list end
  if type(headers) ~= "table" then error(where .. ": headers must be a table", 4) end
  for k, v in pairs(headers) do
    if type(k) ~= "string" or (type(v) ~= "string" and type(v) ~= "number") then
      error(where .. ": headers must map names to strings", 4)
    end
    if breaks_header(k) or breaks_header(tostring(v)) then
      error(where .. ": header " .. (breaks_header(k) and "names" or ("\"" .. k .. "\"")) ..
        " must not contain CR, LF or NUL", 4)
    end
    list[#list + 1] = k .. ": " .. v
  end
  table.sort(list)
  return list
end

-- A plain slug: ASCII letters, digits, "-" and "_", starting with a letter
-- or digit (nothing that could change the URL: no ".", "/", "?", "@", ...).
-- Explicit ASCII classes: %w would follow the C locale.
local function slug(v)
  return type(v) == "string" and #v <= 128 and v:match("^[A-Za-z0-9][A-Za-z0-9_%-]*$") ~= nil
end

--- The base URL of a dedicated deployment, from `opts.deployment` and
-- `opts.environment` (default "production"), or nil without a deployment.
-- Raises (at the caller of `baseten.new`) on misuse.
function M.deployment_url(opts)
  local id, env = opts.deployment, opts.environment
  if id == nil then
    if env ~= nil then error("baseten.new: environment is only for a deployment", 3) end
    return nil
  end
  if opts.base_url ~= nil then error("baseten.new: give deployment or base_url, not both", 3) end
  if not slug(id) then
    error("baseten.new: deployment must be a deployment id (letters, digits, '-' and '_')", 3)
  end
  if env == nil then env = "production" end
  if not slug(env) then
    error("baseten.new: environment must be an environment name (letters, digits, '-' and '_')", 3)
  end
  return "https://model-" .. id .. ".api.baseten.co/environments/" .. env .. "/sync/v1"
end

--- Makes a client.
-- @tparam[opt] table opts
--   `api_key` (default `BASETEN_API_KEY`; `false` sends no key; with no key
--   at all, calls to Baseten's own servers return an `authentication` error
--   without sending anything; CR, LF or NUL in it raise),
--   `base_url` (default `BASETEN_BASE_URL` or Baseten's),
--   `deployment` (a dedicated deployment's id: the base URL becomes
--   `https://model-<id>.api.baseten.co/environments/<environment>/sync/v1`;
--   raises with `base_url`, or when the id is not a plain slug),
--   `environment` (with `deployment` only; default "production"),
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
  if key and breaks_header(key) then error("baseten.new: api_key must not contain CR, LF or NUL", 2) end
  local base = M.deployment_url(opts) or opts.base_url or os.getenv("BASETEN_BASE_URL") or M.DEFAULT_BASE_URL
  if type(base) ~= "string" or not base:match("^https?://") then
    error("baseten.new: base_url must be an http(s) URL", 2)
  end
  if opts.model ~= nil and type(opts.model) ~= "string" then error("baseten.new: model must be a string", 2) end
  if opts.log ~= nil and type(opts.log) ~= "function" then error("baseten.new: log must be a function", 2) end
  local self = setmetatable({
    base_url = base:gsub("/+$", ""),
    model = opts.model,
    timeout = option_number(opts, "timeout", 600),
    connect_timeout = option_number(opts, "connect_timeout", 10),
    idle_timeout = option_number(opts, "idle_timeout", nil),
    max_retries = option_number(opts, "max_retries", 2),
    ca_file = opts.ca_file, ca_path = opts.ca_path, proxy = opts.proxy,
    insecure = opts.insecure and true or nil,
    _engine = core.engine(),
    _extra = header_list(opts.headers, "baseten.new"),
    _keyless = opts.api_key == false or nil, -- sends no key on purpose (a local server)
  }, Client)
  self._usage = M.zero_usage()
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

-- A field the API defines as an array: an empty plain table goes as [].
local function as_array(v)
  if type(v) == "table" and next(v) == nil and getmetatable(v) == nil then return json.array() end
  return v
end

-- The messages with their array fields (`content` parts, `tool_calls`)
-- marked, copying only what changes (the caller's tables stay as they are).
local function messages_array(list)
  local out = json.array()
  for i, m in ipairs(list) do
    if type(m) == "table" and (as_array(m.content) ~= m.content or as_array(m.tool_calls) ~= m.tool_calls) then
      local copy = {}
      for k, v in pairs(m) do copy[k] = v end
      copy.content, copy.tool_calls = as_array(m.content), as_array(m.tool_calls)
      m = copy
    end
    out[i] = m
  end
  return out
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
  if body.stream == true and body.stream_options == nil then body.stream_options = { include_usage = true } end
  body.stop = as_array(body.stop)
  body.messages = messages_array(body.messages)
  return json.encode(body)
end

--- The wait before retry n (see `baseten.request.backoff`).
M.backoff = request.backoff

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
  return request.run(request.new(self, "POST", "/chat/completions", body, false, call_options(self, opts)))
end

--- Starts a streamed chat completion.
-- Returns once the HTTP status is known; retries happen before that.
-- Returns four values on success (`stream, nil, nil, stream`) so that a
-- generic `for` over it closes the stream on `break` (Lua 5.4).
-- @tparam table req
-- @tparam[opt] table opts the call options (`timeout`, `max_retries`,
--   `headers`), and `on_tool_call_delta(index, name, args_snapshot)`: each
--   tool call's arguments as a live table while they stream (baseten.partial)
-- @treturn Stream or nil, err
function Client:stream(req, opts)
  local body = self:_body(req, { stream = true }, nil, "stream")
  local on_delta = type(opts) == "table" and opts.on_tool_call_delta or nil
  if on_delta ~= nil and type(on_delta) ~= "function" then
    error("baseten: stream: on_tool_call_delta must be a function", 2)
  end
  local s, err = request.run(request.new(self, "POST", "/chat/completions", body, true, call_options(self, opts)))
  if not s then return nil, err end
  if on_delta then s:on_tool_call_delta(on_delta) end
  return s, nil, nil, s
end

--- Lists the models the server offers (`GET /models`).
-- @tparam[opt] table opts
-- @treturn table array of model id strings, or nil, err
-- @treturn table the whole decoded response (`{object = "list", data = {...}}`), second
--   (for what the ids leave out: `owned_by`, `created`, provider fields)
function Client:models(opts)
  local doc, err = request.run(request.new(self, "GET", "/models", nil, false, call_options(self, opts)))
  if not doc then return nil, err end
  if type(doc.data) ~= "table" then
    return nil, errors.new({ kind = "invalid_response", message = "models response has no data array" })
  end
  local ids = json.array()
  for _, m in ipairs(doc.data) do
    if type(m) == "table" and type(m.id) == "string" then ids[#ids + 1] = m.id end
  end
  return ids, doc
end

--- Usage totals with every count at 0 (internal).
function M.zero_usage()
  return { requests = 0, prompt_tokens = 0, completion_tokens = 0, reasoning_tokens = 0, cached_tokens = 0 }
end

--- The running usage totals of this client, across every call: blocking,
-- streamed and non-blocking, each counted once when its response ends (a
-- retried call once, for the attempt that answered; a stream closed or
-- canceled early with the usage it had received, which is the server's
-- last cumulative report, so nothing is counted twice).
-- `requests` counts the responses received (a `models()` list too; a call
-- that failed with no response is not counted); the tokens add up each
-- response's `usage`: `prompt_tokens`, `completion_tokens`,
-- `completion_tokens_details.reasoning_tokens`,
-- `prompt_tokens_details.cached_tokens`. A stream sends
-- `stream_options = {include_usage = true}` by default so that its usage
-- is there to count.
-- @tparam[opt] boolean reset true: zero the totals after reading them
-- @treturn table `{requests, prompt_tokens, completion_tokens, reasoning_tokens, cached_tokens}` (a copy)
function Client:usage(reset)
  local u = self._usage
  local copy = {}
  for k, v in pairs(u) do copy[k] = v end
  if reset then self._usage = M.zero_usage() end
  return copy
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
