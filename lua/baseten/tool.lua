--- Tool values: `baseten.tool{name, description, parameters, handler}`.
-- A tool serializes to the OpenAI tool shape with its handler left out, in
-- any request (`chat`, `stream`, `run_tools`) and through `json.encode`.
-- @module baseten.tool
local json = require("baseten.core").json

local M = {}

local Tool = {}
Tool.__index = Tool
M.Tool = Tool

--- The OpenAI shape of any tool value, without handlers.
-- Accepts a `baseten.tool` value, an OpenAI-shaped table
-- `{type = "function", ["function"] = {...}}` (a `handler` field on it or on
-- its function table is dropped), or anything else (returned unchanged).
-- @param tool
-- @return the table to send
function M.wire_shape(tool)
  if type(tool) ~= "table" then return tool end
  local fn = tool["function"]
  local has_handler = tool.handler ~= nil or (type(fn) == "table" and fn.handler ~= nil)
  if getmetatable(tool) ~= Tool and not has_handler then return tool end
  local out = {}
  for k, v in pairs(tool) do
    if k ~= "handler" then out[k] = v end
  end
  if type(fn) == "table" and fn.handler ~= nil then
    local f = {}
    for k, v in pairs(fn) do
      if k ~= "handler" then f[k] = v end
    end
    out["function"] = f
  end
  return out
end

Tool.__tojson = M.wire_shape

--- The handler function of a tool value, or nil.
function M.handler_of(tool)
  if type(tool) ~= "table" then return nil end
  if tool.handler ~= nil then return tool.handler end
  local fn = tool["function"]
  return type(fn) == "table" and fn.handler or nil
end

--- The function name of a tool value, or nil.
function M.name_of(tool)
  local fn = type(tool) == "table" and tool["function"]
  return type(fn) == "table" and fn.name or nil
end

--- Makes a tool.
-- @tparam table def `name` (string, required), `description`, `parameters`
--   (a JSON Schema table; default an empty object schema), `handler`
--   (function(args, call), optional), `strict` (boolean, optional)
-- @treturn table an OpenAI-shaped tool `{type = "function", ["function"] = {...}, handler = f}`
function M.tool(def)
  if type(def) ~= "table" then error("baseten.tool: expected a table", 2) end
  if type(def.name) ~= "string" or def.name == "" then
    error("baseten.tool: name must be a non-empty string", 2)
  end
  if def.handler ~= nil and type(def.handler) ~= "function"
      and not (getmetatable(def.handler) or {}).__call then
    error("baseten.tool: handler must be a function", 2)
  end
  local params = def.parameters
  if params == nil then params = { type = "object", properties = json.object({}) } end
  if type(params) ~= "table" then error("baseten.tool: parameters must be a table", 2) end
  local fn = { name = def.name, description = def.description, parameters = params, strict = def.strict }
  return setmetatable({ type = "function", ["function"] = fn, handler = def.handler }, Tool)
end

return M
