--- baseten_nvim: a minimal Neovim plugin over baseten's non-blocking API.
--
--     require("baseten_nvim").setup{
--       base_url = "https://inference.baseten.co/v1",  -- default: $BASETEN_BASE_URL, else Baseten's
--       api_key = "...",                               -- default: $BASETEN_API_KEY
--       model = "deepseek-ai/DeepSeek-V3.1",           -- default: $BASETEN_MODEL, else this
--       rocks_tree = "~/.luarocks",  -- optional: a luarocks tree holding baseten for Lua 5.1
--     }
--     :BasetenChat Explain this error message
--     :BasetenPlan Rename the function foo to bar
--     :BasetenSearch where are the retries decided
--     :BasetenAgent What does the function under the cursor do?
--
-- `:BasetenChat` opens a scratch buffer and streams the reply into it. The
-- request runs on the client's libcurl engine; baseten.uv's timer calls
-- `client:poll(0)` every `interval` ms (10), which never blocks, so the
-- editor keeps running while tokens arrive. The timer stops as soon as no
-- request is pending and starts again with the next one. Wiping the buffer
-- cancels its request.
--
-- `:BasetenSearch` embeds the current buffer in chunks of `chunk_lines`
-- lines (client:start_embed, driven by the same timer, so the editor never
-- waits) and the query with it, ranks the chunks with
-- baseten.vector.top_k and fills the quickfix list with the best
-- `search_results`, best first. The chunks' vectors are kept per buffer
-- until it changes, so a second search embeds only the query. Embeddings
-- come from `embed_base_url` (default: base_url; on Baseten, your
-- embedding deployment's .../sync/v1) with `embed_model`.
--
-- `:BasetenAgent` runs a tool loop (client:start_tools, driven by the same
-- timer) whose tools read the editor's buffers: each tool call is asked
-- first through `vim.ui.select` (config.confirm = false skips it), the tool
-- answers on the main loop (an asynchronous handler), and the rounds'
-- text streams into a scratch buffer. <C-c> in that buffer (or
-- :BasetenCancel) cancels the loop at once: nothing more is sent, and what
-- was done is kept in `job.transcript` (`M.resume(job)` goes on from it).
--
-- `:BasetenPlan` asks for an edit plan as structured output,
-- `{"file": ..., "steps": [{"line": n, "text": ...}, ...]}`, and shows it
-- filling in while the JSON streams: `driver:start(req, {json = true,
-- on_partial = fn})` hands over one live table after each delta, and the
-- buffer is redrawn from it (a step's text grows as it arrives).
--
-- baseten itself is a plugin too (its repository, with build.lua): install
-- both with your plugin manager, and nothing else is needed. `rocks_tree`
-- is for a baseten installed with `luarocks --lua-version=5.1` instead.
-- luacheck: globals vim
local M = {}

local config = {
  base_url = nil,
  api_key = nil,
  model = nil,
  interval = 10, -- ms between polls
  max_tokens = nil,
  system = nil, -- an optional system message
  rocks_tree = nil,
  embed_base_url = nil, -- where embeddings come from (default: base_url)
  embed_model = nil,
  embed_dimensions = nil,
  chunk_lines = 20, -- lines per chunk of a searched buffer
  search_results = 5,
  confirm = true, -- :BasetenAgent asks before each tool call (vim.ui.select)
  tools = {}, -- more baseten.tool values for :BasetenAgent
  max_rounds = 6,
}

local client -- made on first use
local driver -- baseten.uv: polls client from a timer while requests are pending
local buffers = 0
local old_ticks = 0 -- polls by the drivers of earlier clients
local cache = {} -- searched buffers: buf -> {tick, chunks, vectors}

--- Timer polls so far (for the curious, and for tests).
function M.ticks()
  return old_ticks + (driver and driver.ticks or 0)
end

--- Every chat started, newest last: `{buf, handle, prompt, text, chunks,
-- done, err, ticks_at_first_chunk, ticks_at_done}`.
M.jobs = {}

local function notify(msg, level)
  vim.notify("baseten: " .. msg, level or vim.log.levels.INFO)
end

-- Puts a luarocks tree's Lua 5.1 directories in front of the search paths.
local function add_tree(tree)
  tree = vim.fn.expand(tree):gsub("/+$", "")
  local lua = tree .. "/share/lua/5.1/?.lua;" .. tree .. "/share/lua/5.1/?/init.lua;"
  local so = tree .. "/lib/lua/5.1/?.so;"
  if not package.path:find(lua, 1, true) then package.path = lua .. package.path end
  if not package.cpath:find(so, 1, true) then package.cpath = so .. package.cpath end
end

--- Cancels every pending request (their buffers say so).
function M.cancel_all()
  for _, list in ipairs({ M.jobs, M.agents }) do
    for _, job in ipairs(list) do
      if not job.done and job.handle then job.handle:cancel() end
    end
  end
end

--- Sets options; a later call replaces the client (pending replies are canceled).
function M.setup(opts)
  opts = opts or {}
  for k, v in pairs(opts) do config[k] = v end
  if config.rocks_tree then add_tree(config.rocks_tree) end
  M.searches, cache = {}, {}
  if M.embed_client then
    M.embed_driver:stop()
    M.embed_client:close()
    M.embed_client, M.embed_driver = nil, nil
  end
  if client then
    M.cancel_all()
    driver:stop()
    old_ticks = old_ticks + driver.ticks
    client:close()
    client, driver = nil, nil
  end
end

local function get_client()
  if client then return client end
  local ok, baseten = pcall(require, "baseten")
  if not ok then
    error("cannot load baseten: is the baseten plugin installed and built (its build.lua)?\n"
      .. tostring(baseten), 0)
  end
  client = baseten.new{
    base_url = config.base_url,
    api_key = config.api_key,
    model = config.model or os.getenv("BASETEN_MODEL") or "deepseek-ai/DeepSeek-V3.1",
  }
  -- handlers run on the main loop (vim.schedule), where the buffer API works
  driver = require("baseten.uv").new(client, {
    interval = config.interval,
    on_error = function(err) notify(tostring(err), vim.log.levels.ERROR) end,
  })
  return client
end

--- Whether the poll timer is running.
function M.timer_active()
  return driver ~= nil and driver:active()
end

--- Requests still pending.
function M.pending()
  return client and client:pending() or 0
end

local function split_lines(s)
  local lines, from = {}, 1
  while true do
    local at = s:find("\n", from, true)
    if not at then break end
    lines[#lines + 1] = s:sub(from, at - 1)
    from = at + 1
  end
  lines[#lines + 1] = s:sub(from)
  return lines
end

-- Appends text at the end of the buffer (the text may hold newlines) and
-- keeps the buffer's windows scrolled to it.
local function append(buf, text)
  if not vim.api.nvim_buf_is_valid(buf) then return end
  local last = vim.api.nvim_buf_line_count(buf)
  local tail = vim.api.nvim_buf_get_lines(buf, last - 1, last, false)[1] or ""
  local lines = split_lines(tail .. text)
  vim.api.nvim_buf_set_lines(buf, last - 1, last, false, lines)
  local line_count = last - 1 + #lines
  for _, win in ipairs(vim.fn.win_findbuf(buf)) do
    pcall(vim.api.nvim_win_set_cursor, win, { line_count, 0 })
  end
end

local function open_buffer()
  buffers = buffers + 1
  vim.cmd("botright new")
  local buf = vim.api.nvim_get_current_buf()
  vim.bo[buf].buftype = "nofile"
  vim.bo[buf].bufhidden = "wipe"
  vim.bo[buf].swapfile = false
  vim.bo[buf].filetype = "markdown"
  pcall(vim.api.nvim_buf_set_name, buf, "baseten://chat/" .. buffers)
  return buf
end

-- Whether a command can start: its text is given and `get` (get_client,
-- or get_embed_client) makes the client; else the user is told why
-- (`usage`: the command's usage line). Returns true and the client.
local function can_start(text, usage, get)
  if type(text) ~= "string" or text == "" then
    notify("usage: " .. usage, vim.log.levels.WARN)
    return false
  end
  local ok, c = pcall(get)
  if not ok then
    notify(tostring(c), vim.log.levels.ERROR)
    return false
  end
  return true, c
end

-- A failure other than a cancel: at the end of the job's buffer, and
-- as a notification.
local function show_error(buf, err)
  if err and err.kind ~= "canceled" then
    append(buf, "\n\n[" .. tostring(err) .. "]")
    notify(tostring(err), vim.log.levels.ERROR)
  end
end

-- A wiped buffer has no reader left: the job's request stops then.
local function cancel_on_wipe(job)
  vim.api.nvim_create_autocmd("BufWipeout", {
    buffer = job.buf, once = true,
    callback = function()
      if job.handle and not job.done then job.handle:cancel() end
    end,
  })
end

--- Streams the reply to `prompt` into a new scratch buffer; returns the job.
function M.chat(prompt)
  if not can_start(prompt, ":BasetenChat {prompt}", get_client) then return nil end
  local buf = open_buffer()
  local messages = {}
  if config.system then messages[1] = { role = "system", content = config.system } end
  messages[#messages + 1] = { role = "user", content = prompt }
  local job = { buf = buf, prompt = prompt, text = "", chunks = 0, done = false }
  M.jobs[#M.jobs + 1] = job
  job.handle = driver:start({ messages = messages, stream = true, max_tokens = config.max_tokens }, {
    on_chunk = function(chunk)
      local choice = chunk.choices and chunk.choices[1]
      local piece = type(choice) == "table" and type(choice.delta) == "table" and choice.delta.content
      if type(piece) ~= "string" or piece == "" then return end
      job.chunks = job.chunks + 1
      job.ticks_at_first_chunk = job.ticks_at_first_chunk or M.ticks()
      job.text = job.text .. piece
      append(buf, piece)
    end,
    on_done = function(_, err)
      job.done, job.err = true, err
      job.ticks_at_done = M.ticks()
      show_error(buf, err)
    end,
  })
  cancel_on_wipe(job)
  return job
end

-------------------------------------------------------------- agent

--- Every tool loop started, newest last: `{buf, source, handle, text,
-- rounds, calls, results, confirms, done, err, transcript, ticks_at_start,
-- ticks_at_done}`.
M.agents = {}

-- The buffer whose name ends with `name`, else `fallback`.
local function find_buffer(name, fallback)
  if type(name) == "string" and name ~= "" then
    for _, b in ipairs(vim.api.nvim_list_bufs()) do
      local full = vim.api.nvim_buf_get_name(b)
      if vim.api.nvim_buf_is_loaded(b) and full ~= "" and full:sub(-#name) == name then return b end
    end
  end
  return fallback
end

-- The editor's tools: asynchronous handlers that answer on the main loop.
local function editor_tools(baseten, job)
  local tools = {
    baseten.tool{ name = "read_buffer", description = "The text of a buffer: by the end of its file name,"
        .. " else the one the user was in", parameters = { type = "object",
        properties = { name = { type = "string", description = "the end of the buffer's file name" } } },
      handler = function(args)
        return function(resolve)
          vim.schedule(function()
            local b = find_buffer(args.name, job.source)
            if not vim.api.nvim_buf_is_valid(b) then return resolve(nil, "no such buffer") end
            resolve(table.concat(vim.api.nvim_buf_get_lines(b, 0, -1, false), "\n"))
          end)
        end
      end },
    baseten.tool{ name = "list_buffers", description = "The names of the loaded buffers",
      parameters = { type = "object", properties = {} },
      handler = function()
        local names = {}
        for _, b in ipairs(vim.api.nvim_list_bufs()) do
          if vim.api.nvim_buf_is_loaded(b) then names[#names + 1] = vim.api.nvim_buf_get_name(b) end
        end
        return names
      end },
  }
  for _, t in ipairs(config.tools) do tools[#tools + 1] = t end
  return tools
end

-- Asks through vim.ui.select (dressing, telescope, or the built-in list).
local function ask_user(job)
  return function(name, args, resolve)
    job.confirms = job.confirms + 1
    local shown = vim.json and vim.json.encode(args) or vim.fn.json_encode(args)
    vim.ui.select({ "Allow", "Deny" }, { prompt = ("Run tool %s %s?"):format(name, shown) }, function(choice)
      resolve(choice == "Allow", choice == nil and "dismissed" or nil)
    end)
  end
end

-- Starts a loop for `job` from `req` (new, or resumed from a transcript).
local function run_agent(job, req)
  local baseten = require("baseten")
  local buf = job.buf
  req.tools = editor_tools(baseten, job)
  req.stream, req.max_rounds = true, config.max_rounds
  job.ticks_at_start = M.ticks()
  job.handle = get_client():start_tools(req, {
    confirm = config.confirm and ask_user(job) or nil,
    on_content = function(piece)
      job.text = job.text .. piece
      append(buf, piece)
    end,
    on_round = function(n) job.rounds = n end,
    on_tool_call = function(call)
      job.calls = job.calls + 1
      append(buf, "\n[" .. call["function"].name .. " " .. tostring(call["function"].arguments) .. "]\n")
    end,
    on_tool_result = function(_, text)
      job.results = job.results + 1
      append(buf, "[" .. #text .. " bytes back]\n")
    end,
    on_done = function(_, transcript, err)
      job.done, job.err, job.transcript = true, err, transcript
      job.ticks_at_done = M.ticks()
      if err then append(buf, "\n\n[" .. (err.kind == "canceled" and "canceled" or tostring(err)) .. "]") end
    end,
  })
  driver:kick()
  return job
end

--- Runs a tool loop on `prompt`; its text streams into a new scratch
-- buffer (<C-c> there cancels it). Returns the job.
function M.agent(prompt)
  if not can_start(prompt, ":BasetenAgent {prompt}", get_client) then return nil end
  local source = vim.api.nvim_get_current_buf()
  local buf = open_buffer()
  local job = { buf = buf, source = source, prompt = prompt, text = "", rounds = 0, calls = 0, results = 0,
                confirms = 0, done = false }
  M.agents[#M.agents + 1] = job
  vim.keymap.set("n", "<C-c>", function()
    if job.handle and not job.done then job.handle:cancel() end
  end, { buffer = buf, desc = "Cancel this Baseten agent" })
  cancel_on_wipe(job)
  return run_agent(job, { messages = { { role = "user", content = prompt } } })
end

--- Goes on with a canceled (or failed) agent from its transcript, in its buffer.
function M.resume(job)
  if not (job and job.done and job.transcript) then return nil end
  job.done, job.err = false, nil
  return run_agent(job, { transcript = job.transcript })
end

-------------------------------------------------------------- search

--- Every search started, newest last: `{buf, query, chunks, done, err,
-- items, ticks_at_start, ticks_at_done, embedded}` (`embedded`: the texts
-- sent, the query included).
M.searches = {}

local function get_embed_client()
  if M.embed_client then return M.embed_client end
  local baseten = require("baseten")
  M.embed_client = baseten.new{
    base_url = config.embed_base_url or config.base_url,
    api_key = config.api_key,
    model = config.embed_model,
  }
  M.embed_driver = require("baseten.uv").new(M.embed_client, {
    interval = config.interval,
    on_error = function(err) notify(tostring(err), vim.log.levels.ERROR) end,
  })
  return M.embed_client
end

-- The buffer in chunks of chunk_lines lines: {first = line, text = ...}.
local function chunks_of(buf)
  local lines = vim.api.nvim_buf_get_lines(buf, 0, -1, false)
  local out, n = {}, config.chunk_lines
  for first = 1, #lines, n do
    local text = table.concat(lines, "\n", first, math.min(first + n - 1, #lines))
    if text:match("%S") then out[#out + 1] = { first = first, text = text } end
  end
  return out
end

-- Ranks the chunks against the query vector; fills the quickfix list.
local function show(job, buf, chunks, vectors, qv)
  local vector = require("baseten").vector
  local idx, scores = vector.top_k(qv, vectors, config.search_results)
  local items = {}
  for rank, i in ipairs(idx) do
    local c = chunks[i]
    items[rank] = { bufnr = buf, lnum = c.first, col = 1,
                    text = ("%.3f  %s"):format(scores[rank], (c.text:match("[^\n]*%S[^\n]*") or ""):sub(1, 80)) }
  end
  job.items = items
  vim.fn.setqflist({}, " ", { title = "BasetenSearch: " .. job.query, items = items })
end

--- Finds the chunks of the current buffer closest to `query`; fills the
-- quickfix list when done. Returns the search job.
function M.search(query)
  local ok, c = can_start(query, ":BasetenSearch {query}", get_embed_client)
  if not ok then return nil end
  local buf = vim.api.nvim_get_current_buf()
  local tick = vim.api.nvim_buf_get_changedtick(buf)
  local cached = cache[buf]
  if cached and cached.tick ~= tick then cached = nil end
  local chunks = cached and cached.chunks or chunks_of(buf)
  local job = { buf = buf, query = query, chunks = #chunks, done = false, ticks_at_start = M.embed_driver.ticks }
  M.searches[#M.searches + 1] = job
  if #chunks == 0 then
    job.done = true
    notify("nothing to search in this buffer", vim.log.levels.WARN)
    return job
  end
  local texts = {}
  if not cached then
    for i, ch in ipairs(chunks) do texts[i] = ch.text end
  end
  texts[#texts + 1] = query
  job.embedded = #texts
  job.handle = c:start_embed(texts, {
    dimensions = config.embed_dimensions,
    on_done = function(vectors, err)
      job.done, job.ticks_at_done = true, M.embed_driver.ticks
      if not vectors then
        job.err = err
        notify(tostring(err), vim.log.levels.ERROR)
        return
      end
      local qv = table.remove(vectors)
      if not cached then
        cached = { tick = tick, chunks = chunks, vectors = vectors }
        cache[buf] = cached
      end
      show(job, buf, chunks, cached.vectors, qv)
    end,
  })
  M.embed_driver:kick()
  return job
end

-------------------------------------------------------------- plan

--- The JSON Schema of an edit plan.
M.PLAN_SCHEMA = {
  type = "object",
  properties = {
    file = { type = "string" },
    steps = {
      type = "array",
      items = {
        type = "object",
        properties = { line = { type = "integer" }, text = { type = "string" } },
        required = { "line", "text" },
        additionalProperties = false,
      },
    },
  },
  required = { "file", "steps" },
  additionalProperties = false,
}

-- The lines that show a plan (whole or partial).
local function plan_lines(plan, done)
  local lines = { "# Edit plan" .. (done and "" or " (streaming...)"), "",
                  "file: " .. (type(plan.file) == "string" and plan.file or "...") }
  for i, step in ipairs(type(plan.steps) == "table" and plan.steps or {}) do
    local text = type(step) == "table" and type(step.text) == "string" and step.text or ""
    local line = type(step) == "table" and step.line
    lines[#lines + 1] = ("%d. %s%s"):format(i, line and ("line " .. tostring(line) .. ": ") or "", text)
  end
  return lines
end

local function render(buf, plan, done)
  if not vim.api.nvim_buf_is_valid(buf) then return end
  local lines = {}
  for _, l in ipairs(plan_lines(plan, done)) do
    for _, part in ipairs(split_lines(l)) do lines[#lines + 1] = part end
  end
  vim.api.nvim_buf_set_lines(buf, 0, -1, false, lines)
end

--- Asks for an edit plan for `prompt` and shows it filling in while it
-- streams; returns the job (`plan` is the live table; `updates` counts
-- redraws before the end; `value` the validated plan at the end).
function M.plan(prompt)
  if not can_start(prompt, ":BasetenPlan {what to change}", get_client) then return nil end
  local buf = open_buffer()
  local job = { buf = buf, prompt = prompt, plan = {}, updates = 0, done = false }
  M.jobs[#M.jobs + 1] = job
  job.handle = driver:start({
    messages = { { role = "system", content = "Answer with an edit plan: the file to change and its steps." },
                 { role = "user", content = prompt } },
    schema = M.PLAN_SCHEMA, schema_name = "edit_plan", max_tokens = config.max_tokens,
  }, {
    json = true,
    on_partial = function(snapshot)
      job.plan = snapshot
      job.updates = job.updates + 1
      job.ticks_at_first_chunk = job.ticks_at_first_chunk or M.ticks()
      render(buf, snapshot, false)
    end,
    on_done = function(value, err)
      job.done, job.value, job.err = true, value, value == nil and err or nil
      job.ticks_at_done = M.ticks()
      if value then
        render(buf, value, true)
      else
        show_error(buf, err)
      end
    end,
  })
  cancel_on_wipe(job)
  return job
end

return M
