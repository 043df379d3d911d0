--- The keywords of a JSON Schema that check one value without descending
-- into it: `type`, `nullable`, `const`, `enum`, the number keywords and the
-- string keywords (`pattern` through `baseten.regex`). `baseten.schema`
-- checks these before it descends, so a tagged union is told apart by its
-- tag before any alternative walks the rest of the value.
-- @module baseten.schema_keywords
local jsonvalue = require("baseten.jsonvalue")
local regex = require("baseten.regex")

local concat = table.concat
local floor = math.floor
local equal, show, is_integer = jsonvalue.equal, jsonvalue.show, jsonvalue.is_integer

local M = {}

local TYPE_NAMES = { null = true, boolean = true, number = true, integer = true,
                     string = true, array = true, object = true }

local function type_matches(want, kind, v)
  if want == kind or want == "any" then return true end
  if want == "integer" then return kind == "number" and is_integer(v) end
  return false
end

local function check_type(s, kind, v, path)
  local t = s.type
  if t == nil then return true end
  local ok, names
  if type(t) == "string" then
    ok, names = type_matches(t, kind, v), t
  elseif type(t) == "table" then
    local list = {}
    ok = false
    for _, name in ipairs(t) do
      if type(name) == "string" then
        list[#list + 1] = name
        if type_matches(name, kind, v) then ok = true end
      end
    end
    names = concat(list, " or ")
  else
    return true
  end
  if ok then return true end
  if not TYPE_NAMES[kind] then kind = "Lua " .. kind end
  return false, path, "expected " .. names .. ", got " .. kind
end

--- Checks `type`, `const` and `enum` (the cheap discriminators).
-- @tparam table s the schema node
-- @tparam string kind the value's JSON type (`jsonvalue.type_of`)
-- @param v the value
-- @tparam string path its JSONPath
-- @treturn boolean true, or false, path, message
function M.check_discriminators(s, kind, v, path)
  local ok, p, m = check_type(s, kind, v, path)
  if not ok then return false, p, m end
  if s.const ~= nil and not equal(v, s.const) then
    return false, path, "expected " .. show(s.const) .. ", got " .. show(v)
  end
  if type(s.enum) == "table" then
    for _, e in ipairs(s.enum) do
      if equal(v, e) then return true end
    end
    return false, path, "expected one of " .. show(s.enum) .. ", got " .. show(v)
  end
  return true
end

--- Checks the number keywords (`minimum`, ..., `multipleOf`) on a number.
-- @tparam number v
-- @tparam table s
-- @tparam string path
-- @treturn boolean true, or false, path, message
function M.check_number(v, s, path)
  local function num(x) return type(x) == "number" end
  local lo, hi = s.minimum, s.maximum
  if num(lo) then
    if s.exclusiveMinimum == true and v <= lo then
      return false, path, "must be greater than " .. show(lo) .. ", got " .. show(v)
    elseif v < lo then
      return false, path, "must be at least " .. show(lo) .. ", got " .. show(v)
    end
  end
  if num(hi) then
    if s.exclusiveMaximum == true and v >= hi then
      return false, path, "must be less than " .. show(hi) .. ", got " .. show(v)
    elseif v > hi then
      return false, path, "must be at most " .. show(hi) .. ", got " .. show(v)
    end
  end
  lo, hi = s.exclusiveMinimum, s.exclusiveMaximum
  if num(lo) and v <= lo then
    return false, path, "must be greater than " .. show(lo) .. ", got " .. show(v)
  end
  if num(hi) and v >= hi then
    return false, path, "must be less than " .. show(hi) .. ", got " .. show(v)
  end
  local m = s.multipleOf
  if num(m) and m > 0 then
    local q = v / m
    if math.abs(q - floor(q + 0.5)) > 1e-9 * math.max(1, math.abs(q)) then
      return false, path, "must be a multiple of " .. show(m) .. ", got " .. show(v)
    end
  end
  return true
end

--- Checks a count (characters, items, properties) against a minimum and a
-- maximum keyword's values (each used when it is a number).
-- @tparam number count
-- @param lo the minimum keyword's value
-- @param hi the maximum keyword's value
-- @tparam string path
-- @tparam string too_few the message format, given the bound and the count
-- @tparam string too_many the same for the maximum
-- @treturn boolean true, or false, path, message
function M.check_count(count, lo, hi, path, too_few, too_many)
  if type(lo) == "number" and count < lo then return false, path, too_few:format(tostring(lo), count) end
  if type(hi) == "number" and count > hi then return false, path, too_many:format(tostring(hi), count) end
  return true
end

--- Whether a string matches a schema's pattern: true, false, or nil when
-- that cannot be decided here (outside the translated subset, or over the
-- work budget: then `on_skip(path, pattern, "budget")` is called). Never
-- false for a match that was not tried.
-- @tparam string s
-- @tparam string re
-- @tparam string path
-- @tparam[opt] function on_skip
-- @treturn boolean|nil
function M.match(s, re, path, on_skip)
  local hit, why = regex.match_pattern(s, re)
  if why == "budget" and on_skip then on_skip(path, re, why) end
  return hit
end

--- Checks the string keywords (`minLength`, `maxLength`, `pattern`).
-- @tparam string v
-- @tparam table s
-- @tparam string path
-- @tparam[opt] function on_skip called for a pattern over the work budget
-- @treturn boolean true, or false, path, message
function M.check_string(v, s, path, on_skip)
  if type(s.minLength) == "number" or type(s.maxLength) == "number" then
    local ok, p, m = M.check_count(jsonvalue.utf8_length(v), s.minLength, s.maxLength, path,
      "must be at least %s characters long, got %d", "must be at most %s characters long, got %d")
    if not ok then return false, p, m end
  end
  if type(s.pattern) == "string" and M.match(v, s.pattern, path, on_skip) == false then
    return false, path, "does not match pattern " .. show(s.pattern)
  end
  return true
end

return M
