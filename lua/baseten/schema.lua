--- JSON Schema validation of decoded JSON values, on the client.
--
--     local schema = require("baseten.schema")
--     local ok, path, msg = schema.validate(value, {
--       type = "object", required = {"email"}, additionalProperties = false,
--       properties = { email = {type = "string", pattern = "^[^@]+@[^@]+$"} },
--     })
--     -- ok == false, path == "$.email", msg == "expected string, got number"
--
-- `client:json` uses it to check what the model returned, but it works on
-- any value `baseten.json.decode` gives, and on plain Lua tables.
--
-- Supported keywords (what structured outputs use, and a little more):
-- `type` (a name or a list of names; `"integer"` accepts 3 and 3.0, not
-- 3.5), `nullable = true` (OpenAPI style), `enum`, `const`, `properties`,
-- `required`, `additionalProperties` (`false` or a schema),
-- `patternProperties`, `propertyNames`, `minProperties`/`maxProperties`,
-- `items` (a schema, or a list for tuples), `prefixItems`,
-- `additionalItems`, `contains`, `minItems`/`maxItems`, `uniqueItems`,
-- `minimum`/`maximum`, `exclusiveMinimum`/`exclusiveMaximum` (numbers, or
-- draft-4 booleans), `multipleOf`, `minLength`/`maxLength` (UTF-8 code
-- points, not bytes), `pattern` (see below), `anyOf`, `oneOf`, `allOf`,
-- `not`, `if`/`then`/`else`, `$ref` to any JSON pointer in the root schema
-- (`#/$defs/x`, `#/definitions/x`, `#`), and the boolean schemas `true` and
-- `false`. Every other keyword (`format`, `title`, `description`,
-- `default`, ...) is ignored.
--
-- How Lua values map to JSON types: see `baseten.jsonvalue`.
--
-- `pattern` and `patternProperties` are ECMA-262 regular expressions, which
-- Lua has no engine for. A safe subset is translated to Lua patterns (see
-- `baseten.regex`); a pattern outside it is skipped (never a violation), and
-- so is a match whose worst case is over `baseten.regex.PATTERN_BUDGET`
-- steps (the fourth result of `validate` lists those), so the check can be
-- too lenient but never wrong.
--
-- The work is linear in the size of the value for every schema: each
-- (schema node, array or object) pair is checked once and its result
-- remembered, and a node's cheap keywords (`type`, `const`, `enum`,
-- `required`, members that are not arrays or objects) are checked before
-- it descends, so a tagged union (`oneOf` of objects told apart by a
-- `const` member) is decided at its tag.
--
-- Paths name the first violation found, JSONPath style: `$` is the value,
-- `.name` or `["odd key"]` a property, `[2]` an array element counted from
-- 0 as in JSON (Lua index 3). Checks run in a fixed order: the node's own
-- keywords first, `required` in the order listed, then the members that are
-- not arrays or objects sorted by name, then the others sorted by name, then
-- array elements in order.
-- @module baseten.schema
local jsonvalue = require("baseten.jsonvalue")
local keywords = require("baseten.schema_keywords")
local regex = require("baseten.regex")

local null = require("baseten.core").json.null
local concat = table.concat
local type_of, equal, show, key_path = jsonvalue.type_of, jsonvalue.equal, jsonvalue.show, jsonvalue.key_path

local M = {}



--- Deepest nesting of the data (arrays and objects in one another) checked
-- before validation gives up with a violation. A `$ref` cycle that consumes
-- no data is a violation of its own ("schema error: a $ref cycle ...").
M.MAX_DEPTH = 200

--- The JSON type of a Lua value (`baseten.jsonvalue.type_of`).
-- @function type_of
M.type_of = type_of

--- Whether two values are equal as JSON (`baseten.jsonvalue.equal`).
-- @function equal
M.equal = equal

--- An ECMA-262 pattern as a Lua pattern (`baseten.regex.lua_pattern`).
-- @function lua_pattern
M.lua_pattern = regex.lua_pattern

--- Whether a string matches an ECMA-262 pattern, or nil when undecidable
-- (`baseten.regex.match_pattern`).
-- @function match_pattern
M.match_pattern = regex.match_pattern

