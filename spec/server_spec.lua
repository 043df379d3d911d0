-- Tests of the test-server helper (spec/support/server.lua) itself.
-- The server's HTTP behaviour is covered in depth by
-- spec/support/test_server.py; this spec checks the Lua side: start/stop,
-- the control client, the JSON codec and raw-bytes handling.

local server = require("spec.support.server")
local has_socket, socket = pcall(require, "socket")

-- minimal raw HTTP exchange (LuaSocket); returns status line, full response
local function raw_request(port, req)
  local c = socket.tcp()
  c:settimeout(5)
  assert(c:connect("127.0.0.1", port))
  assert(c:send(req))
  local status = c:receive("*l")
  local rest = c:receive("*a")
  c:close()
  return status, rest
end

describe("spec.support.server helper", function()
  local s

  setup(function() s = server.start() end)
  teardown(function() if s then s:stop() end end)
  before_each(function() s:reset() end)

  it("exposes port and url", function()
    assert.is_number(s.port)
    assert.are.equal("http://127.0.0.1:" .. s.port .. "/v1", s.url)
    assert.is_true(s:alive())
  end)

  it("enqueues, reports stats and resets", function()
    assert.are.equal(2, s:enqueue({ status = 500 }, { status = 201 }))
    assert.are.equal(3, s:enqueue({ { status = 202 } }))
    local st = s:stats()
    assert.are.equal(3, st.queued)
    assert.are.equal(0, st.requests)
    s:reset()
    assert.are.equal(0, s:stats().queued)
  end)

  it("rejects unknown response fields", function()
    assert.has_error(function() s:enqueue({ statsu = 1 }) end)
  end)

  it("round-trips JSON", function()
    local v = { a = { 1, 2.5, true }, b = "\"\\\n\0é😀", e = server.array(),
      o = {} }
    local d = server.json_decode(server.json_encode(v))
    assert.are.same({ 1, 2.5, true }, { d.a[1], d.a[2], d.a[3] })
    assert.are.equal(v.b, d.b)
    assert.are.equal("[]", server.json_encode(d.e))
    assert.are.equal("{}", server.json_encode(d.o))
    assert.are.equal('"\\u00ff"', server.json_encode("\255"))
    assert.are.equal("null", server.json_encode(server.null))
  end)

  it("base64 round-trips every byte", function()
    local all = {}
    for i = 0, 255 do all[#all + 1] = string.char(i) end
    local bytes = table.concat(all)
    for n = 0, 4 do
      local x = bytes:sub(1, 250 + n)
      assert.are.equal(x, server.b64decode(server.b64encode(x)))
    end
  end)

  describe("with LuaSocket", function()
    if not has_socket then
      pending("LuaSocket not installed")
      return
    end

    it("scripts responses and records raw requests", function()
      s:enqueue({ status = 429, headers = { ["Retry-After"] = "1" },
        json = { error = "slow" } },
        { body = "\255\0raw", headers = { { "X-A", "1" }, { "X-A", "2" } } })
      local status, rest = raw_request(s.port,
        "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nX-Mixed: v\r\n"
        .. "Connection: close\r\nContent-Length: 3\r\n\r\n\255\0{")
      assert.are.equal("HTTP/1.1 429 Too Many Requests", status)
      assert.truthy(rest:find("Retry-After: 1\r\n", 1, true))
      assert.truthy(rest:find('{"error":"slow"}', 1, true))
      status, rest = raw_request(s.port,
        "GET /v1/models HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
      assert.are.equal("HTTP/1.1 200 OK", status)
      assert.are.equal("\255\0raw", rest:sub(-5))
      assert.truthy(rest:find("X-A: 1\r\nX-A: 2\r\n", 1, true))

      local reqs = s:requests()
      assert.are.equal(2, #reqs)
      assert.are.equal("POST", reqs[1].method)
      assert.are.equal("/v1/chat/completions", reqs[1].path)
      assert.are.equal("\255\0{", reqs[1].body)
      assert.are.same({ "X-Mixed", "v" }, reqs[1].headers[2])
      assert.are.equal("v", reqs[1].header_map["x-mixed"])
      assert.are.equal(2, s:stats().connections)
      assert.are.equal("/v1/models", s:last_request().path)
    end)

    it("answers with the default mock", function()
      local body = server.json_encode({ model = "test/x",
        messages = { { role = "user", content = "hi" } } })
      local status, rest = raw_request(s.port,
        "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
        .. "Content-Length: " .. #body .. "\r\n\r\n" .. body)
      assert.are.equal("HTTP/1.1 200 OK", status)
      local json = server.json_decode(rest:match("\r\n\r\n(.*)$"))
      assert.are.equal("Hello from the local test server. You said: hi",
        json.choices[1].message.content)
      assert.are.equal("hi", s:requests()[1].json.messages[1].content)
    end)
  end)

  it("stops the server", function()
    local s2 = server.start()
    local pid = s2.pid
    s2:stop()
    assert.is_false(s2:alive())
    assert.is_nil(s2.pid)
    assert.is_truthy(pid)
  end)
end)
