--- The tool-calling loop: `client:run_tools(req)`.
--
--     local resp, messages = client:run_tools{
--       messages = {{role = "user", content = "Weather in Paris and Tokyo?"}},
--       tools = { baseten.tool{ name = "get_weather",
--         parameters = {type = "object", properties = {city = {type = "string"}}, required = {"city"}},
--         handler = function(args, call) return {city = args.city, temp = 21} end } },
--     }
--     print(resp.choices[1].message.content)
--
-- `M.run_tools(client, req, opts)` is the client's `run_tools` method
-- (baseten.client puts it in the method table).
-- @module baseten.agent
local core = require("baseten.core")
local errors = require("baseten.errors")
local options = require("baseten.options")
local runtime = require("baseten.runtime")
local toolmod = require("baseten.tool")
local request = require("baseten.request")
local stream_mod = require("baseten.stream")
local partial = require("baseten.partial")

local json = core.json
local null = json.null
local concat = table.concat

local M = {}

--- The most model calls of one `run_tools` when `req.max_rounds` is not given.
M.DEFAULT_MAX_ROUNDS = 10

-- Client-side keys of a run_tools request, never sent to the server.
-- run_tools' request key of baseten.partial (tool-call arguments as they stream).
local DELTA_OPTS = { on_tool_call_delta = "func" }

local STRIP = { max_rounds = true, on_content = true, on_reasoning = true, on_tool_call = true,
                on_tool_error = true, reasoning_history = true, confirm = true,
                on_tool_call_delta = true }

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

--- The content of the tool message that answers one call (see
-- `run_tools` for the rules). Raises only when `on_error` raises.
-- @tparam table call a tool call of an assistant message
-- @tparam table handlers tool name -> handler function (or false)
-- @tparam[opt] table names the tool names, for the unknown-tool message
-- @tparam[opt] function on_error `on_error(name, full)` when the handler
--   raised: `full` is the error with its position and traceback
-- @treturn string
function M.answer(call, handlers, names, on_error)
  local fn = type(call) == "table" and call["function"] or nil
  local name = type(fn) == "table" and fn.name or nil
  local handler
  if type(name) == "string" then handler = handlers[name] end
  if handler == nil then
    local known = names and #names > 0 and (" (the tools are: " .. concat(names, ", ") .. ")") or ""
    return "error: unknown tool " .. quote(name) .. known
  end
  if handler == false then return "error: tool " .. quote(name) .. " has no handler" end
  local args, why = arguments_of(name, fn.arguments)
  if args == nil then return why end
  local ok, result, failure = xpcall(function() return handler(args, call) end, with_traceback)
  if not ok then
    if on_error then on_error(name, result.full) end -- a raising on_tool_error raises out of run_tools
    return "error: tool " .. quote(name) .. " raised: " .. error_text(without_position(result.value))
  end
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

--- `req.confirm(name, args)` before a call: nil when it allows the call,
-- else the tool message that tells the model it was refused (a tool
-- error). Asked only for calls whose tool has a handler and whose
-- arguments decode; a confirm that raises raises out of `run_tools`.
-- @tparam table call a tool call
-- @tparam table handlers as `answer`'s
-- @tparam function confirm returns true to allow; false (or nil) and an
--   optional reason to refuse
-- @treturn[opt] string the refusal
function M.refusal(call, handlers, confirm)
  local fn = type(call) == "table" and call["function"] or nil
  local name = type(fn) == "table" and fn.name or nil
  if type(name) ~= "string" or not handlers[name] then return nil end
  local args = arguments_of(name, fn.arguments)
  if args == nil then return nil end
  local yes, why = confirm(name, args)
  if yes then return nil end
  return "error: the user refused to run tool " .. quote(name) .. (why ~= nil and (": " .. tostring(why)) or "")
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

-- Calls `f(...)`; a raise closes the stream `s` (if any) and raises on.
local function callback(f, s, ...)
  local ok, e = pcall(f, ...)
  if not ok then
    if s then s:close() end
    error(e, 0)
  end
end

