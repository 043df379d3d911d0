-- Migrating from OpenAI: the same Chat Completions request, with the base
-- URL, the key and the model slug changed. Nothing else.
--
-- OpenAI, in Python:
--
--     from openai import OpenAI
--     client = OpenAI(api_key=os.environ["OPENAI_API_KEY"])
--     resp = client.chat.completions.create(
--         model="gpt-4o-mini",
--         messages=[{"role": "user", "content": "Say hello"}],
--         temperature=0.2,
--     )
--     print(resp.choices[0].message.content)
--
-- Baseten, in Python: OpenAI(api_key=os.environ["BASETEN_API_KEY"],
--     base_url="https://inference.baseten.co/v1"), model="deepseek-ai/DeepSeek-V3.1"
--
-- Baseten, in Lua: below. (Lua arrays count from 1: choices[1] is choices[0].)
--   lua examples/migrate.lua     (from the repo root, after `make build`)
-- With BASETEN_API_KEY set it asks Baseten's Model APIs; without it, the
-- bundled local OpenAI-compatible server (spec/support/server.py).
local baseten = require("baseten")

local server
local base_url = "https://inference.baseten.co/v1"   -- was OpenAI's default
local api_key = os.getenv("BASETEN_API_KEY")         -- was OPENAI_API_KEY
local model = os.getenv("BASETEN_MODEL") or "deepseek-ai/DeepSeek-V3.1" -- was "gpt-4o-mini"
if not api_key then
  server = require("spec.support.server").start()
  base_url, api_key = server.url, false
end

local client = baseten.new{ api_key = api_key, base_url = base_url }
local resp, err = client:chat{
  model = model,
  messages = { { role = "user", content = "Say hello" } },
  temperature = 0.2,
}
if resp then print(resp.choices[1].message.content) end

-- The same client talks to OpenAI itself, vLLM, Ollama or llama.cpp:
--   baseten.new{ base_url = "https://api.openai.com/v1", api_key = os.getenv("OPENAI_API_KEY") }
--   baseten.new{ base_url = "http://localhost:11434/v1", api_key = false }   -- Ollama

client:close()
if server then server:stop() end
if not resp then
  io.stderr:write(tostring(err), "\n")
  os.exit(1)
end
