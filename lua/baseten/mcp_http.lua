--- MCP's Streamable HTTP transport (protocol 2025-06-18 and later), on
-- the core's libcurl engine. Used by `baseten.mcp`; not a public module.
--
-- Each message is a POST with `Accept: application/json, text/event-stream`;
-- a request's answer comes back as one JSON body or as an SSE stream
-- (which may carry server requests and notifications first). The session
-- id of the initialize response (`Mcp-Session-Id`) and the protocol version
-- go on every later request. Server messages outside any call come on a
-- GET stream. A stream cut before its answer is resumed with GET and
-- `Last-Event-ID`, after the server's `retry` time. Close sends DELETE.
-- @module baseten.mcp_http
local core = require("baseten.core")
local errors = require("baseten.errors")
local request = require("baseten.request")

local json = core.json
local now = core.now
local M = {}

--- How many times one cut stream is resumed before its calls fail.
M.MAX_RESUMES = 5
--- Seconds between GET stream reconnections when the server gives no `retry`.
M.DEFAULT_RETRY = 1

local Http = {}
Http.__index = Http

local function header_lines(headers, where)
  local out = {}
  for k, v in pairs(headers or {}) do
    if type(k) ~= "string" or not k:match("^[%w!#$%%&'*+.^_`|~-]+$") then
      error(where .. ": bad header name " .. tostring(k), 5)
    end
    if (type(v) ~= "string" and type(v) ~= "number") or tostring(v):find("[\r\n%z]") then
      error(where .. ": bad value for header " .. k, 5)
    end
    out[#out + 1] = k .. ": " .. tostring(v)
  end
  table.sort(out)
  return out
end

function M.open(opts, where)
  if type(opts.url) ~= "string" or not opts.url:match("^https?://") then
    error(where .. ": url must be an http:// or https:// URL", 4)
  end
  if opts.headers ~= nil and type(opts.headers) ~= "table" then error(where .. ": headers must be a table", 4) end
  return setmetatable({ url = opts.url, extra = header_lines(opts.headers, where), engine = core.engine(),
                        streams = {}, tls = { ca_file = opts.ca_file, proxy = opts.proxy, insecure = opts.insecure },
                        secret = opts.headers and (opts.headers.Authorization or opts.headers.authorization) }, Http)
end

local function headers(self, accept, extra)
  local h = { "Accept: " .. accept }
  for _, line in ipairs(self.extra) do h[#h + 1] = line end
  if self.session_id then h[#h + 1] = "Mcp-Session-Id: " .. self.session_id end
  if self.version then h[#h + 1] = "MCP-Protocol-Version: " .. self.version end
  for _, line in ipairs(extra or {}) do h[#h + 1] = line end
  return h
end

local function start(self, method, hdrs, body)
  local tls = self.tls
  return self.engine:request{ url = self.url, method = method, headers = hdrs, body = body, stream = true,
                              connect_timeout = 10, ca_file = tls.ca_file, proxy = tls.proxy, insecure = tls.insecure,
                              user_agent = "baseten-lua/" .. core.VERSION }
end

--- Sends one message as a POST. Its answer comes through `step`.
function Http:send(msg)
  if self.closed then return nil, "the session is closed" end
  local ids = {}
  if msg.method and msg.id ~= nil then ids[1] = msg.id end
  local t = start(self, "POST", headers(self, "application/json, text/event-stream",
                                        { "Content-Type: application/json" }), json.encode(msg))
  self.streams[#self.streams + 1] = { t = t, ids = ids, init = msg.method == "initialize", sends = msg.method }
  return true
end

-- After the handshake: the version header from now on, and the GET stream.
function Http:initialized(version)
  self.version = version
  self.get_due = now()
end

-- The session expired: forget its id, for a new initialize.
function Http:reset()
  self.session_id, self.version, self.get_due = nil, nil, nil
  local keep = {}
  for _, s in ipairs(self.streams) do
    if s.get then s.t:close() else keep[#keep + 1] = s end
  end
  self.streams = keep
end

local function open_get(self, last_id)
  local extra = last_id and { "Last-Event-ID: " .. last_id } or nil
  return { t = start(self, "GET", headers(self, "text/event-stream", extra)), ids = {}, get = true }
end

-- A failed POST: the error for its calls.
local function http_fault(self, s, status, body)
  local err = errors.from_response(status, body, {}, self.secret)
  local ok, msg = pcall(json.decode, body or "", request.DECODE_OPTS)
  if ok and type(msg) == "table" and type(msg.error) == "table" then
    err = errors.new({ kind = "mcp", status = status, code = msg.error.code,
                       message = tostring(msg.error.message or err.message) }, self.secret)
  end
  if s.init and (status == 404 or status == 405) and self.old_transport then
    err = errors.new({ kind = "mcp", status = status, message = "unsupported transport: " .. self.url
      .. " speaks the old HTTP+SSE transport (protocol 2024-11-05), not Streamable HTTP" })
  end
  return err
end

-- An HTTP+SSE server (2024-11-05) answers GET with an `endpoint` event:
-- check, briefly, when initialize was refused.
local function probe_old(self)
  local t = start(self, "GET", { "Accept: text/event-stream" })
  local parser, deadline = core.sse.new(), now() + 5
  while now() < deadline do
    self.engine:perform(0.1)
    for _, ev in ipairs(parser:feed(t:body()) or {}) do
      if ev.event == "endpoint" then self.old_transport = true end
    end
    if self.old_transport or t:state() ~= "running" then break end
  end
  t:close()
end

local function decode_into(data, deliver)
  local msg, why = json.decode(data, request.DECODE_OPTS)
  if type(msg) ~= "table" then
    return nil, "the server sent a message that is not JSON-RPC (" .. tostring(why or "not an object") .. "): "
      .. data:sub(1, 200)
  end
  deliver(msg)
  return true
end

-- The SSE bytes of stream s: each event's message delivered.
local function read_sse(s, deliver)
  local bytes = s.t:body()
  if bytes == "" then return false end
  local events, too_big = s.sse:feed(bytes)
  if not events then return nil, "the server's SSE stream: " .. tostring(too_big) end
  for _, ev in ipairs(events) do
    if ev.id then s.last_id = ev.id end
    if ev.data ~= "" then
      local ok, why = decode_into(ev.data, function(msg)
        if msg.id ~= nil and msg.method == nil then s.answered = (s.answered or 0) + 1 end
        deliver(msg)
      end)
      if not ok then return nil, why end
    end
  end
  local retry = s.sse:retry()
  if retry and retry >= 0 then s.retry = retry / 1000 end
  return true
end

-- Looks at a stream whose headers are in: what kind of answer it is.
local function judge(self, s, deliver)
  local status = s.t:status()
  s.judged, s.status = true, status
  if s.init and status >= 200 and status < 300 then self.session_id = s.t:header("mcp-session-id") end
  if status >= 400 then
    if s.init and (status == 404 or status == 405 or status == 400) then probe_old(self) end
    return
  end
  local ctype = (s.t:header("content-type") or ""):lower()
  if ctype:find("text/event-stream", 1, true) then s.sse = core.sse.new() end
  if s.get and not s.sse then s.dead = true end
  if s.ids[1] ~= nil and not s.sse and status ~= 200 then
    deliver({ fault = errors.new({ kind = "mcp", status = status,
                                   message = "HTTP " .. status .. " without a JSON-RPC answer" }), ids = s.ids })
  end
end

-- A stream that ended: its JSON answer, its faults, or a resume.
local function finish(self, s, deliver)
  local ok, kind, message = s.t:result()
  local body = (not s.sse) and s.t:body() or ""
  local status = s.status or 0
  if not ok and not s.get and s.ids[1] ~= nil and (s.answered or 0) == 0 and not s.sse then
    local k = (kind == "timeout" or kind == "tls") and kind or (kind == "too_large" or kind == "nomem")
      and "invalid_response" or "connection"
    return deliver({ fault = errors.new({ kind = k, message = tostring(message) }, self.secret), ids = s.ids })
  end
  if s.get then
    if status == 405 or (status >= 400 and status ~= 404) then self.no_get = true end
    if status == 404 and self.session_id then return deliver({ expired = true, ids = {} }) end
    self.get_due = now() + (s.retry or M.DEFAULT_RETRY)
    if s.last_id then self.get_last = s.last_id end
    return
  end
  if status == 404 and self.session_id and not s.init and s.ids[1] ~= nil then
    return deliver({ expired = true, ids = s.ids })
  end
  if status >= 400 then return deliver({ fault = http_fault(self, s, status, body), ids = s.ids }) end
  if not s.sse and status == 200 and body:find("%S") then
    local dok, why = decode_into(body, deliver)
    if not dok then deliver({ fault = errors.new({ kind = "mcp", message = why }), ids = s.ids }) end
    return
  end
  if s.sse and s.ids[1] ~= nil and (s.answered or 0) == 0 then
    s.resumes = (s.resumes or 0) + 1
    if s.last_id and s.resumes <= M.MAX_RESUMES then -- resume the cut stream
      return { ids = s.ids, resumes = s.resumes, last_id = s.last_id, retry = s.retry,
               due = now() + (s.retry or 0) } -- step opens its GET when due
    end
    local why = ok and "the server ended the stream without an answer" or (kind .. ": " .. tostring(message))
    deliver({ fault = errors.new({ kind = ok and "mcp" or (kind == "timeout" and "timeout" or "connection"),
                                   message = why }), ids = s.ids })
  end
end

--- Moves bytes without waiting and delivers what arrived. Returns whether
-- anything happened (never fails: faults go to `deliver` per call).
function Http:step(deliver)
  if self.closed then return nil, "the session is closed" end
  if self.stepping then return false end -- a callback's blocking call: the outer step goes on
  self.stepping = true
  local ok, moved = pcall(self.step_once, self, deliver)
  self.stepping = false
  if not ok then error(moved, 0) end
  return moved
end

function Http:step_once(deliver)
  self.engine:perform(0)
  local moved, keep = false, {}
  for _, s in ipairs(self.streams) do
    local replacement
    if s.due then -- a resume waiting for its retry time
      if now() >= s.due then
        s.due = nil
        s.t = open_get(self, s.last_id).t
        moved = true
      end
    else
      local status, headers_done = s.t:status()
      if headers_done and not s.judged then
        judge(self, s, deliver)
        moved = true
      end
      if s.sse then
        local got, why = read_sse(s, deliver)
        if got == nil then
          deliver({ fault = errors.new({ kind = "mcp", message = why }), ids = s.ids })
          s.t:close()
          s.dead = true
        end
        moved = moved or got
      end
      if not s.dead and s.t:state() == "done" then
        if s.sse then read_sse(s, deliver) end
        if not s.judged then s.status = status end
        replacement = finish(self, s, deliver)
        s.t:close()
        s.dead, moved = true, true
      end
    end
    if replacement then keep[#keep + 1] = replacement
    elseif not s.dead then keep[#keep + 1] = s end
  end
  self.streams = keep
  self:maybe_get()
  return moved
end

-- Keeps one GET stream open for server-initiated messages, once the
-- session is initialized, unless the server refused it.
function Http:maybe_get()
  if self.closed or not self.version or self.no_get or not self.get_due or now() < self.get_due then return end
  for _, s in ipairs(self.streams) do if s.get then return end end
  self.get_due = nil
  self.streams[#self.streams + 1] = open_get(self, self.get_last)
end

--- Waits at most `seconds` for network activity (or a resume's time).
function Http:wait(seconds)
  for _, s in ipairs(self.streams) do
    if s.due then seconds = math.min(seconds, math.max(0, s.due - now())) end
  end
  if self.get_due and not self.no_get then seconds = math.min(seconds, math.max(0, self.get_due - now())) end
  if seconds > 0 then self.engine:perform(seconds) end
end

--- What another loop's wait should wait on: this engine's sockets (a
-- flat `{fd, events, ...}`), and the seconds until curl or a resume
-- needs a look.
function Http:wait_on()
  if self.closed then return {}, nil end
  local fds, due = self.engine:fds()
  local t = now()
  for _, s in ipairs(self.streams) do
    if s.due then due = math.min(due or math.huge, math.max(0, s.due - t)) end
  end
  if self.get_due and not self.no_get then due = math.min(due or math.huge, math.max(0, self.get_due - t)) end
  return fds, due
end

--- Ends the session: DELETE (unless `quiet`), then every transfer.
function Http:close(_, quiet)
  if self.closed then return end
  self.closed = true
  for _, s in ipairs(self.streams) do if s.t then s.t:close() end end
  self.streams = {}
  if self.session_id and not quiet then
    local t = start(self, "DELETE", headers(self, "application/json, text/event-stream"))
    local deadline = now() + 2
    while t:state() == "running" and now() < deadline do self.engine:perform(0.1) end
    t:close()
  end
  self.engine:close()
end

return M
