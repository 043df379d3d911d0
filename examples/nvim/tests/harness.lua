-- What the headless Neovim test drivers share: the example plugin's
-- (examples/nvim/tests/driver.lua) and the plugin-folder check of
-- spec/support/nvim_plugin.lua. Loaded with dofile; returns
--
--   h.result                 the table written as JSON at the end
--   h.now_ms()               a monotonic clock in milliseconds
--   h.quit()                 writes h.result to $BASETEN_TEST_RESULT, quits
--   h.fail(msg)              marks the run failed with msg, then quits
--   h.protect(fn)            fn, failing the run on an error instead of raising
--   h.heartbeat()            starts a 5 ms timer through the main loop (the
--                            editor's other work); its .streaming flag says
--                            when to count: .beats, .max_gap (ms); :stop()
--   h.plugin(cmd, opts)      the example plugin, loaded (the runtime file, when
--                            command `cmd` is missing: result.command says
--                            whether it is there) and set up with opts and
--                            the test server's URL ($BASETEN_TEST_URL)
-- luacheck: globals vim
local uv = vim.uv or vim.loop
local h = { result = { ok = false } }
local out_path = assert(os.getenv("BASETEN_TEST_RESULT"), "BASETEN_TEST_RESULT is not set")

function h.now_ms()
  return uv.hrtime() / 1e6
end

function h.quit()
  local f = assert(io.open(out_path, "w"))
  f:write(vim.fn.json_encode(h.result))
  f:close()
  vim.cmd("qa!")
end

function h.fail(msg)
  h.result.ok = false
  h.result.error = tostring(msg)
  h.quit()
end

function h.protect(fn)
  return function(...)
    local ok, err = pcall(fn, ...)
    if not ok then h.fail(err) end
  end
end

function h.heartbeat()
  local hb = { beats = 0, max_gap = 0, streaming = false }
  local timer, last = uv.new_timer(), nil
  timer:start(5, 5, vim.schedule_wrap(function()
    local t = h.now_ms()
    if hb.streaming then
      hb.beats = hb.beats + 1
      if last then hb.max_gap = math.max(hb.max_gap, t - last) end
    end
    last = t
  end))
  function hb.stop()
    if not timer:is_closing() then
      timer:stop()
      timer:close()
    end
  end
  return hb
end

function h.plugin(cmd, opts)
  if vim.fn.exists(":" .. cmd) ~= 2 then vim.cmd("runtime plugin/baseten.lua") end
  h.result.command = vim.fn.exists(":" .. cmd) == 2
  local plugin = require("baseten_nvim")
  local o = { base_url = assert(os.getenv("BASETEN_TEST_URL"), "BASETEN_TEST_URL is not set"), api_key = "test-key" }
  for k, v in pairs(opts) do o[k] = v end
  plugin.setup(o)
  return plugin
end

return h
