-- Test driver for the example plugin's :BasetenAgent (spec/hosts_spec.lua
-- runs it, as driver.lua):
--
--   1. an agent whose first round streams slowly (the spec scripts it) is
--      canceled with <C-c> in its buffer after its first text: the loop
--      ends as canceled with its transcript, and nothing more is sent;
--   2. an agent runs to its end: the model calls read_buffer, vim.ui.select
--      is asked (answered "Allow" 50 ms later, as a picker would), the tool
--      answers on the main loop, and the second round's answer streams in.
-- Meanwhile a 5 ms heartbeat timer (the editor's other work) is counted.
-- luacheck: globals vim
local uv = vim.uv or vim.loop
local here = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or "."
local h = dofile(here .. "/harness.lua")
local result, now_ms, fail, quit = h.result, h.now_ms, h.fail, h.quit

local ok, err = pcall(function()
  local plugin = h.plugin("BasetenAgent", { model = "test/model", interval = 10 })
  -- an asynchronous picker: answers 50 ms later
  result.prompts = {}
  vim.ui.select = function(items, opts, on_choice)
    result.prompts[#result.prompts + 1] = opts.prompt
    vim.defer_fn(function() on_choice(items[1], 1) end, 50)
  end
  vim.api.nvim_buf_set_lines(0, 0, -1, false, { "local answer = 42" })

  local heartbeat = h.heartbeat()
  heartbeat.streaming = true
  local t0 = now_ms()

  vim.cmd("BasetenAgent tell me a story")
  local first = plugin.agents[1]
  result.returned_at_once = not first.done
  local phase, second = "cancel", nil
  local canceled_at
  local watcher = uv.new_timer()
  watcher:start(10, 10, vim.schedule_wrap(h.protect(function()
    if now_ms() - t0 > 30000 then
      watcher:stop()
      return fail("the agents did not finish within 30 s (phase " .. phase .. ")")
    end
    if phase == "cancel" then
      if first.text == "" then return end
      vim.api.nvim_set_current_buf(first.buf)
      vim.api.nvim_feedkeys(vim.api.nvim_replace_termcodes("<C-c>", true, false, true), "x", false)
      result.first_done_after_key = first.done
      result.first_err = first.err and first.err.kind
      result.first_transcript = first.transcript and #first.transcript
      result.first_text = first.text
      canceled_at, phase = now_ms(), "quiet"
    elseif phase == "quiet" then
      if now_ms() - canceled_at < 500 then return end
      result.first_text_later = first.text
      vim.api.nvim_set_current_buf(first.source)
      vim.cmd("BasetenAgent Read my buffer please")
      second, phase = plugin.agents[2], "run"
    elseif phase == "run" then
      if not second.done then return end
      watcher:stop()
      heartbeat.stop()
      result.ok = true
      result.second_err = second.err and tostring(second.err)
      result.rounds, result.calls, result.results, result.confirms = second.rounds, second.calls, second.results,
        second.confirms
      result.transcript_roles = {}
      for i, m in ipairs(second.transcript) do result.transcript_roles[i] = m.role end
      result.tool_content = second.transcript[3] and second.transcript[3].content
      result.text = second.text
      result.buffer = table.concat(vim.api.nvim_buf_get_lines(second.buf, 0, -1, false), "\n")
      result.ticks = second.ticks_at_done - second.ticks_at_start
      result.heartbeats = heartbeat.beats
      result.max_heartbeat_gap_ms = heartbeat.max_gap
      quit()
    end
  end)))
end)
if not ok then fail(err) end
