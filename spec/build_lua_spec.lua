-- build.lua (the Neovim plugin's build step, and `make love-kit`'s): what it
-- says when a compiler, libcurl's headers or the Lua headers are missing
-- (BASETEN_BUILD=source), and its prebuilt path with no compiler: a
-- file:// release folder, checked against SHA256SUMS, each failure named
-- and nothing left behind. It runs in a child interpreter on a copy of
-- build.lua, so nothing here replaces lua/baseten/core.so; the successful
-- builds in Neovim (source and prebuilt, over HTTP) are in hosts_spec.lua.
-- Its parts (SHA-256 on every backend, the Windows branch's archive, URL
-- and commands) are tested as functions.
-- luacheck: std max+busted
local util = require("spec.support.util")

local ROOT, q = util.ROOT, util.quote

local tmp

-- build.lua's functions, loaded without running it
local function B()
  return assert(loadfile(ROOT .. "/build.lua"))("--lib")
end

-- runs a copy of build.lua (in a scratch tree holding csrc/) with `env`;
-- returns the output and whether it succeeded
local function build(env, interp)
  local rc, out = util.run((interp or "lua5.1") .. " build.lua", { cwd = tmp, env = env, merge = true })
  return out, rc == 0
end

local function wrapper(name, body)
  local path = tmp .. "/" .. name
  local f = assert(io.open(path, "w"))
  f:write("#!/bin/sh\n", body, "\n")
  f:close()
  os.execute("chmod +x " .. q(path))
  return path
end

