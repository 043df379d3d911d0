-- build.lua: builds baseten's C core for Neovim (and LÖVE), which run
-- LuaJIT, into lua/baseten/core.so next to the Lua files. Neovim's loader
-- finds C modules as lua/<module path>.so on the runtimepath, so a plugin
-- manager that clones this repository and runs this file needs nothing else:
-- no LUA_PATH, no LUA_CPATH, no luarocks.
--
--   lazy.nvim      runs it after install and update (a build.lua at the root)
--   Neovim 0.9+    nvim -l build.lua
--   older Neovim   nvim --headless -c 'luafile build.lua' -c q
--   plain LuaJIT   luajit build.lua      (what `make love-kit` runs)
--
-- It needs a C compiler, libcurl's headers, and LuaJIT's (or Lua 5.1's)
-- headers; it says which one is missing and how to install it. CC, CFLAGS
-- and BASETEN_LUA_INCDIR (a folder holding lua.h) override what it finds.
-- luacheck: globals vim
local function dirname(p)
  return p:match("^(.*)[/\\][^/\\]*$") or "."
end

local function sh_quote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

-- Runs a shell command; returns ok and its output (stdout and stderr).
local function run(cmd)
  local p = assert(io.popen(cmd .. " 2>&1; echo \"::rc=$?\""))
  local out = p:read("*a")
  p:close()
  local rc = tonumber(out:match("::rc=(%d+)%s*$"))
  return rc == 0, (out:gsub("::rc=%d+%s*$", ""))
end

local function exists(path)
  local f = io.open(path, "rb")
  if f then f:close() end
  return f ~= nil
end

local function trim(s)
  return (s:gsub("^%s+", ""):gsub("%s+$", ""))
end

-- the repository root: this file's folder
local ROOT = (function()
  local src = debug.getinfo(1, "S").source
  local dir = src:sub(1, 1) == "@" and dirname(src:sub(2)) or "."
  if dir:sub(1, 1) ~= "/" then
    local p = io.popen("cd " .. sh_quote(dir) .. " && pwd")
    dir = p:read("*l") or dir
    p:close()
  end
  return dir
end)()

local HOW = {
  cc = {
    ["Debian/Ubuntu"] = "sudo apt-get install build-essential",
    ["Fedora"] = "sudo dnf install gcc",
    ["Arch"] = "sudo pacman -S base-devel",
    ["macOS"] = "xcode-select --install",
  },
  curl = {
    ["Debian/Ubuntu"] = "sudo apt-get install libcurl4-openssl-dev",
    ["Fedora"] = "sudo dnf install libcurl-devel",
    ["Arch"] = "sudo pacman -S curl",
    ["macOS"] = "xcode-select --install   (the SDK has curl/curl.h), or: brew install curl",
  },
  lua = {
    ["Debian/Ubuntu"] = "sudo apt-get install libluajit-5.1-dev   (or liblua5.1-0-dev)",
    ["Fedora"] = "sudo dnf install luajit-devel",
    ["Arch"] = "sudo pacman -S luajit",
    ["macOS"] = "brew install luajit",
  },
}

local function fail(what, key, detail)
  local lines = { "baseten build.lua: " .. what .. ". Install it, then run build.lua again:" }
  for _, os_name in ipairs({ "Debian/Ubuntu", "Fedora", "Arch", "macOS" }) do
    lines[#lines + 1] = ("  %-14s %s"):format(os_name .. ":", HOW[key][os_name])
  end
  if detail and detail ~= "" then lines[#lines + 1] = detail end
  error(table.concat(lines, "\n"), 0)
end

local system = trim(select(2, run("uname -s")))
if system == "" or system:find("^MINGW") or system:find("^MSYS") or package.config:sub(1, 1) == "\\" then
  error("baseten build.lua: Windows is not supported by build.lua yet", 0)
end
local macos = system == "Darwin"

-- the compiler
local CC = os.getenv("CC")
if not CC or CC == "" then
  for _, c in ipairs({ "cc", "gcc", "clang" }) do
    if run("command -v " .. c) then
      CC = c
      break
    end
  end
end
if not CC or not run("command -v " .. CC) then fail("no C compiler (cc, gcc or clang) found", "cc") end

-- the Lua headers: LuaJIT's (Neovim and LÖVE run LuaJIT), else Lua 5.1's
local function lua_incdir()
  local env = os.getenv("BASETEN_LUA_INCDIR")
  if env and env ~= "" then
    if not exists(env .. "/lua.h") then error("baseten build.lua: no lua.h in BASETEN_LUA_INCDIR=" .. env, 0) end
    return env
  end
  for _, pc in ipairs({ "luajit", "lua5.1", "lua-5.1", "lua51" }) do
    local ok, out = run("pkg-config --variable=includedir " .. pc)
    if ok then
      local base = trim(out)
      for _, sub in ipairs({ "/luajit-2.1", "/luajit-2.0", "/lua5.1", "/lua-5.1", "" }) do
        local d = base .. sub
        if exists(d .. "/lua.h") and exists(d .. "/lauxlib.h") then
          local _, h = run("grep -c 'LUA_VERSION_NUM.*501' " .. sh_quote(d .. "/lua.h"))
          if trim(h) ~= "0" then return d end
        end
      end
    end
  end
  for _, prefix in ipairs({ "/usr", "/usr/local", "/opt/homebrew", "/opt/local" }) do
    for _, sub in ipairs({ "/include/luajit-2.1", "/include/luajit-2.0", "/include/lua5.1", "/include/lua-5.1",
                           "/opt/luajit/include/luajit-2.1", "/opt/lua@5.1/include/lua-5.1" }) do
      if exists(prefix .. sub .. "/lua.h") then return prefix .. sub end
    end
  end
  return nil
end
local LUA_INC = lua_incdir()
if not LUA_INC then fail("no LuaJIT or Lua 5.1 headers (lua.h) found", "lua") end

-- libcurl's headers and library
local curl_cflags, curl_libs = "", "-lcurl"
do
  local ok, out = run("curl-config --cflags")
  if ok then curl_cflags = trim(out) end
  ok, out = run("pkg-config --libs libcurl")
  if ok and trim(out) ~= "" then curl_libs = trim(out) end
  local probe = ("printf '#include <curl/curl.h>\\n' | %s %s -E -x c - >/dev/null"):format(CC, curl_cflags)
  local found, err = run(probe)
  if not found then fail("libcurl's headers (curl/curl.h) are missing", "curl", err) end
end

-- compile to a temporary file, then rename: a running Neovim that already
-- loaded the old core keeps its mapping, and a failed build leaves the old one
local out = ROOT .. "/lua/baseten/core.so"
local tmp = out .. ".tmp"
local link = macos and "-bundle -undefined dynamic_lookup" or "-shared"
local cflags = os.getenv("CFLAGS") or "-O2"
local cmd = ("cd %s && %s -std=c99 %s -fPIC -fvisibility=hidden -I%s %s %s -o %s csrc/*.c %s"):format(
  sh_quote(ROOT), CC, cflags, sh_quote(LUA_INC), curl_cflags, link, sh_quote(tmp), curl_libs)
local ok, log = run(cmd)
if not ok then
  os.remove(tmp)
  error("baseten build.lua: compiling the C core failed:\n" .. cmd .. "\n" .. log, 0)
end
local renamed, rerr = os.rename(tmp, out)
if not renamed then error("baseten build.lua: cannot write " .. out .. ": " .. tostring(rerr), 0) end

-- when this runs inside LuaJIT (Neovim, `luajit build.lua`), check that it links
local where = "lua/baseten/core.so"
if rawget(_G, "jit") then
  local f, lerr = package.loadlib(out, "luaopen_baseten_core")
  if not f then error("baseten build.lua: built " .. out .. " but LuaJIT cannot load it: " .. tostring(lerr), 0) end
end
local msg = ("baseten: built %s for %s (headers: %s)"):format(where, _VERSION, LUA_INC)
if type(rawget(_G, "vim")) == "table" and vim.notify then
  vim.notify(msg)
else
  print(msg)
end
