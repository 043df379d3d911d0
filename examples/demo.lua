-- The quick-start job: a streamed chat, a reasoning model's thinking apart
-- from its answer, then a tool call.
-- With BASETEN_API_KEY set it talks to Baseten's Model APIs; without it, to
-- the bundled local OpenAI-compatible server (spec/support/server.py).
--   make demo          (or: lua examples/demo.lua from the repo root)
local baseten = require("baseten")

local server, client
if os.getenv("BASETEN_API_KEY") then
  client = baseten.new{ model = os.getenv("BASETEN_MODEL") or "deepseek-ai/DeepSeek-V3.1" }
  print("Talking to " .. client.base_url)
else
  server = require("spec.support.server").start()
  client = baseten.new{ api_key = "local-demo-key", base_url = server.url, model = "deepseek-ai/DeepSeek-V3.1" }
  print("BASETEN_API_KEY is not set: talking to the bundled local server at " .. server.url)
end

local ok, failure = pcall(function()
  -- 1. A streamed chat: print each piece as it arrives.
  print("\n== streamed chat")
  local stream = baseten.check(client:stream{
    messages = { { role = "user", content = "Say hello to Lua programmers in one sentence." } },
    max_tokens = 100,
    stream_options = { include_usage = true },
  })
  for piece in stream:text() do
    io.write(piece)
    io.flush()
  end
  local final = stream:final()
  print()
  if final.usage then print(("(%d tokens)"):format(final.usage.total_tokens)) end

  -- 2. A reasoning model: its thinking (kind "reasoning") apart from its answer.
  print("\n== reasoning model (deepseek-ai/DeepSeek-R1-0528)")
  local thinking = baseten.check(client:stream{
    model = "deepseek-ai/DeepSeek-R1-0528",
    messages = { { role = "user", content = "Is 1001 a prime number?" } },
  })
  local last
  for piece, kind in thinking:pieces() do
    if kind ~= last then io.write(kind == "reasoning" and "[thinking] " or "\n[answer] ") end
    last = kind
    io.write(piece)
    io.flush()
  end
  print()
  local used = client:usage()
  print(("(%d requests so far, %d reasoning tokens)"):format(used.requests, used.reasoning_tokens))

  -- 3. A tool call: the model asks for get_weather, the Lua handler answers.
  print("\n== tool call")
  local get_weather = baseten.tool{
    name = "get_weather",
    description = "Current weather for a city",
    parameters = {
      type = "object",
      properties = { city = { type = "string", description = "City name" } },
      required = { "city" },
    },
    handler = function(args)
      print(("   handler: get_weather(%q)"):format(args.city))
      return { city = args.city, temperature_c = 21, sky = "clear" }
    end,
  }
  local resp, messages = baseten.check(client:run_tools{
    messages = { { role = "user", content = "What is the weather in Paris?" } },
    tools = { get_weather },
  })
  print(resp.choices[1].message.content)
  print(("(%d messages in the transcript)"):format(#messages))
end)

if server then server:stop() end
client:close()
if not ok then
  io.stderr:write(tostring(failure), "\n")
  os.exit(1)
end
