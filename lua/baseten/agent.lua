--- The tool calls of the tool-calling loop (internal): how a call is
-- answered (its handler, its arguments, the tool message), used by the
-- loop itself, baseten.toolloop (`client:run_tools`, `client:start_tools`).
--
--     local resp, messages = client:run_tools{
--       messages = {{role = "user", content = "Weather in Paris and Tokyo?"}},
--       tools = { baseten.tool{ name = "get_weather",
--         parameters = {type = "object", properties = {city = {type = "string"}}, required = {"city"}},
--         handler = function(args, call) return {city = args.city, temp = 21} end } },
--     }
--     print(resp.choices[1].message.content)
--
-- @module baseten.agent
local core = require("baseten.core")
local toolmod = require("baseten.tool")
local request = require("baseten.request")

local json = core.json
local null = json.null
local concat = table.concat

local M = {}

--- The most model calls of one `run_tools` when `req.max_rounds` is not given.
M.DEFAULT_MAX_ROUNDS = 10

--- What `run_tools` does with the reasoning of the assistant messages it
-- sends back when `req.reasoning_history` is not given: "keep" (see
-- `Client:run_tools`).
M.DEFAULT_REASONING_HISTORY = "keep"

-- The transcript as sent: with `reasoning_history = "drop"`, assistant
-- messages go without `reasoning_content` and `reasoning` (copies: the
-- transcript keeps them).
local function reasoned(m)
  return m.role == "assistant" and (m.reasoning_content ~= nil or m.reasoning ~= nil)
end
local function unreason(m)
  m.reasoning_content, m.reasoning = nil, nil
end
local function wire_messages(transcript, history)
  if history ~= "drop" then return transcript end
  return request.map_messages(transcript, reasoned, unreason)
end

local function callable(f)
  if type(f) == "function" then return true end
  local mt = getmetatable(f)
  return type(mt) == "table" and mt.__call ~= nil
end

local function quote(name)
  return '"' .. tostring(name) .. '"'
end

local function error_text(e)
  if type(e) == "table" and getmetatable(e) == nil then
    local ok, s = pcall(json.encode, e)
    if ok then return s end
  end
  return tostring(e)
end