-- One model call with the transcript so far: the response, or nil, err.
local function ask(self, req, transcript, copts)
  local stream = req.stream and true or false
  local over = { messages = wire_messages(transcript, req.reasoning_history) }
  if stream then over.stream = true end
  local body = request.chat_body(self, req, over, STRIP, "run_tools", 3)
  local s, err = request.new(self, "POST", "/chat/completions", body, stream, copts):run()
  if not s then return nil, err end
  local on_content, on_reasoning = req.on_content, req.on_reasoning
  local tracker = stream and req.on_tool_call_delta and partial.tracker(req.on_tool_call_delta)
  if not stream then
    local resp = s
    local msg = resp and message_of(resp)
    if on_reasoning and msg and type(msg.reasoning_content) == "string" and msg.reasoning_content ~= "" then
      callback(on_reasoning, nil, msg.reasoning_content)
    end
    if on_content and msg and type(msg.content) == "string" and msg.content ~= "" then
      callback(on_content, nil, msg.content)
    end
    return resp
  end
  while true do
    local chunk, cerr = s:next()
    if cerr then
      s:close()
      return nil, cerr
    end
    if chunk == nil then break end
    if tracker then callback(tracker.chunk, s, tracker, chunk) end
    local pieces = (on_content or on_reasoning) and stream_mod.pieces_of(chunk)
    if pieces then
      for i = 1, #pieces, 2 do
        local kind = pieces[i + 1]
        if kind == "content" and on_content then callback(on_content, s, pieces[i])
        elseif kind == "reasoning" and on_reasoning then callback(on_reasoning, s, pieces[i]) end
      end
    end
  end
  local resp = s:snapshot()
  s:close()
  -- an accumulated message as a non-streamed one: `index` is a delta field
  local msg = message_of(resp)
  for _, call in ipairs(msg and calls_of(msg) or {}) do call.index = nil end
  return resp
end

