-- spec/support/literals.lua: the string literals of a Lua source, decoded,
-- in order (scripts/fuzz_seeds.lua seeds the fuzzers with them, and
-- spec/text_path_spec.lua runs the chunks among them through both stream
-- paths). A literal that does not load on this Lua (`\u{...}` on 5.1) is
-- skipped.
local M = {}

-- The string literals of a Lua chunk, decoded, in order. It jumps from one
-- byte that may start a literal or a comment to the next with find (a loop
-- over every byte took minutes under the sanitizers' constant GC).
function M.literals(src)
  local out, i, n = {}, 1, #src
  while true do
    i = src:find("[-\"'%[]", i)
    if not i then break end
    local c = src:sub(i, i)
    if c == "-" then
      if src:sub(i + 1, i + 1) == "-" then
        local eq = src:match("^%[(=*)%[", i + 2)
        if eq then
          local _, e = src:find("]" .. eq .. "]", i, true)
          i = (e or n) + 1
        else
          i = (src:find("\n", i, true) or n) + 1
        end
      else
        i = i + 1
      end
    elseif c == '"' or c == "'" then
      local stop, j = c == '"' and '[\\"\n]' or "[\\'\n]", i + 1
      while true do
        j = src:find(stop, j)
        if not j then
          j = n + 1
          break
        end
        if src:sub(j, j) ~= "\\" then break end
        j = j + 2
      end
      local f = (loadstring or load)("return " .. src:sub(i, j))
      local ok, v = pcall(f or error)
      if ok and type(v) == "string" then out[#out + 1] = v end
      i = j + 1
    elseif src:match("^%[=*%[", i) then
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
