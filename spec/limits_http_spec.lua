-- Limits and guards of the C core's HTTP side (issue 23): an oversized
-- header over HTTP/2 is a response too large, not a retried connection
-- error; an engine closed during engine:request says so; an engine used in
-- a forked child refuses, and the parent keeps its events. The protocol
-- fallback is csrc/test/test_guards.c (it needs libcurl to refuse options).
local baseten = require("baseten")
local core = require("baseten.core")
local tls = require("spec.support.tls")
local fixture = require("spec.support.fixture")
local util = require("spec.support.util")

local KEY = "sk-limits-KEY-0a1b2c3d"

local function msgs() return { { role = "user", content = "Hello" } } end

describe("an oversized response header over HTTP/2", function()
  if not tls.available() then
    it("is skipped", function() pending(tls.missing) end)
    return
  end
  local front
  fixture.tls_front(function(_, f) front = f end)

  -- before: libcurl's own HTTP/2 header cap fired first (error 56,
  -- nghttp2 -902), read as connection and retried
  it("is invalid_response, never retried", function()
    local c = baseten.new{ api_key = KEY, base_url = front.url .. "/huge-header", model = "m/x",
                           max_retries = 2, ca_file = front.ca_file }
    local resp, err = c:chat{ messages = msgs() }
    c:close()
    assert.is_nil(resp)
    assert.equal("invalid_response", err.kind, tostring(err))
    assert.is_false(err.retryable)
    assert.truthy(err.message:find("headers too large", 1, true), err.message)
    local n, h2 = 0, 0
    for _, line in ipairs(front:access_log()) do
      if line:find("/huge-header/", 1, true) then
        n = n + 1
        if line:find("^HTTP/2") then h2 = h2 + 1 end
      end
    end
    assert.equal(1, n, "retried")
    assert.equal(1, h2, "not over HTTP/2")
  end)
end)

