-- Issue 17, part 1: a UTF-16 surrogate pair split across two stream chunks
-- (JavaScript servers cut text by UTF-16 units) must not kill the stream;
-- joined text gets the character back, a half without its partner becomes
-- U+FFFD, and every chunk handed out is valid UTF-8. The mock models
-- "test/utf16-split-SIZE-OFFSET" cut their content (and tool arguments)
-- every SIZE UTF-16 units (spec/support/server.py, utf16_pieces).
local baseten = require("baseten")
local fixture = require("spec.support.fixture")

local json = baseten.json
local FFFD = "\239\191\189"

-- Strict UTF-8: no surrogates, no overlong forms, nothing past U+10FFFF.
local function valid_utf8(s)
  local i, n = 1, #s
  while i <= n do
    local c = s:byte(i)
    local len, lo, hi
    lo, hi = 0x80, 0xBF
    if c < 0x80 then
      len = 1
    elseif c >= 0xC2 and c <= 0xDF then
      len = 2
    elseif c >= 0xE0 and c <= 0xEF then
      len = 3
      if c == 0xE0 then lo = 0xA0 elseif c == 0xED then hi = 0x9F end
    elseif c >= 0xF0 and c <= 0xF4 then
      len = 4
      if c == 0xF0 then lo = 0x90 elseif c == 0xF4 then hi = 0x8F end
    else
      return false, i
    end
    for j = 1, len - 1 do
      local b = s:byte(i + j)
      if not b then return false, i end
      if j == 1 and (b < lo or b > hi) then return false, i end
      if j > 1 and (b < 0x80 or b > 0xBF) then return false, i end
    end
    i = i + len
  end
  return true
end

-- Every string in a value (keys too) is valid UTF-8.
local function all_utf8(v, path)
  path = path or "$"
  if type(v) == "string" then
    local ok, at = valid_utf8(v)
    assert(ok, ("invalid UTF-8 at %s, byte %s: %q"):format(path, tostring(at), v))
  elseif type(v) == "table" then
    for k, x in pairs(v) do
      all_utf8(k, path .. "[key]")
      all_utf8(x, path .. "." .. tostring(k))
    end
  end
end

local function content_of(chunk)
  local c = chunk.choices and chunk.choices[1]
  return c and c.delta and c.delta.content or ""
end

-- 😀, 👍🏽 (two astral characters), 𝄞, CJK Extension B (𠀀 𠜎 𪚥), a ZWJ
-- family, BMP text between them, and an astral character at the very end.
local USER = "😀 abc 👍🏽x𝄞 𠀀𠜎𪚥 é—x 👨‍👩‍👧 end🎉"
local WANT = "Hello from the local test server. You said: " .. USER
local TOOL_RESULT = "🎉 party 𝄞 at 𠜎"

