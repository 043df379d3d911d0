--- Folds chat.completion.chunk tables into one chat.completion table, as
-- the official SDKs do, and tolerates what real servers send: `reasoning`
-- besides `reasoning_content`, tool-call deltas that repeat `id`, `name` and
-- `type` or lack `index`, usage on every chunk (cumulative: the last wins),
-- or only on a last chunk with `choices = []`, and no role chunk at all.
-- The message's `reasoning_content` holds the reasoning whichever way the
-- server spelled it, taken once per chunk (`reasoning_content` first, as
-- `stream:pieces()` does); `reasoning` keeps what came under that name.
-- @module baseten.accumulate
local json = require("baseten.core").json

local type = type -- an upvalue: add() calls it on every token
local null = json.null
local array = json.array

local M = {}
local Acc = {}
Acc.__index = Acc

--- A new, empty accumulator.
function M.new()
  return setmetatable({ choices = {}, order = {} }, Acc)
end

local TEXT_FIELDS = { "content", "refusal", "reasoning_content", "reasoning" } -- add_choice spells them out

-- Text pieces: a long stream has a million tiny deltas, so pieces are
-- folded into 512-piece segments as they come, keeping the heap near the
-- size of the text itself.
local SEGMENT = 512

local function new_text()
  return { n = 0, segs = {} }
end

