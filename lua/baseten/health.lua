--- baseten.health: `:checkhealth baseten` in Neovim.
--
-- Reports the library and core versions, where the core came from (built
-- from source or which prebuilt archive: build.lua's core.origin), the Lua the core was built for
-- and the Lua running (an ERROR when they differ, or when the core does not
-- load, with the command that builds the right one), libcurl's version, TLS
-- backend and HTTP/2 support, and whether `BASETEN_API_KEY` is set (never
-- its value). With `vim.g.baseten_health = { models = true }` it also asks
-- the base URL (`base_url` in that table, else `$BASETEN_BASE_URL`, else
-- Baseten's) for `models()`, with a 10 s limit. It lists the MCP servers a
-- plugin registered (`require("baseten.mcp").register(name, opts)`), and
-- with `{ mcp = true }` connects to each and counts its tools.
-- @module baseten.health
-- luacheck: globals vim
local M = {}

-- vim.health.start/ok/... (0.10+), report_* (0.8, 0.9), or the `health`
-- module of 0.7.
local function reporter()
  local h = vim.health
  if h and h.start then return h.start, h.ok, h.warn, h.error, h.info end
  if not (h and h.report_start) then h = require("health") end
  return h.report_start, h.report_ok, h.report_warn, h.report_error, h.report_info
end

local function source_of(modname, path)
  local file = package.searchpath and package.searchpath(modname, path)
  if file then return file end
  local rel = modname:gsub("%.", "/")
  local ext = path == package.cpath and ".so" or ".lua"
  return vim.api.nvim_get_runtime_file("lua/" .. rel .. ext, false)[1]
    or vim.api.nvim_get_runtime_file("lua/" .. rel .. "/init" .. ext, false)[1]
    or "?"
end

-- Whether a command can be started: a path that exists, or a name on PATH.
local function executable(cmd)
  if type(cmd) ~= "string" then return false end
  return vim.fn.executable(cmd) == 1
end

--- The MCP servers a plugin registered (`require("baseten.mcp").register`):
-- each one's command (found or not) or URL; with
-- `vim.g.baseten_health = { mcp = true }` each is also connected to and
-- its tools counted (10 s limit).
function M.check_mcp(start, ok, err, info)
  local loaded, mcp = pcall(require, "baseten.mcp")
  start("baseten: MCP servers")
  if not loaded then
    err("baseten.mcp does not load: " .. tostring(mcp))
    return
  end
  local servers = mcp.registered()
  if #servers == 0 then
    info("no MCP servers registered (a plugin registers them with require('baseten.mcp').register(name, opts))")
    return
  end
  local opts = vim.g.baseten_health
  local connect = type(opts) == "table" and opts.mcp
  for _, e in ipairs(servers) do
    local o = e.opts
    local where = o.url or table.concat(o.command, " ")
    if o.command and not executable(o.command[1]) then
      err(e.name .. ": " .. tostring(o.command[1]) .. " is not executable (" .. where .. ")")
    elseif not connect then
      ok(e.name .. ": " .. where)
    else
      local copy = {}
      for k, v in pairs(o) do copy[k] = v end
      copy.timeout, copy.client = 10, nil
      local s, cerr = mcp.connect(copy)
      local tools, lerr
      if s then tools, lerr = s:list_tools() end
      if s then s:close() end
      if tools then
        ok(("%s: %s, %s %s, %d tools"):format(e.name, where, tostring(s.server_info.name),
          tostring(s.protocol_version), #tools))
      else
        err(e.name .. ": " .. where .. ": " .. tostring(cerr or lerr))
      end
    end
  end
  if not connect then info("to connect to each and count its tools, set vim.g.baseten_health = { mcp = true }") end
end

--- Runs the checks (Neovim calls it for `:checkhealth baseten`).
function M.check()
  local start, ok, warn, err, info = reporter()
  local abi = require("baseten.abi")
  local running, running_name = abi.running()

  start("baseten: the C core")
  local loaded, core = pcall(require, "baseten.core")
  if not loaded then
    err("baseten.core does not load: " .. abi.explain(core))
    return
  end
  local so = source_of("baseten.core", package.cpath)
  ok("core " .. tostring(core.VERSION) .. " loaded from " .. so)
  -- build.lua writes core.origin next to the core it installs
  local f = io.open((so:gsub("[^/\\]*$", "")) .. "core.origin", "rb")
  local origin = f and f:read("*l")
  if f then f:close() end
  info(origin and ("installed: " .. origin) or "installed: not by build.lua (luarocks, make, or by hand)")
  if core.LUA_VERSION == nil then
    warn("this core does not say which Lua it was built for (built from an older baseten): rebuild it with "
      .. abi.build_command())
  elseif core.LUA_VERSION ~= running then
    err(("the core was built for %s, but Neovim runs %s"):format(core.LUA_VERSION, running_name),
      { "rebuild it with " .. abi.build_command() })
  else
    ok(("built for %s; Neovim runs %s"):format(core.LUA_VERSION, running_name))
  end

  start("baseten: the library")
  local lib_ok, baseten = pcall(require, "baseten")
  if not lib_ok then
    err("require('baseten') fails: " .. tostring(baseten))
    return
  end
  ok("baseten " .. tostring(baseten.VERSION) .. " from " .. source_of("baseten", package.path))

  start("baseten: libcurl")
  if type(core.curl_version) ~= "function" then
    warn("this core does not report libcurl's version (built from an older baseten)")
  else
    local version, tls, http2 = core.curl_version()
    ok("libcurl " .. tostring(version))
    if tls and tls ~= "" then
      ok("TLS backend: " .. tls)
    else
      err("libcurl has no TLS backend: https:// URLs (Baseten's) cannot work",
        { "install a libcurl built with OpenSSL or GnuTLS, then run build.lua again" })
    end
    if http2 then
      ok("HTTP/2: yes")
    else
      warn("HTTP/2: no (requests use HTTP/1.1; many concurrent requests open more connections)")
    end
  end

  M.check_mcp(start, ok, err, info)

  start("baseten: configuration")
  local key = os.getenv("BASETEN_API_KEY")
  if key and key ~= "" then
    ok("BASETEN_API_KEY is set")
  else
    warn("BASETEN_API_KEY is not set", { "Baseten's Model APIs need it (or pass api_key to baseten.new);"
      .. " a local server may need none (api_key = false)" })
  end
  local opts = vim.g.baseten_health
  if type(opts) ~= "table" or not opts.models then
    info("to check that the base URL answers, set vim.g.baseten_health = { models = true }")
    return
  end
  local client = baseten.new{ base_url = opts.base_url, timeout = 10, max_retries = 0 }
  local models, merr = client:models()
  client:close()
  if models then
    ok(("%s answers models(): %d models"):format(client.base_url or opts.base_url or "the base URL", #models))
  else
    err("models() failed: " .. tostring(merr))
  end
end

return M
