--- Chat request bodies (internal): checks a chat request and encodes it
-- as the JSON body every chat call sends. `baseten.request` re-exports
-- these functions (`request.chat_body`, `request.messages_problem`,
-- `request.map_messages`).
-- @module baseten.chatbody
local core = require("baseten.core")
local toolmod = require("baseten.tool")

local json = core.json
local M = {}

-- A field the API defines as an array: an empty plain table goes as [].
local function as_array(v)
  if type(v) == "table" and next(v) == nil and getmetatable(v) == nil then return json.array() end
  return v
end

--- A new array of the messages in which each message table that
-- `needs(m)` is a copy changed by `change(copy)`; the others, and the
-- caller's tables, are left as they are.
function M.map_messages(list, needs, change)
  local out = json.array()
  for i, m in ipairs(list) do
    if type(m) == "table" and needs(m) then
      local copy = {}
      for k, v in pairs(m) do copy[k] = v end
      change(copy)
      m = copy
    end
    out[i] = m
  end
  return out
end

-- The messages with their array fields (`content` parts, `tool_calls`) marked.
local function unmarked(m)
  return as_array(m.content) ~= m.content or as_array(m.tool_calls) ~= m.tool_calls
end
local function mark(m)
  m.content, m.tool_calls = as_array(m.content), as_array(m.tool_calls)
end
local function messages_array(list)
  return M.map_messages(list, unmarked, mark)
end

--- Checks `messages` of a request: a non-empty array of message tables.
-- One message table given in place of the array (`messages = {role =
-- "user", ...}`) is the usual slip. Returns nil when it is right, else
-- what is wrong.
function M.messages_problem(msgs)
  if type(msgs) ~= "table" then return "must be a non-empty array of messages, not a " .. type(msgs) end
  local n = #msgs
  if n == 0 then
    if next(msgs) == nil then return "must be a non-empty array of messages (it is empty)" end
    return "must be an array of messages (it is a table with keys such as "
      .. tostring(next(msgs)) .. ": one message must be wrapped in {...})"
  end
  local keys = 0
  for _ in pairs(msgs) do keys = keys + 1 end
  for i = 1, n do
    if type(msgs[i]) ~= "table" then return "must hold message tables ([" .. i .. "] is a " .. type(msgs[i]) .. ")" end
  end
  if keys ~= n then return "must be an array of messages (it has keys besides 1.." .. n .. ")" end
  return nil
end

--- Checks a chat request and makes the JSON body. Raises, at `level`
-- counted from the caller of `chat_body`, on a plainly wrong request.
-- `over` sets keys (e.g. `stream = true`); `strip` names client-only keys
-- that must not reach the server.
-- @tparam Client client
-- @tparam table req
-- @tparam[opt] table over
-- @tparam[opt] table strip
-- @tparam string where the call's name, for messages
-- @tparam integer level
-- @treturn string the body
function M.chat_body(client, req, over, strip, where, level)
  level = level + 1
  if type(req) ~= "table" then error("baseten: " .. where .. " expects a request table", level) end
  local problem = M.messages_problem(req.messages)
  if problem then error("baseten: " .. where .. ": req.messages " .. problem, level) end
  -- made with room for the usual keys (named as nil: Lua 5.4 sizes the
  -- table by the fields named), so copying a small request never rehashes
  local body = { model = nil, messages = nil, stream = nil, max_tokens = nil }
  for k, v in pairs(req) do
    if not (strip and strip[k]) then body[k] = v end
  end
  if body.model == nil then body.model = client.model end
  if body.model == nil then
    error("baseten: " .. where .. ": req.model is required (or set model on the client)", level)
  end
  if type(body.tools) == "table" then
    local tools = json.array()
    for i, t in ipairs(body.tools) do tools[i] = toolmod.wire_shape(t) end
    body.tools = tools
  end
  if over then
    for k, v in pairs(over) do body[k] = v end
  end
  if body.stream == true and body.stream_options == nil then body.stream_options = { include_usage = true } end
  body.stop = as_array(body.stop)
  body.messages = messages_array(body.messages)
  local ok, text = pcall(json.encode, body)
  if not ok then error("baseten: " .. where .. ": the request cannot be encoded as JSON: " .. tostring(text), level) end
  return text
end


return M