local CUTS = {}
for size = 1, 4 do
  for offset = 0, size - 1 do CUTS[#CUTS + 1] = { size, offset } end
end

describe("split surrogate pairs", function()
  local srv, client
  fixture.client({ api_key = false, model = "m", max_retries = 0 }, function(s, c) srv, client = s, c end)

  it("the server's split models do send each half alone, escaped", function()
    local s = assert(client:stream{ model = "test/utf16-split-1-0", messages = { { role = "user", content = "😀" } } })
    local t = s._t
    while t:state() == "running" do require("baseten.runtime").of(client):perform(0.05) end
    local raw = t:body() -- the bytes as they came, before any decoding
    s:close()
    assert.truthy(raw:find('"content":"\\ud83d"', 1, true), raw)
    assert.truthy(raw:find('"content":"\\ude00"', 1, true), raw)
  end)

  for _, cut in ipairs(CUTS) do
    local model = ("test/utf16-split-%d-%d"):format(cut[1], cut[2])
    local req = function(extra)
      local r = { model = model, messages = { { role = "user", content = USER } } }
      for k, v in pairs(extra or {}) do r[k] = v end
      return r
    end

    describe(model, function()
      it("for chunk in stream: every chunk is valid UTF-8, joined they are the text", function()
        local pieces = {}
        local s = assert(client:stream(req()))
        for chunk in s do
          all_utf8(chunk)
          pieces[#pieces + 1] = content_of(chunk)
        end
        assert.equal(WANT, table.concat(pieces))
        assert.equal(WANT, s:snapshot().choices[1].message.content)
      end)

      it("text() and final()", function()
        local pieces = {}
        for piece in assert(client:stream(req())):text() do
          all_utf8(piece)
          pieces[#pieces + 1] = piece
        end
        assert.equal(WANT, table.concat(pieces))
        local final = assert(assert(client:stream(req())):final())
        assert.equal(WANT, final.choices[1].message.content) -- byte for byte
      end)

      it("non-blocking start: on_chunk and on_done", function()
        local pieces, done, failed = {}, nil, nil
        client:start(req({ stream = true }), {
          on_chunk = function(chunk)
            all_utf8(chunk)
            pieces[#pieces + 1] = content_of(chunk)
          end,
          on_done = function(resp, err) done, failed = resp, err end,
        })
        client:drain(20)
        assert.is_nil(failed)
        assert.equal(WANT, table.concat(pieces))
        assert.equal(WANT, done.choices[1].message.content)
      end)

      it("run_tools streaming: on_content and the answer", function()
        local tool = baseten.tool{ name = "lookup", description = "d",
          parameters = { type = "object", properties = { what = { type = "string" } } },
          handler = function() return TOOL_RESULT end }
        local pieces = {}
        local resp, messages = client:run_tools(req({ tools = { tool }, stream = true,
          on_content = function(piece)
            all_utf8(piece)
            pieces[#pieces + 1] = piece
          end }))
        assert.truthy(resp, messages)
        local answer = "Here is what the tools returned: " .. TOOL_RESULT
        assert.equal(answer, resp.choices[1].message.content)
        assert.equal(answer, table.concat(pieces))
        assert.equal('{"what":"example"}', messages[2].tool_calls[1]["function"].arguments)
      end)
    end)
  end

  describe("scripted streams", function()
    local function ev(s) return "data: " .. s .. "\n\n" end
    local function delta(d, extra)
      return ev('{"id":"c","object":"chat.completion.chunk","choices":[{"index":0,"delta":' .. d
        .. (extra or "") .. '}]}')
    end
    local FINISH = ev('{"id":"c","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}')
    local function run(chunks)
      srv:enqueue({ chunks = chunks })
      local s = assert(client:stream{ messages = { { role = "user", content = "x" } } })
      local got = {}
      while true do
        local chunk, err = s:next()
        if err then return got, nil, err, s end
        if chunk == nil then break end
        all_utf8(chunk)
        got[#got + 1] = chunk
      end
      return got, s:snapshot(), nil, s
    end

    it("the issue's example: the first chunk carries the whole emoji, the second the rest", function()
      local got, final = run({ delta('{"content":"abcd\\ud83d"}'), delta('{"content":"\\ude00\\u00e9\\u2014x"}'),
                               FINISH, "data: [DONE]\n\n" })
      assert.equal("abcd😀", content_of(got[1]))
      assert.equal("é—x", content_of(got[2]))
      assert.equal("abcd😀é—x", final.choices[1].message.content)
    end)

    it("a high half at the very end of the stream becomes U+FFFD ([DONE], the body's end, a last event)", function()
      for _, tail in ipairs({ { FINISH, "data: [DONE]\n\n" }, { "data: [DONE]\n\n" }, {} }) do
        local chunks = { delta('{"content":"abcd"}'), delta('{"content":"x\\ud83d"}') }
        for _, t in ipairs(tail) do chunks[#chunks + 1] = t end
        local got, final, err = run(chunks)
        assert.is_nil(err)
        assert.equal("x" .. FFFD, content_of(got[2]))
        assert.equal("abcdx" .. FFFD, final.choices[1].message.content)
      end
      -- the last event without its blank line, decoded at the end
      srv:enqueue({ chunks = { delta('{"content":"ab"}'),
        'data: {"id":"c","choices":[{"index":0,"delta":{"content":"c\\ud83d"}}]}' } })
      local final = assert(assert(client:stream{ messages = { { role = "user", content = "x" } } }):final())
      assert.equal("abc" .. FFFD, final.choices[1].message.content)
    end)

    it("a half alone in its delta, and two splits in a row", function()
      local got, final = run({ delta('{"content":"\\ud83d"}'), delta('{"content":"\\ude00\\ud83d"}'),
                               delta('{"content":"\\ude00"}'), delta('{"content":"!"}'), "data: [DONE]\n\n" })
      assert.equal("😀😀!", final.choices[1].message.content)
      assert.equal(4, #got)
      assert.equal("😀", content_of(got[1]))
      assert.equal("😀", content_of(got[2]))
      assert.equal("", content_of(got[3]))
    end)

    it("halves without partners: a low half first, halves inside a string, a wrong order", function()
      local _, final = run({ delta('{"content":"\\ude00a\\ud83db\\udc00"}'), delta('{"content":"c\\ud83d"}'),
                             delta('{"content":"\\ud83d"}'), delta('{"content":"d"}'), "data: [DONE]\n\n" })
      assert.equal(FFFD .. "a" .. FFFD .. "b" .. FFFD .. "c" .. FFFD .. FFFD .. "d", final.choices[1].message.content)
    end)

    it("pairs only within the same field: content then refusal do not pair", function()
      local _, final = run({ delta('{"content":"a\\ud83d"}'), delta('{"refusal":"\\ude00b"}'), "data: [DONE]\n\n" })
      assert.equal("a" .. FFFD, final.choices[1].message.content)
      assert.equal(FFFD .. "b", final.choices[1].message.refusal)
    end)

    it("reasoning_content, reasoning, refusal and tool-call arguments pair too", function()
      local _, final = run({
        delta('{"reasoning_content":"think\\ud83e"}'), delta('{"reasoning_content":"\\udd14 done"}'),
        delta('{"refusal":"no\\ud83d"}'), delta('{"refusal":"\\ude45"}'),
        delta('{"tool_calls":[{"index":0,"id":"call_1","type":"function","function":{"name":"f","arguments":"{\\"a\\":\\"\\ud840"}}]}'),
        delta('{"tool_calls":[{"index":0,"function":{"arguments":"\\udc00\\"}"}}]}'),
        "data: [DONE]\n\n" })
      local msg = final.choices[1].message
      assert.equal("think🤔 done", msg.reasoning_content)
      assert.equal("no🙅", msg.refusal)
      assert.equal('{"a":"𠀀"}', msg.tool_calls[1]["function"].arguments)
    end)

    it("so does the other spelling, reasoning", function()
      local got, final = run({ delta('{"reasoning":"r\\ud834"}'), delta('{"reasoning":"\\udd1e"}'), "data: [DONE]\n\n" })
      assert.equal("r𝄞", got[1].choices[1].delta.reasoning)
      local msg = final.choices[1].message
      assert.equal("r𝄞", msg.reasoning or msg.reasoning_content) -- (one field, whichever the accumulator keeps)
    end)

    it("two choices interleaved: each pairs with its own next delta, chunks keep their order", function()
      local function choice(i, content)
        return ev('{"id":"c","choices":[{"index":' .. i .. ',"delta":{"content":"' .. content .. '"}}]}')
      end
      local got, final = run({ choice(0, "a\\ud83d"), choice(1, "b\\ud834"), choice(0, "\\ude00c"),
                               choice(1, "\\udd1ed"), "data: [DONE]\n\n" })
      assert.equal("a😀c", final.choices[1].message.content)
      assert.equal("b𝄞d", final.choices[2].message.content)
      assert.same({ 0, 1, 0, 1 }, { got[1].choices[1].index, got[2].choices[1].index,
                                    got[3].choices[1].index, got[4].choices[1].index })
    end)

    it("a lone half outside the text fields becomes U+FFFD", function()
      local got = run({ ev('{"id":"c\\ud800","choices":[{"index":0,"delta":{"content":"a"}}],"x":{"\\udc00":1}}'),
                        "data: [DONE]\n\n" })
      assert.equal("c" .. FFFD, got[1].id)
      assert.equal(1, got[1].x[FFFD])
    end)

    it("a failure while a chunk is held: err.partial has the text, the half as U+FFFD", function()
      local _, _, err = run({ delta('{"content":"abc\\ud83d"}'), { b64 = "" } , "data: {not json\n\n" })
      assert.truthy(err)
      assert.equal("abc" .. FFFD, err.partial.choices[1].message.content)
    end)

    it("closed while a chunk is held: snapshot() has it", function()
      srv:enqueue({ chunks = { delta('{"content":"abc\\ud83d"}') }, stall = 5 })
      local s = assert(client:stream{ messages = { { role = "user", content = "x" } } })
      local deadline = os.time() + 10
      while not s._q and os.time() < deadline do
        assert.is_false(s:read_buffered())
        require("baseten.runtime").of(client):perform(0.05)
      end
      s:close()
      assert.equal("abc" .. FFFD, s:snapshot().choices[1].message.content)
    end)

    it("whole bodies and json.decode stay strict", function()
      srv:enqueue({ body = '{"id":"c","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":"a\\ud83d"}}]}' })
      local resp, err = client:chat{ messages = { { role = "user", content = "x" } } }
      assert.is_nil(resp)
      assert.equal("invalid_response", err.kind)
      assert.truthy(err.message:find("lone surrogate", 1, true))
      local v, why = json.decode('"a\\ud83d"')
      assert.is_nil(v)
      assert.truthy(why:find("lone surrogate", 1, true))
    end)
  end)
end)