describe("an engine", function()
  local srv
  fixture.server(function(s) srv = s end)

  -- one error convention (csrc/bt.h): before, "error", why
  it("reads a too large SSE event as nil, why", function()
    srv:enqueue({ chunks = { "data: " .. string.rep("x", 5000) .. "\n\n" } })
    local e = core.engine()
    local t = e:request{ url = srv.url .. "/chat/completions", body = "{}", stream = true, max_event = 1000 }
    local kind, why
    repeat
      e:perform(0.05)
      kind, why = t:next_event()
    until kind ~= nil or why ~= nil or t:state() ~= "running"
    assert.is_nil(kind)
    assert.equal("SSE event too large", why)
    t:close()
    e:close()
  end)

  -- before: "curl_multi_add_handle failed"
  it("closed while engine:request reads its options raises the closed-engine error", function()
    local e = core.engine()
    local opts = setmetatable({ url = srv.url .. "/models", method = "GET" }, {
      __index = function(_, k) if k == "user_agent" then e:close() end end })
    local ok, err = pcall(e.request, e, opts)
    assert.is_false(ok)
    assert.matches("attempt to use a closed baseten engine", tostring(err))
  end)

  local function run(e, opts)
    local t = e:request(opts)
    while t:state() == "running" do e:perform(0.05) end
    local status = t:status()
    t:body()
    t:close()
    return status
  end

  -- issue 26: a closed transfer's easy handle goes back to its engine
  -- (curl_easy_reset) for the next request; nothing of the request before
  -- may stay on it
  it("gives a reused handle none of the options of the request before", function()
    local e = core.engine()
    run(e, { url = srv.url .. "/one", method = "PUT", body = "first",
             headers = { "X-One: 1", "Authorization: Bearer " .. KEY }, user_agent = "ua-one",
             timeout = 30 })
    for _ = 1, 3 do run(e, { url = srv.url .. "/models", method = "GET" }) end
    e:close()
    local list = srv:requests()
    local first, last = list[#list - 3], list[#list]
    assert.equal("PUT", first.method)
    assert.equal("1", first.header_map["x-one"])
    assert.equal("GET", last.method)
    assert.equal("/v1/models", last.path)
    assert.is_nil(last.header_map["x-one"])
    assert.is_nil(last.header_map["authorization"])
    assert.not_equal("ua-one", last.header_map["user-agent"])
    assert.equal("", last.body)
  end)

  it("frees a transfer's handle when the engine closed first, whichever is collected first", function()
    local function leave(round) -- t2 (and e in round 2) left to the collector
      local e = core.engine()
      local t1 = e:request{ url = srv.url .. "/models", method = "GET" }
      local t2 = e:request{ url = srv.url .. "/models", method = "GET" }
      while t1:state() == "running" or t2:state() == "running" do e:perform(0.05) end
      t1:close() -- its handle into the pool
      if round == 1 then e:close() end
    end
    for round = 1, 2 do
      leave(round)
      collectgarbage()
      collectgarbage()
    end
    local e = core.engine()
    assert.equal(200, run(e, { url = srv.url .. "/models", method = "GET" }))
    e:close()
  end)

  -- luaposix may be missing; LuaJIT's FFI can fork on any LuaJIT, and
  -- csrc/test/test_guards.c checks the same guard from C on Lua 5.4
  if not (jit and pcall(require, "ffi")) then return end
  it("used in a forked child refuses, and the parent keeps its events", function()
    local ffi = require("ffi")
    -- one cdef each: a name declared before (another file in this process) fails alone
    for _, decl in ipairs{ "int fork(void);", "int waitpid(int pid, int *status, int options);",
                           "void _exit(int status);", "int kill(int pid, int sig);",
                           "int poll(void *fds, unsigned long nfds, int timeout);" } do
      pcall(ffi.cdef, decl)
    end
    local piece = 'data: {"choices":[{"index":0,"delta":{"content":"x"}}]}\n\n'
    local chunks = {}
    for i = 1, 60 do chunks[i] = piece end
    chunks[#chunks + 1] = "data: [DONE]\n\n"
    srv:enqueue({ chunks = chunks, write_delay = 0.005 })
    local e = core.engine()
    local t = e:request{ url = srv.url .. "/chat/completions", body = "{}", stream = true }
    e:perform(0.05)
    local pid = ffi.C.fork()
    if pid == 0 then -- the child: every engine call must refuse
      local ok1, e1 = pcall(e.perform, e, 0.2)
      local ok2 = pcall(e.request, e, { url = srv.url .. "/models" })
      local good = not ok1 and not ok2 and tostring(e1):find("forked child", 1, true)
      pcall(t.close, t)
      pcall(e.close, e)
      ffi.C._exit(good and 0 or 1)
    end
    assert.is_true(pid > 0)
    local n = 0
    while true do
      local kind = t:next_event()
      if kind == "chunk" then n = n + 1
      elseif kind == "done" then break
      elseif kind == nil then
        if t:state() ~= "running" then break end
        e:perform(0.05)
      end
    end
    util.finish(e, t)
    -- the child's calls refuse at once, so it exits at once; never wait
    -- on it without a bound (a child stuck in a lock it inherited would
    -- hold the whole run): 30 s, then it is killed and the test fails
    local status, got = ffi.new("int[1]"), 0
    for _ = 1, 600 do
      got = ffi.C.waitpid(pid, status, 1) -- WNOHANG
      if got ~= 0 then break end
      ffi.C.poll(nil, 0, 50)
    end
    if got == 0 then
      ffi.C.kill(pid, 9)
      ffi.C.waitpid(pid, status, 0)
    end
    assert.equal(pid, got, "the forked child did not exit within 30 s")
    assert.equal(0, status[0], "the child's engine calls ran")
    assert.equal(60, n, "the parent lost events")
    assert.is_true(t:result())
    t:close()
    e:close()
  end)
end)
