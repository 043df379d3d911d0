--- MCP: the tools, resources and prompts of any Model Context Protocol
-- server, over stdio or Streamable HTTP.
--
--     local mcp = require("baseten.mcp")
--     local s = assert(mcp.connect{ command = {"npx", "-y", "@modelcontextprotocol/server-everything"} })
--     for _, t in ipairs(assert(s:list_tools())) do print(t.name) end
--     local r = assert(s:call_tool("echo", {message = "hi"}))
--     print(r.content[1].text)
--     client:run_tools{ messages = ..., tools = s:tools{ only = {"echo"} } }
--     s:close()
--
-- Every method returns its value or `nil, err`; `err.kind` is `"mcp"` for
-- a JSON-RPC error (`err.code`), a protocol violation or a server that
-- exited, `"timeout"` when a call's time ran out (the server is then sent
-- `notifications/cancelled`), `"canceled"` for `handle:cancel()`, and the
-- HTTP kinds (`"connection"`, `"authentication"`, ...) for Streamable HTTP.
-- A session whose server exited or broke the protocol is closed: later
-- calls fail at once.
-- @module baseten.mcp
local core = require("baseten.core")
local errors = require("baseten.errors")
local stdio = require("baseten.mcp_stdio")
local http = require("baseten.mcp_http")
local tools_mod = require("baseten.mcp_tools")
local track = require("baseten.mcp_track")
local incoming = require("baseten.mcp_incoming")
local registry = require("baseten.mcp_registry")
local check = require("baseten.mcp_opts")

local json = core.json
local now = core.now

local M = {}

--- The protocol versions offered, newest first; the first is sent.
M.PROTOCOL_VERSIONS = { "2025-11-25", "2025-06-18" }
--- Seconds a call may take when neither it nor the session says.
M.DEFAULT_TIMEOUT = 60

local Session = {}
Session.__index = Session
M.Session = Session

local Handle = {}
Handle.__index = Handle

local function mcp_error(message, fields)
  local e = { kind = "mcp", message = message }
  for k, v in pairs(fields or {}) do e[k] = v end
  return errors.new(e)
end
M.error = mcp_error

-- ------------------------------------------------------------ requests

-- Ends request `r` once: its result or error, then its on_done.
local function settle(self, r, result, err)
  if r.finished then return end
  r.finished, r.result, r.err = true, result, err
  self.pending[r.id] = nil
  if r.token ~= nil then self.progress[r.token] = nil end
  if r.on_done then
    local ok, e = pcall(r.on_done, result, err)
    if not ok and self.raised == nil then self.raised = { e } end
  end
end

-- Fails every pending request and closes the session (the transport died).
-- A server that broke the protocol gets no grace: SIGTERM, then SIGKILL
-- 50 ms later, so a poll never waits long on it.
local function fail_all(self, err)
  self.dead = self.dead or err
  for _, r in pairs(self.pending) do settle(self, r, nil, err) end
  local tr = self.transport
  self.transport = nil
  -- inside step the transport is still reading: step closes it after
  if tr and self.stepping then self.close_after = tr elseif tr then tr:close(0.05) end
end

local function send(self, msg)
  if not self.transport then return nil, self.dead or mcp_error("the session is closed") end
  local ok, why = self.transport:send(msg)
  if not ok then
    local err = errors.is_error(why) and why or mcp_error(tostring(why))
    if not errors.is_error(why) then fail_all(self, err) end
    return nil, err
  end
  return true
end

-- Starts request `method`: returns the request record (its `finished`,
-- `result`, `err` fill in later), or nil, err.
function Session:_start(method, params, opts)
  opts = opts or {}
  if not self.transport then return nil, self.dead or mcp_error("the session is closed") end
  if self.connecting and method ~= "initialize" then
    return nil, mcp_error("the session is still connecting (start_connect: wait for on_ready)")
  end
  self.next_id = self.next_id + 1
  local id = self.next_id
  local token = opts.on_progress and ("p" .. id) or nil
  if token then -- the protocol's "_meta" member carries the progress token
    params = params or {}
    local meta = {}
    for k, v in pairs(params["_meta"] or {}) do meta[k] = v end
    meta.progressToken = token
    params["_meta"] = meta
  end
  local r = { id = id, method = method, params = params, on_done = opts.on_done, token = token,
              deadline = now() + (opts.timeout or self.timeout), on_progress = opts.on_progress }
  if token then self.progress[token] = r end
  self.pending[id] = r
  local ok, err = send(self, { jsonrpc = "2.0", id = id, method = method, params = params or json.object({}) })
  if not ok then
    settle(self, r, nil, err)
    return nil, err
  end
  return r