-- name -> handler (false: a tool without one), and the names in order.
local function handlers_of(tools)
  local map, names = {}, {}
  if tools == nil then return map, names end
  for _, t in ipairs(tools) do
    local name = toolmod.name_of(t)
    if type(name) == "string" then
      local h = toolmod.handler_of(t)
      if h ~= nil and not callable(h) then return nil, "the handler of tool " .. quote(name) .. " is not a function" end
      if map[name] ~= nil then return nil, "two tools are named " .. quote(name) end
      names[#names + 1] = name
      map[name] = h or false
    end
  end
  return map, names
end

-- The decoded arguments of a call, or nil, why.
local function arguments_of(name, raw)
  if type(raw) == "table" and not json.is_array(raw) then return raw end -- servers that send an object
  if raw == nil or raw == null or (type(raw) == "string" and raw:match("^%s*$")) then
    return {} -- no arguments at all: an empty object
  end
  if type(raw) ~= "string" then
    return nil, "error: the arguments of tool " .. quote(name) .. " are not a JSON string"
  end
  local args, why = json.decode(raw, request.DECODE_OPTS) -- no null members, as in responses
  if args == null then return {} end -- "null": no arguments, as an absent string
  if args == nil then
    return nil, "error: the arguments of tool " .. quote(name) .. " are not valid JSON (" .. tostring(why)
      .. "): " .. raw:sub(1, 200)
  end
  -- a handler is given an object: `[1,2]`, `42` or `"x"` go back as an error
  if type(args) ~= "table" or json.is_array(args) then
    local what = type(args) == "table" and "an array" or ("a " .. type(args))
    return nil, "error: the arguments of tool " .. quote(name) .. " must be a JSON object, not " .. what
      .. ": " .. raw:sub(1, 200)
  end
  return args
end

-- A handler's error as the model sees it: a Lua error position
-- ("file.lua:12: ") says nothing to the model and shows our paths.
local function without_position(e)
  if type(e) ~= "string" then return e end
  return e:match("^[^\n]-:%d+: (.*)$") or e
end

-- The full error with its traceback, for the Lua side.
local function with_traceback(e)
  local text = type(e) == "string" and e or error_text(e)
  return { value = e, full = debug.traceback(text, 2) }
end

--- The first half of answering one call: the handler and the decoded
-- arguments, or nil and the tool message that answers it without a
-- handler (unknown tool, no handler, arguments that do not decode).
-- @tparam table call a tool call of an assistant message
-- @tparam table handlers tool name -> handler function (or false)
-- @tparam[opt] table names the tool names, for the unknown-tool message
-- @return handler, args, name | nil, text
function M.prepare(call, handlers, names)
  local fn = type(call) == "table" and call["function"] or nil
  local name = type(fn) == "table" and fn.name or nil
  local handler
  if type(name) == "string" then handler = handlers[name] end
  if handler == nil then
    local known = names and #names > 0 and (" (the tools are: " .. concat(names, ", ") .. ")") or ""
    return nil, "error: unknown tool " .. quote(name) .. known
  end
  if handler == false then return nil, "error: tool " .. quote(name) .. " has no handler" end
  local args, why = arguments_of(name, fn.arguments)
  if args == nil then return nil, why end
  return handler, args, name
end

--- A handler's result as the tool message's content: a string as it is,
-- any other value JSON-encoded; `nil, failure` as a failure.
function M.format(name, result, failure)
  if result == nil and failure ~= nil then
    return "error: tool " .. quote(name) .. " failed: " .. error_text(failure)
  end
  if type(result) == "string" then return result end
  local eok, text = pcall(json.encode, result)
  if not eok then
    return "error: tool " .. quote(name) .. " returned a value that cannot be encoded as JSON: " .. tostring(text)
  end
  return text
end

--- Runs a handler protected. Returns the tool message's content, or (an
-- asynchronous handler) `nil, f` where `f` is the function it returned,
-- to be called with a `resolve(result, failure)`. Raises only when
-- `on_error` raises.
function M.invoke(handler, args, call, name, on_error)
  local ok, result, failure = xpcall(function() return handler(args, call) end, with_traceback)
  if not ok then
    if on_error then on_error(name, result.full) end -- a raising on_tool_error raises out of run_tools
    return "error: tool " .. quote(name) .. " raised: " .. error_text(without_position(result.value))
  end
  if type(result) == "function" then return nil, result end
  return M.format(name, result, failure)
end

--- The content of the tool message that answers one call (see
-- `run_tools` for the rules), for a synchronous handler. Raises only
-- when `on_error` raises.
-- @tparam table call a tool call of an assistant message
-- @tparam table handlers tool name -> handler function (or false)
-- @tparam[opt] table names the tool names, for the unknown-tool message
-- @tparam[opt] function on_error `on_error(name, full)` when the handler
--   raised: `full` is the error with its position and traceback
-- @treturn string
function M.answer(call, handlers, names, on_error)
  local handler, args, name = M.prepare(call, handlers, names)
  if not handler then return args end
  local text, later = M.invoke(handler, args, call, name, on_error)
  if later then return "error: tool " .. quote(name) .. " is asynchronous: use start_tools" end
  return text
end

local function message_of(resp)
  local choice = type(resp) == "table" and type(resp.choices) == "table" and resp.choices[1] or nil
  local msg = type(choice) == "table" and choice.message or nil
  if type(msg) ~= "table" then return nil end
  return msg
end

local function calls_of(msg)
  local calls = msg.tool_calls
  if type(calls) ~= "table" or calls[1] == nil then return nil end
  return calls
end

-- The calls of the last assistant message that no tool message after it
-- answers (a transcript cut off by max_rounds), or nil.
local function unanswered(transcript)
  local answered, n = {}, #transcript
  while n > 0 and type(transcript[n]) == "table" and transcript[n].role == "tool" do
    answered[transcript[n].tool_call_id or false] = true
    n = n - 1
  end
  local msg = transcript[n]
  if type(msg) ~= "table" or msg.role ~= "assistant" then return nil end
  local pending = {}
  for _, call in ipairs(calls_of(msg) or {}) do
    if type(call) == "table" and not answered[call.id or false] then pending[#pending + 1] = call end
  end
  return pending[1] and pending or nil
end

M.message_of, M.calls_of, M.unanswered = message_of, calls_of, unanswered
M.handlers_of, M.wire_messages, M.callable = handlers_of, wire_messages, callable

return M
