--- Batch files: what `baseten batch` does with its input and output
-- files, as a library (the command only parses arguments and prints).
--
--     local batchfile = require("baseten.batchfile")
--     local summary, err = batchfile.run(client, {
--       input = "in.jsonl", output = "out.jsonl", concurrency = 32,
--     })
--
-- Input: one JSON object a line, an OpenAI Batch API line (`custom_id`,
-- `method`, `url`, `body`) or a plain chat request (its id is its line
-- number). Output: one line per request in OpenAI's batch output format,
-- appended as each request ends and flushed at once.
--
-- Resuming: ids answered with success in the output are skipped; failed
-- ones are sent again and their old lines dropped; a line cut short by a
-- crash is dropped. Dropping lines rewrites the output through a
-- temporary file that replaces it only when every byte of it was written:
-- a full disk or any write or close failure stops with an error naming the
-- file, and the output is left as it was. No result is ever reported as
-- saved that was not written.
-- @module baseten.batchfile
local core = require("baseten.core")

local json = core.json

local M = {}

--- Parses one input line: the item `{id, req, line}`, or nil and why the
-- line is malformed.
-- @tparam string text the line
-- @tparam integer n its line number
-- @tparam[opt] string default_model the model of a request that names none
-- @treturn table|nil
-- @treturn[opt] string why
function M.item(text, n, default_model)
  local doc, why = json.decode(text)
  if doc == nil then return nil, "not JSON (" .. tostring(why) .. ")" end
  if type(doc) ~= "table" then return nil, "not a JSON object" end
  local body, id = doc, tostring(n)
  if doc.custom_id ~= nil or doc.body ~= nil then -- an OpenAI Batch API line
    id, body = doc.custom_id, doc.body
    if type(id) ~= "string" or id == "" then return nil, "custom_id must be a non-empty string" end
    if type(body) ~= "table" then return nil, "body must be a chat request object" end
    if doc.method ~= nil and doc.method ~= "POST" then return nil, "method must be POST" end
    local url = doc.url
    if url ~= nil and url ~= "/v1/chat/completions" and url ~= "/chat/completions" then
      return nil, "url " .. string.format("%q", tostring(url)) .. " is not supported (only /v1/chat/completions)"
    end
  end
  local msgs = body.messages
  if type(msgs) ~= "table" or msgs[1] == nil then return nil, "no messages (a non-empty array is needed)" end
  if body.stream == true then return nil, "stream: batch requests are not streamed" end
  if body.stream ~= nil then body.stream = nil end -- false or null
  if type(body.model) ~= "string" or body.model == "" then
    if not default_model then return nil, "no model (give it in the line, with -m MODEL or $BASETEN_MODEL)" end
    body.model = default_model
  end
  return { id = id, req = body, line = n }
end

-- The whole of a file, or nil and a message naming it ("is a directory"
-- included: io.open opens a directory on POSIX, and only reading fails).
local function slurp(path, open)
  local f, why = open(path, "rb")
  if not f then return nil, "cannot read " .. tostring(why) end
  local text, rerr = f:read("*a")
  f:close()
  if text == nil then return nil, "cannot read " .. path .. ": " .. tostring(rerr) end
  return text
end

