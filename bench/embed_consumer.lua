-- bench/embed_consumer.lua: the baseten side of the embeddings benchmark
-- (bench/embed.lua starts it with Lua 5.4 or LuaJIT). Prints one JSON line.
--
--   embed URL N BATCH C FORMAT         client:embed of N texts of ~200
--                                      characters: count, dims, cpu, wall,
--                                      rss_kb (VmHWM); the vectors are kept
--   hedge URL N BATCH C [DELAY]        client:embed with hedge_delay DELAY
--                                      (none: no hedging): wall, p50, p99 of
--                                      the requests (on_batch), hedges
--   topk N DIMS QUERIES K              vector.top_k over N vectors: ms per query
--   memory N DIMS                      bytes of N vectors packed and as tables
--
-- cpu is os.clock() (process user+sys) around the measured part only.
local baseten = require("baseten")
local core = require("baseten.core")
local vector = baseten.vector

local mode = arg[1]

local function status_kb(field)
  local f = io.open("/proc/self/status", "r")
  if not f then return -1 end
  local kb = f:read("*a"):match(field .. ":%s*(%d+)")
  f:close()
  return tonumber(kb) or -1
end

--- N texts of about 200 characters, the same in every consumer (node
-- builds them with the same rule).
local WORDS = { "alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliet",
                "kilo", "lima", "mike", "november", "oscar", "papa", "quebec", "romeo", "sierra", "tango" }
local function texts(n)
  local out = {}
  for i = 1, n do
    local parts, len, k = { "text " .. i }, 0, i
    while len < 190 do
      k = (k * 1103515245 + 12345) % 2147483648
      local w = WORDS[k % #WORDS + 1]
      parts[#parts + 1] = w
      len = len + #w + 1
    end
    out[i] = table.concat(parts, " ")
  end
  return out
end

local function rng(seed)
  return function()
    seed = (seed * 1103515245 + 12345) % 2147483648
    return seed / 2147483648 - 0.5
  end
end

local out
if mode == "embed" then
  local url, n, batch, c, format = arg[2], tonumber(arg[3]), tonumber(arg[4]), tonumber(arg[5]), arg[6]
  local client = baseten.new{ api_key = "bench", base_url = url, model = "test/bench", max_retries = 0 }
  local list = texts(n)
  collectgarbage()
  local cpu0, wall0 = os.clock(), core.now()
  local vectors = assert(client:embed(list, { batch_size = batch, concurrency = c, encoding_format = format }))
  out = { count = #vectors, dims = #vectors[1], cpu = os.clock() - cpu0, wall = core.now() - wall0,
          rss_kb = status_kb("VmHWM") }
elseif mode == "hedge" then
  local url, n, batch, c, delay = arg[2], tonumber(arg[3]), tonumber(arg[4]), tonumber(arg[5]), tonumber(arg[6])
  local hedges = 0
  local client = baseten.new{ api_key = false, base_url = url, max_retries = 0,
                              log = function(e) if e.event == "hedge" and e.outcome == "sent" then hedges = hedges + 1 end end }
  local lat = {}
  local wall0 = core.now()
  local vectors = assert(client:embed(texts(n), { batch_size = batch, concurrency = c, hedge_delay = delay,
    dimensions = 64, on_batch = function(_, _, err, s) assert(not err, tostring(err)); lat[#lat + 1] = s end }))
  local wall = core.now() - wall0
  table.sort(lat)
  local function pct(p) return lat[math.max(1, math.ceil(#lat * p))] end
  out = { count = #vectors, requests = #lat, wall = wall, p50 = pct(0.5), p99 = pct(0.99), max = lat[#lat],
          hedges = hedges }
elseif mode == "topk" then
  local n, dims, queries, k = tonumber(arg[2]), tonumber(arg[3]), tonumber(arg[4]), tonumber(arg[5])
  local rnd = rng(42)
  local pool = {}
  for i = 1, 256 do
    local t = {}
    for j = 1, dims do t[j] = rnd() end
    pool[i] = vector.tobytes(vector.from(t))
  end
  local vs = {}
  for i = 1, n do vs[i] = vector.frombytes(pool[(i * 7) % #pool + 1]) end
  local q = vector.frombytes(pool[3])
  vector.top_k(q, vs, k) -- warm the caches once
  local cpu0 = os.clock()
  for _ = 1, queries do vector.top_k(q, vs, k) end
  out = { n = n, dims = dims, ms_per_query = (os.clock() - cpu0) / queries * 1000 }
elseif mode == "memory" then
  local n, dims = tonumber(arg[2]), tonumber(arg[3])
  local rnd = rng(7)
  local row = {}
  for j = 1, dims do row[j] = rnd() end
  local bytes = vector.tobytes(vector.from(row))
  collectgarbage()
  collectgarbage()
  local k0 = collectgarbage("count")
  local packed = {}
  for i = 1, n do packed[i] = vector.frombytes(bytes) end
  collectgarbage()
  local k1 = collectgarbage("count")
  local tables = {}
  for i = 1, n do
    local t = {}
    for j = 1, dims do t[j] = row[j] + i end -- distinct doubles, as decoded JSON would hold
    tables[i] = t
  end
  collectgarbage()
  local k2 = collectgarbage("count")
  out = { n = n, dims = dims, packed_kb = k1 - k0, tables_kb = k2 - k1, keep = #packed + #tables }
else
  io.stderr:write("usage: embed_consumer.lua embed|hedge|topk|memory ...\n")
  os.exit(2)
end
print(baseten.json.encode(out))
