-- build.lua: puts baseten's C core for Neovim (and LÖVE), which run LuaJIT,
-- into lua/baseten/ next to the Lua files: core.so (core.dll on Windows).
-- Neovim's loader finds C modules as lua/<module path>.so (.dll) on the
-- runtimepath, so a plugin manager that clones this repository and runs
-- this file needs nothing else: no LUA_PATH, no LUA_CPATH, no luarocks.
--
--   lazy.nvim      runs it after install and update (a build.lua at the root)
--   Neovim 0.9+    nvim -l build.lua
--   older Neovim   nvim --headless -c 'luafile build.lua' -c q
--   plain LuaJIT   luajit build.lua      (what `make love-kit` runs)
--
-- Where it can, it builds from source: on Linux and macOS with a C
-- compiler, libcurl's headers and LuaJIT's (or Lua 5.1's) headers. CC,
-- CFLAGS and BASETEN_LUA_INCDIR (a folder holding lua.h) override what it
-- finds. Otherwise (always on Windows; on Linux when something is missing)
-- it installs the prebuilt core of the release archive for this OS and
-- architecture (`make dist` makes them): it downloads
-- <base>/baseten-<version>-<os>-<arch>-luajit.zip and <base>/SHA256SUMS with
-- the `curl` executable (Windows 10 and later ship curl.exe and tar.exe),
-- checks the archive's SHA-256 (computed here, in Lua) before unpacking
-- anything, and puts its core into lua/baseten/. <base> is the GitHub
-- release of this version; BASETEN_DIST_URL overrides it (an http(s):// or
-- file:// folder).
--
--   BASETEN_BUILD=source     build from source or fail saying what is missing
--   BASETEN_BUILD=prebuilt   install the prebuilt core even where it could build
--
-- A failure stops with one line saying what failed and what to do, leaves
-- the old core (if any) as it was, and, run headless, exits non-zero.
-- lua/baseten/core.origin records where the core came from, for
-- `:checkhealth baseten`.
--
-- `loadfile("build.lua")("--lib")` returns its functions without running
-- it (spec/build_lua_spec.lua tests them).
-- luacheck: globals vim
local B = {}

local function dirname(p)
  return p:match("^(.*)[/\\][^/\\]*$") or "."
end

local function sh_quote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

-- Runs a shell command (POSIX sh); returns ok and its output (stdout and stderr).
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

local function in_nvim()
  return type(rawget(_G, "vim")) == "table" and type(vim.fn) == "table"
end

---------------------------------------------------------------- SHA-256
-- 32-bit operations for SHA-256 from what this Lua has: LuaJIT's `bit`,
-- 5.3+'s operators, 5.2's `bit32`, or arithmetic (plain 5.1). Each backend
-- gives band, bxor, bnot, rshift, ror on values in [0, 2^32) (LuaJIT's
-- return signed ones; sums are taken mod 2^32, which normalizes them).
local backends = {}

backends.bit = function()
  local ok, bit = pcall(require, "bit")
  if not ok or type(bit) ~= "table" or not bit.ror then return nil end
  return { band = bit.band, bxor = bit.bxor, bnot = bit.bnot, rshift = bit.rshift, ror = bit.ror }
end

backends.native = function()
  if not _VERSION:match("^Lua 5%.[3-9]") then return nil end
  local chunk = assert((loadstring or load)([[
    local M = 0xffffffff
    return {
      band = function(a, b) return a & b end,
      bxor = function(a, b) return a ~ b end,
      bnot = function(a) return ~a & M end,
      rshift = function(a, n) return (a & M) >> n end,
      ror = function(a, n) a = a & M return ((a >> n) | (a << (32 - n))) & M end,
    }]]))
  return chunk()
end

backends.bit32 = function()
  local b = rawget(_G, "bit32")
  if type(b) ~= "table" then return nil end
  return { band = b.band, bxor = b.bxor, bnot = b.bnot, rshift = b.rshift, ror = b.rrotate }
end

backends.arith = function()
  local xor8, and8 = {}, {}
  for a = 0, 255 do
    for b = 0, 255 do
      local x, y, r, s, p = a, b, 0, 0, 1
      for _ = 1, 8 do
        local xa, yb = x % 2, y % 2
        if xa ~= yb then r = r + p end
        if xa == 1 and yb == 1 then s = s + p end
        x, y, p = (x - xa) / 2, (y - yb) / 2, p * 2
      end
      xor8[a * 256 + b], and8[a * 256 + b] = r, s
    end
  end
  local function bytewise(t, a, b)
    local r, p = 0, 1
    for _ = 1, 4 do
      local x, y = a % 256, b % 256
      r = r + t[x * 256 + y] * p
      a, b, p = (a - x) / 256, (b - y) / 256, p * 256
    end
    return r
  end
  return {
    band = function(a, b) return bytewise(and8, a, b) end,
    bxor = function(a, b) return bytewise(xor8, a, b) end,
    bnot = function(a) return 4294967295 - a end,
    rshift = function(a, n) return math.floor(a / 2 ^ n) end,
    ror = function(a, n)
      local lo = a % 2 ^ n
      return (a - lo) / 2 ^ n + lo * 2 ^ (32 - n)
    end,
  }
end

--- The names of the SHA-256 backends this Lua has, fastest first.
function B.sha256_backends()
  local names = {}
  for _, name in ipairs({ "bit", "native", "bit32", "arith" }) do
    if backends[name]() then names[#names + 1] = name end
  end
  return names
end

local K = {
  0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
  0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
  0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
  0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
  0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
  0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
  0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
  0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
}

local function pad(data)
  local len = #data
  local zeros = (55 - len) % 64
  local bits, be = len * 8, {}
  for i = 8, 1, -1 do
    be[i] = string.char(bits % 256)
    bits = math.floor(bits / 256)
  end
  return data .. "\128" .. string.rep("\0", zeros) .. table.concat(be)
end

--- The SHA-256 of a string, as 64 lowercase hex digits; `backend` (a name
-- from sha256_backends) picks the bit operations, else the fastest.
function B.sha256(data, backend)
  local ops
  if backend then
    ops = assert(backends[backend], "no SHA-256 backend " .. tostring(backend))()
    assert(ops, "this Lua has no " .. backend .. " operations")
  else
    ops = backends.bit() or backends.native() or backends.bit32() or backends.arith()
  end
  local band, bxor, bnot, rshift, ror = ops.band, ops.bxor, ops.bnot, ops.rshift, ops.ror
  local M32 = 4294967296
  local h = { 0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19 }
  local msg, w = pad(data), {}
  for off = 1, #msg, 64 do
    for i = 0, 15 do
      local a, b, c, d = msg:byte(off + i * 4, off + i * 4 + 3)
      w[i] = ((a * 256 + b) * 256 + c) * 256 + d
    end
    for i = 16, 63 do
      local x, y = w[i - 15], w[i - 2]
      local s0 = bxor(bxor(ror(x, 7), ror(x, 18)), rshift(x, 3))
      local s1 = bxor(bxor(ror(y, 17), ror(y, 19)), rshift(y, 10))
      w[i] = (w[i - 16] + s0 + w[i - 7] + s1) % M32
    end
    local a, b, c, d, e, f, g, hh = h[1], h[2], h[3], h[4], h[5], h[6], h[7], h[8]
    for i = 0, 63 do
      local S1 = bxor(bxor(ror(e, 6), ror(e, 11)), ror(e, 25))
      local ch = bxor(band(e, f), band(bnot(e), g))
      local t1 = (hh + S1 + ch + K[i + 1] + w[i]) % M32
      local S0 = bxor(bxor(ror(a, 2), ror(a, 13)), ror(a, 22))
      local maj = bxor(bxor(band(a, b), band(a, c)), band(b, c))
      local t2 = (S0 + maj) % M32
      hh, g, f, e, d, c, b, a = g, f, e, (d + t1) % M32, c, b, a, (t1 + t2) % M32
    end
    h[1], h[2], h[3], h[4] = (h[1] + a) % M32, (h[2] + b) % M32, (h[3] + c) % M32, (h[4] + d) % M32
    h[5], h[6], h[7], h[8] = (h[5] + e) % M32, (h[6] + f) % M32, (h[7] + g) % M32, (h[8] + hh) % M32
  end
  local hex = {}
  for i = 1, 8 do -- two halves: %x of a value >= 2^31 is not portable to 5.1 on Windows
    hex[i] = ("%04x%04x"):format(math.floor(h[i] / 65536), h[i] % 65536)
  end
  return table.concat(hex)
end

---------------------------------------------------------------- the archive
local RELEASES = "https://github.com/basetenlabs/baseten-lua/releases/download/v"

--- baseten.VERSION, read from the C source (the core is what reports it).
function B.version(root)
  local f = io.open(root .. "/csrc/core.c", "rb")
  local text = f and f:read("*a") or ""
  if f then f:close() end
  return text:match('#define BT_CORE_VERSION "([^"]+)"')
end

--- The release archive for a platform, or nil and why there is none.
-- info: { windows = bool, system = uname -s, arch = "x86_64"/..., abi = "luajit"/... }
function B.archive_name(version, info)
  local os_name = info.windows and "windows" or (info.system == "Linux" and "linux") or nil
  if not os_name then
    return nil, "there is no prebuilt core for " .. tostring(info.system) .. " (only Linux and Windows, x86_64)"
  end
  if info.arch ~= "x86_64" then
    return nil, "there is no prebuilt core for " .. os_name .. " on " .. tostring(info.arch) .. " (only x86_64)"
  end
  if info.abi ~= "luajit" then
    return nil, "build.lua installs the core for LuaJIT (Neovim, LÖVE), not for " .. tostring(info.abi)
  end
  return ("baseten-%s-%s-%s-%s.zip"):format(version, os_name, info.arch, info.abi)
end

--- What installing the prebuilt core does: the URLs, the files, and the
-- commands (argument lists) that download and unpack, in order.
-- opts: { version, root, windows, system, arch, abi, dist_url }
function B.plan(opts)
  local name, why = B.archive_name(opts.version, opts)
  if not name then return nil, why end
  local sep = opts.windows and "\\" or "/"
  local base = (opts.dist_url and opts.dist_url ~= "") and opts.dist_url:gsub("/+$", "") or RELEASES .. opts.version
  local tmp = opts.root .. sep .. "build" .. sep .. "prebuilt"
  local p = {
    archive = name, url = base .. "/" .. name, sums_url = base .. "/SHA256SUMS",
    tmp = tmp, zip = tmp .. sep .. name, sums = tmp .. sep .. "SHA256SUMS", unpacked = tmp .. sep .. "unpacked",
    core_name = opts.windows and "core.dll" or "core.so",
  }
  p.core_from = table.concat({ p.unpacked, "lua", "baseten", p.core_name }, sep)
  p.core_to = table.concat({ opts.root, "lua", "baseten", p.core_name }, sep)
  local curl = opts.windows and "curl.exe" or "curl"
  p.curl = curl
  p.download = {
    { curl, "-fsSL", "--retry", "2", "-o", p.zip, p.url },
    { curl, "-fsSL", "--retry", "2", "-o", p.sums, p.sums_url },
  }
  -- Windows 10's tar.exe is bsdtar, which reads zip files
  p.unpack = opts.windows and { "tar.exe", "-xf", p.zip, "-C", p.unpacked }
    or { "unzip", "-q", p.zip, "-d", p.unpacked }
  return p
end

--- The SHA-256 that a `sha256sum` file gives for `name`, or nil.
function B.sum_for(sums, name)
  for line in (sums .. "\n"):gmatch("([^\r\n]*)\r?\n") do
    local hex, file = line:match("^(%x+)%s+%*?(.-)%s*$")
    if file == name and #hex == 64 then return hex:lower() end
  end
  return nil
end

-- Runs an argument list; returns ok and its output.
local function exec(argv, windows)
  if in_nvim() and vim.fn.system then
    local out = vim.fn.system(argv)
    return vim.v.shell_error == 0, out
  end
  if windows then
    local parts = {}
    for i, a in ipairs(argv) do parts[i] = '"' .. a .. '"' end
    local rc = os.execute(table.concat(parts, " "))
    return rc == 0 or rc == true, ""
  end
  local parts = {}
  for i, a in ipairs(argv) do parts[i] = sh_quote(a) end
  return run(table.concat(parts, " "))
end

local function have(program, windows)
  if in_nvim() then return vim.fn.executable(program) == 1 end
  if windows then return true end -- the command's own failure says so
  return (run("command -v " .. sh_quote(program)))
end

-- A directory operation the way each host does it: Neovim's own function
-- (vim.fn[fn](dir, flags)), cmd.exe's command or the shell's.
local function dir_op(dir, windows, fn, flags, cmd, sh)
  if in_nvim() then
    vim.fn[fn](dir, flags)
  elseif windows then
    os.execute(cmd .. ' "' .. dir .. '" 2>nul')
  else
    os.execute(sh .. " " .. sh_quote(dir))
  end
end

local function remove_tree(dir, windows) dir_op(dir, windows, "delete", "rf", "rmdir /s /q", "rm -rf") end
local function make_dir(dir, windows) dir_op(dir, windows, "mkdir", "p", "mkdir", "mkdir -p") end

local function read_all(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local data = f:read("*a")
  f:close()
  return data
end

local function write_all(path, data)
  local f, err = io.open(path, "wb")
  if not f then return nil, err end
  f:write(data)
  f:close()
  return true
end

-- Installs the prebuilt core; returns a message, or raises one line.
local function install_prebuilt(opts, why_not_source)
  local prefix = "baseten build.lua: " .. (why_not_source and why_not_source .. ", and " or "")
  local function die(msg) error(prefix .. msg, 0) end
  local p, why = B.plan(opts)
  if not p then die(why .. ". Build from source: see the README's Install section") end
  if not have(p.curl, opts.windows) then
    die("installing the prebuilt core needs the `" .. p.curl .. "` program, which is not on PATH: install curl"
      .. " (Windows 10 and later have curl.exe), or build from source (BASETEN_BUILD=source)")
  end
  remove_tree(p.tmp, opts.windows)
  make_dir(p.unpacked, opts.windows)
  local function fail(msg)
    remove_tree(p.tmp, opts.windows)
    die(msg)
  end
  for i, argv in ipairs(p.download) do
    local ok, out = exec(argv, opts.windows)
    local url = argv[#argv]
    if not ok then
      fail(("downloading %s failed (%s). Check the URL%s and your connection, or build from source"
        .. " (BASETEN_BUILD=source)"):format(url, trim(out or ""):gsub("\n", " "),
        i == 1 and (os.getenv("BASETEN_DIST_URL") and " (BASETEN_DIST_URL)" or "") or ""))
    end
  end
  local want = B.sum_for(read_all(p.sums) or "", p.archive)
  if not want then fail("SHA256SUMS at " .. p.sums_url .. " lists no " .. p.archive .. ": nothing was installed") end
  local got = B.sha256(read_all(p.zip) or "")
  if got ~= want then
    fail(("the checksum of %s does not match SHA256SUMS (got %s, want %s): the download is damaged or was"
      .. " changed; nothing was installed. Run build.lua again, or build from source (BASETEN_BUILD=source)")
      :format(p.archive, got, want))
  end
  local ok, out = exec(p.unpack, opts.windows)
  if not ok or not exists(p.core_from) then
    fail(("unpacking %s failed (%s): nothing was installed. Install %s, or unzip it by hand into this folder")
      :format(p.archive, trim(out or ""):gsub("\n", " "), opts.windows and "tar.exe" or "unzip"))
  end
  -- under LuaJIT on Linux (Neovim), check that it loads here: the Linux core
  -- needs libcurl.so.4 at run time, which a machine without libcurl's headers may lack
  if rawget(_G, "jit") and not opts.windows then
    local f, lerr = package.loadlib(p.core_from, "luaopen_baseten_core")
    if not f then
      fail(("the prebuilt core of %s does not load here (%s): nothing was installed. It needs libcurl.so.4"
        .. " (Debian/Ubuntu: sudo apt-get install libcurl4; Fedora: libcurl; Arch: curl)")
        :format(p.archive, trim(tostring(lerr)):gsub("\n", " ")))
    end
  end
  -- a temporary file, then rename: a failed copy leaves the old core
  local data = read_all(p.core_from)
  local tmp = p.core_to .. ".tmp"
  local written, werr = write_all(tmp, data or "")
  if not data or not written then fail("cannot write " .. tmp .. ": " .. tostring(werr)) end
  if opts.windows then os.remove(p.core_to) end -- rename does not replace on Windows
  local renamed, rerr = os.rename(tmp, p.core_to)
  if not renamed then
    os.remove(tmp)
    fail("cannot replace " .. p.core_to .. " (" .. tostring(rerr) .. "): close the programs using it and run"
      .. " build.lua again")
  end
  remove_tree(p.tmp, opts.windows)
  write_all(dirname(p.core_to) .. "/core.origin", ("prebuilt %s (sha256 %s) from %s\n"):format(p.archive, got, p.url))
  return ("baseten: installed lua/baseten/%s from the prebuilt %s (SHA-256 checked)"):format(p.core_name, p.archive)
end

---------------------------------------------------------------- from source
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

-- what is missing, with how to install it
local function missing(what, key, detail)
  local lines = { "baseten build.lua: " .. what .. ". Install it, then run build.lua again:" }
  for _, os_name in ipairs({ "Debian/Ubuntu", "Fedora", "Arch", "macOS" }) do
    lines[#lines + 1] = ("  %-14s %s"):format(os_name .. ":", HOW[key][os_name])
  end
  if detail and detail ~= "" then lines[#lines + 1] = detail end
  return { what = what, text = table.concat(lines, "\n") }
end

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

-- The compiler and flags, or nil and what is missing.
local function toolchain()
  local CC = os.getenv("CC")
  if not CC or CC == "" then
    for _, c in ipairs({ "cc", "gcc", "clang" }) do
      if run("command -v " .. c) then
        CC = c
        break
      end
    end
  end
  if not CC or not run("command -v " .. CC) then return nil, missing("no C compiler (cc, gcc or clang) found", "cc") end
  local inc = lua_incdir()
  if not inc then return nil, missing("no LuaJIT or Lua 5.1 headers (lua.h) found", "lua") end
  local curl_cflags, curl_libs = "", "-lcurl"
  local ok, out = run("curl-config --cflags")
  if ok then curl_cflags = trim(out) end
  ok, out = run("pkg-config --libs libcurl")
  if ok and trim(out) ~= "" then curl_libs = trim(out) end
  local probe = ("printf '#include <curl/curl.h>\\n' | %s %s -E -x c - >/dev/null"):format(CC, curl_cflags)
  local found, err = run(probe)
  if not found then return nil, missing("libcurl's headers (curl/curl.h) are missing", "curl", err) end
  return { cc = CC, lua_inc = inc, curl_cflags = curl_cflags, curl_libs = curl_libs }
end

local function build_source(root, tc, macos)
  -- compile to a temporary file, then rename: a running Neovim that already
  -- loaded the old core keeps its mapping, and a failed build leaves the old one
  local out = root .. "/lua/baseten/core.so"
  local tmp = out .. ".tmp"
  local link = macos and "-bundle -undefined dynamic_lookup" or "-shared"
  local cflags = os.getenv("CFLAGS") or "-O2"
  local cmd = ("cd %s && %s -std=c99 %s -fPIC -fvisibility=hidden -I%s %s %s -o %s csrc/*.c %s"):format(
    sh_quote(root), tc.cc, cflags, sh_quote(tc.lua_inc), tc.curl_cflags, link, sh_quote(tmp), tc.curl_libs)
  local ok, log = run(cmd)
  if not ok then
    os.remove(tmp)
    error("baseten build.lua: compiling the C core failed:\n" .. cmd .. "\n" .. log, 0)
  end
  local renamed, rerr = os.rename(tmp, out)
  if not renamed then error("baseten build.lua: cannot write " .. out .. ": " .. tostring(rerr), 0) end
  -- when this runs inside LuaJIT (Neovim, `luajit build.lua`), check that it links
  if rawget(_G, "jit") then
    local f, lerr = package.loadlib(out, "luaopen_baseten_core")
    if not f then error("baseten build.lua: built " .. out .. " but LuaJIT cannot load it: " .. tostring(lerr), 0) end
  end
  write_all(root .. "/lua/baseten/core.origin", "built from source by build.lua (" .. tc.cc .. ")\n")
  return ("baseten: built lua/baseten/core.so for %s (headers: %s)"):format(_VERSION, tc.lua_inc)
end

---------------------------------------------------------------- main
-- the repository root: this file's folder
local function find_root()
  local src = debug.getinfo(1, "S").source
  local dir = src:sub(1, 1) == "@" and dirname(src:sub(2)) or "."
  if package.config:sub(1, 1) == "\\" then return dir end
  if dir:sub(1, 1) ~= "/" then
    local p = io.popen("cd " .. sh_quote(dir) .. " && pwd")
    dir = p:read("*l") or dir
    p:close()
  end
  return dir
end

--- The running platform: { windows, system, arch, abi }.
function B.platform()
  local jit = rawget(_G, "jit")
  local windows = package.config:sub(1, 1) == "\\" or (jit and jit.os == "Windows") or false
  local system = windows and "Windows" or trim(select(2, run("uname -s")))
  if system:find("^MINGW") or system:find("^MSYS") or system:find("^CYGWIN") then windows, system = true, "Windows" end
  local arch
  if jit then
    arch = ({ x64 = "x86_64", arm64 = "arm64", x86 = "x86" })[jit.arch] or jit.arch
  elseif windows then
    arch = (os.getenv("PROCESSOR_ARCHITECTURE") == "AMD64") and "x86_64" or os.getenv("PROCESSOR_ARCHITECTURE")
  else
    arch = trim(select(2, run("uname -m")))
  end
  local abi = (jit or _VERSION == "Lua 5.1") and "luajit" or _VERSION:gsub("^Lua ", "lua")
  return { windows = windows, system = system, arch = arch, abi = abi }
end

--- Source or prebuilt: "source", "prebuilt", or nil and why neither.
-- opts from B.platform(); mode is BASETEN_BUILD; can_build says whether a
-- compiler and every header were found.
function B.decide(opts, mode, can_build)
  if mode == "prebuilt" then return "prebuilt" end
  if opts.windows then
    if mode == "source" then
      return nil, "baseten build.lua: BASETEN_BUILD=source, but build.lua builds no core on Windows: unset it to"
        .. " install the prebuilt one, or build with LuaRocks (README, Windows)"
    end
    return "prebuilt"
  end
  if can_build then return "source" end
  -- Linux without a compiler or headers: the prebuilt core, unless told not to
  if mode == "source" or opts.system ~= "Linux" then return nil end
  return "prebuilt"
end

local function main()
  local root = find_root()
  local opts = B.platform()
  opts.root, opts.version, opts.dist_url = root, B.version(root), os.getenv("BASETEN_DIST_URL")
  if not opts.version then error("baseten build.lua: no BT_CORE_VERSION in " .. root .. "/csrc/core.c", 0) end
  local mode = os.getenv("BASETEN_BUILD") or ""
  if mode ~= "" and mode ~= "source" and mode ~= "prebuilt" then
    error("baseten build.lua: BASETEN_BUILD is '" .. mode .. "'; it can be 'source' or 'prebuilt'", 0)
  end
  local tc, gap
  if not opts.windows and mode ~= "prebuilt" then tc, gap = toolchain() end
  local how, why = B.decide(opts, mode, tc ~= nil)
  if how == "prebuilt" then return install_prebuilt(opts, not tc and gap and gap.what or nil) end
  if not tc then error(why or gap.text, 0) end
  return build_source(root, tc, opts.system == "Darwin")
end

if ... == "--lib" then return B end

local ok, msg = pcall(main)
local headless = in_nvim() and vim.api and #vim.api.nvim_list_uis() == 0
if not ok then
  if headless then
    -- `nvim -l` and `-c 'luafile build.lua' -c q` would otherwise exit 0
    io.stderr:write(tostring(msg), "\n")
    vim.cmd("cquit 1")
  end
  error(msg, 0)
end
if headless then
  io.stdout:write(msg, "\n")
elseif in_nvim() and vim.notify then
  vim.notify(msg)
else
  print(msg)
end
