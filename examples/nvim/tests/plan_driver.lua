-- Test driver for the example plugin's :BasetenPlan (spec/hosts_spec.lua
-- runs it, as driver.lua): runs `:BasetenPlan` and, on every redraw while
-- the JSON streams, records what the buffer shows; writes a JSON result
-- file and quits once the plan is done.
-- luacheck: globals vim
local uv = vim.uv or vim.loop
local here = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or "."
local h = dofile(here .. "/harness.lua")
local result, now_ms, fail, quit = h.result, h.now_ms, h.fail, h.quit

local ok, err = pcall(function()
  local plugin = h.plugin("BasetenPlan", { model = os.getenv("BASETEN_TEST_MODEL") or "test/plan-paced",
                                           interval = 10 })
  local t0 = now_ms()
  vim.cmd("BasetenPlan " .. (os.getenv("BASETEN_TEST_PROMPT") or "rename foo"))
  local job = plugin.jobs[#plugin.jobs]
  result.partial_views = {} -- the buffer's text at each watcher tick while streaming
  local watcher = uv.new_timer()
  watcher:start(10, 10, vim.schedule_wrap(function()
    if not job.done then
      if job.updates > 0 then
        local text = table.concat(vim.api.nvim_buf_get_lines(job.buf, 0, -1, false), "\n")
        if result.partial_views[#result.partial_views] ~= text then
          result.partial_views[#result.partial_views + 1] = text
        end
      end
      if now_ms() - t0 > 20000 then
        watcher:stop()
        fail("the plan did not finish within 20 s")
      end
      return
    end
    watcher:stop()
    result.ok = true
    result.err = job.err and tostring(job.err) or nil
    result.updates = job.updates
    result.value = job.value
    result.text = table.concat(vim.api.nvim_buf_get_lines(job.buf, 0, -1, false), "\n")
    quit()
  end))
end)
if not ok then fail(err) end
