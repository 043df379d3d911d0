-- Issue 22, part 2: the defects of the Lua layer's object model (5, 6, 7,
-- 8, 9 and 12), each checked as the review reproduced it.
-- luacheck: std max+busted
local baseten = require("baseten")
local fixture = require("spec.support.fixture")
local util = require("spec.support.util")

local json = baseten.json
local KEY = "sk-test-ISSUE22-0123456789"
local MODEL = "openai/gpt-oss-120b"
local THIS = "issue22_spec.lua"

local function msgs() return fixture.msgs("Hi") end

-- `f` raises at this file's line (the caller's), naming every `want`.
local function raises_here(f, ...)
  local ok, err = pcall(f)
  assert.is_false(ok, "did not raise")
  local msg = tostring(err)
  assert.truthy(msg:find(THIS, 1, true), "not at the caller's line: " .. msg)
  for _, want in ipairs({ ... }) do assert.truthy(msg:find(want, 1, true), msg) end
end

-- A chat.completion body whose message calls one tool with `arguments`.
local function tool_call_reply(name, arguments)
  return { json = {
    id = "chatcmpl-t", object = "chat.completion", created = 1, model = MODEL,
    choices = { { index = 0, finish_reason = "tool_calls",
                  message = { role = "assistant", tool_calls = { { id = "call_1", type = "function",
                    ["function"] = { name = name, arguments = arguments } } } } } },
    usage = { prompt_tokens = 1, completion_tokens = 1, total_tokens = 2 },
  } }
end

