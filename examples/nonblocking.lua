-- Several requests at once without blocking: client:start returns a handle
-- at once, and client:poll(0) (called every frame of a game loop or from an
-- editor timer) drives them all and runs their callbacks.
--   lua examples/nonblocking.lua (from the repo root, after `make build`)
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

local questions = {
  "Name a moon of Jupiter.",
  "Name a prime number above 100.",
  "Name a sorting algorithm.",
}

local handles, answers, failed = {}, {}, false
for i, q in ipairs(questions) do
  handles[i] = client:start({ messages = { { role = "user", content = q } }, max_tokens = 50 }, {
    on_done = function(resp, err) -- runs once, inside poll
      if resp then
        answers[i] = resp.choices[1].message.content
        print(("[%d] done: %s"):format(i, answers[i]))
      else
        failed = true
        print(("[%d] failed: %s"):format(i, tostring(err)))
      end
    end,
  })
end

-- A streaming request too: on_chunk gets every chunk as it arrives.
local pieces = {}
handles[#handles + 1] = client:start({
  messages = { { role = "user", content = "Count to five." } },
  stream = true,
}, {
  on_chunk = function(chunk)
    local delta = chunk.choices[1] and chunk.choices[1].delta
    if delta and delta.content then pieces[#pieces + 1] = delta.content end
  end,
  on_done = function(resp, err)
    if resp then
      print(("[stream] done: %s (%d pieces)"):format(resp.choices[1].message.content, #pieces))
    else
      failed = true
      print("[stream] failed: " .. tostring(err))
    end
  end,
})

-- The "game loop": each frame does its own work, then polls. poll(0) never
-- blocks; here poll(1/60) stands in for the wait for the next frame (it
-- returns early when data arrives). poll returns the requests still running.
local frames = 0
repeat
  frames = frames + 1
  -- update(dt), draw() ...
until client:poll(1 / 60) == 0
for _, h in ipairs(handles) do assert(h:done()) end
print(("all %d requests finished after %d frames"):format(#handles, frames))

client:close()
if server then server:stop() end
if failed then os.exit(1) end
