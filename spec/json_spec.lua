-- Specs for baseten.json (csrc/json_enc.c, json_dec.c, json_scan.c). Runs on Lua 5.1 to 5.4 and LuaJIT,
-- so strings use decimal escapes ("\240\159\152\128") rather than \x or \u{}.
local json = require("baseten").json
local util = require("spec.support.util")

local has_integers = math.type ~= nil

-- Deep equality that also tells the JSON array mark apart from none.
local same = util.json_same

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

    it("decodes integer literals as integers, fractions as floats", function()
      assert.are.equal(100, json.decode("100"))
      assert.are.equal(-42, json.decode("-42"))
      assert.are.equal(0.5, json.decode("0.5"))
      assert.are.equal(1e300, json.decode("1e300"))
      if has_integers then
        assert.are.equal("integer", math.type(json.decode("100")))
        assert.are.equal("integer", math.type(json.decode("9007199254740992")))
        assert.are.equal("integer", math.type(json.decode("9007199254740994")))
        assert.are.equal("float", math.type(json.decode("0.5")))
        assert.are.equal("integer", math.type(json.decode('{"n":7}').n))
      end
    end)

    if has_integers then
      -- failed before: integers past 2^53 went through strtod and came back rounded
      it("decodes every integer literal that fits in 64 bits exactly (5.3+)", function()
        for _, s in ipairs({ "9007199254740993", "9223372036854775807", "-9223372036854775808",
          "-9007199254740993", "1234567890123456789", "0", "-1" }) do
          local v = json.decode(s)
          assert.are.equal("integer", math.type(v), s)
          assert.are.equal(s, json.encode(v))
          assert.are.equal("[" .. s .. "]", json.encode(json.decode("[" .. s .. "]")))
        end
        assert.are.equal(math.maxinteger, json.decode("9223372036854775807"))
        assert.are.equal(math.mininteger, json.decode("-9223372036854775808"))
        assert.are.equal(9007199254740993, json.decode('{"n":9007199254740993}').n)
      end)

      it("decodes larger integers as floats (5.3+)", function()
        for _, s in ipairs({ "9223372036854775808", "-9223372036854775809", "18446744073709551616",
          "123456789012345678901234567890" }) do
          local v = json.decode(s)
          assert.are.equal("float", math.type(v), s)
          assert.are.equal(tonumber(s), v, s)
        end
      end)

      -- failed before (make fuzz found it): 9223372036854776.0 went out as
      -- "9223372036854776" and came back an integer
      it("keeps an integral float past 2^53 a float through encode and decode (5.3+)", function()
        for _, d in ipairs({ 9223372036854776.0, 2.0 ^ 53 + 2, -(2.0 ^ 60), 2.0 ^ 63 }) do
          local text = json.encode(d)
          local back = json.decode(text)
          assert.are.equal("float", math.type(back), text)
          assert.are.equal(d, back, text)
        end
        assert.are.equal("9223372036854776.0", json.encode(9223372036854776.0))
        assert.are.equal("[[9223372036854776.0],{}]", json.encode(json.decode("[[9223372036854775.07],{}]")))
      end)
    else
      it("decodes numbers as doubles (5.1, LuaJIT)", function()
        assert.are.equal(2 ^ 53, json.decode("9007199254740993"))
        assert.are.equal(2 ^ 63, json.decode("9223372036854775807"))
        assert.are.equal(-2 ^ 63, json.decode("-9223372036854775808"))
        assert.are.equal(123, json.decode("123"))
      end)
    end

    -- failed before: a 63-character limit refused valid numbers ("number too long")
    it("accepts numbers of any length", function()
      local n81 = "1" .. string.rep("0", 80)
      assert.are.equal(81, #n81)
      assert.are.equal(1e80, json.decode(n81))
      assert.are.equal(-1e80, json.decode("-" .. n81))
      assert.are.equal(1e80, json.decode("[" .. n81 .. "]")[1])
      local frac = "0." .. string.rep("3", 100)
      assert.are.equal(tonumber(frac), json.decode(frac))
      assert.are.equal(1e5, json.decode("1e" .. string.rep("0", 100) .. "5"))
      assert.are.equal(1.5, json.decode("1.5" .. string.rep("0", 5000)))
      assert.are.equal(tonumber("1" .. string.rep("0", 300)), json.decode("1" .. string.rep("0", 300)))
      local v, err = json.decode("1" .. string.rep("0", 400))
      assert.is_nil(v)
      assert.matches("out of range", err)
      assert.is_nil((json.decode("01" .. string.rep("0", 100))))
    end)

    -- failed before on 5.1 and LuaJIT: "-0" decoded as -0.0 there, as 0 on 5.3+
    it("decodes a zero without its sign, and encodes -0.0 as 0, on every version", function()
      for _, s in ipairs({ "-0", "-0.0", "-0e5", "0", "0.0", "-1e-400", "-0E-0" }) do
        local v = json.decode(s)
        assert.are.equal(0, v, s)
        assert.are.equal(math.huge, 1 / v, s)
        assert.are.equal(math.huge, 1 / json.decode("[" .. s .. "]")[1], s)
      end
      if has_integers then
        assert.are.equal("integer", math.type(json.decode("-0")))
        assert.are.equal("integer", math.type(json.decode("-0.0")))
      end
      assert.are.equal("0", json.encode(-0.0))
      assert.are.equal("[0]", json.encode({ -0.0 }))
      assert.are.equal("0", json.encode(json.decode("-0")))
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
      local long = json.decode("0.25" .. string.rep("0", 100))
      local big = json.decode("1" .. string.rep("0", 80) .. ".5e-80")
      os.setlocale(old, "numeric")
      assert.are.equal("0.5", enc)
      assert.are.equal(0.25, dec[1])
      assert.are.equal(0.25, long)
      assert.are.equal(1, big)
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

    -- A table whose keys lua_next yields as 1, 2, then out of order, so the
    -- element at 1 is written before the order breaks. Which construction
    -- does that depends on the Lua version's hash layout; the first that
    -- does is used (nil: none on this version).
    local function out_of_order(child)
      local builders = {
        function(c) return { c, "b", [4] = "y", [3] = "z" } end,
        function(c)
          local t = { c, "b", p = 1, q = 2, r = 3, s = 4, u = 5, v = 6, w = 7 }
          for _, k in ipairs({ "p", "q", "r", "s", "u", "v", "w" }) do t[k] = nil end
          for k = 5, 3, -1 do t[k] = "z" end
          return t
        end,
      }
      for _, build in ipairs(builders) do
        local t, keys = build(child), {}
        for k in pairs(t) do keys[#keys + 1] = k end
        if keys[1] == 1 and keys[2] == 2 and keys[3] ~= 3 then return t end
      end
    end

    -- failed before: each level re-encoded its first element after a rewind,
    -- so the leaf was encoded 2^18 times
    it("encodes an out-of-order array in linear time, each element once", function()
      local calls = 0
      local leaf = setmetatable({}, { __tojson = function() calls = calls + 1; return 1 end })
      local t = leaf
      for _ = 1, 18 do t = out_of_order(t) or { t, "b", "z", "y" } end
      local s = json.encode(t)
      assert.are.equal(1, calls)
      local v = json.decode(s)
      for _ = 1, 18 do
        assert.are.equal("b", v[2])
        assert.is_true(#v == 4 or #v == 5)
        v = v[1]
      end
      assert.are.equal(1, v)
    end)

    -- failed before: a marked array was cut at its first hole
    it("encodes holes in a marked array as null up to the largest index", function()
      assert.are.equal("[1,null,3]", json.encode(json.array({ [1] = 1, [3] = 3 })))
      assert.are.equal("[null,null,3]", json.encode(json.array({ [3] = 3 })))
      assert.are.equal("[1,2,null,null,5]", json.encode(json.array({ 1, 2, nil, nil, 5 })))
      assert.are.equal("[null,true]", json.encode(setmetatable({ [2] = true }, { __jsontype = "array" })))
      -- a key that cannot be an index raises (it was left out: data lost)
      for _, k in ipairs({ "name", 0, -1, 1.5, 2 ^ 53 }) do
        assert.has_error(function() json.encode(json.array({ 1, [k] = 2 })) end)
      end
      assert.are.equal("[null,2]", json.encode(json.array({ [2.0] = 2 })))
      local t = json.array()
      for i = 40, 1, -3 do t[i] = i end
      local v = json.decode(json.encode(t, { sparse_ratio = 3 })) -- 14 values up to 40
      assert.are.equal(40, #v)
      for i = 1, 40 do
        if (40 - i) % 3 == 0 then assert.are.equal(i, v[i]) else assert.are.equal(json.null, v[i]) end
      end
      assert.has_error(function() json.encode(json.array({ x = 1 })) end)
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

  describe("decode options", function()
    -- failed before: decode took no options
    it("drop_nulls leaves out null members, in nested objects too, and keeps nulls in arrays", function()
      local text = '{"a":null,"b":1,"c":{"d":null,"e":[null,{"f":null,"g":false}],"h":null},"i":[null]}'
      local v = json.decode(text, { drop_nulls = true })
      assert.is_nil(v.a)
      assert.are.equal(1, v.b)
      assert.is_nil(v.c.d)
      assert.is_nil(v.c.h)
      assert.are.equal(json.null, v.c.e[1])
      assert.are.equal(2, #v.c.e)
      assert.is_nil(v.c.e[2].f)
      assert.is_false(v.c.e[2].g)
      assert.are.equal(json.null, v.i[1])
      assert.is_true(json.is_array(v.i))
      assert.are.equal('{"g":false}', json.encode(v.c.e[2]))
      assert.are.equal(json.null, json.decode(text).a) -- the default keeps them
      assert.are.equal(json.null, json.decode(text, {}).a)
      assert.are.equal(json.null, json.decode(text, { drop_nulls = false }).a)
      assert.are.equal(json.null, json.decode("null", { drop_nulls = true }))
      assert.are.equal("{}", json.encode(json.decode('{"x":null , "y" : null}', { drop_nulls = true })))
      assert.is_nil((json.decode('{"x":nul}', { drop_nulls = true })))
      assert.is_nil((json.decode('{"x":null,}', { drop_nulls = true })))
    end)

    it("drop_nulls keeps every other member of a big object, in order of repeats", function()
      local parts, expect = {}, {}
      for i = 1, 60 do
        local k = "k" .. (i % 45)
        if i % 3 == 0 then
          parts[#parts + 1] = string.format('"%s":null', k)
        elseif i % 7 == 0 then
          parts[#parts + 1] = string.format('"%s":{"z":null,"n":%d}', k, i)
          expect[k] = i
        else
          parts[#parts + 1] = string.format('"%s":%d', k, i)
          expect[k] = i
        end
      end
      local v = json.decode("{" .. table.concat(parts, ",") .. "}", { drop_nulls = true })
      local count = 0
      for k, x in pairs(v) do
        count = count + 1
        if type(x) == "table" then x = x.n end
        assert.are.equal(expect[k], x, k)
      end
      for k in pairs(expect) do assert.is_not_nil(v[k], k) end
      -- a null member that repeats a kept name leaves the earlier value alone
      assert.are.equal(1, json.decode('{"a":1,"a":null}', { drop_nulls = true }).a)
      assert.is_true(count > 0)
    end)

    it("lone_surrogates = \"error\" (the default) refuses a lone half", function()
      for _, opts in ipairs({ {}, { lone_surrogates = "error" } }) do
        for _, s in ipairs({ '"\\ud83d"', '"\\ude00"', '"a\\ud83d\\u0041"', '{"\\udfff":1}' }) do
          local v, err = json.decode(s, opts)
          assert.is_nil(v, s)
          assert.matches("lone surrogate", err)
        end
      end
    end)

    -- failed before: decode took no options, so a lone half was always an error
    it("lone_surrogates = \"replace\" makes each lone half U+FFFD", function()
      local o = { lone_surrogates = "replace" }
      local fffd = "\239\191\189"
      assert.are.equal("a" .. fffd .. "b", json.decode('"a\\ud83db"', o))
      assert.are.equal(fffd, json.decode('"\\ude00"', o))
      assert.are.equal(fffd .. fffd, json.decode('"\\ude00\\ud800"', o))
      assert.are.equal(fffd .. "\240\159\152\128", json.decode('"\\ud83d\\ud83d\\ude00"', o))
      assert.are.equal(fffd .. "A", json.decode('"\\ud83d\\u0041"', o))
      assert.are.equal(1, json.decode('{"\\udfff":1}', o)[fffd])
      -- what replace gives is valid UTF-8, so it encodes again
      assert.are.equal('"' .. fffd .. '"', json.encode(json.decode('"\\udfff"', o)))
    end)

    it("lone_surrogates = \"wtf8\" keeps each lone half as its 3-byte form", function()
      local o = { lone_surrogates = "wtf8" }
      local hi, lo = json.decode('"x\\ud83d"', o), json.decode('"\\ude00y"', o)
      assert.are.equal("x\237\160\189", hi)
      assert.are.equal("\237\184\128y", lo)
      assert.are.equal("\237\160\128", json.decode('"\\ud800"', o))
      assert.are.equal("\237\191\191", json.decode('"\\udfff"', o))
      assert.are.equal("\237\160\189\240\159\152\128", json.decode('"\\ud83d\\ud83d\\ude00"', o))
      -- raw (unescaped) surrogate bytes in the text stay invalid UTF-8
      assert.is_nil((json.decode('"\237\160\128"', o)))
    end)

    it("decodes a valid surrogate pair to 4-byte UTF-8 in every mode", function()
      for _, mode in ipairs({ "error", "replace", "wtf8" }) do
        assert.are.equal("\240\159\152\128", json.decode('"\\ud83d\\ude00"', { lone_surrogates = mode }))
        assert.are.equal("\244\143\191\191", json.decode('"\\udbff\\udfff"', { lone_surrogates = mode }))
        assert.are.equal("\240\144\128\128", json.decode('["\\uD800\\uDC00"]', { lone_surrogates = mode })[1])
      end
    end)

    it("raises on an unknown option or a bad value", function()
      assert.has_error(function() json.decode("{}", { bogus = true }) end)
      assert.has_error(function() json.decode("{}", { drop_null = true }) end)
      assert.has_error(function() json.decode("{}", { [1] = true }) end)
      assert.has_error(function() json.decode("{}", { drop_nulls = "yes" }) end)
      assert.has_error(function() json.decode("{}", { drop_nulls = 1 }) end)
      assert.has_error(function() json.decode("{}", { lone_surrogates = "ignore" }) end)
      assert.has_error(function() json.decode("{}", { lone_surrogates = true }) end)
      assert.has_error(function() json.decode("{}", 5) end)
      assert.has_error(function() json.decode("{}", "drop_nulls") end)
      local ok, err = pcall(json.decode, "{}", { bogus = true })
      assert.is_false(ok)
      assert.matches("unknown option bogus", err)
      assert.are.same({}, json.decode("{}", nil))
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
