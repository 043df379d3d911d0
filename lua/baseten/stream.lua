--- Streams: what `client:stream(req)` returns.
--
--     for chunk in client:stream(req) do ... end   -- each decoded chunk; a failure raises
--     stream:next()          -- chunk, or nil at the end, or nil, err
--     for piece in stream:text() do ... end        -- non-empty content deltas
--     for piece, kind in stream:pieces() do ... end -- every text delta; kind is
--                            -- "reasoning", "content" or "refusal"
--     stream:final()         -- consumes the rest; a chat.completion-shaped table, or nil, err
--     stream:close()         -- cancels the transfer; idempotent; also __gc / __close
--
-- A stream never fails silently: a dropped connection, an error event, an
-- `error` member in a chunk, a chunk that is not JSON and a stall past the
-- timeout are each an error (`connection`, `error_event`,
-- `invalid_response`, `timeout`). After a failure, `stream:snapshot()`
-- (and `err.partial`) still give what arrived before it.
--
-- Chunks come decoded without null members (`"content": null` is an absent
-- key; a null in an array stays `json.null`). A UTF-16 surrogate pair split
-- between two chunks (servers in JavaScript do this) is mended before the
-- chunks are handed out: the first chunk is held until the next one of its
-- choice arrives and is handed out with the whole character, which the
-- second loses (see baseten.mend); a half with no partner becomes U+FFFD.
-- Every chunk, and so everything joined from them, is valid UTF-8.
-- @module baseten.stream
local core = require("baseten.core")
local errors = require("baseten.errors")
local accumulate = require("baseten.accumulate")
local request = require("baseten.request")
local runtime = require("baseten.runtime")
local mend = require("baseten.mend")
local chunk_text = require("baseten.chunk_text")
local stream_text = require("baseten.stream_text")

local json = core.json
local type = type -- upvalues, not global lookups, on the per-token path
local acc_add = accumulate.add
local content_sink = accumulate.content_sink
-- The core's sink (t:next_event(sink)) pays on Lua 5.x, where accumulate.add
-- costs more than the watch of the decode; LuaJIT's compiled add costs less.
local SINK = rawget(_G, "jit") == nil

local M = {}

local Stream = {}
Stream.__index = Stream
M.Stream = Stream

-- Chunks held in queue q to mend a split pair go into acc, their halves
-- made U+FFFD (the stream ended, failed or was closed).
local function settle_into(q, acc)
  mend.settle(q)
  for i = q.added + 1, q.tail do acc_add(acc, q[i]) end
  q.added = q.tail
end

-- The end's report: on_end with the usage, then the stream_end event.
local function report(rt, on_end, acc, event, q)
  if q then settle_into(q, acc) end
  on_end(acc.usage)
  if event then rt:emit(event) end
end

-- The stream has ended (any way): report it once (a collected one too);
-- `later`: at the runtime's next call (see `collected`), by a function
-- that holds no reference to the stream.
local function ended(self, later)
  local f = self._on_end
  if not f then return end
  self._on_end = nil
  local rt, acc, err = self._rt, self._acc, self._err
  local event = rt:logging() and { event = "stream_end", how = err and "failed" or (self._done and "done" or "closed"),
                                   kind = err and err.kind or nil, request_id = self.request_id }
  if not later then return report(rt, f, acc, event) end
  local q = self._q
  rt:defer(function() report(rt, f, acc, event, q) end)
end

-- Chunks held to mend a split pair go into the accumulator now. Returns the
-- queue, whose chunks may still be handed out.
local function settle(self)
  local q = self._q
  if not q then return nil end
  settle_into(q, self._acc)
  return q
end

-- Collected without a close. On LuaJIT a pairs() loop the JIT compiled
-- spins forever when its end is first reached inside a finalizer (the
-- logger's, a user's: see `Runtime:defer`), so there the collector closes
-- the transfer (in C) and leaves the rest of the end to the client's next
-- call. Lua 5.1 has no JIT: it closes at once, as 5.2+ do.
local DEFER_END = rawget(_G, "jit") ~= nil

