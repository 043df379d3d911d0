-- bench/instructions.lua: the figures issue 26 is judged on, which hold on
-- a shared machine: instructions per chunk (callgrind over the consumer
-- process; the same from run to run, whatever the load), with CPU per
-- chunk beside them, for the C floor and for baseten on Lua 5.4 and LuaJIT
-- reading the flood stream three ways (`for chunk in stream`,
-- `stream:pieces()`, `stream:text()`); and the same stream sent a byte (and
-- seven bytes) a send with TCP_NODELAY, against it sent whole. Writes its
-- section of bench/RESULTS.md between the markers below, with a "what
-- changed" table when a before tree is given.
--
--   bash bench/run.sh runs it after run.lua; alone:
--   bash bench/build_dev.sh 5.4 5.1 && source scripts/env.sh 5.4 && lua5.4 bench/instructions.lua
--
-- Knobs: BENCH_INSTR_N (20000 chunks under callgrind; a 16-chunk run is
-- taken off, so start-up and connecting are out), BENCH_CPU_N (200000
-- chunks for CPU, the best of BENCH_REPS = 3 runs), BENCH_BYTE_N (3000
-- events a byte at a time), BENCH_BEFORE=DIR (another tree, e.g. a `git
-- archive` of main, with its core built into DIR/bench/out/dev by
-- build_dev.sh: measured the same way, as "before"), BENCH_OUT.
--
-- Every consumer is this tree's bench/consumer.lua (public API only) over
-- the tree's lua/ and bench/out/dev core.
local server = require("spec.support.server")
local json = require("baseten.core").json
local common = require("bench.common")

local ROOT = os.getenv("BENCH_ROOT") or "."
local OUT = ROOT .. "/bench/out"
local INSTR_N = tonumber(os.getenv("BENCH_INSTR_N") or "20000")
local CPU_N = tonumber(os.getenv("BENCH_CPU_N") or "200000")
local BYTE_N = tonumber(os.getenv("BENCH_BYTE_N") or "3000")
local REPS = tonumber(os.getenv("BENCH_REPS") or "3")
local BEFORE = os.getenv("BENCH_BEFORE")
local RESULTS = os.getenv("BENCH_OUT") or (ROOT .. "/bench/RESULTS.md")
local BEGIN, END = "<!-- instructions.lua: begin -->", "<!-- instructions.lua: end -->"

local q, sh = common.q, common.sh

-- The flood of bench/run.lua: one-token chunks of about 190 bytes.
local TOKENS = { " The", " quick", " brown", " fox", " jumps", " over", " the", " lazy",
                 " dog", ",", " and", " then", " it", " runs", " away", "." }
local HEAD = 'data: {"id":"chatcmpl-B9MBs8CjcvOU2jLn","object":"chat.completion.chunk",'
  .. '"created":1741569952,"model":"gpt-4o-mini","choices":[{"index":0,"delta":'
local UNIT = {}
for i, tok in ipairs(TOKENS) do UNIT[i] = HEAD .. '{"content":"' .. tok .. '"},"finish_reason":null}]}\n\n' end
UNIT = table.concat(UNIT)

