-- The library inside the real host programs, installed the way each host's
-- users install it, against the local test server:
--   * Neovim: a fresh copy of the repository (the files a `git clone` has)
--     used as a plugin folder: build.lua builds the core into
--     lua/baseten/core.so, then a headless `nvim -u NONE` with only that
--     folder on the runtimepath, and no LUA_PATH or LUA_CPATH, streams into a
--     buffer through baseten.uv, cancels a stream and passes :checkhealth
--     (spec/support/nvim_plugin.lua); the example plugin (examples/nvim) the
--     same way, its edit plan (:BasetenPlan) filling in while the JSON streams.
--   * Neovim, prebuilt: with no compiler, build.lua installs `make dist`'s
--     LuaJIT archive from a local HTTP server (BASETEN_DIST_URL), then the
--     same stream and :checkhealth; an archive with one byte changed fails
--     with the checksum message, no core and a non-zero exit.
--   * LÖVE: `make love-kit-linux`, then the example game as a folder
--     (`love examples/love`, as the README says; `make love-demo`; the
--     no-key message), zipped as a .love with the core in the save
--     directory, and fused, each headless or under xvfb-run; the NPC
--     example (`love examples/love-npc`) under xvfb-run.
-- A host that is not installed fails the test with a message (CI and
-- `make test` install them: scripts/deps.sh hosts).
--
-- Each test takes one to two seconds (a 1.1 s stream plus the host's
-- start), so the file runs under every interpreter of scripts/test.sh.
-- luacheck: std max+busted
local server = require("spec.support.server")
local baseten = require("baseten")
local util = require("spec.support.util")

local json = baseten.json

local ROOT, q, read, execute = util.ROOT, util.quote, util.read_file, util.execute

-- A host program the test needs: missing is a failure that says how to get
-- it, never a silently pending test.
local function need(program, package)
  if not util.have(program) then
    error(program .. " is not installed: `bash scripts/deps.sh hosts` installs it (Debian package "
      .. package .. "); `make test` and CI do", 0)
  end
end

-- Runs a shell command in `dir`; fails with its output (stdout and stderr).
local function sh(dir, cmd, what)
  local code, text = util.run(cmd, { cwd = dir, merge = true })
  assert(code == 0, (what or cmd) .. " failed:\n" .. text)
  return text
end

