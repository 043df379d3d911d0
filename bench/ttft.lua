-- The Lua side of bench/ttft.sh: N streams from base URL, one at a time;
-- prints core.now() (CLOCK_MONOTONIC) when each stream's first piece
-- reaches Lua through stream:pieces().
-- Usage: ttft.lua BASE_URL N
local baseten = require("baseten")
local core = require("baseten.core")
local url, n = arg[1], tonumber(arg[2] or "100")
local client = baseten.new{ api_key = "bench", base_url = url, model = "m", max_retries = 0 }
local messages = { { role = "user", content = "go" } }
for _ = 1, n do
  local stream = assert(client:stream{ messages = messages })
  local t
  for _ in stream:pieces() do
    t = t or core.now()
  end
  io.write(("%.9f\n"):format(assert(t, "no piece")))
end
client:close()
