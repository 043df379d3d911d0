-- Runs inside a headless `nvim -u NONE` (spec/mcp_nvim_spec.lua starts it
-- with LUA_PATH and LUA_CPATH on the 5.1 build, which Neovim's LuaJIT
-- loads): connects to the fault server (BASETEN_TEST_SERVER, a command
-- line) with start_connect, then lists its tools and calls the slow echo
-- (0.5 s) through session:start, all driven by a 10 ms libuv timer that polls with 0, while a
-- 5 ms heartbeat timer counts the editor's ticks; then registers the
-- server and keeps the lines of :checkhealth baseten. Writes a JSON
-- result file and quits.
-- luacheck: globals vim
local here = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or "."
local harness = dofile(here .. "/../../examples/nvim/tests/harness.lua")
local result, quit, protect = harness.result, harness.quit, harness.protect
local uv = vim.uv or vim.loop

protect(function()
  local mcp = require("baseten.mcp")
  local words = vim.split(assert(os.getenv("BASETEN_TEST_SERVER")), " ", { trimempty = true })
  local heartbeat = harness.heartbeat()
  heartbeat.streaming = true
  local listed, called, polls = nil, nil, 0
  -- connect without blocking too: the calls start once the handshake is done
  local s = assert(mcp.start_connect{ command = words, on_ready = function(sess, err)
    if err then
      listed, called = tostring(err), tostring(err)
      return
    end
    sess:start("tools/list", nil, { on_done = function(r, lerr) listed = r or tostring(lerr) end })
    sess:start_call("echo", { text = "slow" }, { on_done = function(r, cerr) called = r or tostring(cerr) end })
  end })
  local timer = uv.new_timer()
  timer:start(10, 10, vim.schedule_wrap(protect(function()
    polls = polls + 1
    s:poll(0)
    if listed and called and not timer:is_closing() then
      timer:stop()
      timer:close()
      heartbeat.stop()
      result.tools = {}
      for _, t in ipairs(type(listed) == "table" and listed.tools or {}) do result.tools[#result.tools + 1] = t.name end
      result.listed_err = type(listed) == "string" and listed or vim.NIL
      result.text = type(called) == "table" and called.content[1].text or tostring(called)
      result.polls = polls
      result.beats = heartbeat.beats
      result.max_gap = heartbeat.max_gap
      s:close()
      mcp.register("faults", { command = words })
      mcp.register("missing", { command = { "/nonexistent/mcp-server" } })
      vim.g.baseten_health = { mcp = true }
      vim.cmd("checkhealth baseten")
      result.health = vim.api.nvim_buf_get_lines(0, 0, -1, false)
      result.ok = true
      quit()
    end
  end)))
end)()
