-- Runs the README's Neovim block (the one that uses baseten.uv) inside a
-- headless nvim, as written, then waits for its request and writes what
-- the buffer got (spec/hosts_spec.lua). The block's file is
-- BASETEN_TEST_BLOCK; the client reads BASETEN_BASE_URL.
-- luacheck: globals vim
local out_path = assert(os.getenv("BASETEN_TEST_RESULT"))
local result = { ok = false }

local function quit()
  local f = assert(io.open(out_path, "w"))
  f:write(vim.fn.json_encode(result))
  f:close()
  vim.cmd("qa!")
end

local ok, err = pcall(function()
  local f = assert(io.open(assert(os.getenv("BASETEN_TEST_BLOCK")), "rb"))
  local code = f:read("*a")
  f:close()
  -- the block as written, plus a line that hands back its locals
  local chunk = assert((loadstring or load)(code .. "\nreturn buf, driver, h", "=README block"))
  local buf, driver, h = chunk()
  result.active_at_start = driver:active()
  local started = vim.loop.hrtime()
  local timer = vim.loop.new_timer()
  timer:start(20, 20, vim.schedule_wrap(function()
    if h:done() and not driver:active() then
      timer:stop()
      result.lines = vim.api.nvim_buf_get_lines(buf, 0, -1, false)
      result.ok = true
      quit()
    elseif vim.loop.hrtime() - started > 20e9 then
      timer:stop()
      result.error = "not done within 20 s"
      quit()
    end
  end))
end)
if not ok then
  result.error = tostring(err)
  quit()
end
