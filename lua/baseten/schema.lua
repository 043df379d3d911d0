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
-- How Lua values map to JSON types: `json.null` (and nil) is null; a table
-- marked by `json.array` (every decoded array is) is an array, one marked
-- by `json.object` an object; an unmarked table is an array when its keys
-- are exactly 1..n (n > 0), else an object, so an empty unmarked table is
-- an object, as `json.encode` writes it.
--
-- `pattern` and `patternProperties` are ECMA-262 regular expressions, which
-- Lua has no engine for. A safe subset is translated to Lua patterns (see
-- `lua_pattern`); a pattern outside it is skipped (never a violation), so
-- the check can be too lenient but never wrong.
--
-- Paths name the first violation found, JSONPath style: `$` is the value,
-- `.name` or `["odd key"]` a property, `[2]` an array element counted from
-- 0 as in JSON (Lua index 3). Checks run in a fixed order: the node's own
-- keywords first, `required` in the order listed, then properties sorted by
-- name, then array elements in order.
-- @module baseten.schema
local json = require("baseten.core").json

local null = json.null
local floor, huge = math.floor, math.huge
local concat, sort = table.concat, table.sort

local M = {}

--- Deepest nesting of the data (arrays and objects in one another) checked
-- before validation gives up with a violation. A `$ref` cycle that consumes
-- no data is a violation of its own ("schema error: a $ref cycle ...").
M.MAX_DEPTH = 200

---------------------------------------------------------------------------
-- values
---------------------------------------------------------------------------

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
local type_of = M.type_of

local mtype = math.type -- nil on 5.1 and LuaJIT

local function is_integer(x)
  if mtype and mtype(x) == "integer" then return true end
  return x == x and x ~= huge and x ~= -huge and x == floor(x)
end

--- Whether two values are equal as JSON: numbers by value (1 == 1.0),
-- arrays element by element, objects key by key; null equals null.
-- @param a
-- @param b
-- @treturn boolean
function M.equal(a, b)
  local ka = type_of(a)
  if ka ~= type_of(b) then return false end
  if ka == "null" then return true end
  if ka == "array" then
    if #a ~= #b then return false end
    for i = 1, #a do
      if not M.equal(a[i], b[i]) then return false end
    end
    return true
  elseif ka == "object" then
    for k, v in pairs(a) do
      if b[k] == nil or not M.equal(v, b[k]) then return false end
    end
    for k in pairs(b) do
      if a[k] == nil then return false end
    end
    return true
  end
  return a == b
end
local equal = M.equal

-- UTF-8 code points of a string: every byte that is not a continuation byte.
local function utf8_length(s)
  local _, n = s:gsub("[^\128-\191]", "")
  return n
end

local function show(v)
  local ok, s = pcall(json.encode, v)
  if not ok then s = tostring(v) end
  if #s > 80 then s = s:sub(1, 77) .. "..." end
  return s
end

local function key_path(path, k)
  if type(k) == "string" and k:match("^[A-Za-z_][A-Za-z0-9_]*$") then return path .. "." .. k end
  local ok, s = pcall(json.encode, tostring(k))
  return path .. "[" .. (ok and s or string.format("%q", tostring(k))) .. "]"
end

