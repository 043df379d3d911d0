-- An agent with two tools: client:run_tools asks the model, runs the tools
-- it calls, sends the results back, and repeats until the model answers.
--   lua examples/agent.lua       (from the repo root, after `make build`)
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

local WEATHER = { Paris = { temp_c = 18, sky = "cloudy" }, Tokyo = { temp_c = 24, sky = "clear" } }
local UTC_OFFSET = { Paris = 1, Tokyo = 9 }

local tools = {
  baseten.tool{
    name = "get_weather",
    description = "The current weather in a city",
    parameters = {
      type = "object",
      properties = { city = { type = "string", description = "City name, e.g. Paris" } },
      required = { "city" },
    },
    -- args is the decoded JSON arguments; the returned table is sent back
    -- to the model JSON-encoded. `return nil, "why"` reports a failure.
    handler = function(args)
      local w = WEATHER[args.city]
      if not w then return nil, "no weather data for " .. tostring(args.city) end
      return { city = args.city, temperature_c = w.temp_c, sky = w.sky }
    end,
  },
  baseten.tool{
    name = "get_local_time",
    description = "The current local time in a city, as HH:MM",
    parameters = {
      type = "object",
      properties = { city = { type = "string" } },
      required = { "city" },
    },
    handler = function(args)
      local offset = UTC_OFFSET[args.city]
      if not offset then error("unknown city " .. tostring(args.city)) end -- reported to the model
      local t = os.date("!*t", os.time() + offset * 3600)
      return ("%02d:%02d"):format(t.hour, t.min) -- a string goes back as is
    end,
  },
}

local resp, messages = client:run_tools{
  messages = { { role = "user", content = "What's the weather in Paris and Tokyo right now?" } },
  tools = tools,
  max_rounds = 5,
  on_tool_call = function(call)
    print(("-> %s(%s)"):format(call["function"].name, call["function"].arguments))
  end,
}

client:close()
if server then server:stop() end
if not resp then
  io.stderr:write(tostring(messages), "\n") -- messages is the error here
  os.exit(1)
end
print(resp.choices[1].message.content)
print(("(%d messages in the transcript)"):format(#messages))
