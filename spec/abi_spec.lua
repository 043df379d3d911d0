-- require("baseten") with a core built for another Lua (issue 12): the
-- error says which Lua the found file was built for, which Lua is running,
-- and the command that builds the right one. Each case runs a child
-- interpreter with LUA_CPATH pointing at a build for another Lua from
-- .rocks/ (scripts/build.sh builds 5.4, 5.3 and 5.1).
-- luacheck: std max+busted
local util = require("spec.support.util")

local ROOT, q = util.ROOT, util.quote

local function so(v)
  return ROOT .. "/.rocks/" .. v .. "/lib/lua/" .. v .. "/baseten/core.so"
end

-- Runs `interp -e 'require("baseten")'` with the Lua files of lua/ and the
-- core of .rocks/<v>; returns the output (stdout and stderr).
local function load_with(interp, v)
  assert(io.open(so(v), "rb"), "no Lua " .. v .. " build at " .. so(v) .. ": run scripts/build.sh"):close()
  local _, out = util.run(interp .. " -e " .. q('local b = require("baseten") print("loaded " .. b.VERSION)'), {
    env = "-u LUA_INIT -u LUA_INIT_5_1 -u LUA_INIT_5_3 -u LUA_INIT_5_4"
      .. " LUA_PATH=" .. q(ROOT .. "/lua/?.lua;" .. ROOT .. "/lua/?/init.lua")
      .. " LUA_CPATH=" .. q(ROOT .. "/.rocks/" .. v .. "/lib/lua/" .. v .. "/?.so"),
    merge = true,
  })
  return out
end

describe("require('baseten') with a core built for another Lua", function()
  it("Lua 5.4 with the Lua 5.1 build: names both Lua versions and the luarocks command", function()
    local out = load_with("lua5.4", "5.1")
    assert.is_nil(out:find("loaded ", 1, true), out)
    assert.truthy(out:find(so("5.1") .. " was built for Lua 5.1, but this is Lua 5.4", 1, true), out)
    assert.truthy(out:find("`luarocks --lua-version=5.4 make`", 1, true), out)
    assert.truthy(out:find("undefined symbol: lua_", 1, true), out) -- the loader's own words stay
  end)

  it("LuaJIT with the Lua 5.4 build: says LuaJIT needs the 5.1 build", function()
    if not util.have("luajit") then error("luajit is not installed (scripts/deps.sh installs it)") end
    local out = load_with("luajit", "5.4")
    assert.is_nil(out:find("loaded ", 1, true), out)
    assert.truthy(out:find(" was built for Lua 5.4, but this is LuaJIT ", 1, true), out)
    assert.truthy(out:find("(Lua 5.1 ABI)", 1, true), out)
    assert.truthy(out:find("`luarocks --lua-version=5.1 make`", 1, true), out)
  end)

  it("Lua 5.3 with the Lua 5.4 build, and 5.1 with the 5.3 build", function()
    local out = load_with("lua5.3", "5.4")
    assert.truthy(out:find(" was built for Lua 5.4, but this is Lua 5.3", 1, true), out)
    assert.truthy(out:find("`luarocks --lua-version=5.3 make`", 1, true), out)
    out = load_with("lua5.1", "5.3")
    assert.truthy(out:find(" was built for Lua 5.3, but this is Lua 5.1", 1, true), out)
  end)

  it("no core at all: says it is not installed for this Lua, and how to build it", function()
    local _, out = util.run("lua5.4 -e " .. q('require("baseten")'), {
      env = "-u LUA_INIT -u LUA_INIT_5_4 LUA_PATH=" .. q(ROOT .. "/lua/?.lua;" .. ROOT .. "/lua/?/init.lua")
        .. " LUA_CPATH=/nonexistent/?.so",
      merge = true,
    })
    assert.truthy(out:find("the C core (baseten.core) is not installed for Lua 5.4", 1, true), out)
    assert.truthy(out:find("`luarocks --lua-version=5.4 make`", 1, true), out)
  end)

  it("the matching build loads, and the core says which Lua it was built for", function()
    local out = load_with("lua5.4", "5.4")
    assert.truthy(out:find("loaded ", 1, true), out)
    assert.equal(_VERSION, require("baseten.core").LUA_VERSION)
  end)
end)
