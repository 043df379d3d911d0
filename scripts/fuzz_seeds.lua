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
local literals = dofile("spec/support/literals.lua").literals

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
