--- Tasks: what `client:poll` drives. A request started with `client:start`
-- (baseten.async), a batch (baseten.batch), and any later non-blocking
-- feature (a tool loop, an embedding batch, an MCP call) is a task.
--
-- The interface `poll` (baseten.runtime) uses, and nothing else:
--
--     task:step()        -- advances as far as it can without waiting; runs
--                        -- callbacks; returns a boxed callback error
--                        -- `{err = e}` or nil. A step that raises is a bug:
--                        -- poll aborts that task and raises it once.
--     task:abort(msg)    -- ends the task now as `canceled` (its transfers
--                        -- closed); returns a boxed callback error or nil
--     task:next_due()    -- when (core.now() seconds) it next has work
--                        -- besides the network (a retry, a timer), or nil
--     task:on_network()  -- whether a transfer of it is on the engine
--     task:done()        -- whether it has ended
--     task:wait_fds()    -- optional: file descriptors (flat {fd, events,
--                        -- ...}) poll's wait also waits on (an MCP call:
--                        -- a child's pipes, its own engine's sockets)
--
-- What users call, given by the base class:
--
--     task:done()        -- true once it ended (on_done has run)
--     task:cancel()      -- abort; on_done gets err.kind == "canceled";
--                        -- an on_done that raises raises out of cancel
--     task:result()      -- its two results once done, nothing before
--
-- A task class sets `Task` as the fallback of its methods
-- (`setmetatable(Class, {__index = task.Task})`), makes its objects with
-- `task.init(obj, client, on_done)` (which adds them to the client's
-- poll), implements `step`, `abort`, `next_due` and `on_network`, and ends
-- with `self:finish(a, b)`: once only, it records `a, b` (as `result()`
-- gives them), leaves the poll and calls `on_done(a, b)`, returning its
-- error boxed.
-- A task made on a closed client ends as canceled at the next poll.
--
-- A sketch of a task that makes one Call after another (the shape of a
-- non-blocking tool loop; async.lua's Handle is the one-call case):
--
--     local Loop = setmetatable({}, { __index = task.Task })
--     Loop.__index = Loop
--     function M.start_loop(client, req, opts)       -- Client.start_loop = M.start_loop
--       local self = task.init(setmetatable({}, Loop), client, opts.on_done)
--       self.call = request.new(client, "POST", "/chat/completions", body, false, copts)
--       return self                                  -- step launches it
--     end
--     function Loop:step()
--       local call = self.call
--       if self.rt:closed() then return self:abort("the client was closed") end
--       if not call:on_network() then                -- new, or a retry waiting
--         if call:due() and core.now() < call:due() then return nil end
--         call:launch()
--       end
--       if not call:settled() then return nil end
--       local what, v = call:judge()
--       if what == "retry" then return nil end       -- call:due() says when
--       if what == "fail" then return self:finish(nil, v) end
--       local resp, err = call:result(v)
--       -- run the tools (a raising callback: return task.raised(e) after
--       -- self:abort(...)), then self.call = request.new(...) for the next round,
--       -- or return self:finish(resp, transcript)
--     end
--     function Loop:abort(msg) return self:finish(nil, self.call:cancel(msg)) end
--     function Loop:next_due() return self.call:due() end
--     function Loop:on_network() return self.call:on_network() end
-- @module baseten.task
local runtime = require("baseten.runtime")

local M = {}

local Task = {}
M.Task = Task

--- A callback's error, boxed so that even error(nil) or error(false) is not
-- mistaken for "no error" on its way out of poll.
function M.raised(e)
  if e == nil then e = "baseten: a callback raised nil" end
  return { err = e }
end

--- Calls `f(...)` protected: nil when it returned, its error boxed when it raised.
function M.call(f, ...)
  local ok, e = pcall(f, ...)
  if ok then return nil end
  return M.raised(e)
end

--- Sets up `obj` as a task of `client` and adds it to the client's poll.
-- @tparam table obj the new task (its class already set)
-- @tparam table client
-- @tparam[opt] function on_done called once with the task's two results
-- @tparam[opt] boolean unpolled true: poll does not drive it (a blocking
--   call drives it itself, e.g. `client:batch`)
-- @return obj
function M.init(obj, client, on_done, unpolled)
  obj.client = client
  obj.rt = runtime.of(client)
  obj.on_done = on_done
  obj.ended = false
  if not unpolled then obj.rt:add(obj) end
  return obj
end

--- Whether the task has ended.
function Task:done()
  return self.ended
end

--- Ends the task once: records `a, b`, leaves the poll, runs on_done(a, b).
-- @return a boxed error when on_done raised, else nil
function Task:finish(a, b)
  if self.ended then return nil end
  self.ended = true
  self.first, self.second = a, b
  self.rt:remove(self)
  self.rt:touch()
  local f = self.on_done
  if f then return M.call(f, a, b) end
  return nil
end

--- Ends the task now as canceled (see `abort`). Idempotent. A callback
-- that raises raises out of cancel.
function Task:cancel()
  if self.ended then return end
  local e = self:abort("the request was canceled")
  if e ~= nil then error(e.err, 0) end
end

--- The task's two results once it ended (`resp, err` for a request;
-- `resps, errs` for a batch); nothing before.
function Task:result()
  if not self.ended then return nil end
  return self.first, self.second
end

return M
