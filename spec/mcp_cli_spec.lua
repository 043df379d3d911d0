-- bin/baseten's MCP commands (baseten mcp tools|call, chat --mcp), run as a
-- child process against spec/support/mcp_fault_server.lua and the bundled
-- chat server.
local server = require("spec.support.server")
local util = require("spec.support.util")

local SERVER = "lua5.4 spec/support/mcp_fault_server.lua"

local function cli(args, env)
  local parts = {}
  for i, a in ipairs(args) do parts[i] = util.quote(a) end
  return util.run(util.interpreter() .. " bin/baseten " .. table.concat(parts, " "),
                  { env = "-u BASETEN_API_KEY -u BASETEN_MODEL -u BASETEN_BASE_URL " .. (env or "") })
end

describe("baseten mcp", function()
  it("tools lists names and descriptions", function()
    local code, out = cli({ "mcp", "tools", SERVER .. " ok" })
    assert.equal(0, code)
    assert.equal("echo   echoes\nshout  upper case\n", out)
  end)

  it("tools --json prints the list", function()
    local code, out = cli({ "mcp", "tools", "--json", SERVER .. " ok" })
    assert.equal(0, code)
    assert.equal("echo", require("baseten").json.decode(out)[1].name)
  end)

  it("call prints the result's text; isError exits 1", function()
    local code, out = cli({ "mcp", "call", SERVER .. " ok", "echo", '{"text": "hey"}' })
    assert.equal(0, code)
    assert.equal("echo: hey\n", out)
    code, out = cli({ "mcp", "call", SERVER .. " 'ok'", "echo", '{"text": "fail"}' })
    assert.equal(1, code)
    assert.equal("it failed\n", out)
  end)

  it("a server that fails exits 1 with the error on stderr", function()
    local code, _, err = cli({ "mcp", "call", SERVER .. " crash", "echo" })
    assert.equal(1, code)
    assert.truthy(err:find("baseten: mcp: the server exited", 1, true))
  end)

  it("usage errors exit 2", function()
    assert.equal(2, (cli({ "mcp" })))
    assert.equal(2, (cli({ "mcp", "tools" })))
    assert.equal(2, (cli({ "mcp", "call", SERVER .. " ok" })))
    assert.equal(2, (cli({ "mcp", "tools", "lua5.4 'unbalanced" })))
    assert.equal(2, (cli({ "mcp", "call", SERVER .. " ok", "echo", "[1]" })))
  end)

  it("chat --mcp runs the tool loop with the server's tools", function()
    local srv = server.start()
    local code, out, err = cli({ "chat", "--base-url", srv.url, "-m", "deepseek-ai/DeepSeek-V3.1",
                                 "--mcp", SERVER .. " ok", "say it" })
    srv:stop()
    assert.equal(0, code, err)
    assert.truthy(err:find('baseten: tool echo {"text":"example"}', 1, true))
    assert.truthy(out:find("echo: example", 1, true))
  end)

  it("two servers: both servers' tools, a clash gets a prefix", function()
    local mcp_cli = require("baseten.mcp_cli")
    local tools, err, sessions = mcp_cli.tools({ SERVER .. " ok", SERVER .. " ok" })
    assert.truthy(tools, tostring(err))
    local names = {}
    for i, t in ipairs(tools) do names[i] = t["function"].name end
    assert.same({ "echo", "shout", "s2_echo", "s2_shout" }, names)
    for _, s in ipairs(sessions) do s:close() end
  end)

  it("splits a command line without a shell", function()
    local split = require("baseten.mcp_cli").split
    assert.same({ "npx", "-y", "a b", "c\"d", "$HOME", "" }, split([[npx  -y 'a b' "c\"d" $HOME '']]))
    assert.is_nil(split("a 'b"))
    assert.is_nil(split("   "))
  end)

  it("chat --mcp twice runs", function()
    local srv = server.start()
    local code, out, err = cli({ "chat", "--base-url", srv.url, "-m", "deepseek-ai/DeepSeek-V3.1",
                                 "--mcp", SERVER .. " ok", "--mcp", SERVER .. " ok", "--json", "say it" })
    srv:stop()
    assert.equal(0, code, err)
    assert.truthy(out:find('"finish_reason":"stop"', 1, true))
  end)
end)