-- A host's environment: no LUA_PATH, LUA_CPATH or LUA_INIT (a user's
-- editor or game has none), scratch XDG folders (LÖVE's save directory is
-- $XDG_DATA_HOME/love/<identity>).
local function host_env(tmp, extra)
  local parts = { "env", "-u LUA_PATH", "-u LUA_CPATH", "-u LUA_INIT", "-u LUA_INIT_5_1", "-u BASETEN_API_KEY",
    "-u BASETEN_BASE_URL", "-u BASETEN_MODEL", "-u BASETEN_LOG",
    "-u LUA_PATH_5_1", "-u LUA_CPATH_5_1" }
  local env = {
    XDG_RUNTIME_DIR = tmp, XDG_CONFIG_HOME = tmp .. "/config", XDG_DATA_HOME = tmp .. "/data",
    XDG_STATE_HOME = tmp .. "/state", XDG_CACHE_HOME = tmp .. "/cache",
  }
  for k, v in pairs(extra or {}) do env[k] = v end
  for k, v in pairs(env) do parts[#parts + 1] = k .. "=" .. q(v) end
  return table.concat(parts, " ")
end

-- Runs a host in `dir`; returns ok, the decoded result file, and the output.
-- The output goes to a file, not through util.run's pipe, so that a child
-- the host may leave behind cannot keep the test waiting for the pipe's end.
local function run_host(dir, cmd, tmp)
  local log, out = tmp .. "/host.log", tmp .. "/result.json"
  os.remove(out)
  local ok = execute("cd " .. q(dir) .. " && " .. cmd .. " </dev/null >" .. q(log) .. " 2>&1")
  local text = read(out)
  local result = text and json.decode(text) or nil
  return ok, result, read(log) or ""
end

-- A fresh copy of the repository: the files a `git clone` of this checkout
-- has (tracked, plus new files not ignored), nothing built.
local function fresh_copy(tmp)
  local dir = tmp .. "/baseten"
  sh(ROOT, "mkdir -p " .. q(dir) .. " && git ls-files -z --cached --others --exclude-standard"
    .. " | xargs -0 sh -c 'for f do [ -e \"$f\" ] && printf \"%s\\n\" \"$f\"; done' sh"
    .. " | tar -cf - -T - | tar -xf - -C " .. q(dir), "copying the repository")
  assert(not io.open(dir .. "/lua/baseten/core.so", "rb"), "the copy holds a built core")
  return dir
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

-- nvim with only `rtp` on the runtimepath, running a Lua file
local function nvim_cmd(tmp, rtp, file, extra)
  local cmd = host_env(tmp, extra) .. " timeout 60 nvim --headless -u NONE -i NONE -n"
  for _, dir in ipairs(rtp) do cmd = cmd .. " --cmd " .. q("set rtp^=" .. dir) end
  return cmd .. " -c " .. q("luafile " .. file)
end

-- `:lua dofile(build.lua)` in a headless nvim, the way a plugin manager
-- runs it; exits non-zero when it raises
local function nvim_build(tmp, copy)
  local lua = "local ok, e = pcall(dofile, " .. ("%q"):format(copy .. "/build.lua")
    .. ") if not ok then io.stderr:write(tostring(e), '\\n') vim.cmd('cq') end"
  return sh(copy, host_env(tmp) .. " timeout 120 nvim --headless -u NONE -i NONE -n --cmd "
    .. q("set rtp^=" .. copy) .. " -c " .. q("lua " .. lua) .. " -c 'qa!'", "build.lua in nvim")
end

-- build.lua run the way a user runs it by hand (Neovim 0.7 has no `-l`);
-- returns its exit status and output
local function nvim_luafile_build(tmp, copy, extra)
  return util.run(host_env(tmp, extra) .. " timeout 120 nvim --headless -u NONE -i NONE -n -c 'luafile build.lua' -c q"
    .. " </dev/null", { cwd = copy, merge = true })
end

local function no_error_lines(lines)
  local bad = {}
  for _, line in ipairs(lines) do
    if line:find("ERROR", 1, true) then bad[#bad + 1] = line end
  end
  return bad
end

describe("hosts, installed as their users install them", function()
  local srv, tmp, shared

  setup(function()
    srv = server.start()
    shared = { dir = util.tmpdir() }
  end)

  teardown(function()
    if shared.www then execute("kill " .. shared.www.pid) end
    srv:stop()
    execute("rm -rf " .. q(shared.dir))
  end)

  -- One fresh copy for the file, built once by build.lua inside nvim (the
  -- plugin manager's way); the tests that change a copy make their own.
  local function plugin_copy()
    need("nvim", "neovim")
    if not shared.copy then
      local copy = fresh_copy(shared.dir)
      shared.build_log = nvim_build(tmp, copy)
      shared.copy = copy
    end
    return shared.copy
  end

  -- the same copy after `make love-kit-linux` (build/love-kit/linux)
  local function love_kit()
    need("love", "love")
    local copy = plugin_copy()
    if not shared.kit then
      sh(copy, "make love-kit-linux", "make love-kit-linux")
      shared.kit = true
    end
    return copy
  end

  -- `make dist`'s Linux LuaJIT archive, made in the shared copy, served by
  -- a local HTTP server: www.url .. "/good" as made, "/bad" with one byte of
  -- the archive changed (its SHA256SUMS as made)
  local function dist_www()
    if not shared.www then
      local copy = plugin_copy()
      sh(copy, "DIST_TARGETS=linux DIST_ABIS=luajit bash scripts/dist.sh", "make dist")
      local www = shared.dir .. "/www"
      local zip = "baseten-" .. baseten.VERSION .. "-linux-x86_64-luajit.zip"
      sh(copy, "mkdir -p " .. q(www) .. " && cp -r dist " .. q(www .. "/good") .. " && cp -r dist " .. q(www .. "/bad")
        .. " && printf 'X' | dd of=" .. q(www .. "/bad/" .. zip) .. " bs=1 seek=1000 conv=notrunc 2>/dev/null")
      local log = shared.dir .. "/http.log"
      local pid = sh(www, "python3 -u -m http.server 0 --bind 127.0.0.1 --directory " .. q(www) .. " >" .. q(log)
        .. " 2>&1 & echo $!"):match("%d+")
      local port
      for _ = 1, 500 do
        port = (read(log) or ""):match("port (%d+)")
        if port then break end
        execute("sleep 0.02")
      end
      assert(port, "the HTTP server did not start: " .. tostring(read(log)))
      shared.www = { pid = pid, url = "http://127.0.0.1:" .. port, zip = zip }
    end
    return shared.www
  end

  before_each(function()
    srv:reset()
    tmp = util.tmpdir()
  end)

  after_each(function()
    execute("rm -rf " .. q(tmp))
  end)

  it("Neovim: the repository as a plugin folder: build.lua, require, a stream into a buffer, cancel, :checkhealth",
    function()
      local copy = plugin_copy()
      assert.truthy(shared.build_log:find("built lua/baseten/core.so", 1, true), shared.build_log)
      srv:enqueue(slow_stream(), slow_stream())
      local cmd = nvim_cmd(tmp, { copy }, ROOT .. "/spec/support/nvim_plugin.lua", {
        BASETEN_TEST_URL = srv.url, BASETEN_TEST_RESULT = tmp .. "/result.json", BASETEN_API_KEY = "test-key",
      })
      local _, r, log = run_host(tmp, cmd, tmp)
      assert(r, "nvim wrote no result:\n" .. log)
      assert(r.ok, "driver failed: " .. tostring(r.error) .. "\n" .. log)
      assert.equal(json.null, r.env_lua_path)
      assert.equal(json.null, r.env_lua_cpath)
      assert.same({ copy .. "/lua/baseten/core.so" }, r.core_file)
      assert.same({ copy .. "/lua/baseten/init.lua" }, r.init_file)
      assert.equal(json.null, r.core_on_cpath) -- found on the runtimepath
      assert.equal(json.null, r.err)
      assert.equal(EXPECTED, r.text)
      assert.equal(EXPECTED, r.buffer)
      assert.equal(20, r.chunks)
      assert.is_true(r.active_at_start)
      assert.is_true(r.ticks_streaming >= 20, "the poll timer ticked " .. r.ticks_streaming .. " times")
      assert.is_true(r.heartbeats_streaming >= 20, "only " .. r.heartbeats_streaming .. " heartbeats")
      assert.is_true(r.max_heartbeat_gap_ms < 500, "the editor stalled " .. r.max_heartbeat_gap_ms .. " ms")
      -- the second stream: canceled at its first chunk
      assert.is_true(r.second_done)
      assert.equal("canceled", r.second_err_kind)
      -- (chunks already parsed in that same poll may still arrive; the rest do not)
      assert.is_true(r.second_chunks >= 1 and r.second_chunks < 22, r.second_chunks .. " chunks")
      -- and then the timer stopped by itself
      assert.is_false(r.active_after)
      assert.equal(0, r.pending_after)
      -- :checkhealth baseten
      local health = table.concat(r.health, "\n")
      assert.same({}, no_error_lines(r.health), health)
      assert.truthy(health:find("core " .. baseten.VERSION .. " loaded from " .. copy .. "/lua/baseten/core.so", 1, true),
        health)
      assert.truthy(health:find("built for Lua 5.1; Neovim runs LuaJIT", 1, true), health)
      assert.truthy(health:find("installed: built from source by build.lua", 1, true), health)
      assert.truthy(health:find("libcurl %d+%.%d+"), health)
      assert.truthy(health:find("TLS backend: ", 1, true), health)
      assert.truthy(health:find("HTTP/2: ", 1, true), health)
      assert.truthy(health:find("BASETEN_API_KEY is set", 1, true), health)
      assert.is_nil(health:find("test-key", 1, true)) -- never the key's value
      assert.truthy(health:find("answers models(): ", 1, true), health)
      local reqs = srv:requests()
      assert.equal(3, #reqs) -- two streams and models()
      assert.equal("hello", reqs[1].json.messages[1].content)
      assert.equal("second", reqs[2].json.messages[1].content)
      assert.equal("GET", reqs[3].method)
    end)

  it("Neovim: with no compiler, build.lua installs `make dist`'s archive from BASETEN_DIST_URL; it loads and streams",
    function()
      local www = dist_www()
      local copy = fresh_copy(tmp)
      local code, out = nvim_luafile_build(tmp, copy, { CC = "/nonexistent/cc", BASETEN_DIST_URL = www.url .. "/good" })
      assert(code == 0, "build.lua failed:\n" .. out)
      assert.truthy(out:find("installed lua/baseten/core.so from the prebuilt " .. www.zip .. " (SHA-256 checked)", 1, true),
        out)
      -- the archive's core, byte for byte, and no download left behind
      sh(tmp, "unzip -q -o " .. q(shared.copy .. "/dist/" .. www.zip) .. " lua/baseten/core.so -d " .. q(tmp .. "/x")
        .. " && cmp " .. q(tmp .. "/x/lua/baseten/core.so") .. " " .. q(copy .. "/lua/baseten/core.so"))
      assert.is_nil(io.open(copy .. "/build/prebuilt", "rb"))
      srv:enqueue(slow_stream(), slow_stream())
      local cmd = nvim_cmd(tmp, { copy }, ROOT .. "/spec/support/nvim_plugin.lua", {
        BASETEN_TEST_URL = srv.url, BASETEN_TEST_RESULT = tmp .. "/result.json", BASETEN_API_KEY = "test-key",
      })
      local _, r, log = run_host(tmp, cmd, tmp)
      assert(r, "nvim wrote no result:\n" .. log)
      assert(r.ok, "driver failed: " .. tostring(r.error) .. "\n" .. log)
      assert.same({ copy .. "/lua/baseten/core.so" }, r.core_file)
      assert.equal(json.null, r.err)
      assert.equal(EXPECTED, r.text)
      assert.equal(EXPECTED, r.buffer)
      local health = table.concat(r.health, "\n")
      assert.same({}, no_error_lines(r.health), health)
      assert.truthy(health:find("installed: prebuilt " .. www.zip .. " (sha256 ", 1, true), health)
      assert.truthy(health:find("built for Lua 5.1; Neovim runs LuaJIT", 1, true), health)
      assert.truthy(health:find("TLS backend: ", 1, true), health)
    end)

  it("Neovim: an archive with one byte changed: the checksum message, no core, a non-zero exit", function()
    local www = dist_www()
    local copy = fresh_copy(tmp)
    local code, out = nvim_luafile_build(tmp, copy, { CC = "/nonexistent/cc", BASETEN_DIST_URL = www.url .. "/bad" })
    assert.is_true(code ~= 0, "exit " .. tostring(code) .. ":\n" .. out)
    assert.truthy(out:find("the checksum of " .. www.zip .. " does not match SHA256SUMS", 1, true), out)
    assert.truthy(out:find("nothing was installed", 1, true), out)
    assert.is_nil(io.open(copy .. "/lua/baseten/core.so", "rb"))
    assert.is_nil(io.open(copy .. "/lua/baseten/core.so.tmp", "rb"))
    assert.is_nil(io.open(copy .. "/build/prebuilt", "rb"))
  end)

  it("Neovim: the README's baseten.uv block runs as written, streaming into its buffer", function()
    local copy = plugin_copy()
    local readme = assert(read(ROOT .. "/README.md"))
    local section = readme:match("\n## Neovim\n(.-)\n## ")
    assert(section, "README.md has no Neovim section")
    local block
    for code in section:gmatch("\n```lua\n(.-)\n```") do
      if code:find('require("baseten.uv")', 1, true) then block = code end
    end
    assert(block, "no baseten.uv block in the README's Neovim section")
    local f = assert(io.open(tmp .. "/block.lua", "wb"))
    f:write(block)
    f:close()
    local cmd = nvim_cmd(tmp, { copy }, ROOT .. "/spec/support/nvim_readme.lua", {
      BASETEN_BASE_URL = srv.url, BASETEN_TEST_BLOCK = tmp .. "/block.lua", BASETEN_TEST_RESULT = tmp .. "/result.json",
    })
    local _, r, log = run_host(tmp, cmd, tmp)
    assert(r, "nvim wrote no result:\n" .. log)
    assert(r.ok, "the README block failed: " .. tostring(r.error) .. "\n" .. log)
    assert.is_true(r.active_at_start)
    local text = table.concat(r.lines, "\n")
    assert.truthy(#text > 0, "the buffer stayed empty")
    local reqs = srv:requests()
    assert.equal(1, #reqs)
    assert.is_true(reqs[1].json.stream)
    assert.equal("Hi", reqs[1].json.messages[1].content)
  end)

  it("Neovim: :checkhealth baseten reports a core built for another Lua as an ERROR", function()
    need("nvim", "neovim")
    local copy = fresh_copy(tmp)
    -- a Lua 5.4 build where build.lua puts the LuaJIT one
    local so54 = ROOT .. "/.rocks/5.4/lib/lua/5.4/baseten/core.so"
    assert(io.open(so54, "rb"), "no Lua 5.4 build at " .. so54 .. ": run scripts/build.sh"):close()
    sh(copy, "cp " .. q(so54) .. " lua/baseten/core.so")
    local lua = "vim.cmd('checkhealth baseten') local f = io.open(" .. ("%q"):format(tmp .. "/health.txt")
      .. ", 'w') f:write(table.concat(vim.api.nvim_buf_get_lines(0, 0, -1, false), '\\n')) f:close() vim.cmd('qa!')"
    sh(tmp, host_env(tmp) .. " timeout 60 nvim --headless -u NONE -i NONE -n --cmd " .. q("set rtp^=" .. copy)
      .. " -c " .. q("lua " .. lua), "checkhealth")
    local health = read(tmp .. "/health.txt") or ""
    assert.truthy(health:find("ERROR", 1, true), health)
    assert.truthy(health:find("was built for Lua 5.4, but this is LuaJIT", 1, true), health)
    assert.truthy(health:find("build.lua", 1, true), health)
  end)

  -- Runs the example plugin's test driver examples/nvim/tests/`name`.lua
  -- in nvim on the shared plugin copy, against srv (`env`: more of its
  -- environment); checks that it ran and found its command. Returns its
  -- result and the copy.
  local function run_example_driver(name, env)
    local copy = plugin_copy()
    local vars = { BASETEN_TEST_URL = srv.url, BASETEN_TEST_RESULT = tmp .. "/result.json" }
    for k, v in pairs(env or {}) do vars[k] = v end
    local cmd = nvim_cmd(tmp, { copy, copy .. "/examples/nvim" }, copy .. "/examples/nvim/tests/" .. name .. ".lua", vars)
    local _, r, log = run_host(tmp, cmd, tmp)
    assert(r, "nvim wrote no result:\n" .. log)
    assert(r.ok, "driver failed: " .. tostring(r.error) .. "\n" .. log)
    assert.is_true(r.command)
    return r, copy
  end

  it("Neovim: the example plugin (examples/nvim) on baseten.uv, with no LUA_PATH", function()
    srv:enqueue(slow_stream())
    local r, copy = run_example_driver("driver")
    assert.same({ copy .. "/lua/baseten/core.so" }, r.core_file)
    assert.is_nil(r.err)
    assert.equal(EXPECTED, r.job_text)
    assert.equal(EXPECTED, r.text) -- the buffer holds exactly the reply
    assert.equal(20, r.chunks)
    assert.equal("nofile", r.buftype)
    assert.truthy(r.bufname:find("baseten://chat/", 1, true))
    assert.is_true(r.timer_started)
    assert.is_true(r.current_is_chat)
    -- the 10 ms poll timer ticked all along the ~1 s of tokens...
    assert.is_true(r.ticks_streaming >= 20, "poll timer ticked " .. r.ticks_streaming .. " times while streaming")
    -- ...and the editor's own 5 ms heartbeat never stalled
    assert.is_true(r.heartbeats_streaming >= 20, "only " .. r.heartbeats_streaming .. " heartbeats")
    assert.is_true(r.max_heartbeat_gap_ms < 500, "the editor stalled " .. r.max_heartbeat_gap_ms .. " ms")
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

  it("Neovim: the example plugin's :BasetenAgent: start_tools, confirm through vim.ui.select, <C-c> cancels", function()
    srv:enqueue(slow_stream()) -- the first agent's first round: canceled after its first text
    local r = run_example_driver("agent_driver")
    assert.is_true(r.returned_at_once)
    -- <C-c> canceled the first agent at once, keeping its transcript; no more text came
    assert.is_true(r.first_done_after_key)
    assert.equal("canceled", r.first_err)
    assert.equal(1, r.first_transcript)
    assert.equal(r.first_text, r.first_text_later)
    assert.is_true(#r.first_text < #EXPECTED)
    -- the second ran to its end: a tool call confirmed through vim.ui.select
    assert.is_nil(r.second_err)
    assert.equal(1, r.confirms)
    assert.equal(1, #r.prompts)
    assert.truthy(r.prompts[1]:find("Run tool read_buffer", 1, true), r.prompts[1])
    assert.same({ "user", "assistant", "tool", "assistant" }, r.transcript_roles)
    assert.equal("local answer = 42", r.tool_content)
    assert.equal("Here is what the tools returned: local answer = 42", r.text)
    assert.equal(2, r.rounds)
    assert.equal(1, r.calls)
    assert.equal(1, r.results)
    -- the poll timer drove the loop, and the editor never stalled
    assert.is_true(r.ticks >= 5, "poll timer ticked " .. r.ticks .. " times")
    assert.is_true(r.heartbeats >= 20, "only " .. r.heartbeats .. " heartbeats")
    assert.is_true(r.max_heartbeat_gap_ms < 500, "the editor stalled " .. r.max_heartbeat_gap_ms .. " ms")
    -- the server saw the canceled round once, then the two rounds of the second agent
    local reqs = srv:requests()
    assert.equal(3, #reqs)
    assert.equal("tell me a story", reqs[1].json.messages[1].content)
    local session = reqs[2].header_map["x-session-affinity"]
    assert.is_string(session)
    assert.equal(session, reqs[3].header_map["x-session-affinity"])
    assert.not_equal(session, reqs[1].header_map["x-session-affinity"])
  end)

  it("Neovim: the example plugin's :BasetenSearch embeds the buffer without blocking and ranks with top_k", function()
    local r = run_example_driver("search_driver")
    assert.is_nil(r.first_err)
    assert.is_true(r.returned_before_done, "the command returned before the embeddings came")
    assert.equal(4, r.first_embedded, "three chunks and the query")
    assert.equal(21, r.first_items[1].lnum, "the chunk about retries ranks first")
    assert.equal(3, #r.first_items)
    assert.is_true(r.first_ticks >= 1, "the poll timer drove the embedding")
    assert.equal(1, r.second_embedded, "an unchanged buffer's chunks are not embedded again")
    assert.equal(41, r.second_lnum)
    assert.is_true(r.max_heartbeat_gap_ms < 500, "the editor stalled " .. r.max_heartbeat_gap_ms .. " ms")
    local posts = 0
    for _, r0 in ipairs(srv:requests()) do if r0.path == "/v1/embeddings" then posts = posts + 1 end end
    assert.equal(2, posts)
  end)

  -- The example game, run by `cmd` in `dir`; checks the stream and frames.
  local function love_run(dir, cmd, windowed)
    srv:enqueue(slow_stream())
    local full = host_env(tmp, {
      BASETEN_LOVE_TEST = "1", BASETEN_LOVE_HEADLESS = windowed and "0" or "1",
      BASETEN_LOVE_RESULT = tmp .. "/result.json", BASETEN_BASE_URL = srv.url,
      BASETEN_API_KEY = "test-key", BASETEN_MODEL = MODEL, BASETEN_PROMPT = "hello",
    }) .. " timeout 60 " .. (windowed and "xvfb-run -a -s '-screen 0 1024x768x24' " or "") .. cmd
    local ok, r, log = run_host(dir, full, tmp)
    assert(r, "love wrote no result:\n" .. log)
    assert(ok and r.ok, "love failed: " .. tostring(r.err) .. "\n" .. log)
    assert.equal(EXPECTED, r.text)
    assert.equal(20, r.chunks)
    -- frames kept coming while tokens arrived, and tokens came over many
    -- frames (a stream read inside one frame gives 1 and 1). The bounds are
    -- 5x below what an idle machine shows (about 60 frames, 20 with
    -- tokens): under load the game draws fewer frames in the same second
    assert.is_true(r.frames_streaming >= 12, "only " .. r.frames_streaming .. " frames while streaming")
    assert.is_true(r.frames_with_tokens >= 4, "tokens arrived in only " .. r.frames_with_tokens .. " frames")
    -- less than the stream's 1 s, which a frame that read it whole would take
    assert.is_true(r.max_frame_ms < 750, "a frame took " .. r.max_frame_ms .. " ms")
    -- (no bound on streaming_ms: on a busy machine a stalled game sees
    -- the first tokens late and the rest in a burst; frames_with_tokens
    -- above counts that they came over many frames)
    local reqs = srv:requests()
    assert.equal(1, #reqs)
    assert.equal("hello", reqs[1].json.messages[1].content)
    srv:reset()
    return r
  end

  -- examples/love plus the kit's in-the-love/baseten/ zipped as game.love
  -- in `dir` (with_core: the core put inside too, where it cannot load)
  local function zip_game(copy, dir, with_core)
    need("zip", "zip")
    sh(copy, "mkdir -p " .. q(dir) .. " " .. q(tmp .. "/game") .. " && cp examples/love/*.lua " .. q(tmp .. "/game")
      .. " && cp -r build/love-kit/linux/in-the-love/baseten " .. q(tmp .. "/game/")
      .. (with_core and " && cp build/love-kit/linux/beside-the-love/baseten/core.so " .. q(tmp .. "/game/baseten/")
        or ""))
    sh(tmp .. "/game", "zip -q -r " .. q(dir .. "/game.love") .. " .")
    return dir .. "/game.love"
  end

  it("Neovim: the example plugin's :BasetenPlan shows the edit plan filling in while its JSON streams", function()
    local r = run_example_driver("plan_driver", { BASETEN_TEST_PROMPT = "rename foo" })
    assert.is_nil(r.err)
    local step = "Well met, traveller! You said: rename foo"
    assert.same({ file = "main.lua", steps = { { line = 1, text = step } } }, r.value)
    assert.equal("# Edit plan\n\nfile: main.lua\n1. line 1: " .. step, r.text)
    -- the buffer showed the plan growing before the end: a partial step's text
    local partial_step = false
    for _, view in ipairs(r.partial_views) do
      -- the step's members may come in either order (the schema is a Lua table): "line" may be there yet
      local text = view:match("\n1%. ([^\n]*)$")
      text = text and (text:gsub("^line 1: ", ""))
      if view:find("(streaming...)", 1, true) and text and #text > 0 and #text < #step then partial_step = true end
    end
    assert.is_true(partial_step, "no partial step was shown:\n" .. table.concat(r.partial_views, "\n--\n"))
    assert.is_true(r.updates >= 10, "on_partial ran " .. r.updates .. " times")
    assert.is_true(srv:requests()[1].json.stream)
  end)

  it("LÖVE: `love examples/love` in a clone after `make love-kit`, as the README says", function()
    local copy = love_kit()
    -- the README's package.cpath line is the example's
    local readme = assert(read(ROOT .. "/README.md"))
    local line = readme:match("\n## LÖVE\n.-\n```lua\n(package%.cpath = [^\n]*)\n```")
    assert(line, "no package.cpath line in the README's LÖVE section")
    assert.truthy(read(copy .. "/examples/love/main.lua"):find(line, 1, true), line)
    assert.truthy(readme:find("\nmake love-kit\nlove examples/love ", 1, true))
    local r = love_run(copy, "love examples/love", false)
    assert.is_false(r.graphics)
    assert.equal(copy .. "/examples/love/../../lua/baseten/core.so", r.core_path)
  end)

  it("LÖVE: the NPC example (`love examples/love-npc`) draws its line while the JSON streams, under xvfb-run",
    function()
      local copy = love_kit()
      local full = host_env(tmp, {
        BASETEN_LOVE_TEST = "1", BASETEN_LOVE_HEADLESS = "0", BASETEN_LOVE_RESULT = tmp .. "/result.json",
        BASETEN_BASE_URL = srv.url, BASETEN_API_KEY = "test-key", BASETEN_MODEL = "test/npc-paced",
        BASETEN_PROMPT = "hello",
      }) .. " timeout 60 xvfb-run -a -s '-screen 0 1024x768x24' love examples/love-npc"
      local ok, r, log = run_host(copy, full, tmp)
      assert(r, "love wrote no result:\n" .. log)
      assert(ok and r.ok, "love failed: " .. tostring(r.err) .. "\n" .. log)
      assert.is_true(r.graphics)
      assert.equal("happy", r.mood)
      assert.equal("Well met, traveller! You said: hello", r.say)
      -- a partial line was on screen frames before the reply ended (counted in frames, not seconds)
      assert.is_number(r.partial_frame)
      assert.is_true(r.done_frame - r.partial_frame >= 5,
        "partial line at frame " .. tostring(r.partial_frame) .. ", done at " .. tostring(r.done_frame))
      assert.is_true(r.partial_draws >= 5, "a partial line was drawn in " .. r.partial_draws .. " frames")
      assert.is_true(r.partials >= 10, "on_partial ran " .. r.partials .. " times")
      local reqs = srv:requests()
      assert.equal(1, #reqs)
      assert.is_true(reqs[1].json.stream)
      assert.equal("json_schema", reqs[1].json.response_format.type)
    end)

  it("LÖVE: `make love-demo` in a fresh clone, with no key: the bundled server answers", function()
    local copy = love_kit()
    local env = host_env(tmp, { BASETEN_LOVE_TEST = "1", BASETEN_LOVE_RESULT = tmp .. "/result.json" })
    local ok, r, log = run_host(copy, env .. " timeout 60 make love-demo", tmp)
    assert(r, "love wrote no result:\n" .. log)
    assert(ok and r.ok, "love failed: " .. tostring(r.err) .. "\n" .. log)
    assert.truthy(r.text:find("You said: Write a haiku about game loops.", 1, true), r.text)
    assert.truthy(log:find("talks to the bundled local server at http://127.0.0.1:", 1, true), log)
  end)

  it("LÖVE: `love examples/love` with no key and no base URL says what to set instead of asking", function()
    local copy = love_kit()
    local env = host_env(tmp, { BASETEN_LOVE_TEST = "1", BASETEN_LOVE_RESULT = tmp .. "/result.json" })
    local ok, r, log = run_host(copy, env .. " timeout 60 love examples/love", tmp)
    assert(r, "love wrote no result:\n" .. log)
    assert.is_false(ok)
    assert.truthy(r.err:find("BASETEN_API_KEY is not set", 1, true), r.err)
    assert.truthy(r.err:find("make love-demo", 1, true), r.err)
    assert.equal(0, r.chunks)
  end)

  it("LÖVE: a zipped game.love with the core in the save directory, drawing under xvfb-run", function()
    need("xvfb-run", "xvfb")
    need("xauth", "xauth")
    local copy = love_kit()
    local love_file = zip_game(copy, tmp .. "/dist", false)
    -- the save directory of identity "baseten-demo" (conf.lua)
    sh(copy, "mkdir -p " .. q(tmp .. "/data/love/baseten-demo/baseten")
      .. " && cp build/love-kit/linux/beside-the-love/baseten/core.so "
      .. q(tmp .. "/data/love/baseten-demo/baseten/"))
    local r = love_run("/", "love " .. q(love_file), true)
    assert.is_true(r.graphics)
    assert.is_true(r.draws >= 20, "love.draw ran " .. r.draws .. " times")
    assert.equal(love_file, r.source)
    assert.equal(tmp .. "/data/love/baseten-demo", r.save_dir)
    assert.equal(json.null, r.core_path) -- LÖVE's own C loader found it, not package.cpath
  end)

  it("LÖVE: a core inside the .love does not load; one in baseten/ next to the .love does", function()
    local copy = love_kit()
    local love_file = zip_game(copy, tmp .. "/dist", true)
    srv:enqueue(slow_stream())
    local ok, r, log = run_host("/", host_env(tmp, { BASETEN_LOVE_TEST = "1", BASETEN_LOVE_RESULT = tmp .. "/result.json",
      BASETEN_BASE_URL = srv.url }) .. " timeout 60 love " .. q(love_file), tmp)
    assert.is_false(ok)
    assert.is_nil(r)
    assert.truthy(log:find("the C core (baseten.core) is not installed for LuaJIT", 1, true), log)
    assert.truthy(log:find("make love-kit", 1, true), log)
    srv:reset()
    sh(copy, "cp -r build/love-kit/linux/beside-the-love/baseten " .. q(tmp .. "/dist/"))
    r = love_run("/", "love " .. q(love_file), false)
    assert.equal(tmp .. "/dist/baseten/core.so", r.core_path)
  end)

  it("LÖVE: a fused game, with the core in baseten/ next to the executable", function()
    local copy = love_kit()
    local love_file = zip_game(copy, tmp .. "/dist", false)
    local love_bin = (sh(tmp, "readlink -f \"$(command -v love)\""):gsub("%s+$", ""))
    sh(tmp, "mkdir -p fused && cat " .. q(love_bin) .. " " .. q(love_file) .. " > fused/game && chmod +x fused/game"
      .. " && cp -r " .. q(copy .. "/build/love-kit/linux/beside-the-love/baseten") .. " fused/")
    local r = love_run("/", q(tmp .. "/fused/game"), false)
    assert.is_true(r.fused)
    assert.equal(tmp .. "/fused/baseten/core.so", r.core_path)
  end)
end)