local function collected(self)
  if not DEFER_END then return self:close() end
  self:_release()
  ended(self, true)
end

-- On Lua 5.1 and LuaJIT `__gc` on a table does nothing: a stream left by
-- `break` (and never closed) would only lose its connection when the
-- core's transfer is collected, and its own end would never be reported.
-- There the stream holds a userdata sentinel whose finalizer ends it.
-- (The sentinel and its closure are reachable only from the stream, so
-- they do not keep it alive.)
local newproxy = rawget(_G, "newproxy")
local NEEDS_SENTINEL = _VERSION == "Lua 5.1" and newproxy ~= nil

local function sentinel(stream)
  local p = newproxy(true)
  getmetatable(p).__gc = function() collected(stream) end
  return p
end

--- Wraps a running transfer whose 2xx headers are in (internal).
-- `on_end(usage)` runs once when the stream ends, whichever way: read to
-- its end, failed, or closed before its end (by `close`, `__close`, or
-- the garbage collector on every Lua).
function M.new(client, transfer, on_end)
  local rt = runtime.of(client)
  rt:sweep()
  local ctype = transfer:header("content-type") or ""
  -- _q, _err and _done are read on every chunk: false, not absent, so the
  -- read finds them in the table (a missing key goes on to __index)
  local self = setmetatable({
    _rt = rt, _t = transfer, _acc = accumulate.new(), _on_end = on_end,
    _q = false, _err = false, _done = false, _on_chunk = false, _sink = false,
    _sse = ctype == "" or ctype:lower():find("text/event-stream", 1, true) ~= nil,
    request_id = errors.scrub(transfer:header("x-request-id"), rt:secret()),
  }, Stream)
  if NEEDS_SENTINEL then self._sentinel = sentinel(self) end
  return self
end

-- The next held chunk, if it is ready (its split pairs are mended).
local function release(self, q)
  local i = q.head
  local c = q[i]
  if c == nil or q.waits[i] then return nil end
  q[i] = nil
  q.head = i + 1
  if i > q.added then acc_add(self._acc, c) end
  if i == q.tail then self._q = false end -- empty: back to the plain path
  return c
end

-- A chunk with lone surrogate halves, or any chunk while one is held: into
-- the queue. Returns the chunk to hand out now, or nil.
local function hold(self, chunk, lone)
  local q = self._q
  if not q then
    q = mend.queue()
    self._q = q
  end
  mend.take(q, chunk, lone)
  return release(self, q)
end

local function fail(self, fields)
  fields.request_id = fields.request_id or self.request_id
  if settle(self) then self._q = false end -- held chunks are in `partial`
  fields.partial = self._acc:result()
  local err = errors.new(fields, self._rt:secret())
  self._err = err
  self:_release()
  ended(self)
  return nil, err
end

-- The stream was closed while it was being read: a finalizer (or a hook)
-- can run between any two steps of a read and close it. The read ends as
-- canceled, as a read of a closed stream does.
local function closed_under(self)
  return fail(self, { kind = "canceled", message = "the stream was closed" })
end

function Stream:_release()
  if self._t then
    self._t:close()
    self._t = nil
  end
end

-- An `error` member inside a chunk (vLLM, SGLang, OpenRouter do this).
local function chunk_error(self, chunk)
  return fail(self, chunk_text.error_fields(chunk.error))
end

-- "data: [DONE]" can come before the end of the HTTP body (the last chunk
-- of a chunked body) has been read. Closing the transfer then would make
-- curl drop a connection it could reuse; so the runtime keeps the transfer
-- until it ends (see `Runtime:linger`).

