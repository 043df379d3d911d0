-- baseten.mcp over Streamable HTTP against spec/support/mcp_http_server.py:
-- the headers of the transport, JSON and SSE answers, an expired session
-- (404: initialize again once, then fail), a cut stream resumed with
-- Last-Event-ID, the old HTTP+SSE transport, a JSON-RPC error, DELETE on close.
local mcp = require("baseten.mcp")
local core = require("baseten.core")
local json = core.json

local SCRIPT = "spec/support/mcp_http_server.py"

-- Starts the server; returns its base URL, the log path and the process.
local function start()
  local logf = os.tmpname()
  local p = assert(core.spawn{ argv = { "python3", SCRIPT, logf } })
  local port
  for _ = 1, 2000 do
    p:pump()
    port = p:read_line()
    if port then break end
    core.sleep(0.01)
  end
  assert(port, "the MCP test server did not start")
  return "http://127.0.0.1:" .. port, logf, p
end

local function entries(logf)
  local out = {}
  local f = io.open(logf, "r")
  if not f then return out end
  for line in f:lines() do out[#out + 1] = json.decode(line, { drop_nulls = true }) end
  f:close()
  return out
end

local function methods(log)
  local out = {}
  for _, e in ipairs(log) do
    local m = e.body and json.decode(e.body).method or nil
    out[#out + 1] = e.method .. (m and (" " .. m) or "")
  end
  return out
end

describe("mcp over Streamable HTTP", function()
  local base, logf, proc
  before_each(function() base, logf, proc = start() end)
  after_each(function()
    proc:close(0.05)
    os.remove(logf)
  end)

  it("sends the transport's headers and takes JSON answers; DELETE on close", function()
    local s = assert(mcp.connect{ url = base .. "/json/mcp", headers = { Authorization = "Bearer tok" } })
    assert.equal("2025-11-25", s.protocol_version)
    assert.equal("echo: a", assert(s:call_tool("echo", { text = "a" })).content[1].text)
    s:close()
    local log = entries(logf)
    local init, call, del
    for _, e in ipairs(log) do
      if e.body and e.body:find('"initialize"', 1, true) then init = e end
      if e.body and e.body:find('"tools/call"', 1, true) then call = e end
      if e.method == "DELETE" then del = e end
    end
    assert.equal("application/json, text/event-stream", init.accept)
    assert.is_nil(init.session)
    assert.is_nil(init.version)
    assert.equal("s1", call.session)
    assert.equal("2025-11-25", call.version)
    assert.truthy(del)
    assert.equal("s1", del.session)
  end)

  it("takes an SSE answer with a notification before it, and server messages on the GET stream", function()
    local notes = {}
    local s = assert(mcp.connect{ url = base .. "/sse/mcp",
                                  on_notification = function(m, p) notes[#notes + 1] = m .. " " .. tostring(p.data) end })
    assert.equal("echo: b", assert(s:call_tool("echo", { text = "b" })).content[1].text)
    local got = false
    for _ = 1, 400 do
      for _, n in ipairs(notes) do got = got or n == "notifications/message from the GET stream" end
      if got then break end
      s:poll(0.05)
    end
    assert.is_true(got, table.concat(notes, "\n"))
    local working = false
    for _, n in ipairs(notes) do working = working or n == "notifications/message working" end
    assert.is_true(working)
    s:close()
    local gets = 0
    for _, e in ipairs(entries(logf)) do
      if e.method == "GET" then
        gets = gets + 1
        assert.equal("text/event-stream", e.accept)
        assert.equal("s1", e.session)
      end
    end
    assert.equal(1, gets) -- the server's retry (60 s) holds the next one back
  end)

  it("an expired session (404): initializes again once and sends the call again", function()
    local s = assert(mcp.connect{ url = base .. "/expire/mcp" })
    assert.equal("echo: c", assert(s:call_tool("echo", { text = "c" })).content[1].text)
    s:close()
    local m = methods(entries(logf))
    local inits = 0
    for _, x in ipairs(m) do if x == "POST initialize" then inits = inits + 1 end end
    assert.equal(2, inits)
  end)

  it("a session that stays expired fails after one new initialize", function()
    local s = assert(mcp.connect{ url = base .. "/expire_all/mcp" })
    local r, err = s:call_tool("echo", { text = "d" }, { timeout = 10 })
    assert.is_nil(r)
    assert.equal("mcp", err.kind)
    s:close()
    local inits = 0
    for _, x in ipairs(methods(entries(logf))) do if x == "POST initialize" then inits = inits + 1 end end
    assert.equal(2, inits)
  end)

  it("resumes a cut stream with Last-Event-ID after the server's retry", function()
    local s = assert(mcp.connect{ url = base .. "/resume/mcp" })
    assert.equal("echo: e", assert(s:call_tool("echo", { text = "e" })).content[1].text)
    s:close()
    local resumed
    for _, e in ipairs(entries(logf)) do
      if e.method == "GET" and e.last_event_id == "e1" then resumed = e end
    end
    assert.truthy(resumed)
    assert.equal("s1", resumed.session)
  end)

  it("the old HTTP+SSE transport is an unsupported transport", function()
    local s, err = mcp.connect{ url = base .. "/old/mcp" }
    assert.is_nil(s)
    assert.equal("mcp", err.kind)
    assert.truthy(err.message:find("unsupported transport"))
  end)

  it("a JSON-RPC error over HTTP carries its code", function()
    local s = assert(mcp.connect{ url = base .. "/rpc_error/mcp" })
    local r, err = s:call_tool("echo", {})
    assert.is_nil(r)
    assert.equal("mcp", err.kind)
    assert.equal(-32602, err.code)
    s:close()
  end)

  it("client:poll drives a call and wakes on the session's sockets", function()
    local client = require("baseten").new{ api_key = false, base_url = "http://127.0.0.1:9/v1" }
    local s = assert(mcp.connect{ url = base .. "/sse/mcp", client = client })
    local h = s:start_call("echo", { text = "f" })
    local polls, t0 = 0, core.now()
    while not h:done() do
      polls = polls + 1
      client:poll(30)
      assert(polls < 100)
    end
    assert.truthy(core.now() - t0 < 15)
    assert.equal("echo: f", assert(h:result()).content[1].text)
    s:close()
    client:close()
  end)

  it("a server that is not there: a connection error", function()
    proc:close(0.05)
    local s, err = mcp.connect{ url = base .. "/json/mcp", timeout = 10 }
    assert.is_nil(s)
    assert.equal("connection", err.kind)
  end)
end)
