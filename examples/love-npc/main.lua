-- An NPC whose line appears letter by letter while the model's JSON reply
-- streams: the model answers {"mood": ..., "say": ...}; the portrait
-- changes the moment `mood` is complete, and `say` is shown as it grows.
--
--   make love-kit && love examples/love-npc     (Space: talk again, Esc: quit)
--
-- With no BASETEN_API_KEY it talks to the bundled test server
-- (`lua spec/support/server.lua`, or set BASETEN_BASE_URL), whose
-- "test/npc-paced" model streams its JSON a few characters every 20 ms.
--
-- client:start(req, {json = true, on_partial = fn}) streams the request;
-- love.update calls client:poll(0) once per frame (it never blocks), and
-- on_partial gets the live snapshot there: one table, updated in place,
-- holding what the JSON has so far (an unfinished string shows its text so
-- far; an unfinished enum value is not there yet). on_done gets the final
-- value, validated against the schema.
--
-- Test mode (BASETEN_LOVE_TEST=1, for spec/hosts_spec.lua): quits when the
-- reply is done and writes a JSON result to BASETEN_LOVE_RESULT: the frame
-- counts at which the first partial line was drawn and the reply ended.
-- luacheck: globals love

-- a baseten/ folder next to the .love (or the fused executable)
package.cpath = love.filesystem.getSourceBaseDirectory() .. "/?.so;" .. package.cpath
-- run from a clone (`love examples/love-npc`): the library is in ../../lua
local repo_lua = love.filesystem.getSource() .. "/../../lua/"
local in_clone = io.open(repo_lua .. "baseten/init.lua", "rb")
if in_clone then
  in_clone:close()
  package.path = repo_lua .. "?.lua;" .. repo_lua .. "?/init.lua;" .. package.path
  package.cpath = repo_lua .. "?.so;" .. package.cpath
end

local baseten = require("baseten")
local core = require("baseten.core")

local TEST = os.getenv("BASETEN_LOVE_TEST") == "1"
local RESULT = os.getenv("BASETEN_LOVE_RESULT")
local PROMPT = os.getenv("BASETEN_PROMPT") or "Greet the player in one short sentence."
local TEST_LIMIT = 20 -- seconds: a test run never hangs

local SCHEMA = {
  type = "object",
  properties = {
    mood = { type = "string", enum = { "happy", "angry", "sad", "curious" } },
    say = { type = "string" },
  },
  required = { "mood", "say" },
  additionalProperties = false,
}

local MOOD_COLOR = {
  happy = { 0.95, 0.8, 0.3 }, angry = { 0.9, 0.3, 0.25 }, sad = { 0.4, 0.5, 0.9 }, curious = { 0.5, 0.85, 0.5 },
}

local client, npc

local function talk()
  if npc and npc.handle and not npc.done then npc.handle:cancel() end
  local n = { say = "", mood = nil, done = false, frames = 0, partial_frame = nil, done_frame = nil,
              partials = 0, started = core.now() }
  npc = n
  n.handle = client:start({
    model = os.getenv("BASETEN_MODEL")
      or (os.getenv("BASETEN_API_KEY") and "deepseek-ai/DeepSeek-V3.1" or "test/npc-paced"),
    messages = { { role = "user", content = PROMPT } },
    schema = SCHEMA, schema_name = "npc",
  }, {
    json = true,
    on_partial = function(snap)
      n.partials = n.partials + 1
      n.mood = snap.mood or n.mood -- there once its string is complete
      n.say = snap.say or n.say
    end,
    on_done = function(value, err)
      n.done, n.done_frame = true, n.frames
      if value then
        n.mood, n.say, n.final = value.mood, value.say, value
      else
        n.err = err
      end
    end,
  })
end

local function write_result()
  if not RESULT then return end
  local n = npc
  local f = assert(io.open(RESULT, "w"))
  f:write(baseten.json.encode({
    ok = n.done and n.err == nil, err = n.err and tostring(n.err) or baseten.json.null,
    mood = n.mood or baseten.json.null, say = n.say, partials = n.partials, frames = n.frames,
    partial_frame = n.partial_frame or baseten.json.null, done_frame = n.done_frame or baseten.json.null,
    partial_draws = n.partial_draws or 0, graphics = love.graphics ~= nil,
  }))
  f:close()
end

function love.load()
  local key = os.getenv("BASETEN_API_KEY")
  client = baseten.new{ api_key = key or "local", base_url = os.getenv("BASETEN_BASE_URL")
    or (not key and "http://127.0.0.1:8000/v1" or nil) }
  talk()
end

function love.update()
  local n = npc
  n.frames = n.frames + 1
  local ok, err = pcall(client.poll, client, 0) -- never blocks
  if not ok then n.done, n.err = true, err end
  -- a line shown while the reply still streams: counted in frames
  if not n.done and n.say ~= "" and not n.partial_frame then n.partial_frame = n.frames end
  if TEST and (n.done or core.now() - n.started > TEST_LIMIT) then
    write_result()
    love.event.quit(n.done and not n.err and 0 or 1)
  end
end

local function portrait(x, y, mood)
  local c = MOOD_COLOR[mood] or { 0.5, 0.5, 0.5 }
  love.graphics.setColor(c)
  love.graphics.circle("fill", x, y, 60)
  love.graphics.setColor(0.1, 0.1, 0.1)
  love.graphics.circle("fill", x - 20, y - 15, 7)
  love.graphics.circle("fill", x + 20, y - 15, 7)
  if mood == "happy" then
    love.graphics.arc("line", "open", x, y + 5, 28, 0.2, math.pi - 0.2)
  elseif mood == "sad" or mood == "angry" then
    love.graphics.arc("line", "open", x, y + 40, 28, math.pi + 0.3, 2 * math.pi - 0.3)
  else
    love.graphics.line(x - 20, y + 25, x + 20, y + 25)
  end
end

function love.draw()
  local n = npc
  if not n.done and n.say ~= "" then n.partial_draws = (n.partial_draws or 0) + 1 end
  love.graphics.clear(0.08, 0.09, 0.11)
  portrait(100, 120, n.mood)
  love.graphics.setColor(1, 1, 1)
  love.graphics.printf(n.say .. ((not n.done) and "_" or ""), 200, 70, love.graphics.getWidth() - 230)
  love.graphics.setColor(0.6, 0.6, 0.6)
  local status = n.err and ("error: " .. tostring(n.err)) or (n.done and "Space: talk again, Esc: quit")
    or ("listening... " .. (n.mood or "?"))
  love.graphics.print(status, 20, love.graphics.getHeight() - 30)
end

function love.keypressed(key)
  if key == "escape" then
    love.event.quit()
  elseif key == "space" then
    talk()
  end
end

function love.quit()
  if client then client:close() end
  return false
end
