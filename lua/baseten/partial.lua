--- Structured output you can watch: JSON parsed while it streams.
--
-- The glue between streams and the resumable parser `baseten.json.partial`
-- (C, csrc/jpartial.c): a content watcher that skips a Markdown code fence
-- around the JSON, a tracker that parses each tool call's arguments as they
-- arrive, and the driver behind `client:json(req, {on_partial = fn})`,
-- `stream:partials()`, `client:start(req, {json = true, on_partial = fn})`
-- and `on_tool_call_delta`. Every snapshot is one live table, updated in
-- place; the work is linear in the bytes received.
-- @module baseten.partial
local core = require("baseten.core")
local errors = require("baseten.errors")
local delta_of = require("baseten.chunk_text").delta_of

local json = core.json

local M = {}

-- json.partial's feed and path, looked up once: a call through the
-- parser's metatable per delta is a tenth of a small delta's cost.
local FEED, PATH
do
  local proto = json.partial()
  FEED, PATH = proto.feed, proto.path
  proto:close()
end

-- The longest language tag (and space) a leading fence may carry before
-- its newline: past it the text is fed as it is (and fails as JSON).
local MAX_FENCE = 64

local Watcher = {}
Watcher.__index = Watcher

--- A watcher of a reply's content as JSON.
-- @tparam[opt] table opts `json.partial`'s options (`drop_nulls`,
--   `lone_surrogates`, `max_depth`)
-- @treturn table a watcher: `w:feed(piece)` -> `snapshot, path`, or nil
--   while nothing can be shown yet, or `nil, err` (the JSON is invalid;
--   `err` names the byte offset in the JSON text)
function M.watcher(opts)
  return setmetatable({ _opts = opts, _p = json.partial(opts), _head = "", _fed = {}, _nfed = 0 }, Watcher)
end

-- Before the root value: skips space and a leading fence with its language
-- tag. Returns the text to feed, or nil while a fence may still be coming.
local function unfence_head(self, piece)
  local head = self._head .. piece
  local i = head:find("%S")
  if not i then
    self._head = ""
    return nil
  end
  if head:byte(i) ~= 96 then -- not '`': the JSON itself
    self._head = nil
    return head:sub(i)
  end
  local tick = head:sub(i, i + 2)
  if #tick < 3 and ("```"):sub(1, #tick) == tick then
    self._head = head:sub(i)
    return nil
  end
  if tick == "```" then
    local nl = head:find("\n", i + 3, true)
    if not nl then
      if #head - i <= MAX_FENCE then
        self._head = head:sub(i)
        return nil
      end
    else
      self._head = nil
      self._fenced = true
      return head:sub(nl + 1)
    end
  end
  self._head = nil
  return head:sub(i) -- not a fence: the parser says why
end

-- After the root value, only space and a closing fence may follow.
local function tail_ok(tail)
  return tail:match("^%s*`*%s*$") ~= nil
end

-- The parser refused text after the root value: a closing fence is fine.
-- `piece` is what was fed last, after `self._nfed` bytes.
local function after_root(self, err, piece)
  local at = tonumber(err:match("^trailing garbage after JSON value at byte (%d+)$"))
  if not at or at <= self._nfed then return nil end
  local tail = piece:sub(at - self._nfed)
  if not tail_ok(tail) then return nil end
  if self._root == nil then -- a scalar root, or a table seen first in this piece
    local p = json.partial(self._opts)
    p:feed(table.concat(self._fed) .. piece:sub(1, at - self._nfed - 1))
    self._root = p:result()
  end
  self._fed = nil
  self._tail = tail
  return self._root
end

