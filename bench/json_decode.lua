-- bench/json_decode.lua: json.decode alone, with and without drop_nulls
-- (Lua 5.4 or LuaJIT; bench/compare.lua runs it against each core).
--
--   json_decode.lua [N]          N decodes of each payload per run (default 200000)
--   json_decode.lua count MODE N  just N decodes of the stream chunk, MODE keep
--                                 or drop, for an instruction count (callgrind)
--
-- Prints one JSON line: {"<payload>": {"keep": µs, "drop": µs}, ...}: CPU
-- microseconds per decode, the best of 5 runs. "drop" is null when the
-- core's decode takes no options (the core before drop_nulls existed).
local json = require("baseten.core").json

local N = tonumber(arg[1] == "count" and arg[3] or arg[1] or "200000")
local REPS = 5

-- What a stream sends most: a one-token chunk, with the null members
-- OpenAI-compatible servers put in every chunk.
local CHUNK = '{"id":"chatcmpl-B9MBs8CjcvOU2jLn","object":"chat.completion.chunk",'
  .. '"created":1741569952,"model":"gpt-4o-mini","system_fingerprint":null,"usage":null,'
  .. '"choices":[{"index":0,"delta":{"content":" fox","role":null,"tool_calls":null},'
  .. '"logprobs":null,"finish_reason":null}]}'

-- A blocking chat's answer, nulls as OpenAI's API writes them.
local COMPLETION = '{"id":"chatcmpl-abc123","object":"chat.completion","created":1700000000,'
  .. '"model":"meta-llama/Llama-3.3-70B-Instruct","choices":[{"index":0,"message":{"role":"assistant",'
  .. '"content":"The capital of France is Paris.","refusal":null,"tool_calls":null,"function_call":null,'
  .. '"audio":null,"annotations":[]},"logprobs":null,"finish_reason":"stop","stop_reason":null}],'
  .. '"usage":{"prompt_tokens":82,"completion_tokens":17,"total_tokens":99,"prompt_tokens_details":null,'
  .. '"completion_tokens_details":null},"service_tier":null,"system_fingerprint":null,"prompt_logprobs":null}'

-- No nulls at all: what dropping costs when there is nothing to drop.
local NO_NULLS = '{"id":"chatcmpl-B9MBs8CjcvOU2jLn","object":"chat.completion.chunk",'
  .. '"created":1741569952,"model":"gpt-4o-mini","choices":[{"index":0,"delta":{"content":" fox"}}]}'

local PAYLOADS = { { "chunk", CHUNK }, { "completion", COMPLETION }, { "no_nulls", NO_NULLS } }

local function run(text, opts)
  local decode, best = json.decode, math.huge
  for _ = 1, REPS do
    local t0 = os.clock()
    for _ = 1, N do decode(text, opts) end
    best = math.min(best, os.clock() - t0)
  end
  return best / N * 1e6
end

if arg[1] == "count" then
  local opts = arg[2] == "drop" and { drop_nulls = true } or nil
  for _ = 1, N do json.decode(CHUNK, opts) end
  return
end

-- the core before decode options ignored a second argument
local has_opts = not pcall(json.decode, "{}", { no_such_option = true })
local out = {}
for _, p in ipairs(PAYLOADS) do
  local name, text = p[1], p[2]
  assert(json.decode(text), name)
  out[name] = { keep = run(text, nil), drop = has_opts and run(text, { drop_nulls = true }) or json.null }
end
print(json.encode(out))
