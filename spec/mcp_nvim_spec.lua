-- baseten.mcp inside a headless Neovim (spec/support/nvim_mcp.lua): a
-- server's tools listed and a slow call made without blocking the editor
-- (a 5 ms timer keeps ticking), and :checkhealth baseten reporting the
-- servers a plugin registered. Neovim's LuaJIT loads the 5.1 build.
-- luacheck: std max+busted
local util = require("spec.support.util")
local json = require("baseten").json

local ROOT, q = util.ROOT, util.quote

describe("mcp in Neovim", function()
  it("lists and calls tools without blocking; :checkhealth reports registered servers", function()
    if not util.have("nvim") then
      error("nvim is not installed: `bash scripts/deps.sh hosts` installs it (Debian package neovim)", 0)
    end
    local tree = ROOT .. "/.rocks/5.1"
    local tmp = util.tmpdir()
    local out = tmp .. "/result.json"
    local env = table.concat({
      "env -u LUA_INIT -u LUA_INIT_5_1",
      "LUA_PATH=" .. q(tree .. "/share/lua/5.1/?.lua;" .. tree .. "/share/lua/5.1/?/init.lua;;"),
      "LUA_CPATH=" .. q(tree .. "/lib/lua/5.1/?.so;;"),
      "BASETEN_TEST_RESULT=" .. q(out),
      "BASETEN_TEST_SERVER=" .. q("lua5.4 " .. ROOT .. "/spec/support/mcp_fault_server.lua ok"),
      "XDG_CONFIG_HOME=" .. q(tmp), "XDG_DATA_HOME=" .. q(tmp), "XDG_STATE_HOME=" .. q(tmp),
    }, " ")
    -- the runtimepath holds the build's Lua files as lua/ (so :checkhealth
    -- finds lua/baseten/health.lua); the core comes from LUA_CPATH
    assert(util.execute("mkdir -p " .. q(tmp .. "/rtp") .. " && ln -s " .. q(tree .. "/share/lua/5.1") .. " "
      .. q(tmp .. "/rtp/lua")))
    local cmd = env .. " timeout 60 nvim --headless -u NONE -i NONE -n --cmd " .. q("set rtp^=" .. tmp .. "/rtp")
      .. " -c "
      .. q("luafile " .. ROOT .. "/spec/support/nvim_mcp.lua") .. " </dev/null >" .. q(tmp .. "/log") .. " 2>&1"
    util.execute(cmd)
    local text = util.read_file(out)
    local log = util.read_file(tmp .. "/log") or ""
    util.execute("rm -rf " .. q(tmp))
    assert(text, "nvim wrote no result:\n" .. log)
    local r = json.decode(text)
    assert(r.ok, tostring(r.error) .. "\n" .. log)
    assert.same({ "echo", "shout" }, r.tools)
    assert.equal("echo: slow", r.text)
    -- the call took 0.5 s: the editor's 5 ms timer kept ticking meanwhile
    assert.is_true(r.beats >= 20, "only " .. r.beats .. " heartbeats")
    assert.is_true(r.polls >= 10, "only " .. r.polls .. " polls")
    local health = table.concat(r.health, "\n")
    assert.truthy(health:find("baseten: MCP servers", 1, true), health)
    assert.truthy(health:find("faults: lua5.4 .-fault 2025%-06%-18, 2 tools"), health)
    assert.truthy(health:find("missing: /nonexistent/mcp-server is not executable", 1, true), health)
  end)
end)
