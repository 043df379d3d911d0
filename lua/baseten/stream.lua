--- Streams: what `client:stream(req)` returns.
--
--     for chunk in client:stream(req) do ... end   -- each decoded chunk; a failure raises
--     stream:next()          -- chunk, or nil at the end, or nil, err
--     for piece in stream:text() do ... end        -- non-empty content deltas
--     stream:final()         -- consumes the rest; a chat.completion-shaped table, or nil, err
--     stream:close()         -- cancels the transfer; idempotent; also __gc / __close
--
-- A stream never fails silently: a dropped connection, an error event, an
-- `error` member in a chunk, a chunk that is not JSON and a stall past the
-- timeout are each an error (`connection`, `error_event`,
-- `invalid_response`, `timeout`). After a failure, `stream:snapshot()`
-- (and `err.partial`) still give what arrived before it.
-- @module baseten.stream
local core = require("baseten.core")
local errors = require("baseten.errors")
local accumulate = require("baseten.accumulate")

local json = core.json
local null = json.null
local type = type -- upvalues, not global lookups, on the per-token path
local acc_add = accumulate.add

local M = {}

local Stream = {}
Stream.__index = Stream
M.Stream = Stream

--- Wraps a running transfer whose 2xx headers are in (internal).
function M.new(client, transfer)
  M._sweep(client)
  local ctype = transfer:header("content-type") or ""
  return setmetatable({
    _client = client, _t = transfer, _acc = accumulate.new(),
    _sse = ctype == "" or ctype:lower():find("text/event-stream", 1, true) ~= nil,
    request_id = errors.scrub(transfer:header("x-request-id"), client:_secret()),
  }, Stream)
end

local function fail(self, fields)
  fields.request_id = fields.request_id or self.request_id
  fields.partial = self._acc:result()
  local err = errors.new(fields, self._client:_secret())
  self._err = err
  self:_release()
  return nil, err
end

function Stream:_release()
  if self._t then
    self._t:close()
    self._t = nil
  end
end

local function error_message(e)
  if type(e) == "string" then return e end
  if type(e) == "table" then
    if type(e.message) == "string" then return e.message, e.type, e.code end
    local ok, s = pcall(json.encode, e)
    if ok then return s end
  end
  return "the server reported an error"
end

-- An `error` member inside a chunk (vLLM, SGLang, OpenRouter do this).
local function chunk_error(self, chunk)
  local msg, etype, code = error_message(chunk.error)
  return fail(self, { kind = "error_event", message = msg,
                      type = type(etype) == "string" and etype or nil,
                      code = (type(code) == "string" or type(code) == "number") and tostring(code) or nil })
end

-- "data: [DONE]" can come before the end of the HTTP body (the last chunk
-- of a chunked body) has been read. Closing the transfer then would make
-- curl drop a connection it could reuse; so read what has arrived, and if
-- the body is still not over, let the engine finish it in the background:
-- the client keeps the transfer until it ends (or LINGER seconds pass) and
-- closes it at a later sweep (each new stream, each poll).
local LINGER = 5

function M._sweep(client)
  local list = client._lingering
  if not list or #list == 0 then return end
  local now = core.now()
  for i = #list, 1, -1 do
    local e = list[i]
    if e.t:state() ~= "running" or now > e.deadline then
      e.t:close()
      table.remove(list, i)
    end
  end
end

