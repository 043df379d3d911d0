-- build.lua (the Neovim plugin's build step, and `make love-kit`'s): what it
-- says when a compiler, libcurl's headers or the Lua headers are missing.
-- It runs in a child interpreter on a copy of build.lua, so nothing here
-- replaces lua/baseten/core.so; the successful build is in hosts_spec.lua.
-- luacheck: std max+busted
local util = require("spec.support.util")

local ROOT, q = util.ROOT, util.quote

local tmp

-- runs a copy of build.lua (in a scratch tree holding csrc/) with `env`;
-- returns the output and whether it succeeded
local function build(env)
  local rc, out = util.run("lua5.1 build.lua", { cwd = tmp, env = env, merge = true })
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
    local out, ok = build("CC=/nonexistent/cc")
    assert.is_false(ok)
    assert.truthy(out:find("no C compiler (cc, gcc or clang) found", 1, true), out)
    assert.truthy(out:find("build-essential", 1, true), out)
    says_how(out)
  end)

  it("names missing Lua headers", function()
    local out, ok = build("BASETEN_LUA_INCDIR=/nonexistent")
    assert.is_false(ok)
    assert.truthy(out:find("no lua.h in BASETEN_LUA_INCDIR=/nonexistent", 1, true), out)
    -- and with no headers anywhere it looks (no pkg-config, no include folders)
    local cc = wrapper("cc-noinc", "exec cc -nostdinc \"$@\"")
    out, ok = build("CC=" .. q(cc) .. " PATH=" .. q(tmp .. ":/usr/bin:/bin") .. " BASETEN_LUA_INCDIR=")
    assert.is_false(ok)
    -- this machine has the headers in /usr/include: either message names what failed
    assert.truthy(out:find("libcurl's headers (curl/curl.h) are missing", 1, true)
      or out:find("no LuaJIT or Lua 5.1 headers", 1, true), out)
    says_how(out)
  end)

  it("names missing libcurl headers", function()
    -- a compiler that cannot see /usr/include (where curl/curl.h is)
    local cc = wrapper("cc-noinc", "exec cc -nostdinc \"$@\"")
    local out, ok = build("CC=" .. q(cc))
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
  end)
end)
