--- The text of streamed chat chunks: which deltas of choice 0 a reader
-- shows, and in what order (reasoning, content, refusal).
--
-- Pure functions on decoded chunks and on the text fast path's rows, no
-- stream state: `baseten.stream` reads with them and re-exports
-- `content_of` and `pieces_of`; `baseten.partial` finds tool-call deltas
-- with `delta_of`.
-- @module baseten.chunk_text

local json = require("baseten.core").json

local type = type -- an upvalue, not a global lookup, on the per-token path

local M = {}

--- The delta of choice 0 in a chunk (a table), or nil.
function M.delta_of(chunk)
  local choices = chunk.choices
  if type(choices) ~= "table" then return nil end
  for i = 1, #choices do
    local c = choices[i]
    if type(c) == "table" and (c.index == 0 or c.index == nil) then
      local d = c.delta
      return type(d) == "table" and d or nil
    end
  end
  return nil
end

--- The non-empty content delta of choice 0 in a chunk, or nil (a chunk
-- of an `n > 1` request can carry any choice, in any position).
function M.content_of(chunk)
  local d = M.delta_of(chunk)
  local piece = d and d.content
  if type(piece) == "string" and piece ~= "" then return piece end
  return nil
end

local function nonempty(v)
  return type(v) == "string" and v ~= "" and v or nil
end

--- The non-empty text deltas of choice 0 in a chunk, in the order a
-- reader should show them: reasoning (spelled `reasoning_content`, or
-- `reasoning` by some servers; a chunk with both gives it once), content,
-- refusal. Returns up to three `piece, kind` pairs as one array
-- `{piece1, kind1, piece2, kind2, ...}`, or nil when there is none.
function M.pieces_of(chunk)
  local d = M.delta_of(chunk)
  if not d then return nil end
  local r = nonempty(d.reasoning_content) or nonempty(d.reasoning)
  local c, f = nonempty(d.content), nonempty(d.refusal)
  if not (r or c or f) then return nil end
  local out, n = {}, 0
  if r then out[1], out[2], n = r, "reasoning", 2 end
  if c then out[n + 1], out[n + 2], n = c, "content", n + 2 end
  if f then out[n + 1], out[n + 2] = f, "refusal" end
  return out
end

--- pieces_of for the row of a fast-path chunk (content, reasoning_content,
-- reasoning, refusal), without the table: up to three piece, kind pairs,
-- in the same order.
function M.row_pieces(c, rc, r, f)
  r = nonempty(rc) or nonempty(r)
  c, f = nonempty(c), nonempty(f)
  local fk = f and "refusal"
  if r then
    if c then return r, "reasoning", c, "content", f, fk end
    return r, "reasoning", f, fk
  end
  if c then return c, "content", f, fk end
  return f, fk
end

local function error_message(e)
  if type(e) == "string" then return e end
  if type(e) == "table" then
    if type(e.message) == "string" then return e.message, e.type, e.code end
    local ok, s = pcall(json.encode, e)
    if ok then return s end
  end
  return "the server reported an error"
end

--- The fields of the `error_event` error for an `error` member inside a
-- chunk, or for the body of a JSON error reply (`e` is that member: a
-- string, a table with `message`, `type`, `code`, or anything else).
function M.error_fields(e)
  local msg, etype, code = error_message(e)
  return { kind = "error_event", message = msg,
           type = type(etype) == "string" and etype or nil,
           code = (type(code) == "string" or type(code) == "number") and tostring(code) or nil }
end

return M
