-- bench/stream_compare.lua: stream CPU before and after, whole client
-- (`bash bench/compare.sh client` builds the old tree and starts this).
--
-- Two floods of one-token chunks, consumed by bench/consumer.lua
-- (`for chunk in stream`) on Lua 5.4 and LuaJIT with either tree's Lua
-- modules and core: "openai", the flood of bench/run.lua (OpenAI's shape,
-- `"finish_reason":null` in every chunk), and "nullish", the same chunks
-- with the nulls many servers add (`logprobs`, `refusal`, `tool_calls`,
-- `usage`). Runs interleave (old, new, old, new, ...) so a busy machine
-- slows both alike; the best of COMPARE_REPS runs is kept.
--
-- Environment: COMPARE_OLD_TREE (<tree>/lua and <tree>/old/<5.4|5.1>/baseten/core.so),
-- COMPARE_OLD (its commit, for the text), COMPARE_N (chunks, 200000),
-- COMPARE_REPS (5), BENCH_ROOT.
local server = require("spec.support.server")
local json = require("baseten.core").json

local ROOT = os.getenv("BENCH_ROOT") or "."
local OLD_TREE = assert(os.getenv("COMPARE_OLD_TREE"), "COMPARE_OLD_TREE is not set")
local OLD = os.getenv("COMPARE_OLD") or "57976ac"
local N = tonumber(os.getenv("COMPARE_N") or "200000")
local REPS = tonumber(os.getenv("COMPARE_REPS") or "5")

local function q(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end

local TOKENS = { " The", " quick", " brown", " fox", " jumps", " over", " the", " lazy",
                 " dog", ",", " and", " then", " it", " runs", " away", "." }
local FLOODS = {
  openai = function(delta, finish)
    return 'data: {"id":"chatcmpl-B9MBs8CjcvOU2jLn","object":"chat.completion.chunk",'
      .. '"created":1741569952,"model":"gpt-4o-mini","choices":[{"index":0,"delta":'
      .. delta .. ',"finish_reason":' .. finish .. '}]}\n\n'
  end,
  nullish = function(delta, finish)
    return 'data: {"id":"chatcmpl-B9MBs8CjcvOU2jLn","object":"chat.completion.chunk",'
      .. '"created":1741569952,"model":"gpt-4o-mini","system_fingerprint":null,"choices":[{"index":0,"delta":'
      .. delta:gsub("}$", ',"refusal":null,"tool_calls":null}') .. ',"logprobs":null,"finish_reason":'
      .. finish .. '}],"usage":null}\n\n'
  end,
}
local function flood(event, n)
  local unit = {}
  for i, tok in ipairs(TOKENS) do unit[i] = event('{"content":"' .. tok .. '"}', "null") end
  return { chunks = { event('{"role":"assistant","content":""}', "null"),
    { ["repeat"] = table.concat(unit), count = n // #TOKENS }, event('{"content":""}', '"stop"'),
    "data: [DONE]\n\n" } }
end

local function env(v, which)
  local cp = (which == "old" and OLD_TREE .. "/old" or ROOT .. "/bench/out/dev") .. "/" .. v .. "/?.so;;"
  local lua = which == "old" and OLD_TREE .. "/lua" or ROOT .. "/lua"
  local lp = lua .. "/?.lua;" .. lua .. "/?/init.lua;;"
  return "env -u LUA_PATH_5_4 -u LUA_CPATH_5_4 LUA_PATH=" .. q(lp) .. " LUA_CPATH=" .. q(cp) .. " "
end

local CONFIGS = {}
for _, f in ipairs({ "openai", "nullish" }) do
  for _, lua in ipairs({ { "Lua 5.4", "5.4", "lua5.4" }, { "LuaJIT", "5.1", "luajit" } }) do
    for _, which in ipairs({ "old", "new" }) do
      CONFIGS[#CONFIGS + 1] = { flood = f, lua = lua[1], which = which, cpu = math.huge,
                                prefix = env(lua[2], which) .. lua[3] }
    end
  end
end

local srv = server.start()
local ok_run, err = pcall(function()
  for rep = 1, REPS do
    for _, c in ipairs(CONFIGS) do
      srv:reset()
      srv:enqueue(flood(FLOODS[c.flood], N))
      local p = assert(io.popen(c.prefix .. " " .. ROOT .. "/bench/consumer.lua stream " .. q(srv.url) .. " 2>&1"))
      local out = p:read("*a")
      p:close()
      local r = json.decode(out:match("({[^\n]*})%s*$") or "")
      if type(r) ~= "table" or r.chunks ~= N + 2 then error("stream_compare: " .. out, 0) end
      c.cpu = math.min(c.cpu, r.cpu)
      io.stderr:write(("  rep %d  %-7s %-8s %-3s cpu %.3f s\n"):format(rep, c.flood, c.lua, c.which, r.cpu))
    end
  end
end)
srv:stop()
if not ok_run then
  io.stderr:write(tostring(err), "\n")
  os.exit(1)
end

print(("Stream CPU, %d one-token chunks, best of %d interleaved runs, %s: commit %s against this tree"):format(
  N, REPS, os.date("!%Y-%m-%d %H:%M UTC"), OLD))
print("")
print("| flood | consumer | before: CPU s per 100k chunks | after | after ÷ before |")
print("|---|---|---|---|---|")
for i = 1, #CONFIGS, 2 do
  local old, new = CONFIGS[i], CONFIGS[i + 1]
  print(("| %s | baseten, %s | %.3f | %.3f | %.2fx |"):format(old.flood, old.lua, old.cpu / N * 1e5,
    new.cpu / N * 1e5, new.cpu / old.cpu))
end
