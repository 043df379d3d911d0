-- Specs for baseten.json (csrc/json.c). Runs on Lua 5.1 to 5.4 and LuaJIT,
-- so strings use decimal escapes ("\240\159\152\128") rather than \x or \u{}.
local json = require("baseten").json

local has_integers = math.type ~= nil

-- Deep equality that also tells the JSON array mark apart from none.
local function same(a, b)
  if type(a) ~= type(b) then return false end
  if type(a) ~= "table" then return a == b end
  if json.is_array(a) ~= json.is_array(b) then return false end
  for k, v in pairs(a) do
    if not same(v, b[k]) then return false end
  end
  for k in pairs(b) do
    if a[k] == nil then return false end
  end
  return true
end

local function roundtrip(v)
  return json.decode(json.encode(v))
end

local function nested(depth, open, close)
  return string.rep(open, depth) .. string.rep(close, depth)
end

describe("baseten.json", function()
  describe("numbers", function()
    it("keeps integers integral on the wire", function()
      local s = json.encode({ max_tokens = 100 })
      assert.are.equal('{"max_tokens":100}', s)
      assert.is_nil(s:find("100.0", 1, true))
      assert.is_nil(s:find("e+", 1, true))
      assert.are.equal("-3", json.encode(-3))
      assert.are.equal("0", json.encode(0))
      assert.are.equal("1700000000", json.encode(1700000000))
    end)

    it("prints integral floats without fraction or exponent", function()
      assert.are.equal("100", json.encode(100.0))
      assert.are.equal("-3", json.encode(-3.0))
      assert.are.equal("0", json.encode(-0.0))
      assert.are.equal("4096", json.encode(2 ^ 12))
    end)

    it("prints floats with the shortest text that reads back exactly", function()
      assert.are.equal("0.1", json.encode(0.1))
      assert.are.equal("-0.5", json.encode(-0.5))
      assert.are.equal("0.7", json.encode(0.7))
      assert.are.equal("1e+300", json.encode(1e300))
      assert.are.equal("0.30000000000000004", json.encode(0.1 + 0.2))
    end)

    it("round-trips floats", function()
      for _, x in ipairs({ 0.1, 1e300, -0.5, 2 ^ 53, 1 / 3, -1e-300, 5e-324, 1.7976931348623157e308, 123456.789 }) do
        assert.are.equal(x, json.decode(json.encode(x)))
      end
    end)

    it("decodes integers within 2^53 as integers, others as floats", function()
      assert.are.equal(100, json.decode("100"))
      assert.are.equal(-42, json.decode("-42"))
      assert.are.equal(0.5, json.decode("0.5"))
      assert.are.equal(1e300, json.decode("1e300"))
      if has_integers then
        assert.are.equal("integer", math.type(json.decode("100")))
        assert.are.equal("integer", math.type(json.decode("9007199254740992")))
        assert.are.equal("float", math.type(json.decode("9007199254740994")))
        assert.are.equal("float", math.type(json.decode("0.5")))
        assert.are.equal("integer", math.type(json.decode('{"n":7}').n))
      end
    end)

    if has_integers then
      it("prints Lua integers exactly", function()
        assert.are.equal("9223372036854775807", json.encode(math.maxinteger))
        assert.are.equal("-9223372036854775808", json.encode(math.mininteger))
      end)
    end

    it("refuses NaN and infinities", function()
      assert.has_error(function() json.encode(0 / 0) end, "cannot encode NaN/inf")
      assert.has_error(function() json.encode(math.huge) end, "cannot encode NaN/inf")
      assert.has_error(function() json.encode({ x = -math.huge }) end, "cannot encode NaN/inf")
    end)

    it("rejects numbers JSON does not allow", function()
      local bad = { "01", "1.", "-.5", ".5", "+1", "1e", "1e+", "-", "0x10", "1.5e3.2", "Infinity", "NaN", "--1" }
      for _, s in ipairs(bad) do
        local v, err = json.decode(s)
        assert.is_nil(v, s)
        assert.is_string(err, s)
      end
      assert.are.equal(-0.5, json.decode("-5e-1"))
      assert.are.equal(1500, json.decode("1.5E+3"))
    end)

    it("reports numbers too large for a double", function()
      local v, err = json.decode("[1e999]")
      assert.is_nil(v)
      assert.matches("out of range", err)
    end)

    it("writes a '.' whatever the C locale", function()
      local old = os.setlocale(nil, "numeric")
      local ok = os.setlocale("de_DE.UTF-8", "numeric") or os.setlocale("fr_FR.UTF-8", "numeric")
      if not ok then
        pending("no locale with a ',' decimal point installed")
        return
      end
      local enc, dec = json.encode(0.5), json.decode("[0.25]")
      os.setlocale(old, "numeric")
      assert.are.equal("0.5", enc)
      assert.are.equal(0.25, dec[1])
    end)
  end)

  describe("tables", function()
    it("re-encodes decoded [] as [] and {} as {}", function()
      assert.are.equal("[]", json.encode(json.decode("[]")))
      assert.are.equal("{}", json.encode(json.decode("{}")))
      assert.are.equal("{}", json.encode({}))
      local v = roundtrip(json.decode('{"a":[],"b":{}}'))
      assert.are.equal("[]", json.encode(v.a))
      assert.are.equal("{}", json.encode(v.b))
      assert.are.equal("[[],{}]", json.encode(json.decode("[[],{}]")))
    end)

    it("marks every decoded array, and no object", function()
      local v = json.decode('{"a":[1,[]],"b":{}}')
      assert.is_true(json.is_array(v.a))
      assert.is_true(json.is_array(v.a[2]))
      assert.is_false(json.is_array(v))
      assert.is_nil(getmetatable(v))
      assert.is_nil(getmetatable(v.b))
      assert.are.equal(json.array_mt, getmetatable(v.a))
    end)

    it("encodes sequences as arrays and string-keyed tables as objects", function()
      assert.are.equal("[1,2,3]", json.encode({ 1, 2, 3 }))
      assert.are.equal('{"a":1}', json.encode({ a = 1 }))
      assert.are.equal('[{"a":[true,false]}]', json.encode({ { a = { true, false } } }))
    end)

    it("encodes a sequence filled out of order", function()
      local t = {}
      for i = 50, 1, -1 do t[i] = i end
      local expect = {}
      for i = 1, 50 do expect[i] = tostring(i) end
      assert.are.equal("[" .. table.concat(expect, ",") .. "]", json.encode(t))
    end)

    it("refuses mixed and sparse tables, naming the key", function()
      assert.has_error(function() json.encode({ 1, 2, x = 3 }) end)
      assert.has_error(function() json.encode({ [1] = 1, [3] = 3 }) end,
        "cannot encode table with mixed or sparse keys (sparse array: 2 values, largest index 3)")
      assert.has_error(function() json.encode({ [0] = 1 }) end)
      assert.has_error(function() json.encode({ [-1] = 1 }) end)
      assert.has_error(function() json.encode({ [1.5] = 1 }) end,
        "cannot encode table with mixed or sparse keys (number key 1.5 is not a positive integer)")
      assert.has_error(function() json.encode({ [true] = 1 }) end,
        "cannot encode table with mixed or sparse keys (key of type boolean)")
      assert.has_error(function() json.encode({ x = 1, [{}] = 1 }) end,
        "cannot encode table with mixed or sparse keys (key of type table)")
      local ok, err = pcall(json.encode, { x = 1, y = 2, z = 3, 4 })
      assert.is_false(ok)
      assert.matches("mixed or sparse keys", err)
    end)

    it("obeys the array and object marks", function()
      local a = json.array()
      assert.is_true(json.is_array(a))
      assert.are.equal("[]", json.encode(a))
      assert.are.equal("{}", json.encode(json.object()))
      assert.are.equal("{}", json.encode(json.object({})))
      local t = { 1, 2 }
      assert.are.equal(t, json.array(t))
      assert.are.equal("[1,2]", json.encode(t))
      assert.are.equal('{"1":"a"}', json.encode(json.object({ "a" })))
      assert.are.equal('{"7":true}', json.encode(json.object({ [7] = true })))
      assert.has_error(function() json.encode(json.object({ [true] = 1 })) end,
        "cannot encode object key of type boolean")
      assert.has_error(function() json.array(42) end)
      assert.has_error(function() json.object("x") end)
      assert.is_false(json.is_array({}))
      assert.is_false(json.is_array("x"))
    end)

    it("keeps the marks in the registry under their names", function()
      local reg = debug.getregistry()
      assert.are.equal(json.array_mt, reg["baseten.json.array"])
      assert.are.equal(json.object_mt, reg["baseten.json.object"])
      assert.are.equal("array", json.array_mt.__jsontype)
      assert.are.equal("object", json.object_mt.__jsontype)
      assert.are.equal("baseten.json.array", json.array_mt.__name)
      assert.are.equal("baseten.json.object", json.object_mt.__name)
    end)

    it("obeys __jsontype in a foreign metatable", function()
      assert.are.equal("[]", json.encode(setmetatable({}, { __jsontype = "array" })))
      assert.are.equal("{}", json.encode(setmetatable({}, { __jsontype = "object" })))
      local mt = { __jsontype = "array", __index = function() return "ignored" end }
      assert.are.equal("[1]", json.encode(setmetatable({ 1 }, mt)))
    end)

    it("encodes what __tojson returns instead of the value", function()
      local Tool = {}
      Tool.__tojson = function(t) return { type = "function", ["function"] = { name = t.name } } end
      local tool = setmetatable({ name = "get_weather", handler = print }, Tool)
      local enc = json.encode({ tool })
      assert.is_nil(enc:find("handler", 1, true))
      local wire = json.array({ { type = "function", ["function"] = { name = "get_weather" } } })
      assert.is_truthy(same(json.decode(enc), wire))
      local s = json.encode(setmetatable({}, { __tojson = function() return "text" end }))
      assert.are.equal('"text"', s)
      local inner = setmetatable({}, { __tojson = function() return json.encode({ 1 }) end })
      assert.are.equal('"[1]"', json.encode(inner))
    end)

    it("refuses a __tojson that returns its own value", function()
      local t = setmetatable({}, {})
      getmetatable(t).__tojson = function(self) return self end
      assert.has_error(function() json.encode(t) end, "cannot encode cyclic table")
    end)

    it("propagates an error raised by __tojson", function()
      local t = setmetatable({}, { __tojson = function() error("boom", 0) end })
      assert.has_error(function() json.encode({ t }) end, "boom")
    end)

    it("refuses cycles", function()
      local t = {}
      t.self = t
      assert.has_error(function() json.encode(t) end, "cannot encode cyclic table")
      local a = { {} }
      a[1][1] = a
      assert.has_error(function() json.encode(a) end, "cannot encode cyclic table")
    end)

    it("allows the same table twice when it is not its own ancestor", function()
      local shared = { 1 }
      assert.are.equal('[[1],[1]]', json.encode({ shared, shared }))
    end)

    it("encodes 1000 levels and refuses 1001", function()
      local t = {}
      for _ = 2, 1000 do t = { t } end
      assert.are.equal(string.rep("[", 999) .. "{}" .. string.rep("]", 999), json.encode(t))
      assert.has_error(function() json.encode({ t }) end, "nesting too deep")
    end)

    it("decodes 1000 levels and returns nil, err beyond", function()
      assert.is_table(json.decode(nested(1000, "[", "]")))
      local v, err = json.decode(nested(1001, "[", "]"))
      assert.is_nil(v)
      assert.are.equal("nesting too deep", err)
      v, err = json.decode(string.rep("[", 100000))
      assert.is_nil(v)
      assert.are.equal("nesting too deep", err)
      v, err = json.decode(string.rep('{"a":', 100000))
      assert.is_nil(v)
      assert.are.equal("nesting too deep", err)
    end)

    it("refuses functions, threads and userdata", function()
      assert.has_error(function() json.encode(print) end, "cannot encode value of type function")
      assert.has_error(function() json.encode({ f = print }) end)
      local co = coroutine.create(function() end)
      assert.has_error(function() json.encode(co) end, "cannot encode value of type thread")
      assert.has_error(function() json.encode(io.stdout) end, "cannot encode value of type userdata")
    end)

    it("keeps working after an encode raised", function()
      for _ = 1, 3 do
        assert.has_error(function() json.encode({ 1, { f = print } }) end)
        assert.are.equal('{"ok":true}', json.encode({ ok = true }))
      end
    end)
  end)

  describe("null", function()
    it("is a lightuserdata both ways", function()
      assert.are.equal("userdata", type(json.null))
      assert.are.equal(json.null, json.decode("null"))
      assert.are.equal("null", json.encode(json.null))
      assert.are.equal("null", json.encode(nil))
      local v = json.decode('{"a":null,"b":[null,1]}')
      assert.are.equal(json.null, v.a)
      assert.are.equal(json.null, v.b[1])
      assert.are.equal('[null,1]', json.encode(v.b))
    end)

    it("requires an argument to encode", function()
      assert.has_error(function() json.encode() end)
    end)
  end)

  describe("strings", function()
    it("escapes quotes, backslashes and control characters", function()
      assert.are.equal([["a\"b\\c"]], json.encode('a"b\\c'))
      assert.are.equal([["\n\r\t\b\f"]], json.encode("\n\r\t\b\f"))
      assert.are.equal([["\u0000\u0001\u001f"]], json.encode("\0\1\31"))
      assert.are.equal('"/\127"', json.encode("/\127"))
      local all = {}
      for i = 0, 127 do all[#all + 1] = string.char(i) end
      assert.are.equal(table.concat(all), json.decode(json.encode(table.concat(all))))
    end)

    it("passes UTF-8 through raw and decodes \\u escapes", function()
      local s = "caf\195\169 \226\130\172 \240\159\152\128"
      assert.are.equal('"' .. s .. '"', json.encode(s))
      assert.are.equal(s, json.decode('"' .. s .. '"'))
      assert.are.equal("caf\195\169", json.decode('"caf\\u00e9"'))
      assert.are.equal("\226\130\172", json.decode('"\\u20AC"'))
      assert.are.equal("\240\159\152\128", json.decode('"\\ud83d\\ude00"'))
      assert.are.equal("\244\143\191\191", json.decode('"\\udbff\\udfff"'))
      assert.are.equal("/", json.decode('"\\/"'))
    end)

    it("rejects lone surrogates and bad escapes", function()
      for _, s in ipairs({ '"\\ud83d"', '"\\ude00"', '"\\ud83d\\u0041"', '"\\ud83dx"', '"\\uZZZZ"', '"\\u12"',
        '"\\x41"', '"\\a"', '"abc', '"\\' }) do
        local v, err = json.decode(s)
        assert.is_nil(v, s)
        assert.is_string(err, s)
      end
      assert.matches("lone surrogate", select(2, json.decode('"\\ude00"')))
    end)

    it("rejects raw control characters inside strings", function()
      local v, err = json.decode('"a\nb"')
      assert.is_nil(v)
      assert.matches("control character", err)
    end)

    it("keeps \\u0000 instead of cutting the string short", function()
      local v = json.decode('{"k\\u0000":"a\\u0000b\\u0000","n":"\\\\u0000"}')
      assert.are.equal("a\0b\0", v["k\0"])
      assert.are.equal("\\u0000", v.n)
      assert.are.equal('"a\\u0000b"', json.encode("a\0b"))
      assert.are.equal("a\0b", json.decode(json.encode("a\0b")))
    end)

    local bad_utf8 = {
      { "\192\175", "overlong /" },
      { "\224\128\175", "overlong 3-byte" },
      { "\240\128\128\175", "overlong 4-byte" },
      { "\237\160\128", "surrogate U+D800" },
      { "\237\191\191", "surrogate U+DFFF" },
      { "\244\144\128\128", "U+110000" },
      { "\248\136\128\128\128", "5-byte form" },
      { "\226\130", "truncated" },
      { "a\128b", "lone continuation" },
      { "\255", "0xFF" },
    }

    it("refuses invalid UTF-8 on encode", function()
      for _, case in ipairs(bad_utf8) do
        local ok, err = pcall(json.encode, { content = case[1] })
        assert.is_false(ok, case[2])
        assert.matches("invalid UTF%-8", err)
      end
      assert.has_error(function() json.encode({ ["\255"] = 1 }) end)
    end)

    it("refuses invalid UTF-8 on decode", function()
      for _, case in ipairs(bad_utf8) do
        local v, err = json.decode('["' .. case[1] .. '"]')
        assert.is_nil(v, case[2])
        assert.matches("invalid UTF%-8", err)
      end
    end)

    it("accepts the edges of valid UTF-8", function()
      for _, s in ipairs({ "\194\128", "\223\191", "\224\160\128", "\237\159\191", "\238\128\128",
        "\239\191\191", "\240\144\128\128", "\244\143\191\191" }) do
        assert.are.equal(s, json.decode(json.encode(s)))
      end
    end)

    it("handles 10 MB strings", function()
      local big = string.rep("abcdefghij", 1024 * 1024)
      local enc = json.encode({ content = big })
      assert.are.equal(#big + 14, #enc)
      assert.are.equal(big, json.decode(enc).content)
      local mixed = string.rep('x"\n\226\130\172', 2 * 1024 * 1024)
      assert.are.equal(mixed, json.decode(json.encode(mixed)))
      assert.are.equal(string.rep("\226\130\172", 1000), json.decode('"' .. string.rep("\\u20ac", 1000) .. '"'))
    end)
  end)

  describe("decode", function()
    it("returns nil and a message for malformed text", function()
      local bad = { "", "   ", "[1,2", "[1,]", '{"a"}', "{a:1}", "tru", "nul", "[1 2]", "'x'", '{"a":1,}' }
      for _, s in ipairs(bad) do
        local v, err = json.decode(s)
        assert.is_nil(v, s)
        assert.is_string(err, s)
      end
    end)

    it("rejects trailing garbage but allows trailing whitespace", function()
      local v, err = json.decode("[1] x")
      assert.is_nil(v)
      assert.matches("trailing garbage", err)
      assert.is_nil((json.decode("{}{}")))
      assert.is_nil((json.decode("1 2")))
      assert.is_nil((json.decode("[1]\0")))
      assert.are.same(1, json.decode(" \t\r\n[1] \n")[1])
    end)

    it("rejects non-JSON whitespace and bytes outside strings", function()
      assert.is_nil((json.decode("\f[1]")))
      assert.is_nil((json.decode("[1]\v")))
      assert.is_nil((json.decode("\239\187\191[1]")))
    end)

    it("raises only when the argument is not a string", function()
      assert.has_error(function() json.decode(nil) end)
      assert.has_error(function() json.decode(42) end)
      assert.has_error(function() json.decode({}) end)
    end)

    it("keeps the last of repeated names", function()
      assert.are.equal(2, json.decode('{"a":1,"a":2}').a)
    end)

    it("decodes scalars at the top level", function()
      assert.is_true(json.decode("true"))
      assert.is_false(json.decode(" false "))
      assert.are.equal("x", json.decode('"x"'))
      assert.are.equal(-1.25, json.decode("-1.25"))
    end)
  end)

  describe("OpenAI messages", function()
    local response = [[{
  "id": "chatcmpl-abc123",
  "object": "chat.completion",
  "created": 1700000000,
  "model": "meta-llama/Llama-3.3-70B-Instruct",
  "choices": [{
    "index": 0,
    "message": {
      "role": "assistant",
      "content": null,
      "tool_calls": [{
        "id": "call_1",
        "type": "function",
        "function": {"name": "get_weather", "arguments": "{\"city\": \"Z\u00fcrich\", \"unit\": \"c\"}"}
      }]
    },
    "logprobs": null,
    "finish_reason": "tool_calls"
  }],
  "usage": {"prompt_tokens": 82, "completion_tokens": 17, "total_tokens": 99},
  "system_fingerprint": ""
}]]

    it("decodes a chat completion with tool calls", function()
      local v = assert(json.decode(response))
      local msg = v.choices[1].message
      assert.are.equal(json.null, msg.content)
      assert.are.equal("get_weather", msg.tool_calls[1]["function"].name)
      local args = json.decode(msg.tool_calls[1]["function"].arguments)
      assert.are.equal("Z\195\188rich", args.city)
      assert.are.equal(99, v.usage.total_tokens)
      assert.are.equal(1700000000, v.created)
    end)

    it("round-trips it unchanged", function()
      local v = json.decode(response)
      local enc = json.encode(v)
      assert.is_truthy(enc:find('"content":null', 1, true))
      assert.is_truthy(enc:find('"total_tokens":99', 1, true))
      assert.is_truthy(enc:find('"created":1700000000', 1, true))
      assert.is_truthy(same(v, json.decode(enc)))
      assert.are.equal(#enc, #json.encode(json.decode(enc)))
    end)

    it("decodes a streamed chunk", function()
      local chunk = '{"id":"c","object":"chat.completion.chunk","created":1,"model":"m",'
        .. '"choices":[{"index":0,"delta":{"content":"Hel"},"finish_reason":null}]}'
      local v = json.decode(chunk)
      assert.are.equal("Hel", v.choices[1].delta.content)
      assert.are.equal(json.null, v.choices[1].finish_reason)
    end)

    it("encodes a request body", function()
      local body = {
        model = "m",
        max_tokens = 100,
        temperature = 0.2,
        stream = true,
        messages = { { role = "user", content = "hi" } },
        tools = json.array(),
      }
      local v = json.decode(json.encode(body))
      assert.is_truthy(same(roundtrip(body), v))
      assert.are.equal(100, v.max_tokens)
      assert.are.equal(0.2, v.temperature)
      assert.are.equal("[]", json.encode(v.tools))
    end)
  end)
end)