-- The clean end of the stream ([DONE], or the body's end).
local function mark_done(self)
  self._done = true
  local t = self._t
  self._t = nil
  if t then self._rt:linger(t) end
  local q = settle(self)
  ended(self)
  return q and release(self, q) -- the held chunks come out before the end
end

-- A body that is not an event stream: a JSON error, or something wrong.
local function not_sse(self, body)
  local t = self._t
  local doc = json.decode(body, request.DECODE_OPTS)
  if type(doc) == "table" and doc.error ~= nil then
    return chunk_error(self, doc)
  end
  return fail(self, { kind = "invalid_response", body = body, message = "expected text/event-stream, got "
    .. tostring(t:header("content-type")) .. ": " .. body:sub(1, 120) })
end

-- Collects a non-SSE body (bounded) to say what the server sent instead:
-- false until it is all in.
local function collect_body(self)
  local t = self._t
  local raw = self._raw or {}
  self._raw = raw
  local body = t:body()
  if body == nil then return closed_under(self) end -- closed meanwhile
  raw[#raw + 1] = body
  raw.n = (raw.n or 0) + #raw[#raw]
  if t:state() == "running" and raw.n < 1048576 then return false end
  return not_sse(self, table.concat(raw))
end

-- A chunk that is not a table without an `error` member (the good ones
-- are taken inline in Stream:_read_buffered, the per-token path).
local function bad_chunk(self, a)
  if type(a) ~= "table" then
    return fail(self, { kind = "invalid_response", message = "stream chunk is not a JSON object" })
  end
  return chunk_error(self, a)
end

-- How t:next_event() decodes chunks (csrc/ldelta.c, DELTA_FLAGS).
local CHUNK_OPTS = { drop_nulls = true, lone_surrogates = "wtf8" }

-- The stream's body (transfer t) has ended: cleanly, or not, or t was
-- closed under the read (its result is then "canceled"). Returns the last
-- event, as the parser would: "chunk" (a last event without its blank
-- line, once), "done", or "failed", err.
local function at_end(self, t)
  local ok, kind, message = t:result()
  if not ok then
    local e = request.net_error_of(self._rt:secret(), kind, message)
    local why = e.kind == "connection" and " (the stream was cut off)" or ""
    local _, err = fail(self, { kind = e.kind, message = message .. why })
    return "failed", err
  end
  local pending = not self._took_last and t:pending()
  if self._t ~= t then
    local _, err = closed_under(self)
    return "failed", err
  end
  if not pending or pending == "[DONE]" then return "done" end
  self._took_last = true
  -- a last event without its blank line: take it when it is whole JSON
  local chunk = json.decode(pending, CHUNK_OPTS)
  if type(chunk) ~= "table" then
    local _, err = fail(self, { kind = "invalid_response",
                                message = "stream ended inside an event: " .. pending:sub(1, 120) })
    return "failed", err
  end
  return "chunk", chunk, pending:find("\\u[dD][89abAB]") and math.huge or nil -- lone halves: unknown count
end

-- Any event but a chunk: false when it carries nothing for us.
local function on_event(self, kind, a, b)
  if kind == "done" then
    return mark_done(self)
  elseif kind == "failed" then
    return nil, a
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

--- One read of what is buffered, never waiting on the network (internal;
-- the non-blocking layer drives streams with it). Returns a chunk, nil at
-- the end, nil, err on failure, or false when no whole event is buffered yet.
function Stream:read_buffered()
  local q = self._q
  if q then -- chunks held to mend a split surrogate pair (rare)
    local c = release(self, q)
    if c then return c end
  end
  if self._err then return nil, self._err end
  if self._done then return nil end
  local t = self._t
  if not t then
    return fail(self, { kind = "canceled", message = "the stream was closed" })
  end
  if self._rt.is_closed then -- the client was closed (the field: closed() is a call per chunk)
    self._t = nil
    return fail(self, { kind = "canceled", message = "the client was closed" })
  end
  if not self._sse then return collect_body(self) end
  while true do
    -- the sink: the core adds a plain content chunk to the accumulator
    -- itself (b is then true); not while chunks are held to be mended
    local kind, a, b = t:next_event(not q and self._sink)
    if kind == nil then
      if a then return fail(self, { kind = "invalid_response", message = a }) end -- nil, why
      if t:state() == "running" then return false end
      kind, a, b = at_end(self, t) -- also when a finalizer closed t: canceled
    end
    if kind == "chunk" then -- the per-token path: the common case inline
      if b == true then return a end -- added by the core
      if type(a) == "table" and a.error == nil then -- (nulls are dropped: "error": null is nil)
        if not (b or q) then
          local acc = self._acc
          acc_add(acc, a)
          if not self._sink and SINK then self._sink = content_sink(acc) end
          return a
        end
        a = hold(self, a, b) -- b: lone surrogate halves in the chunk
        if a then return a end
        q = self._q
      else
        return bad_chunk(self, a)
      end
    else
      local v, err = on_event(self, kind, a, b)
      if v ~= false then return v, err end
    end
  end
end

local read_buffered = Stream.read_buffered
local add_text = accumulate.add_text

-- The text fast path (pieces() and text()): as read_buffered, but a chunk
-- of the common text shape is read by the core without a table
-- (t:next_text, csrc/delta.c), its fields go into the accumulator, and it
-- comes out as true, content, reasoning_content, reasoning, refusal. Any
-- other chunk takes the full path, as read_buffered gives it; while chunks
-- are held to mend a split pair, every read does.
local function read_text(self)
  local t = self._t
  if self._q or self._err or self._done or not t or not self._sse or self._rt:closed() then
    return read_buffered(self)
  end
  local acc = self._acc
  while true do
    local kind, a, b, rc, r, f, fin, role, fp, usage, id, model, created = t:next_text(not acc.got_head)
    if kind == "text" then -- a: the chunk has its choice; b: its content
      add_text(acc, a, b, rc, r, f, fin, role, fp, usage, id, model, created)
      return true, b, rc, r, f
    end
    if kind == nil then
      if a then return fail(self, { kind = "invalid_response", message = a }) end -- nil, why
      if t:state() == "running" then return false end
      kind, a, b = at_end(self, t) -- also when a finalizer closed t: canceled
    end
    if kind == "chunk" then -- as in read_buffered
      if type(a) ~= "table" or a.error ~= nil then return bad_chunk(self, a) end
      if not b then
        acc_add(acc, a)
        return a
      end
      a = hold(self, a, b)
      if a then return a end
      return read_buffered(self) -- held: the full path until they are out
    end
    local v, err = on_event(self, kind, a, b)
    if v ~= false then return v, err end
  end
end

--- The next chunk: a decoded chat.completion.chunk table, or nil at the
-- end, or nil, err on failure.
function Stream:next()
  local rt = self._rt
  local wait = 0 -- first read what the socket holds: perform(1) would
  while true do  -- read it and then wait on for more before returning
    local v, err = self:read_buffered()
    if v ~= false then
      if v and self._on_chunk then self._on_chunk(v) end
      return v, err
    end
    rt:perform(wait)
    wait = 1
  end
end

--- Calls `next` and raises its error: the iterator of `for chunk in stream`.
function Stream:__call()
  local chunk, err = read_buffered(self) -- what `next` does first, without its frame
  if not chunk and chunk ~= nil then -- false: no whole event yet
    chunk, err = self:next()
  elseif chunk and self._on_chunk then
    self._on_chunk(chunk)
  end
  if err then error(err, 0) end
  return chunk
end

--- An iterator over each chunk, returning the stream as a fourth value so
-- a generic `for` closes it on `break` (Lua 5.4).
function Stream:chunks()
  return self, nil, nil, self
end

--- `baseten.chunk_text.content_of` and `pieces_of`, for structured.lua and
-- toolloop.lua: choice 0's content delta; its text deltas in pieces() order.
M.content_of, M.pieces_of = chunk_text.content_of, chunk_text.pieces_of

--- One read of what is buffered for a text consumer, never waiting on the
-- network (internal; baseten.toolloop's on_content and on_reasoning): the
-- text fast path's read. Returns true and the next chunk's pieces, as up
-- to three `piece, kind` pairs in `pieces()` order (none for a chunk
-- without text); nil at the end; nil, err on failure; or false when no
-- whole event is buffered yet.
function Stream:read_pieces()
  local v, x, rc, r, f = read_text(self)
  if v then return true, stream_text.pieces_of_read(v, x, rc, r, f) end
  return v, x
end

-- read_text for the iterators, as next() waits (wait: 0 first, then 1),
-- raising a failure: returns wait, then what read_text gave, nil at the end.
local function perform(self, wait) self._rt:perform(wait) end

local function read_waiting(self, wait)
  while true do
    local v, x, rc, r, f = read_text(self)
    if v ~= false then
      if v == nil and x then error(x, 0) end
      return wait, v, x, rc, r, f
    end
    perform(self, wait)
    wait = 1
  end
end

--- An iterator over every non-empty text delta of choice 0, in arrival
-- order, as `piece, kind`: kind is `"reasoning"` (the model's thinking,
-- whichever spelling the server used), `"content"` (the answer) or
-- `"refusal"`. A failure raises the error value. Returns the stream as a
-- fourth value, so `break` in a generic `for` closes it (Lua 5.4).
--
--     for piece, kind in stream:pieces() do
--       if kind == "reasoning" then io.stderr:write(piece) else io.write(piece) end
--     end
function Stream:pieces()
  return stream_text.pieces(read_waiting, self), nil, nil, self
end

--- An iterator over the non-empty content deltas of choice 0.
-- A failure raises the error value. Returns the stream as a fourth value.
function Stream:text()
  return stream_text.text(read_text, perform, self), nil, nil, self
end

--- An iterator over the content parsed as JSON while it streams: yields
-- `snapshot, path` after each content delta that adds to what can be shown
-- (`snapshot` is one live table, updated in place; `path` the keys and
-- indices of the value being filled). A leading code fence is skipped and a
-- closing one ignored. A failure raises the error value; content that is
-- not JSON raises an `invalid_json` error naming the byte offset, and
-- `final()` still gives what arrived. Returns the stream as a fourth value.
--
--     for npc in stream:partials() do show(npc.mood, npc.say) end
function Stream:partials()
  return require("baseten.partial").iterate(self, M.content_of)
end

--- Calls `fn(index, name, args_snapshot)` after each tool-call delta this
-- stream hands out (`client:stream(req, {on_tool_call_delta = fn})` sets it).
function Stream:on_tool_call_delta(fn)
  local tracker = require("baseten.partial").tracker(fn)
  self._on_chunk = function(chunk) tracker:chunk(chunk) end
end

--- Reads the rest of the stream and returns the accumulated response, a
-- chat.completion-shaped table; or nil, err (with `err.partial`).
function Stream:final()
  if not self._on_chunk then -- nobody sees the chunks: the text fast path (read_text)
    local wait = 0           -- reads them, as next() would (what is buffered first)
    while true do
      local v, err = read_text(self)
      if v == nil then
        if err then return nil, err end
        return self._acc:result()
      end
      if v == false then perform(self, wait) end
      wait = v == false and 1 or 0
    end
  end
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
  if settle(self) then self._q = false end -- held chunks count in snapshot()
  self:_release()
  if not self._done and not self._err then self._closed = true end
  ended(self)
end

Stream.__close = Stream.close
Stream.__gc = Stream.close

function Stream:__tostring()
  local state = self._t and "open" or (self._err and "failed" or "closed")
  return "baseten.stream (" .. state .. ")"
end

return M
