-- Runs each example in examples/ as a child process with the interpreter
-- that runs this suite (lua5.4, lua5.3, lua5.1 or luajit; BASETEN_TEST_LUA
-- overrides), against the bundled local server that the example starts
-- itself, and checks its exit status and output.
local util = require("spec.support.util")
local fixture = require("spec.support.fixture")

-- no key and no model in the environment: the examples use the local server
local function run(script, model)
  return util.run_script(script, {
    env = "-u BASETEN_API_KEY -u BASETEN_MODEL -u BASETEN_BASE_URL" .. (model and (" BASETEN_MODEL=" .. util.quote(model)) or ""),
  })
end

local function check(script, patterns, model)
  local code, out, err = run(script, model)
  assert(code == 0, script .. " exited " .. tostring(code) .. "\nstdout:\n" .. out .. "\nstderr:\n" .. err)
  assert(not out:find("userdata", 1, true), script .. ": a json.null reached the output\n" .. out)
  for _, pat in ipairs(patterns) do
    assert(out:find(pat, 1, true), script .. ": output lacks " .. pat .. "\nstdout:\n" .. out)
  end
  return out
end

describe("examples", function()
  it("make demo's closing lines run your own script, as printed, from another folder", function()
    local f = assert(io.open(util.ROOT .. "/Makefile", "rb"))
    local makefile = f:read("*a")
    f:close()
    local recipe = assert(makefile:match("\ndemo: deps\n(.-)\n\n"), "no demo target in the Makefile")
    local line = assert(recipe:match('@echo "Your own script, with this build: ([^"]+)"'), recipe)
    assert.equal("source scripts/env.sh 5.4 && lua5.4 myscript.lua", line)
    assert.truthy(recipe:find("export BASETEN_BASE_URL=http://127.0.0.1:8000/v1", 1, true), recipe)
    local server = require("spec.support.server")
    local srv = server.start()
    local dir = util.tmpdir()
    local sf = assert(io.open(dir .. "/myscript.lua", "wb"))
    sf:write('local b = require("baseten") print(b.check(b.new{ model = "deepseek-ai/DeepSeek-V3.1" }:chat{ messages = '
      .. '{ { role = "user", content = "mine" } } }).choices[1].message.content)\n')
    sf:close()
    -- the clone's path instead of "scripts/", as someone typing it in the clone would have
    local cmd = "bash -c " .. util.quote((line:gsub("scripts/", util.quote(util.ROOT) .. "/scripts/")))
    local code, out, err = util.run(cmd, { cwd = dir, env = "-u LUA_PATH -u LUA_CPATH -u LUA_PATH_5_4 -u LUA_CPATH_5_4"
      .. " BASETEN_API_KEY=local BASETEN_BASE_URL=" .. util.quote(srv.url) })
    srv:stop()
    os.execute("rm -rf " .. util.quote(dir))
    assert(code == 0, err)
    assert.truthy(out:find("You said: mine", 1, true), out)
  end)

  it("chat.lua prints the answer and the token usage", function()
    check("examples/chat.lua", {
      "You said: What is Lua, in one sentence?", "finish_reason: stop, tokens: ",
    })
  end)

  it("stream.lua streams the answer, then the final shape", function()
    check("examples/stream.lua", {
      "You said: Write a haiku about Lua tables.\n", "finish_reason: stop, 14 completion tokens",
    })
  end)

  it("extract.lua pulls a name and an email out of free text", function()
    check("examples/extract.lua", {
      "name:  Ada Lovelace", "email: ada@example.com",
      'as JSON: {', '"email":"ada@example.com"', '"name":"Ada Lovelace"',
    })
  end)

  it("agent.lua runs the tools the model calls and answers", function()
    check("examples/agent.lua", {
      '-> get_weather({"city":"Paris"})', '-> get_weather({"city":"Tokyo"})',
      "Here is what the tools returned: ", '"city":"Paris"', '"temperature_c":18', '"sky":"clear"',
      "(5 messages in the transcript)",
    })
  end)

  it("nonblocking.lua runs several requests at once", function()
    local out = check("examples/nonblocking.lua", {
      "[1] done: ", "[2] done: ", "[3] done: ", "[stream] done: ",
      "You said: Count to five.", "all 4 requests finished after",
    })
    assert.is_nil(out:find("failed", 1, true))
  end)

  it("search.lua embeds a folder and finds the file about a question", function()
    local out = check("examples/search.lua", { "embedded ", "files of examples",
      "extract structured JSON with a schema\n  1. extract.lua" })
    assert.is_nil(out:find("failed", 1, true))
  end)

  it("migrate.lua sends the OpenAI-shaped request", function()
    check("examples/migrate.lua", { "You said: Say hello" })
  end)

  it("demo.lua streams a chat and calls a tool", function()
    check("examples/demo.lua", {
      "== streamed chat", "== tool call", 'handler: get_weather("Paris")',
      "[thinking] The user said: Is 1001 a prime number? I should answer.\n[answer] Hello from the local",
    })
  end)

  -- Issue 12: the mock model "test/nulls" sends every nullable field as
  -- null (content, finish_reason, logprobs, refusal, tool_calls, usage).
  describe("on a server that sends every nullable field as null", function()
    it("chat.lua", function()
      check("examples/chat.lua", { "You said: What is Lua, in one sentence?", "finish_reason: stop, tokens: " },
            "test/nulls")
    end)
    it("stream.lua", function()
      check("examples/stream.lua", { "You said: Write a haiku about Lua tables.\n", "finish_reason: stop" },
            "test/nulls")
    end)
    it("agent.lua", function()
      check("examples/agent.lua", { '-> get_weather({"city":"Paris"})', "Here is what the tools returned: ",
                                    "(5 messages in the transcript)" }, "test/nulls")
    end)
  end)
end)

