--- baseten.uv: drives a client's non-blocking requests from a libuv timer,
-- for any luv event loop: Neovim (`vim.uv`, or `vim.loop` on 0.9 and
-- older), or a program that uses the `luv` rock.
--
--     local driver = require("baseten.uv").new(client)
--     local h = driver:start({ messages = msgs, stream = true }, {
--       on_chunk = function(chunk) ... end,   -- in Neovim: on the main loop,
--       on_done = function(resp, err) ... end, -- where the buffer API works
--     })
--
-- A timer calls `client:poll(0)` every `interval` ms. `poll(0)` never
-- blocks, so the editor keeps running while tokens arrive. The timer runs
-- only while requests are pending: it starts with `driver:start` (or
-- `driver:kick()` after a `client:start` of your own) and stops by itself
-- once `client:poll` says nothing is left.
-- @module baseten.uv
local M = {}

local Driver = {}
Driver.__index = Driver

-- The luv module of the host: Neovim's, else the `luv` rock.
local function default_uv()
  local vim = rawget(_G, "vim")
  if type(vim) == "table" then
    local uv = vim.uv or vim.loop
    if uv then return uv end
  end
  local ok, luv = pcall(require, "luv")
  if ok then return luv end
  error("baseten.uv: no libuv binding: run inside Neovim, install the luv rock, or pass opts.uv", 3)
end

local function default_report(err)
  local vim = rawget(_G, "vim")
  local msg = "baseten: poll failed: " .. tostring(err)
  if type(vim) == "table" and vim.notify and vim.schedule then
    vim.schedule(function() vim.notify(msg, vim.log.levels.ERROR) end)
  else
    io.stderr:write(msg, "\n")
  end
end

--- Makes a driver for `client`.
-- @param client a client from `baseten.new` (anything with `poll` and `pending`)
-- @tparam[opt] table opts
--   `uv`: the luv module (default `vim.uv or vim.loop` in Neovim, else `require("luv")`);
--   `interval`: ms between polls (10);
--   `schedule`: runs a function on the host's main loop, or `false` to poll
--   right in the timer callback (default `vim.schedule` in Neovim, where timer
--   callbacks run in a "fast event" that may not touch buffers; none elsewhere);
--   `on_error`: called with the error when `poll` raises (a handler of yours
--   failed); default: `vim.notify` in Neovim, else stderr. Polling goes on.
-- @treturn Driver
function M.new(client, opts)
  if type(client) ~= "table" and type(client) ~= "userdata" then
    error("baseten.uv.new: expected a client, got " .. type(client), 2)
  end
  opts = opts or {}
  if opts.interval ~= nil and (type(opts.interval) ~= "number" or opts.interval <= 0) then
    error("baseten.uv.new: interval must be a positive number of milliseconds", 2)
  end
  local uv = opts.uv or default_uv()
  local schedule = opts.schedule
  if schedule == nil then
    local vim = rawget(_G, "vim")
    schedule = type(vim) == "table" and vim.schedule or false
  end
  return setmetatable({
    client = client,
    uv = uv,
    interval = opts.interval or 10,
    schedule = schedule,
    on_error = opts.on_error or default_report,
    ticks = 0, -- polls so far (for the curious, and for tests)
    timer = nil, -- running only while requests are pending
    queued = false, -- a tick waits on the main loop
  }, Driver)
end

-- One poll; stops the timer once nothing is pending.
function Driver:tick()
  self.queued = false
  if not self.timer then return end -- a tick queued before the timer stopped
  self.ticks = self.ticks + 1
  local ok, left = pcall(self.client.poll, self.client, 0)
  if not ok then
    self.on_error(left)
    left = self.client:pending()
  end
  if left == 0 then self:stop() end
end

--- Starts the timer if it is not running (call after `client:start` or
-- `client:start_batch` of your own; `driver:start` calls it for you).
-- @treturn Driver self
function Driver:kick()
  if self.timer then return self end
  local timer = self.uv.new_timer()
  self.timer = timer
  local schedule = self.schedule
  timer:start(self.interval, self.interval, function()
    if not schedule then return self:tick() end
    -- at most one tick waits on the main loop: a busy editor skips ticks
    -- instead of piling them up
    if self.queued then return end
    self.queued = true
    schedule(function() self:tick() end)
  end)
  return self
end

--- `client:start(request, handlers)`, then `kick()`.
-- @tparam table request a chat request (`stream = true` for chunks)
-- @tparam table handlers `on_chunk`, `on_done` (see `client:start`)
-- @return the request's handle (`handle:cancel()`, `handle:done()`)
function Driver:start(request, handlers)
  local handle = self.client:start(request, handlers)
  self:kick()
  return handle
end

--- `client:start_batch(requests, opts)`, then `kick()`.
-- @tparam table requests
-- @tparam[opt] table opts see `client:start_batch`
-- @return the batch's handle
function Driver:start_batch(requests, opts)
  local handle = self.client:start_batch(requests, opts)
  self:kick()
  return handle
end

--- `client:start_tools(req, opts)` (the tool loop, non-blocking), then
-- `kick()`. The timer keeps ticking while the loop waits for an
-- asynchronous handler or confirm, so their `resolve` is taken up at once.
-- @tparam table req a `run_tools` request
-- @tparam[opt] table opts see `client:start_tools`
-- @return the loop's handle
function Driver:start_tools(req, opts)
  local handle = self.client:start_tools(req, opts)
  self:kick()
  return handle
end

--- Whether the timer is running.
-- @treturn boolean
function Driver:active()
  return self.timer ~= nil
end

--- Stops the timer; pending requests stay pending until the next `kick`.
function Driver:stop()
  local timer = self.timer
  if not timer then return end
  self.timer = nil
  timer:stop()
  if not timer:is_closing() then timer:close() end
end

return M
