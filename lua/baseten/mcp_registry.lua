--- The MCP servers a plugin registered, for `:checkhealth baseten`
-- (`baseten.mcp.register` and `registered` are these).
-- @module baseten.mcp_registry
local M = {}

local registry = {}

--- Registers a server's connect options under a name, for
-- `:checkhealth baseten` to report (a Neovim plugin that configures MCP
-- servers calls it): `require("baseten.mcp").register(name, opts)`.
-- Registering a name again replaces it.
-- @tparam string name
-- @tparam table opts the options of `connect`
function M.register(name, opts)
  if type(name) ~= "string" or name == "" then error("mcp.register: name must be a non-empty string", 2) end
  if type(opts) ~= "table" or (opts.command == nil) == (opts.url == nil) then
    error("mcp.register: opts must be connect options with command or url", 2)
  end
  for i, e in ipairs(registry) do
    if e.name == name then
      registry[i] = { name = name, opts = opts }
      return
    end
  end
  registry[#registry + 1] = { name = name, opts = opts }
end

--- The registered servers, in order: an array of `{name, opts}` (copies).
function M.registered()
  local out = {}
  for i, e in ipairs(registry) do out[i] = { name = e.name, opts = e.opts } end
  return out
end

return M
