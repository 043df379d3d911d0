-- The text fast path (issue 26): stream:pieces() and stream:text() read
-- chunks of the common text shape in C without a table (csrc/delta.c,
-- t:next_text) and fall back to the full decode for anything else. This
-- spec runs each stream through both paths, against the local server, and
-- compares what they give: the pieces (and text()'s pieces), final() (so
-- the usage and every accumulated field), and a failure's kind and partial.
--
-- The streams: the mock model's (plain, usage, reasoning in both
-- spellings, tool calls), the chunk and SSE literals of every spec file,
-- and differential streams: hand-written chunks, each at an edge of what
-- the fast path takes, alone and mixed in seeded random sequences (so
-- fast and full chunks alternate within one stream).
local baseten = require("baseten")
local fixture = require("spec.support.fixture")
local stream_mod = require("baseten.stream")
local literals = require("spec.support.literals").literals
local util = require("spec.support.util")

-- Under valgrind and constant GC each stream is slow: the single-chunk
-- streams are then only run together, and there are fewer mixes.
local LIGHT = util.skip_volume() ~= nil

local unpack = table.unpack or unpack -- luacheck: ignore 143

-- How many chunks t:next_text gave as a row (the fast path), counted by
-- wrapping the transfer method (test instrumentation only).
local rows = 0
local methods = debug.getregistry()["baseten.core.transfer"]
local next_text = methods.next_text
methods.next_text = function(...)
  local r = { next_text(...) }
  if r[1] == "text" then rows = rows + 1 end
  return unpack(r, 1, 14)
end

-- The for-chunk path's sink: t:next_event(sink) adds a plain content
-- chunk to the accumulator in C (its third value is then true). `sunk`
-- counts those; with `no_sink` set the sink is not passed, so every chunk
-- takes accumulate.add: the reference the sink must agree with.
local sunk, no_sink = 0, false
local SINK = rawget(_G, "jit") == nil -- as baseten.stream decides
local next_event = methods.next_event
methods.next_event = function(t, sink)
  if no_sink then return next_event(t) end
  local a, b, c = next_event(t, sink)
  if c == true then sunk = sunk + 1 end
  return a, b, c
end

local HEAD = '"id":"c1","object":"chat.completion.chunk","created":1741569952,"model":"m"'

