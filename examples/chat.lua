-- A plain, blocking chat completion.
--   lua examples/chat.lua        (from the repo root, after `make build`)
-- With BASETEN_API_KEY set it asks Baseten's Model APIs; without it, the
-- bundled local OpenAI-compatible server (spec/support/server.py).
local baseten = require("baseten")

local MODEL = os.getenv("BASETEN_MODEL") or "deepseek-ai/DeepSeek-V3.1"
local server, client
if os.getenv("BASETEN_API_KEY") then
  client = baseten.new{ model = MODEL } -- key and base URL from the environment
else
  server = require("spec.support.server").start()
  client = baseten.new{ base_url = server.url, api_key = false, model = MODEL }
end

local resp, err = client:chat{
  messages = {
    { role = "system", content = "You are a concise assistant." },
    { role = "user", content = "What is Lua, in one sentence?" },
  },
  max_tokens = 200,
  temperature = 0.7,
}
if resp then
  print(resp.choices[1].message.content)
  print(("finish_reason: %s, tokens: %d prompt + %d completion"):format(
    resp.choices[1].finish_reason, resp.usage.prompt_tokens, resp.usage.completion_tokens))
end

client:close()
if server then server:stop() end
if not resp then
  -- err.kind says what went wrong: "authentication", "not_found", "timeout", ...
  io.stderr:write(tostring(err), "\n")
  os.exit(1)
end
