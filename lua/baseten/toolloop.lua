--- The tool-calling loop as a task: `client:start_tools(req, opts)`
-- (driven by `client:poll`) and `client:run_tools(req, opts)` (the same
-- task, driven to its end by a blocking loop). Every round's logic lives
-- here once, so both paths behave alike.
--
--     local h = client:start_tools({
--       messages = {{role = "user", content = "Weather in Paris?"}},
--       tools = { weather },                      -- handlers may be asynchronous
--     }, {
--       on_content = function(piece) end,         -- streamed text (req.stream = true)
--       on_tool_call = function(call) end,        -- before a handler runs
--       on_tool_result = function(call, text) end,
--       on_round = function(n, resp) end,         -- round n's response is in
--       on_done = function(resp, transcript, err) end,
--     })
--     client:poll(0)  -- each frame
--     h:cancel()      -- on_done gets err.kind == "canceled", err.transcript
--
-- A round: ask the model (one Call, its retries waiting without blocking,
-- streamed or not); then, for each tool call of its answer, in order:
-- `on_tool_call(call)`, `confirm(name, args, resolve)` if given, the
-- handler, `on_tool_result(call, text)`. A handler (or a confirm) may answer
-- later: a handler that returns a function `f` is asynchronous, and the loop
-- calls `f(resolve)` and waits until `resolve(result[, failure])` is called;
-- a confirm that returns nil waits for `resolve(allowed[, reason])`.
--
-- The Loop's phases: "calls" (answering the tool calls of the last
-- assistant message), "wait" (a handler or confirm has not answered yet),
-- "ask" (the next round's call is to be made), "retry" (its retry is due
-- later), "waiting" (its attempt is on the network), "streaming".
-- @module baseten.toolloop
local core = require("baseten.core")
local errors = require("baseten.errors")
local request = require("baseten.request")
local stream_mod = require("baseten.stream")
local task = require("baseten.task")
local agent = require("baseten.agent")
local toolopts = require("baseten.toolopts")
local partial = require("baseten.partial")

local json = core.json
local M = {}

local Loop = setmetatable({}, { __index = task.Task })
Loop.__index = Loop
M.Loop = Loop

-- Client-side keys of a tool-loop request, never sent to the server.
local STRIP = { max_rounds = true, on_content = true, on_reasoning = true, on_tool_call = true,
                on_tool_error = true, reasoning_history = true, confirm = true, on_tool_result = true,
                on_round = true, on_done = true, max_total_tokens = true, session = true, transcript = true,
                on_tool_call_delta = true }
M.STRIP = STRIP

--- A fresh session id for one conversation (see baseten.toolopts).
M.session_id = toolopts.session_id
local settings = toolopts.settings

-- A raising callback ends the loop as canceled; its error goes out boxed.
-- A callback that canceled the loop stops it too: `stop` is then true.
local function guard(self, f, ...)
  local e = task.call(f, ...)
  if e then self:abort("a callback raised: " .. tostring(e.err)) end
  return e, self.ended
end

-- Token total of a response's usage.
local function tokens_of(resp)
  local u = type(resp) == "table" and resp.usage
  if type(u) ~= "table" then return 0 end
  if type(u.total_tokens) == "number" then return u.total_tokens end
  return (tonumber(u.prompt_tokens) or 0) + (tonumber(u.completion_tokens) or 0)
end

--- Makes the loop (nothing is sent before its first step).
function M.new(client, req, opts, where, level, unpolled)
  local s = settings(client, req, opts, where, level + 1)
  if req.messages == nil or s.transcript then -- resuming: the transcript is the conversation
    local copy = {}
    for k, v in pairs(req) do copy[k] = v end
    copy.messages = s.transcript or req.transcript
    req = copy
  end
  -- a request that cannot be sent raises here, at the caller's line
  request.chat_body(client, req, { messages = agent.wire_messages(req.messages, s.reasoning_history) },
                    STRIP, where, level + 1)
  local self = setmetatable({ s = s, req = req, round = 0, tokens = 0, progress = 0,
                              unpolled = unpolled or false }, Loop)
  local on_done = s.on_done
  task.init(self, client, on_done and function(a, b)
    if a ~= nil then return on_done(a, b, nil) end
    return on_done(nil, b and b.transcript, b)
  end, unpolled)
  local transcript = json.array()
  for i, m in ipairs(req.messages) do transcript[i] = m end
  self.transcript = transcript
  local on_tool_error = s.on_tool_error
  self.on_error = function(name, full)
    request.emit(client, { event = "tool_error", tool = name, error = full })
    if on_tool_error then on_tool_error(name, full) end
  end
  local pending = agent.unanswered(transcript)
  if pending then
    self.calls, self.ci, self.phase = pending, 0, "calls"
  else
    self.phase = "ask"
  end
  return self
