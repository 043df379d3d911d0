--- MCP's stdio transport: a child process (`core.spawn`, csrc/proc.c)
-- that reads JSON-RPC messages on stdin and writes them on stdout, one per
-- line. Used by `baseten.mcp`; not a public module.
-- @module baseten.mcp_stdio
local core = require("baseten.core")
local request = require("baseten.request")

local json = core.json
local M = {}

--- The longest line (one message) a server may write, in bytes.
M.MAX_LINE = 16 * 1024 * 1024

local Stdio = {}
Stdio.__index = Stdio

-- The environment additions as "K=V" strings, sorted (a stable order).
local function env_list(env, where)
  local out, keys = {}, {}
  for k in pairs(env or {}) do
    if type(k) ~= "string" or k == "" or k:find("[=%z]") then
      error(where .. ": env keys must be non-empty strings without '=' or NUL", 5)
    end
    keys[#keys + 1] = k
  end
  table.sort(keys)
  for _, k in ipairs(keys) do
    local v = env[k]
    if type(v) ~= "string" and type(v) ~= "number" then error(where .. ": env." .. k .. " must be a string", 5) end
    out[#out + 1] = k .. "=" .. tostring(v)
  end
  return out
end

--- Starts the server. `opts`: `command` (argv array), `env`, `clear_env`,
-- `cwd`, `log` (function(line) for each stderr line), `max_line`.
-- @return the transport, or nil, why
function M.open(opts, where)
  local argv = opts.command
  if type(argv) ~= "table" or argv[1] == nil then error(where .. ": command must be a non-empty argv array", 4) end
  for i, a in ipairs(argv) do
    if type(a) ~= "string" then error(where .. ": command[" .. i .. "] must be a string", 4) end
  end
  if opts.env ~= nil and type(opts.env) ~= "table" then error(where .. ": env must be a table", 4) end
  if opts.cwd ~= nil and type(opts.cwd) ~= "string" then error(where .. ": cwd must be a string", 4) end
  if opts.log ~= nil and type(opts.log) ~= "function" then error(where .. ": log must be a function", 4) end
  local max_line = opts.max_line or M.MAX_LINE
  if type(max_line) ~= "number" or max_line < 1 then error(where .. ": max_line must be a positive number", 4) end
  local p, why = core.spawn{ argv = argv, env = env_list(opts.env, where), clear_env = opts.clear_env and true,
                             cwd = opts.cwd, keep_err = opts.log ~= nil, max_line = max_line }
  if not p then return nil, why .. " (" .. argv[1] .. ")" end
  return setmetatable({ p = p, log = opts.log, errtail = "", engine = core.engine(), name = argv[1] }, Stdio)
end

function Stdio:send(msg)
  if not self.p then return nil, "the server is closed" end
  local ok, why = self.p:write(json.encode(msg) .. "\n")
  if not ok then return nil, why end
  return true
end

-- Hands the stderr bytes read so far to the log, line by line.
function Stdio:flush_log()
  local bytes = self.p:take_err()
  if not bytes or not self.log then return end
  local text = self.errtail .. bytes
  local last = 1
  for line, stop in text:gmatch("([^\n]*)\n()") do
    self.log((line:gsub("\r$", "")))
    last = stop
  end
  self.errtail = text:sub(last)
  if #self.errtail > 65536 then -- no newline for that long: hand it over as it is
    self.log(self.errtail)
    self.errtail = ""
  end
end

--- Moves bytes without waiting, and calls `deliver(msg)` for each message
-- that arrived. Returns whether anything happened, or nil, why once the
-- transport is dead (the server exited, wrote garbage or a line too long).
function Stdio:step(deliver)
  local p = self.p
  if not p then return nil, "the server is closed" end
  local moved = p:pump()
  self:flush_log()
  while true do
    local line, why = p:read_line()
    if line == nil then break end
    if line == false then return nil, "the server wrote " .. why end
    moved = true
    if line:find("%S") then
      local msg, derr = json.decode(line, request.DECODE_OPTS)
      if type(msg) ~= "table" then
        return nil, "the server wrote a line that is not a JSON-RPC message (" .. tostring(derr or "not an object")
          .. "): " .. line:sub(1, 200)
      end
      deliver(msg)
    end
  end
  local state, code = p:status()
  if p:eof() or (state ~= "running" and not moved) then
    self:flush_log()
    return nil, "the server exited" .. (code and (" (code " .. code .. ")") or "")
  end
  return moved
end

--- Waits at most `seconds` for output from the server.
function Stdio:wait(seconds)
  if not self.p then return end
  local fds = self.p:fds()
  if fds[1] == nil then -- Windows: pipes cannot join the socket wait
    core.sleep(math.min(seconds, 0.01))
  else
    self.engine:perform(seconds, fds)
  end
end

--- What another loop's wait should wait on: the pipes (a flat
-- `{fd, events, ...}`), and the seconds until the next look is due
-- (Windows: pipes cannot join a socket wait, so a short interval).
function Stdio:wait_on()
  local fds = self.p and self.p:fds() or {}
  return fds, fds[1] == nil and 0.01 or nil
end

function Stdio:close(grace)
  if self.p then
    self.p:close(grace)
    self.p = nil
  end
  self.engine:close()
end

return M
