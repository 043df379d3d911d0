-- baseten.mcp against the real, unmodified MCP reference servers from npm
-- (installed and pinned by `bash scripts/deps.sh mcp` into .mcp/):
-- server-everything over stdio and Streamable HTTP, server-filesystem
-- through run_tools against the bundled chat server, server-memory.
local baseten = require("baseten")
local mcp = require("baseten.mcp")
local core = require("baseten.core")
local server = require("spec.support.server")
local socket = require("socket")

local BIN = ".mcp/node_modules/.bin/"
local function bin(name)
  local path = BIN .. name
  local f = io.open(path, "r")
  if not f then error(path .. " is missing: run `bash scripts/deps.sh mcp`", 0) end
  f:close()
  return path
end

-- an absolute path (for a server started in another folder)
local function core_path(p)
  local pwd = os.getenv("PWD") or "."
  return p:sub(1, 1) == "/" and p or (pwd .. "/" .. p)
end

local function everything_checks(s, notes)
  assert.equal("2025-11-25", s.protocol_version)
  assert.equal("mcp-servers/everything", s.server_info.name)
  local tools = assert(s:list_tools())
  local names = {}
  for _, t in ipairs(tools) do names[t.name] = true end
  assert.is_true(names.echo and names["get-sum"] and names["trigger-elicitation-request"] and true)
  assert.equal("Echo: hi", assert(s:call_tool("echo", { message = "hi" })).content[1].text)
  local steps = {}
  local r = assert(s:call_tool("trigger-long-running-operation", { duration = 0.3, steps = 3 },
                               { on_progress = function(p, total) steps[#steps + 1] = { p, total } end }))
  assert.truthy(r.content[1].text:find("completed"))
  assert.same({ { 1, 3 }, { 2, 3 }, { 3, 3 } }, steps)
  local el = assert(s:call_tool("trigger-elicitation-request", {}))
  assert.falsy(el.isError)
  assert.truthy(el.content[1].text:find("provided the requested information"))
  assert.truthy(#assert(s:list_resources()) > 0)
  local res = assert(s:list_resources())[1]
  assert.truthy(assert(s:read_resource(res.uri)).contents[1])
  local prompts = assert(s:list_prompts())
  assert.truthy(#prompts > 0)
  local simple
  for _, p in ipairs(prompts) do if p.name == "simple-prompt" then simple = p end end
  assert.truthy(simple)
  assert.truthy(assert(s:get_prompt("simple-prompt")).messages[1])
  assert.is_true(s:ping())
  local _, err = s:call_tool("no-such-tool", {})
  -- the SDK reports an unknown tool as a result with isError, or as -32602
  if err then assert.equal("mcp", err.kind) end
  assert.truthy(notes["notifications/tools/list_changed"] or notes["notifications/progress"])
end

local function elicit_opts(notes)
  return {
    on_notification = function(m) notes[m] = (notes[m] or 0) + 1 end,
    on_elicit = function(message, schema)
      assert.equal("string", type(message))
      assert.equal("object", schema.type)
      return "accept", { name = "Ada", check = true, email = "ada@example.com", integer = 3, number = 1.5,
                         untitledSingleSelectEnum = "option1", titledSingleSelectEnum = "value1",
                         legacyTitledEnum = "opt1", untitledMultipleSelectEnum = { "option1" },
                         titledMultipleSelectEnum = { "value1" } }
    end,
  }
end

describe("mcp with the npm reference servers", function()
  it("server-everything over stdio", function()
    local notes = elicit_opts({})
    local seen = {}
    notes.on_notification = function(m) seen[m] = true end
    notes.command = { bin("mcp-server-everything") }
    local s = assert(mcp.connect(notes))
    everything_checks(s, seen)
    s:close()
  end)

  it("server-everything over Streamable HTTP", function()
    local sock = socket.bind("127.0.0.1", 0)
    local _, port = sock:getsockname()
    sock:close()
    local p = assert(core.spawn{ argv = { bin("mcp-server-everything"), "streamableHttp" },
                                 env = { "PORT=" .. port }, keep_err = true })
    local ready, log = false, ""
    for _ = 1, 600 do
      p:pump()
      log = log .. (p:take_err() or "")
      if log:find("listening on port") then ready = true break end
      core.sleep(0.05)
    end
    assert.is_true(ready, log)
    local seen = {}
    local opts = elicit_opts({})
    opts.on_notification = function(m) seen[m] = true end
    opts.url = "http://127.0.0.1:" .. port .. "/mcp"
    local s = assert(mcp.connect(opts))
    everything_checks(s, seen)
    s:close()
    p:close()
  end)

  it("server-filesystem through run_tools (with confirm) against the chat server", function()
    local dir = os.tmpname()
    os.remove(dir)
    -- the chat server's model passes "example" as every string argument
    assert(os.execute("mkdir -p '" .. dir .. "/example'"))
    local f = assert(io.open(dir .. "/example/hello.txt", "w"))
    f:write("hello from the file")
    f:close()
    local s = assert(mcp.connect{ command = { core_path(bin("mcp-server-filesystem")), dir }, cwd = dir })
    local srv = server.start()
    local client = baseten.new{ api_key = "k", base_url = srv.url, model = "deepseek-ai/DeepSeek-V3.1", max_retries = 0 }
    local asked = {}
    local resp, messages = client:run_tools{
      messages = { { role = "user", content = "what is in the file?" } },
      tools = assert(s:tools{ only = { "list_directory" } }),
      confirm = function(name, args)
        asked[#asked + 1] = name .. " " .. args.path
        return true
      end,
    }
    srv:stop()
    s:close()
    os.execute("rm -rf '" .. dir .. "'")
    assert.truthy(resp, tostring(messages))
    assert.same({ "list_directory example" }, asked)
    assert.equal("[FILE] hello.txt", messages[3].content)
    assert.truthy(resp.choices[1].message.content:find("hello.txt", 1, true))
  end)

  it("server-memory over stdio", function()
    local file = os.tmpname()
    os.remove(file)
    local s = assert(mcp.connect{ command = { bin("mcp-server-memory") }, env = { MEMORY_FILE_PATH = file .. ".jsonl" } })
    assert(s:call_tool("create_entities", { entities = { { name = "Ada", entityType = "person",
                                                             observations = { "wrote programs" } } } }))
    local g = assert(s:call_tool("read_graph", {}))
    assert.falsy(g.isError)
    assert.truthy(g.content[1].text:find("Ada"))
    s:close()
    os.remove(file .. ".jsonl")
  end)
end)
