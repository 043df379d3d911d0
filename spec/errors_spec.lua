-- Error values: what tostring(err) says (attempts and time when a request
-- was retried), which keys are scrubbed from errors and log events (a real
-- key everywhere; a short placeholder such as "EMPTY" or "x" nowhere, so
-- that words like "rate_limit_exceeded" stay whole), and baseten.check.
local baseten = require("baseten")
local errors = require("baseten.errors")
local server = require("spec.support.server")
local fixture = require("spec.support.fixture")
local util = require("spec.support.util")

local json = baseten.json

local function msgs()
  return { { role = "user", content = "Hello" } }
end

describe("tostring(err)", function()
  it("says how many attempts were made, and in how long, when there was more than one", function()
    local e = errors.new({ kind = "timeout", message = "Operation timed out after 1001 milliseconds",
                           attempts = 3, elapsed = 4.43 })
    assert.equal("baseten: timeout: Operation timed out after 1001 milliseconds after 3 attempts in 4.4 s",
                 tostring(e))
    e = errors.new({ kind = "server", status = 503, message = "busy", attempts = 2, elapsed = 0.256,
                     request_id = "rid-1" })
    assert.equal("baseten: server (HTTP 503): busy after 2 attempts in 0.26 s [request_id rid-1]", tostring(e))
  end)

  it("gives the attempts without a time when elapsed is absent", function()
    local e = errors.new({ kind = "rate_limit", status = 429, message = "slow down", attempts = 3 })
    assert.equal("baseten: rate_limit (HTTP 429): slow down after 3 attempts", tostring(e))
  end)

  it("says nothing of attempts for a single attempt or none recorded", function()
    local one = errors.new({ kind = "bad_request", status = 400, message = "no", attempts = 1, elapsed = 0.1 })
    assert.equal("baseten: bad_request (HTTP 400): no", tostring(one))
    local none = errors.new({ kind = "canceled", message = "the request was canceled" })
    assert.equal("baseten: canceled: the request was canceled", tostring(none))
  end)

  describe("on a request that was retried", function()
    local srv
    fixture.server(function(s) srv = s end)

    it("reports the attempts the client made", function()
      local busy = { status = 503, json = { error = "overloaded" }, headers = { ["retry-after-ms"] = "1" } }
      srv:enqueue(busy, busy, busy)
      local c = baseten.new{ api_key = false, base_url = srv.url, model = "openai/gpt-oss-120b", max_retries = 2 }
      local resp, err = c:chat{ messages = msgs() }
      c:close()
      assert.is_nil(resp)
      assert.equal("server", err.kind)
      assert.equal(3, err.attempts)
      assert.equal(3, #srv:requests())
      local text = tostring(err)
      assert.truthy(text:find("overloaded after 3 attempts", 1, true), text)
      if err.elapsed ~= nil then -- set by the retry policy where it records the time
        assert.truthy(text:find("after 3 attempts in [%d.]+ s"), text)
      else
        assert.is_nil(text:find(" in ", 1, true), text)
      end
    end)
  end)
end)

describe("errors.scrub", function()
  it("replaces a key of 8 bytes or more wherever it occurs", function()
    assert.equal("a [REDACTED] b[REDACTED]c", errors.scrub("a sk-12345 bsk-12345c", "sk-12345"))
    assert.equal("[REDACTED][REDACTED]", errors.scrub("abcdefghabcdefgh", "abcdefgh"))
  end)

  it("leaves text alone for a short placeholder key", function()
    assert.equal("rate_limit_exceeded", errors.scrub("rate_limit_exceeded", "x"))
    assert.equal("index", errors.scrub("index", "x"))
    assert.equal("NONEMPTY EMPTY", errors.scrub("NONEMPTY EMPTY", "EMPTY"))
    assert.equal("tool_choice none", errors.scrub("tool_choice none", "none"))
    assert.equal("sk-1234", errors.scrub("sk-1234", "sk-1234")) -- 7 bytes
  end)

  it("returns non-strings and keyless text as they are", function()
    assert.equal(42, errors.scrub(42, "abcdefghij"))
    assert.equal("text", errors.scrub("text", nil))
    assert.equal("text", errors.scrub("text", ""))
  end)
end)

describe("a server's error text", function()
  local srv
  fixture.server(function(s) srv = s end)

  -- every string reachable from a value
  local function strings(v, out, seen)
    out, seen = out or {}, seen or {}
    if type(v) == "table" then
      if seen[v] then return out end
      seen[v] = true
      for k, x in pairs(v) do
        strings(k, out, seen)
        strings(x, out, seen)
      end
    elseif type(v) == "string" then
      out[#out + 1] = v
    end
    return out
  end

  local function client(key, events)
    return baseten.new{ api_key = key, base_url = srv.url, model = "openai/gpt-oss-120b", max_retries = 0,
                        log = function(e) events[#events + 1] = e end }
  end

  local function limited(text)
    return { status = 429, json = { error = { message = text, type = "requests", code = "rate_limit_exceeded" } },
             headers = { ["x-request-id"] = "index-" .. text:sub(1, 5) } }
  end

  for _, key in ipairs({ "x", "EMPTY", "none" }) do
    it("stays whole with the placeholder key " .. key, function()
      local events = {}
      local c = client(key, events)
      local text = "index exceeded: x EMPTY none NONEMPTY nonexistent"
      srv:enqueue(limited(text),
                  { chunks = { "data: " .. json.encode{ error = { message = text, code = "rate_limit_exceeded" } }
                               .. "\n\n" } })
      local _, err = c:chat{ messages = msgs() }
      local s = assert(c:stream{ messages = msgs() })
      local _, serr = s:final()
      s:close()
      c:close()
      assert.equal("rate_limit", err.kind)
      assert.equal("rate_limit_exceeded", err.code)
      assert.equal("requests", err.type)
      assert.equal(text, err.message)
      assert.equal("index-index", err.request_id)
      assert.truthy(err.body:find(text, 1, true))
      assert.equal(("baseten: rate_limit (HTTP 429): %s [request_id index-index]"):format(text), tostring(err))
      assert.equal("error_event", serr.kind)
      assert.truthy(tostring(serr):find(text, 1, true), tostring(serr))
      for _, e in ipairs(events) do
        e.authorization = nil -- always "Bearer [REDACTED]" by design
        for _, v in ipairs(strings(e)) do assert.is_nil(v:find("[REDACTED]", 1, true), v) end
      end
      -- the key did reach the server
      assert.equal("Bearer " .. key, srv:requests()[1].header_map["authorization"])
    end)
  end

  it("never shows a real-looking key, in any field, log event or tostring", function()
    local key = "bt-4f9c2e7a1d"
    local events = {}
    local c = client(key, events)
    srv:enqueue({ status = 401, json = { error = { message = "Invalid key " .. key, type = "auth_" .. key,
                                                   code = key .. "_bad" } },
                  headers = { ["x-request-id"] = "rid-" .. key } },
                { chunks = { "data: " .. json.encode{ error = { message = "revoked " .. key } } .. "\n\n" },
                  headers = { ["x-request-id"] = key } })
    local _, err = c:chat{ messages = msgs() }
    local s = assert(c:stream{ messages = msgs() })
    local _, serr = s:final()
    s:close()
    c:close()
    assert.equal("authentication", err.kind)
    assert.equal("Invalid key [REDACTED]", err.message)
    assert.equal("[REDACTED]_bad", err.code)
    assert.equal("error_event", serr.kind)
    local all = strings({ err, serr, events })
    all[#all + 1] = tostring(err)
    all[#all + 1] = tostring(serr)
    assert.is_true(#events >= 4)
    for _, v in ipairs(all) do
      assert.is_nil(v:find(key, 1, true), v)
    end
    assert.truthy(tostring(err):find("[REDACTED]", 1, true))
  end)
end)

describe("baseten.check", function()
  it("returns every value when the first is not nil, false included", function()
    local a, b, c, d = baseten.check(1, nil, nil, 4)
    assert.same({ 1, nil, nil, 4 }, { a, b, c, d })
    local f, resp = baseten.check(false, { id = "r" })
    assert.is_false(f)
    assert.same({ id = "r" }, resp)
  end)

  it("raises the error's text as a string, at the caller's line", function()
    local e = errors.new({ kind = "not_found", status = 404, message = "Model not found: x/y" })
    local ok, msg = pcall(function() baseten.check(nil, e) end)
    assert.is_false(ok)
    assert.equal("string", type(msg))
    assert.truthy(msg:find("errors_spec.lua:%d+: baseten: not_found %(HTTP 404%): Model not found: x/y$"), msg)
    ok, msg = pcall(baseten.check, nil, "plain why")
    assert.is_false(ok)
    assert.truthy(msg:find("plain why", 1, true), msg)
    ok, msg = pcall(baseten.check, nil)
    assert.is_false(ok)
    assert.equal("string", type(msg))
  end)

  it("shows the real message of an uncaught failure on every Lua, 5.1 included", function()
    local srv = server.start()
    local code, out, err = util.run_lua([[
local baseten = require("baseten")
local client = baseten.new{ model = "no/such-model", api_key = false }
local resp = baseten.check(client:chat{ messages = { { role = "user", content = "Hello!" } } })
print(resp)
]], { env = "BASETEN_BASE_URL=" .. srv.url })
    srv:stop()
    assert.equal(1, code)
    assert.equal("", out)
    assert.truthy(err:find("baseten: not_found (HTTP 404): Model not found: no/such-model", 1, true), err)
    assert.is_nil(err:find("error object is not a string", 1, true), err)
  end)
end)

describe("Retry-After", function()
  -- the three forms of RFC 9110 5.6.7 for one instant; the check is that a
  -- form is understood at all and read as that instant (an hour or a day
  -- off is a misparse), so busy-machine delays of seconds do not matter
  local function forms(at)
    local t = os.date("!*t", at)
    local asctime_day = ("%2d"):format(t.day)
    return {
      imf = os.date("!%a, %d %b %Y %H:%M:%S GMT", at),
      rfc850 = os.date("!%A, %d-%b-%y %H:%M:%S GMT", at),
      asctime = os.date("!%a %b ", at) .. asctime_day .. os.date("! %H:%M:%S %Y", at),
    }
  end

  it("reads an HTTP date in IMF-fixdate, RFC 850 and asctime form", function()
    for _, ahead in ipairs({ 90, 3 * 86400 + 7 }) do
      local at = os.time() + ahead
      for name, text in pairs(forms(at)) do
        local got = errors.retry_after(nil, text)
        assert(got, name .. ": " .. text .. " was not understood")
        assert.is_true(math.abs(got - ahead) < 30, ("%s %q: %s, want %s"):format(name, text, got, ahead))
      end
    end
  end)

  it("reads the examples of RFC 9110 as dates in the past (wait 0)", function()
    assert.equal(0, errors.retry_after(nil, "Sun, 06 Nov 1994 08:49:37 GMT"))
    assert.equal(0, errors.retry_after(nil, "Sunday, 06-Nov-94 08:49:37 GMT"))
    assert.equal(0, errors.retry_after(nil, "Sun Nov  6 08:49:37 1994"))
  end)

  it("a two-digit year more than 50 years ahead is a year in the past", function()
    local this = tonumber(os.date("!%Y"))
    local yy = (this + 60) % 100 -- 60 years ahead with these digits: 40 years ago
    assert.equal(0, errors.retry_after(nil, ("Monday, 01-Jan-%02d 00:00:00 GMT"):format(yy)))
    yy = (this + 1) % 100 -- next year, ahead by months
    local got = errors.retry_after(nil, ("Monday, 01-Jan-%02d 00:00:00 GMT"):format(yy))
    assert.is_true(got > 0 and got <= 366 * 86400, tostring(got))
  end)

  it("refuses what is no date", function()
    for _, text in ipairs({ "Sun Nov  6 08:49:37", "Sunday, 06-Foo-94 08:49:37 GMT", "tomorrow", "" }) do
      assert.is_nil(errors.retry_after(nil, text), text)
    end
  end)
end)
