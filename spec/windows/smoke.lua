-- spec/windows/smoke.lua: the Windows smoke suite. Plain Lua (no busted, no
-- C module but ours) and the public API only, so the same file runs under
-- Wine on luajit.exe and lua54.exe with build/windows/*/baseten/core.dll.
-- scripts/windows_smoke.sh starts the servers and runs it; the environment
-- says where they are:
--   SMOKE_URL           the test server's mock model, which wants SMOKE_KEY
--   SMOKE_KEY           the key it wants
--   SMOKE_SCRIPTED_URL  a second test server, loaded before each run with,
--                       in order: a 429 with Retry-After: 2, a completion
--                       whose content is "after the retry", and a response
--                       delayed 4 s (see windows_smoke.sh)
--   SMOKE_REFUSED_URL   a port nobody listens on
--   SMOKE_TLS_URL       nginx with TLS in front of SMOKE_URL, as https://localhost
--   SMOKE_TLS_IP_URL    the same as https://127.0.0.1: not the certificate's name
--   SMOKE_TLS_CA        the CA that signed its certificate (a Windows path)
--   SMOKE_MCP_LUA       lua54.exe (Windows path), which runs
--   SMOKE_MCP_SERVER    spec/support/mcp_fault_server.lua (Windows path)
-- The last line is "N passed, N failed"; the exit status is 0 only when
-- nothing failed.
local baseten = require("baseten")
local json = baseten.json

local URL = assert(os.getenv("SMOKE_URL"), "SMOKE_URL is not set")
local KEY = assert(os.getenv("SMOKE_KEY"), "SMOKE_KEY is not set")
local SCRIPTED = assert(os.getenv("SMOKE_SCRIPTED_URL"), "SMOKE_SCRIPTED_URL is not set")
local REFUSED = os.getenv("SMOKE_REFUSED_URL") or "http://127.0.0.1:1/v1"
local MODEL = "test/smoke"
local ECHO = "Hello from the local test server. You said: "
-- UTF-8 in the source: Latin-1 range, a 3-byte dash, CJK and a 4-byte emoji
local UNICODE = "héllo wörld — 日本語 🎉 Ωµ"

local passed, failed = 0, 0

local function case(name, fn)
  local ok, err = xpcall(fn, debug.traceback)
  if ok then
    passed = passed + 1
    print("ok     " .. name)
  else
    failed = failed + 1
    print("FAILED " .. name .. "\n" .. tostring(err))
  end
end

local function eq(got, want, what)
  if got ~= want then
    error(string.format("%s: expected %q, got %q", what, tostring(want), tostring(got)), 2)
  end
end

local function check(cond, what)
  if not cond then error(what, 2) end
  return cond
end

-- a result or a readable failure: `ok(client:chat(...))`
local function ok(v, err)
  if v == nil then error("unexpected failure: " .. tostring(err), 2) end
  return v, err
end

local function new_client(opts)
  local o = { api_key = KEY, base_url = URL, model = MODEL, max_retries = 0, timeout = 30,
              connect_timeout = 10 }
  for k, v in pairs(opts or {}) do o[k] = v end
  return baseten.new(o)
end

local function user(text) return { { role = "user", content = text } } end

print(string.format("== smoke: %s, baseten %s ==", jit and jit.version or _VERSION,
  tostring(baseten.VERSION)))

case("core.isatty answers for a descriptor (the CLI asks it; there is no `test -t` here)", function()
  local core = require("baseten.core")
  eq(type(core.isatty(0)), "boolean", "isatty(0)")
  eq(type(core.isatty(2)), "boolean", "isatty(2)")
end)

case("a blocking chat", function()
  local resp = ok(new_client():chat { messages = user("ping from windows") })
  eq(resp.choices[1].message.content, ECHO .. "ping from windows", "content")
  eq(resp.choices[1].finish_reason, "stop", "finish_reason")
  check(resp.usage.total_tokens > 0, "usage.total_tokens")
end)

case("a streamed chat: for chunk in stream, then final()", function()
  local s = ok(new_client():stream { messages = user("one two three four") })
  local parts, chunks = {}, 0
  for chunk in s do
    chunks = chunks + 1
    local c = chunk.choices[1]
    if c and c.delta.content then parts[#parts + 1] = c.delta.content end
  end
  local text = table.concat(parts)
  eq(text, ECHO .. "one two three four", "streamed text")
  check(chunks >= 8, "expected one chunk per word, got " .. chunks)
  local final = ok(s:final())
  eq(final.choices[1].message.content, text, "final() content")
  eq(final.choices[1].finish_reason, "stop", "final() finish_reason")
end)

case("run_tools with a Lua handler", function()
  local seen = {}
  local weather = baseten.tool {
    name = "get_weather",
    description = "The weather in a city",
    parameters = { type = "object", properties = { city = { type = "string" } }, required = { "city" } },
    handler = function(args, call)
      seen[#seen + 1] = { city = args.city, id = call.id }
      return { city = args.city, temp_c = 21 }
    end,
  }
  local resp, messages = new_client():run_tools { messages = user("Weather in Paris?"),
                                                 tools = { weather } }
  ok(resp, messages)
  eq(#seen, 1, "handler calls")
  eq(type(seen[1].city), "string", "handler argument city")
  local tool_msg
  for _, m in ipairs(messages) do
    if m.role == "tool" then tool_msg = m end
  end
  check(tool_msg, "no tool message in the transcript")
  eq(tool_msg.tool_call_id, seen[1].id, "tool_call_id")
  check(tool_msg.content:find('"temp_c":21', 1, true), "tool result not JSON-encoded: " .. tool_msg.content)
  local content = resp.choices[1].message.content
  check(content:find("temp_c", 1, true), "the answer does not use the tool result: " .. content)
end)

case("client:json with a schema", function()
  local schema = {
    type = "object",
    properties = { name = { type = "string" }, age = { type = "integer" },
                   tags = { type = "array", items = { type = "string" } } },
    required = { "name", "age", "tags" },
    additionalProperties = false,
  }
  local value, resp = new_client():json { messages = user("Ada, 36"), schema = schema }
  ok(value, resp)
  eq(type(value.name), "string", "name")
  check(type(value.age) == "number" and value.age % 1 == 0, "age is not an integer")
  eq(type(value.tags), "table", "tags")
  eq(resp.object, "chat.completion", "second value is the response")
end)

case("start/poll: two streams at once and a cancel", function()
  local client = new_client()
  local chunks, results = { 0, 0 }, {}
  local function handlers(i)
    return {
      on_chunk = function() chunks[i] = chunks[i] + 1 end,
      on_done = function(resp, err) results[i] = { resp = resp, err = err } end,
    }
  end
  local h1 = client:start({ messages = user("first stream"), stream = true }, handlers(1))
  local h2 = client:start({ messages = user("second stream"), stream = true }, handlers(2))
  local h3 = client:start({ messages = user("to be canceled"), stream = true }, handlers(3))
  h3:cancel()
  local deadline = os.time() + 30
  while not (h1:done() and h2:done() and h3:done()) do
    check(os.time() < deadline, "requests did not finish within 30 s")
    client:poll(0.05)
  end
  for i = 1, 2 do
    local r = results[i]
    ok(r.resp, r.err)
    local want = ECHO .. (i == 1 and "first stream" or "second stream")
    eq(r.resp.choices[1].message.content, want, "stream " .. i .. " content")
    check(chunks[i] >= 4, "stream " .. i .. ": on_chunk ran " .. chunks[i] .. " times")
  end
  eq(results[3].resp, nil, "canceled response")
  eq(results[3].err and results[3].err.kind, "canceled", "canceled kind")
end)

case("a 429 is retried after Retry-After", function()
  local client = new_client { base_url = SCRIPTED, max_retries = 2 }
  local t0 = os.time()
  local resp = ok(client:chat { messages = user("rate limited") })
  local waited = os.time() - t0
  eq(resp.choices[1].message.content, "after the retry", "content of the retried response")
  -- whole seconds: 2 s of real waiting is at least 2 here; the default
  -- backoff (0.5 s) would give at most 1
  check(waited >= 2, "retried after " .. waited .. " s, not after Retry-After: 2")
end)

case("a request timeout", function()
  local client = new_client { base_url = SCRIPTED, timeout = 1 }
  local t0 = os.time()
  local resp, err = client:chat { messages = user("slow") }
  eq(resp, nil, "response")
  eq(err.kind, "timeout", "kind (" .. tostring(err) .. ")")
  check(os.time() - t0 <= 3, "the 1 s timeout took " .. (os.time() - t0) .. " s")
end)

case("a 401 has kind authentication", function()
  local resp, err = new_client { api_key = "wrong-smoke-key" }:chat { messages = user("hi") }
  eq(resp, nil, "response")
  eq(err.kind, "authentication", "kind")
  eq(err.status, 401, "status")
  check(not tostring(err):find("wrong-smoke-key", 1, true), "the key leaked into the error")
end)

case("connection refused has kind connection", function()
  local resp, err = new_client { base_url = REFUSED }:chat { messages = user("hi") }
  eq(resp, nil, "response")
  eq(err.kind, "connection", "kind (" .. tostring(err) .. ")")
end)

-- Schannel with ca_file: libcurl checks the chain against that CA itself.
-- (With no ca_file, Wine's Schannel accepts an untrusted certificate, so
-- the default verification is not testable here: README, Windows.)
local TLS_URL, TLS_IP_URL, TLS_CA = os.getenv("SMOKE_TLS_URL"), os.getenv("SMOKE_TLS_IP_URL"), os.getenv("SMOKE_TLS_CA")

case("HTTPS with ca_file against the local TLS server (Schannel)", function()
  check(TLS_URL and TLS_CA, "SMOKE_TLS_URL and SMOKE_TLS_CA are not set")
  local resp = ok(new_client { base_url = TLS_URL, ca_file = TLS_CA }:chat { messages = user("over tls") })
  eq(resp.choices[1].message.content, ECHO .. "over tls", "content")
  -- ssl_no_revoke (CURLSSLOPT_NO_REVOKE) is accepted by Schannel; the
  -- revocation check it turns off is not observable under Wine
  resp = ok(new_client { base_url = TLS_URL, ca_file = TLS_CA, ssl_no_revoke = true }:chat { messages = user("rev") })
  eq(resp.choices[1].message.content, ECHO .. "rev", "content with ssl_no_revoke")
end)

case("HTTPS with ca_file: a host name mismatch is rejected", function()
  check(TLS_IP_URL and TLS_CA, "SMOKE_TLS_IP_URL and SMOKE_TLS_CA are not set")
  local resp, err = new_client { base_url = TLS_IP_URL, ca_file = TLS_CA }:chat { messages = user("x") }
  check(resp == nil, "a certificate for localhost was accepted at 127.0.0.1")
  eq(err.kind, "tls", "error kind (" .. tostring(err) .. ")")
end)

case("baseten.json round trips non-ASCII text", function()
  local doc = { text = UNICODE, [UNICODE] = { UNICODE, 1.5, true }, n = -42 }
  local back = json.decode(json.encode(doc))
  eq(back.text, UNICODE, "string value")
  eq(back[UNICODE][1], UNICODE, "key and array item")
  eq(back[UNICODE][2], 1.5, "number")
  eq(back.n, -42, "integer")
  eq(json.decode('"\\u00e9\\u65e5\\ud83c\\udf89"'), "é日🎉", "\\u escapes and a surrogate pair")
  eq(json.encode(json.decode(json.encode(UNICODE))), json.encode(UNICODE), "stable encoding")
  -- and across the wire, both ways, unchanged
  local resp = ok(new_client():chat { messages = user(UNICODE) })
  eq(resp.choices[1].message.content, ECHO .. UNICODE, "echoed by the server")
end)

-- MCP's stdio transport on Windows: the fault server of the specs (plain
-- Lua) run by lua54.exe, spawned by this core with CreateProcess and read
-- through PeekNamedPipe
local MCP_LUA = os.getenv("SMOKE_MCP_LUA")
local MCP_SERVER = os.getenv("SMOKE_MCP_SERVER")
case("an MCP stdio server: tools/list and tools/call, then close", function()
  check(MCP_LUA and MCP_SERVER, "SMOKE_MCP_LUA and SMOKE_MCP_SERVER are not set")
  local mcp = require("baseten.mcp")
  local lines = {}
  local s = ok(mcp.connect { command = { MCP_LUA, MCP_SERVER, "stderr_flood" }, timeout = 60,
                             log = function(line) lines[#lines + 1] = line end })
  eq(s.server_info.name, "fault", "server name")
  local tools = ok(s:list_tools())
  eq(#tools, 2, "tools")
  eq(tools[1].name, "echo", "first tool")
  local r = ok(s:call_tool("echo", { text = UNICODE }))
  eq(r.content[1].text, "echo: " .. UNICODE, "the call's text")
  check(#lines > 1000, "stderr reached the log (" .. #lines .. " lines)")
  -- a non-blocking call driven by poll
  local h = s:start_call("echo", { text = "nb" })
  local polls = 0
  while not h:done() do
    polls = polls + 1
    s:poll(0.05)
    check(polls < 2000, "the call never finished")
  end
  eq(ok(h:result()).content[1].text, "echo: nb", "non-blocking call")
  s:close()
  local _, err = s:ping()
  eq(err.kind, "mcp", "a closed session")
  -- a server that exits mid-call
  local c = ok(mcp.connect { command = { MCP_LUA, MCP_SERVER, "crash" }, timeout = 60 })
  local res, cerr = c:call_tool("echo", {})
  eq(res, nil, "no result from a crashed server")
  eq(cerr.kind, "mcp", "crash kind")
end)

print(string.format("%d passed, %d failed", passed, failed))
os.exit(failed == 0 and 0 or 1)