local function sorted_keys(t)
  local keys = {}
  for k in pairs(t) do keys[#keys + 1] = k end
  sort(keys, function(a, b)
    if type(a) == type(b) and (type(a) == "string" or type(a) == "number") then return a < b end
    return type(a) < type(b)
  end)
  return keys
end

---------------------------------------------------------------------------
-- ECMA-262 patterns as Lua patterns
---------------------------------------------------------------------------

local CONT = "\128-\191" -- UTF-8 continuation bytes, inside a Lua set

-- Inside a Lua set every ASCII punctuation byte is escaped with %.
local function set_char(c)
  if c:match("^[A-Za-z0-9]$") or c:byte() < 32 then return c end
  return "%" .. c
end

local function item_char(c)
  if c:match("^[%^%$%(%)%%%.%[%]%*%+%-%?]$") then return "%" .. c end
  return c
end

local CTRL = { n = "\n", r = "\r", t = "\t", f = "\f", v = "\v" }
local SPACE = " \t\n\r\f\v"
local CLASS = { d = "0-9", w = "A-Za-z0-9_", s = SPACE } -- \d \w \s inside a set
local MAX_ITEMS, MAX_OPTIONAL, MAX_COUNT = 200, 20, 100

-- An escape \e (e at re[i]) that stands for one ASCII character, or nil.
local function escaped_char(re, i)
  local e = re:sub(i, i)
  if CTRL[e] then return CTRL[e], i + 1 end
  if e == "x" or e == "u" then
    local hex = re:match(e == "x" and "^%x%x" or "^%x%x%x%x", i + 1)
    if not hex then return nil end
    local code = tonumber(hex, 16)
    if code == 0 or code >= 128 then return nil end
    return string.char(code), i + 1 + #hex
  end
  if e ~= "" and e:byte() < 128 and e:byte() > 32 and not e:match("[A-Za-z0-9]") then return e, i + 1 end
  return nil
end

-- Parses a class [...] whose '[' is at re[i]. Returns the Lua set body,
-- whether it is negated, whether it is Unicode-sensitive (\s), and the
-- index after ']'; or nil when the class is outside the subset.
local function parse_class(re, i)
  local n = #re
  i = i + 1
  local neg = re:sub(i, i) == "^"
  if neg then i = i + 1 end
  local parts, sensitive, first = {}, false, true
  while true do
    if i > n then return nil end
    local c = re:sub(i, i)
    if c == "]" then
      if first then return nil end -- [] and [^]: no Lua equivalent
      return concat(parts), neg, sensitive, i + 1
    end
    first = false
    local lo, nexti
    if c == "\\" then
      local e = re:sub(i + 1, i + 1)
      if CLASS[e] then
        if e == "s" then sensitive = true end
        parts[#parts + 1] = CLASS[e]
        if re:sub(i + 2, i + 2) == "-" and re:sub(i + 3, i + 3) ~= "]" then return nil end
        i = i + 2
      elseif e == "b" then
        lo, nexti = "\8", i + 2
      else
        lo, nexti = escaped_char(re, i + 1)
        if not lo then return nil end
      end
    elseif c:byte() >= 128 or c:byte() == 0 then
      return nil
    else
      lo, nexti = c, i + 1
    end
    if lo then
      i = nexti
      if re:sub(i, i) == "-" and re:sub(i + 1, i + 1) ~= "]" and i + 1 <= n then
        local hi
        local d = re:sub(i + 1, i + 1)
        if d == "\\" then
          hi, nexti = escaped_char(re, i + 2)
        elseif d:byte() < 128 and d:byte() > 0 then
          hi, nexti = d, i + 2
        end
        if not hi or hi:byte() < lo:byte() then return nil end
        if lo:match("^[A-Za-z0-9]$") and hi:match("^[A-Za-z0-9]$") then
          parts[#parts + 1] = lo .. "-" .. hi
        else
          for b = lo:byte(), hi:byte() do parts[#parts + 1] = set_char(string.char(b)) end
        end
        i = nexti
      else
        parts[#parts + 1] = set_char(lo)
      end
    end
  end
end

-- One atom at re[i]. Returns a table {one = Lua item matching one byte,
-- cp = Lua items matching exactly one code point (wide atoms), seq = a
-- multi-byte literal, sensitive = bool} and the next index; or nil.
local function parse_atom(re, i)
  local c = re:sub(i, i)
  if c == "." then
    return { one = "[^\n\r]", cp = "[^\n\r" .. CONT .. "][" .. CONT .. "]*" }, i + 1
  elseif c == "[" then
    local body, neg, sensitive, nexti = parse_class(re, i)
    if not body then return nil end
    if neg then
      -- [^\s] accepts Unicode spaces here: too lenient, never wrong
      return { one = "[^" .. body .. "]", cp = "[^" .. body .. CONT .. "][" .. CONT .. "]*" }, nexti
    end
    return { one = "[" .. body .. "]", sensitive = sensitive }, nexti
  elseif c == "\\" then
    local e = re:sub(i + 1, i + 1)
    if CLASS[e] then return { one = "[" .. CLASS[e] .. "]", sensitive = e == "s" }, i + 2 end
    local up = CLASS[e:lower()]
    if up then
      return { one = "[^" .. up .. "]", cp = "[^" .. up .. CONT .. "][" .. CONT .. "]*" }, i + 2
    end
    local ch, nexti = escaped_char(re, i + 1)
    if not ch then return nil end
    return { one = item_char(ch) }, nexti
  elseif c:match("^[%(%)|{%*%+%?%^%$]$") or c == "" or c:byte() == 0 then
    return nil
  end
  local b = c:byte()
  if b < 128 then return { one = item_char(c) }, i + 1 end
  local len = b >= 240 and 4 or b >= 224 and 3 or b >= 192 and 2 or 0
  if len == 0 or #re < i + len - 1 then return nil end
  return { seq = re:sub(i, i + len - 1) }, i + len
end

-- The quantifier at re[i]: min, max (nil = unbounded), next index.
local function parse_quantifier(re, i)
  local c = re:sub(i, i)
  local lo, hi, nexti
  if c == "*" then lo, hi, nexti = 0, nil, i + 1
  elseif c == "+" then lo, hi, nexti = 1, nil, i + 1
  elseif c == "?" then lo, hi, nexti = 0, 1, i + 1
  elseif c == "{" then
    local a, comma, b, close = re:match("^{(%d+)(,?)(%d*)}()", i)
    if not a then return nil end -- a literal '{': outside the subset
    lo = tonumber(a)
    hi = comma == "" and lo or (b ~= "" and tonumber(b) or nil)
    if (hi and hi < lo) or lo > MAX_COUNT or (hi and hi > MAX_COUNT) then return false end
    nexti = close
  else
    return nil
  end
  if re:sub(nexti, nexti) == "?" then nexti = nexti + 1 end -- lazy: same matches
  return lo, hi, nexti
end

local function translate(re)
  local out, sensitive, optional = {}, false, 0
  local i, n = 1, #re
  if re:sub(1, 1) == "^" then
    out[1] = "^"
    i = 2
  end
  while i <= n do
    if re:sub(i, i) == "$" and i == n then
      out[#out + 1] = "$"
      break
    end
    local atom, nexti = parse_atom(re, i)
    if not atom then return nil, "unsupported syntax at byte " .. i end
    if atom.sensitive then sensitive = true end
    local lo, hi, afterq = parse_quantifier(re, nexti)
    if lo == false then return nil, "repetition count too large at byte " .. nexti end
    if lo == nil then
      lo, hi, afterq = 1, 1, nexti
    end
    if atom.seq then
      if hi == nil or hi ~= lo then return nil, "quantified non-ASCII character at byte " .. i end
      for _ = 1, lo do out[#out + 1] = atom.seq end
    elseif atom.cp then
      -- a wide atom (., [^...], \D, \W, \S) must match whole code points:
      -- exactly-one uses cp; a trailing unbounded run of bytes is safe
      for _ = 1, lo do out[#out + 1] = atom.cp end
      if hi == nil then
        out[#out + 1] = atom.one .. "*"
      elseif hi > lo then
        sensitive = true
        optional = optional + hi - lo
        for _ = lo + 1, hi do out[#out + 1] = atom.one .. "?" end
      end
    else
      for _ = 1, lo do out[#out + 1] = atom.one end
      if hi == nil then
        out[#out + 1] = atom.one .. "*"
      else
        optional = optional + hi - lo
        for _ = lo + 1, hi do out[#out + 1] = atom.one .. "?" end
      end
    end
    if #out > MAX_ITEMS or optional > MAX_OPTIONAL then return nil, "pattern too long" end
    i = afterq
  end
  return concat(out), sensitive
end

local pattern_cache = {}

--- Translates an ECMA-262 regular expression (as JSON Schema's `pattern`)
-- to a Lua pattern, when it lies in the subset that Lua patterns express
-- exactly.
--
-- The subset: literal characters (non-ASCII ones only unquantified or with
-- an exact `{n}`), `.`, classes `[...]` and `[^...]` of ASCII characters,
-- ranges and `\d \w \s`, the escapes `\d \D \w \W \s \S \n \r \t \f \v
-- \xHH \uHHHH` (ASCII) and escaped punctuation, the quantifiers `* + ? {n}
-- {n,} {n,m}` (lazy forms too) on one atom, `^` at the start and `$` at
-- the end. Outside it (groups, `|`, backreferences, `\b`, lookarounds,
-- `\p{...}`, non-ASCII in classes, ...) the result is nil.
--
-- Matching is by code points, as with the `u` flag: `.` and negated
-- classes never match part of a character. Two cases are exact only on
-- ASCII text, because Lua cannot express them over UTF-8: `\s` outside a
-- negated class (ECMA counts Unicode spaces such as U+00A0) and a wide
-- atom (`.`, a negated class, `\D \W \S`) under an optional repetition
-- (`?`, `{n,m}` with n < m); for those the second result is true, and
-- `match_pattern` skips non-ASCII strings. Where the translation is only
-- more lenient than ECMA it is used as is: `\S` and `[^\s]` accept the
-- non-ASCII spaces, `.` accepts U+2028 and U+2029.
-- @tparam string re
-- @treturn string|nil the Lua pattern, or nil
-- @treturn boolean|string whether it is exact only on ASCII text; or why there is none
function M.lua_pattern(re)
  if type(re) ~= "string" then return nil, "pattern is not a string" end
  local hit = pattern_cache[re]
  if hit == nil then
    local pat, info = translate(re)
    hit = { pat, info }
    pattern_cache[re] = hit
  end
  return hit[1], hit[2]
end

--- The most work one pattern match may do, in steps of the worst case of
-- Lua's backtracking matcher (about a nanosecond each).
M.PATTERN_BUDGET = 1e8

-- The worst-case steps of string.find(s, pat) for #s == n: each unbounded
-- repeat (*, +, -) can retry at every position, each start position too
-- when the pattern is not anchored, and each optional item (?) doubles.
local function pattern_cost(pat, n)
  local reps, opts, i, len = 0, 0, 1, #pat
  if pat:sub(1, 1) ~= "^" then reps = 1 end
  while i <= len do
    local c = pat:sub(i, i)
    if c == "%" then
      i = i + 2
    elseif c == "[" then
      local j = i + 1
      if pat:sub(j, j) == "^" then j = j + 1 end
      if pat:sub(j, j) == "]" then j = j + 1 end
      while j <= len and pat:sub(j, j) ~= "]" do j = j + (pat:sub(j, j) == "%" and 2 or 1) end
      i = j + 1
    else
      if c == "*" or c == "+" or c == "-" then
        reps = reps + 1
      elseif c == "?" then
        opts = opts + 1
      end
      i = i + 1
    end
  end
  return (n + 1) ^ reps * 2 ^ opts
end

--- Whether a string matches an ECMA-262 regular expression (anywhere in
-- it, as JSON Schema's `pattern`), or nil when that cannot be decided here
-- (see `lua_pattern`). A match whose worst case exceeds
-- `PATTERN_BUDGET` is not tried: false, "bound" (text from the network
-- never meets an unbounded backtracking match).
-- @tparam string s
-- @tparam string re
-- @treturn boolean|nil
-- @treturn[opt] string "bound" when the bound was hit
function M.match_pattern(s, re)
  local pat, ascii_only = M.lua_pattern(re)
  if not pat then return nil end
  if ascii_only and s:find("[\128-\255]") then return nil end
  if pattern_cost(pat, #s) > M.PATTERN_BUDGET then return false, "bound" end
  local ok, found = pcall(string.find, s, pat)
  if not ok then return nil end -- "pattern too complex" and the like
  return found ~= nil
end

---------------------------------------------------------------------------
-- validation
---------------------------------------------------------------------------

local function bound_message(re, s)
  return "pattern " .. show(re) .. " is too costly to match against " .. #s
    .. " characters (over baseten.schema.PATTERN_BUDGET steps in the worst case)"
end

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

local function check_number(v, s, path)
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

local function check_string(v, s, path)
  if type(s.minLength) == "number" or type(s.maxLength) == "number" then
    local len = utf8_length(v)
    if type(s.minLength) == "number" and len < s.minLength then
      return false, path, "must be at least " .. s.minLength .. " characters long, got " .. len
    end
    if type(s.maxLength) == "number" and len > s.maxLength then
      return false, path, "must be at most " .. s.maxLength .. " characters long, got " .. len
    end
  end
  if type(s.pattern) == "string" then
    local hit, bound = M.match_pattern(v, s.pattern)
    if bound then return false, path, bound_message(s.pattern, v) end
    if hit == false then return false, path, "does not match pattern " .. show(s.pattern) end
  end
  return true
end

local function check_array(ctx, v, s, path)
  local n = #v
  if type(s.minItems) == "number" and n < s.minItems then
    return false, path, "expected at least " .. s.minItems .. " items, got " .. n
  end
  if type(s.maxItems) == "number" and n > s.maxItems then
    return false, path, "expected at most " .. s.maxItems .. " items, got " .. n
  end
  if s.uniqueItems == true then
    for i = 2, n do
      for j = 1, i - 1 do
        if equal(v[i], v[j]) then
          return false, path .. "[" .. (i - 1) .. "]", "duplicate of item " .. (j - 1) .. " (uniqueItems)"
        end
      end
    end
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
      local ok, p, m = descend(ctx, v[i], sub, path .. "[" .. (i - 1) .. "]")
      if not ok then return false, p, m end
    end
  end
  if s.contains ~= nil then
    local found = false
    for i = 1, n do
      if descend(ctx, v[i], s.contains, path) then
        found = true
        break
      end
    end
    if not found then return false, path, "no item matches the \"contains\" schema" end
  end
  return true
end

local function pattern_keys(pp)
  -- the patternProperties whose patterns can be decided, and whether all can
  local list, all = {}, true
  for _, re in ipairs(sorted_keys(pp)) do
    if type(re) == "string" and M.lua_pattern(re) then
      list[#list + 1] = re
    else
      all = false
    end
  end
  return list, all
end

local function check_object(ctx, v, s, path)
  local ok, p, m
  if type(s.required) == "table" then
    for _, name in ipairs(s.required) do
      if v[name] == nil then return false, key_path(path, name), "missing required property" end
    end
  end
  local count
  if type(s.minProperties) == "number" or type(s.maxProperties) == "number" then
    count = 0
    for _ in pairs(v) do count = count + 1 end
    if type(s.minProperties) == "number" and count < s.minProperties then
      return false, path, "expected at least " .. s.minProperties .. " properties, got " .. count
    end
    if type(s.maxProperties) == "number" and count > s.maxProperties then
      return false, path, "expected at most " .. s.maxProperties .. " properties, got " .. count
    end
  end
  local props = type(s.properties) == "table" and s.properties or {}
  local pp = type(s.patternProperties) == "table" and s.patternProperties or nil
  local pkeys, all_translated = {}, true
  if pp then pkeys, all_translated = pattern_keys(pp) end
  local extra = s.additionalProperties
  for _, k in ipairs(sorted_keys(v)) do
    local decided = all_translated
    local kp = key_path(path, k)
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
        local hit, bound = M.match_pattern(k, re)
        if bound then return false, kp, bound_message(re, k) end
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
      ok, p, m = descend(ctx, v[k], extra, kp)
      if not ok then return false, p, m end
    end
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
  ok, p, m = check_type(s, kind, v, path)
  if not ok then return false, p, m end
  if s.const ~= nil and not equal(v, s.const) then
    return false, path, "expected " .. show(s.const) .. ", got " .. show(v)
  end
  if type(s.enum) == "table" then
    local found = false
    for _, e in ipairs(s.enum) do
      if equal(v, e) then
        found = true
        break
      end
    end
    if not found then return false, path, "expected one of " .. show(s.enum) .. ", got " .. show(v) end
  end
  if kind == "number" then
    ok, p, m = check_number(v, s, path)
  elseif kind == "string" then
    ok, p, m = check_string(v, s, path)
  elseif kind == "array" then
    ok, p, m = check_array(ctx, v, s, path)
  elseif kind == "object" then
    ok, p, m = check_object(ctx, v, s, path)
  end
  if not ok then return false, p, m end
  return check_combinators(ctx, v, s, path)
end

validate_node = function(ctx, v, s, path)
  if s == true or s == nil then return true end
  if s == false then return false, path, "no value is allowed here (schema false)" end
  if type(s) ~= "table" then return true end
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
  return ok, p, m
end

--- Validates a value against a JSON Schema.
-- @param value a decoded JSON value (or a plain Lua value)
-- @tparam table|boolean schema the JSON Schema, as a Lua table
-- @treturn boolean true when the value satisfies the schema
-- @treturn string the JSONPath of the first violation (`$.items[2].email`)
-- @treturn string what is wrong there (`expected string, got number`)
-- @usage
-- local ok, path, msg = schema.validate(value, s)
-- if not ok then print(path .. ": " .. msg) end
function M.validate(value, schema)
  if type(schema) ~= "table" and type(schema) ~= "boolean" then
    error("baseten.schema.validate: schema must be a table or a boolean", 2)
  end
  local ok, path, message = validate_node({ root = schema, data_depth = 0, active = {} }, value, schema, "$")
  if ok then return true end
  return false, path, message
end

return M