-- Chunks, as raw text, each at an edge of the fast path.
local CHUNKS = {
  '{' .. HEAD .. ',"choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]}',
  '{' .. HEAD .. ',"choices":[{"index":0,"delta":{"content":"Hello"},"finish_reason":null}]}',
  '{' .. HEAD .. ',"choices":[{"index":0,"delta":{"content":" w\\u00f6rld \\"q\\" \\n\\t\\/"},"logprobs":null,'
    .. '"finish_reason":null,"stop_reason":null}]}',
  '{' .. HEAD .. ',"choices":[{"index":0,"delta":{"content":"caf\195\169 \240\159\152\128"}}]}',
  '{' .. HEAD .. ',"choices":[{"index":0,"delta":{"content":"\\ud83d\\ude00 pair"}}]}',
  '{' .. HEAD .. ',"choices":[{"index":0,"delta":{"reasoning_content":"think "}}]}',
  '{' .. HEAD .. ',"choices":[{"index":0,"delta":{"reasoning":"alt "}}]}',
  '{' .. HEAD .. ',"choices":[{"index":0,"delta":{"reasoning_content":"both ","reasoning":"both "}}]}',
  '{' .. HEAD .. ',"choices":[{"index":0,"delta":{"reasoning_content":"","reasoning":"only-r "}}]}',
  '{' .. HEAD .. ',"choices":[{"index":0,"delta":{"refusal":"no ","content":"c ","reasoning":"r "}}]}',
  '{' .. HEAD .. ',"choices":[{"index":0,"delta":{"content":null,"refusal":null,"tool_calls":null,'
    .. '"reasoning_content":null}}]}',
  '{' .. HEAD .. ',"choices":[{"index":0,"delta":{"content":"x","tool_calls":[]}}]}',
  '{' .. HEAD .. ',"choices":[{"delta":{"content":"no index "}}]}',
  '{' .. HEAD .. ',"choices":[{"index":null,"delta":{"content":"null index "}}]}',
  '{' .. HEAD .. ',"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}',
  '{' .. HEAD .. ',"choices":[{"index":0,"finish_reason":"length"}]}',
  '{' .. HEAD .. ',"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":5,"total_tokens":8,'
    .. '"completion_tokens_details":{"reasoning_tokens":2},"x":[1,null,"]}"]}}',
  '{' .. HEAD .. ',"choices":[{"index":0,"delta":{"content":"u "}}],"usage":{"total_tokens":1}}',
  '{' .. HEAD .. ',"usage":null,"choices":null}',
  '{"choices":[{"index":0,"delta":{"content":"headless "}}]}',
  '{"id":"c2","created":1.5,"model":"m2","system_fingerprint":"fp_1","service_tier":"default",'
    .. '"choices":[{"index":0,"delta":{"role":"assistant"}}]}',
  ' \t{ "id" : "c1" , "choices" : [ { "index" : 0 , "delta" : { "content" : "spaced " } } ] } \r\n',
  -- each of these takes the full path
  '{' .. HEAD .. ',"choices":[{"index":1,"delta":{"content":"choice one "}}]}',
  '{' .. HEAD .. ',"choices":[{"index":0,"delta":{"content":"a "}},{"index":1,"delta":{"content":"b "}}]}',
  '{' .. HEAD .. ',"choices":[{"index":0.0,"delta":{"content":"float index "}}]}',
  '{' .. HEAD .. ',"choices":[{"index":0,"delta":{"content":"lp "},"logprobs":{"content":[{"token":"lp",'
    .. '"logprob":-0.1,"top_logprobs":[]}]}}]}',
  '{' .. HEAD .. ',"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"call_1","type":"function",'
    .. '"function":{"name":"f","arguments":"{\\"a\\""}}]}}]}',
  '{' .. HEAD .. ',"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":":1}"}}]}}]}',
  '{' .. HEAD .. ',"choices":[{"index":0,"message":{"role":"assistant","content":"as message "}}]}',
  '{' .. HEAD .. ',"choices":[{"index":0,"delta":{"content":"dup "},"delta":{"content":"dup2 "}}]}',
  '{' .. HEAD .. ',"choices":[{"index":0,"delta":{"content":"d1 ","content":"d2 "}}]}',
  '{' .. HEAD .. ',"choices":[{"index":0,"delta":{"con\\u0074ent":"escaped name "}}]}',
  '{' .. HEAD .. ',"choices":[{"index":0,"delta":{"content":"half \\ud83d"}}]}',
  '{' .. HEAD .. ',"choices":[{"index":0,"delta":{"content":"\\ude00 other half"}}]}',
  '{' .. HEAD .. ',"choices":[{"index":0,"delta":{"content":"nested ","extra":{"a":1}}}]}',
  '{' .. HEAD .. ',"choices":[{"index":0,"delta":{"content":7}}]}',
  '{' .. HEAD .. ',"choices":[{"index":0,"delta":{"role":true,"content":"bad role "}}]}',
  '{' .. HEAD .. ',"choices":[{"index":0,"delta":{"content":"fr "},"finish_reason":3}]}',
  '{' .. HEAD .. ',"choices":[{"index":0,"delta":"not a table"}]}',
  '{' .. HEAD .. ',"choices":{"0":{"delta":{"content":"object choices "}}}}',
  '{' .. HEAD .. ',"usage":{"total_tokens":1e400},"choices":[]}',
  '{' .. HEAD .. ',"usage":"none","choices":[]}',
  '{' .. HEAD .. ',"system_fingerprint":4,"choices":[{"index":0,"delta":{"content":"fp "}}]}',
  '{' .. HEAD .. ',"choices":[{"index":0,"delta":{"content":"big "}}],"x":123456789012345678901234567890}',
  '{' .. HEAD .. ',"extra":[1,2],"choices":[{"index":0,"delta":{"content":"array extra "}}]}',
  '{"id":7,"model":false,"created":"now","choices":[{"index":0,"delta":{"content":"odd head "}}]}',
}

