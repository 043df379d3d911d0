--- Split surrogate pairs in stream chunks (internal to baseten.stream).
--
-- Servers written in JavaScript cut text by UTF-16 units, so an emoji can
-- end one delta as its high half (`"abcd\ud83d"`) and start the next as its
-- low half (`"\ude00é"`). The C core decodes stream chunks with
-- BT_JSON_LONE_WTF8: such a lone half becomes its 3-byte form (ED A0..BF xx,
-- never valid UTF-8), and `t:next_event()` says how many a chunk holds. The
-- stream hands such a chunk here (and every chunk while one is held), never
-- out as it is:
--
--   * A text field of a choice (`content`, `reasoning_content`,
--     `reasoning`, `refusal`, a tool call's `function.arguments`) that ends
--     with a high half: the half is taken off and the chunk is held back
--     until the next chunk of the same choice arrives. If that chunk's same
--     field (the same tool call, by `index`) starts with the low half, the
--     whole character is appended to the held field and the half taken off
--     the later one (`"abcd😀"`, then `"é"`); else, or when the stream ends
--     first, the held field gets U+FFFD. Chunks behind a held one wait too,
--     so chunks keep their order.
--   * Every other lone half, anywhere in the chunk, becomes U+FFFD.
--
-- So every chunk handed out is valid UTF-8, and whoever joins deltas
-- (`text()`, `final()`, `on_content`, ...) joins repaired text.
-- @module baseten.mend
local M = {}

local type, byte, char, floor = type, string.byte, string.char, math.floor

local HALF = "\237[\160-\191][\128-\191]" -- a lone half, high or low, as the decoder writes it
local FFFD = "\239\191\189"
local TEXT_FIELDS = { "content", "reasoning_content", "reasoning", "refusal" }

-- The code unit of the 3-byte form at s[i].
local function unit(s, i)
  local _, b2, b3 = byte(s, i, i + 2)
  return 0xD000 + (b2 % 64) * 64 + b3 % 64
end

local function ends_high(s)
  local n = #s
  if n < 3 then return false end
  local b1, b2 = byte(s, n - 2, n - 1)
  return b1 == 0xED and b2 >= 0xA0 and b2 <= 0xAF
end

local function starts_low(s)
  local b1, b2 = byte(s, 1, 2)
  return b1 == 0xED and b2 ~= nil and b2 >= 0xB0 and b2 <= 0xBF
end

--- The UTF-8 of the character whose halves are the 3-byte forms hi and lo.
function M.pair(hi, lo)
  local cp = 0x10000 + (unit(hi, 1) - 0xD800) * 1024 + (unit(lo, 1) - 0xDC00)
  return char(0xF0 + floor(cp / 262144), 0x80 + floor(cp / 4096) % 64, 0x80 + floor(cp / 64) % 64,
              0x80 + cp % 64)
end

-- Calls fn(holder, key, id, choice) for each text field of the chunk that
-- holds a string; id names the field across chunks ("0 content", "0 tc 1").
local function each_field(chunk, fn)
  local choices = chunk.choices
  if type(choices) ~= "table" then return end
  for i = 1, #choices do
    local c = choices[i]
    if type(c) == "table" then
      local index = c.index
      if type(index) ~= "number" then index = 0 end
      local d = c.delta
      if type(d) ~= "table" then d = c.message end
      if type(d) == "table" then
        for _, k in ipairs(TEXT_FIELDS) do
          if type(d[k]) == "string" then fn(d, k, index .. " " .. k, index) end
        end
        local calls = d.tool_calls
        if type(calls) == "table" then
          for j = 1, #calls do
            local call = calls[j]
            local f = type(call) == "table" and call["function"]
            if type(f) == "table" and type(f.arguments) == "string" then
              local ci = type(call.index) == "number" and call.index or -1
              fn(f, "arguments", index .. " tc " .. ci, index)
            end
          end
        end
      end
    end
  end
end

-- The choice indexes a chunk carries, as a set.
local function choices_in(chunk)
  local set, choices = {}, chunk.choices
  if type(choices) ~= "table" then return set end
  for i = 1, #choices do
    local c = choices[i]
    if type(c) == "table" then set[type(c.index) == "number" and c.index or 0] = true end
  end
  return set
end

-- Every lone half left in a value (keys too) becomes U+FFFD.
local function scrub(v)
  local renamed
  for k, x in pairs(v) do
    if type(x) == "string" then
      if x:find(HALF) then v[k] = x:gsub(HALF, FFFD) end
    elseif type(x) == "table" then
      scrub(x)
    end
    if type(k) == "string" and k:find(HALF) then
      renamed = renamed or {}
      renamed[#renamed + 1] = k
    end
  end
  for _, k in ipairs(renamed or {}) do
    local x = v[k]
    v[k] = nil
    v[(k:gsub(HALF, FFFD))] = x
  end
end
M.scrub = scrub

--- A new, empty queue of held chunks: `q[head..tail]` are the chunks not
-- yet handed out; `q.waits[pos]` how many held halves chunk pos still has.
function M.queue()
  return { head = 1, tail = 0, waits = {}, pend = {}, npend = 0, added = 0 }
end

local function resolve(q, id, with)
  local p = q.pend[id]
  p.holder[p.key] = p.holder[p.key] .. with
  q.pend[id] = nil
  q.npend = q.npend - 1
  local w = q.waits[p.pos] - 1
  q.waits[p.pos] = w > 0 and w or nil
end

--- Takes one chunk into the queue: pairs the halves held for its choices,
-- holds its own trailing high halves, and makes every other lone half
-- U+FFFD. `lone` is the count of lone halves the decoder saw (nil: none;
-- math.huge: unknown).
function M.take(q, chunk, lone)
  lone = lone or 0
  local pos = q.tail + 1
  if q.npend > 0 then
    local seen = {}
    each_field(chunk, function(holder, key, id)
      if q.pend[id] then
        local s = holder[key]
        seen[id] = true
        if lone > 0 and starts_low(s) then
          resolve(q, id, M.pair(q.pend[id].hi, s:sub(1, 3)))
          holder[key] = s:sub(4)
          lone = lone - 1
        else
          resolve(q, id, FFFD)
        end
      end
    end)
    local present = choices_in(chunk)
    for id, p in pairs(q.pend) do -- the choice went on without this field: no partner
      if present[p.choice] and not seen[id] then resolve(q, id, FFFD) end
    end
  end
  if lone > 0 then
    each_field(chunk, function(holder, key, id, choice)
      local s = holder[key]
      if lone > 0 and ends_high(s) and not q.pend[id] then
        holder[key] = s:sub(1, -4)
        q.pend[id] = { pos = pos, holder = holder, key = key, hi = s:sub(-3), choice = choice }
        q.npend = q.npend + 1
        q.waits[pos] = (q.waits[pos] or 0) + 1
        lone = lone - 1
      end
    end)
    if lone > 0 then scrub(chunk) end
  end
  q.tail = pos
  q[pos] = chunk
end

--- The stream ended (or failed, or was closed): every held half becomes
-- U+FFFD, so every queued chunk is ready.
function M.settle(q)
  for id in pairs(q.pend) do resolve(q, id, FFFD) end
end

return M
