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
-- is canceled and closed, and the client stays usable.
-- @module baseten.async
local core = require("baseten.core")
local errors = require("baseten.errors")
local stream_mod = require("baseten.stream")
local client_mod = require("baseten.client")

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

local function launch(h)
  h._spec.attempt = h.attempts + 1
  h._t = h._client:_start_transfer(h._spec)
  h._phase = "waiting"
end

-- Runs on_done once; returns the callback's error, if it raised.
local function finish(h, resp, err)
  if h._finished then return nil end
  h._finished = true
  h.response, h.error = resp, err
  h._client._activity = (h._client._activity or 0) + 1
  if h._stream then h._stream:close() elseif h._t then h._t:close() end
  h._t, h._stream = nil, nil
  remove_handle(h._client, h)
  if h._on_done then
    local ok, e = pcall(h._on_done, resp, err)
    if not ok then return e end
  end
  return nil
end

local function fail_or_retry(h, err)
  err.attempts = h.attempts + 1
  if err.retryable and h.attempts < h._spec.opts.max_retries then
    h._retry_at = core.now() + client_mod.backoff(h.attempts, err.retry_after)
    h.attempts = h.attempts + 1
    h._phase = "retry"
    return nil
  end
  return finish(h, nil, err)
end

-- A streaming handle: hand every buffered chunk to on_chunk.
local function pump_stream(h)
  while true do
    local chunk, err = h._stream:_step()
    if chunk == false then return nil end
    if chunk == nil then
      if err then return finish(h, nil, err) end
      return finish(h, h._stream:snapshot(), nil)
    end
    h._client._activity = (h._client._activity or 0) + 1
    if h._on_chunk then
      local ok, e = pcall(h._on_chunk, chunk)
      if not ok then
        finish(h, nil, errors.new({ kind = "canceled", message = "on_chunk raised: " .. tostring(e) }))
        return e
      end
    end
  end
end

-- Advances one handle as far as it can go without waiting.
local function step(h)
  local c = h._client
  if h._phase == "retry" then
    if core.now() < h._retry_at then return nil end
    launch(h)
  end
  if h._phase == "waiting" then
    local t = h._t
    local status, known = t:status()
    local ready = t:state() ~= "running" or (h._spec.stream and known and status >= 200 and status < 300)
    if not ready then return nil end
    local ok_t, err = c:_judge(t, h._spec.stream)
    h._t = ok_t
    if not ok_t then return fail_or_retry(h, err) end
    if not h._spec.stream then
      local resp, derr = c:_decode_body(ok_t)
      h._t = nil
      return finish(h, resp, derr)
    end
    h._stream = stream_mod.new(c, ok_t)
    h._t = nil
    h._phase = "streaming"
  end
  if h._phase == "streaming" then return pump_stream(h) end
  return nil
end

--- Starts a request without waiting for it.
-- @tparam table req a chat request; `req.stream = true` streams
-- @tparam[opt] table handlers `on_chunk(chunk)`, `on_done(resp, err)`, and
--   the call options `timeout`, `max_retries`, `headers`
-- @treturn Handle
function Client:start(req, handlers)
  if handlers ~= nil and type(handlers) ~= "table" then error("baseten: start expects a handlers table", 2) end
  handlers = handlers or {}
  for _, k in ipairs({ "on_chunk", "on_done" }) do
    if handlers[k] ~= nil and type(handlers[k]) ~= "function" then
      error("baseten: handlers." .. k .. " must be a function", 2)
    end
  end
  local stream = type(req) == "table" and req.stream and true or false
  local body = self:_body(req, stream and { stream = true } or nil, nil, "start")
  local h = setmetatable({
    _client = self, _on_chunk = handlers.on_chunk, _on_done = handlers.on_done,
    _spec = { method = "POST", path = "/chat/completions", body = body, stream = stream,
              opts = client_mod.call_options(self, {
                timeout = handlers.timeout, max_retries = handlers.max_retries, headers = handlers.headers }) },
    attempts = 0,
  }, Handle)
  local list = handles_of(self)
  list[#list + 1] = h
  launch(h)
  return h
end

local function next_wait(list, timeout)
  local now = core.now()
  for _, h in ipairs(list) do
    if h._phase == "retry" then timeout = math.min(timeout, math.max(h._retry_at - now, 0)) end
  end
  return timeout
end

-- Steps every handle once (over a copy: finishing removes from the list).
-- Returns the first callback error, after every handle had its turn.
local function serve(list)
  local snapshot, first_err = {}, nil
  for i, h in ipairs(list) do snapshot[i] = h end
  for _, h in ipairs(snapshot) do
    local e = step(h)
    if first_err == nil then first_err = e end
  end
  return first_err
end

--- Drives every non-blocking request of this client; callbacks run here.
-- Waits at most `timeout` seconds for network activity (default 0: never
-- blocks). Returns the number of requests still unfinished.
-- @tparam[opt=0] number timeout
-- @treturn integer
function Client:poll(timeout)
  timeout = timeout or 0
  if type(timeout) ~= "number" or timeout < 0 then error("baseten: poll timeout must be a number >= 0", 2) end
  local list = handles_of(self)
  if #list == 0 then return 0 end
  -- serve what is already buffered, wait only if that was nothing
  local before = self._activity or 0
  local first_err = serve(list)
  if first_err == nil and #list > 0 then
    local wait = (self._activity or 0) ~= before and 0 or next_wait(list, timeout)
    self._engine:perform(wait)
    first_err = serve(list)
  end
  if first_err ~= nil then error(first_err, 0) end
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
  local e = finish(self, nil, errors.new({ kind = "canceled", message = "the request was canceled" }))
  if e ~= nil then error(e, 0) end
end

--- The response and error once done: `resp` or `nil, err`; nothing before.
function Handle:result()
  if not self._finished then return nil end
  return self.response, self.error
end

function Handle:__tostring()
  return "baseten.handle (" .. (self._finished and "done" or (self._phase or "new")) .. ")"
end

--- Inside a coroutine: starts the request and yields until poll finishes
-- it, then returns `resp` or `nil, err`. Outside a coroutine it is a plain
-- blocking `chat`. `handlers` may carry `on_chunk` for a streaming request.
-- @tparam table req
-- @tparam[opt] table handlers
function Client:await(req, handlers)
  local co, main = coroutine.running()
  if co == nil or main then return self:chat(req, handlers) end
  handlers = handlers or {}
  local result
  local waiting = false
  local h = self:start(req, {
    on_chunk = handlers.on_chunk, timeout = handlers.timeout,
    max_retries = handlers.max_retries, headers = handlers.headers,
    on_done = function(resp, err)
      result = { resp, err }
      if waiting then
        local ok, e = coroutine.resume(co)
        if not ok then error(e, 0) end
      end
    end,
  })
  if not h:done() then
    waiting = true
    coroutine.yield()
  end
  return result[1], result[2]
end

--- Runs `fn(...)` in a new coroutine right away (until its first await)
-- and returns the coroutine; poll then drives it. An error inside it
-- raises out of whichever call resumed it (spawn, or poll).
-- @tparam function fn
function Client:spawn(fn, ...)
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
