--- The text iterators of a stream (internal to baseten.stream): what
-- `stream:pieces()`, `stream:text()` and `stream:read_pieces()` hand out,
-- built on the stream's text fast path read.
--
-- A read gives either `true, content, reasoning_content, reasoning,
-- refusal` (a chunk of the common text shape, read by the core without a
-- table) or a decoded chunk. The iterators take `read(state, wait)`, which
-- waits as `stream:next()` does (wait 0 first, then 1), raises a failure,
-- and returns the next wait, then what the read gave (nil at the end).
-- @module baseten.stream_text
local chunk_text = require("baseten.chunk_text")

local row_pieces, pieces_of, content_of = chunk_text.row_pieces, chunk_text.pieces_of, chunk_text.content_of

local M = {}

--- The pieces of what a read gave (true and a fast-path row, or a
-- chunk), as up to three `piece, kind` pairs; nothing for a chunk without
-- text.
function M.pieces_of_read(v, x, rc, r, f)
  if v == true then -- the fast path; most chunks carry content alone
    if rc or r or f then return row_pieces(x, rc, r, f) end
    if x and x ~= "" then return x, "content" end
    return
  end
  local q = pieces_of(v)
  if q then return q[1], q[2], q[3], q[4], q[5], q[6] end
end
local pieces_of_read = M.pieces_of_read

--- The iterator of `stream:pieces()`: every non-empty text delta of
-- choice 0, in arrival order, as `piece, kind`.
function M.pieces(read, state)
  local a, ka, b, kb, c, kc -- the pieces of the last chunk not yet handed out
  return function()
    local wait, v, x, rc, r, f = 0 -- as next(): first what is buffered, then wait for more
    while a == nil do
      wait, v, x, rc, r, f = read(state, wait)
      if not v then return nil end
      a, ka, b, kb, c, kc = pieces_of_read(v, x, rc, r, f)
    end
    local p, k = a, ka
    a, ka, b, kb, c, kc = b, kb, c, kc, nil, nil
    return p, k
  end
end

--- The iterator of `stream:text()`: the non-empty content deltas of
-- choice 0. It reads with `read_text(state)` itself (one Lua call less
-- per delta than `read`): that gives a fast-path row, a chunk, `false`
-- when nothing is buffered (then `perform(state, wait)` waits, 0 first,
-- then 1) or nil and the failure, which it raises.
function M.text(read_text, perform, state)
  return function()
    local wait = 0
    while true do
      local v, x = read_text(state)
      if v == true then
        if x and x ~= "" then return x end
      elseif v then
        local piece = content_of(v)
        if piece then return piece end
      elseif v == nil then
        if x then error(x, 0) end
        return nil
      else
        perform(state, wait)
        wait = 1
      end
    end
  end
end

return M
