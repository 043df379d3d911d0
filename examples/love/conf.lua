-- LÖVE configuration for the baseten streaming demo.
-- In test mode (BASETEN_LOVE_TEST=1) the game runs without a window, so it
-- needs no display, unless BASETEN_LOVE_HEADLESS=0 (then run it under a
-- display, e.g. `xvfb-run love examples/love`).
-- luacheck: globals love
function love.conf(t)
  t.identity = "baseten-demo"
  t.window.title = "baseten: streaming from love.update"
  t.window.width = 800
  t.window.height = 600
  t.window.resizable = true
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