describe("build.lua", function()
  before_each(function()
    tmp = util.tmpdir()
    os.execute("mkdir -p " .. q(tmp .. "/lua/baseten") .. " && cp -r " .. q(ROOT .. "/csrc") .. " " .. q(ROOT .. "/build.lua")
      .. " " .. q(tmp))
  end)

  after_each(function()
    os.execute("rm -rf " .. q(tmp))
  end)

  local function says_how(out)
    for _, os_name in ipairs({ "Debian/Ubuntu:", "Fedora:", "Arch:", "macOS:" }) do
      assert.truthy(out:find(os_name, 1, true), "no " .. os_name .. " line:\n" .. out)
    end
  end

  it("names a missing C compiler and how to install one", function()
    local out, ok = build("BASETEN_BUILD=source CC=/nonexistent/cc")
    assert.is_false(ok)
    assert.truthy(out:find("no C compiler (cc, gcc or clang) found", 1, true), out)
    assert.truthy(out:find("build-essential", 1, true), out)
    says_how(out)
  end)

  it("names missing Lua headers", function()
    local out, ok = build("BASETEN_BUILD=source BASETEN_LUA_INCDIR=/nonexistent")
    assert.is_false(ok)
    assert.truthy(out:find("no lua.h in BASETEN_LUA_INCDIR=/nonexistent", 1, true), out)
    -- and with no headers anywhere it looks (no pkg-config, no include folders)
    local cc = wrapper("cc-noinc", "exec cc -nostdinc \"$@\"")
    out, ok = build("BASETEN_BUILD=source CC=" .. q(cc) .. " PATH=" .. q(tmp .. ":/usr/bin:/bin") .. " BASETEN_LUA_INCDIR=")
    assert.is_false(ok)
    -- this machine has the headers in /usr/include: either message names what failed
    assert.truthy(out:find("libcurl's headers (curl/curl.h) are missing", 1, true)
      or out:find("no LuaJIT or Lua 5.1 headers", 1, true), out)
    says_how(out)
  end)

  it("names missing libcurl headers", function()
    -- a compiler that cannot see /usr/include (where curl/curl.h is)
    local cc = wrapper("cc-noinc", "exec cc -nostdinc \"$@\"")
    local out, ok = build("BASETEN_BUILD=source CC=" .. q(cc))
    assert.is_false(ok)
    assert.truthy(out:find("libcurl's headers (curl/curl.h) are missing", 1, true), out)
    assert.truthy(out:find("libcurl4-openssl-dev", 1, true), out)
    says_how(out)
  end)

  it("builds lua/baseten/core.so, atomically, when all is there", function()
    local out, ok = build("CFLAGS=-O0")
    assert(ok, out)
    assert.truthy(out:find("built lua/baseten/core.so for Lua 5.1", 1, true), out)
    assert.truthy(io.open(tmp .. "/lua/baseten/core.so", "rb"))
    assert.is_nil(io.open(tmp .. "/lua/baseten/core.so.tmp", "rb"))
    assert.truthy(util.read_file(tmp .. "/lua/baseten/core.origin"):find("^built from source by build.lua"))
  end)

  -- a release folder as `make dist` lays it out, with a stand-in core
  -- (lua5.1 does not load it); returns its path and the archive's name
  local function fake_dist(core_bytes)
    local name = "baseten-" .. B().version(ROOT) .. "-linux-x86_64-luajit.zip"
    local dist, stage = tmp .. "/dist", tmp .. "/stage"
    assert(util.execute("mkdir -p " .. q(dist) .. " " .. q(stage .. "/lua/baseten")))
    local f = assert(io.open(stage .. "/lua/baseten/core.so", "wb"))
    f:write(core_bytes)
    f:close()
    assert(util.execute("cd " .. q(stage) .. " && zip -q -r " .. q(dist .. "/" .. name) .. " lua"
      .. " && cd " .. q(dist) .. " && sha256sum " .. q(name) .. " > SHA256SUMS"))
    return dist, name
  end

  -- a PATH without cc, gcc and clang: the tools build.lua runs, linked one by one
  local function path_without_cc(with_curl)
    local bin = tmp .. (with_curl and "/bin" or "/bin-nocurl")
    if io.open(bin .. "/sh", "rb") then return bin end
    local tools = { "sh", "uname", "unzip", "rm", "mkdir", "grep", "pkg-config", "curl-config" }
    if with_curl then tools[#tools + 1] = "curl" end
    local cmd = "mkdir -p " .. q(bin)
    for _, t in ipairs(tools) do
      cmd = cmd .. " && { p=$(command -v " .. t .. ") && ln -s \"$p\" " .. q(bin .. "/" .. t) .. " || true; }"
    end
    assert(util.execute(cmd))
    return bin
  end

  local function core_left()
    return io.open(tmp .. "/lua/baseten/core.so", "rb") ~= nil or io.open(tmp .. "/build/prebuilt", "rb") ~= nil
  end

  it("with no compiler on Linux, installs the prebuilt core from BASETEN_DIST_URL (file://), checked", function()
    local dist, name = fake_dist("stand-in core\0\1\2")
    local env = "PATH=" .. q(path_without_cc(true)) .. " BASETEN_DIST_URL=" .. q("file://" .. dist)
    local out, ok = build(env, "/usr/bin/lua5.1")
    assert(ok, out)
    assert.truthy(out:find("installed lua/baseten/core.so from the prebuilt " .. name .. " (SHA-256 checked)", 1, true),
      out)
    assert.equal("stand-in core\0\1\2", util.read_file(tmp .. "/lua/baseten/core.so"))
    assert.truthy(util.read_file(tmp .. "/lua/baseten/core.origin"):find("prebuilt " .. name, 1, true))
    assert.is_nil(io.open(tmp .. "/build/prebuilt", "rb")) -- the download folder is gone
  end)

  it("refuses an archive whose checksum does not match, and leaves nothing behind", function()
    local dist, name = fake_dist("stand-in core")
    -- one byte changed, SHA256SUMS as it was
    assert(util.execute("printf 'X' | dd of=" .. q(dist .. "/" .. name) .. " bs=1 seek=40 conv=notrunc 2>/dev/null"))
    local out, ok = build("PATH=" .. q(path_without_cc(true)) .. " BASETEN_DIST_URL=" .. q("file://" .. dist),
      "/usr/bin/lua5.1")
    assert.is_false(ok)
    assert.truthy(out:find("no C compiler (cc, gcc or clang) found, and the checksum of " .. name
      .. " does not match SHA256SUMS", 1, true), out)
    assert.truthy(out:find("nothing was installed", 1, true), out)
    assert.is_false(core_left())
  end)

  it("under LuaJIT, refuses a prebuilt core that does not load, and installs nothing", function()
    local dist, name = fake_dist("not a shared object")
    local out, ok = build("PATH=" .. q(path_without_cc(true)) .. " BASETEN_DIST_URL=" .. q("file://" .. dist),
      "/usr/bin/luajit")
    assert.is_false(ok)
    assert.truthy(out:find("the prebuilt core of " .. name .. " does not load here", 1, true), out)
    assert.truthy(out:find("libcurl4", 1, true), out)
    assert.is_false(core_left())
  end)

  it("says what failed: a missing archive, a missing entry in SHA256SUMS, no curl", function()
    local dist, name = fake_dist("stand-in core")
    local bin = path_without_cc(true)
    local out, ok = build("PATH=" .. q(bin) .. " BASETEN_DIST_URL=" .. q("file://" .. tmp .. "/nowhere"), "/usr/bin/lua5.1")
    assert.is_false(ok)
    assert.truthy(out:find("downloading file://" .. tmp .. "/nowhere/" .. name .. " failed", 1, true), out)
    assert.truthy(out:find("BASETEN_DIST_URL", 1, true), out)
    assert.is_false(core_left())
    assert(util.execute("echo '0000  other.zip' > " .. q(dist .. "/SHA256SUMS")))
    out, ok = build("PATH=" .. q(bin) .. " BASETEN_DIST_URL=" .. q("file://" .. dist), "/usr/bin/lua5.1")
    assert.is_false(ok)
    assert.truthy(out:find("SHA256SUMS at file://" .. dist .. "/SHA256SUMS lists no " .. name, 1, true), out)
    assert.is_false(core_left())
    out, ok = build("PATH=" .. q(path_without_cc(false)) .. " BASETEN_DIST_URL=" .. q("file://" .. dist),
      "/usr/bin/lua5.1")
    assert.is_false(ok)
    assert.truthy(out:find("needs the `curl` program", 1, true), out)
    assert.is_false(core_left())
  end)

  it("BASETEN_BUILD takes only 'source' or 'prebuilt'", function()
    local out, ok = build("BASETEN_BUILD=binary")
    assert.is_false(ok)
    assert.truthy(out:find("BASETEN_BUILD is 'binary'; it can be 'source' or 'prebuilt'", 1, true), out)
  end)
end)

describe("build.lua's parts", function()
  it("computes SHA-256 in Lua with every backend this Lua has, as sha256sum does", function()
    local b = B()
    local backends = b.sha256_backends()
    assert.truthy(#backends >= 1)
    assert.equal("arith", backends[#backends]) -- plain arithmetic: always there (Lua 5.1 without bit)
    local vectors = {
      [""] = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
      abc = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
      ["abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"] =
        "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1",
    }
    -- binary data of every length around the 55/56/64-byte padding edges
    local dir = util.tmpdir()
    for _, n in ipairs({ 1, 55, 56, 63, 64, 65, 119, 120, 200 }) do
      local data = {}
      for i = 1, n do data[i] = string.char((i * 151 + n) % 256) end
      data = table.concat(data)
      local path = dir .. "/d" .. n
      local f = assert(io.open(path, "wb"))
      f:write(data)
      f:close()
      vectors[data] = util.capture("sha256sum " .. q(path)):match("^(%x+)")
    end
    os.execute("rm -rf " .. q(dir))
    for _, backend in ipairs(backends) do
      for data, want in pairs(vectors) do
        assert.equal(want, b.sha256(data, backend), backend .. ", " .. #data .. " bytes")
      end
    end
  end)

  it("reads a SHA256SUMS file as sha256sum writes it", function()
    local b = B()
    local h = string.rep("ab", 32)
    local sums = "0123  other.zip\n" .. h .. "  baseten-1.0.0-linux-x86_64-luajit.zip\r\n" .. h:upper() .. " *bin.zip\n"
    assert.equal(h, b.sum_for(sums, "baseten-1.0.0-linux-x86_64-luajit.zip"))
    assert.equal(h, b.sum_for(sums, "bin.zip"))
    assert.is_nil(b.sum_for(sums, "other.zip")) -- not 64 hex digits
    assert.is_nil(b.sum_for(sums, "missing.zip"))
  end)

  it("on Windows: always the prebuilt core; which archive, which URL, which commands", function()
    local b = B()
    local win = { windows = true, system = "Windows", arch = "x86_64", abi = "luajit" }
    assert.equal("prebuilt", b.decide(win, "", false))
    assert.equal("prebuilt", b.decide(win, "prebuilt", false))
    local how, why = b.decide(win, "source", false)
    assert.is_nil(how)
    assert.truthy(why:find("builds no core on Windows", 1, true))
    local p = b.plan { version = "1.2.3", root = "C:\\Users\\me\\lazy\\baseten-lua", windows = true,
      system = "Windows", arch = "x86_64", abi = "luajit" }
    assert.equal("baseten-1.2.3-windows-x86_64-luajit.zip", p.archive)
    local base = "https://github.com/basetenlabs/baseten-lua/releases/download/v1.2.3/"
    assert.equal(base .. "baseten-1.2.3-windows-x86_64-luajit.zip", p.url)
    assert.equal(base .. "SHA256SUMS", p.sums_url)
    local tmpdir = "C:\\Users\\me\\lazy\\baseten-lua\\build\\prebuilt"
    assert.same({
      { "curl.exe", "-fsSL", "--retry", "2", "-o", tmpdir .. "\\baseten-1.2.3-windows-x86_64-luajit.zip", p.url },
      { "curl.exe", "-fsSL", "--retry", "2", "-o", tmpdir .. "\\SHA256SUMS", p.sums_url },
    }, p.download)
    assert.same({ "tar.exe", "-xf", tmpdir .. "\\baseten-1.2.3-windows-x86_64-luajit.zip", "-C", tmpdir .. "\\unpacked" },
      p.unpack)
    assert.equal(tmpdir .. "\\unpacked\\lua\\baseten\\core.dll", p.core_from)
    assert.equal("C:\\Users\\me\\lazy\\baseten-lua\\lua\\baseten\\core.dll", p.core_to)
    -- BASETEN_DIST_URL replaces the base, a trailing slash or not
    p = b.plan { version = "1.2.3", root = "C:\\x", windows = true, system = "Windows", arch = "x86_64", abi = "luajit",
      dist_url = "file:///C:/mirror/" }
    assert.equal("file:///C:/mirror/baseten-1.2.3-windows-x86_64-luajit.zip", p.url)
    assert.equal("file:///C:/mirror/SHA256SUMS", p.sums_url)
  end)

  it("on Linux: source when it can build, else prebuilt; no archive for other systems and machines", function()
    local b = B()
    local linux = { windows = false, system = "Linux", arch = "x86_64", abi = "luajit" }
    assert.equal("source", b.decide(linux, "", true))
    assert.equal("prebuilt", b.decide(linux, "", false))
    assert.is_nil(b.decide(linux, "source", false))
    assert.equal("prebuilt", b.decide(linux, "prebuilt", true))
    assert.is_nil(b.decide({ system = "Darwin", arch = "arm64", abi = "luajit" }, "", false)) -- macOS: build it
    local p = b.plan { version = "1.2.3", root = "/home/me/baseten", windows = false, system = "Linux", arch = "x86_64",
      abi = "luajit" }
    assert.equal("baseten-1.2.3-linux-x86_64-luajit.zip", p.archive)
    assert.same({ "unzip", "-q", "/home/me/baseten/build/prebuilt/baseten-1.2.3-linux-x86_64-luajit.zip", "-d",
      "/home/me/baseten/build/prebuilt/unpacked" }, p.unpack)
    assert.equal("/home/me/baseten/lua/baseten/core.so", p.core_to)
    local none, why = b.plan { version = "1", root = "/x", system = "Linux", arch = "arm64", abi = "luajit" }
    assert.is_nil(none)
    assert.truthy(why:find("no prebuilt core for linux on arm64", 1, true))
    none, why = b.plan { version = "1", root = "/x", system = "Darwin", arch = "x86_64", abi = "luajit" }
    assert.is_nil(none)
    assert.truthy(why:find("no prebuilt core for Darwin", 1, true))
  end)
end)