local function push_text(p, s)
  local n = p.n + 1
  p[n] = s
  if n >= SEGMENT then -- not ==: an order test of two integers is inline in the VM, == calls out
    p.segs[#p.segs + 1] = table.concat(p, "", 1, n)
    n = 0
  end
  p.n = n
end

local function text_of(p)
  if #p.segs == 0 then return table.concat(p, "", 1, p.n) end
  return table.concat(p.segs) .. table.concat(p, "", 1, p.n)
end

local function has_text(p)
  return p.n > 0 or #p.segs > 0
end

local function choice_for(self, index)
  local ch = self.choices[index]
  if not ch then
    ch = { index = index, parts = {}, calls = {}, by_index = {}, by_id = {} }
    for i = 1, #TEXT_FIELDS do ch.parts[TEXT_FIELDS[i]] = new_text() end
    self.choices[index] = ch
    self.order[#self.order + 1] = index
  end
  return ch
end

local function new_call(ch)
  local call = { args = new_text(), fn = {} }
  ch.calls[#ch.calls + 1] = call
  return call
end

-- Which call a tool-call delta continues (see the module comment).
local function call_for(ch, d)
  local id = type(d.id) == "string" and d.id ~= "" and d.id or nil
  local idx = type(d.index) == "number" and d.index or nil
  local call
  if idx then
    call = ch.by_index[idx]
    if call and id and call.id and call.id ~= id then call = nil end
    if not call then
      call = (id and ch.by_id[id]) or new_call(ch)
      ch.by_index[idx] = call
    end
    call.index = idx
  elseif id then
    call = ch.by_id[id] or new_call(ch)
  else
    call = ch.calls[#ch.calls] or new_call(ch)
  end
  if id then
    call.id = id
    ch.by_id[id] = call
  end
  return call
end

local function add_tool_calls(ch, deltas)
  for _, d in ipairs(deltas) do
    if type(d) == "table" then
      local call = call_for(ch, d)
      if type(d.type) == "string" then call.type = d.type end
      local fn = d["function"]
      if type(fn) == "table" then
        if type(fn.name) == "string" and fn.name ~= "" then call.fn.name = fn.name end
        if type(fn.arguments) == "string" and fn.arguments ~= "" then
          push_text(call.args, fn.arguments)
        end
      end
    end
  end
end

-- Logprobs come per chunk: their `content` and `refusal` token lists are
-- appended in order (as the OpenAI SDKs do); any other member is set.
local function add_logprobs(ch, v)
  if type(v) ~= "table" then return end
  local lp = ch.logprobs
  if not lp then
    lp = {}
    ch.logprobs = lp
  end
  for k, x in pairs(v) do
    if (k == "content" or k == "refusal") and type(x) == "table" then
      local list = lp[k]
      if not list then
        list = array()
        lp[k] = list
      end
      for i = 1, #x do list[#list + 1] = x[i] end
    elseif x ~= null then
      lp[k] = x
    end
  end
end

-- add and add_choice run once per streamed token, so they are written for
-- speed (in Lua 5.4 `v ~= nil` and type(v) are function calls, a truth
-- test is not): each field is read once, an absent one (most are) costs a
-- read and a truth test, type() runs only on fields that are there, and the
-- four TEXT_FIELDS are spelled out rather than looped over. A false where a
-- string or a table belongs is skipped, as type() would skip it.
local function add_choice(self, c)
  local index = c.index
  if index ~= 0 and type(index) ~= "number" then index = 0 end
  local ch = self.choices[index] or choice_for(self, index)
  local delta = c.delta
  if type(delta) ~= "table" then -- some servers send message
    delta = c.message
    if type(delta) ~= "table" then delta = nil end
  end
  if delta then
    local parts, v = ch.parts, delta.content
    if v and v ~= "" and type(v) == "string" then push_text(parts.content, v) end
    -- reasoning_content: the reasoning whichever spelling, once per chunk
    -- (as stream:pieces() gives it); `reasoning` as the server spelled it
    v = delta.reasoning
    if v and (v == "" or type(v) ~= "string") then v = nil end
    local r = delta.reasoning_content
    if r and r ~= "" and type(r) == "string" then push_text(parts.reasoning_content, r)
    elseif v then push_text(parts.reasoning_content, v) end
    if v then push_text(parts.reasoning, v) end
    v = delta.refusal
    if v and v ~= "" and type(v) == "string" then push_text(parts.refusal, v) end
    v = delta.role
    if v and type(v) == "string" then ch.role = v end
    v = delta.tool_calls
    if v and type(v) == "table" then add_tool_calls(ch, v) end
  end
  local v = c.finish_reason
  if v ~= null and v ~= nil then ch.finish_reason = v end -- null first: most chunks
  v = c.logprobs
  if v ~= nil and v ~= null then add_logprobs(ch, v) end
end

--- Adds one decoded chunk.
-- @tparam table chunk
function Acc:add(chunk)
  if not self.got_head then -- until id, model and created are all in (the first chunk, usually)
    if not self.id and type(chunk.id) == "string" then self.id = chunk.id end
    if not self.model and type(chunk.model) == "string" then self.model = chunk.model end
    if not self.created and type(chunk.created) == "number" then self.created = chunk.created end
    self.got_head = self.id and self.model and self.created and true
  end
  local v = chunk.system_fingerprint
  if v and type(v) == "string" then self.system_fingerprint = v end
  v = chunk.usage
  if v and type(v) == "table" then self.usage = v end
  local choices = chunk.choices
  if type(choices) == "table" then
    for i = 1, #choices do
      local c = choices[i]
      if type(c) == "table" then add_choice(self, c) end
    end
  end
end

--- The same function as `Acc:add`, for callers on the per-token path
-- (baseten.stream), which skips a method lookup.
M.add = Acc.add

--- Choice 0's content segment, once the head (id, model, created) is in
-- and choice 0 exists; else false. The core's `t:next_event(sink)` appends
-- to it the content piece of a chunk whose only effect on `add` would be
-- that piece (csrc/ldelta.c, bt_delta_sink_add), exactly as `add` does:
-- a table of up to SEGMENT - 1 pieces, `n` of them, whose joined segments
-- are in `segs` (the core leaves a full one to `add`).
function M.content_sink(self)
  local ch = self.got_head and self.choices[0]
  return ch and ch.parts.content or false
end

--- Adds a chunk of the common text shape given as its fields, not as a
-- table (baseten.stream's text fast path: the row `t:next_text()` gives),
-- with exactly the effect `add` has on that chunk. `choice`: the chunk has
-- its one choice, of index 0; every other argument is nil when absent.
function M.add_text(self, choice, content, rc, r, refusal, finish, role, fp, usage, id, model, created)
  if not self.got_head then -- as add() (strings and a number, or nil)
    if not self.id and id then self.id = id end
    if not self.model and model then self.model = model end
    if not self.created and created then self.created = created end
    self.got_head = self.id and self.model and self.created and true
  end
  if fp then self.system_fingerprint = fp end
  if usage then self.usage = usage end
  if not choice then return end
  local ch = self.choices[0] or choice_for(self, 0)
  local parts = ch.parts
  if content and content ~= "" then -- push_text, inline: the one field most chunks have
    local p = parts.content
    local n = p.n + 1
    p[n] = content
    if n >= SEGMENT then
      p.segs[#p.segs + 1] = table.concat(p, "", 1, n)
      n = 0
    end
    p.n = n
  end
  if rc or r or refusal then
    if r == "" then r = nil end -- as add_choice: each field a string or nil
    if rc and rc ~= "" then push_text(parts.reasoning_content, rc)
    elseif r then push_text(parts.reasoning_content, r) end
    if r then push_text(parts.reasoning, r) end
    if refusal and refusal ~= "" then push_text(parts.refusal, refusal) end
  end
  if role then ch.role = role end
  if finish then ch.finish_reason = finish end
end

--- The content accumulated so far for choice 0, as one string.
function Acc:text()
  local ch = self.choices[0] or self.choices[self.order[1]]
  return ch and text_of(ch.parts.content) or ""
end

-- Whether every call had a server `index`, all different: then they are
-- ordered by it (deltas may arrive for index 1 before index 0).
local function by_server_index(calls)
  local seen = {}
  for _, call in ipairs(calls) do
    if call.index == nil or seen[call.index] then return false end
    seen[call.index] = true
  end
  return true
end

local function finish_call(call, i)
  return {
    index = call.index or (i - 1), id = call.id, type = call.type or "function",
    ["function"] = { name = call.fn.name, arguments = text_of(call.args) },
  }
end

local function finish_choice(ch)
  local msg = { role = ch.role or "assistant" }
  for _, f in ipairs(TEXT_FIELDS) do
    if has_text(ch.parts[f]) then msg[f] = text_of(ch.parts[f]) end
  end
  if #ch.calls > 0 then
    local calls, list = array(), ch.calls
    if by_server_index(list) then
      list = {}
      for i, call in ipairs(ch.calls) do list[i] = call end
      table.sort(list, function(a, b) return a.index < b.index end)
    end
    for i, call in ipairs(list) do calls[i] = finish_call(call, i) end
    msg.tool_calls = calls
  end
  return { index = ch.index, message = msg, finish_reason = ch.finish_reason, logprobs = ch.logprobs }
end

--- Gives each message of a non-streamed chat.completion that spells its
-- reasoning `reasoning` a `reasoning_content` as well (as `final()` does),
-- in place, so callers read one name whichever spelling the server used.
-- @tparam table doc a decoded response
function M.normalize(doc)
  local choices = doc.choices
  if type(choices) ~= "table" then return end
  for i = 1, #choices do
    local msg = type(choices[i]) == "table" and choices[i].message
    if type(msg) == "table" and type(msg.reasoning) == "string"
        and (msg.reasoning_content == nil or msg.reasoning_content == null) then
      msg.reasoning_content = msg.reasoning
    end
  end
end

--- The chat.completion-shaped result of everything added so far. Fields
-- never received are absent (nil), never json.null.
-- @treturn table
function Acc:result()
  local order = {}
  for i, idx in ipairs(self.order) do order[i] = idx end
  table.sort(order)
  local choices = array()
  for i, idx in ipairs(order) do choices[i] = finish_choice(self.choices[idx]) end
  return {
    id = self.id, object = "chat.completion", created = self.created,
    model = self.model, system_fingerprint = self.system_fingerprint,
    choices = choices, usage = self.usage,
  }
end

return M