-- Each line of text: its number and its text (no "\n"; the last one may
-- lack it, then `cut` is true).
local function each_line(text)
  local pos, n = 1, 0
  return function()
    if pos > #text then return nil end
    local nl = text:find("\n", pos, true)
    local line = text:sub(pos, (nl or #text + 1) - 1)
    pos = (nl or #text) + 1
    n = n + 1
    return n, line, nl == nil
  end
end

--- Reads the input file.
-- @tparam string path
-- @tparam[opt] string default_model
-- @tparam[opt] function open `io.open` or a stand-in (for tests)
-- @treturn table|nil `{items = {...}, malformed = {{line, reason}...},
--   duplicates = {{line, id, first}...}}`: items are the well-formed lines
--   in order; a duplicate id is listed, not kept
-- @treturn[opt] string why the file cannot be read
function M.read_input(path, default_model, open)
  local text, err = slurp(path, open or io.open)
  if not text then return nil, err end
  local r = { items = {}, malformed = {}, duplicates = {} }
  local first_line = {}
  for n, line in each_line(text) do
    if n == 1 then line = line:gsub("^\239\187\191", "") end -- a UTF-8 BOM
    line = line:gsub("\r$", "")
    if line:match("%S") then
      local item, reason = M.item(line, n, default_model)
      if not item then
        r.malformed[#r.malformed + 1] = { line = n, reason = reason }
      elseif first_line[item.id] then
        r.duplicates[#r.duplicates + 1] = { line = n, id = item.id, first = first_line[item.id] }
      else
        first_line[item.id] = n
        r.items[#r.items + 1] = item
      end
    end
  end
  return r
end

--- Whether an output record is a success.
-- @tparam table rec a decoded output line
-- @treturn boolean
function M.answered(rec)
  local r = rec.response
  return (rec.error == nil or rec.error == json.null) and type(r) == "table"
    and type(r.status_code) == "number" and r.status_code >= 200 and r.status_code < 300
end

-- Writes lines to path (each followed by "\n"), checking every write, the
-- flush and the close, and that the file holds all of it. Returns true, or
-- nil and a message naming the file.
local function write_all(path, lines, open)
  local out, why = open(path, "wb")
  if not out then return nil, "cannot write " .. tostring(why), nil, "output" end
  local size, ok, err = 0, true, nil
  for _, line in ipairs(lines) do
    ok, err = out:write(line, "\n")
    if not ok then break end
    size = size + #line + 1
  end
  if ok then ok, err = out:flush() end
  local at = ok and out:seek("end")
  local closed, cerr = out:close()
  if ok and not closed then ok, err = nil, cerr end
  if ok and at ~= size then ok, err = nil, ("holds %s bytes of %d"):format(tostring(at), size) end
  if not ok then return nil, "cannot write " .. path .. ": " .. tostring(err) end
  return true
end

-- Replaces the file at path by lines, through path .. ".tmp": the file is
-- replaced only when the copy was written whole. Windows' rename does not
-- replace an existing file: there the old one is removed first, and if the
-- rename still fails the error says where the whole copy is.
local function replace(path, lines, open)
  local tmp = path .. ".tmp"
  local ok, err = write_all(tmp, lines, open)
  if not ok then
    os.remove(tmp)
    return nil, "cannot rewrite " .. path .. " (left as it was): " .. tostring(err)
  end
  ok, err = os.rename(tmp, path)
  if ok then return true end
  if package.config:sub(1, 1) == "\\" and os.remove(path) then
    ok, err = os.rename(tmp, path)
    if ok then return true end
    return nil, ("cannot rename %s to %s (%s): the whole output is in %s"):format(tmp, path, tostring(err), tmp)
  end
  os.remove(tmp)
  return nil, "cannot rewrite " .. path .. " (left as it was): " .. tostring(err)
end

--- Reads what an earlier run wrote to the output: the ids answered with
-- success, and drops the lines that are to go (failures of ids about to be
-- sent again, a second success of one id, a line cut short by a crash).
-- The output is rewritten only then, and replaced only when the rewrite was
-- written whole; on any failure it is left as it was.
-- @tparam string path the output file
-- @tparam table wanted the ids of the input, as keys
-- @tparam[opt] function open `io.open` or a stand-in
-- @treturn table|nil `{done = {[id] = true}, count = ids of the input
--   already answered, dropped = {line numbers of incomplete lines}}`
-- @treturn[opt] string why it cannot be read or rewritten (names the file)
function M.resume(path, wanted, open)
  open = open or io.open
  local r = { done = {}, count = 0, dropped = {} }
  local probe = open(path, "rb")
  if not probe then return r end -- no output yet
  probe:close()
  local text, err = slurp(path, open)
  if not text then return nil, err end
  local keep, changed = {}, false
  for n, line, cut in each_line(text) do
    if cut then changed = true end -- the last line lacks its newline
    local rec = line:match("%S") and json.decode(line)
    if type(rec) ~= "table" or type(rec.custom_id) ~= "string" then
      if line:match("%S") then r.dropped[#r.dropped + 1] = n end
      changed = true
    elseif M.answered(rec) then
      if r.done[rec.custom_id] then
        changed = true
      else
        r.done[rec.custom_id] = true
        if wanted[rec.custom_id] then r.count = r.count + 1 end
        keep[#keep + 1] = line
      end
    elseif wanted[rec.custom_id] then
      changed = true -- sent again: its new line replaces this one
    else
      keep[#keep + 1] = line
    end
  end
  if changed then
    local ok, err2 = replace(path, keep, open)
    if not ok then return nil, err2 end
  end
  return r
end

--- One output line, in OpenAI's batch output format (its key order),
-- ending in "\n".
-- @tparam string id the line's id (`batch_req_...`)
-- @tparam string custom_id
-- @tparam[opt] table resp the response, or nil
-- @tparam[opt] table err the error, when resp is nil
-- @tparam[opt] string request_id
-- @treturn string
function M.record(id, custom_id, resp, err, request_id)
  local response, error_obj = json.null, json.null
  if resp then
    response = { status_code = 200, request_id = request_id or json.null, body = resp }
  else
    error_obj = { code = err.kind, message = err.message and tostring(err.message) or tostring(err) }
    if err.status then
      local body = err.body and json.decode(err.body)
      if body == nil then body = err.body or json.null end
      response = { status_code = err.status, request_id = err.request_id or json.null, body = body }
    end
  end
  return '{"id":' .. json.encode(id) .. ',"custom_id":' .. json.encode(custom_id) .. ',"response":'
    .. json.encode(response) .. ',"error":' .. json.encode(error_obj) .. "}\n"
end

-- Appends one line and flushes it; true, or nil and a message naming the file.
-- `at` is where the output ends (nil when it cannot seek): LuaJIT's flush
-- reports success on a full disk and drops the bytes, so the end must have
-- moved by what was written.
local function append(out, path, line, at)
  local ok, err = out:write(line)
  if ok then ok, err = out:flush() end
  if ok and at then
    local now = out:seek("end")
    if now and now < at + #line then
      ok, err = nil, "No space left on device (" .. (at + #line - now) .. " bytes did not reach the file)"
    end
    at = now
  end
  if not ok then return nil, "cannot write " .. path .. ": " .. tostring(err) end
  return true, at
end

--- Runs a batch file: reads the input, resumes from the output, sends what
-- is left with `client:batch` and appends each result to the output as it
-- ends. A write, flush or close failure of the output stops the run (what
-- is in flight is canceled) with an error naming the file.
-- @tparam Client client
-- @tparam table opts `input`, `output` (paths), `concurrency` (32),
--   `on_progress(p)` (as for `client:batch`), `input_read(r)` called with
--   the `read_input` result before anything is sent, `open` (`io.open` or a
--   stand-in, for tests)
-- @treturn table|nil the summary: `total` (requests sent), `succeeded`,
--   `failed`, `skipped` (already answered), `malformed`, `dropped_lines`
--   (line numbers of incomplete output lines dropped on resume),
--   `elapsed`, `requests_per_second`, `tokens`, `kinds` (failed requests
--   counted by error kind), `stopped` (why the batch
--   stopped early: a message), `status` (0, or 1 when a request failed or a
--   line was malformed)
-- @treturn[opt] string the error: the input or output cannot be read or
--   written (the message names the file), or ids are duplicated
-- @treturn[opt] table the summary so far, when requests were sent before it
-- @treturn[opt] string which file it concerns: "input" or "output"
function M.run(client, opts)
  local open = opts.open or io.open
  local input, err = M.read_input(opts.input, client.model, open)
  if not input then return nil, err, nil, "input" end
  if opts.input_read then opts.input_read(input) end
  if #input.duplicates > 0 then return nil, "custom_ids must be unique; nothing was sent", nil, "input" end
  local wanted = {}
  for _, item in ipairs(input.items) do wanted[item.id] = true end
  local prior, rerr = M.resume(opts.output, wanted, open)
  if not prior then return nil, rerr, nil, "output" end
  local todo, reqs = {}, {}
  for _, item in ipairs(input.items) do
    if not prior.done[item.id] then
      todo[#todo + 1] = item
      reqs[#reqs + 1] = item.req
    end
  end
  local out, why = open(opts.output, "ab")
  if not out then return nil, "cannot write " .. tostring(why), nil, "output" end
  -- ids unique across runs: the time, and the sub-second monotonic clock
  local stamp = ("%x%06x"):format(os.time(), math.floor(core.now() % 1 * 0xffffff))
  local s = { total = #todo, succeeded = 0, failed = 0, skipped = prior.count, malformed = #input.malformed,
              dropped_lines = prior.dropped, elapsed = 0, requests_per_second = 0, tokens = 0, kinds = {} }
  local werr
  local at = out.seek and out:seek("end") or nil
  local ok, perr = pcall(client.batch, client, reqs, {
    concurrency = opts.concurrency or 32, keep = false,
    on_result = function(i, resp, rerr2, request_id)
      local line = M.record(("batch_req_%s_%d"):format(stamp, i), todo[i].id, resp, rerr2, request_id)
      local wrote, where = append(out, opts.output, line, at) -- where: the new end, or the error
      if not wrote then
        werr = where
        error(werr, 0) -- stops the batch
      end
      at = where
      if resp then
        s.succeeded = s.succeeded + 1
      else
        s.failed = s.failed + 1
        local kind = type(rerr2) == "table" and rerr2.kind or "error"
        s.kinds[kind] = (s.kinds[kind] or 0) + 1
      end
    end,
    on_progress = function(p)
      s.elapsed, s.requests_per_second, s.tokens = p.elapsed, p.requests_per_second, p.tokens
      if opts.on_progress then opts.on_progress(p) end
    end,
  })
  local closed, cerr = out:close()
  if not werr and not closed then werr = "cannot write " .. opts.output .. ": " .. tostring(cerr) end
  if werr then return nil, werr, s, "output" end
  if not ok then s.stopped = tostring(perr):gsub("^[^\n]-%.lua:%d+: ", "") end -- no internal file path
  s.status = (s.failed > 0 or s.malformed > 0 or s.stopped) and 1 or 0
  return s
end

return M