function Watcher:feed(piece)
  if self._err then return nil, self._err end
  if self._tail then -- the value is complete: a closing fence may still come
    self._tail = self._tail .. piece
    if #self._tail > MAX_FENCE or not tail_ok(self._tail) then
      self._err = "trailing garbage after JSON value (" .. self._tail:sub(1, 20) .. ")"
      return nil, self._err
    end
    return self._root, {}
  end
  if self._head then
    piece = unfence_head(self, piece)
    if not piece then return nil end
  end
  local p = self._p
  local snap, err = FEED(p, piece)
  if err then
    local root = after_root(self, err, piece)
    if root ~= nil then return root, {} end
    self._err = err
    return nil, err
  end
  if type(snap) == "table" then
    self._root, self._fed = snap, nil -- a table root is live: no replay needed
    self.feed = Watcher._feed_table -- from now on, the short path
  elseif self._fed then -- a scalar root so far: kept for a replay up to a closing fence
    self._fed[#self._fed + 1] = piece
  end
  self._nfed = self._nfed + #piece
  if snap == nil then return nil end
  return snap, PATH(p)
end

-- Watcher:feed once the fence is behind and the root is a table: the
-- parser alone, until it says something (then the whole path above).
function Watcher:_feed_table(piece)
  local p = self._p
  local snap, err = FEED(p, piece)
  if err then
    self.feed = nil -- back to the method
    local root = after_root(self, err, piece)
    if root ~= nil then return root, {} end
    self._err = err
    return nil, err
  end
  self._nfed = self._nfed + #piece
  return snap, PATH(p)
end
local feed_table = Watcher._feed_table

--- The JSON error so far, or nil.
function Watcher:error()
  return self._err
end

--- Feeds the content delta of a chunk (choice 0), if any, and calls
-- `fn(snapshot, path)` when there is something to show. `content_of` is
-- `baseten.stream.content_of`.
-- @treturn boolean whether the chunk had content
function Watcher:chunk(chunk, content_of, fn)
  local piece = content_of(chunk)
  if not piece then return false end
  local snap, path = self:feed(piece)
  if snap ~= nil then fn(snap, path) end
  return true
end

--- The error `stream:partials()` raises when the content is not JSON.
function M.invalid(why, text)
  return errors.new({ kind = "invalid_json", content = text,
                      message = "the content is not JSON (" .. tostring(why) .. ")" })
end

--- An iterator over a stream's content parsed as JSON (`stream:partials()`).
-- Yields `snapshot, path` after each content delta that changes what can be
-- shown. A stream failure raises its error; content that is not JSON raises
-- an `invalid_json` error (the stream stays open: `final()` still works).
function M.iterate(stream, content_of)
  local w = M.watcher()
  return function()
    while true do
      local chunk, err = stream:next()
      if err then error(err, 0) end
      if chunk == nil then return nil end
      local piece = content_of(chunk)
      if piece then
        local snap, path = w:feed(piece)
        if snap ~= nil then return snap, path end
        local why = w:error()
        if why then error(M.invalid(why, stream:text_so_far()), 0) end
      end
    end
  end, nil, nil, stream
end

-- ------------------------------------------------------------------
-- Tool calls
-- ------------------------------------------------------------------

local Tracker = {}
Tracker.__index = Tracker

--- A tracker of tool-call arguments while they stream: each call's
-- arguments go through their own parser, and `fn(index, name, snapshot)`
-- runs after each delta that adds to them (`index` 1-based, in the order
-- of the calls; `snapshot` the live table of the arguments so far).
-- Arguments that are not JSON stop their updates; the handler still gets
-- the complete arguments as before (or the error they make).
function M.tracker(fn)
  return setmetatable({ _fn = fn, _calls = {} }, Tracker)
end

-- The tool_calls delta of choice 0, or nil.
local function tool_deltas(chunk)
  local d = delta_of(chunk)
  local tc = d and d.tool_calls
  return type(tc) == "table" and tc or nil
end

function Tracker:chunk(chunk)
  local deltas = tool_deltas(chunk)
  if not deltas then return end
  for i = 1, #deltas do
    local d = deltas[i]
    if type(d) == "table" then
      local index
      if type(d.index) == "number" then
        index = d.index + 1
      elseif type(d.id) == "string" and d.id ~= "" and (self._last == nil or self._calls[self._last].id ~= d.id) then
        index = #self._calls + 1 -- a server that sends no index: a new id is a new call
      else
        index = self._last or 1
      end
      self._last = index
      local call = self._calls[index]
      if not call then
        call = { p = json.partial(), id = d.id }
        self._calls[index] = call
      end
      local fnt = type(d["function"]) == "table" and d["function"] or {}
      if type(fnt.name) == "string" and fnt.name ~= "" then call.name = fnt.name end
      local args = fnt.arguments
      if type(args) == "string" and args ~= "" and not call.failed then
        local snap, err = call.p:feed(args)
        if err then call.failed = true elseif snap ~= nil then self._fn(index, call.name, snap) end
      end
    end
  end
end

-- ------------------------------------------------------------------
-- The client's entry points
-- ------------------------------------------------------------------

--- Reads a stream to its end for `client:json(req, {on_partial = fn})`:
-- feeds each content delta to a watcher and calls `fn(snapshot, path)`
-- when there is something to show. Content that stops being JSON stops
-- the calls; the whole reply is still judged as `client:json` judges it.
-- The deltas come through `stream:text()`, the stream's fast path (a
-- chunk of the common shape is read without a table). A raise in `fn`
-- closes the stream and raises on; a failure of the stream is returned.
-- @return the accumulated response, or nil, err
-- @return the value the watcher parsed, when it can stand for
--   `json.decode` of the whole content (see Watcher:value), else nil
-- @treturn number the bytes of content fed to the watcher
function M.drain(stream, fn)
  return M.watcher():drain(stream, fn)
