-- baseten.schema's work is bounded by the size of the value (issue 22,
-- defects 2-4): tagged unions are decided at their tag, a pattern over the
-- regex budget is skipped and reported (never a mismatch), uniqueItems is
-- one hash lookup per item. Work is counted (the validator's own steps, or
-- Lua VM instructions through a count hook), never timed.
local schema = require("baseten.schema")
local regex = require("baseten.regex")
local jsonvalue = require("baseten.jsonvalue")
local json = require("baseten.core").json

local D = json.decode

-- Runs fn() and fails when it executes more than `limit` Lua VM
-- instructions (so code that does exponential or quadratic work fails
-- instead of running for minutes). LuaJIT runs hooks only in the
-- interpreter, so the JIT is off meanwhile.
local function within_instructions(limit, fn)
  local used = 0
  if jit then jit.off() end
  debug.sethook(function()
    used = used + 1000
    if used > limit then error("over " .. limit .. " Lua instructions", 2) end
  end, "", 1000)
  local ok, a, b, c, d = pcall(fn)
  debug.sethook()
  if jit then jit.on() end
  assert(ok, a)
  return a, b, c, d
end

-- A tagged union (what structured outputs of a tree look like): every
-- alternative is an object whose "kind" tells it apart, and two of them
-- nest the union again under "child", which sorts before "kind".
local function union(word)
  return {
    ["$ref"] = "#/$defs/node",
    ["$defs"] = { node = { [word] = {
      { type = "object", required = { "kind", "child" }, additionalProperties = false,
        properties = { kind = { const = "wrap" }, child = { ["$ref"] = "#/$defs/node" } } },
      { type = "object", required = { "kind", "child" }, additionalProperties = false,
        properties = { kind = { const = "pair" }, child = { ["$ref"] = "#/$defs/node" },
                       note = { type = "string" } } },
      { type = "object", required = { "kind", "content" }, additionalProperties = false,
        properties = { kind = { const = "leaf" }, content = { type = "string", maxLength = 20 } } },
    } } },
  }
end

local function nested(depth, leaf_value)
  local v = { kind = "leaf", content = leaf_value or "end" }
  for i = 1, depth do v = { kind = i % 2 == 0 and "wrap" or "pair", child = v } end
  return D(json.encode(v))
end