end

-- Cancels request r: tells the server (notifications/cancelled) and ends
-- it with err. Responses that still come for it are ignored.
local function cancel(self, r, err, reason)
  if r.finished then return end
  self.canceled[r.id] = true
  if self.transport then
    send(self, { jsonrpc = "2.0", method = "notifications/cancelled",
                 params = { requestId = r.id, reason = reason } })
  end
  settle(self, r, nil, err)
end

-- Blocks until r is finished (poll drives everything meanwhile).
local function await(self, r, err)
  if not r then return nil, err end
  while not r.finished do self:poll(math.max(0, math.min(r.deadline - now(), 0.25))) end
  if r.err then return nil, r.err end
  return r.result
end

function Session:_request(method, params, opts)
  return await(self, self:_start(method, params, opts))
end

-- Messages from the server go through baseten.mcp_incoming, which calls
-- back into these.
local ops = { settle = settle, fail_all = fail_all, send = send, mcp_error = mcp_error }
local function deliver(self, msg) incoming.deliver(self, msg, ops) end

-- ---------------------------------------------------------------- poll

local function expire(self)
  local t = now()
  for _, r in pairs(self.pending) do
    if not r.finished and t >= r.deadline then
      cancel(self, r, errors.new({ kind = "timeout", message = "MCP " .. r.method .. " got no answer in time",
                                   method = r.method }), "timeout")
    end
  end
end

local function step(self)
  local tr = self.transport
  if not tr then return false end
  self.stepping = true
  local ok, moved, why = pcall(tr.step, tr, function(msg) if self.transport then deliver(self, msg) end end)
  self.stepping = false
  if self.close_after then
    self.close_after = nil
    tr:close(0.05)
    return true
  end
  if not ok then error(moved, 0) end
  local expired = self.expired
  if expired then
    self.expired = nil
    self:_reinit(expired)
    return true
  end
  if moved == nil then
    fail_all(self, errors.is_error(why) and why or mcp_error(tostring(why)))
    return true
  end
  return moved
end

--- Drives the session: reads what the server sent, answers its requests,
-- runs callbacks, times out calls. Waits at most `timeout` seconds (default
-- 0: never blocks), and only when nothing was ready. A callback that raised
-- raises out of `poll` (once). Returns the number of calls still pending.
-- @tparam[opt=0] number timeout
-- @treturn integer
function Session:poll(timeout)
  timeout = timeout or 0
  if type(timeout) ~= "number" or timeout < 0 then error("mcp: poll timeout must be a number >= 0", 2) end
  local moved = step(self)
  if not moved and timeout > 0 and self.transport then
    local wait = timeout
    for _, r in pairs(self.pending) do wait = math.min(wait, math.max(0, r.deadline - now())) end
    if wait > 0 then self.transport:wait(wait) end
    step(self)
  end
  expire(self)
  local raised = self.raised
  if raised then
    self.raised = nil
    error(raised[1], 0)
  end
  local n = 0
  for _ in pairs(self.pending) do n = n + 1 end
  return n
end

-- -------------------------------------------------------------- handshake

local function client_capabilities(self)
  local caps = {}
  if self.on_elicit then caps.elicitation = json.object({}) end
  if self.roots then caps.roots = { listChanged = false } end
  return json.object(caps)
end

function Session:_init_params()
  local info = self.client_info
  return { protocolVersion = M.PROTOCOL_VERSIONS[1], capabilities = client_capabilities(self),
           clientInfo = { name = info.name, version = info.version } }
end

-- The initialize result: checks the version, keeps what the server said,
-- sends notifications/initialized. true, or nil, err.
function Session:_initialized(result, err)
  if not result then return nil, err end
  local version = type(result) == "table" and result.protocolVersion
  local known = false
  for _, v in ipairs(M.PROTOCOL_VERSIONS) do known = known or v == version end
  if not known then
    return nil, mcp_error("the server speaks MCP protocol version " .. tostring(version)
      .. ", not one of " .. table.concat(M.PROTOCOL_VERSIONS, ", "))
  end
  self.protocol_version, self.server_info = version, result.serverInfo or {}
  self.capabilities, self.instructions = result.capabilities or {}, result.instructions
  if self.transport.initialized then self.transport:initialized(version) end
  return send(self, { jsonrpc = "2.0", method = "notifications/initialized" })
end

function Session:_handshake()
  return self:_initialized(self:_request("initialize", self:_init_params()))
end

