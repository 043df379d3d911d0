-- Seeds the fuzzers from the tests: every string literal in the given Lua
-- files that looks like an SSE stream or like JSON text becomes one corpus
-- file, so the fuzzers start from the inputs the specs already exercise.
--
--   lua5.4 scripts/fuzz_seeds.lua OUTDIR spec/*.lua
--
-- writes OUTDIR/sse/<name> (two control bytes, then the stream: byte 0 cuts
-- the stream in the middle, byte 1 = 0x80 keeps the default event limit; see
-- csrc/fuzz/fuzz_sse.c) and OUTDIR/json/<name>. Lua 5.3+ (for `\u{...}` in
-- literals); a literal that does not load is skipped.
local outdir = assert(arg[1], "usage: fuzz_seeds.lua OUTDIR FILE...")

local function read(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("a")
  f:close()
  return s
end

-- The string literals of a Lua chunk, decoded, in order.
local function literals(src)
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
      local f = load("return " .. src:sub(i, j))
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

local function looks_sse(s)
  return #s >= 5 and (s:find("^data:") or s:find("\ndata:") or s:find("^event:") or s:find("^: "))
end

local function looks_json(s)
  local t = s:match("^%s*(.-)%s*$")
  return #t >= 2 and ((t:sub(1, 1) == "{" and t:sub(-1) == "}") or (t:sub(1, 1) == "[" and t:sub(-1) == "]"))
end

local function write(path, bytes)
  local f = assert(io.open(path, "wb"))
  f:write(bytes)
  f:close()
end

os.execute("mkdir -p '" .. outdir .. "/sse' '" .. outdir .. "/json'")
local seen, nsse, njson = {}, 0, 0
for k = 2, #arg do
  local base = arg[k]:match("([^/]+)%.lua$") or "x"
  for _, s in ipairs(literals(read(arg[k]))) do
    if not seen[s] and #s <= 8192 then
      seen[s] = true
      if looks_sse(s) then
        nsse = nsse + 1
        write(("%s/sse/%s-%03d"):format(outdir, base, nsse), "\128\128" .. s)
      end
      if looks_json(s) or looks_sse(s) then
        -- an SSE data payload is JSON too: seed both targets with it
        local payload = looks_sse(s) and s:match("data: ?([%[{].-)\r?\n") or s
        if payload and looks_json(payload) then
          njson = njson + 1
          write(("%s/json/%s-%03d"):format(outdir, base, njson), payload)
        end
      end
    end
  end
end
io.write(("fuzz seeds from the specs: %d SSE, %d JSON in %s\n"):format(nsse, njson, outdir))
