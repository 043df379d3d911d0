-- LÖVE configuration for the NPC example (structured output watched while it
-- streams). In test mode (BASETEN_LOVE_TEST=1) the game runs without a
-- window unless BASETEN_LOVE_HEADLESS=0 (then run it under a display, e.g.
-- `xvfb-run love examples/love-npc`).
-- luacheck: globals love
function love.conf(t)
  t.identity = "baseten-npc"
  t.window.title = "baseten: an NPC that speaks while the JSON streams"
  t.window.width = 800
  t.window.height = 400
  t.modules.audio = false
  t.modules.sound = false
  t.modules.physics = false
  t.modules.video = false
  if os.getenv("BASETEN_LOVE_TEST") == "1" then
    t.modules.joystick = false
    if os.getenv("BASETEN_LOVE_HEADLESS") ~= "0" then
      t.window = false
      t.modules.window = false
      t.modules.graphics = false
    end
  end
end