-- Every ```lua block of README.md runs (against the local server: the
-- blocks make their clients with baseten.new, which reads BASETEN_BASE_URL),
-- except those marked with a "<!-- norun -->" line before them. A block that
-- does not make `baseten` and `client` itself gets them from a prelude.
describe("README.md", function()
  local srv
  fixture.server(function(s) srv = s end)

  local f = assert(io.open("README.md", "rb"))
  local readme = f:read("*a")
  f:close()
  local blocks, n = {}, 0
  for at, before, code in readme:gmatch("()([^\n]*)\n```lua\n(.-)\n```") do
    n = n + 1
    local section
    for name in readme:sub(1, at):gmatch("\n### ([%w_]+)") do section = name end
    if not before:find("<!-- norun -->", 1, true) then
      blocks[#blocks + 1] = { n = n, code = code }
      -- the chat, stream (its chunk loop) and tool examples run again on
      -- the mock model that sends every nullable field as null (issue 12)
      if section == "chat" or section == "stream" or section == "run_tools" then
        blocks[#blocks + 1] = { n = n, code = code, model = "test/nulls" }
      end
    end
  end

  it("has runnable Lua blocks", function()
    assert.is_true(#blocks >= 10, "found only " .. #blocks)
  end)

  for _, b in ipairs(blocks) do
    local on = b.model and (" on " .. b.model) or ""
    it("lua block " .. b.n .. on .. " runs: " .. b.code:match("^[^\n]*"), function()
      local prelude = ""
      if not b.code:find("local baseten = require", 1, true) then
        prelude = prelude .. 'local baseten = require("baseten") '
      end
      if not b.code:find("local client = baseten.new", 1, true) then
        prelude = prelude .. ('local client = baseten.new{ model = %q } '):format(b.model or "deepseek-ai/DeepSeek-V3.1")
      end
      local code, stdout, stderr = util.run_lua(prelude .. "\n" .. b.code .. "\n", {
        env = "-u BASETEN_API_KEY BASETEN_BASE_URL=" .. util.quote(srv.url),
      })
      assert(code == 0 and stderr == "", "README lua block " .. b.n .. on .. " exited " .. tostring(code)
        .. "\n" .. b.code .. "\nstdout:\n" .. stdout .. "\nstderr:\n" .. stderr)
      assert(not stdout:find("userdata", 1, true), "README lua block " .. b.n .. on
        .. ": a json.null reached the output\n" .. stdout)
    end)
  end

  it("the Errors example prints what its comment says, run as script.lua", function()
    local block = readme:match("\n```lua\n(local stream = baseten%.check%(.-print%(ok, why%)[^\n]*)\n```")
    assert(block, "no Errors example with print(ok, why) in README.md")
    local want = block:match("print%(ok, why%)%s+%-%->%s+([^\n]*)")
    local dir = util.tmpdir()
    local sf = assert(io.open(dir .. "/script.lua", "wb"))
    sf:write((block:gsub("%s+%-%->[^\n]*", "")))
    sf:close()
    local prelude = 'baseten = require("baseten") client = baseten.new{ model = "deepseek-ai/DeepSeek-V3.1" }'
    local code, stdout, stderr = util.run(util.interpreter() .. " -e " .. util.quote(prelude) .. " script.lua",
      { cwd = dir, env = "-u BASETEN_API_KEY BASETEN_BASE_URL=" .. util.quote(srv.url) })
    os.execute("rm -rf " .. util.quote(dir))
    assert(code == 0, stderr)
    local last = stdout:match("([^\n]*)\n?$")
    -- the comment's "false  script.lua:5: ... [request_id ...]": the same up to the id
    local prefix = assert(want:match("^(.-)%[request_id %.%.%.%]$"), want):gsub("%s+", " ")
    local got = last:gsub("%s+", " ")
    assert.equal(prefix, got:sub(1, #prefix), "printed:\n" .. last .. "\nthe README says:\n" .. want)
    assert.truthy(got:sub(#prefix + 1):find("^%[request_id [^]]+%]$"), last)
  end)
end)
