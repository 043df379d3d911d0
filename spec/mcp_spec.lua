-- baseten.mcp over stdio against spec/support/mcp_fault_server.lua: the
-- client's side of the protocol, each fault of issue 25 part 4, the
-- session's tools in run_tools (with confirm) against the bundled chat
-- server, and start_call driven by poll.
local baseten = require("baseten")
local mcp = require("baseten.mcp")
local server = require("spec.support.server")

local FAULT = "spec/support/mcp_fault_server.lua"

local function connect(mode, opts)
  opts = opts or {}
  opts.command = { "lua5.4", FAULT, mode, opts.record }
  opts.record = nil
  return mcp.connect(opts)
end

local function tmpname()
  local p = os.tmpname()
  os.remove(p)
  return p
end

local function read(path)
  local f = io.open(path, "r")
  if not f then return "" end
  local s = f:read("*a")
  f:close()
  return s
end

describe("mcp over stdio", function()
  it("handshakes, lists and calls tools, pings and closes", function()
    local rec = tmpname()
    local s = assert(connect("ok", { record = rec }))
    assert.equal("2025-06-18", s.protocol_version)
    assert.equal("fault", s.server_info.name)
    assert.is_true(s.capabilities.tools.listChanged)
    local tools = assert(s:list_tools())
    assert.equal(2, #tools)
    assert.equal("echo", tools[1].name)
    local r = assert(s:call_tool("echo", { text = "hi" }))
    assert.equal("echo: hi", r.content[1].text)
    assert.is_false(r.isError)
    assert.is_true(s:ping())
    s:close()
    s:close() -- idempotent
    local _, err = s:ping()
    assert.equal("mcp", err.kind)
    local log = read(rec)
    os.remove(rec)
    assert.truthy(log:find('"protocolVersion":"2025-11-25"', 1, true))
    assert.truthy(log:find('"clientInfo":{', 1, true))
    assert.truthy(log:find('"name":"baseten"', 1, true))
    assert.truthy(log:find('"notifications/initialized"', 1, true))
  end)

  it("declares elicitation and roots only when given", function()
    local rec = tmpname()
    local s = assert(connect("ok", { record = rec, on_elicit = function() return "decline" end,
                                     roots = { { uri = "file:///tmp", name = "tmp" } } }))
    s:close()
    local log = read(rec)
    os.remove(rec)
    assert.truthy(log:find('"elicitation":{}', 1, true))
    assert.truthy(log:find('"roots":{"listChanged":false}', 1, true))
    rec = tmpname()
    s = assert(connect("ok", { record = rec }))
    s:close()
    log = read(rec)
    os.remove(rec)
    assert.falsy(log:find('"elicitation"', 1, true))
    assert.truthy(log:find('"capabilities":{}', 1, true))
  end)

  it("start_connect returns at once; poll runs the handshake, then on_ready", function()
    local ready, ready_err
    local s = assert(mcp.start_connect{ command = { "lua5.4", FAULT, "ok" },
                                        on_ready = function(sess, err) ready, ready_err = sess, err end })
    local _, early = s:ping() -- before the handshake: fails at once, never blocks
    assert.equal("mcp", early.kind)
    local polls = 0
    while not ready do
      polls = polls + 1
      s:poll(0.05)
      assert(polls < 2000)
    end
    assert.is_nil(ready_err)
    assert.equal(s, ready)
    assert.equal("2025-06-18", s.protocol_version)
    assert.is_true(s:ping())
    s:close()
    local failed
    local f = assert(mcp.start_connect{ command = { "lua5.4", FAULT, "handshake_exit" },
                                        on_ready = function(_, err) failed = err end })
    polls = 0
    while not failed do
      polls = polls + 1
      f:poll(0.05)
      assert(polls < 2000)
    end
    assert.equal("mcp", failed.kind)
    assert.truthy(failed.message:find("during the handshake"))
  end)

  it("raises bad options at the caller's line", function()
    local function line_of(f)
      local ok, e = pcall(f)
      assert.is_false(ok)
      return tostring(e):match("mcp_spec%.lua:(%d+):")
    end
    local here = debug.getinfo(1, "l").currentline
    assert.equal(tostring(here + 1), line_of(function() mcp.connect{ command = { 1 } } end))
    assert.equal(tostring(here + 2), line_of(function() mcp.connect{ command = { "x" }, env = { A = {} } } end))
    assert.equal(tostring(here + 3), line_of(function() mcp.connect{ url = "http://x", headers = { ["a b"] = "1" } } end))
    assert.equal(tostring(here + 4), line_of(function() mcp.start_connect{ command = { "x" }, log = 1 } end))
    assert.equal(tostring(here + 5), line_of(function() mcp.connect{ command = { "x" }, timeout = -1 } end))
    assert.equal(tostring(here + 6), line_of(function() mcp.connect(1) end))
    local s = assert(connect("ok"))
    local l2 = debug.getinfo(1, "l").currentline
    assert.equal(tostring(l2 + 1), line_of(function() s:call_tool("echo", {}, { on_progress = 1 }) end))
    assert.equal(tostring(l2 + 2), line_of(function() s:start_call("echo", 1) end))
    assert.equal(tostring(l2 + 3), line_of(function() s:tools{ filter = 1 } end))
    assert.equal(tostring(l2 + 4), line_of(function() s:start("ping", nil, { timeout = 0 }) end))
    s:close()
  end)

  it("rejects bad options", function()
    assert.has_error(function() mcp.connect{ command = "lua5.4 x.lua" } end)
    assert.has_error(function() mcp.connect{ command = { "x" }, url = "http://x" } end)
    assert.has_error(function() mcp.connect{ command = { "x" }, timeout = -1 } end)
    assert.has_error(function() mcp.connect{ command = { "x" }, env = { ["A=B"] = "c" } } end)
    assert.has_error(function() mcp.connect{ url = "ftp://x" } end)
  end)

  it("fails to start a command that does not exist", function()
    local s, err = mcp.connect{ command = { "/nonexistent/mcp-server" } }
    assert.is_nil(s)
    assert.equal("mcp", err.kind)
  end)

  it("a server that writes garbage ends the call and the session", function()
    local s = assert(connect("garbage"))
    local r, err = s:call_tool("echo", { text = "x" })
    assert.is_nil(r)
    assert.equal("mcp", err.kind)
    assert.truthy(err.message:find("not a JSON%-RPC message"))
    local _, err2 = s:ping()
    assert.equal("mcp", err2.kind)
  end)

  it("a line over the size limit ends the call", function()
    local s = assert(connect("long", { max_line = 1048576 }))
    local r, err = s:call_tool("echo", { text = "x" })
    assert.is_nil(r)
    assert.equal("mcp", err.kind)
    assert.truthy(err.message:find("longer than max_line"))
    s:close()
  end)

  it("a server that crashes mid-call: the call fails, then every later call at once", function()
    local s = assert(connect("crash"))
    local r, err = s:call_tool("echo", { text = "x" })
    assert.is_nil(r)
    assert.equal("mcp", err.kind)
    assert.truthy(err.message:find("exited"))
    local polls = 0
    local h = s:start_call("echo", {})
    while not h:done() and polls < 5 do
      polls = polls + 1
      s:poll(0)
    end
    assert.equal(0, polls) -- failed at once, without a poll
    local _, e2 = h:result()
    assert.equal("mcp", e2.kind)
  end)

  it("a server that never answers: timeout, then notifications/cancelled", function()
    local rec = tmpname()
    local s = assert(connect("silent", { record = rec }))
    local r, err = s:call_tool("echo", { text = "x" }, { timeout = 0.3 })
    assert.is_nil(r)
    assert.equal("timeout", err.kind)
    assert.is_true(s:ping()) -- the session lives on
    s:close()
    local log = read(rec)
    os.remove(rec)
    local id
    for line in log:gmatch("[^\n]+") do
      if line:find('"method":"tools/call"', 1, true) then id = line:match('"id":(%d+)') end
    end
    assert.truthy(id)
    assert.truthy(log:find('"notifications/cancelled"', 1, true))
    assert.truthy(log:find('"requestId":' .. id, 1, true))
  end)

  it("a server that exits during the handshake", function()
    local s, err = connect("handshake_exit")
    assert.is_nil(s)
    assert.equal("mcp", err.kind)
    assert.truthy(err.message:find("handshake"))
  end)

  it("a protocol version it does not speak", function()
    local s, err = connect("old_version")
    assert.is_nil(s)
    assert.equal("mcp", err.kind)
    assert.truthy(err.message:find("2024%-11%-05"))
  end)

  it("a JSON-RPC error response carries its code", function()
    local s = assert(connect("rpc_error"))
    local r, err = s:call_tool("nope", {})
    assert.is_nil(r)
    assert.equal("mcp", err.kind)
    assert.equal(-32602, err.code)
    assert.truthy(tostring(err):find("unknown tool"))
    assert.is_true(s:ping())
    s:close()
  end)

  it("a response to an unknown id is a protocol violation", function()
    local s = assert(connect("unknown_id"))
    local r, err = s:call_tool("echo", { text = "x" }, { timeout = 30 })
    assert.is_nil(r)
    assert.equal("mcp", err.kind)
    assert.truthy(err.message:find("unknown request id"))
  end)

  it("a huge tool list in 50 pages", function()
    local skip = require("spec.support.util").skip_volume()
    if skip then return pending(skip) end
    local s = assert(connect("huge_list"))
    local tools = assert(s:list_tools())
    assert.equal(5000, #tools)
    assert.equal("t49_100", tools[5000].name)
    assert.equal(2, #assert(s:tools{ only = { "t0_1", "t49_100" } }))
    s:close()
  end)

  it("drains stderr so a chatty server never stalls, with and without a log", function()
    local skip = require("spec.support.util").skip_volume()
    if skip then return pending(skip) end
    local s = assert(connect("stderr_flood"))
    assert.equal("echo: a", assert(s:call_tool("echo", { text = "a" })).content[1].text)
    s:close()
    local lines = 0
    s = assert(connect("stderr_flood", { log = function() lines = lines + 1 end }))
    assert.equal("echo: b", assert(s:call_tool("echo", { text = "b" })).content[1].text)
    s:close()
    assert.is_true(lines > 1000)
  end)

  it("start_call is driven by poll without blocking", function()
    local s = assert(connect("ok"))
    local done_with
    -- the server answers after 0.5 s: poll(0) returns long before
    local h = s:start_call("echo", { text = "slow" }, { on_done = function(r) done_with = r end })
    local polls = 0
    while not h:done() do
      polls = polls + 1
      s:poll(0)
      require("baseten.core").sleep(0.001)
      assert(polls < 1e6)
    end
    assert.equal("echo: slow", assert(h:result()).content[1].text)
    assert.equal(done_with, h:result())
    assert.is_true(polls > 1) -- poll(0) returned before the answer came
    s:close()
  end)

  it("client:poll drives start_call of a session connected with client, and wakes on its pipe", function()
    local client = baseten.new{ api_key = false, base_url = "http://127.0.0.1:9/v1" }
    local s = assert(connect("ok", { client = client }))
    local got
    local h = s:start_call("echo", { text = "via client" }, { on_done = function(r) got = r end })
    assert.equal(1, client:pending())
    local polls, t0 = 0, require("baseten.core").now()
    while not h:done() do
      polls = polls + 1
      client:poll(30) -- wakes when the server writes, not after 30 s
      assert(polls < 100)
    end
    assert.truthy(require("baseten.core").now() - t0 < 15)
    assert.equal("echo: via client", got.content[1].text)
    assert.equal(0, client:pending())
    -- a closed client cancels what it drives
    local h2 = assert(connect("silent", { client = client })):start_call("echo", {})
    client:close()
    client:poll(0)
    local _, err = h2:result()
    assert.equal("canceled", err.kind)
    s:close()
  end)

  it("tools/list_changed: the next tools() lists again", function()
    local seen = {}
    local s = assert(connect("changing", { on_notification = function(m) seen[#seen + 1] = m end }))
    assert.equal(2, #assert(s:tools()))
    assert.equal(2, #assert(s:tools())) -- kept: no new list
    assert(s:call_tool("echo", { text = "x" }))
    s:poll(0)
    assert.same({ "notifications/tools/list_changed" }, seen)
    local tools = assert(s:tools())
    assert.equal(3, #tools)
    assert.equal("added", tools[3]["function"].name)
    s:close()
  end)

  it("elicitation: the handler's answer with the schema's defaults; decline without a handler", function()
    local asked
    local s = assert(connect("elicit", { on_elicit = function(message, schema)
      asked = { message, schema.properties.color.default }
      return "accept", { name = "Ada" }
    end }))
    local r = assert(s:call_tool("echo", {}))
    local reply = require("baseten").json.decode(r.content[1].text)
    assert.same({ "Your name?", "blue" }, asked)
    assert.equal("e1", reply.id)
    assert.same({ action = "accept", content = { name = "Ada", color = "blue", n = 3 } }, reply.result)
    s:close()
    s = assert(connect("elicit"))
    reply = require("baseten").json.decode(assert(s:call_tool("echo", {})).content[1].text)
    assert.same({ action = "decline" }, reply.result)
    s:close()
  end)

  it("a session the collector frees ends its server", function()
    local rec = tmpname()
    local pid
    do
      local s = assert(connect("pid", { record = rec }))
      assert.is_true(s:ping())
      pid = read(rec):match("pid (%d+)")
      assert.truthy(pid)
      local f, why = io.open("/proc/" .. pid .. "/stat", "r")
      assert.truthy(f, "the server runs (" .. tostring(why) .. "; " .. tostring(s) .. ")")
      f:close()
      assert.truthy(s) -- alive until here (the GC-torture pass collects at once)
    end
    for _ = 1, 3 do collectgarbage("collect") end
    local f = io.open("/proc/" .. pid .. "/stat", "r") -- gone, and reaped (no zombie)
    if f then f:close() end
    assert.is_nil(f)
    os.remove(rec)
  end)

  it("cancel sends notifications/cancelled and ends the handle as canceled", function()
    local rec = tmpname()
    local s = assert(connect("silent", { record = rec }))
    local h = s:start_call("echo", {})
    h:cancel()
    local _, err = h:result()
    assert.equal("canceled", err.kind)
    s:close()
    local log = read(rec)
    os.remove(rec)
    assert.truthy(log:find('"notifications/cancelled"', 1, true))
  end)
end)

describe("mcp tools in run_tools", function()
  local srv, client
  setup(function()
    srv = server.start()
    client = baseten.new{ api_key = "k", base_url = srv.url, model = "deepseek-ai/DeepSeek-V3.1", max_retries = 0 }
  end)
  teardown(function() srv:stop() end)

  it("selects with only, filter and prefix", function()
    local s = assert(connect("ok"))
    local all = assert(s:tools())
    assert.equal(2, #all)
    local one = assert(s:tools{ only = { "shout" } })
    assert.equal(1, #one)
    assert.equal("shout", one[1]["function"].name)
    local f = assert(s:tools{ filter = function(n) return n == "echo" end, prefix = "a_" })
    assert.equal(1, #f)
    assert.equal("a_echo", f[1]["function"].name)
    assert.has_error(function() s:tools{ only = "echo" } end)
    s:close()
  end)

  it("runs a server's tool and sends its text back to the model", function()
    local s = assert(connect("ok"))
    local resp, messages = client:run_tools{ messages = { { role = "user", content = "say it" } },
                                             tools = assert(s:tools{ only = { "echo" } }) }
    assert.truthy(resp, tostring(messages))
    assert.equal("tool", messages[3].role)
    assert.equal("echo: example", messages[3].content)
    s:close()
  end)

  it("confirm can refuse: the model gets a tool error", function()
    local s = assert(connect("ok"))
    local asked
    local _, messages = client:run_tools{
      messages = { { role = "user", content = "say it" } }, tools = assert(s:tools{ only = { "echo" } }),
      confirm = function(name, args) asked = { name, args.text } return false, "not now" end }
    assert.same({ "echo", "example" }, asked)
    assert.equal('error: the user refused to run tool "echo": not now', messages[3].content)
    s:close()
  end)

  it("isError becomes a tool error, and long output is cut with a note", function()
    local s = assert(connect("ok"))
    local t = assert(s:tools{ only = { "echo" }, max_output = 1000 })[1]
    local r, why = t.handler({ text = "fail" })
    assert.is_nil(r)
    assert.equal("it failed", why)
    local big = t.handler({ text = "big" })
    assert.truthy(#big < 1100)
    assert.truthy(big:find("%[output cut: 1000 of 100000 bytes shown%]$"))
    s:close()
  end)
end)