-- The values of header `name` (any case) of a recorded request, each one.
local function header_values(req, name)
  local out = {}
  for _, h in ipairs(req.headers) do
    if h[1]:lower() == name:lower() then out[#out + 1] = h[2] end
  end
  return out
end

describe("issue 22", function()
  local srv, client
  fixture.client({ api_key = KEY, model = MODEL, max_retries = 2 }, function(s, c) srv, client = s, c end)

  describe("5: a stream left by break", function()
    it("is finished once collected, on every Lua: usage counted, log event emitted, transfer closed", function()
      srv:enqueue({ chunks = { 'data: {"choices":[{"index":0,"delta":{"content":"a"}}]}\n\n' }, stall = 5 })
      local ends = {}
      local c = baseten.new{ api_key = KEY, base_url = srv.url, model = MODEL, max_retries = 0,
                             log = function(e) if e.event == "stream_end" then ends[#ends + 1] = e.how end end }
      local transfer
      local function read_one() -- its own frame, so no stack slot keeps the stream
        for chunk in c:stream{ messages = msgs() } do -- luacheck: ignore 512 (left by break, the point)
          assert.equal("a", chunk.choices[1].delta.content)
          break
        end
      end
      -- the transfer, seen from outside the stream: a core object kept here
      local weak = setmetatable({}, { __mode = "k" })
      local real_stream = c.stream
      c.stream = function(self, req)
        local s, e, x, y = real_stream(self, req)
        weak[s] = true
        transfer = s._t
        return s, e, x, y
      end
      read_one()
      c.stream = nil
      for _ = 1, 4 do collectgarbage() end
      assert.is_nil(next(weak), "the stream was not collected")
      assert.equal(1, c:usage().requests)
      assert.same({ "closed" }, ends)
      assert.equal("closed", transfer:state())
      c:close()
    end)

    -- On LuaJIT a pairs() loop the JIT compiled, first run to its end
    -- inside a finalizer, spins forever (Debian 12's LuaJIT; see
    -- stream.lua): the spec above hung about once in 20 runs, in the
    -- logger's scrub of the stream_end event. Here a logger's own loop is
    -- made that way, deterministically (it hung 3 of 3 runs before the
    -- fix). On LuaJIT the finalizer now closes the transfer only, and the
    -- stream's end (usage, the log event) comes at the client's next call;
    -- 5.1 to 5.4 end it at once. In a child, bounded: a hang is a failure.
    it("runs no logger inside LuaJIT's finalizer; its end comes at the client's next call", function()
      srv:enqueue({ chunks = { 'data: {"choices":[{"index":0,"delta":{"content":"a"}}]}\n\n' }, stall = 5 })
      local script = util.write_file([[
        local baseten = require("baseten")
        local function count(t, limit) -- a loop the JIT compiles while it is only left by break
          local n = 0
          for _ in pairs(t) do
            n = n + 1
            if n == limit then break end
          end
          return n
        end
        local big = {}
        for i = 1, 200 do big["k" .. i] = i end
        for _ = 1, 100 do count(big, 150) end
        local seen = 0
        local c = baseten.new{ api_key = "k", base_url = arg[1], model = "m", max_retries = 0,
          log = function(e) if e.event == "stream_end" then seen = seen + count(e) end end }
        local function read_one()
          for _ in c:stream{ messages = { { role = "user", content = "hi" } } } do break end
        end
        read_one()
        for _ = 1, 4 do collectgarbage() end
        io.write("collected ", seen, "\n")
        io.write("next call ", c:usage().requests, " ", seen, "\n")
        c:close()
      ]])
      local rc, out, err = util.run("timeout -k 5 60 " .. util.interpreter() .. " " .. util.quote(script)
                                    .. " " .. util.quote(srv.url))
      os.remove(script)
      assert.equal(0, rc, "exit " .. tostring(rc) .. " (124: it hung): " .. out .. err)
      local jit = rawget(_G, "jit")
      assert.equal(jit and "collected 0\nnext call 1 2\n" or "collected 2\nnext call 1 2\n", out)
    end)
  end)

  describe("6: messages given as one message table", function()
    it("raises at the call, for every call that takes messages", function()
      local one = { role = "user", content = "Hi" }
      raises_here(function() client:chat{ messages = one } end, "messages", "array")
      raises_here(function() client:stream{ messages = one } end, "messages")
      raises_here(function() client:json{ messages = one } end, "messages")
      raises_here(function() client:run_tools{ messages = one } end, "messages")
      raises_here(function() client:start{ messages = one } end, "messages")
      raises_here(function() client:batch({ { messages = one } }) end, "messages")
      raises_here(function() client:chat{ messages = { one, "two" } } end, "messages")
      raises_here(function() client:chat{ messages = { one, extra = one } } end, "messages")
      assert.equal(0, #srv:requests())
    end)
  end)

  describe("7: header names", function()
    it("must be HTTP tokens, at new and at the call", function()
      raises_here(function() baseten.new{ base_url = srv.url, headers = { ["X-A:b"] = "v" } } end, "headers", "X-A:b")
      raises_here(function() baseten.new{ base_url = srv.url, headers = { ["X A"] = "v" } } end, "headers")
      raises_here(function() baseten.new{ base_url = srv.url, headers = { [""] = "v" } } end, "headers")
      raises_here(function() client:chat({ messages = msgs() }, { headers = { ["X-A:b"] = "v" } }) end, "headers")
      raises_here(function() client:chat({ messages = msgs() }, { headers = { ["X-A\r\nX-B"] = "v" } }) end,
                  "headers")
      raises_here(function() client:start({ messages = msgs() }, { headers = { ["a/b"] = "v" } }) end, "headers")
      assert.equal(0, #srv:requests())
      -- every token character is taken
      local c = baseten.new{ base_url = srv.url, api_key = KEY, model = MODEL,
                             headers = { ["X-Tok!#$%&'*+.^_`|~9"] = "1" } }
      srv:enqueue({ json = util.completion("ok") })
      assert(c:chat{ messages = msgs() })
      assert.equal("1", util.header(srv:last_request(), "X-Tok!#$%&'*+.^_`|~9"))
      c:close()
    end)

    it("a user Authorization or Content-Type replaces the library's, matched in any case", function()
      local c = baseten.new{ base_url = srv.url, api_key = KEY, model = MODEL,
                             headers = { authorization = "Basic dXNlcg==" } }
      srv:enqueue({ json = util.completion("ok") })
      assert(c:chat({ messages = msgs() }, { headers = { ["CONTENT-TYPE"] = "application/json; charset=utf-8" } }))
      local req = srv:last_request()
      assert.same({ "Basic dXNlcg==" }, header_values(req, "Authorization"))
      assert.same({ "application/json; charset=utf-8" }, header_values(req, "Content-Type"))
      -- the call's replaces the client's
      srv:enqueue({ json = util.completion("ok") })
      assert(c:chat({ messages = msgs() }, { headers = { Authorization = "Bearer other" } }))
      assert.same({ "Bearer other" }, header_values(srv:last_request(), "authorization"))
      c:close()
      -- without one, the library's is sent once
      srv:enqueue({ json = util.completion("ok") })
      assert(client:chat{ messages = msgs() })
      assert.same({ "Bearer " .. KEY }, header_values(srv:last_request(), "Authorization"))
    end)
  end)

  describe("8: a malformed base_url", function()
    it("is rejected at new as invalid_request, at the caller's line, and nothing is sent", function()
      raises_here(function() baseten.new{ base_url = "http://exa mple.com/v1" } end, "invalid_request", "base_url")
      raises_here(function() baseten.new{ base_url = "http://exa\tmple.com/v1" } end, "invalid_request")
      raises_here(function() baseten.new{ base_url = "http:///v1" } end, "invalid_request")
      raises_here(function() baseten.new{ base_url = "http://a_b|c.com/v1" } end, "invalid_request")
      raises_here(function() baseten.new{ base_url = "http://example.com:99999/v1" } end, "invalid_request")
      raises_here(function() baseten.new{ base_url = "ftp://example.com/v1" } end, "invalid_request")
      raises_here(function() baseten.new{ base_url = 42 } end, "invalid_request")
      -- well-formed ones are taken
      for _, u in ipairs({ "http://127.0.0.1:8080/v1", "https://inference.baseten.co/v1", "http://[::1]:9/v1",
                           "https://user:pw@example.com/v1?x=1", "http://localhost" }) do
        baseten.new{ base_url = u }:close()
      end
    end)
  end)

  describe("9: run_tools", function()
    it("an on_tool_error that raises raises out of run_tools", function()
      srv:enqueue(tool_call_reply("f", "{}"))
      local ok, err = pcall(client.run_tools, client, {
        messages = msgs(),
        tools = { baseten.tool{ name = "f", handler = function() error("tool broke") end } },
        on_tool_error = function() error("on_tool_error raised") end,
      })
      assert.is_false(ok)
      assert.truthy(tostring(err):find("on_tool_error raised", 1, true), tostring(err))
      assert.equal(1, #srv:requests()) -- the loop stopped there
    end)

    it("arguments that are not a JSON object go back as a tool error; the handler never runs", function()
      for _, args in ipairs({ "[1,2]", "42", '"x"', "true" }) do
        srv:reset()
        srv:enqueue(tool_call_reply("f", args))
        srv:enqueue({ json = util.completion("done") })
        local ran = false
        local resp, transcript = client:run_tools{
          messages = msgs(),
          tools = { baseten.tool{ name = "f", handler = function() ran = true end } },
        }
        assert(resp, tostring(transcript))
        assert.is_false(ran, args)
        local tool_msg = transcript[#transcript - 1]
        assert.equal("tool", tool_msg.role)
        assert.truthy(tool_msg.content:find('^error: the arguments of tool "f" must be a JSON object'),
                      tool_msg.content)
      end
      -- an object still reaches the handler
      srv:reset()
      srv:enqueue(tool_call_reply("f", '{"a":1}'))
      srv:enqueue({ json = util.completion("done") })
      local got
      assert(client:run_tools{ messages = msgs(),
        tools = { baseten.tool{ name = "f", handler = function(a) got = a end } } })
      assert.equal(1, got.a)
      assert.is_false(json.is_array(got))
    end)
  end)

  describe("12: batch argument errors", function()
    it("point at the caller", function()
      local bad_req = { messages = {} }
      raises_here(function() client:batch("nope") end, "array of requests")
      raises_here(function() client:batch({ bad_req }) end, "requests[1]")
      raises_here(function() client:batch({ { messages = msgs() }, 42 }) end, "requests[2]")
      raises_here(function() client:batch({ { messages = msgs(), stream = true } }) end, "stream")
      raises_here(function() client:batch({ { messages = msgs() } }, { concurrency = 0 }) end, "concurrency")
      raises_here(function() client:batch({ { messages = msgs() } }, { on_result = "no" }) end, "on_result")
      raises_here(function() client:batch({ { messages = msgs() } }, 5) end, "options")
      raises_here(function() client:start_batch({ bad_req }) end, "requests[1]")
      raises_here(function() client:start_batch({ { messages = msgs() } }, { concurrency = 1.5 }) end,
                  "concurrency")
      local c = baseten.new{ api_key = KEY, base_url = srv.url } -- no default model
      raises_here(function() c:batch({ { messages = msgs() } }) end, "model")
      c:close()
      assert.equal(0, #srv:requests())
    end)
  end)
end)