-- Chunks that end the stream (a failure), used once at a stream's end.
local FAILING = {
  '{' .. HEAD .. ',"error":{"message":"boom","type":"server_error"}}',
  '{' .. HEAD .. ',"error":null,"choices":[{"index":0,"delta":{"content":"null error "}}]}',
  '{' .. HEAD .. ',"choices":[{"index":0,"delta":{"content":"trailing "}}]} x',
  '{' .. HEAD .. ',"choices":[{"index":0,"delta":{"content":"bad \\q escape"}}]}',
  '{' .. HEAD .. ',"choices":[{"index":0,"delta":{"content":"bad \255 utf8"}}]}',
  '{' .. HEAD .. ',"choices":[{"index":0,"delta":{"content":"cut',
  '[1,2]',
  '"just a string"',
}

local function body_of(chunks, tail)
  local out = {}
  for i, c in ipairs(chunks) do out[i] = "data: " .. c .. "\n\n" end
  out[#out + 1] = tail or "data: [DONE]\n\n"
  return table.concat(out)
end

-- Every chunk or SSE literal of the spec files.
local function spec_literals()
  local chunks, bodies = {}, {}
  local p = io.popen("ls spec/*.lua")
  for path in p:lines() do
    local f = io.open(path, "rb")
    for _, s in ipairs(literals(f:read("*a"))) do
      if s:find("data:", 1, true) and (s:find('"choices"', 1, true) or s:find('"error"', 1, true)) then
        bodies[#bodies + 1] = s
      elseif s:match("^%s*{") and s:find('"choices"', 1, true) then
        chunks[#chunks + 1] = s
      end
    end
    f:close()
  end
  p:close()
  return chunks, bodies
end

-- What one path gives for a stream: the pieces, final() (or the failure).
local function run(client, how)
  local s = assert(client:stream{ messages = { { role = "user", content = "x" } } })
  local pieces, text, chunks = {}, {}, {}
  local ok, err = pcall(function()
    if how == "chunks" then
      for chunk in s do
        chunks[#chunks + 1] = chunk
        local q = stream_mod.pieces_of(chunk) or {}
        for i = 1, #q do pieces[#pieces + 1] = q[i] end
        text[#text + 1] = stream_mod.content_of(chunk)
      end
    elseif how == "pieces" then
      for piece, kind in s:pieces() do
        pieces[#pieces + 1] = piece
        pieces[#pieces + 1] = kind
      end
    elseif how == "text" then
      for piece in s:text() do text[#text + 1] = piece end
    end
  end)
  local out = { pieces = pieces, text = text, chunks = chunks }
  if ok then -- "final": final() alone reads the stream, and returns a failure
    local final, ferr = s:final()
    if how == "final" and not final then ok, err = false, ferr else out.final = assert(final, ferr) end
  end
  if not ok then
    assert.is_table(err, tostring(err))
    out.kind, out.partial = err.kind, err.partial
  end
  s:close()
  return out
end

-- The four paths (chunks, pieces(), text(), final() alone) over the same
-- body, which must agree; returns how many
-- chunks the fast path took.
local function check(srv, client, body, what)
  local resp = { chunks = { body }, headers = { ["Content-Type"] = "text/event-stream" } }
  srv:enqueue(resp, resp, resp, resp, resp) -- chunks without and with the sink, pieces, text, final
  local before = rows
  no_sink = true -- every chunk through accumulate.add
  local ok, ref = pcall(run, client, "chunks")
  no_sink = false
  assert(ok, ref)
  local full = run(client, "chunks") -- with the sink
  assert.are.equal(before, rows, "the chunk path took the fast path: " .. what)
  for _, k in ipairs({ "chunks", "pieces", "text", "final", "kind", "partial" }) do
    assert.are.same(ref[k], full[k], "the sink changes " .. k .. ": " .. what)
  end
  local fast = run(client, "pieces")
  local fast_rows = rows - before
  local text = run(client, "text")
  before = rows
  local final = run(client, "final") -- final() alone takes the fast path too
  assert.are.equal(fast_rows, rows - before, "final() did not take the fast path: " .. what)
  assert.are.same(full.pieces, fast.pieces, "pieces differ: " .. what)
  assert.are.same(full.text, text.text, "text() differs: " .. what)
  for _, o in ipairs({ fast, text, final }) do
    assert.are.same(full.final, o.final, "final() differs: " .. what)
    assert.are.equal(full.kind, o.kind, "failure kind differs: " .. what)
    assert.are.same(full.partial, o.partial, "partial differs: " .. what)
  end
  return fast_rows
end

describe("the text fast path", function()
  local srv, client
  fixture.client({ api_key = "k", model = "test/m", max_retries = 0 }, function(s, c) srv, client = s, c end)

  it("takes the common chunks in C and gives what the full path gives, chunk by chunk", function()
    local fast = 0
    for i, c in ipairs(LIGHT and {} or CHUNKS) do
      fast = fast + check(srv, client, body_of({ c }), "chunk " .. i .. ": " .. c)
    end
    assert.is_true(LIGHT or fast >= 20, "the fast path took only " .. fast .. " chunks")
    -- the first 22 are the fast path's; the rest are not
    local was = sunk
    local f = check(srv, client, body_of({ unpack(CHUNKS, 1, 22) }), "the fast chunks")
    assert.are.equal(22, f)
    -- the for-chunk path's sink took the plain content chunks after the head
    assert.are.equal(SINK and 9 or 0, sunk - was) -- LuaJIT: baseten.stream passes no sink
    assert.are.equal(0, check(srv, client, body_of({ unpack(CHUNKS, 23) }), "the full chunks"))
  end)

  it("the for-chunk sink agrees across the accumulator's 512-piece text segments", function()
    local list = {}
    for i = 1, LIGHT and 600 or 1300 do
      list[i] = CHUNKS[i % 7 == 0 and 6 or (i % 5 == 0 and 3 or 2)] -- a reasoning chunk now and then
    end
    local was = sunk
    check(srv, client, body_of(list), "1300 chunks")
    assert.is_true(not SINK or sunk - was > #list / 2, "the sink took " .. (sunk - was))
  end)

  it("agrees on failures, and on a last event without its blank line", function()
    for i, c in ipairs(FAILING) do
      check(srv, client, body_of({ CHUNKS[2], CHUNKS[6], c }), "failing " .. i .. ": " .. c)
    end
    check(srv, client, body_of({ CHUNKS[2] }, "data: " .. CHUNKS[3]), "no blank line")
    check(srv, client, body_of({ CHUNKS[2] }, "event: error\ndata: {\"error\":{\"message\":\"x\"}}\n\n"),
      "an error event")
    check(srv, client, body_of({ CHUNKS[2] }, ""), "no [DONE]")
  end)

  it("agrees on seeded random mixes of fast and full chunks", function()
    local seed = 26
    local function rand(n)
      seed = (seed * 1103515245 + 12345) % 2147483648
      return seed % n + 1
    end
    for k = 1, LIGHT and 6 or 60 do
      local list = {}
      for i = 1, rand(12) do list[i] = CHUNKS[rand(#CHUNKS)] end
      local tail = rand(4) == 1 and ("data: " .. FAILING[rand(#FAILING)] .. "\n\n") or nil
      check(srv, client, body_of(list, tail), "mix " .. k .. ": " .. table.concat(list, "\n"))
    end
  end)

  it("agrees on the chunk and SSE literals of every spec file", function()
    local chunks, bodies = spec_literals()
    assert.is_true(#chunks + #bodies > 0)
    if LIGHT then check(srv, client, body_of(chunks), "the literal chunks") end
    for i, c in ipairs(LIGHT and {} or chunks) do
      check(srv, client, body_of({ c }), "literal chunk " .. i .. ": " .. c)
    end
    for i, b in ipairs(bodies) do check(srv, client, b, "literal stream " .. i .. ": " .. b) end
  end)

  it("run_tools' on_content and on_reasoning take it; a failed stream is nil, err", function()
    local ok_body = body_of({ CHUNKS[1], CHUNKS[6], CHUNKS[2], CHUNKS[10], CHUNKS[15] })
    srv:enqueue({ chunks = { ok_body }, headers = { ["Content-Type"] = "text/event-stream" } })
    local before, got = rows, {}
    local resp = assert(client:run_tools{ stream = true, messages = { { role = "user", content = "x" } }, tools = {},
      on_content = function(p) got[#got + 1] = "c:" .. p end,
      on_reasoning = function(p) got[#got + 1] = "r:" .. p end })
    assert.are.same({ "r:think ", "c:Hello", "r:r ", "c:c " }, got)
    assert.are.equal(5, rows - before)
    assert.are.equal("Helloc ", resp.choices[1].message.content)
    assert.are.equal("no ", resp.choices[1].message.refusal)
    -- cut off after two chunks: the error, not a raise
    srv:enqueue({ chunks = { body_of({ CHUNKS[2] }, "") }, truncate = true,
                  headers = { ["Content-Type"] = "text/event-stream" } })
    local r, err = client:run_tools{ stream = true, messages = { { role = "user", content = "x" } }, tools = {},
      on_content = function() end }
    assert.is_nil(r)
    assert.is_table(err)
    assert.is_string(err.kind)
  end)

  it("agrees on the mock model's streams", function()
    local tool = baseten.tool{ name = "get_weather", description = "Weather",
      parameters = { type = "object", properties = { city = { type = "string" } }, required = { "city" } },
      handler = function() return {} end }
    local reqs = {
      { model = "test/m", messages = { { role = "user", content = "Hi h\195\169llo \240\159\152\128" } } },
      { model = "test/m", messages = { { role = "user", content = "usage" } },
        stream_options = { include_usage = true } },
      { model = "test/reasoning", messages = { { role = "user", content = "Why?" } } },
      { model = "test/reasoning-alt", messages = { { role = "user", content = "Why?" } } },
      { model = "test/m", messages = { { role = "user", content = "Weather in Paris and Tokyo?" } },
        tools = { tool } },
    }
    local fast = 0
    for i, req in ipairs(reqs) do
      local got = {}
      for _, how in ipairs({ "chunks", "pieces", "text" }) do
        local s = assert(client:stream(req))
        local out = { pieces = {}, text = {} }
        if how == "chunks" then
          for chunk in s do
            for _, p in ipairs(stream_mod.pieces_of(chunk) or {}) do out.pieces[#out.pieces + 1] = p end
            out.text[#out.text + 1] = stream_mod.content_of(chunk)
          end
        elseif how == "pieces" then
          local before = rows
          for piece, kind in s:pieces() do
            out.pieces[#out.pieces + 1] = piece
            out.pieces[#out.pieces + 1] = kind
          end
          fast = fast + rows - before
        else
          for piece in s:text() do out.text[#out.text + 1] = piece end
        end
        out.final = assert(s:final())
        out.final.id = nil -- the mock numbers its responses
        got[how] = out
      end
      assert.are.same(got.chunks.pieces, got.pieces.pieces, "pieces differ: request " .. i)
      assert.are.same(got.chunks.text, got.text.text, "text() differs: request " .. i)
      assert.are.same(got.chunks.final, got.pieces.final, "final() differs: request " .. i)
      assert.are.same(got.chunks.final, got.text.final, "final() differs: request " .. i)
    end
    assert.is_true(fast > 20, "the fast path took only " .. fast .. " chunks")
  end)
end)
