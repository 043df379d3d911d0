--- An MCP call among the handles `client:poll` drives (a session
-- connected with `client = client`). Used by `baseten.mcp`; not public.
-- @module baseten.mcp_track
local core = require("baseten.core")
local async = require("baseten.async")

local now = core.now
local M = {}

-- Puts call r (of session self) among the handles `client:poll` drives (async.lua's hook
-- for handles that are not requests: `_step`, `_abort`, `_phase`, `_due`,
-- `_fds`): each poll reads the session without waiting, and its wait
-- waits on the session's pipes or sockets too.
function M.track(self, r, abort)
  local client, h = self.client, { _phase = "waiting" }
  function h._step()
    if not r.finished then
      local ok, e = pcall(self.poll, self, 0)
      if not ok then
        async._untrack(client, h)
        return { err = e }
      end
    end
    if r.finished or not self.transport then
      async._untrack(client, h)
      return nil
    end
    local fds, due = self.transport:wait_on()
    h.fds = fds
    h._due = now() + math.max(0, math.min(due or math.huge, r.deadline - now()))
    h._phase = fds[1] and "waiting" or "retry"
    return nil
  end
  function h._fds() return h.fds or {} end
  function h._abort(message)
    abort(message)
    async._untrack(client, h)
    return nil
  end
  async._track(client, h)
end

return M
