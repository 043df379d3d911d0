-- Test driver for the example plugin's :BasetenSearch (spec/hosts_spec.lua
-- runs it, as driver.lua): a buffer of three 20-line chunks about three
-- topics; `:BasetenSearch` must put the chunk about the query first in the
-- quickfix list while the editor's heartbeat keeps beating; a second search
-- of the unchanged buffer embeds only the query.
-- luacheck: globals vim
local uv = vim.uv or vim.loop
local here = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or "."
local h = dofile(here .. "/harness.lua")
local result, now_ms, fail, quit = h.result, h.now_ms, h.fail, h.quit

local TOPICS = {
  "the cat sleeps on the warm sofa all afternoon",
  "retry the request after a rate limit with exponential backoff",
  "bake the bread dough in a hot oven until golden",
}

local ok, err = pcall(function()
  local plugin = h.plugin("BasetenSearch", { interval = 10, embed_dimensions = 256 })
  local lines = {}
  for _, topic in ipairs(TOPICS) do
    for i = 1, 20 do lines[#lines + 1] = topic .. " " .. i end
  end
  vim.api.nvim_buf_set_lines(0, 0, -1, false, lines)
  local heartbeat = h.heartbeat()
  heartbeat.streaming = true

  local t0 = now_ms()
  vim.cmd("BasetenSearch when to retry after a rate limit")
  local first = plugin.searches[#plugin.searches]
  result.returned_before_done = not first.done
  local second
  local watcher = uv.new_timer()
  watcher:start(20, 20, vim.schedule_wrap(function()
    if now_ms() - t0 > 20000 then
      watcher:stop()
      return fail("the search did not finish within 20 s")
    end
    if not first.done then return end
    if not second then
      result.first_items = vim.fn.getqflist()
      result.first_err = first.err and tostring(first.err) or nil
      result.first_embedded = first.embedded
      result.first_ticks = first.ticks_at_done - first.ticks_at_start
      vim.cmd("BasetenSearch bread in the oven")
      second = plugin.searches[#plugin.searches]
      return
    end
    if not second.done then return end
    watcher:stop()
    heartbeat.stop()
    local items = vim.fn.getqflist()
    result.second_lnum = items[1] and items[1].lnum
    result.second_embedded = second.embedded
    result.heartbeats = heartbeat.beats
    result.max_heartbeat_gap_ms = heartbeat.max_gap
    result.ok = true
    quit()
  end))
end)
if not ok then fail(err) end
