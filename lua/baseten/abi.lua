--- baseten.abi: which Lua a `baseten/core` shared library was built for,
-- and what to say when the running Lua cannot load it.
--
-- A core built for one Lua fails to load in another with a bare linker
-- message (`undefined symbol: lua_newuserdatauv`, `undefined symbol:
-- lua_replace`). `require("baseten")` catches that failure and raises
-- `explain(err)` instead: which Lua the found file was built for (told from
-- the Lua C API functions it imports), which Lua is running, and the command
-- that builds the right one. `:checkhealth baseten` uses the same facts.
-- Internal: not part of the public API.
-- @module baseten.abi
local M = {}

-- The Lua C API functions only one ABI imports. The core's code is the same
-- for every Lua; compat.h maps the calls, so the imports tell the headers.
-- "\0" ends a name in the dynamic string table: "lua_newuserdata\0" is not
-- a prefix match of "lua_newuserdatauv".
local MARKERS = {
  { "Lua 5.4", { "lua_newuserdatauv\0", "lua_resetthread\0", "lua_setiuservalue\0" } },
  { "Lua 5.3", { "lua_rotate\0", "lua_callk\0", "lua_pcallk\0", "lua_tointegerx\0" } },
  { "Lua 5.1", { "lua_objlen\0", "lua_replace\0", "lua_setfenv\0", "lua_getfenv\0" } },
}

--- The Lua a core file was built for: "Lua 5.4", "Lua 5.3" or "Lua 5.1"
-- (which LuaJIT loads), or nil when the file cannot be read or imports none
-- of the marker functions.
-- @tparam string path a shared library
-- @treturn string|nil
function M.built_for(path)
  local f = path and io.open(path, "rb")
  if not f then return nil end
  local bytes = f:read("*a")
  f:close()
  for _, m in ipairs(MARKERS) do
    for _, name in ipairs(m[2]) do
      if bytes:find(name, 1, true) then return m[1] end
    end
  end
  return nil
end

--- The running Lua's ABI as `_VERSION` spells it ("Lua 5.1" under LuaJIT),
-- and a name for people ("LuaJIT 2.1.0-beta3 (Lua 5.1 ABI)").
-- @treturn string abi
-- @treturn string name
function M.running()
  local abi = _VERSION
  local jit = rawget(_G, "jit")
  if type(jit) == "table" and jit.version then return abi, jit.version .. " (" .. abi .. " ABI)" end
  return abi, abi
end

-- package.searchpath, also on Lua 5.1 (which lacks it).
local function searchpath(name, path)
  if package.searchpath then return (package.searchpath(name, path)) end
  local file = name:gsub("%.", "/")
  for template in path:gmatch("[^;]+") do
    local candidate = template:gsub("%?", file)
    local f = io.open(candidate, "rb")
    if f then
      f:close()
      return candidate
    end
  end
  return nil
end

--- The file a failed `require("baseten.core")` tried: from the error
-- message ("from file '...'"), else the first match on `package.cpath`, else
-- (in Neovim) on the runtimepath.
-- @tparam string err the error `require` raised
-- @treturn string|nil
function M.core_path(err)
  local from = tostring(err):match("from file '([^']+)'")
  if from then return from end
  local found = searchpath("baseten.core", package.cpath)
  if found then return found end
  local vim = rawget(_G, "vim")
  if type(vim) == "table" and vim.api and vim.api.nvim_get_runtime_file then
    local ext = package.cpath:match("%?%.(%w+)") or "so"
    return vim.api.nvim_get_runtime_file("lua/baseten/core." .. ext, false)[1]
  end
  return nil
end

--- The command that builds the core for the running Lua, in the host it runs
-- in (Neovim, LÖVE, or a plain interpreter).
-- @treturn string
function M.build_command()
  local abi = M.running()
  local v = abi:match("(%d+%.%d+)") or "5.4"
  local vim = rawget(_G, "vim")
  if type(vim) == "table" and vim.api then
    return "the plugin's build.lua (lazy.nvim: `:Lazy build baseten-lua`; by hand: "
      .. "`nvim --headless -c 'luafile build.lua' -c q` in the plugin folder)"
  end
  if type(rawget(_G, "love")) == "table" then
    return "`make love-kit` in a clone of baseten (it builds baseten/core.so for LuaJIT)"
  end
  return "`luarocks --lua-version=" .. v .. " make` in a clone of baseten (or `luarocks --lua-version="
    .. v .. " install baseten`)"
end

--- The message for a failed `require("baseten.core")`: the original error
-- and, when the file found was built for another Lua, which one, which Lua
-- is running, and the command that builds the right core.
-- @tparam string err the error `require` raised
-- @treturn string
function M.explain(err)
  err = tostring(err)
  local path = M.core_path(err)
  local built = M.built_for(path)
  local abi, name = M.running()
  if built and built ~= abi then
    return ("baseten: %s was built for %s, but this is %s, which cannot load it.\n"
      .. "Build the core for %s with %s.\n(the loader said: %s)"):format(path, built, name, abi,
      M.build_command(), err)
  end
  if not path then
    return "baseten: the C core (baseten.core) is not installed for " .. name .. ". Build it with "
      .. M.build_command() .. ".\n(the loader said: " .. err .. ")"
  end
  return err
end

return M