local function linger(client, t)
  if t:state() == "running" and not client._closed then client._engine:perform(0) end
  if t:state() ~= "running" then
    t:close()
    return
  end
  local list = client._lingering or {}
  client._lingering = list
  list[#list + 1] = { t = t, deadline = core.now() + LINGER }
end

local function finish(self)
  self._done = true
  local t = self._t
  self._t = nil
  if t then linger(self._client, t) end
  return nil
end

-- A body that is not an event stream: a JSON error, or something wrong.
local function not_sse(self, body)
  local t = self._t
  local doc = json.decode(body)
  if type(doc) == "table" and doc.error ~= nil and doc.error ~= null then
    return chunk_error(self, doc)
  end
  return fail(self, { kind = "invalid_response", body = body, message = "expected text/event-stream, got "
    .. tostring(t:header("content-type")) .. ": " .. body:sub(1, 120) })
end

-- The stream's body has ended: cleanly, or not.
local function at_end(self)
  local t = self._t
  local ok, kind, message = t:result()
  if not ok then
    local e = self._client:_net_error(kind, message)
    local why = e.kind == "connection" and " (the stream was cut off)" or ""
    return fail(self, { kind = e.kind, message = message .. why })
  end
  local pending = t:pending()
  if pending == nil or pending == "[DONE]" then return finish(self) end
  -- a last event without its blank line: take it when it is whole JSON
  local chunk = json.decode(pending)
  if type(chunk) ~= "table" then
    return fail(self, { kind = "invalid_response", message = "stream ended inside an event: " .. pending:sub(1, 120) })
  end
  self._done = true
  self:_release()
  return chunk
end

local function on_event(self, kind, a, b)
  if kind == "chunk" then
    if type(a) ~= "table" then
      return fail(self, { kind = "invalid_response", message = "stream chunk is not a JSON object" })
    end
    if a.error ~= nil and a.error ~= null then return chunk_error(self, a) end
    return a
  elseif kind == "done" then
    return finish(self)
  elseif kind == "event" then
    if a == "error" then
      local doc = json.decode(b)
      return chunk_error(self, { error = type(doc) == "table" and (doc.error or doc) or b })
    end
    return false -- other event types carry nothing for chat completions
  elseif kind == "invalid" then
    return fail(self, { kind = "invalid_response",
                        message = "stream chunk is not JSON (" .. b .. "): " .. a:sub(1, 120) })
  end
  return fail(self, { kind = "invalid_response", message = a })
end

--- One step of reading, never waiting on the network (internal; the
-- non-blocking layer drives streams with it). Returns a chunk, nil at the
-- end, nil, err on failure, or false when no whole event is buffered yet.
function Stream:_step()
  if self._err then return nil, self._err end
  if self._done then return nil end
  local t = self._t
  if not t then
    return fail(self, { kind = "canceled", message = "the stream was closed" })
  end
  if not self._sse then
    -- collect the whole body (bounded) to say what the server sent instead
    local raw = self._raw or {}
    self._raw = raw
    raw[#raw + 1] = self._t:body()
    raw.n = (raw.n or 0) + #raw[#raw]
    if self._t:state() == "running" and raw.n < 1048576 then return false end
    return not_sse(self, table.concat(raw))
  end
  while true do
    local kind, a, b = t:next_event()
    if kind == "chunk" and type(a) == "table" and (a.error == nil or a.error == null) then
      acc_add(self._acc, a) -- the per-token path: on_event's first case, inlined
      return a
    elseif kind then
      local v, err = on_event(self, kind, a, b)
      if v ~= false then
        if v ~= nil then self._acc:add(v) end
        return v, err
      end
    elseif t:state() ~= "running" then
      local v, err = at_end(self)
      if v then self._acc:add(v) end
      return v, err
    else
      return false
    end
  end
end

--- The next chunk: a decoded chat.completion.chunk table, or nil at the
-- end, or nil, err on failure.
function Stream:next()
  local engine = self._client._engine
  local wait = 0 -- first read what the socket holds: perform(1) would
  while true do  -- read it and then wait on for more before returning
    local v, err = self:_step()
    if v ~= false then return v, err end
    engine:perform(wait)
    wait = 1
  end
end

local step = Stream._step

--- Calls `next` and raises its error: the iterator of `for chunk in stream`.
function Stream:__call()
  local chunk, err = step(self) -- what `next` does first, without its frame
  if not chunk and chunk ~= nil then chunk, err = self:next() end -- false: no whole event yet
  if err then error(err, 0) end
  return chunk
end

--- An iterator over each chunk, returning the stream as a fourth value so
-- a generic `for` closes it on `break` (Lua 5.4).
function Stream:chunks()
  return self, nil, nil, self
end

--- An iterator over the non-empty content deltas of choice 0.
-- A failure raises the error value.
function Stream:text()
  local function iter()
    while true do
      local chunk, err = self:next()
      if err then error(err, 0) end
      if chunk == nil then return nil end
      local c = chunk.choices and chunk.choices[1]
      local d = type(c) == "table" and c.delta
      local piece = type(d) == "table" and d.content
      if type(piece) == "string" and piece ~= "" then return piece end
    end
  end
  return iter, nil, nil, self
end

--- Reads the rest of the stream and returns the accumulated response, a
-- chat.completion-shaped table; or nil, err (with `err.partial`).
function Stream:final()
  while true do
    local chunk, err = self:next()
    if err then return nil, err end
    if chunk == nil then return self._acc:result() end
  end
end

--- What has been accumulated so far, without reading further.
function Stream:snapshot()
  return self._acc:result()
end

--- The content of choice 0 received so far.
function Stream:text_so_far()
  return self._acc:text()
end

--- Cancels the transfer at once. Idempotent; `__gc` and `__close` call it.
function Stream:close()
  self:_release()
  if not self._done and not self._err then self._closed = true end
end

Stream.__close = Stream.close
Stream.__gc = Stream.close

function Stream:__tostring()
  local state = self._t and "open" or (self._err and "failed" or "closed")
  return "baseten.stream (" .. state .. ")"
end

return M