end

-- M.drain's loop, a method so that it reads this watcher's fields as its own.
function Watcher:drain(stream, fn)
  local reading, fed = false, 0
  local ok, resp, err = pcall(function()
    local next_piece = stream:text()
    while true do
      reading = true
      local piece = next_piece()
      reading = false
      if piece == nil then break end
      if not self._err then
        fed = fed + #piece
        local snap, path
        if self.feed == feed_table then -- Watcher:_feed_table inline, as long as
          local p = self._p              -- the parser says no more than the root
          snap = FEED(p, piece)
          if snap ~= nil then
            self._nfed = self._nfed + #piece
            path = PATH(p)
          else -- an error (sticky): the method takes it again
            snap, path = feed_table(self, piece)
          end
        else
          snap, path = self:feed(piece)
        end
        if snap ~= nil then fn(snap, path) end
      end
    end
    return stream:final()
  end)
  stream:close()
  if not ok then
    if reading then return nil, resp end -- text() raises the stream's failure: next() returns it
    error(resp, 0)
  end
  return resp, err, self:value(), fed
end

--- The whole value, when the content was one JSON object or array with
-- only space around it (no fence) and the parser holds it complete:
-- `json.decode` of that content with `drop_nulls` gives the same. Else nil.
function Watcher:value()
  if self._err or self._tail or self._fenced or self._head ~= nil or self._root == nil then return nil end
  return (self._p:result())
end

-- Keys of a json request that are the client's, never sent.
local JSON_STRIP = { schema = true, schema_name = true }

--- For `client:start(req, handlers)` with `json`, `on_partial` or
-- `on_tool_call_delta` (internal to baseten.async): the request to send
-- and the handlers to run in their place. In json mode (`json = true` or
-- `on_partial`) the request asks for JSON as `client:json` does (and
-- streams), `on_partial(snapshot, path)` runs from `poll` after each
-- content delta, and `on_done(value, resp)` gets the judged value (or
-- `nil, err`, as `client:json` returns). `on_tool_call_delta(index, name,
-- args_snapshot)` runs for each tool-call delta.
-- @return the request (a copy when changed), the handlers
function M.adapt(client, req, handlers)
  local structured = require("baseten.structured") -- lazily: it loads the client
  local json_mode = handlers.json or handlers.on_partial ~= nil
  local h, schema = {}, nil
  for k, v in pairs(handlers) do h[k] = v end
  if json_mode then
    local rf
    rf, schema = structured.response_format(req)
    local copy = {}
    for k, v in pairs(req) do
      if not JSON_STRIP[k] then copy[k] = v end
    end
    copy.response_format = rf or req.response_format
    copy.stream = true
    req = copy
  end
  local content_of = require("baseten.stream").content_of
  local watcher = handlers.on_partial and M.watcher()
  local tracker = handlers.on_tool_call_delta and M.tracker(handlers.on_tool_call_delta)
  local on_chunk, on_partial = handlers.on_chunk, handlers.on_partial
  h.on_chunk = function(chunk)
    if watcher and not watcher:error() then watcher:chunk(chunk, content_of, on_partial) end
    if tracker then tracker:chunk(chunk) end
    if on_chunk then on_chunk(chunk) end
  end
  local on_done = handlers.on_done
  if json_mode and on_done then
    h.on_done = function(resp, err)
      if not resp then return on_done(nil, err) end
      return on_done(structured.judge(client, resp, schema))
    end
  end
  return req, h
end

return M
