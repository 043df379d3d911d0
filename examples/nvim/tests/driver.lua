-- Test driver for the example plugin (spec/hosts_spec.lua runs it):
--
--   BASETEN_TEST_URL=http://127.0.0.1:PORT/v1 BASETEN_TEST_RESULT=/tmp/out.json \
--   nvim --headless -u NONE -i NONE --cmd "set rtp^=." --cmd "set rtp^=examples/nvim" \
--        -c "luafile examples/nvim/tests/driver.lua"
--
-- It runs `:BasetenChat hello` and, while the editor's main loop runs
-- normally, watches an independent 5 ms "heartbeat" timer (the editor's
-- other work). Once the reply is done it writes a JSON result file and
-- quits: buffer text, the job's counters, the plugin timer's ticks while
-- tokens arrived, the heartbeats meanwhile and the longest gap between them.
-- luacheck: globals vim
local uv = vim.uv or vim.loop
local here = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or "."
local h = dofile(here .. "/harness.lua")
local result, now_ms, fail, quit = h.result, h.now_ms, h.fail, h.quit

local ok, err = pcall(function()
  local plugin = h.plugin("BasetenChat", { model = "test/model", interval = 10 })
  result.core_file = vim.api.nvim_get_runtime_file("lua/baseten/core.so", true)

  -- the editor's own work: a heartbeat through the main loop
  local heartbeat = h.heartbeat()

  local t0 = now_ms()
  vim.cmd("BasetenChat " .. (os.getenv("BASETEN_TEST_PROMPT") or "hello"))
  local job = plugin.jobs[#plugin.jobs]
  result.timer_started = plugin.timer_active()
  result.current_is_chat = vim.api.nvim_get_current_buf() == job.buf

  local ticks_at_done
  local watcher = uv.new_timer()
  watcher:start(20, 20, vim.schedule_wrap(function()
    if job.chunks > 0 and not job.done then heartbeat.streaming = true end
    if job.done and not ticks_at_done then
      heartbeat.streaming = false
      ticks_at_done = plugin.ticks()
      return
    end
    if not ticks_at_done then
      if now_ms() - t0 > 20000 then
        watcher:stop()
        fail("the reply did not finish within 20 s")
      end
      return
    end
    -- done, and a few watcher ticks later: has the poll timer stopped?
    watcher:stop()
    heartbeat.stop()
    local lines = vim.api.nvim_buf_get_lines(job.buf, 0, -1, false)
    result.ok = true
    result.text = table.concat(lines, "\n")
    result.job_text = job.text
    result.chunks = job.chunks
    result.err = job.err and tostring(job.err) or nil
    result.elapsed_ms = now_ms() - t0
    result.ticks_total = plugin.ticks()
    result.ticks_streaming = (job.ticks_at_done or 0) - (job.ticks_at_first_chunk or 0)
    result.ticks_after_done = plugin.ticks() - ticks_at_done
    result.timer_active = plugin.timer_active()
    result.pending = plugin.pending()
    result.heartbeats_streaming = heartbeat.beats
    result.max_heartbeat_gap_ms = heartbeat.max_gap
    result.buftype = vim.bo[job.buf].buftype
    result.bufname = vim.api.nvim_buf_get_name(job.buf)
    quit()
  end))
end)
if not ok then fail(err) end