-- Answers `calls` (in order), appending tool messages to the transcript.
-- Round 0 answers calls of the caller's messages, which are left as they are.
local function run_calls(ctx, calls, round)
  for i, call in ipairs(calls) do
    if type(call) == "table" then
      if round > 0 and (type(call.id) ~= "string" or call.id == "") then call.id = "call_" .. round .. "_" .. i end
      if ctx.on_tool_call then callback(ctx.on_tool_call, nil, call) end
      local text = ctx.confirm and M.refusal(call, ctx.handlers, ctx.confirm)
        or M.answer(call, ctx.handlers, ctx.names, ctx.on_error)
      local t = ctx.transcript
      t[#t + 1] = { role = "tool", tool_call_id = call.id, content = text }
    end
  end
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

--- Runs the tool-calling loop: asks the model, runs the tools it calls,
-- sends their results back, and again, until the model answers without
-- tool calls.
--
-- Each round makes one model call. For each tool call of the answer, in
-- order (parallel calls run one after the other): `on_tool_call(call)`, then
-- the tool's handler `handler(args, call)` with the decoded JSON arguments
-- (empty or absent arguments give `{}`; a null member is an absent key, as
-- in responses) and the call table. The result goes
-- back as `{role = "tool", tool_call_id = call.id, content = text}` (no
-- `name`: OpenAI does not need it, vLLM ignores it): a string result as it
-- is, any other value JSON-encoded (so `nil` gives `"null"`). A handler may
-- also fail the Lua way, `return nil, "why"`. These are reported to the
-- model as the tool message's content, and the loop goes on:
--
--   - a handler that raises: `error: tool "x" raised: <error>`
--   - `return nil, why`: `error: tool "x" failed: <why>`
--   - an unknown tool: `error: unknown tool "x" (the tools are: a, b)`
--   - a tool with no handler: `error: tool "x" has no handler`
--   - arguments that do not decode: `error: the arguments of tool "x" are not valid JSON (...): <args>`
--   - arguments that are not a JSON object (`[1,2]`, `42`): `error: the arguments of tool "x" must
--     be a JSON object, not an array: <args>` (the handler is not called)
--   - a result that cannot be JSON-encoded: `error: tool "x" returned a value that cannot be encoded as JSON: ...`
--
-- Tools: `baseten.tool{...}` values, or OpenAI-shaped tables
-- (`{type = "function", ["function"] = {...}}`) with a `handler` field (on
-- the tool or on its function table). Handlers are never sent. Every other
-- request key (`tool_choice`, `parallel_tool_calls`, ...) is sent unchanged
-- in every round; note that a `tool_choice` that forces a call forces one
-- in every round, until `max_rounds`.
--
-- The transcript: a new array that starts with the caller's messages (the
-- caller's table is not changed) and grows by each assistant message, as
-- the model returned it (for a streamed round, the accumulated message, its
-- tool calls without the delta field `index`), and each tool message. A
-- tool call of the model without an id is given one (`call_<round>_<n>`)
-- in place, in the response and the transcript. Tool calls left
-- unanswered at the end of `req.messages` (a transcript that stopped at
-- `max_rounds`) are run first, so `run_tools{messages = messages, ...}`
-- continues such a loop.
--
-- `req.max_rounds` (default 10) bounds the model calls. When the last one
-- still asks for tools, the loop stops without running them and returns that
-- response (its `finish_reason` is `"tool_calls"`) and the transcript, which
-- ends with that assistant message.
--
-- `req.stream = true` streams each round; `req.on_content(piece)` gets each
-- content delta as it arrives and `req.on_reasoning(piece)` each reasoning
-- delta (without streaming: each round's whole content and reasoning).
-- Each assistant message of the transcript has `reasoning_content` when the
-- model reasoned, whichever spelling the server used.
--
-- `req.reasoning_history` says what the loop sends back of that reasoning:
-- `"keep"` (the default, `M.DEFAULT_REASONING_HISTORY`) sends each
-- assistant message as the model returned it, reasoning included;
-- `"drop"` sends assistant messages without `reasoning_content` and
-- `reasoning` (the transcript returned keeps them). Keep is the default
-- because the loop is one turn of the conversation: models that think
-- between tool calls (gpt-oss, Kimi and GLM with thinking on) expect their
-- reasoning back within the turn, and some servers reject a tool-loop
-- history without it; servers that do not know the field ignore it. Use
-- "drop" for a server that rejects reasoning in the request (DeepSeek's own
-- API does, for R1).
-- A handler that raises: the model gets its message without the
-- Lua position ("file.lua:12: "); `req.on_tool_error(name, full)` and the
-- log (event `tool_error`) get the full text with its traceback. An
-- `on_tool_error` that raises raises out of `run_tools`, as every callback.
-- `req.confirm(name, args)` is asked before each call (its arguments
-- decoded): returning false (or nil), optionally with a reason, refuses
-- it, and the model gets `error: the user refused to run tool "x": <reason>`
-- as the tool message (`baseten.mcp` tools from servers you did not write).
-- `max_rounds`, `on_content`, `on_reasoning`, `on_tool_call`, `on_tool_error`,
-- `confirm` and `reasoning_history` are never sent. A
-- callback that raises raises out of `run_tools` (the transfer closed).
-- Only the first choice of each response is used.
-- @tparam table req the request, as OpenAI's Chat Completions JSON, plus
--   `max_rounds`, `on_content`, `on_reasoning`, `on_tool_call`, `on_tool_error`,
--   `reasoning_history`
-- @tparam[opt] table opts `timeout`, `max_retries`, `headers` for each call
-- @treturn table the last response, or nil
-- @treturn table the transcript (`messages`), or the error: the error of the
--   round that failed, with `err.messages` the transcript so far
function M.run_tools(self, req, opts)
  if type(req) ~= "table" then error("baseten: run_tools expects a request table", 2) end
  local problem = request.messages_problem(req.messages)
  if problem then error("baseten: run_tools: req.messages " .. problem, 2) end
  if req.model == nil and self.model == nil then
    error("baseten: run_tools: req.model is required (or set model on the client)", 2)
  end
  options.check(options.RUN_TOOLS, req, "baseten: run_tools", 2, "req.")
  options.check(DELTA_OPTS, req, "baseten: run_tools", 2, "req.")
  local max_rounds = req.max_rounds or M.DEFAULT_MAX_ROUNDS
  local handlers, names = handlers_of(req.tools)
  if not handlers then error("baseten: run_tools: " .. names, 2) end
  local copts = options.call(self, opts, "run_tools", 2)

  local transcript = json.array()
  for i, m in ipairs(req.messages) do transcript[i] = m end
  local on_tool_error = req.on_tool_error
  local ctx = { transcript = transcript, handlers = handlers, names = names, on_tool_call = req.on_tool_call,
                confirm = req.confirm,
                on_error = function(name, full)
                  request.emit(self, { event = "tool_error", tool = name, error = full })
                  if on_tool_error then on_tool_error(name, full) end
                end }
  local pending = unanswered(transcript)
  if pending then run_calls(ctx, pending, 0) end
  for round = 1, max_rounds do
    local resp, err = ask(self, req, transcript, copts)
    if not resp then
      err.messages = transcript
      return nil, err
    end
    local msg = message_of(resp)
    if not msg then
      return nil, errors.new({ kind = "invalid_response", message = "the response has no message",
                               response = resp, messages = transcript }, runtime.of(self):secret())
    end
    transcript[#transcript + 1] = msg
    local calls = calls_of(msg)
    if not calls or round == max_rounds then return resp, transcript end
    run_calls(ctx, calls, round)
  end
end

return M
