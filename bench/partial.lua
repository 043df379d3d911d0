-- bench/partial.lua: the "Structured output you can watch" rows of
-- `make bench` (`BENCH_ONLY=partial make bench` for this section alone),
-- loaded by bench/run.lua with its helpers:
--
--   1. json.partial's cost against the document's size: a 1 MB JSON
--      document fed in 1-byte pieces, 16-byte pieces and whole, on Lua 5.4
--      and LuaJIT (bench/partial_worker.lua); goals: 1-byte at most 3x the
--      CPU of whole, 16-byte at most 1.5x.
--   2. Side by side with the peers' way, in the same run on the same bytes:
--      npm partial-json called on the growing prefix after each 4-byte piece
--      (as openai-node does; bench/partial_json.mjs) against json.partial
--      fed the same pieces, for a 10 KB and a 100 KB structured reply, and
--      the growth factor between the two.
--   3. client:json with on_partial against the same streamed call without
--      it, on a 2,000-chunk structured stream from the local test server;
--      goal: at most 1.3x the CPU.
-- Each figure is the best of BENCH_PARTIAL_REPS (5) runs.
local common = require("bench.common")

local M = {}
local write, best = common.write_file, common.best

local DOC_BYTES -- the 1 MB document's length, for the per-feed figures

-- A JSON document of about `bytes` bytes: records with the fields a
-- structured reply has (names, numbers, text, a list).
local function document(bytes, wrap)
  local items, size, i = {}, 0, 0
  while size < bytes do
    i = i + 1
    local item = ('{"id":%d,"name":"user %d","email":"user%d@example.com","score":%d.%d,'
      .. '"active":%s,"tags":["alpha","beta","gamma"],"note":"The quick brown fox jumps over the lazy dog, %d times."}')
      :format(i, i, i, i % 100, i % 7, i % 2 == 0 and "true" or "false", i)
    items[#items + 1] = item
    size = size + #item + 1
  end
  local body = "[" .. table.concat(items, ",") .. "]"
  return wrap and ('{"title":"A structured reply","items":' .. body .. "}") or body
end

-- 2,000 content chunks whose text joins into one JSON object.
local function structured_stream(server)
  local doc = document(30000, true)
  local deltas = {}
  for i = 1, 2000 do
    deltas[i] = doc:sub(math.floor((i - 1) * #doc / 2000) + 1, math.floor(i * #doc / 2000))
  end
  local chunks = server.sse_events(deltas, nil, "test/bench")
  return { chunks = chunks, headers = { ["Content-Type"] = "text/event-stream" } }, #chunks - 3
end

--- Runs the scenario; returns the markdown section.
-- env: ROOT, OUT, q, lua_env(v), run_json(cmd), server (spec.support.server),
-- json (baseten.core.json), machine() (the machine lines)
function M.run(env)
  local reps = tonumber(os.getenv("BENCH_PARTIAL_REPS") or "5")
  local dir = env.OUT .. "/partial"
  os.execute("mkdir -p " .. env.q(dir))
  local big = dir .. "/doc-1mb.json"
  local doc = document(1024 * 1024)
  DOC_BYTES = #doc
  write(big, doc)
  local replies = { { "10 KB", dir .. "/reply-10k.json", 10 * 1024 }, { "100 KB", dir .. "/reply-100k.json", 100 * 1024 } }
  for _, r in ipairs(replies) do write(r[2], document(r[3], true)) end
  local worker = env.ROOT .. "/bench/partial_worker.lua"
  -- each tree's Lua modules and core: this one (the rocks, or the dev build
  -- with BENCH_DEV=1) and, with BENCH_PARTIAL_BEFORE=DIR (a tree whose core
  -- bench/build_dev.sh built, e.g. a `git archive` of main), that one, whose
  -- rows say "before"; the worker is always this tree's (public API only)
  local function tree_env(tree, v)
    return ("env -u LUA_PATH_5_4 -u LUA_CPATH_5_4 LUA_PATH=%s LUA_CPATH=%s "):format(
      env.q(tree .. "/lua/?.lua;" .. tree .. "/lua/?/init.lua;;"), env.q(tree .. "/bench/out/dev/" .. v .. "/?.so;;"))
  end
  local before = os.getenv("BENCH_PARTIAL_BEFORE")
  local luas = {}
  for _, t in ipairs(before and { "before", "after" } or { "" }) do
    for _, l in ipairs({ { "Lua 5.4", "lua5.4", "5.4" }, { "LuaJIT", "luajit", "5.1" } }) do
      local e = t == "before" and tree_env(before, l[3]) or (before and tree_env(env.ROOT, l[3]) or env.lua_env(l[3]))
      luas[#luas + 1] = { name = l[1] .. (t ~= "" and ", " .. t or ""), lua = l[1], tree = t, env = e,
                          exe = l[2] .. " " .. worker .. " " }
    end
  end
  local function measure(l, args)
    local cpus, last = {}, nil
    for _ = 1, reps do
      last = env.run_json(l.env .. l.exe .. args)
      if not last.same then error("bench: " .. l.exe .. args .. ": the result differs from json.decode", 0) end
      cpus[#cpus + 1] = last.cpu
    end
    return best(cpus), last
  end
  -- Instructions of the measured part: callgrind over the worker, counting
  -- only between its two toggles (bench/partial_floor.c), so start-up,
  -- reading and cutting the pieces are out. `queue` refills the test server
  -- first. Unlike CPU, the same on a busy machine.
  local function instructions(l, args, queue)
    if queue then queue() end
    local out = io.popen(l.env .. "BENCH_PARTIAL_IR=1 valgrind --tool=callgrind --collect-atstart=no "
      .. "--callgrind-out-file=/dev/null " .. l.exe .. args .. " 2>&1 >/dev/null"):read("*a")
    local ir = tonumber(out:match("Collected%s*:%s*(%d+)"))
    if not ir then error("bench: callgrind failed for " .. l.exe .. args .. ":\n" .. out, 0) end
    return ir
  end
  local R = {}
  for _, l in ipairs(luas) do
    io.stderr:write("bench: partial: " .. l.name .. "\n")
    local r = { ir = {} }
    for _, m in ipairs({ { "decode", "decode " .. env.q(big) }, { "whole", env.q(big) .. " 0" },
                         { "p16", env.q(big) .. " 16" }, { "p1", env.q(big) .. " 1" },
                         { "floor", "floor " .. env.q(big) } }) do
      if m[1] ~= "floor" or l.tree ~= "before" then
        r[m[1]] = measure(l, m[2])
        r.ir[m[1]] = instructions(l, m[2])
      end
    end
    if l.tree ~= "before" then
      for _, rp in ipairs(replies) do r[rp[1]] = measure(l, env.q(rp[2]) .. " 4") end
    end
    R[l.name] = r
  end
  io.stderr:write("bench: partial: npm partial-json\n")
  local node = {}
  for _, r in ipairs(replies) do
    node[r[1]] = measure({ env = "", exe = "node " .. env.ROOT .. "/bench/partial_json.mjs " }, env.q(r[2]) .. " 4")
  end
  -- client:json with and without on_partial, same stream
  io.stderr:write("bench: partial: client:json on a 2000-chunk stream\n")
  local srv = env.server.start()
  local stream, nchunks = structured_stream(env.server)
  local function queue()
    srv:reset()
    srv:enqueue(stream)
  end
  local C = {}
  local ok, err = pcall(function()
    for _, l in ipairs(luas) do
      C[l.name] = { ir = {} }
      for _, mode in ipairs({ "off", "on" }) do
        local cpus = {}
        for _ = 1, reps do
          queue()
          cpus[#cpus + 1] = env.run_json(l.env .. l.exe .. "client " .. env.q(srv.url) .. " " .. mode).cpu
        end
        C[l.name][mode] = best(cpus)
        -- a call's instructions include its waits for the server (polls that
        -- find nothing), which the load moves: the fewest of three runs
        local irs = {}
        for k = 1, 3 do irs[k] = instructions(l, "client " .. env.q(srv.url) .. " " .. mode, queue) end
        C[l.name].ir[mode] = best(irs)
      end
    end
  end)
  srv:stop()
  if not ok then error(err, 0) end

  local L = {}
  local function add(s) L[#L + 1] = s end
  local function yes(c) return c and "yes" or "**no**" end
  local function ms(s) return ("%.1f ms"):format(s * 1000) end
  add("## Structured output you can watch: json.partial")
  add("")
  add(("`make bench` (`BENCH_ONLY=partial make bench` for this section alone; bench/partial.lua). "
    .. "CPU is os.clock (Lua) or process.cpuUsage (node) around the feeds alone, the pieces cut before; "
    .. "the best of %d runs. Every run checks its result against `json.decode` (`JSON.parse` for node)."):format(reps))
  add("")
  if before then
    add(("Rows marked before: the tree in BENCH_PARTIAL_BEFORE (%s), its Lua modules and its core built by "
      .. "bench/build_dev.sh, run by this tree's worker; after: this tree, built the same way."):format(
      os.getenv("BENCH_PARTIAL_BEFORE_NAME") or before))
    add("")
  end
  add("### Cost against the document's size: a 1 MB document (records of names, numbers, text and lists)")
  add("")
  add("Instructions: callgrind over the worker, counting only the measured part (the feeds; start-up, "
    .. "reading and cutting the pieces are out), one run each; the goals are judged on these, as CPU on "
    .. "this shared machine moves with the load. The floor is the same loop of 1-byte calls to a C function "
    .. "that takes the parser and the piece and returns at once (bench/partial_floor.c): what any "
    .. "one-call-per-piece C API costs before it reads a byte.")
  add("")
  add("| | | json.decode | fed whole | 16-byte pieces | 1-byte pieces | 16-byte ÷ whole (goal ≤ 1.5x) "
    .. "| 1-byte ÷ whole (goal ≤ 3x) | floor: 1-byte calls that do nothing | (whole + floor) ÷ whole |")
  add("|---|---|---|---|---|---|---|---|---|---|")
  local function mi(n) return ("%.1f M"):format(n / 1e6) end
  for _, l in ipairs(luas) do
    for _, k in ipairs({ { "instructions", mi }, { "CPU", ms } }) do
      local r = k[1] == "CPU" and R[l.name] or R[l.name].ir
      local f = k[2]
      add(("| %s | %s | %s | %s | %s | %s | %.2fx (%s) | %.2fx (%s) | %s | %s |"):format(l.name, k[1], f(r.decode),
        f(r.whole), f(r.p16), f(r.p1), r.p16 / r.whole, yes(r.p16 / r.whole <= 1.5), r.p1 / r.whole,
        yes(r.p1 / r.whole <= 3), r.floor and f(r.floor) or "", r.floor and ("%.2fx"):format((r.whole + r.floor) / r.whole)
        or ""))
    end
  end
  add("")
  local notes = {}
  for _, l in ipairs(luas) do
    local r = R[l.name].ir
    if r.floor then
      local n16, n1 = math.ceil(DOC_BYTES / 16), DOC_BYTES
      notes[#notes + 1] = ("%s: the whole-text parse is %.0f instructions a byte; a 1-byte feed costs %.0f "
        .. "instructions over it, of which the floor's call is %.0f; a 16-byte feed %.0f"):format(l.lua,
        r.whole / DOC_BYTES, (r.p1 - r.whole) / n1, r.floor / n1, (r.p16 - r.whole) / n16)
    end
  end
  add("Where the piece-size goals are missed, and why. " .. table.concat(notes, ". ") .. ". The floor alone "
    .. "is the part of the 1-byte ratio no parser can remove: (whole + floor) ÷ whole above is the best a "
    .. "one-call-per-byte API could score here. The rest of a feed is the parser's: the call's checks, and a "
    .. "feed that ends inside a string makes a new Lua string of that string's text so far (Lua strings "
    .. "are immutable and the snapshot must show the new characters; a short one is hashed to be interned) "
    .. "and stores it in its table; its garbage is collected later. A feed that shows nothing new touches "
    .. "no Lua value. The parse itself stays linear: each byte is scanned once, and a growing string's "
    .. "bytes are kept in one C buffer.")
  add("")
  add("### Side by side with the peers' way: a structured reply in 4-byte pieces")
  add("")
  add("npm `partial-json` " .. "(openai-node's approach) parses the whole prefix again after each piece; "
    .. "json.partial resumes where it stopped. Same bytes, same pieces, same run.")
  add("")
  add("| | 10 KB reply | 100 KB reply | growth (100 KB ÷ 10 KB) |")
  add("|---|---|---|---|")
  add(("| npm partial-json 0.1.7 on the growing prefix (node) | %s | %s | %.1fx |"):format(ms(node["10 KB"]),
    ms(node["100 KB"]), node["100 KB"] / node["10 KB"]))
  for _, l in ipairs(luas) do
    local r = R[l.name]
    if r["10 KB"] then add(("| json.partial, %s | %s | %s | %.1fx |"):format(l.name, ms(r["10 KB"]), ms(r["100 KB"]),
      r["100 KB"] / r["10 KB"])) end
  end
  add("")
  add(("### client:json with on_partial against without, a %d-chunk structured stream"):format(nchunks))
  add("")
  add("Both stream the same scripted reply from the local test server (`stream = true`); "
    .. "on_partial counts its calls. Instructions (callgrind, counting the call alone; the fewest of 3 runs, "
    .. "as polls that find nothing yet vary with the load) and CPU of the whole call, connecting included.")
  add("")
  add("Without on_partial the call reads the stream through the text fast path and decodes the content "
    .. "once at the end; with it, the content is parsed into the live table as it arrives (that table is "
    .. "then the value returned, so the decode at the end is skipped), and each delta costs a feed, "
    .. "on_partial's Lua call and `p:path()`, a new table whenever the path changed (here nearly every "
    .. "delta: the values are short).")
  add("")
  add("| | | without on_partial | with on_partial | ratio (goal ≤ 1.3x) |")
  add("|---|---|---|---|---|")
  for _, l in ipairs(luas) do
    local c = C[l.name]
    add(("| %s | instructions | %s | %s | %.2fx (%s) |"):format(l.name, mi(c.ir.off), mi(c.ir.on),
      c.ir.on / c.ir.off, yes(c.ir.on / c.ir.off <= 1.3)))
    add(("| %s | CPU | %s | %s | %.2fx (%s) |"):format(l.name, ms(c.off), ms(c.on), c.on / c.off,
      yes(c.on / c.off <= 1.3)))
  end
  add("")
  for _, line in ipairs(env.machine()) do add(line) end
  return table.concat(L, "\n") .. "\n"
end

return M
