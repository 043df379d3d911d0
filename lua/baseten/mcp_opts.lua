--- The option checks of `baseten.mcp`: what `connect`, `start_connect`,
-- `call_tool`, `start_call` and `start` are given is checked before
-- anything is sent, and a bad option raises at the caller's line. Used by
-- `baseten.mcp`; not public.
-- @module baseten.mcp_opts
local core = require("baseten.core")

local json = core.json
local M = {}

--- Raises when `opts[key]` is given and is not a function; `level` as
-- `error`'s, counted from the function that calls this one.
function M.check_fn(opts, key, where, level)
  if opts[key] ~= nil and type(opts[key]) ~= "function" then
    error(where .. ": " .. key .. " must be a function", level + 1)
  end
end

--- Raises when a timeout `v` is given and is not a positive number.
function M.check_timeout(v, where, level)
  if v ~= nil and (type(v) ~= "number" or v <= 0 or v ~= v) then
    error(where .. ": timeout must be a positive number", level + 1)
  end
end

--- Checks the options of `connect` / `start_connect` (`where` names it);
-- `level` as `error`'s, counted from the function that calls this one.
-- Returns the client info to send (`opts.client_info` or baseten's).
function M.connect(opts, where, level)
  level = level + 1
  if type(opts) ~= "table" then error(where .. ": expected a table of options", level) end
  if (opts.command == nil) == (opts.url == nil) then error(where .. ": give either command or url", level) end
  M.check_timeout(opts.timeout, where, level)
  for _, k in ipairs({ "on_elicit", "on_notification", "log", "on_ready" }) do M.check_fn(opts, k, where, level) end
  if opts.roots ~= nil and type(opts.roots) ~= "table" then error(where .. ": roots must be an array", level) end
  if opts.client ~= nil and (type(opts.client) ~= "table" or type(opts.client.poll) ~= "function") then
    error(where .. ": client must be a baseten client", level)
  end
  local info = opts.client_info or { name = "baseten", version = core.VERSION }
  if type(info) ~= "table" or type(info.name) ~= "string" then
    error(where .. ": client_info must be {name = ..., version = ...}", level)
  end
  return info
end

--- Checks a tool call's arguments (`where`: "call_tool" or "start_call");
-- raises at the line that called the session's method. Returns the
-- request's params and the options (a table).
function M.call(name, args, opts, where)
  if type(name) ~= "string" then error("mcp: " .. where .. " expects a tool name string", 3) end
  if args ~= nil and type(args) ~= "table" then error("mcp: " .. where .. ": args must be a table", 3) end
  opts = opts or {}
  if type(opts) ~= "table" then error("mcp: " .. where .. ": opts must be a table", 3) end
  M.check_timeout(opts.timeout, "mcp: " .. where, 3)
  M.check_fn(opts, "on_progress", "mcp: " .. where, 3)
  M.check_fn(opts, "on_done", "mcp: " .. where, 3)
  return { name = name, arguments = json.object(args or {}) }, opts
end

return M
