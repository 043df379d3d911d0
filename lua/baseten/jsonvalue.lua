--- JSON values as Lua values: their JSON type, equality as JSON, and a
-- canonical encoding (equal values, and only they, encode the same), used
-- by `baseten.schema`.
--
-- How Lua values map to JSON types: `json.null` (and nil) is null; a table
-- marked by `json.array` (every decoded array is) is an array, one marked
-- by `json.object` an object; an unmarked table is an array when its keys
-- are exactly 1..n (n > 0), else an object, so an empty unmarked table is
-- an object, as `json.encode` writes it.
-- @module baseten.jsonvalue
local json = require("baseten.core").json

local null = json.null
local floor, huge = math.floor, math.huge
local concat, sort = table.concat, table.sort

local M = {}


--- The JSON type of a Lua value: "null", "boolean", "number", "string",
-- "array" or "object"; other Lua values give their Lua type name.
-- @param value
-- @treturn string
function M.type_of(value)
  if value == nil or value == null then return "null" end
  local t = type(value)
  if t ~= "table" then return t end
  local mt = getmetatable(value)
  local mark = type(mt) == "table" and rawget(mt, "__jsontype") or nil
  if mark == "array" or mark == "object" then return mark end
  local n = 0
  for k in pairs(value) do
    if type(k) ~= "number" then return "object" end
    n = n + 1
  end
  if n == 0 then return "object" end
  for i = 1, n do
    if rawget(value, i) == nil then return "object" end
  end
  return "array"
end

local mtype = math.type -- nil on 5.1 and LuaJIT

--- Whether a number is an integer as JSON Schema's "integer" counts: 3 and
-- 3.0, not 3.5 nor infinities.
-- @tparam number x
-- @treturn boolean
function M.is_integer(x)
  if mtype and mtype(x) == "integer" then return true end
  return x == x and x ~= huge and x ~= -huge and x == floor(x)
end

--- The UTF-8 code points of a string: every byte that is not a continuation byte.
-- @tparam string s
-- @treturn integer
function M.utf8_length(s)
  local _, n = s:gsub("[^\128-\191]", "")
  return n
end

--- A value as JSON for a message, cut to 80 bytes.
-- @param v
-- @treturn string
function M.show(v)
  local ok, s = pcall(json.encode, v)
  if not ok then s = tostring(v) end
  if #s > 80 then s = s:sub(1, 77) .. "..." end
  return s
end

--- The JSONPath of member `k` of the value at `path` (`$.a`, `$["odd key"]`).
-- @tparam string path
-- @param k
-- @treturn string
function M.key_path(path, k)
  if type(k) == "string" and k:match("^[A-Za-z_][A-Za-z0-9_]*$") then return path .. "." .. k end
  local ok, s = pcall(json.encode, tostring(k))
  return path .. "[" .. (ok and s or string.format("%q", tostring(k))) .. "]"
end

--- A table's keys, sorted (strings and numbers by value, other keys by type).
-- @tparam table t
-- @treturn table
function M.sorted_keys(t)
  local keys = {}
  for k in pairs(t) do keys[#keys + 1] = k end
  sort(keys, function(a, b)
    if type(a) == type(b) and (type(a) == "string" or type(a) == "number") then return a < b end
    return type(a) < type(b)
  end)
  return keys
end

local tointeger = math.tointeger -- nil on 5.1 and LuaJIT

-- A number's key, ending in ';': numbers equal as Lua numbers (1 and 1.0,
-- 0 and -0) get the same key, others different ones.
local function number_key(x)
  local i = tointeger and tointeger(x)
  if i then return ("%d;"):format(i) end
  if x == 0 then return "0;" end
  return ("%.17g;"):format(x)
end

local function encode(v, out, ids)
  local kind = M.type_of(v)
  if kind == "null" then
    out[#out + 1] = "n"
  elseif kind == "boolean" then
    out[#out + 1] = v and "t" or "f"
  elseif kind == "number" and v == v then
    out[#out + 1] = "d" .. number_key(v)
  elseif kind == "string" then
    out[#out + 1] = "s" .. #v .. ":" .. v
  elseif kind == "array" then
    out[#out + 1] = "["
    for i = 1, #v do encode(v[i], out, ids) end
    out[#out + 1] = "]"
  elseif kind == "object" then
    local members = {}
    for k, x in pairs(v) do
      local part = {}
      encode(k, part, ids)
      encode(x, part, ids)
      members[#members + 1] = concat(part)
    end
    sort(members) -- distinct keys encode differently, so this order is canonical
    out[#out + 1] = "{" .. #members .. ":"
    for _, m in ipairs(members) do out[#out + 1] = m end
  else -- NaN, functions, ...: equal only to themselves (by ==), so a key of their own
    local id = ids[v]
    if id == nil or v ~= v then
      ids.n = (ids.n or 0) + 1
      id = ids.n
      if v == v then ids[v] = id end
    end
    out[#out + 1] = "u" .. id .. ";"
  end
end

--- A canonical encoding of a value: two values get the same string exactly
-- when `equal` says they are equal (objects in any key order, 1 and 1.0).
-- Linear in the size of the value, but for sorting each object's members.
-- @param value
-- @tparam[opt] table ids identities of values that equal only themselves
--   (functions, NaN), to share between calls that compare their results
-- @treturn string
function M.canonical(value, ids)
  local out = {}
  encode(value, out, ids or {})
  return concat(out)
end

--- Whether two values are equal as JSON: numbers by value (1 == 1.0),
-- arrays element by element, objects key by key; null equals null. (Their
-- canonical encodings are the same string.)
-- @param a
-- @param b
-- @treturn boolean
function M.equal(a, b)
  if a == b and a == a then return true end -- the same value (not NaN), or the same table
  local ids = {}
  return M.canonical(a, ids) == M.canonical(b, ids)
end

return M
