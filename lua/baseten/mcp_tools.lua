--- An MCP session's tools as `run_tools` entries (`session:tools(opts)`).
--
-- Each entry is a `baseten.tool` whose handler calls the server. The text
-- of the result goes back to the model; a result with `isError` becomes a
-- tool error (`return nil, text`). Tool output is untrusted text: it is
-- never run nor used as a path, and it is cut to `max_output` bytes (with a
-- note saying so) before it reaches the model.
--
-- With `async = true` each handler is asynchronous (see `start_tools`): it
-- returns a function that starts the call with `session:start_call` and
-- resolves with its text when the answer comes, so a tool loop driven by
-- `client:poll` never waits on the server (connect the session with
-- `client = client`, so that the client's poll drives its calls; a
-- blocking `run_tools` polls them too while it waits).
-- @module baseten.mcp_tools
local core = require("baseten.core")
local toolmod = require("baseten.tool")

local json = core.json
local M = {}

--- The most bytes of one tool result sent to the model by default.
M.MAX_OUTPUT = 32 * 1024

-- Cuts text to max bytes (not inside a UTF-8 sequence) with a note.
local function limit(text, max)
  if #text <= max then return text end
  local cut = max
  while cut > 0 and (text:byte(cut + 1) or 0) >= 0x80 and (text:byte(cut + 1) or 0) < 0xC0 do cut = cut - 1 end
  return text:sub(1, cut) .. ("\n[output cut: %d of %d bytes shown]"):format(cut, #text)
end
M.limit = limit

--- The text of a tools/call result, for the model: text items as they
-- are, other items as a short bracketed note; structuredContent when
-- there is no text.
function M.result_text(result)
  local parts = {}
  for _, c in ipairs(type(result) == "table" and type(result.content) == "table" and result.content or {}) do
    if type(c) == "table" then
      if c.type == "text" and type(c.text) == "string" then
        parts[#parts + 1] = c.text
      elseif c.type == "resource" and type(c.resource) == "table" and type(c.resource.text) == "string" then
        parts[#parts + 1] = c.resource.text
      elseif c.type == "resource_link" or c.type == "resource" then
        local uri = c.uri or (type(c.resource) == "table" and c.resource.uri)
        parts[#parts + 1] = "[resource: " .. tostring(uri) .. "]"
      else
        parts[#parts + 1] = "[" .. tostring(c.type) .. (c.mimeType and (" " .. tostring(c.mimeType)) or "") .. "]"
      end
    end
  end
  if parts[1] == nil and type(result) == "table" and result.structuredContent ~= nil then
    local ok, s = pcall(json.encode, result.structuredContent)
    if ok then parts[1] = s end
  end
  return table.concat(parts, "\n")
end

-- A name the OpenAI tool schema accepts: ^[a-zA-Z0-9_-]{1,64}$.
local function wire_name(name)
  local n = name:gsub("[^%w_%-]", "_")
  return n:sub(1, 64)
end

local function selected(opts, name)
  if opts.only then
    local hit = false
    for _, n in ipairs(opts.only) do hit = hit or n == name end
    if not hit then return false end
  end
  return opts.filter == nil or opts.filter(name) and true or false
end

--- Checks the options of `session:tools`; raises `level` frames up.
-- @return the output limit in bytes
function M.check(opts, level)
  level = (level or 1) + 1
  if type(opts) ~= "table" then error("mcp: tools expects a table of options", level) end
  if opts.only ~= nil and type(opts.only) ~= "table" then error("mcp: tools: only must be an array of names", level) end
  if opts.filter ~= nil and type(opts.filter) ~= "function" then
    error("mcp: tools: filter must be a function", level)
  end
  if opts.prefix ~= nil and type(opts.prefix) ~= "string" then error("mcp: tools: prefix must be a string", level) end
  local max = opts.max_output or M.MAX_OUTPUT
  if type(max) ~= "number" or max < 1 then error("mcp: tools: max_output must be a positive number", level) end
  if opts.timeout ~= nil and (type(opts.timeout) ~= "number" or opts.timeout <= 0) then
    error("mcp: tools: timeout must be a positive number", level)
  end
  if opts.async ~= nil and type(opts.async) ~= "boolean" then error("mcp: tools: async must be a boolean", level) end
  return max
end

-- What a handler gives for a tools/call answer: text, or nil and the
-- tool error.
local function answer_of(result, err, max)
  if not result then return nil, limit(tostring(err), max) end
  local text = limit(M.result_text(result), max)
  if result.isError then return nil, text end
  return text
end

--- The entries for `session`'s `list` (see the module comment). `opts`:
-- `only` (array of names), `filter(name) -> bool`, `prefix` (put before
-- every name), `max_output` (bytes), `timeout` (per call), `async`
-- (asynchronous handlers, for `start_tools`).
function M.entries(session, list, opts)
  opts = opts or {}
  local max = M.check(opts, 3)
  local out = {}
  for _, t in ipairs(list) do
    if type(t) == "table" and type(t.name) == "string" and selected(opts, t.name) then
      local name = t.name
      local schema = type(t.inputSchema) == "table" and t.inputSchema or { type = "object" }
      if schema.type == "object" and schema.properties == nil then
        local copy = {}
        for k, v in pairs(schema) do copy[k] = v end
        copy.properties = json.object({})
        schema = copy
      end
      out[#out + 1] = toolmod.tool{
        name = wire_name((opts.prefix or "") .. name), description = t.description, parameters = schema,
        handler = function(args)
          if not opts.async then
            local result, err = session:call_tool(name, args, { timeout = opts.timeout })
            return answer_of(result, err, max)
          end
          return function(resolve)
            session:start_call(name, args, { timeout = opts.timeout, on_done = function(result, err)
              resolve(answer_of(result, err, max))
            end })
          end
        end }
    end
  end
  return out
end

return M
