-- The examples inside the real host programs, against the local test server:
-- examples/nvim in a headless Neovim and examples/love in LÖVE (without a
-- window, and with one under xvfb-run). Both hosts run LuaJIT, so they load
-- the Lua 5.1 build in .rocks/5.1 (scripts/build.sh) through LUA_PATH and
-- LUA_CPATH. A host that is not installed makes its test pending; CI
-- installs them all (scripts/deps.sh hosts).
--
-- Each test takes one to two seconds (a 1.1 s stream plus the host's
-- start), so the file runs under every interpreter of scripts/test.sh.
-- luacheck: std max+busted
local server = require("spec.support.server")
local baseten = require("baseten")

local json = baseten.json

local function dirname(p)
  return p:match("^(.*)/[^/]*$") or "."
end

-- the repository root, from this file's path (busted runs from the root)
local ROOT = (function()
  local src = debug.getinfo(1, "S").source
  local dir = src:sub(1, 1) == "@" and dirname(src:sub(2)) or "spec"
  local p = io.popen("cd '" .. dir .. "/..' && pwd")
  local root = p:read("*l")
  p:close()
  return root
end)()

local TREE = ROOT .. "/.rocks/5.1"
local CORE_SO = TREE .. "/lib/lua/5.1/baseten/core.so"

