--- ECMA-262 regular expressions (JSON Schema's `pattern`) as Lua patterns,
-- and a match whose worst-case work is bounded.
--
-- Lua has no regex engine. A safe subset of ECMA-262 is translated to Lua
-- patterns (see `lua_pattern`); a pattern outside it cannot be decided here
-- (nil), and neither can a match whose worst case is over `PATTERN_BUDGET`
-- (nil, "budget"). `baseten.schema` skips both, so its check can be too
-- lenient but never wrong.
-- @module baseten.regex
local concat = table.concat

local M = {}

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
-- it, as JSON Schema's `pattern`), or nil when that cannot be decided here:
-- the pattern is outside the subset (see `lua_pattern`), or the match's
-- worst case exceeds `PATTERN_BUDGET` steps, so it is not tried (text from
-- the network never meets an unbounded backtracking match).
-- @tparam string s
-- @tparam string re
-- @treturn boolean|nil
-- @treturn[opt] string with nil: "budget" when the work bound was the reason
function M.match_pattern(s, re)
  local pat, ascii_only = M.lua_pattern(re)
  if not pat then return nil end
  if ascii_only and s:find("[\128-\255]") then return nil end
  if pattern_cost(pat, #s) > M.PATTERN_BUDGET then return nil, "budget" end
  local ok, found = pcall(string.find, s, pat)
  if not ok then return nil end -- "pattern too complex" and the like
  return found ~= nil
end

return M