describe("baseten.schema work", function()
  describe("oneOf and anyOf of tagged objects", function()
    for _, word in ipairs({ "oneOf", "anyOf" }) do
      it(word .. " at depth 30 is checked in work linear in the depth", function()
        local s = union(word)
        local ok, path, msg, report = within_instructions(2e7, function()
          return schema.validate(nested(30), s)
        end)
        assert.is_true(ok, tostring(path) .. ": " .. tostring(msg))
        assert.is_table(report)
        assert.is_true(report.steps <= 20 * 30, "steps: " .. report.steps)
        local _, _, _, twice = schema.validate(nested(60), s)
        assert.is_true(twice.steps <= 2.2 * report.steps, report.steps .. " then " .. twice.steps)
      end)

      it(word .. " still finds the violation deep in a tagged union, with its path", function()
        local s = union(word)
        local ok, path, msg, report = within_instructions(2e7, function()
          return schema.validate(nested(30, ("x"):rep(21)), s)
        end)
        assert.is_false(ok)
        assert.equal("$" .. (".child"):rep(30) .. ".content", path)
        assert.equal("must be at most 20 characters long, got 21", msg)
        assert.is_true(report.steps <= 20 * 30, "steps: " .. report.steps)
      end)
    end

    it("remembers a (schema, value) result, wherever the same table is reached", function()
      local shared = D('{"a": {"b": 1}}')
      local s = { type = "array", items = { properties = { a = { properties = { b = { type = "string" } } } } } }
      local ok, path, msg = schema.validate({ shared, shared }, s)
      assert.is_false(ok)
      assert.equal("$[0].a.b", path)
      assert.equal("expected string, got number", msg)
      local pair = { type = "array", prefixItems = { true, s.items } }
      ok, path = schema.validate({ shared, shared }, pair)
      assert.is_false(ok)
      assert.equal("$[1].a.b", path)
    end)
  end)

  describe("a pattern over the work budget", function()
    it("is skipped and reported, never a mismatch", function()
      local s = { type = "string", pattern = "^.*\\S.*$" }
      local text = ("a b "):rep(250) -- 1,000 characters: "is too costly" before
      local ok, path, msg, report = schema.validate(text, s)
      assert.is_true(ok, tostring(path) .. ": " .. tostring(msg))
      assert.same({ { path = "$", pattern = "^.*\\S.*$", reason = "budget" } }, report.skipped)
      -- within the budget it is checked as before, and nothing is skipped
      local _
      ok, _, msg, report = schema.validate("   ", s)
      assert.is_false(ok)
      assert.equal('does not match pattern "^.*\\\\S.*$"', msg)
      assert.same({}, report.skipped)
      assert.is_nil(regex.match_pattern(text, s.pattern))
      assert.equal("budget", select(2, regex.match_pattern(text, s.pattern)))
    end)

    it("an email pattern on a long address is skipped, not failed", function()
      local s = { type = "object", properties = { email = { type = "string",
        pattern = "^[a-z0-9._%+-]+@[a-z0-9.-]+\\.[a-z]{2,}$" } } }
      local value = { email = ("a"):rep(470) .. "@example.com" } -- 482 characters
      local ok, path, msg, report = schema.validate(value, s)
      assert.is_true(ok, tostring(path) .. ": " .. tostring(msg))
      assert.equal(1, #report.skipped)
      assert.equal("$.email", report.skipped[1].path)
    end)

    it("in patternProperties: the key is neither matched nor called extra", function()
      local s = { patternProperties = { ["^.*\\S.*$"] = { type = "integer" } }, additionalProperties = false }
      local key = ("k "):rep(500)
      local ok, path, msg, report = schema.validate({ [key] = "not an integer" }, s)
      assert.is_true(ok, tostring(path) .. ": " .. tostring(msg))
      assert.equal(1, #report.skipped)
      assert.equal("budget", report.skipped[1].reason)
    end)
  end)

  describe("uniqueItems", function()
    it("8,000 distinct strings: one hash lookup each", function()
      local items = json.array()
      for i = 1, 8000 do items[i] = "item-" .. i end
      local ok = within_instructions(2e7, function()
        return schema.validate(items, { type = "array", uniqueItems = true })
      end)
      assert.is_true(ok)
      items[8001] = "item-17"
      local path, msg
      ok, path, msg = within_instructions(2e7, function()
        return schema.validate(items, { type = "array", uniqueItems = true })
      end)
      assert.is_false(ok)
      assert.equal("$[8000]", path)
      assert.equal("duplicate of item 16 (uniqueItems)", msg)
    end)

    it("compares as JSON: 1 and 1.0, objects in any key order, nested arrays", function()
      local u = { uniqueItems = true }
      assert.is_false((schema.validate(D('[1, 1.0]'), u)))
      assert.is_false((schema.validate(D('[0, -0.0]'), u)))
      assert.is_false((schema.validate(D('[{"a": 1, "b": [2, {"c": null}]}, {"b": [2.0, {"c": null}], "a": 1}]'), u)))
      assert.is_true((schema.validate(D('[{"a": 1}, {"a": "1"}, {"a": [1]}, [1], "1", 1.5]'), u)))
      assert.is_true((schema.validate(D('[[], {}, null, false, 0, ""]'), u)))
      assert.is_true((schema.validate(D('["ab", "a", "b", ["a", "b"], ["ab"]]'), u)))
      assert.is_true((schema.validate({ 2 ^ 53, 2 ^ 53 + 1 }, u)) == (2 ^ 53 ~= 2 ^ 53 + 1))
    end)

    it("canonical encodings are the same exactly for values equal as JSON", function()
      -- each inner list: values equal to one another, and to no other list's
      local groups = {
        { D("1"), D("1.0"), 1 }, { D("[1, 2]"), { 1, 2.0 } }, { D("[2, 1]") },
        { D('{"a": 1, "b": 2}'), D('{"b": 2, "a": 1}'), { b = 2, a = 1 } }, { D('{"a": null}') },
        { D("{}"), {} }, { D("[]") }, { json.null }, { true }, { false }, { "x" }, { D('["x"]') }, { "1" },
        { D('{"1": 1}') }, { D('[[]]') }, { D('[{}]') }, { "s1:x" }, { D('["s1:", "x"]') },
      }
      for gi, ga in ipairs(groups) do
        for _, a in ipairs(ga) do
          for gj, gb in ipairs(groups) do
            for _, b in ipairs(gb) do
              local what = json.encode(a) .. " vs " .. json.encode(b)
              assert.equal(gi == gj, jsonvalue.canonical(a) == jsonvalue.canonical(b), what)
              assert.equal(gi == gj, jsonvalue.equal(a, b), what)
            end
          end
        end
      end
      local nan = 0 / 0
      assert.is_true((schema.validate({ nan, nan }, { uniqueItems = true }))) -- NaN equals nothing
    end)
  end)
end)
