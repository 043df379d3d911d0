--- An MCP call as a task of a client (baseten.task): `client:poll` drives
-- the calls of a session connected with `client = client`, and its wait
-- waits on the session's pipes or sockets too (`wait_fds`). Used by
-- `baseten.mcp`; not public.
-- @module baseten.mcp_track
local core = require("baseten.core")
local task = require("baseten.task")

local now = core.now
local M = {}

local Call = setmetatable({}, { __index = task.Task })
Call.__index = Call

--- Puts request `r` of `session` on its client's poll; `abort(message)`
-- cancels it. The request's own on_done runs from the session's poll.
-- @return the task
function M.track(session, r, abort)
  return task.init(setmetatable({ session = session, r = r, abort_fn = abort }, Call), session.client)
end

-- Reads the session without waiting; notes what the next wait waits on.
function Call:step()
  local s, r = self.session, self.r
  if not r.finished then
    local ok, e = pcall(s.poll, s, 0) -- a raising on_done raises out of poll
    if not ok then
      self:finish(nil, nil)
      return task.raised(e)
    end
  end
  if r.finished or not s.transport then return self:finish(r.result, r.err) end
  local fds, due = s.transport:wait_on()
  self.fds = fds
  self.due = now() + math.max(0, math.min(due or math.huge, r.deadline - now()))
  return nil
end

function Call:abort(message)
  self.abort_fn(message)
  return self:finish(nil, nil)
end

function Call:next_due() return self.due end

--- Whether poll's wait should wait on the network: it then waits on
-- `wait_fds` as well (Windows pipes have none: poll sleeps until `next_due`).
function Call:on_network() return self.fds ~= nil and self.fds[1] ~= nil end

--- The file descriptors (flat `{fd, events, ...}`) poll's wait also waits on.
function Call:wait_fds() return self.fds end

return M