-- The HTTP session expired (404): initialize once more, then send the
-- requests it lost again; a second expiry fails them.
function Session:_reinit(ids)
  local lost = {}
  for _, id in ipairs(ids or {}) do lost[#lost + 1] = self.pending[id] end
  if self.reinitialized then
    local err = mcp_error("the server forgot the session again (HTTP 404) after a new initialize")
    for _, r in ipairs(lost) do settle(self, r, nil, err) end
    return
  end
  self.reinitialized = true
  for _, r in ipairs(lost) do self.pending[r.id] = nil end
  self.transport:reset()
  local ok, err = self:_handshake()
  for _, r in ipairs(lost) do
    self.pending[r.id] = r
    if ok then ok, err = send(self, { jsonrpc = "2.0", id = r.id, method = r.method, params = r.params }) end
    if not ok then settle(self, r, nil, err) end
  end
end

--- Registers a server's connect options under a name, for
-- `:checkhealth baseten` to report (see baseten.mcp_registry).
M.register = registry.register
--- The registered servers: an array of `{name, opts}`.
M.registered = registry.registered

local function handshake_error(self, err)
  self:close()
  if err.kind == "mcp" and not err.message:find("^during the handshake") then
    err.message = "during the handshake: " .. err.message
  end
  return err
end

-- A session with its transport open, before the handshake; where names
-- the caller in errors (raised at the caller's caller's line).
local function open_session(opts, where)
  local info = check.connect(opts, where, 3)
  local tr, why
  if opts.command then tr, why = stdio.open(opts, where) else tr, why = http.open(opts, where) end
  if not tr then return nil, errors.is_error(why) and why or mcp_error(tostring(why)) end
  return setmetatable({ transport = tr, timeout = opts.timeout or M.DEFAULT_TIMEOUT, next_id = 0,
                        pending = {}, progress = {}, canceled = {}, client_info = info,
                        on_elicit = opts.on_elicit, on_notification = opts.on_notification,
                        roots = opts.roots, client = opts.client,
                        target = opts.url or table.concat(opts.command, " ") }, Session)
end

--- Connects to a server and runs the handshake.
-- `opts`: `command` (argv array: a stdio server) or `url` (Streamable
-- HTTP); stdio: `env` (added to the inherited environment),
-- `clear_env`, `cwd`, `log` (function(line), each stderr line; without
-- it stderr is discarded); HTTP: `headers` (a table name -> value),
-- `ca_file`, `proxy`, `insecure`; both: `timeout` (seconds per call,
-- default 60), `client_info` (`{name, version}`, default baseten and
-- its version), `on_elicit(message, schema) -> action, content`,
-- `on_notification(method, params)`, `roots` (array of `{uri, name}`),
-- `client` (a baseten client whose `poll` drives this session's
-- `start_call` handles).
-- @tparam table opts
-- @return the session, or nil, err
function M.connect(opts)
  local self, err = open_session(opts, "mcp.connect")
  if not self then return nil, err end
  local ok, herr = self:_handshake()
  if not ok then return nil, handshake_error(self, herr) end
  return self
end

--- Connects without blocking: returns the session at once, with its
-- handshake in flight; `session:poll` (or `client:poll` with `client`)
-- drives it, and `opts.on_ready(session, err)` runs once it is done
-- (`err` set, and the session closed, when it failed). Calls made before
-- then fail with kind `"mcp"`. Options as `connect`.
-- @tparam table opts
-- @return the session, or nil, err when the server cannot be started
function M.start_connect(opts)
  local self, err = open_session(opts, "mcp.start_connect")
  if not self then return nil, err end
  local on_ready = opts.on_ready
  self.connecting = true
  local r = self:_start("initialize", self:_init_params(), { on_done = function(result, rerr)
    self.connecting = nil
    local ok, herr = self:_initialized(result, rerr)
    if not ok then herr = handshake_error(self, herr) end
    if on_ready then on_ready(self, herr) end
  end })
  if r and self.client then track.track(self, r, function(message) self:close() self.dead = mcp_error(message) end) end
  return self
end
-- ------------------------------------------------------------- methods

-- All pages of a list method: the items under `key`.
local function list_all(self, method, key)
  local out, cursor, pages = json.array(), nil, 0
  repeat
    local result, err = self:_request(method, cursor and { cursor = cursor } or nil)
    if not result then return nil, err end
    for _, item in ipairs(type(result[key]) == "table" and result[key] or {}) do out[#out + 1] = item end
    cursor, pages = result.nextCursor, pages + 1
    if pages > 10000 then return nil, mcp_error(method .. ": more than 10000 pages") end
  until type(cursor) ~= "string"
  return out
end

--- Every tool of the server, all pages: `{name, description, inputSchema, ...}`.
function Session:list_tools() return list_all(self, "tools/list", "tools") end
--- Every resource of the server, all pages.
function Session:list_resources() return list_all(self, "resources/list", "resources") end
--- Every prompt of the server, all pages.
function Session:list_prompts() return list_all(self, "prompts/list", "prompts") end

--- Reads a resource: `{contents = {...}}`.
function Session:read_resource(uri)
  if type(uri) ~= "string" then error("mcp: read_resource expects a uri string", 2) end
  return self:_request("resources/read", { uri = uri })
end

--- Gets a prompt: `{description, messages}`.
function Session:get_prompt(name, args)
  if type(name) ~= "string" then error("mcp: get_prompt expects a name string", 2) end
  return self:_request("prompts/get", { name = name, arguments = args and json.object(args) or nil })
end

--- Pings the server: true, or nil, err.
function Session:ping()
  local r, err = self:_request("ping")
  if not r then return nil, err end
  return true
end

--- Calls a tool: the result `{content, isError, structuredContent}`, or
-- nil, err. A tool's own failure is a result with `isError = true`.
-- `opts`: `timeout` (seconds; the session's by default), `on_progress(progress, total, message)`.
function Session:call_tool(name, args, opts)
  local params
  params, opts = check.call(name, args, opts, "call_tool")
  return self:_request("tools/call", params, opts)
end

--- Starts a tool call without blocking: a handle that `session:poll`
-- drives, and `client:poll` too when the session was connected with
-- `client = client` (its wait then waits on the server's pipes or sockets
-- as well as the client's transfers). `opts` as `call_tool`, plus
-- `on_done(result, err)`. `handle:done()`, `handle:result()` (result or
-- nil, err), `handle:cancel()`.
function Session:start_call(name, args, opts)
  local params
  params, opts = check.call(name, args, opts, "start_call")
  return self:start("tools/call", params, opts)
end

function Handle:done() return self.r.finished == true end
function Handle:result()
  if self.r.err then return nil, self.r.err end
  return self.r.result
end
function Handle:cancel()
  cancel(self.session, self.r, errors.new({ kind = "canceled", message = "the MCP call was canceled" }), "canceled")
end

--- Starts any request without blocking (one page of `tools/list`,
-- `resources/read`, ...): a handle like `start_call`'s, whose result is
-- the JSON-RPC result. `opts`: `timeout`, `on_done(result, err)`.
function Session:start(method, params, opts)
  if type(method) ~= "string" then error("mcp: start expects a method name", 2) end
  if params ~= nil and type(params) ~= "table" then error("mcp: start: params must be a table", 2) end
  opts = opts or {}
  check.check_timeout(opts.timeout, "mcp: start", 2)
  check.check_fn(opts, "on_done", "mcp: start", 2)
  local r, err = self:_start(method, params, opts)
  if not r then
    r = { finished = true, err = err }
  elseif self.client then
    track.track(self, r, function(message)
      cancel(self, r, errors.new({ kind = "canceled", message = message }), "canceled")
    end)
  end
  return setmetatable({ r = r, session = self }, Handle)
end

--- The session's tools as entries for `run_tools`: see baseten.mcp_tools.
function Session:tools(opts)
  tools_mod.check(opts or {}, 2) -- bad options raise before any request
  if not self.tool_list then
    local list, err = self:list_tools()
    if not list then return nil, err end
    self.tool_list = list
  end
  local out = tools_mod.entries(self, self.tool_list, opts)
  return out
end

--- Ends the session: the HTTP session is deleted, the stdio server's
-- stdin closed (then SIGTERM, then SIGKILL). Pending calls fail as
-- canceled. Idempotent.
function Session:close()
  if self.transport then
    local err = errors.new({ kind = "canceled", message = "the MCP session was closed" })
    for _, r in pairs(self.pending) do settle(self, r, nil, err) end
    self.transport:close()
    self.transport = nil
  end
  self.dead = self.dead or mcp_error("the session is closed")
end
Session.__close = Session.close
-- A collected session ends its server without a word to it (no DELETE):
-- a finalizer must not wait on the network. (On 5.1 the process handle's
-- own finalizer does it.)
function Session:__gc()
  if self.transport then self.transport:close(0.2, true) end
end

function Session:__tostring()
  return "baseten.mcp session (" .. (self.transport and self.target or "closed") .. ")"
end

return M