end

-- Ends the loop with an error that carries the transcript so far.
function Loop:fail(err)
  err.messages, err.transcript = self.transcript, self.transcript
  return self:finish(nil, err)
end

-- One tool message answers the call; then on_tool_result.
function Loop:answered(call, text)
  self.waiting = nil
  local t = self.transcript
  t[#t + 1] = { role = "tool", tool_call_id = call.id, content = text }
  self.progress = self.progress + 1
  if self.s.on_tool_result then return guard(self, self.s.on_tool_result, call, text) end
  return nil
end

-- A resolve for the call now waiting: once, and only while the loop waits
-- for it (a late or second call, or one after cancel, does nothing).
function Loop:resolver(token, on_answer)
  return function(...)
    if self.ended or self.waiting ~= token or token.answered then return end
    token.answered = { n = select("#", ...), ... }
    token.on_answer = on_answer
    self.rt:touch()
  end
end

-- Runs the handler of `call` (after its confirm): its text, or waits.
function Loop:run_handler(call, handler, args, name)
  local ok, text, later = pcall(agent.invoke, handler, args, call, name, self.on_error)
  if not ok then
    local e = task.raised(text)
    self:abort("on_tool_error raised")
    return e
  end
  if not later then return self:answered(call, text) end
  local token = { call = call }
  self.waiting = token
  local resolve = self:resolver(token, function(result, failure)
    return self:answered(call, agent.format(name, result, failure))
  end)
  local e = task.call(later, resolve)
  if e then -- the asynchronous part raised: reported as a handler that raised
    if self.waiting == token and not token.answered then
      self.waiting = nil
      local text2 = agent.invoke(function() error(e.err, 0) end, args, call, name, self.on_error)
      return self:answered(call, text2)
    end
  end
  return nil
end

-- Answers the next tool call of `self.calls`; nil, or a boxed error.
function Loop:next_call()
  self.ci = self.ci + 1
  local call = self.calls[self.ci]
  if call == nil then
    self.calls, self.phase = nil, "ask"
    return nil
  end
  if type(call) ~= "table" then return nil end
  local round = self.round
  if round > 0 and (type(call.id) ~= "string" or call.id == "") then call.id = "call_" .. round .. "_" .. self.ci end
  if self.s.on_tool_call then
    local e, stop = guard(self, self.s.on_tool_call, call)
    if stop then return e end -- canceled by on_tool_call: its handler never starts
  end
  local handler, args, name = agent.prepare(call, self.s.handlers, self.s.names)
  if not handler then return self:answered(call, args) end
  local confirm = self.s.confirm
  if not confirm then return self:run_handler(call, handler, args, name) end
  local token = { call = call }
  self.waiting = token
  local function decided(yes, why)
    if yes then return self:run_handler(call, handler, args, name) end
    return self:answered(call, "error: the user refused to run tool \"" .. name .. "\""
      .. (why ~= nil and (": " .. tostring(why)) or ""))
  end
  local resolve = self:resolver(token, decided)
  local ok, yes, why = pcall(confirm, name, args, resolve)
  if not ok then
    local e = task.raised(yes)
    self:abort("confirm raised")
    return e
  end
  if self.waiting ~= token or token.answered then return nil end -- resolved inside confirm
  if yes ~= nil or self.unpolled then -- a synchronous answer (nil refuses in a blocking run_tools)
    self.waiting = nil
    return decided(yes, why)
  end
  return nil
end

-- A handler or confirm answered: go on with its answer.
function Loop:take_answer()
  local token = self.waiting
  local a = token.answered
  self.waiting = nil
  return token.on_answer(a[1], a[2])
end

-- Starts the next round's model call.
function Loop:ask()
  local s, req = self.s, self.req
  self.round = self.round + 1
  local stream = req.stream and true or false
  local over = { messages = agent.wire_messages(self.transcript, s.reasoning_history) }
  if stream then over.stream = true end
  local body = request.chat_body(self.client, req, over, STRIP, "run_tools", 1)
  local call = request.new(self.client, "POST", "/chat/completions", body, stream, s.copts)
  self.call = call
  -- each round's tool-call arguments as live tables while they stream (baseten.partial)
  self.tracker = stream and s.on_tool_call_delta and partial.tracker(s.on_tool_call_delta) or nil
  local refusal = call:missing_key()
  if refusal then return self:fail(refusal) end
  local _, err = call:launch()
  if err then return self:fail(err) end
  self.phase = "waiting"
  return nil
end

-- The round's response is in: append it, then its tools, the end, or the budget.
function Loop:respond(resp)
  self.call, self.stream = nil, nil
  local s = self.s
  local msg = agent.message_of(resp)
  if not msg then
    return self:fail(errors.new({ kind = "invalid_response", message = "the response has no message",
                                  response = resp }))
  end
  local t = self.transcript
  t[#t + 1] = msg
  self.last_resp = resp
  self.tokens = self.tokens + tokens_of(resp)
  if s.on_reasoning and not self.req.stream and type(msg.reasoning_content) == "string"
      and msg.reasoning_content ~= "" then
    local e, stop = guard(self, s.on_reasoning, msg.reasoning_content)
    if stop then return e end
  end
  if s.on_content and not self.req.stream and type(msg.content) == "string" and msg.content ~= "" then
    local e, stop = guard(self, s.on_content, msg.content)
    if stop then return e end
  end
  if s.on_round then
    local e, stop = guard(self, s.on_round, self.round, resp)
    if stop then return e end
  end
  local calls = agent.calls_of(msg)
  if not calls or self.round >= s.max_rounds then return self:finish(resp, t) end
  if s.max_total_tokens and self.tokens >= s.max_total_tokens then
    return self:fail(errors.new({ kind = "budget", response = resp, usage = { total_tokens = self.tokens },
      message = "max_total_tokens (" .. s.max_total_tokens .. ") reached: " .. self.tokens
        .. " tokens used in " .. self.round .. " round(s)" }))
  end
  self.calls, self.ci, self.phase = calls, 0, "calls"
  return nil
end

-- The stream's end: its error, or the response it added up to.
function Loop:stream_end(err)
  local st = self.stream
  if err then
    err.partial = err.partial or st:snapshot()
    st:close()
    return self:fail(err)
  end
  local resp = st:snapshot()
  st:close()
  local msg = agent.message_of(resp)
  for _, call in ipairs(msg and agent.calls_of(msg) or {}) do call.index = nil end
  return self:respond(resp)
end

-- Hands each buffered chunk's text to on_content / on_reasoning, through
-- the stream's text fast path (read_pieces: no table for a text chunk).
-- With on_tool_call_delta, every chunk is decoded whole, since the tracker
-- reads tool-call deltas from the chunk tables.
function Loop:pump()
  if self.tracker then return self:pump_chunks() end
  local st, s = self.stream, self.s
  while not self.ended do
    local chunk, err, k1, p2, k2, p3, k3 = st:read_pieces()
    if chunk == false then return nil end
    if chunk == nil then return self:stream_end(err) end
    self.progress = self.progress + 1
    self.rt:touch()
    local piece, kind = err, k1 -- the chunk's pieces: err, k1, p2, k2, p3, k3
    while piece do
      local f = (kind == "content" and s.on_content) or (kind == "reasoning" and s.on_reasoning) or nil
      if f then
        local e = guard(self, f, piece)
        if e then return e end
      end
      piece, kind, p2, k2, p3 = p2, k2, p3, k3, nil
    end
  end
  return nil
end

-- pump, one decoded chunk table at a time, each shown to the tracker.
function Loop:pump_chunks()
  local st, s = self.stream, self.s
  while not self.ended do
    local chunk, err = st:read_buffered()
    if chunk == false then return nil end
    if chunk == nil then return self:stream_end(err) end
    self.progress = self.progress + 1
    self.rt:touch()
    local e = guard(self, self.tracker.chunk, self.tracker, chunk)
    if e then return e end
    local pieces = (s.on_content or s.on_reasoning) and stream_mod.pieces_of(chunk)
    if pieces then
      for i = 1, #pieces, 2 do
        local kind, f = pieces[i + 1], nil
        if kind == "content" then f = s.on_content elseif kind == "reasoning" then f = s.on_reasoning end
        if f then
          e = guard(self, f, pieces[i])
          if e then return e end
        end
      end
    end
  end
  return nil
end

-- One move of the state machine: true when it did something.
function Loop:advance()
  local phase = self.phase
  if phase == "calls" then
    if self.waiting then
      if not self.waiting.answered then return false end
      return true, self:take_answer()
    end
    return true, self:next_call()
  elseif phase == "ask" then
    return true, self:ask()
  elseif phase == "retry" then
    if core.now() < self.call:due() then return false end
    local _, err = self.call:launch()
    if err then return true, self:fail(err) end
    self.phase = "waiting"
    return true
  elseif phase == "waiting" then
    local call = self.call
    if not call:settled() then return false end
    local what, v = call:judge()
    if what == "retry" then
      self.phase = "retry"
      return true
    end
    if what == "fail" then return true, self:fail(v) end
    local resp, err = call:result(v)
    if not resp then return true, self:fail(err) end
    if not call.stream then return true, self:respond(resp) end
    self.stream, self.phase = resp, "streaming"
    return true
  elseif phase == "streaming" then
    local before = self.progress
    local e = self:pump()
    return self.progress ~= before or self.ended, e
  end
  return false
end

--- Advances as far as it can without waiting (task interface).
function Loop:step()
  if self.ended then return nil end
  if self.rt:closed() then return self:abort("the client was closed") end
  while not self.ended do
    local moved, e = self:advance()
    if e then return e end
    if not moved then return nil end
  end
  return nil
end

--- Ends the loop now as canceled: the transfer closed, a pending retry
-- dropped, no next round, no handler started (task interface).
function Loop:abort(message)
  if self.ended then return nil end
  local err
  if self.call then
    err = self.call:cancel(message)
  else
    err = errors.new({ kind = "canceled", message = message or "the request was canceled" })
  end
  local st = self.stream
  if st then
    err.partial = st:snapshot()
    st:close()
  end
  self.call, self.stream, self.waiting = nil, nil, nil
  return self:fail(err)
end

--- When a retry is due (task interface).
function Loop:next_due()
  if self.phase == "retry" and self.call then return self.call:due() end
  return nil
end

--- Whether a transfer of the loop is on the engine (task interface).
function Loop:on_network()
  return self.phase == "waiting" or self.phase == "streaming"
end

--- The current round (1 for the first model call).
function Loop:rounds()
  return self.round
end

--- The transcript so far (the loop's own array: do not change it).
function Loop:messages()
  return self.transcript
end

function Loop:__tostring()
  return "baseten.tool_loop (" .. (self.ended and "done" or self.phase) .. ", round " .. self.round .. ")"
end

--- The non-blocking tool loop (`client:start_tools`): a handle driven by
-- `client:poll`. See the README's "Tool loops that do not block".
-- @tparam Client client
-- @tparam table req as `run_tools`'s
-- @tparam[opt] table opts the call options (`timeout`, `max_retries`,
--   `headers`, `session`) and any of the loop's options and callbacks
-- @treturn Loop
function M.start_tools(client, req, opts)
  local loop = M.new(client, req, opts, "start_tools", 2, false)
  return loop
end

-- The blocking drive of a loop: steps it, waiting on the network or a
-- retry's backoff between steps, until it ends.
local function drive(loop)
  local rt = loop.rt
  local wait = 0
  while true do
    local before = loop.progress
    local e = loop:step()
    if e then error(e.err, 0) end
    if loop:done() then return loop:result() end
    if loop.progress ~= before then wait = 0 end
    if loop:on_network() then
      rt:perform(wait)
      wait = 1
    else
      local due = loop:next_due()
      if due then
        core.sleep(math.max(due - core.now(), 0))
      elseif loop.waiting and not loop.waiting.answered then
        -- a handler waits on something: only the client's other tasks (a
        -- start_call of an MCP session, a request of its own) can answer it
        if rt:pending() > 0 then
          rt:poll(0.05)
        else
          local name = loop.waiting.call["function"] and loop.waiting.call["function"].name
          loop:abort("waiting for an answer run_tools cannot get")
          error("baseten: run_tools: tool \"" .. tostring(name) .. "\" (or its confirm) answers later, through"
            .. " resolve, and nothing run_tools drives can answer it: use client:start_tools", 0)
        end
      end
    end
  end
end

--- The blocking tool loop (`client:run_tools`): the same loop as
-- `start_tools`, driven to its end. Returns `resp, transcript` or `nil, err`.
function M.run_tools(client, req, opts)
  local loop = M.new(client, req, opts, "run_tools", 2, true)
  return drive(loop)
end

return M
