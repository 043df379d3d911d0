--- What an MCP session does with each message from its server: settles
-- its requests from responses, answers the server's requests (ping,
-- elicitation, roots) and hands notifications to the caller. Used by
-- `baseten.mcp`; not a public module.
-- @module baseten.mcp_incoming
local json = require("baseten.core").json

local M = {}

local function reply(self, ops, id, result, err)
  if err then
    ops.send(self, { jsonrpc = "2.0", id = id, error = err })
  else
    ops.send(self, { jsonrpc = "2.0", id = id, result = result or json.object({}) })
  end
end

local function call_user(self, f, ...)
  local ok, a, b = pcall(f, ...)
  if not ok then
    if self.raised == nil then self.raised = { a } end
    return nil
  end
  return a, b
end

-- An elicitation/create request: the handler's answer, with the schema's
-- defaults filled in for fields it left out; decline without a handler.
local function elicit(self, params)
  if not self.on_elicit then return { action = "decline" } end
  local schema = type(params) == "table" and params.requestedSchema or {}
  local action, content = call_user(self, self.on_elicit, params and params.message, schema)
  if action ~= "accept" and action ~= "decline" and action ~= "cancel" then action = "decline" end
  if action ~= "accept" then return { action = action } end
  local out = {}
  for k, v in pairs(type(content) == "table" and content or {}) do out[k] = v end
  for k, prop in pairs(type(schema) == "table" and type(schema.properties) == "table" and schema.properties or {}) do
    if out[k] == nil and type(prop) == "table" and prop.default ~= nil then out[k] = prop.default end
  end
  return { action = "accept", content = json.object(out) }
end

local function server_request(self, msg, ops)
  local m, id = msg.method, msg.id
  if m == "ping" then return reply(self, ops, id) end
  if m == "elicitation/create" then return reply(self, ops, id, elicit(self, msg.params)) end
  if m == "roots/list" and self.roots then return reply(self, ops, id, { roots = json.array(self.roots) }) end
  reply(self, ops, id, nil, { code = -32601, message = "method not found: " .. tostring(m) })
end

local function notification(self, msg)
  local m, params = msg.method, msg.params
  if m == "notifications/progress" and type(params) == "table" then
    local r = self.progress[params.progressToken]
    if r and r.on_progress then
      call_user(self, r.on_progress, params.progress, params.total, params.message)
    end
  elseif m == "notifications/tools/list_changed" then
    self.tool_list = nil -- session:tools() lists again
  elseif m == "notifications/cancelled" and type(params) == "table" then
    return -- the server gave up on one of its requests to us: none are long
  end
  if self.on_notification then call_user(self, self.on_notification, m, params) end
end

local function response(self, msg, ops)
  local r = self.pending[msg.id]
  if r == nil then
    if self.canceled[msg.id] then return end -- late answer to a canceled call
    return ops.fail_all(self, ops.mcp_error("protocol violation: a response to unknown request id "
      .. tostring(msg.id)))
  end
  if type(msg.error) == "table" then
    local e = msg.error
    ops.settle(self, r, nil, ops.mcp_error(tostring(e.message or "JSON-RPC error"),
                                           { code = e.code, data = e.data, method = r.method }))
  elseif msg.result ~= nil then
    ops.settle(self, r, msg.result)
  else
    ops.settle(self, r, nil, ops.mcp_error("protocol violation: a response with neither result nor error"))
  end
end

--- One decoded message (or batch) from the server, for `session`.
-- `ops`: the session module's `settle`, `fail_all`, `send`, `mcp_error`.
function M.deliver(self, msg, ops)
  if msg[1] ~= nil then -- a JSON-RPC batch (2025-03-26)
    for _, m in ipairs(msg) do if type(m) == "table" then M.deliver(self, m, ops) end end
    return
  end
  if msg.expired then -- HTTP 404: the session expired; step initializes again once it is out
    self.expired = self.expired or {}
    for _, id in ipairs(msg.ids or {}) do self.expired[#self.expired + 1] = id end
    return
  end
  if msg.fault then
    for _, id in ipairs(msg.ids or {}) do
      local r = self.pending[id]
      if r then ops.settle(self, r, nil, msg.fault) end
    end
    return
  end
  if type(msg.method) == "string" then
    if msg.id ~= nil then server_request(self, msg, ops) else notification(self, msg) end
  elseif msg.id ~= nil then
    response(self, msg, ops)
  else
    ops.fail_all(self, ops.mcp_error("protocol violation: a message that is neither request, response"
      .. " nor notification"))
  end
end

return M
