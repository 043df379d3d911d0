-- Runs inside a headless `nvim -u NONE` whose runtimepath holds only a fresh
-- copy of the repository, used as a plugin folder after its build.lua ran
-- (spec/hosts_spec.lua starts it, with no LUA_PATH or LUA_CPATH):
--
--   BASETEN_TEST_URL=http://127.0.0.1:PORT/v1 BASETEN_TEST_RESULT=/tmp/out.json \
--   nvim --headless -u NONE -i NONE -n --cmd "set rtp^=PLUGIN" -c "luafile spec/support/nvim_plugin.lua"
--
-- It requires baseten, streams a reply into a buffer through baseten.uv
-- while an independent 5 ms heartbeat timer keeps ticking, then starts a
-- second stream and cancels it at its first chunk, then runs
-- `:checkhealth baseten` (with the models() check) and keeps its lines.
-- It writes a JSON result file and quits.
-- luacheck: globals vim
local here = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or "."
local harness = dofile(here .. "/../../examples/nvim/tests/harness.lua")
local result, now_ms, fail, quit, protect = harness.result, harness.now_ms, harness.fail, harness.quit, harness.protect
local url = assert(os.getenv("BASETEN_TEST_URL"), "BASETEN_TEST_URL is not set")

local function health_lines()
  vim.g.baseten_health = { models = true, base_url = url }
  vim.cmd("checkhealth baseten")
  return vim.api.nvim_buf_get_lines(0, 0, -1, false)
end

protect(function()
  result.env_lua_path = os.getenv("LUA_PATH") or vim.NIL
  result.env_lua_cpath = os.getenv("LUA_CPATH") or vim.NIL
  local baseten = require("baseten")
  result.version = baseten.VERSION
  result.core_file = vim.api.nvim_get_runtime_file("lua/baseten/core.so", true)
  result.init_file = vim.api.nvim_get_runtime_file("lua/baseten/init.lua", true)
  -- found through the runtimepath, not package.cpath
  result.core_on_cpath = package.searchpath("baseten.core", package.cpath) or vim.NIL

  local client = baseten.new{ base_url = url, api_key = "test-key", model = "test/model" }
  local driver = require("baseten.uv").new(client, { interval = 10 })
  local buf = vim.api.nvim_create_buf(false, true)

  local heartbeat = harness.heartbeat()

  local text, chunks, first_tick, done_tick = "", 0, nil, nil
  local second = { chunks = 0 }
  local t0 = now_ms()

  local function finish()
    heartbeat.stop()
    result.text = text
    result.buffer = table.concat(vim.api.nvim_buf_get_lines(buf, 0, -1, false), "\n")
    result.chunks = chunks
    result.heartbeats_streaming = heartbeat.beats
    result.max_heartbeat_gap_ms = heartbeat.max_gap
    result.ticks_streaming = (done_tick or 0) - (first_tick or 0)
    result.second_chunks = second.chunks
    result.second_err_kind = second.err_kind or vim.NIL
    result.second_done = second.done or false
    result.active_after = driver:active()
    result.pending_after = client:pending()
    result.health = health_lines()
    result.ok = true
    quit()
  end

  local function start_second()
    local h
    h = driver:start({ messages = { { role = "user", content = "second" } }, stream = true }, {
      on_chunk = protect(function()
        second.chunks = second.chunks + 1
        if second.chunks == 1 then h:cancel() end
      end),
      on_done = protect(function(_, err)
        second.done = true
        second.err_kind = err and err.kind
        -- a few ticks later: the timer must have stopped by itself
        vim.defer_fn(protect(finish), 100)
      end),
    })
  end

  driver:start({ messages = { { role = "user", content = "hello" } }, stream = true }, {
    on_chunk = protect(function(chunk)
      local piece = chunk.choices[1] and chunk.choices[1].delta.content
      if type(piece) ~= "string" or piece == "" then return end
      heartbeat.streaming = true
      first_tick = first_tick or driver.ticks
      chunks = chunks + 1
      text = text .. piece
      -- the buffer API: only allowed on the main loop, where baseten.uv polls
      local last = vim.api.nvim_buf_line_count(buf)
      local tail = vim.api.nvim_buf_get_lines(buf, last - 1, last, false)[1] or ""
      vim.api.nvim_buf_set_lines(buf, last - 1, last, false, vim.split(tail .. piece, "\n", { plain = true }))
    end),
    on_done = protect(function(_, err)
      heartbeat.streaming = false
      done_tick = driver.ticks
      result.err = err and tostring(err) or vim.NIL
      result.elapsed_ms = now_ms() - t0
      start_second()
    end),
  })
  result.active_at_start = driver:active()

  vim.defer_fn(function() fail("not done within 30 s") end, 30000)
end)()
