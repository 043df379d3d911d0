-- Streaming against the local server: iterators, final(), every way a
-- stream can end badly, and SSE bytes split every way the network can.
local baseten = require("baseten")
local fixture = require("spec.support.fixture")
local core = require("baseten.core")

local json = baseten.json
local KEY = "sk-stream-SECRET-42"

local function msgs(text)
  return { { role = "user", content = text or "Hello stream" } }
end

local function ev(tbl)
  return "data: " .. json.encode(tbl) .. "\n\n"
end

local function delta_chunk(content, extra)
  local c = { id = "chatcmpl-1", object = "chat.completion.chunk", created = 1, model = "m",
              choices = { { index = 0, delta = { content = content } } } }
  for k, v in pairs(extra or {}) do c[k] = v end
  return c
end

-- A stream of the given pieces, with role first, finish and [DONE] last.
local function script(pieces, opts)
  local chunks = { ev{ id = "chatcmpl-1", object = "chat.completion.chunk", created = 1, model = "m",
                       choices = { { index = 0, delta = { role = "assistant", content = "" } } } } }
  for _, p in ipairs(pieces) do chunks[#chunks + 1] = ev(delta_chunk(p)) end
  chunks[#chunks + 1] = ev{ id = "chatcmpl-1", choices = { { index = 0, delta = json.object{}, finish_reason = "stop" } } }
  chunks[#chunks + 1] = "data: [DONE]\n\n"
  local r = { chunks = chunks }
  for k, v in pairs(opts or {}) do r[k] = v end
  return r
end

local function collect(stream)
  local out = {}
  for piece in stream:text() do out[#out + 1] = piece end
  return table.concat(out)
end

describe("streaming", function()
  local srv, client

  fixture.server(function(s) srv = s end)

  before_each(function()
    client = baseten.new{ api_key = KEY, base_url = srv.url, model = "openai/gpt-oss-120b", max_retries = 2 }
  end)

  describe("against the mock model", function()
    it("iterates chunks and gives the same text as a blocking chat", function()
      local blocking = assert(client:chat{ messages = msgs("one two three") })
      local s = assert(client:stream{ messages = msgs("one two three") })
      local n, text = 0, {}
      for chunk in s do
        n = n + 1
        assert.equal("chat.completion.chunk", chunk.object)
        local d = chunk.choices[1] and chunk.choices[1].delta
        if d and d.content then text[#text + 1] = d.content end
      end
      assert.is_true(n > 3)
      assert.equal(blocking.choices[1].message.content, table.concat(text))
    end)

    it("sends stream = true and asks for an event stream", function()
      local s = assert(client:stream{ messages = msgs(), stream_options = { include_usage = true } })
      s:final()
      local req = srv:requests()[1]
      assert.truthy(req.body:find('"stream":true', 1, true))
      assert.equal("text/event-stream", req.header_map["accept"])
      assert.is_true(json.decode(req.body).stream_options.include_usage)
    end)

    it("final() returns a chat.completion with usage when asked", function()
      local s = assert(client:stream{ messages = msgs("alpha beta"), stream_options = { include_usage = true } })
      local r = assert(s:final())
      assert.equal("chat.completion", r.object)
      assert.truthy(r.choices[1].message.content:find("alpha beta", 1, true))
      assert.equal("stop", r.choices[1].finish_reason)
      assert.is_number(r.usage.total_tokens)
      assert.is_nil(s:next()) -- the end stays the end
    end)

    it("chat{stream = true} streams and accumulates", function()
      local r = assert(client:chat{ messages = msgs("gamma"), stream = true })
      assert.truthy(r.choices[1].message.content:find("gamma", 1, true))
      assert.truthy(srv:requests()[1].body:find('"stream":true', 1, true))
    end)

    it("text() yields only non-empty content pieces", function()
      local s = assert(client:stream{ messages = msgs("x y z") })
      for piece in s:text() do
        assert.is_string(piece)
        assert.is_true(#piece > 0)
      end
    end)
  end)

  describe("bytes split by the network", function()
    local pieces = { "Hé", "llo ", "wörld ", "😀", " ✓ done" }
    local expect = table.concat(pieces)
    for _, split in ipairs({ "random", "byte" }) do
      it("reads " .. split .. " splits, including UTF-8 split across writes", function()
        srv:enqueue(script(pieces, { split = split, seed = 7, write_delay = 0.0002 }))
        local s = assert(client:stream{ messages = msgs() })
        assert.equal(expect, collect(s))
        assert.equal(expect, s:final().choices[1].message.content)
      end)
    end

    it("reads CRLF and CR line ends and split chunk framing", function()
      local r = script(pieces, { split = "random", seed = 3, split_framing = true })
      for i, c in ipairs(r.chunks) do r.chunks[i] = c:gsub("\n", i % 2 == 0 and "\r\n" or "\r") end
      srv:enqueue(r)
      assert.equal(expect, collect(assert(client:stream{ messages = msgs() })))
    end)

    it("skips keep-alive comments and empty data frames", function()
      srv:enqueue({ chunks = { ": keep-alive\n\n", ev(delta_chunk("a")), "data:\n\n", ": ping\n",
                               "\n", "data: \n\n", ev(delta_chunk("b")), "data: [DONE]\n\n" } })
      assert.equal("ab", collect(assert(client:stream{ messages = msgs() })))
    end)

    it("ends at [DONE] even without its blank line at the very end", function()
      srv:enqueue({ chunks = { ev(delta_chunk("a")), "data: [DONE]" } })
      local s = assert(client:stream{ messages = msgs() })
      assert.equal("a", collect(s))
    end)

    it("accepts a clean end after the last chunk without [DONE]", function()
      srv:enqueue({ chunks = { ev(delta_chunk("a")), ev(delta_chunk("b")) } })
      local r = assert(assert(client:stream{ messages = msgs() }):final())
      assert.equal("ab", r.choices[1].message.content)
    end)

    it("takes a whole last chunk that lacks its blank line", function()
      srv:enqueue({ chunks = { ev(delta_chunk("a")), "data: " .. json.encode(delta_chunk("z")) } })
      assert.equal("az", collect(assert(client:stream{ messages = msgs() })))
    end)

    it("reads usage on every chunk (last wins) and in a final choices = [] chunk", function()
      local u = function(n) return { prompt_tokens = 3, completion_tokens = n, total_tokens = 3 + n } end
      srv:enqueue({ chunks = { ev(delta_chunk("a", { usage = u(1) })), ev(delta_chunk("b", { usage = u(2) })),
                               "data: [DONE]\n\n" } },
                  { chunks = { ev(delta_chunk("a", { usage = json.null })),
                               ev{ id = "x", choices = json.array(), usage = u(9) }, "data: [DONE]\n\n" } })
      local r1 = assert(assert(client:stream{ messages = msgs() }):final())
      assert.equal(5, r1.usage.total_tokens)
      local r2 = assert(assert(client:stream{ messages = msgs() }):final())
      assert.equal(12, r2.usage.total_tokens)
    end)

    it("accumulates reasoning and tool-call deltas from the wire", function()
      srv:enqueue({ split = "byte", write_delay = 0.0001, chunks = {
        ev{ choices = { { index = 0, delta = { reasoning_content = "hm" } } } },
        ev{ choices = { { index = 0, delta = { reasoning = "ok" } } } },
        ev{ choices = { { index = 0, delta = { tool_calls = { { index = 0, id = "c1", type = "function",
              ["function"] = { name = "get_weather", arguments = "" } } } } } } },
        ev{ choices = { { index = 0, delta = { tool_calls = { { index = 0, ["function"] = { arguments = '{"city":' } } } } } } },
        ev{ choices = { { index = 0, delta = { tool_calls = { { index = 0, id = "c1", ["function"] = { name = "get_weather", arguments = '"Oslo"}' } } } } } } },
        ev{ choices = { { index = 0, delta = json.object{}, finish_reason = "tool_calls" } } },
        "data: [DONE]\n\n" } })
      local r = assert(assert(client:stream{ messages = msgs() }):final())
      local m = r.choices[1].message
      assert.equal("hmok", m.reasoning_content) -- the reasoning under either name, as pieces() gives it
      assert.equal("ok", m.reasoning)
      assert.equal("tool_calls", r.choices[1].finish_reason)
      assert.equal(1, #m.tool_calls)
      assert.equal('{"city":"Oslo"}', m.tool_calls[1]["function"].arguments)
      assert.equal("get_weather", m.tool_calls[1]["function"].name)
    end)
  end)

  describe("never fails silently", function()
    local function drain_error(s)
      local ok, err = pcall(function() for _ in s do end end)
      assert.is_false(ok)
      assert.is_table(err)
      return err
    end

    it("raises connection when the chunked body is cut off, keeping the text so far", function()
      local r = script({ "partial ", "text" })
      r.chunks[#r.chunks] = nil -- no [DONE]
      r.chunks[#r.chunks] = nil -- no finish
      r.truncate = true
      srv:enqueue(r)
      local s = assert(client:stream{ messages = msgs() })
      local err = drain_error(s)
      assert.equal("connection", err.kind)
      assert.equal("partial text", s:text_so_far())
      assert.equal("partial text", err.partial.choices[1].message.content)
      local again, err2 = s:next()
      assert.is_nil(again)
      assert.equal(err, err2)
      local f, ferr = s:final()
      assert.is_nil(f)
      assert.equal("connection", ferr.kind)
    end)

    it("raises connection on a reset mid-stream", function()
      local r = script({ "a", "b" })
      r.chunks[#r.chunks] = nil
      r.reset = true
      srv:enqueue(r)
      local err = drain_error(assert(client:stream{ messages = msgs() }))
      assert.equal("connection", err.kind)
    end)

    it("raises error_event on `event: error`", function()
      srv:enqueue({ chunks = { ev(delta_chunk("a")), 'event: error\ndata: {"error": {"message": "overloaded", "type": "server_error"}}\n\n' } })
      local err = drain_error(assert(client:stream{ messages = msgs() }))
      assert.equal("error_event", err.kind)
      assert.equal("overloaded", err.message)
      assert.equal("server_error", err.type)
    end)

    it("raises error_event on a chunk with an error member, both shapes", function()
      srv:enqueue({ chunks = { ev(delta_chunk("a")), ev{ error = "Baseten says no" } } },
                  { chunks = { ev{ error = { message = "OpenAI says no", code = 500 } } } })
      local e1 = drain_error(assert(client:stream{ messages = msgs() }))
      assert.equal("error_event", e1.kind)
      assert.equal("Baseten says no", e1.message)
      local e2 = drain_error(assert(client:stream{ messages = msgs() }))
      assert.equal("OpenAI says no", e2.message)
      assert.equal("500", e2.code)
    end)

    it("raises invalid_response on a chunk that is not JSON", function()
      srv:enqueue({ chunks = { ev(delta_chunk("a")), "data: {not json\n\n", "data: [DONE]\n\n" } })
      local err = drain_error(assert(client:stream{ messages = msgs() }))
      assert.equal("invalid_response", err.kind)
    end)

    it("raises invalid_response on a 200 that is not an event stream", function()
      srv:enqueue({ status = 200, body = "<html><body>gateway</body></html>", headers = { ["Content-Type"] = "text/html" } })
      local err = drain_error(assert(client:stream{ messages = msgs() }))
      assert.equal("invalid_response", err.kind)
    end)

    it("raises timeout when the stream stalls past the timeout", function()
      local r = script({ "a" })
      r.chunks[#r.chunks] = nil
      r.stall = 10
      srv:enqueue(r)
      local c = baseten.new{ api_key = KEY, base_url = srv.url, model = "m/x", timeout = 1, max_retries = 0 }
      local t0 = core.now()
      local err = drain_error(assert(c:stream{ messages = msgs() }))
      assert.equal("timeout", err.kind)
      assert.is_true(core.now() - t0 < 9) -- the client's 1 s, not the server's 10 s stall
    end)

    it("raises timeout after idle_timeout without bytes", function()
      local r = script({ "a" })
      r.chunks[#r.chunks] = nil
      r.stall = 5
      srv:enqueue(r)
      local c = baseten.new{ api_key = KEY, base_url = srv.url, model = "m/x", idle_timeout = 1, max_retries = 0 }
      local err = drain_error(assert(c:stream{ messages = msgs() }))
      assert.equal("timeout", err.kind)
    end)

    it("returns nil, err for an error status, retrying before the status is known", function()
      srv:enqueue({ status = 503, json = { error = "warming up" }, headers = { ["retry-after-ms"] = "10" } })
      local s = assert(client:stream{ messages = msgs("after retry") })
      assert.truthy(collect(s):find("after retry", 1, true))
      assert.equal(2, #srv:requests())
      srv:enqueue({ status = 401, json = { error = "bad key " .. KEY } })
      local s2, err = client:stream{ messages = msgs() }
      assert.is_nil(s2)
      assert.equal("authentication", err.kind)
      assert.is_nil(tostring(err):find(KEY, 1, true))
    end)
  end)

  describe("closing", function()
    it("close() cancels at once, is idempotent and later reads say canceled", function()
      srv:enqueue(script({ "a", "b", "c" }, { chunk_delay = 1 }))
      local s = assert(client:stream{ messages = msgs() })
      assert.is_table(s:next())
      local t0 = core.now()
      s:close()
      s:close()
      assert.is_true(core.now() - t0 < 1.5) -- not the rest of the stream (3 s)
      local v, err = s:next()
      assert.is_nil(v)
      assert.equal("canceled", err.kind)
      assert.truthy(tostring(s):find("closed", 1, true) or tostring(s):find("failed", 1, true))
      assert(client:chat{ messages = msgs() }) -- the client goes on
    end)

    it("returns the closing value, so break in a for loop closes the stream on 5.4", function()
      srv:enqueue(script({ "a", "b", "c", "d" }, { chunk_delay = 0.1 }))
      local s, e, ctl, closing = client:stream{ messages = msgs() }
      assert.is_nil(e)
      assert.is_nil(ctl)
      assert.equal(s, closing)
      local n = 0
      for _ in s, nil, nil, closing do -- luacheck: ignore 512 (what `for chunk in client:stream(req)` expands to)
        n = n + 1
        break
      end
      assert.equal(1, n)
      if _VERSION == "Lua 5.4" then
        assert.is_nil(s._t) -- closed by the generic for
      else
        s:close()
      end
      assert.is_nil(s._t)
    end)

    it("supports `local s <close>` on 5.4", function()
      if _VERSION ~= "Lua 5.4" then return end
      srv:enqueue(script({ "a", "b" }, { chunk_delay = 0.1 }))
      local f = assert(load([[
        local client, msgs = ...
        local s <close> = assert(client:stream{ messages = msgs() })
        s:next()
        return s
      ]]))
      local s = f(client, msgs)
      assert.is_nil(s._t)
    end)

    it("a collected stream frees its transfer", function()
      srv:enqueue(script({ "a", "b" }, { chunk_delay = 0.2 }))
      do
        local s = assert(client:stream{ messages = msgs() })
        s:next()
      end
      collectgarbage()
      collectgarbage()
      assert(client:chat{ messages = msgs() })
    end)
  end)

  describe("memory", function()
    it("stays flat over a long stream", function()
      local skip = require("spec.support.util").skip_volume()
      if skip then return pending(skip) end
      local N = 200000
      local one = ev(delta_chunk("x"))
      srv:enqueue({ chunks = { { ["repeat"] = one, count = N }, "data: [DONE]\n\n" } })
      local s = assert(client:stream{ messages = msgs() })
      local n, peak_kb, mid_kb = 0, 0, nil
      for _ in s do
        n = n + 1
        if n % 40000 == 0 then
          collectgarbage("collect") -- live data only: garbage waits on GC timing
          local kb = collectgarbage("count")
          if kb > peak_kb then peak_kb = kb end
          if n == 40000 then mid_kb = kb end
        end
      end
      assert.equal(N, n)
      -- the Lua heap holds the accumulated text (N bytes) and little else
      assert.is_true(peak_kb - mid_kb < 8 * 1024, ("heap grew %.0f KB"):format(peak_kb - mid_kb))
    end)
  end)
end)