local function q(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

local function execute(cmd)
  local a, _, c = os.execute(cmd)
  if type(a) == "number" then return a == 0, a end -- Lua 5.1 / LuaJIT
  return a == true, c
end

local function have(program)
  return (execute("command -v " .. program .. " >/dev/null 2>&1"))
end

local function read(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("*a")
  f:close()
  return s
end

-- The environment of a host: the Lua 5.1 build first, scratch XDG dirs.
local function host_env(tmp, extra)
  local env = {
    LUA_PATH = TREE .. "/share/lua/5.1/?.lua;" .. TREE .. "/share/lua/5.1/?/init.lua;;",
    LUA_CPATH = TREE .. "/lib/lua/5.1/?.so;;",
    XDG_RUNTIME_DIR = tmp, XDG_CONFIG_HOME = tmp .. "/config", XDG_DATA_HOME = tmp .. "/data",
    XDG_STATE_HOME = tmp .. "/state", XDG_CACHE_HOME = tmp .. "/cache",
  }
  for k, v in pairs(extra or {}) do env[k] = v end
  local parts = { "env", "-u LUA_INIT", "-u LUA_INIT_5_1" }
  for k, v in pairs(env) do parts[#parts + 1] = k .. "=" .. q(v) end
  return table.concat(parts, " ")
end

local function mktemp_dir()
  local p = io.popen("mktemp -d")
  local dir = p:read("*l")
  p:close()
  execute("chmod 700 " .. q(dir))
  return dir
end

-- Runs a host; returns ok, the decoded result file, and the host's output.
local function run_host(cmd, tmp)
  assert(io.open(CORE_SO, "rb"), "no Lua 5.1 build at " .. CORE_SO .. ": run scripts/build.sh"):close()
  local log, out = tmp .. "/host.log", tmp .. "/result.json"
  local ok = execute("cd " .. q(ROOT) .. " && " .. cmd .. " </dev/null >" .. q(log) .. " 2>&1")
  local text = read(out)
  local result = text and json.decode(text) or nil
  return ok, result, read(log) or ""
end

local MODEL = "test/model"
local PIECES = {}
for i = 1, 20 do PIECES[i] = (i == 1 and "" or " ") .. "token" .. i end
PIECES[7] = " line\nbreak" -- a newline inside a token: the buffer gets two lines
local EXPECTED = table.concat(PIECES)

local function sse_chunk(delta, finish)
  return "data: " .. json.encode({
    id = "chatcmpl-host", object = "chat.completion.chunk", created = 1, model = MODEL,
    choices = json.array({ { index = 0, delta = delta, finish_reason = finish or json.null } }),
  }) .. "\n\n"
end

-- 23 events 0.05 s apart: tokens arrive over about 1.1 s
local function slow_stream()
  local chunks = { sse_chunk({ role = "assistant", content = "" }) }
  for _, p in ipairs(PIECES) do chunks[#chunks + 1] = sse_chunk({ content = p }) end
  chunks[#chunks + 1] = sse_chunk(json.object({}), "stop")
  chunks[#chunks + 1] = "data: [DONE]\n\n"
  return { chunks = chunks, chunk_delay = 0.05 }
end

describe("examples in real hosts", function()
  local srv, tmp

  setup(function()
    srv = server.start()
  end)

  teardown(function()
    srv:stop()
  end)

  before_each(function()
    srv:reset()
    tmp = mktemp_dir()
  end)

  after_each(function()
    execute("rm -rf " .. q(tmp))
  end)

  it("Neovim: :BasetenChat streams into a scratch buffer while the editor keeps running", function()
    if not have("nvim") then
      pending("nvim not installed")
      return
    end
    srv:enqueue(slow_stream())
    local cmd = host_env(tmp, { BASETEN_TEST_URL = srv.url, BASETEN_TEST_RESULT = tmp .. "/result.json" })
      .. " timeout 60 nvim --headless -u NONE -i NONE -n"
      .. " --cmd " .. q("set rtp^=" .. ROOT .. "/examples/nvim")
      .. " -c " .. q("luafile " .. ROOT .. "/examples/nvim/tests/driver.lua")
    local _, r, log = run_host(cmd, tmp)
    assert(r, "nvim wrote no result:\n" .. log)
    assert(r.ok, "driver failed: " .. tostring(r.error) .. "\n" .. log)
    assert.is_true(r.command)
    assert.equal(CORE_SO, r.core_path) -- the Lua 5.1 build, inside Neovim's LuaJIT
    assert.equal(TREE .. "/share/lua/5.1/baseten/init.lua", r.lua_path)
    assert.is_nil(r.err)
    assert.equal(EXPECTED, r.job_text)
    assert.equal(EXPECTED, r.text) -- the buffer holds exactly the reply
    assert.equal(20, r.chunks)
    assert.equal("nofile", r.buftype)
    assert.truthy(r.bufname:find("baseten://chat/", 1, true))
    assert.is_true(r.timer_started)
    assert.is_true(r.current_is_chat)
    -- the 10 ms poll timer ticked all along the ~1 s of tokens...
    assert.is_true(r.ticks_streaming >= 40, "poll timer ticked " .. r.ticks_streaming .. " times while streaming")
    -- ...and the editor's own 5 ms heartbeat never stalled
    assert.is_true(r.heartbeats_streaming >= 50, "only " .. r.heartbeats_streaming .. " heartbeats")
    assert.is_true(r.max_heartbeat_gap_ms < 250, "the editor stalled " .. r.max_heartbeat_gap_ms .. " ms")
    -- the timer stops once nothing is pending
    assert.is_false(r.timer_active)
    assert.equal(0, r.ticks_after_done)
    assert.equal(0, r.pending)
    local reqs = srv:requests()
    assert.equal(1, #reqs)
    assert.is_true(reqs[1].json.stream)
    assert.equal("hello", reqs[1].json.messages[1].content)
    assert.equal("Bearer test-key", reqs[1].header_map.authorization)
  end)

  local function love_case(windowed)
    srv:enqueue(slow_stream())
    local cmd = host_env(tmp, {
      BASETEN_LOVE_TEST = "1", BASETEN_LOVE_HEADLESS = windowed and "0" or "1",
      BASETEN_LOVE_RESULT = tmp .. "/result.json", BASETEN_BASE_URL = srv.url,
      BASETEN_API_KEY = "test-key", BASETEN_MODEL = MODEL, BASETEN_PROMPT = "hello",
    }) .. " timeout 60 " .. (windowed and "xvfb-run -a -s '-screen 0 1024x768x24' " or "")
      .. "love " .. q(ROOT .. "/examples/love")
    local ok, r, log = run_host(cmd, tmp)
    assert(r, "love wrote no result:\n" .. log)
    assert(ok and r.ok, "love failed: " .. tostring(r.err) .. "\n" .. log)
    assert.equal(CORE_SO, r.core_path)
    assert.equal(EXPECTED, r.text)
    assert.equal(20, r.chunks)
    -- frames kept coming while tokens arrived, and tokens came over many frames
    assert.is_true(r.frames_streaming >= 30, "only " .. r.frames_streaming .. " frames while streaming")
    assert.is_true(r.frames_with_tokens >= 10, "tokens arrived in only " .. r.frames_with_tokens .. " frames")
    assert.is_true(r.max_frame_ms < 100, "a frame took " .. r.max_frame_ms .. " ms")
    assert.is_true(r.streaming_ms >= 800, "tokens arrived over only " .. r.streaming_ms .. " ms")
    local reqs = srv:requests()
    assert.equal(1, #reqs)
    assert.equal("hello", reqs[1].json.messages[1].content)
    return r
  end

  it("LÖVE: love.update streams with poll(0) while frames keep coming (no window)", function()
    if not have("love") then
      pending("love not installed")
      return
    end
    local r = love_case(false)
    assert.is_false(r.graphics)
  end)

  it("LÖVE: the same with a window and love.draw, under xvfb-run", function()
    if not have("love") then
      pending("love not installed")
      return
    end
    if not have("xvfb-run") or not have("xauth") then
      pending("xvfb-run (xvfb, xauth) not installed")
      return
    end
    local r = love_case(true)
    assert.is_true(r.graphics)
    assert.is_true(r.draws >= 30, "love.draw ran " .. r.draws .. " times")
  end)
end)
