-- A LÖVE game that streams a chat reply onto the screen.
--
--   make love-demo        the bundled local server, no key needed
--   make love-kit && BASETEN_API_KEY=... love examples/love
--                         Baseten's Model APIs (Esc quits, R asks again)
--
-- love.update calls client:poll(0) once per frame: it never blocks, and the
-- chunks that arrived since the last frame reach on_chunk there. love.draw
-- just draws the text so far.
--
-- Configuration by environment: BASETEN_API_KEY, BASETEN_BASE_URL,
-- BASETEN_MODEL, BASETEN_PROMPT; with neither a key nor a base URL it shows
-- what to set instead of asking. LÖVE runs LuaJIT: `make love-kit` builds
-- the core for it (lua/baseten/core.so) and puts what a game ships in
-- build/love-kit/<platform>/. Where each part goes (README, "LÖVE"):
--   * the Lua files: baseten/ inside the game (folder or .love);
--   * core.so: baseten/core.so inside a game folder; for a .love or a fused
--     game, in the save directory (<save dir>/baseten/core.so), or in a
--     baseten/ folder next to the .love or the executable, which the
--     package.cpath line below makes Lua search.
--
-- Test mode (BASETEN_LOVE_TEST=1, for spec/hosts_spec.lua): runs without a
-- window unless BASETEN_LOVE_HEADLESS=0 (see conf.lua), quits once the
-- reply is done and writes a JSON result to BASETEN_LOVE_RESULT: the text,
-- the frames counted while tokens arrived, the longest frame meanwhile, and
-- how many frames got tokens.
-- luacheck: globals love

-- a baseten/ folder next to the .love (or the fused executable)
package.cpath = love.filesystem.getSourceBaseDirectory() .. "/?.so;" .. package.cpath
-- run from a clone (`love examples/love`): the library is in ../../lua
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
    lua_path = package.searchpath and package.searchpath("baseten", package.path) or baseten.json.null,
    save_dir = love.filesystem.getSaveDirectory(),
    source = love.filesystem.getSource(),
    fused = love.filesystem.isFused(),
  }))
  f:close()
end

-- no key and no local server: say what to set, on screen, instead of a 401
local NO_KEY = "BASETEN_API_KEY is not set. Either run `make love-demo` in the clone (it starts the bundled"
  .. " local server and points the game at it), or set BASETEN_API_KEY to your Baseten API key"
  .. " (https://app.baseten.co/settings/api_keys) and run `love examples/love` again."

function love.load()
  client = baseten.new{ model = os.getenv("BASETEN_MODEL") or "deepseek-ai/DeepSeek-V3.1" }
  local key, url = os.getenv("BASETEN_API_KEY"), os.getenv("BASETEN_BASE_URL")
  if (key == nil or key == "") and (url == nil or url == "") then
    state = new_state()
    state.done, state.err = true, NO_KEY
    return
  end
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
  -- wrapped to the window: an error can be long
  local line = status .. "   " .. love.timer.getFPS() .. " fps"
  local _, lines = love.graphics.getFont():getWrap(line, w - 40)
  love.graphics.printf(line, 20, love.graphics.getHeight() - 10 - 20 * math.max(1, #lines), w - 40)
end

function love.keypressed(key)
  if key == "escape" then
    love.event.quit()
  elseif key == "r" and state.err ~= NO_KEY then
    ask()
  end
end

function love.quit()
  if client then client:close() end
  return false
end
