-- baseten.schema: client-side JSON Schema validation of decoded values.
local schema = require("baseten.schema")
local json = require("baseten.core").json

local null = json.null
local D = json.decode

-- validate, returning "ok" or "<path>: <message>" for compact assertions
local function check(value, s)
  local ok, path, msg = schema.validate(value, s)
  if ok then return "ok" end
  assert.is_string(path)
  assert.is_string(msg)
  return path .. ": " .. msg
end

describe("baseten.schema", function()
  describe("types", function()
    it("checks each JSON type and names what it got", function()
      assert.equal("ok", check("x", { type = "string" }))
      assert.equal("ok", check(1.5, { type = "number" }))
      assert.equal("ok", check(true, { type = "boolean" }))
      assert.equal("ok", check(null, { type = "null" }))
      assert.equal("ok", check(nil, { type = "null" }))
      assert.equal("$: expected string, got number", check(3, { type = "string" }))
      assert.equal("$: expected boolean, got string", check("true", { type = "boolean" }))
      assert.equal("$: expected number, got null", check(null, { type = "number" }))
      assert.equal("$: expected object, got array", check(D("[1]"), { type = "object" }))
      assert.equal("$: expected string, got Lua function", check(print, { type = "string" }))
    end)

    it("integer accepts 3 and 3.0 but not 3.5", function()
      assert.equal("ok", check(3, { type = "integer" }))
      assert.equal("ok", check(3.0, { type = "integer" }))
      assert.equal("ok", check(D("3.0"), { type = "integer" }))
      assert.equal("ok", check(-0.0, { type = "integer" }))
      assert.equal("$: expected integer, got number", check(3.5, { type = "integer" }))
      assert.equal("$: expected integer, got number", check(D("3.5"), { type = "integer" }))
      assert.equal("$: expected integer, got number", check(math.huge, { type = "integer" }))
      assert.equal("ok", check(3, { type = "number" }))
    end)

    it("unions and nullable", function()
      local s = { type = { "string", "null" } }
      assert.equal("ok", check("a", s))
      assert.equal("ok", check(null, s))
      assert.equal("$: expected string or null, got number", check(1, s))
      local n = { type = "string", nullable = true }
      assert.equal("ok", check(null, n))
      assert.equal("$: expected string, got boolean", check(false, n))
      local doc = D('{"a": null, "b": "x"}')
      local int_or_null = { type = { "integer", "null" } }
      local obj = { type = "object", properties = { a = int_or_null, b = int_or_null } }
      assert.equal("$.b: expected integer or null, got string", check(doc, obj))
    end)

    it("decoded [] is an array and decoded {} an object; so is a plain {}", function()
      assert.equal("ok", check(D("[]"), { type = "array" }))
      assert.equal("$: expected object, got array", check(D("[]"), { type = "object" }))
      assert.equal("ok", check(D("{}"), { type = "object" }))
      assert.equal("$: expected array, got object", check(D("{}"), { type = "array" }))
      assert.equal("ok", check({}, { type = "object" }))
      assert.equal("ok", check(json.array(), { type = "array", maxItems = 0 }))
      assert.equal("ok", check({ 1, 2, 3 }, { type = "array", items = { type = "integer" } }))
      assert.equal("ok", check(json.object({}), { type = "object" }))
      assert.equal("object", schema.type_of({ [1] = 1, [3] = 3 }))
      assert.equal("array", schema.type_of(D('[null, null]')))
    end)

    it("boolean schemas", function()
      assert.equal("ok", check(42, true))
      assert.equal("$: no value is allowed here (schema false)", check(42, false))
      assert.equal("$.x: no value is allowed here (schema false)",
        check({ x = 1 }, { type = "object", properties = { x = false } }))
    end)

    it("raises on a schema that is not a table", function()
      assert.has_error(function() schema.validate(1, "string") end)
      assert.has_error(function() schema.validate(1) end)
    end)
  end)

  describe("objects", function()
    local person = {
      type = "object",
      properties = {
        name = { type = "string" },
        email = { type = "string" },
        age = { type = "integer", minimum = 0 },
      },
      required = { "name", "email" },
      additionalProperties = false,
    }

    it("accepts a matching object", function()
      assert.equal("ok", check(D('{"name": "Ada", "email": "ada@example.com", "age": 36}'), person))
    end)

    it("reports the missing required property at its path", function()
      assert.equal("$.email: missing required property", check(D('{"name": "Ada"}'), person))
    end)

    it("a json.null value is present, and checked", function()
      assert.equal("$.email: expected string, got null", check(D('{"name": "Ada", "email": null}'), person))
    end)

    it("additionalProperties = false names the extra key", function()
      assert.equal("$.phone: unexpected property (additionalProperties is false)",
        check(D('{"name": "Ada", "email": "a@b", "phone": "1"}'), person))
    end)

    it("additionalProperties as a schema checks the other keys", function()
      local s = { type = "object", properties = { id = { type = "integer" } },
                  additionalProperties = { type = "string" } }
      assert.equal("ok", check(D('{"id": 1, "a": "x", "b": "y"}'), s))
      assert.equal("$.b: expected string, got number", check(D('{"id": 1, "a": "x", "b": 2}'), s))
    end)

    it("quotes keys that are not identifiers in paths", function()
      local s = { type = "object", properties = { ["odd key"] = { type = "string" } } }
      assert.equal('$["odd key"]: expected string, got boolean', check({ ["odd key"] = true }, s))
    end)

    it("patternProperties, propertyNames, min/maxProperties", function()
      local s = { type = "object", patternProperties = { ["^x_"] = { type = "integer" } },
                  additionalProperties = false }
      assert.equal("ok", check(D('{"x_a": 1, "x_b": 2}'), s))
      assert.equal("$.x_b: expected integer, got string", check(D('{"x_a": 1, "x_b": "2"}'), s))
      assert.equal("$.y: unexpected property (additionalProperties is false)", check(D('{"y": 1}'), s))
      assert.equal("$.AB: property name: does not match pattern \"^[a-z]+$\"",
        check(D('{"ab": 1, "AB": 2}'), { type = "object", propertyNames = { pattern = "^[a-z]+$" } }))
      assert.equal("$: expected at least 2 properties, got 1", check(D('{"a": 1}'), { minProperties = 2 }))
      assert.equal("$: expected at most 1 properties, got 2", check(D('{"a": 1, "b": 2}'), { maxProperties = 1 }))
    end)
  end)

  describe("arrays", function()
    local s = {
      type = "object",
      properties = {
        items = { type = "array", items = {
          type = "object", properties = { email = { type = "string" } }, required = { "email" } } },
      },
    }

    it("paths count array elements from 0, as JSON does", function()
      local v = D('{"items": [{"email": "a@x"}, {"email": "b@x"}, {"email": 3}]}')
      local ok, path, msg = schema.validate(v, s)
      assert.is_false(ok)
      assert.equal("$.items[2].email", path)
      assert.equal("expected string, got number", msg)
    end)

    it("minItems, maxItems, uniqueItems", function()
      assert.equal("$: expected at least 2 items, got 1", check(D("[1]"), { minItems = 2 }))
      assert.equal("$: expected at most 1 items, got 2", check(D("[1, 2]"), { maxItems = 1 }))
      assert.equal("ok", check(D("[]"), { type = "array", minItems = 0 }))
      assert.equal("$[2]: duplicate of item 0 (uniqueItems)",
        check(D('[{"a": 1}, 2, {"a": 1.0}]'), { uniqueItems = true }))
      assert.equal("ok", check(D('[[1], [1, 2]]'), { uniqueItems = true }))
    end)

    it("tuples: prefixItems and items as a list", function()
      local t = { type = "array", prefixItems = { { type = "string" }, { type = "integer" } }, items = false }
      assert.equal("ok", check(D('["a", 1]'), t))
      assert.equal("$[1]: expected integer, got string", check(D('["a", "b"]'), t))
      assert.equal("$[2]: no value is allowed here (schema false)", check(D('["a", 1, 2]'), t))
      local old = { type = "array", items = { { type = "string" } }, additionalItems = { type = "null" } }
      assert.equal("ok", check(D('["a", null]'), old))
      assert.equal("$[1]: expected null, got number", check(D('["a", 2]'), old))
    end)

    it("contains", function()
      assert.equal("ok", check(D('[1, "x"]'), { contains = { type = "string" } }))
      assert.equal('$: no item matches the "contains" schema', check(D('[1, 2]'), { contains = { type = "string" } }))
    end)
  end)

  describe("numbers", function()
    it("minimum, maximum and the exclusive ones (both drafts)", function()
      assert.equal("ok", check(0, { minimum = 0, maximum = 10 }))
      assert.equal("$: must be at least 0, got -1", check(-1, { minimum = 0 }))
      assert.equal("$: must be at most 10, got 11", check(11, { maximum = 10 }))
      assert.equal("$: must be greater than 0, got 0", check(0, { exclusiveMinimum = 0 }))
      assert.equal("$: must be less than 10, got 10", check(10, { exclusiveMaximum = 10 }))
      assert.equal("ok", check(0.5, { exclusiveMinimum = 0, exclusiveMaximum = 1 }))
      assert.equal("$: must be greater than 0, got 0", check(0, { minimum = 0, exclusiveMinimum = true }))
      assert.equal("$: must be less than 1, got 1", check(1, { maximum = 1, exclusiveMaximum = true }))
      assert.equal("ok", check("not a number", { minimum = 5 }))
    end)

    it("multipleOf", function()
      assert.equal("ok", check(0.3, { multipleOf = 0.1 }))
      assert.equal("ok", check(15, { multipleOf = 5 }))
      assert.equal("$: must be a multiple of 5, got 7", check(7, { multipleOf = 5 }))
    end)
  end)

  describe("strings", function()
    it("minLength and maxLength count UTF-8 code points", function()
      assert.equal("ok", check("héllo", { maxLength = 5, minLength = 5 })) -- 6 bytes
      assert.equal("ok", check("日本語", { maxLength = 3 }))
      assert.equal("$: must be at most 2 characters long, got 3", check("日本語", { maxLength = 2 }))
      assert.equal("$: must be at least 4 characters long, got 3", check("日本語", { minLength = 4 }))
      assert.equal("ok", check("😀", { minLength = 1, maxLength = 1 }))
    end)

    it("pattern, in the translated subset", function()
      assert.equal("ok", check("abc", { pattern = "^[a-z]+$" }))
      assert.equal('$: does not match pattern "^[a-z]+$"', check("abC", { pattern = "^[a-z]+$" }))
      assert.equal("ok", check("555-1234", { pattern = "^\\d{3}-\\d{4}$" }))
      assert.equal('$: does not match pattern "^\\\\d{3}-\\\\d{4}$"', check("55-1234", { pattern = "^\\d{3}-\\d{4}$" }))
      assert.equal("ok", check("x ada@example.com y", { pattern = "[a-z]+@[a-z]+\\.com" })) -- unanchored
      assert.equal("ok", check("zoë@exämple.org", { pattern = "^[^@]+@[^@]+\\.[a-z]{2,}$" }))
    end)

    it("a pattern outside the subset is skipped, never a violation", function()
      assert.equal("ok", check("zzz", { pattern = "^(a|b)+$" }))
      assert.equal("ok", check("zzz", { pattern = "\\bfoo\\b" }))
      assert.equal("ok", check("zzz", { pattern = "^(?!z)" }))
    end)
  end)

  describe("lua_pattern / match_pattern", function()
    it("translates the safe subset and refuses the rest", function()
      assert.equal("^[a-z][a-z]*$", (schema.lua_pattern("^[a-z]+$")))
      assert.equal("^[0-9][0-9][0-9]%-[0-9][0-9][0-9][0-9]$", (schema.lua_pattern("^\\d{3}-\\d{4}$")))
      assert.equal("^[A-Za-z0-9_][A-Za-z0-9_]*$", (schema.lua_pattern("^\\w+$")))
      assert.equal("", (schema.lua_pattern("")))
      local refused = { "a|b", "(ab)", "\\1", "\\bx", "(?=x)", "[]", "x{,3}", "a^b", "$a", "[é]", "é+", "\\p{L}", "{" }
      for _, re in ipairs(refused) do
        local pat, why = schema.lua_pattern(re)
        assert.is_nil(pat, re)
        assert.is_string(why, re)
      end
    end)

    it("escapes Lua's magic characters", function()
      assert.is_true(schema.match_pattern("100%", "^\\d+%$"))
      assert.is_true(schema.match_pattern("a.b", "^a\\.b$"))
      assert.is_false(schema.match_pattern("axb", "^a\\.b$"))
      assert.is_true(schema.match_pattern("a-b", "^a-b$"))
      assert.is_true(schema.match_pattern("(x)", "^\\(x\\)$"))
      assert.is_true(schema.match_pattern("a]b", "^a[\\]]b$"))
      assert.is_true(schema.match_pattern("%", "^[%]$"))
      assert.is_true(schema.match_pattern("-", "^[a\\-z]$"))
      assert.is_false(schema.match_pattern("b", "^[a\\-z]$"))
      assert.is_true(schema.match_pattern("/", "^[!-/]$"))
    end)

    it("matches by code points, never part of a character", function()
      assert.is_true(schema.match_pattern("aé", "^.{2}$"))
      assert.is_false(schema.match_pattern("aé", "^.{3}$"))
      assert.is_true(schema.match_pattern("é", "^.$"))
      assert.is_true(schema.match_pattern("日本", "^[^a]+$"))
      assert.is_false(schema.match_pattern("é", "^[^a]+[^b]+$"))
      assert.is_true(schema.match_pattern("éé", "^[^a]+[^b]+$"))
      assert.is_true(schema.match_pattern("naïve", "^\\D+$"))
      assert.is_true(schema.match_pattern("é", "^é$"))
      assert.is_true(schema.match_pattern("éé", "^é{2}$"))
    end)

    it("leaves undecidable cases to nil: \\s on non-ASCII text, optional wide atoms", function()
      assert.is_true(schema.match_pattern("a b", "^a\\sb$"))
      assert.is_nil(schema.match_pattern("a\194\160b", "^a\\sb$")) -- U+00A0 is \s in ECMA
      assert.is_true(schema.match_pattern("ab", "^a.?b$"))
      assert.is_nil(schema.match_pattern("aéb", "^a.?b$"))
      assert.is_nil(schema.match_pattern("x", "(a|b)"))
    end)
  end)

  describe("enum and const", function()
    it("compares as JSON", function()
      assert.equal("ok", check("b", { enum = { "a", "b" } }))
      assert.equal('$: expected one of ["a","b"], got "c"', check("c", { enum = { "a", "b" } }))
      assert.equal("ok", check(null, D('{"enum": ["a", null]}')))
      assert.equal("ok", check(1.0, { enum = { 1 } }))
      assert.equal("ok", check(D('{"a": [1, 2]}'), { const = { a = { 1, 2 } } }))
      assert.equal('$: expected {"a":[1,2]}, got {"a":[1]}', check(D('{"a": [1]}'), { const = { a = { 1, 2 } } }))
      assert.equal('$: expected "x", got "y"', check("y", { const = "x" }))
      assert.equal("ok", check(null, D('{"const": null}')))
      assert.is_false(schema.equal(D("[]"), D("{}")))
      assert.is_false(schema.equal(D('{"a": null}'), D("{}")))
      assert.is_true(schema.equal(D('{"a": [1, {"b": null}]}'), D('{"a": [1.0, {"b": null}]}')))
    end)
  end)

  describe("combinators", function()
    it("anyOf passes on any alternative and reports the one that got furthest", function()
      local s = { anyOf = {
        { type = "object", properties = { kind = { const = "circle" }, r = { type = "number" } },
          required = { "kind", "r" } },
        { type = "null" },
      } }
      assert.equal("ok", check(null, s))
      assert.equal("ok", check(D('{"kind": "circle", "r": 2}'), s))
      assert.equal("$.r: expected number, got string", check(D('{"kind": "circle", "r": "2"}'), s))
      assert.equal("$: matches none of anyOf: expected object, got number; expected null, got number", check(5, s))
    end)

    it("oneOf, allOf, not, if/then/else", function()
      local one = { oneOf = { { type = "integer" }, { type = "number" } } }
      assert.equal("ok", check(1.5, one))
      assert.equal("$: matches 2 of the oneOf alternatives, expected exactly one", check(1, one))
      assert.equal("$: must be at most 3, got 4", check(4, { allOf = { { type = "integer" }, { maximum = 3 } } }))
      assert.equal('$: must not match the "not" schema', check("x", { ["not"] = { type = "string" } }))
      local cond = { ["if"] = { properties = { t = { const = "a" } } },
                     ["then"] = { required = { "a" } }, ["else"] = { required = { "b" } } }
      assert.equal("ok", check(D('{"t": "a", "a": 1}'), cond))
      assert.equal("$.a: missing required property", check(D('{"t": "a", "b": 1}'), cond))
      assert.equal("$.b: missing required property", check(D('{"t": "z", "a": 1}'), cond))
    end)
  end)

  describe("$ref", function()
    it("resolves $defs and definitions, recursively", function()
      local tree = {
        ["$ref"] = "#/$defs/node",
        ["$defs"] = { node = { type = "object", required = { "value" }, additionalProperties = false, properties = {
          value = { type = "integer" },
          children = { type = "array", items = { ["$ref"] = "#/$defs/node" } },
        } } },
      }
      assert.equal("ok", check(D('{"value": 1, "children": [{"value": 2, "children": []}]}'), tree))
      assert.equal("$.children[0].children[1].value: expected integer, got string",
        check(D('{"value": 1, "children": [{"value": 2, "children": [{"value": 3}, {"value": "4"}]}]}'), tree))
      local old = { type = "object", properties = { p = { ["$ref"] = "#/definitions/pos" } },
                    definitions = { pos = { type = "integer", minimum = 1 } } }
      assert.equal("$.p: must be at least 1, got 0", check({ p = 0 }, old))
      local root = { type = "array", items = { ["$ref"] = "#" } }
      assert.equal("ok", check(D("[[], [[]]]"), root))
      local escaped = { properties = { x = { ["$ref"] = "#/$defs/a~1b" } },
                        ["$defs"] = { ["a/b"] = { type = "string" } } }
      assert.equal("$.x: expected string, got number", check({ x = 1 }, escaped))
    end)

    it("an unresolvable $ref and a $ref cycle are violations, not crashes", function()
      assert.equal('$: schema error: cannot resolve $ref "#/$defs/nope"', check(1, { ["$ref"] = "#/$defs/nope" }))
      local cyc = { ["$ref"] = "#/$defs/a", ["$defs"] = { a = { ["$ref"] = "#/$defs/a" } } }
      local ok, path, msg = schema.validate(1, cyc)
      assert.is_false(ok)
      assert.equal("$", path)
      assert.truthy(msg:find("$ref cycle", 1, true)) -- was "nested too deeply": issue 18 bug 11
    end)
  end)

  it("ignores keywords it does not know", function()
    assert.equal("ok", check("not-an-email", { type = "string", format = "email", title = "t", description = "d" }))
  end)
end)
