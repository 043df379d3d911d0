-- spec/support/literals.lua: the string literals of a Lua source, decoded,
-- in order (scripts/fuzz_seeds.lua seeds the fuzzers with them, and
-- spec/text_path_spec.lua runs the chunks among them through both stream
-- paths). A literal that does not load on this Lua (`\u{...}` on 5.1) is
-- skipped.
local M = {}

-- The string literals of a Lua chunk, decoded, in order.
function M.literals(src)
  local out, i, n = {}, 1, #src
  while i <= n do
    local c = src:sub(i, i)
    if src:sub(i, i + 1) == "--" then
      local eq = src:match("^%[(=*)%[", i + 2)
      if eq then
        local _, e = src:find("]" .. eq .. "]", i, true)
        i = (e or n) + 1
      else
        i = (src:find("\n", i, true) or n) + 1
      end
    elseif c == '"' or c == "'" then
      local j = i + 1
      while j <= n do
        local d = src:sub(j, j)
        if d == "\\" then j = j + 2
        elseif d == c or d == "\n" then break
        else j = j + 1 end
      end
      local f = (loadstring or load)("return " .. src:sub(i, j))
      local ok, v = pcall(f or error)
      if ok and type(v) == "string" then out[#out + 1] = v end
      i = j + 1
    elseif c == "[" and src:match("^%[=*%[", i) then
      local eq = src:match("^%[(=*)%[", i)
      local s = i + #eq + 2
      local e1, e2 = src:find("]" .. eq .. "]", s, true)
      if not e1 then break end
      out[#out + 1] = src:sub(s, e1 - 1):gsub("^\r?\n", "")
      i = e2 + 1
    else
      i = i + 1
    end
  end
  return out
end

return M
