--- The client: `baseten.new{...}` and its method table.
-- Every request runs as a transfer on the client's one libcurl multi
-- engine (its runtime, see baseten.runtime), so blocking, streaming and
-- non-blocking requests share its connections.
--
-- A client is complete when it is made: every method is in the method
-- table below, whichever modules the caller required. No module adds
-- methods to `Client` by being required.
--
-- How a feature becomes a method (the pattern for every later one:
-- `start_tools`, `embed`, `rerank`, `classify`, MCP tools):
--   1. Write it as its own module, `lua/baseten/<feature>.lua`, exporting
--      plain functions that take the client first: `function M.embed(client,
--      inputs, opts)`. It must not require this module (use
--      `baseten.request` for calls, `baseten.options` for option checks,
--      `baseten.task` for non-blocking work that `poll` drives).
--   2. Add one line to the method table here: `Client.embed = embed.embed`.
--   3. Add the module to the rockspec, and its types to types.lua.
-- Raise at the caller's line with level 2 inside such a function: it is
-- called as the method itself, so level 2 is the user's code.
-- @module baseten.client
local core = require("baseten.core")
local errors = require("baseten.errors")
local request = require("baseten.request")
local options = require("baseten.options")
local runtime = require("baseten.runtime")
-- the features, each its own module (see the method table below)
local async = require("baseten.async")
local structured = require("baseten.structured")
local toolloop = require("baseten.toolloop")
local batch = require("baseten.batch")
local embed = require("baseten.embed")

local json = core.json
local M = {}

-- client:stream's options besides the call options (baseten.partial).
local STREAM_OPTS = { on_tool_call_delta = "func" }

--- Default base URL of Baseten's Model APIs.
M.DEFAULT_BASE_URL = "https://inference.baseten.co/v1"

---@class baseten.Client
local Client = {}
Client.__index = Client
M.Client = Client

local function stderr_logger(event)
  local parts = {}
  for k, v in pairs(event) do
    if k ~= "event" then parts[#parts + 1] = k .. "=" .. tostring(v) end
  end
  table.sort(parts)
  io.stderr:write("baseten: ", event.event, " ", table.concat(parts, " "), "\n")
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
--   off: for local development only), `ssl_no_revoke` (true: no certificate
--   revocation check, for networks whose proxies break Windows' check;
--   ignored where the TLS backend has none, as OpenSSL), `log` (function(event) called with a
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
  if key and options.breaks_header(key) then error("baseten.new: api_key must not contain CR, LF or NUL", 2) end
  local base = M.deployment_url(opts) or opts.base_url or os.getenv("BASETEN_BASE_URL") or M.DEFAULT_BASE_URL
  local why = M.url_problem(base)
  if why then error("baseten.new: invalid_request: base_url " .. why, 2) end
  options.check(options.CLIENT, opts, "baseten.new", 2)
  local self = setmetatable({
    base_url = base:gsub("/+$", ""),
    model = opts.model,
    timeout = opts.timeout or 600,
    connect_timeout = opts.connect_timeout or 10,
    idle_timeout = opts.idle_timeout,
    max_retries = opts.max_retries or 2,
    ca_file = opts.ca_file, ca_path = opts.ca_path, proxy = opts.proxy,
    insecure = opts.insecure or nil,
    ssl_no_revoke = opts.ssl_no_revoke or nil,
    fallback = opts.fallback, -- clients tried in order after this one's retries fail (see baseten.request)
    session = opts.session, -- x-session-affinity on every call (see baseten.options)
  }, Client)
  runtime.new(self, {
    key = key,
    keyless = opts.api_key == false, -- sends no key on purpose (a local server)
    headers = options.header_lines(opts.headers),
    log = opts.log or (os.getenv("BASETEN_LOG") == "debug" and stderr_logger or nil),
    prices = opts.prices,
  })
  return self
end

-- What is wrong with a base URL, or nil: an http(s) URL whose host is a
-- name or an address (no space, control byte or other character that
-- libcurl would take for a connection failure, retried three times).
function M.url_problem(base)
  if type(base) ~= "string" then return "must be a string, not a " .. type(base) end
  local scheme, rest = base:match("^(%a[%w+.-]*)://(.*)$")
  if not scheme or (scheme:lower() ~= "http" and scheme:lower() ~= "https") then
    return "must be an http(s) URL: " .. string.format("%q", base:sub(1, 80))
  end
  if rest:find("[%z\1-\32\127]") then
    return "must not contain spaces or control characters: " .. string.format("%q", base:sub(1, 80))
  end
  local authority = rest:match("^[^/?#]*")
  local host = authority:gsub("^.*@", "")
  if host:sub(1, 1) == "[" then
    if not host:match("^%[[%x:.]+%]:?%d*$") then return "has a malformed IPv6 host: " .. host end
    return nil
  end
  local name, port = host:match("^([^:]*):?(.*)$")
  if name == "" then return "has no host: " .. string.format("%q", base:sub(1, 80)) end
  if not name:match("^[A-Za-z0-9%-%._~%%]+$") then return "has a malformed host: " .. string.format("%q", name) end
  if port ~= "" and not (port:match("^%d+$") and tonumber(port) <= 65535) then
    return "has a malformed port: " .. string.format("%q", port)
  end
  return nil
end

function Client:__tostring()
  return "baseten.client (" .. self.base_url .. (self.model and (", " .. self.model) or "") .. ")"
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
    local s, err = M.open_stream(self, req, opts, "chat", 2)
    if not s then return nil, err end
    return s:final()
  end
  local body = request.chat_body(self, req, nil, nil, "chat", 2)
  return request.new(self, "POST", "/chat/completions", body, false, options.call(self, opts, "chat", 2)):run()
end

--- A streamed chat completion (internal: `stream`, and `chat` with
-- `req.stream`); raises at `level` counted from its caller.
function M.open_stream(client, req, opts, where, level)
  local body = request.chat_body(client, req, { stream = true }, nil, where, level + 1)
  local copts = options.call(client, opts, where, level + 1)
  return request.new(client, "POST", "/chat/completions", body, true, copts):run()
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
  local on_delta = type(opts) == "table" and opts.on_tool_call_delta or nil
  if on_delta ~= nil then options.check(STREAM_OPTS, opts, "baseten: stream", 2) end
  local s, err = M.open_stream(self, req, opts, "stream", 2)
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
  local doc, err = request.new(self, "GET", "/models", nil, false, options.call(self, opts, "models", 2)):run()
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

--- Usage totals with every count at 0.
M.zero_usage = runtime.zero_usage

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
  return runtime.of(self):usage(reset)
end

--- Closes the client's engine and every transfer still on it. Idempotent.
-- Every call on a closed client returns (or ends with) a `canceled` error;
-- requests still pending end as canceled at the next `poll`.
function Client:close()
  runtime.of(self):close()
end

-- The method table. Each feature is its own module of plain functions
-- taking the client first; one line here makes each a method (see the
-- top of this file).
Client.start = async.start           -- non-blocking: a task poll drives
Client.poll = async.poll
Client.pending = async.pending
Client.await = async.await
Client.spawn = async.spawn
Client.drain = async.drain
Client.json = structured.json        -- structured output
Client.run_tools = toolloop.run_tools   -- the tool-calling loop
Client.start_tools = toolloop.start_tools
Client.batch = batch.batch           -- many requests at once
Client.start_batch = batch.start_batch
Client.embed = embed.embed           -- embeddings, rerank and classify
Client.start_embed = embed.start_embed
Client.rerank = embed.rerank
Client.classify = embed.classify

return M
