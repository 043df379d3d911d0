-- Streaming to the terminal: print each piece of the answer as it arrives.
--   lua examples/stream.lua      (from the repo root, after `make build`)
-- With BASETEN_API_KEY set it asks Baseten's Model APIs; without it, the
-- bundled local OpenAI-compatible server (spec/support/server.py).
local baseten = require("baseten")

local MODEL = os.getenv("BASETEN_MODEL") or "deepseek-ai/DeepSeek-V3.1"
local server, client
if os.getenv("BASETEN_API_KEY") then
  client = baseten.new{ model = MODEL }
else
  server = require("spec.support.server").start()
  client = baseten.new{ base_url = server.url, api_key = false, model = MODEL }
end

local ok, err = pcall(function()
  local stream = baseten.check(client:stream{
    messages = { { role = "user", content = "Write a haiku about Lua tables." } },
    max_tokens = 300,
    stream_options = { include_usage = true }, -- usage arrives in a last chunk
  })
  -- text() yields the non-empty content deltas; a failure mid-stream
  -- (connection dropped, error event) raises the error value.
  for piece in stream:text() do
    io.write(piece)
    io.flush()
  end
  print()
  -- final() gives the whole response in chat.completion shape.
  local final = baseten.check(stream:final())
  print(("finish_reason: %s, %s completion tokens"):format(
    final.choices[1].finish_reason, final.usage and final.usage.completion_tokens or "?"))
  stream:close() -- idempotent; also runs on garbage collection
end)

client:close()
if server then server:stop() end
if not ok then
  io.stderr:write(tostring(err), "\n")
  os.exit(1)
end