local validate_node -- (ctx, value, schema, path) -> true | false, path, message

-- Validates a member or element of the value: the limit is on how deeply
-- the data nests (a recursive schema spends several frames per level).
local function descend(ctx, v, s, path)
  if ctx.data_depth >= M.MAX_DEPTH then
    return false, path, "nested too deeply (more than " .. M.MAX_DEPTH .. " levels)"
  end
  ctx.data_depth = ctx.data_depth + 1
  local ok, p, m = validate_node(ctx, v, s, path)
  ctx.data_depth = ctx.data_depth - 1
  return ok, p, m
end

local function resolve(ctx, ref)
  if type(ref) ~= "string" then return nil end
  if ref == "#" then return ctx.root end
  local ptr = ref:match("^#(/.*)$")
  if not ptr then return nil end
  local node = ctx.root
  for part in ptr:gmatch("/([^/]*)") do
    part = part:gsub("%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end)
    part = part:gsub("~1", "/"):gsub("~0", "~")
    if type(node) ~= "table" then return nil end
    local nxt = node[part]
    if nxt == nil and part:match("^%d+$") then nxt = node[tonumber(part) + 1] end
    node = nxt
    if node == nil then return nil end
  end
  return node
end

-- anyOf / oneOf with no passing alternative: report the failure that got
-- furthest into the value, else a summary at this node.
local function none_matched(word, fails, path)
  local best
  for _, f in ipairs(fails) do
    if best == nil or #f[1] > #best[1] then best = f end
  end
  if best and #best[1] > #path then return false, best[1], best[2] end
  local msgs = {}
  for i, f in ipairs(fails) do msgs[i] = f[2] end
  return false, path, "matches none of " .. word .. ": " .. concat(msgs, "; ")
end

local function check_combinators(ctx, v, s, path)
  local ok, p, m
  if type(s.allOf) == "table" then
    for _, sub in ipairs(s.allOf) do
      ok, p, m = validate_node(ctx, v, sub, path)
      if not ok then return false, p, m end
    end
  end
  if type(s.anyOf) == "table" and s.anyOf[1] ~= nil then
    local fails = {}
    for _, sub in ipairs(s.anyOf) do
      ok, p, m = validate_node(ctx, v, sub, path)
      if ok then break end
      fails[#fails + 1] = { p, m }
    end
    if not ok then return none_matched("anyOf", fails, path) end
  end
  if type(s.oneOf) == "table" and s.oneOf[1] ~= nil then
    local fails, passed = {}, 0
    for _, sub in ipairs(s.oneOf) do
      ok, p, m = validate_node(ctx, v, sub, path)
      if ok then passed = passed + 1 else fails[#fails + 1] = { p, m } end
    end
    if passed == 0 then return none_matched("oneOf", fails, path) end
    if passed > 1 then
      return false, path, "matches " .. passed .. " of the oneOf alternatives, expected exactly one"
    end
  end
  if s["not"] ~= nil then
    if validate_node(ctx, v, s["not"], path) then
      return false, path, "must not match the \"not\" schema"
    end
  end
  if s["if"] ~= nil then
    local branch
    if validate_node(ctx, v, s["if"], path) then branch = s["then"] else branch = s["else"] end
    if branch ~= nil then
      ok, p, m = validate_node(ctx, v, branch, path)
      if not ok then return false, p, m end
    end
  end
  return true
end


-- uniqueItems: one canonical encoding per item, looked up in a table, so
-- the check is linear in the size of the array.
local function check_unique(v, n, path)
  local seen, ids = {}, {}
  for i = 1, n do
    local key = jsonvalue.canonical(v[i], ids)
    local j = seen[key]
    if j then return false, path .. "[" .. (i - 1) .. "]", "duplicate of item " .. (j - 1) .. " (uniqueItems)" end
    seen[key] = i
  end
  return true
end

local function check_array(ctx, v, s, path)
  local n = #v
  local ok, p, m = keywords.check_count(n, s.minItems, s.maxItems, path,
    "expected at least %s items, got %d", "expected at most %s items, got %d")
  if not ok then return false, p, m end
  if s.uniqueItems == true then
    ok, p, m = check_unique(v, n, path)
    if not ok then return false, p, m end
  end
  -- tuple schemas: prefixItems (2020-12) or items as a list (draft 4-2019)
  local tuple, rest = s.prefixItems, s.items
  if type(tuple) ~= "table" and type(rest) == "table" and type_of(rest) == "array" then
    tuple, rest = rest, s.additionalItems
  end
  local ntuple = 0
  if type(tuple) == "table" then ntuple = #tuple end
  for i = 1, n do
    local sub
    if i <= ntuple then sub = tuple[i] else sub = rest end
    if sub ~= nil then
      ok, p, m = descend(ctx, v[i], sub, path .. "[" .. (i - 1) .. "]")
      if not ok then return false, p, m end
    end
  end
  if s.contains ~= nil then
    for i = 1, n do
      if descend(ctx, v[i], s.contains, path) then return true end
    end
    return false, path, "no item matches the \"contains\" schema"
  end
  return true
end

local function pattern_keys(pp)
  -- the patternProperties whose patterns can be decided, and whether all can
  local list, all = {}, true
  for _, re in ipairs(jsonvalue.sorted_keys(pp)) do
    if type(re) == "string" and regex.lua_pattern(re) then
      list[#list + 1] = re
    else
      all = false
    end
  end
  return list, all
end

-- The members in the order they are checked: those that are not arrays or
-- objects first (a tag is told apart without descending), each group
-- sorted by name.
local function member_order(v)
  local keys, leaves, nodes = jsonvalue.sorted_keys(v), {}, {}
  for _, k in ipairs(keys) do
    if type(v[k]) == "table" and v[k] ~= null then nodes[#nodes + 1] = k else leaves[#leaves + 1] = k end
  end
  for _, k in ipairs(nodes) do leaves[#leaves + 1] = k end
  return leaves
end

local function check_counts(v, s, path)
  if type(s.required) == "table" then
    for _, name in ipairs(s.required) do
      if v[name] == nil then return false, key_path(path, name), "missing required property" end
    end
  end
  if type(s.minProperties) == "number" or type(s.maxProperties) == "number" then
    local count = 0
    for _ in pairs(v) do count = count + 1 end
    return keywords.check_count(count, s.minProperties, s.maxProperties, path,
      "expected at least %s properties, got %d", "expected at most %s properties, got %d")
  end
  return true
end

-- One member k of object v; `pkeys`, `all_translated` from pattern_keys.
local function check_member(ctx, v, s, k, kp, pkeys, all_translated)
  local ok, p, m
  local props = type(s.properties) == "table" and s.properties or {}
  local pp = type(s.patternProperties) == "table" and s.patternProperties or nil
  local extra = s.additionalProperties
  local decided = all_translated
  if s.propertyNames ~= nil then
    local okn, _, mn = validate_node(ctx, tostring(k), s.propertyNames, kp)
    if not okn then return false, kp, "property name: " .. mn end
  end
  local matched = props[k] ~= nil
  if matched then
    ok, p, m = descend(ctx, v[k], props[k], kp)
    if not ok then return false, p, m end
  end
  if pp and type(k) == "string" then
    for _, re in ipairs(pkeys) do
      local hit = keywords.match(k, re, kp, ctx.on_skip)
      if hit == nil then
        decided = false
      elseif hit then
        matched = true
        ok, p, m = descend(ctx, v[k], pp[re], kp)
        if not ok then return false, p, m end
      end
    end
  end
  -- a key that an undecidable pattern might match is not called extra
  if not matched and extra ~= nil and extra ~= true and (decided or not pp) then
    if extra == false then
      return false, kp, "unexpected property (additionalProperties is false)"
    end
    return descend(ctx, v[k], extra, kp)
  end
  return true
end

local function check_object(ctx, v, s, path)
  local ok, p, m = check_counts(v, s, path)
  if not ok then return false, p, m end
  local pkeys, all_translated = {}, true
  if type(s.patternProperties) == "table" then pkeys, all_translated = pattern_keys(s.patternProperties) end
  for _, k in ipairs(member_order(v)) do
    ok, p, m = check_member(ctx, v, s, k, key_path(path, k), pkeys, all_translated)
    if not ok then return false, p, m end
  end
  return true
end

local function check(ctx, v, s, path)
  if s.nullable == true and (v == nil or v == null) then return true end
  local ok, p, m
  local ref = s["$ref"]
  if ref ~= nil then
    local target = resolve(ctx, ref)
    if target == nil then return false, path, "schema error: cannot resolve $ref " .. show(ref) end
    ok, p, m = validate_node(ctx, v, target, path)
    if not ok then return false, p, m end
  end
  local kind = type_of(v)
  ok, p, m = keywords.check_discriminators(s, kind, v, path)
  if not ok then return false, p, m end
  if kind == "number" then
    ok, p, m = keywords.check_number(v, s, path)
  elseif kind == "string" then
    ok, p, m = keywords.check_string(v, s, path, ctx.on_skip)
  elseif kind == "array" then
    ok, p, m = check_array(ctx, v, s, path)
  elseif kind == "object" then
    ok, p, m = check_object(ctx, v, s, path)
  end
  if not ok then return false, p, m end
  return check_combinators(ctx, v, s, path)
end

-- The remembered result of (schema node, table value) at this data depth:
-- failure paths are kept relative to the value, so that the same table
-- reached by another path reports its own.
local function remembered(ctx, v, s, path)
  local by_value = ctx.memo[s]
  local hit = by_value and by_value[v]
  if not hit or hit.depth ~= ctx.data_depth then return nil end
  if hit.ok then return true end
  return false, path .. hit.rest, hit.message
end

local function remember(ctx, v, s, path, ok, p, m)
  local by_value = ctx.memo[s]
  if not by_value then
    by_value = {}
    ctx.memo[s] = by_value
  end
  by_value[v] = { depth = ctx.data_depth, ok = ok, rest = p and p:sub(#path + 1), message = m }
end

validate_node = function(ctx, v, s, path)
  if s == true or s == nil then return true end
  if s == false then return false, path, "no value is allowed here (schema false)" end
  if type(s) ~= "table" then return true end
  ctx.steps = ctx.steps + 1
  local memo = type(v) == "table"
  if memo then
    local ok, p, m = remembered(ctx, v, s, path)
    if ok ~= nil then return ok, p, m end
  end
  -- the same schema again at the same data depth before it ended (data
  -- depth only grows by descending): a $ref cycle that consumes no data
  local depth = ctx.data_depth
  local active = ctx.active[s]
  if active and active[depth] then return false, path, "schema error: a $ref cycle that consumes no data" end
  if not active then
    active = {}
    ctx.active[s] = active
  end
  active[depth] = true
  local ok, p, m = check(ctx, v, s, path)
  active[depth] = nil
  if memo then remember(ctx, v, s, path, ok, p, m) end
  return ok, p, m
end

--- Validates a value against a JSON Schema.
-- @param value a decoded JSON value (or a plain Lua value)
-- @tparam table|boolean schema the JSON Schema, as a Lua table
-- @treturn boolean true when the value satisfies the schema
-- @treturn string|nil the JSONPath of the first violation (`$.items[2].email`)
-- @treturn string|nil what is wrong there (`expected string, got number`)
-- @treturn table what the check did, with or without a violation: `steps`,
--   the schema nodes checked against a value (linear in the size of the
--   value); `skipped`, an array of `{path, pattern, reason}` for each
--   pattern not tried because its worst case was over
--   `baseten.regex.PATTERN_BUDGET` (reason `"budget"`): those values
--   passed that check unverified
-- @usage
-- local ok, path, msg = schema.validate(value, s)
-- if not ok then print(path .. ": " .. msg) end
function M.validate(value, schema)
  if type(schema) ~= "table" and type(schema) ~= "boolean" then
    error("baseten.schema.validate: schema must be a table or a boolean", 2)
  end
  local report = { steps = 0, skipped = {} }
  local ctx = { root = schema, data_depth = 0, active = {}, memo = {}, steps = 0 }
  function ctx.on_skip(path, pattern, reason)
    report.skipped[#report.skipped + 1] = { path = path, pattern = pattern, reason = reason }
  end
  local ok, path, message = validate_node(ctx, value, schema, "$")
  report.steps = ctx.steps
  if ok then return true, nil, nil, report end
  return false, path, message, report
end

return M
