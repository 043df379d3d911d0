-- A LÖVE game that streams a chat reply onto the screen.
--
--   love examples/love      (Esc quits, R asks again)
--
-- love.update calls client:poll(0) once per frame: it never blocks, and the
-- chunks that arrived since the last frame reach on_chunk there. love.draw
-- just draws the text so far.
--
-- Configuration by environment: BASETEN_API_KEY, BASETEN_BASE_URL,
-- BASETEN_MODEL, BASETEN_PROMPT. LÖVE runs LuaJIT, so baseten must be built
-- for Lua 5.1 and found through LUA_PATH / LUA_CPATH, e.g. with the repo's
-- build:
--   LUA_PATH="$PWD/.rocks/5.1/share/lua/5.1/?.lua;$PWD/.rocks/5.1/share/lua/5.1/?/init.lua;;" \
--   LUA_CPATH="$PWD/.rocks/5.1/lib/lua/5.1/?.so;;" love examples/love
--
-- Test mode (BASETEN_LOVE_TEST=1, for spec/hosts_spec.lua): runs without a
-- window (see conf.lua), quits once the reply is done and writes a JSON
-- result to BASETEN_LOVE_RESULT: the text, the frames counted while tokens
-- arrived, the longest frame meanwhile, and how many frames got tokens.
-- luacheck: globals love
local baseten = require("baseten")
local core = require("baseten.core")

local TEST = os.getenv("BASETEN_LOVE_TEST") == "1"
local RESULT = os.getenv("BASETEN_LOVE_RESULT")
local PROMPT = os.getenv("BASETEN_PROMPT") or "Write a haiku about game loops."
local TEST_LIMIT = 20 -- seconds: a test run never hangs

local client
local state -- the current reply

local function new_state()
  return {
    text = "", chunks = 0, done = false, err = nil,
    frames = 0, -- every frame
    frames_streaming = 0, -- frames between the first token and the end
    frames_with_tokens = 0, -- frames in which tokens arrived
    max_frame_ms = 0, -- the longest frame while tokens arrived
    draws = 0,
    started = core.now(),
  }
end

local function ask()
  if state and not state.done and state.handle then state.handle:cancel() end
  local s = new_state()
  state = s
  s.handle = client:start({ messages = { { role = "user", content = PROMPT } }, stream = true }, {
    on_chunk = function(chunk)
      local choice = chunk.choices and chunk.choices[1]
      local piece = type(choice) == "table" and type(choice.delta) == "table" and choice.delta.content
      if type(piece) ~= "string" or piece == "" then return end
      s.chunks = s.chunks + 1
      s.text = s.text .. piece
      s.got_tokens = true
      s.first_token_at = s.first_token_at or core.now()
    end,
    on_done = function(_, err)
      s.done, s.err = true, err
      s.finished_at = core.now()
    end,
  })
end

local function write_result()
  if not RESULT then return end
  local s = state
  local f = assert(io.open(RESULT, "w"))
  f:write(baseten.json.encode({
    ok = s.done and s.err == nil,
    text = s.text,
    chunks = s.chunks,
    err = s.err and tostring(s.err) or baseten.json.null,
    frames = s.frames,
    frames_streaming = s.frames_streaming,
    frames_with_tokens = s.frames_with_tokens,
    max_frame_ms = s.max_frame_ms,
    draws = s.draws,
    streaming_ms = s.first_token_at and s.finished_at and (s.finished_at - s.first_token_at) * 1000 or 0,
    graphics = love.graphics ~= nil,
    core_path = package.searchpath and package.searchpath("baseten.core", package.cpath) or baseten.json.null,
  }))
  f:close()
end

function love.load()
  client = baseten.new{ model = os.getenv("BASETEN_MODEL") or "deepseek-ai/DeepSeek-V3.1" }
  ask()
end

function love.update(dt)
  local s = state
  s.frames = s.frames + 1
  local streaming = s.first_token_at ~= nil and not s.done
  if streaming then
    s.frames_streaming = s.frames_streaming + 1
    s.max_frame_ms = math.max(s.max_frame_ms, dt * 1000)
  end
  s.got_tokens = false
  local ok, err = pcall(client.poll, client, 0) -- never blocks
  if not ok then s.done, s.err = true, err end
  if s.got_tokens then s.frames_with_tokens = s.frames_with_tokens + 1 end
  if TEST and (s.done or core.now() - s.started > TEST_LIMIT) then
    write_result()
    love.event.quit(s.done and not s.err and 0 or 1)
  end
end

function love.draw()
  local s = state
  s.draws = s.draws + 1
  local w = love.graphics.getWidth()
  love.graphics.clear(0.08, 0.09, 0.11)
  love.graphics.setColor(0.6, 0.7, 0.9)
  love.graphics.printf("> " .. PROMPT, 20, 20, w - 40)
  love.graphics.setColor(1, 1, 1)
  love.graphics.printf(s.text, 20, 60, w - 40)
  local status
  if s.err then
    status = "error: " .. tostring(s.err)
  elseif s.done then
    status = "done (" .. s.chunks .. " chunks) - R: ask again, Esc: quit"
  else
    status = "streaming... " .. s.chunks .. " chunks"
  end
  love.graphics.setColor(0.6, 0.6, 0.6)
  love.graphics.print(status .. "   " .. love.timer.getFPS() .. " fps", 20, love.graphics.getHeight() - 30)
end

function love.keypressed(key)
  if key == "escape" then
    love.event.quit()
  elseif key == "r" then
    ask()
  end
end

function love.quit()
  if client then client:close() end
  return false
end