local function flood(n, split)
  local r = { chunks = { { ["repeat"] = UNIT, count = n // #TOKENS }, "data: [DONE]\n\n" } }
  if split then r.split, r.write_delay, r.chunked = split, 0, false end
  return r
end

-- The consumers of one tree: the C floor and the three Lua paths on each Lua.
local function consumers(tree, label)
  local list = {}
  for _, l in ipairs({ { "Lua 5.4", "lua5.4", "5.4" }, { "LuaJIT", "luajit", "5.1" } }) do
    local env = ("env -u LUA_PATH_5_4 -u LUA_CPATH_5_4 LUA_PATH=%s LUA_CPATH=%s "):format(
      q(tree .. "/lua/?.lua;" .. tree .. "/lua/?/init.lua;;"), q(tree .. "/bench/out/dev/" .. l[3] .. "/?.so;;"))
    for _, mode in ipairs({ "stream", "pieces", "text" }) do
      list[#list + 1] = { lua = l[1], mode = mode, tree = label, env = env,
                          exe = l[2] .. " " .. ROOT .. "/bench/consumer.lua " .. mode .. " " }
    end
  end
  return list
end

local C = { lua = "C floor", mode = "stream", tree = "", env = "", exe = OUT .. "/c_consumer " }

local srv

-- Instructions of one consumer run over `n` chunks (split: sends).
local function instructions(c, n, split)
  srv:reset()
  srv:enqueue(flood(n, split))
  local out = sh(c.env .. "valgrind --tool=callgrind --callgrind-out-file=/dev/null " .. c.exe .. q(srv.url)
    .. " 2>&1 >/dev/null")
  local ir = out:match("Collected%s*:%s*(%d+)")
  if not ir then error("bench: callgrind failed for " .. c.exe .. ":\n" .. out, 0) end
  return tonumber(ir)
end

local function instr_per_chunk(c, split, n)
  n = n or INSTR_N
  return (instructions(c, n, split) - instructions(c, 16, split)) / (n - 16)
end

-- CPU seconds per chunk: the best of REPS runs.
local function cpu_per_chunk(c, n, split)
  local best = math.huge
  for _ = 1, REPS do
    srv:reset()
    srv:enqueue(flood(n, split))
    local out, ok = sh(c.env .. c.exe .. q(srv.url) .. " 2>&1")
    local r = json.decode(out:match("({[^\n]*})%s*$") or "null")
    if not ok or type(r) ~= "table" then error("bench: " .. c.exe .. " failed:\n" .. out, 0) end
    best = math.min(best, r.cpu / n)
  end
  return best
end

local rows, byte_rows = {}, {}

local function measure_tree(list)
  for _, c in ipairs(list) do
    local r = { c = c, ir = instr_per_chunk(c), cpu = cpu_per_chunk(c, CPU_N) }
    rows[#rows + 1] = r
    io.stderr:write(("  %-8s %-7s %-7s %8.0f instructions  %6.2f µs per chunk\n")
      :format(c.tree, c.lua, c.mode, r.ir, r.cpu * 1e6))
  end
end

local function measure_bytes(list)
  for _, c in ipairs(list) do
    if c.mode ~= "text" then
      local whole = { ir = instr_per_chunk(c, nil, BYTE_N), cpu = cpu_per_chunk(c, BYTE_N) }
      for _, split in ipairs({ 1, 7 }) do
        local r = { c = c, split = split, ir = instr_per_chunk(c, split, BYTE_N),
                    cpu = cpu_per_chunk(c, BYTE_N, split), whole = whole }
        byte_rows[#byte_rows + 1] = r
        io.stderr:write(("  %-8s %-7s %-7s %d-byte sends: %8.0f instructions (whole %0.f)  %6.2f µs (whole %.2f)\n")
          :format(c.tree, c.lua, c.mode, split, r.ir, whole.ir, r.cpu * 1e6, whole.cpu * 1e6))
      end
    end
  end
end

local function find(tree, lua, mode)
  for _, r in ipairs(rows) do
    if r.c.tree == tree and r.c.lua == lua and r.c.mode == mode then return r end
  end
end

local PATH = { stream = "`for chunk in stream`", pieces = "`stream:pieces()`", text = "`stream:text()`" }

local function report()
  local floor = find("", "C floor", "stream")
  local L = { BEGIN, "## Instructions per chunk, and the text fast path (bench/instructions.lua)", "",
    ("Callgrind over the consumer process, %d chunks of the flood above less a 16-chunk run, so start-up "
      .. "and connecting are out: unlike CPU seconds, the same on a busy machine. CPU: the best of %d runs "
      .. "of %d chunks. Issue 26's goals are judged on the instruction ratios."):format(INSTR_N, REPS, CPU_N), "",
    "| consumer | tree | instructions per chunk | ÷ C floor | CPU µs per chunk | ÷ C floor |",
    "|---|---|---|---|---|---|" }
  for _, r in ipairs(rows) do
    local name = r.c.lua == "C floor" and "C (libcurl + cJSON)" or (r.c.lua .. ", " .. PATH[r.c.mode])
    L[#L + 1] = ("| %s | %s | %.0f | %.2fx | %.2f | %.2fx |"):format(name, r.c.tree, r.ir, r.ir / floor.ir,
      r.cpu * 1e6, r.cpu / floor.cpu)
  end
  L[#L + 1] = ""
  L[#L + 1] = "### A stream sent a byte at a time"
  L[#L + 1] = ""
  L[#L + 1] = ("The same flood, %d chunks, written by the server in 1-byte and 7-byte sends with TCP_NODELAY "
    .. "(no chunked framing), against it sent whole. How many bytes each read finds depends on timing, so "
    .. "these instruction counts move a little with the load. Goal: CPU per event at most 2x whole."):format(BYTE_N)
  L[#L + 1] = ""
  L[#L + 1] = "| consumer | tree | sends | instructions per event | ÷ whole | CPU µs per event | ÷ whole "
    .. "| CPU ÷ C floor, same sends |"
  L[#L + 1] = "|---|---|---|---|---|---|---|---|"
  local c_at = {}
  for _, r in ipairs(byte_rows) do
    if r.c.lua == "C floor" then c_at[r.split] = r.cpu end
  end
  for _, r in ipairs(byte_rows) do
    local name = r.c.lua == "C floor" and "C (libcurl + cJSON)" or (r.c.lua .. ", " .. PATH[r.c.mode])
    L[#L + 1] = ("| %s | %s | %d bytes | %.0f | %.2fx | %.2f | %.2fx | %.2fx |"):format(name, r.c.tree, r.split, r.ir,
      r.ir / r.whole.ir, r.cpu * 1e6, r.cpu / r.whole.cpu, r.cpu / c_at[r.split])
  end
  L[#L + 1] = ""
  L[#L + 1] = "A send of 1 or 7 bytes is a segment, a wake-up and a read (a syscall and a round of libcurl) per "
    .. "piece, for every client: the C floor pays the same, so CPU ÷ whole measures the kernel and libcurl "
    .. "more than the parsing. The parsing itself is linear: csrc/test/test_sse_work.c counts the SSE "
    .. "parser's work per byte fed 1 and 7 bytes at a time, the same for a 1 KiB and a 256 KiB event."
  if BEFORE then
    L[#L + 1] = ""
    L[#L + 1] = "### What changed (issue 26), from this one run"
    L[#L + 1] = ""
    L[#L + 1] = "| goal | before: instructions (CPU) ÷ C floor | after | goal met? |"
    L[#L + 1] = "|---|---|---|---|"
    for _, g in ipairs({ { "Lua 5.4", "stream", 1.5 }, { "Lua 5.4", "pieces", 1.0 }, { "Lua 5.4", "text", 1.0 },
                         { "LuaJIT", "stream", nil }, { "LuaJIT", "pieces", 1.0 }, { "LuaJIT", "text", 1.0 } }) do
      local b, a = find("before", g[1], g[2]), find("after", g[1], g[2])
      if a and b then
        local met = g[3] and ((a.ir / floor.ir <= g[3]) and ("yes (at most %.1fx)"):format(g[3])
          or ("no: %.2fx, goal %.1fx"):format(a.ir / floor.ir, g[3])) or "(no goal)"
        L[#L + 1] = ("| %s, %s | %.2fx (%.2fx) | %.2fx (%.2fx) | %s |"):format(g[1], PATH[g[2]], b.ir / floor.ir,
          b.cpu / floor.cpu, a.ir / floor.ir, a.cpu / floor.cpu, met)
      end
    end
  end
  L[#L + 1] = END
  return table.concat(L, "\n")
end

srv = server.start()
local ok, err = pcall(function()
  rows[#rows + 1] = { c = C, ir = instr_per_chunk(C), cpu = cpu_per_chunk(C, CPU_N) }
  if BEFORE then
    measure_tree(consumers(BEFORE, "before"))
  end
  measure_tree(consumers(ROOT, BEFORE and "after" or "this"))
  local byte_list = { C }
  for _, c in ipairs(consumers(ROOT, BEFORE and "after" or "this")) do byte_list[#byte_list + 1] = c end
  measure_bytes(byte_list)
end)
srv:stop()
if not ok then error(err, 0) end

local section = report()
print(section)
if RESULTS ~= "-" then
  common.replace_marked(RESULTS, section, BEGIN, END)
  io.stderr:write("instructions: wrote " .. RESULTS .. "\n")
end
