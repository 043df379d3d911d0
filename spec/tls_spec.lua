-- TLS against a real nginx (spec/support/tls.lua) in front of the local test
-- server: verification on by default, ca_file, host name checks, streaming
-- and HTTP/2 through it, and proxies (the `proxy` option and the
-- https_proxy environment variable) through a CONNECT proxy that counts its
-- tunnels. Pending, with the reason, when nginx or openssl is missing.
local baseten = require("baseten")
local core = require("baseten.core")
local tls = require("spec.support.tls")
local fixture = require("spec.support.fixture")
local util = require("spec.support.util")

local json = baseten.json
local KEY = "sk-tls-KEY-0a1b2c3d"

local function msgs(text)
  return { { role = "user", content = text or "Hello" } }
end

local function piece(text)
  return "data: " .. json.encode{ id = "t1", object = "chat.completion.chunk",
                                   choices = { { index = 0, delta = { content = text } } } } .. "\n\n"
end

local function collect(s)
  local out = {}
  for p in s:text() do out[#out + 1] = p end
  return table.concat(out)
end

describe("TLS through nginx", function()
  if not tls.available() then
    it("is skipped", function() pending(tls.missing) end)
    return
  end

  local srv, front, events
  fixture.tls_front(function(s, f) srv, front = s, f end)

  before_each(function()
    srv:reset()
    events = {}
  end)

  local function new(opts)
    local o = { api_key = KEY, base_url = front.url, model = "openai/gpt-oss-120b", max_retries = 0,
                ca_file = front.ca_file, log = function(e) events[#events + 1] = e end }
    for k, v in pairs(opts or {}) do o[k] = v end
    if o.ca_file == false then o.ca_file = nil end
    return baseten.new(o)
  end

  local function last(kind)
    for i = #events, 1, -1 do
      if events[i].event == kind then return events[i] end
    end
  end

  it("verifies certificates by default: a server with an unknown CA is tls, not retried", function()
    local c = new{ ca_file = false, max_retries = 2 }
    local resp, err = c:chat{ messages = msgs() }
    assert.is_nil(resp)
    assert.equal("tls", err.kind, tostring(err))
    assert.equal(1, err.attempts)
    local s, serr = c:stream{ messages = msgs() }
    assert.is_nil(s)
    assert.equal("tls", serr.kind)
    assert.equal(0, #srv:requests()) -- nothing got through
    c:close()
  end)

  it("passes with ca_file", function()
    local c = new()
    local resp = assert(c:chat{ messages = msgs("over tls") })
    assert.truthy(resp.choices[1].message.content:find("over tls", 1, true))
    assert.equal("Bearer " .. KEY, util.header(srv:requests()[1], "authorization"))
    c:close()
  end)

  it("rejects a certificate for another host name as tls", function()
    local c = new{ base_url = front.ip_url }
    local resp, err = c:chat{ messages = msgs() }
    assert.is_nil(resp)
    assert.equal("tls", err.kind, tostring(err))
    c:close()
  end)

  it("ssl_no_revoke = true: verification stays on (OpenSSL has no revocation check to skip)", function()
    local c = new{ ssl_no_revoke = true }
    local resp = assert(c:chat{ messages = msgs("no revoke") })
    assert.truthy(resp.choices[1].message.content:find("no revoke", 1, true))
    c:close()
    c = new{ ssl_no_revoke = true, ca_file = false }
    local nothing, err = c:chat{ messages = msgs() }
    assert.is_nil(nothing)
    assert.equal("tls", err.kind, tostring(err))
    c:close()
    c = new{ ssl_no_revoke = true, base_url = front.ip_url }
    nothing, err = c:chat{ messages = msgs() }
    assert.is_nil(nothing)
    assert.equal("tls", err.kind, tostring(err))
    c:close()
  end)

  it("ssl_no_revoke must be a boolean: anything else raises at the caller's line", function()
    local ok, err = pcall(function()
      local c = baseten.new{ api_key = KEY, ssl_no_revoke = "yes" }
      return c
    end)
    assert.is_false(ok)
    assert.truthy(err:find("tls_spec.lua:%d+: baseten.new: ssl_no_revoke must be a boolean"), err)
    assert.has_no.errors(function() baseten.new{ api_key = KEY, ssl_no_revoke = false } end)
  end)

  it("insecure = true turns verification off", function()
    local c = new{ ca_file = false, base_url = front.ip_url, insecure = true }
    assert(c:chat{ messages = msgs() })
    c:close()
  end)

  it("uses HTTP/2 when TLS offers it, HTTP/1.1 in clear", function()
    local c = new()
    assert(c:chat{ messages = msgs() })
    assert.equal(2, last("response").http_version)
    assert(assert(c:stream{ messages = msgs() }):final())
    assert.equal(2, last("response").http_version)
    local log = front:access_log()
    assert.truthy(log[#log]:find("^HTTP/2.0 "), log[#log])
    local direct = new{ base_url = srv.url }
    assert(direct:chat{ messages = msgs() })
    assert.equal(1, last("response").http_version)
    c:close()
    direct:close()
  end)

  it("streams through nginx exactly as direct", function()
    local pieces = { "Hé", "llo ", "wörld ", "😀", " done" }
    local chunks = {}
    for i, p in ipairs(pieces) do chunks[i] = piece(p) end
    chunks[#chunks + 1] = "data: [DONE]\n\n"
    local c, direct = new(), new{ base_url = srv.url }
    srv:enqueue({ chunks = chunks, split = "random", seed = 5 }, { chunks = chunks, split = "random", seed = 5 })
    local via = collect(assert(c:stream{ messages = msgs() }))
    local straight = collect(assert(direct:stream{ messages = msgs() }))
    assert.equal(table.concat(pieces), via)
    assert.equal(straight, via)
    -- and a failure mid-stream still reads as a failure through the proxy
    srv:enqueue({ chunks = { piece("a") }, reset = true })
    local s = assert(c:stream{ messages = msgs() })
    local ok, err = pcall(function() for _ in s do end end)
    assert.is_false(ok)
    assert.is_table(err)
    assert.truthy(err.kind == "connection" or err.kind == "invalid_response", tostring(err))
    c:close()
    direct:close()
  end)

  it("delivers chunks as they come, not buffered to the end", function()
    srv:enqueue({ chunks = { piece("first"), piece("second") }, chunk_delay = 3 })
    local c = new()
    local t0 = core.now()
    local s = assert(c:stream{ messages = msgs() })
    assert.is_table(s:next())
    -- before the second chunk was sent (3 s); loose for a busy machine
    assert.is_true(core.now() - t0 < 2.5, "first chunk after " .. (core.now() - t0) .. " s")
    assert.equal("firstsecond", assert(s:final()).choices[1].message.content)
    c:close()
  end)

  -- Transfers set CURLOPT_PIPEWAIT, so a new transfer waits for a
  -- connection it can multiplex instead of opening another one (the four
  -- start before any connection exists: without it, four connections), and
  -- the log is read once it has every line.
  it("multiplexes non-blocking requests over one HTTP/2 connection", function()
    local c = new()
    local before = #front:access_log()
    local handles = {}
    for i = 1, 4 do -- started together, before any connection exists
      handles[i] = c:start({ messages = msgs("n" .. i), stream = i % 2 == 0 }, {})
    end
    local deadline = core.now() + 20
    while c:pending() > 0 and core.now() < deadline do c:poll(0.05) end
    assert(c:chat{ messages = msgs() }) -- and one more on the same connection
    for i, h in ipairs(handles) do
      local resp, err = h:result()
      assert.is_nil(err)
      assert.truthy(resp.choices[1].message.content:find("n" .. i, 1, true))
    end
    -- nginx writes a line once it has sent the response, which can be
    -- after the client has it: wait for the five lines (this race, not a
    -- second connection, is what "at most 4 requests" reported before)
    local log = front:access_log()
    while #log < before + 5 and core.now() < deadline do
      core.sleep(0.02)
      log = front:access_log()
    end
    local conns = {}
    for i = before + 1, #log do
      local proto, conn = log[i]:match("^(%S+) (%d+)")
      assert.equal("HTTP/2.0", proto, log[i])
      conns[conn] = (conns[conn] or 0) + 1
    end
    local n, most, counts = 0, 0, {}
    for _, k in pairs(conns) do
      n = n + 1
      most = math.max(most, k)
      counts[#counts + 1] = k
    end
    -- One connection carries them all on an idle machine. Under load
    -- (make test-stress) nginx once logged two, so the check is what only
    -- multiplexing gives: without it the four concurrent requests take a
    -- connection each, and none carries more than two of the five
    local dist = "requests per connection: " .. table.concat(counts, ", ")
    assert.is_true(most >= 3, dist)
    assert.is_true(n <= 2, dist)
    c:close()
  end)

  describe("proxies", function()
    local proxy
    setup(function() proxy = tls.proxy() end)
    teardown(function() if proxy then proxy:stop() end end)

    it("go through the proxy option (CONNECT)", function()
      local before = #proxy:tunnels()
      local c = new{ proxy = proxy.url }
      assert(c:chat{ messages = msgs() })
      assert(assert(c:stream{ messages = msgs() }):final())
      local tunnels = proxy:tunnels()
      assert.is_true(#tunnels > before)
      assert.equal("CONNECT localhost:" .. front.port, tunnels[#tunnels])
      c:close()
    end)

    it("go through the https_proxy environment variable", function()
      local before = #proxy:tunnels()
      local code = ([[
        local c = require("baseten").new{ base_url = %q, ca_file = %q, model = "openai/gpt-oss-120b", max_retries = 0 }
        local r = assert(c:chat{ messages = { { role = "user", content = "via env" } } })
        io.write(r.choices[1].message.content)
      ]]):format(front.url, front.ca_file)
      local _, out, err = util.run_lua(code, {
        env = ("-u no_proxy -u NO_PROXY -u all_proxy -u ALL_PROXY https_proxy=%s BASETEN_API_KEY=%s")
          :format(util.quote(proxy.url), util.quote(KEY)),
      })
      out = out .. err
      assert.truthy(out:find("via env", 1, true), out)
      local tunnels = proxy:tunnels()
      assert.equal(before + 1, #tunnels)
      assert.equal("CONNECT localhost:" .. front.port, tunnels[#tunnels])
    end)

    it("a proxy that is down is connection", function()
      local c = new{ proxy = "http://127.0.0.1:1" }
      local resp, err = c:chat{ messages = msgs() }
      assert.is_nil(resp)
      assert.equal("connection", err.kind)
      c:close()
    end)
  end)
end)
