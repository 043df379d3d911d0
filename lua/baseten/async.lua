--- Non-blocking requests for game loops and editors.
--
--     local h = client:start(req, {
--       on_chunk = function(chunk) end,      -- streaming requests: each chunk
--       on_done  = function(resp, err) end,  -- once: the response (or the
--     })                                     -- stream:final() shape) or the error
--     client:poll(0)   -- every frame or timer tick; callbacks run inside poll
--     h:done()         -- true once on_done has run
--     h:cancel()       -- aborts at once; on_done gets err.kind == "canceled"
--
-- Every request of a client runs on its one libcurl multi engine, so many
-- run at once and share connections. Retries wait without blocking: poll
-- starts the next attempt when its time has come.
--
-- A callback that raises: the error comes out of `poll` (after every other
-- request of that poll has been served), the request whose callback raised
-- is canceled and closed, and the client stays usable. When callbacks of
-- several requests raise in one poll, the first error is raised and the
-- others are dropped (their requests are canceled all the same). The error
-- value is raised as it was given (a table stays a table); `error(nil)`
-- becomes a string that says so.
--
-- Coroutines. A blocking call works inside any coroutine, but it blocks the
-- whole Lua thread while it waits: `client:chat` until the response is in,
-- and each `stream:next()` (or step of `for chunk in stream`) until the next
-- chunk arrives. Between chunks the coroutine may yield and be resumed
-- later; the transfer stays open meanwhile and the bytes that arrive are
-- buffered (a stream pauses its connection once 4 MiB wait unread). To
-- wait without blocking, use `await` in a coroutine that `spawn` started:
--
--     client:spawn(function()
--       local resp, err = client:await(req)          -- yields until done
--       local r2 = client:await(req2, { on_chunk = f }) -- streams too
--     end)
--     while client:pending() > 0 do client:poll(0.05) end  -- or each frame
--
-- `await` yields to whoever resumed the coroutine and is resumed from
-- inside `poll` (from the request's on_done), so call it only in coroutines
-- whose yields nothing else interprets (those of `spawn`, or your own that
-- you do not resume for other reasons; a stray resume just yields again).
-- An error inside a spawned coroutine comes out of `spawn` or `poll`. Outside
-- any coroutine `await` is a blocking call (`chat`, or for a streaming
-- request a stream whose chunks go to `on_chunk`). On Lua 5.1 (not LuaJIT)
-- `await` cannot yield across a `pcall` inside the coroutine.
--
-- Each started request is a Handle: a task (see baseten.task) that owns
-- one Call (see baseten.request). Its methods: `done()`, `cancel()`,
-- `result()`, and the task interface `poll` uses.
--
-- These functions take the client first; baseten.client makes them its
-- methods (`client:start`, `client:poll`, ...).
-- @module baseten.async
local core = require("baseten.core")
local errors = require("baseten.errors")
local request = require("baseten.request")
local options = require("baseten.options")
local runtime = require("baseten.runtime")
local task = require("baseten.task")
local partial = require("baseten.partial")

local M = {}

local Handle = setmetatable({}, { __index = task.Task })
Handle.__index = Handle
M.Handle = Handle

-- The request ends: its transfer or stream closed, on_done run (once).
-- Returns the callback's error (boxed), if it raised.
function Handle:_complete(resp, err)
  if self.ended then return nil end
  -- a request canceled mid-stream carries what arrived, as a failed one does
  local s = self._stream
  if err and err.partial == nil and s then err.partial = s:snapshot() end
  self.response, self.error = resp, err
  self._stream = nil
  if s then s:close() else self._call:cancel() end
  return self:finish(resp, err)
end

-- A streaming handle: hand every buffered chunk to on_chunk.
function Handle:_pump()
  while true do -- on_chunk (or a finalizer, anywhere) may cancel its own request
    local s = self._stream
    if self.ended or not s then return nil end
    local chunk, err = s:read_buffered()
    if chunk == false then return nil end
    if chunk == nil then
      if err then return self:_complete(nil, err) end
      return self:_complete(s:snapshot(), nil)
    end
    self.rt:touch()
    if self._on_chunk then
      local e = task.call(self._on_chunk, chunk)
      if e then
        self:_complete(nil, errors.new({ kind = "canceled", message = "on_chunk raised: " .. tostring(e.err) }))
        return e
      end
    end
  end
end

-- (Re)launches the call: a closed client ends the request as canceled.
function Handle:_launch()
  local _, err = self._call:launch()
  if err then return self:_complete(nil, err) end
  self._phase = "waiting"
  return nil
end

--- Advances the request as far as it can go without waiting: the
-- non-blocking side of `Call:send` (the same launch, judge and result).
-- Part of the task interface (baseten.task).
function Handle:step()
  local call = self._call
  -- a callback run earlier in this poll may have canceled this request
  if self.ended then return nil end
  -- or closed the client (its retry may be due now: never launch it)
  if self.rt:closed() then return self:_complete(nil, call:canceled()) end
  if self._phase == "refused" then return self:_complete(nil, self._refusal) end
  if self._phase == "retry" then
    if core.now() < call:due() then return nil end
    local e = self:_launch()
    if self.ended then return e end
  end
  if self._phase == "waiting" then
    if not call:settled() then return nil end
    local what, v = call:judge()
    -- a finalizer (or a hook) may have canceled the request meanwhile
    if self.ended then
      if what == "ok" then v:close() end
      return nil
    end
    if what == "retry" then
      self.attempts = call.attempt -- retries made so far
      self._phase = "retry"
      return nil
    end
    if what == "fail" then return self:_complete(nil, v) end
    local resp, err = call:result(v)
    if self.ended then -- canceled while the result was being made
      if call.stream and resp then resp:close() end
      return nil
    end
    if not call.stream or not resp then return self:_complete(resp, err) end
    self._stream = resp
    self._phase = "streaming"
  end
  if self._phase == "streaming" then return self:_pump() end
  return nil
end

--- Ends the request now as canceled (task interface).
function Handle:abort(message)
  if self.ended then return nil end
  return self:_complete(nil, self._call:canceled(message))
end

--- When a retry is due, or nil (task interface).
function Handle:next_due()
  if self._phase == "retry" then return self._call:due() end
  return nil
end

--- Whether its transfer is on the engine (task interface).
function Handle:on_network()
  return self._phase == "waiting" or self._phase == "streaming"
end

function Handle:__tostring()
  return "baseten.handle (" .. (self.ended and "done" or (self._phase or "new")) .. ")"
end

local function check_handlers(handlers, where, level)
  if handlers == nil then return {} end
  if type(handlers) ~= "table" then error("baseten: " .. where .. " expects a handlers table", level + 1) end
  options.check(options.HANDLERS, handlers, "baseten: " .. where .. ": handlers", level + 1)
  return handlers
end

-- The handlers of start that watch JSON while it streams (baseten.partial).
local PARTIAL_HANDLERS = { json = "boolean", on_partial = "func", on_tool_call_delta = "func" }

-- start, raising at `level` counted from its caller.
local function start(client, req, handlers, where, level)
  handlers = check_handlers(handlers, where, level + 1)
  if type(req) == "table" and (handlers.json or handlers.on_partial or handlers.on_tool_call_delta) then
    options.check(PARTIAL_HANDLERS, handlers, "baseten: " .. where .. ": handlers", level + 1)
    req, handlers = partial.adapt(client, req, handlers) -- JSON watched while it streams
  end
  local stream = type(req) == "table" and req.stream and true or false
  local body = request.chat_body(client, req, stream and { stream = true } or nil, nil, where, level + 1)
  local opts = options.call(client, {
    timeout = handlers.timeout, max_retries = handlers.max_retries, headers = handlers.headers,
    session = handlers.session, fallback = handlers.fallback,
  }, where, level + 1)
  local h = setmetatable({
    _on_chunk = handlers.on_chunk,
    _call = request.new(client, "POST", "/chat/completions", body, stream, opts),
    attempts = 0,
  }, Handle)
  task.init(h, client, handlers.on_done)
  return Handle._begin(h)
end

-- The first launch, unless the call cannot go (no key for Baseten's own
-- servers, a closed client): then on_done runs in the next poll.
function Handle:_begin()
  local refusal = self._call:missing_key() or (self.rt:closed() and self._call:canceled())
  if refusal then
    self._refusal, self._phase = refusal, "refused"
    return self
  end
  local ok, e = pcall(self._launch, self)
  if not ok then -- nothing was sent: the request leaves the poll, quietly, and start raises
    self.on_done = nil
    self:finish(nil, nil)
    error(e, 0)
  end
  return self
end

--- Starts a request without waiting for it (`client:start`).
-- On a closed client the request ends as canceled in the next poll.
-- @tparam Client client
-- @tparam table req a chat request; `req.stream = true` streams
-- @tparam[opt] table handlers `on_chunk(chunk)`, `on_done(resp, err)`, and
--   the call options `timeout`, `max_retries`, `headers`; `json = true` (or
--   `on_partial`) asks for JSON as `client:json` does, streams, calls
--   `on_partial(snapshot, path)` from `poll` after each content delta and
--   `on_done(value, resp)` (or `nil, err`) with the judged value;
--   `on_tool_call_delta(index, name, args_snapshot)` (baseten.partial)
-- @treturn Handle
function M.start(client, req, handlers)
  local h = start(client, req, handlers, "start", 2) -- not a tail call: it would change the level
  return h
end

--- Drives every non-blocking request of this client (`client:poll`);
-- callbacks run here. Waits at most `timeout` seconds for network activity
-- (default 0: never blocks), and only when nothing was ready. Returns the
-- number of requests still unfinished. On a closed client every pending
-- request ends as canceled.
-- @tparam Client client
-- @tparam[opt=0] number timeout
-- @treturn integer
function M.poll(client, timeout)
  if timeout == nil then timeout = 0 end
  if type(timeout) ~= "number" or timeout ~= timeout or timeout < 0 then
    error("baseten: poll timeout must be a number >= 0, not " .. tostring(timeout), 2)
  end
  return runtime.of(client):poll(timeout)
end

--- The number of requests of this client still unfinished (`client:pending`).
function M.pending(client)
  return runtime.of(client):pending()
end

-- await outside a coroutine: a blocking call, with on_chunk honoured.
local function await_blocking(self, req, handlers)
  local on_chunk = handlers and handlers.on_chunk
  if not (type(req) == "table" and req.stream and on_chunk) then return self:chat(req, handlers) end
  local s, err = self:stream(req, handlers)
  if not s then return nil, err end
  while true do
    local chunk, cerr = s:next()
    if cerr then return nil, cerr end
    if chunk == nil then return s:snapshot() end
    local ok, e = pcall(on_chunk, chunk)
    if not ok then
      s:close()
      error(e, 0)
    end
  end
end

--- Inside a coroutine: starts the request and yields until poll finishes
-- it, then returns `resp` or `nil, err` (`client:await`). Outside a
-- coroutine it is a plain blocking call (`chat`; a streaming request with
-- `on_chunk` streams and calls it for each chunk). `handlers` may carry
-- `on_chunk` for a streaming request, and `timeout`, `max_retries`, `headers`.
-- @tparam Client self
-- @tparam table req
-- @tparam[opt] table handlers
function M.await(self, req, handlers)
  local co, main = coroutine.running()
  if co == nil or main then return await_blocking(self, req, handlers) end
  handlers = check_handlers(handlers, "await", 2)
  local result
  start(self, req, {
    on_chunk = handlers.on_chunk, timeout = handlers.timeout,
    max_retries = handlers.max_retries, headers = handlers.headers,
    on_done = function(resp, err)
      result = { resp, err }
      -- resume only from outside: if the coroutine is running (it polled
      -- itself), the loop below sees the result when control comes back
      if coroutine.status(co) == "suspended" then
        local ok, e = coroutine.resume(co)
        if not ok then error(e, 0) end
      end
    end,
  }, "await", 2)
  -- a resume by anyone but on_done (a foreign scheduler) just yields again
  while result == nil do coroutine.yield() end
  return result[1], result[2]
end

--- Runs `fn(...)` in a new coroutine right away (until its first await)
-- and returns the coroutine; poll then drives it (`client:spawn`). An
-- error inside it raises out of whichever call resumed it (spawn, or poll).
-- @tparam Client _ the client
-- @tparam function fn
function M.spawn(_, fn, ...)
  local co = coroutine.create(fn)
  local ok, e = coroutine.resume(co, ...)
  if not ok then error(e, 0) end
  return co
end

--- Polls until every request of this client has finished (or `timeout`
-- seconds pass; `client:drain`). Handy in scripts that mix `spawn` and `await`.
-- @tparam Client client
-- @tparam[opt] number timeout
-- @treturn integer requests still unfinished
function M.drain(client, timeout)
  local rt = runtime.of(client)
  local deadline = timeout and (core.now() + timeout)
  while rt:pending() > 0 do
    local left = deadline and (deadline - core.now()) or 1
    if left <= 0 then break end
    rt:poll(math.min(left, 1))
  end
  return rt:pending()
end

return M
