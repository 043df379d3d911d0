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
-- @module baseten.async
local core = require("baseten.core")
local errors = require("baseten.errors")
local stream_mod = require("baseten.stream")
local request = require("baseten.request")
local client_mod = require("baseten.client")
local partial = require("baseten.partial")

local Client = client_mod.Client
local M = {}

local Handle = {}
Handle.__index = Handle
M.Handle = Handle

local function handles_of(client)
  local list = client._handles
  if not list then
    list = {}
    client._handles = list
  end
  return list
end

local function remove_handle(client, h)
  local list = handles_of(client)
  for i = #list, 1, -1 do
    if list[i] == h then table.remove(list, i) end
  end
end

-- A batch (batch.lua) joins the handles poll drives: it has a `_step`
-- method in place of `advance`, an `_abort` in place of `complete`, and
-- sets `_phase` and `_due` (the next time it has work besides the network).
function M._track(client, h)
  local list = handles_of(client)
  list[#list + 1] = h
end
M._untrack = remove_handle

-- A callback's error, boxed so that even error(nil) or error(false) is not
-- mistaken for "no error" on its way out of poll.
local function raised(e)
  if e == nil then e = "baseten: a callback raised nil" end
  return { err = e }
end

local function launch(h)
  request.launch(h._call)
  h._phase = "waiting"
end

-- Runs on_done once; returns the callback's error (boxed), if it raised.
local function complete(h, resp, err)
  if h._finished then return nil end
  h._finished = true
  -- a request canceled mid-stream carries what arrived, as a failed one does
  if err and err.partial == nil and h._stream then err.partial = h._stream:snapshot() end
  h.response, h.error = resp, err
  h._client._activity = (h._client._activity or 0) + 1
  local t = h._call.t
  h._call.t = nil
  if h._stream then h._stream:close() elseif t then t:close() end
  h._stream = nil
  remove_handle(h._client, h)
  if h._on_done then
    local ok, e = pcall(h._on_done, resp, err)
    if not ok then return raised(e) end
  end
  return nil
end

-- A streaming handle: hand every buffered chunk to on_chunk.
local function pump_stream(h)
  while not h._finished do -- on_chunk may cancel its own request
    local chunk, err = h._stream:_read_buffered()
    if chunk == false then return nil end
    if chunk == nil then
      if err then return complete(h, nil, err) end
      return complete(h, h._stream:snapshot(), nil)
    end
    h._client._activity = (h._client._activity or 0) + 1
    if h._on_chunk then
      local ok, e = pcall(h._on_chunk, chunk)
      if not ok then
        complete(h, nil, errors.new({ kind = "canceled", message = "on_chunk raised: " .. tostring(e) }))
        return raised(e)
      end
    end
  end
  return nil
end

-- Advances one handle as far as it can go without waiting: the
-- non-blocking side of request.send (the same launch, judge and result).
local function advance(h)
  local call = h._call
  -- a callback run earlier in this poll may have canceled this request
  if h._finished then return nil end
  -- or closed the client (its retry may be due now: never launch it)
  if h._client._closed then return complete(h, nil, request.canceled(call)) end
  if h._phase == "refused" then return complete(h, nil, h._refusal) end
  if h._phase == "retry" then
    if core.now() < h._retry_at then return nil end
    launch(h)
  end
  if h._phase == "waiting" then
    if not request.settled(call) then return nil end
    local what, v = request.judge(call)
    if what == "retry" then
      h.attempts = call.attempt -- retries made so far
      h._retry_at = core.now() + v
      h._phase = "retry"
      return nil
    end
    if what == "fail" then return complete(h, nil, v) end
    local resp, err = request.result(call, v)
    if not call.stream or not resp then return complete(h, resp, err) end
    h._stream = resp
    h._phase = "streaming"
  end
  if h._phase == "streaming" then return pump_stream(h) end
  return nil
end

--- Starts a request without waiting for it.
-- @tparam table req a chat request; `req.stream = true` streams
-- @tparam[opt] table handlers `on_chunk(chunk)`, `on_done(resp, err)`, and
--   the call options `timeout`, `max_retries`, `headers`; `json = true` (or
--   `on_partial`) asks for JSON as `client:json` does, streams, calls
--   `on_partial(snapshot, path)` from `poll` after each content delta and
--   `on_done(value, resp)` (or `nil, err`) with the judged value;
--   `on_tool_call_delta(index, name, args_snapshot)` (baseten.partial)
-- @treturn Handle
function Client:start(req, handlers)
  if handlers ~= nil and type(handlers) ~= "table" then error("baseten: start expects a handlers table", 2) end
  handlers = handlers or {}
  for _, k in ipairs({ "on_chunk", "on_done", "on_partial", "on_tool_call_delta" }) do
    if handlers[k] ~= nil and type(handlers[k]) ~= "function" then
      error("baseten: handlers." .. k .. " must be a function", 2)
    end
  end
  if type(req) == "table" and (handlers.json or handlers.on_partial or handlers.on_tool_call_delta) then
    req, handlers = partial.adapt(self, req, handlers) -- JSON watched while it streams
  end
  local stream = type(req) == "table" and req.stream and true or false
  local body = self:_body(req, stream and { stream = true } or nil, nil, "start")
  local opts = client_mod.call_options(self, {
    timeout = handlers.timeout, max_retries = handlers.max_retries, headers = handlers.headers })
  local h = setmetatable({
    _client = self, _on_chunk = handlers.on_chunk, _on_done = handlers.on_done,
    _call = request.new(self, "POST", "/chat/completions", body, stream, opts),
    attempts = 0,
  }, Handle)
  local refusal = request.missing_key(h._call)
  if refusal then
    h._refusal, h._phase = refusal, "refused" -- on_done runs in the next poll
  else
    launch(h) -- first: a closed client raises here, and nothing is left pending
  end
  local list = handles_of(self)
  list[#list + 1] = h
  return h
end

local function next_wait(list, timeout)
  local now = core.now()
  for _, h in ipairs(list) do
    local due = h._phase == "retry" and h._retry_at or h._due
    if due then timeout = math.min(timeout, math.max(due - now, 0)) end
  end
  return timeout
end

local function copy(list)
  local out = {}
  for i, h in ipairs(list) do out[i] = h end
  return out
end

-- Steps every handle once (over a copy: finishing removes from the list).
-- Returns the first callback error (boxed), after every handle had its turn.
local function serve(list)
  local first_err = nil
  for _, h in ipairs(copy(list)) do
    local e
    if h._step then e = h:_step() else e = advance(h) end
    if first_err == nil then first_err = e end
  end
  return first_err
end

-- Whether some request has a transfer on the engine (not just a retry due).
local function has_transfer(list)
  for _, h in ipairs(list) do
    if h._phase ~= "retry" and h._phase ~= "refused" then return true end
  end
  return false
end

-- A closed client: every request still pending ends as canceled. Returns
-- the first callback error (boxed).
local function cancel_all(client, message)
  local first_err = nil
  for _, h in ipairs(copy(handles_of(client))) do
    local e
    if h._abort then e = h:_abort(message) else e = complete(h, nil, request.canceled(h._call, message)) end
    if first_err == nil then first_err = e end
  end
  return first_err
end

--- Drives every non-blocking request of this client; callbacks run here.
-- Waits at most `timeout` seconds for network activity (default 0: never
-- blocks), and only when nothing was ready. Returns the number of requests
-- still unfinished. On a closed client every pending request ends as
-- canceled.
-- @tparam[opt=0] number timeout
-- @treturn integer
function Client:poll(timeout)
  timeout = timeout or 0
  if type(timeout) ~= "number" or timeout < 0 then error("baseten: poll timeout must be a number >= 0", 2) end
  local list = handles_of(self)
  if #list == 0 then return 0 end
  if self._closed then
    local e = cancel_all(self, "the client was closed")
    if e ~= nil then error(e.err, 0) end
    return 0
  end
  stream_mod._sweep(self) -- transfers finishing after their stream's [DONE]
  -- Serve what is buffered; read what the sockets hold (never waiting) and
  -- serve that; wait for the network only when neither gave anything.
  -- (engine:perform(t) waits even after it read data, so it must not be
  -- the first read.)
  local before = self._activity or 0
  local first_err = serve(list)
  if first_err == nil and #list > 0 and has_transfer(list) and not self._closed then
    self._engine:perform(0)
    first_err = serve(list)
  end
  if first_err == nil and #list > 0 and (self._activity or 0) == before and not self._closed then
    local wait = next_wait(list, timeout)
    if wait > 0 then
      if has_transfer(list) then
        self._engine:perform(wait)
      else
        -- only retries are due: nothing for curl to wait on, so sleep (else
        -- drain and poll(t) loops would spin until the retry is due)
        core.sleep(wait)
      end
      first_err = serve(list)
    end
  end
  -- a callback closed the client: whatever it left pending ends here
  if self._closed and #list > 0 then
    local e = cancel_all(self, "the client was closed")
    if first_err == nil then first_err = e end
  end
  if first_err ~= nil then error(first_err.err, 0) end
  return #list
end

--- The number of requests of this client still unfinished.
function Client:pending()
  return #handles_of(self)
end

--- Whether on_done has run.
function Handle:done()
  return self._finished == true
end

--- Aborts the request at once: the transfer is closed, its connection
-- freed, and on_done runs now with `err.kind == "canceled"`. Idempotent.
-- An on_done that raises raises out of cancel.
function Handle:cancel()
  if self._finished then return end
  local e = complete(self, nil, request.canceled(self._call, "the request was canceled"))
  if e ~= nil then error(e.err, 0) end
end

--- The response and error once done: `resp` or `nil, err`; nothing before.
function Handle:result()
  if not self._finished then return nil end
  return self.response, self.error
end

function Handle:__tostring()
  return "baseten.handle (" .. (self._finished and "done" or (self._phase or "new")) .. ")"
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
-- it, then returns `resp` or `nil, err`. Outside a coroutine it is a plain
-- blocking call (`chat`; a streaming request with `on_chunk` streams and
-- calls it for each chunk). `handlers` may carry `on_chunk` for a
-- streaming request, and `timeout`, `max_retries`, `headers`.
-- @tparam table req
-- @tparam[opt] table handlers
function Client:await(req, handlers)
  local co, main = coroutine.running()
  if co == nil or main then return await_blocking(self, req, handlers) end
  handlers = handlers or {}
  local result
  self:start(req, {
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
  })
  -- a resume by anyone but on_done (a foreign scheduler) just yields again
  while result == nil do coroutine.yield() end
  return result[1], result[2]
end

--- Runs `fn(...)` in a new coroutine right away (until its first await)
-- and returns the coroutine; poll then drives it. An error inside it
-- raises out of whichever call resumed it (spawn, or poll).
-- @tparam function fn
function Client.spawn(_, fn, ...)
  local co = coroutine.create(fn)
  local ok, e = coroutine.resume(co, ...)
  if not ok then error(e, 0) end
  return co
end

--- Polls until every request of this client has finished (or `timeout`
-- seconds pass). Handy in scripts that mix `spawn` and `await`.
-- @tparam[opt] number timeout
-- @treturn integer requests still unfinished
function Client:drain(timeout)
  local deadline = timeout and (core.now() + timeout)
  while #handles_of(self) > 0 do
    local left = deadline and (deadline - core.now()) or 1
    if left <= 0 then break end
    self:poll(math.min(left, 1))
  end
  return #handles_of(self)
end

return M
