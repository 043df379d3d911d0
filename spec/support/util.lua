-- spec/support/util.lua: what several spec files need alike.
--
--   local util = require("spec.support.util")
--   util.interpreter()             -- "lua5.4", "luajit", ... (BASETEN_TEST_LUA overrides)
--   util.ROOT                      -- the repository's absolute path
--   util.quote(s)                  -- s as one sh word
--   util.read_file(path), util.write_file(text) -> path (a temporary file)
--   util.tmpdir()                  -- a new private temporary directory
--   util.execute(cmd), util.have(program) -- os.execute alike on every Lua
--   util.run(cmd, opts)            -- code, stdout, stderr of a shell command
--   util.run_tty(cmd, opts)        -- code, stdout, terminal: stdin and stderr a pty
--   util.run_script(path, opts), util.run_lua(code, opts) -- the same for Lua
--   util.header(req, name)         -- a header of a request the test server recorded
--   util.skip_volume(), util.skip_latency() -- why such a test cannot run here, or nil
--   util.ok(cmd), util.capture(cmd) -- a shell command's success; its trimmed stdout
--   util.alive(pid)                -- whether a process runs (and is no zombie)
--   util.completion(text, opts)    -- a whole chat.completion body (a table) for the test server
--   util.drain(client, limit)      -- polls a client until nothing is pending
--   util.finish(engine, t, limit)  -- performs a core engine until transfer t is no longer running
--   util.json_same(a, b, numbers)  -- deep equality that tells JSON arrays from objects
local M = {}

--- The interpreter running this suite, for child processes.
function M.interpreter()
  local forced = os.getenv("BASETEN_TEST_LUA")
  if forced and forced ~= "" then return forced end
  if rawget(_G, "jit") then return "luajit" end
  return "lua" .. _VERSION:match("%d+%.%d+")
end

--- s quoted as one word for sh.
function M.quote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

--- The whole file, or nil when it cannot be opened.
function M.read_file(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("*a")
  f:close()
  return s
end

--- Writes text to a new temporary file and returns its path.
function M.write_file(text)
  local path = os.tmpname()
  local f = assert(io.open(path, "wb"))
  f:write(text)
  f:close()
  return path
end

--- os.execute on every Lua: whether cmd exited 0, and its exit code
-- (Lua 5.1 and LuaJIT return the status, later Luas true/nil and the code).
function M.execute(cmd)
  local a, _, c = os.execute(cmd)
  if type(a) == "number" then return a == 0, a end
  return a == true, c
end

--- Whether a program is on PATH.
function M.have(program)
  return (M.execute("command -v " .. M.quote(program) .. " >/dev/null 2>&1"))
end

--- The first line a shell command prints.
local function capture(cmd)
  local p = assert(io.popen(cmd, "r"))
  local line = p:read("*l")
  p:close()
  return line
end

--- A new temporary directory that only this user can enter.
function M.tmpdir()
  local dir = assert(capture("mktemp -d"), "mktemp -d failed")
  M.execute("chmod 700 " .. M.quote(dir))
  return dir
end

-- the repository root, from this file's path (spec/support/util.lua)
M.ROOT = (function()
  local src = debug.getinfo(1, "S").source
  local dir = src:sub(1, 1) == "@" and src:sub(2):match("^(.*)/[^/]*$") or "spec/support"
  return capture("cd " .. M.quote(dir .. "/../..") .. " && pwd")
end)()

-- `[cd DIR && ] { [env ENV] cmd; }`: the command run by run and run_tty.
local function command(cmd, opts)
  local full = "{ " .. (opts.env and "env " .. opts.env .. " " or "") .. cmd .. "; }"
  if opts.cwd then full = "cd " .. M.quote(opts.cwd) .. " && " .. full end
  return full
end

--- Whether a shell command exited 0 (on every Lua's os.execute).
function M.ok(cmd)
  local a, _, c = os.execute(cmd)
  if type(a) == "number" then return a == 0 end -- Lua 5.1 / LuaJIT
  return a == true and (c == nil or c == 0)
end

--- A shell command's standard output, trailing white space removed.
function M.capture(cmd)
  local p = assert(io.popen(cmd, "r"))
  local s = p:read("*a")
  p:close()
  return (s:gsub("%s+$", ""))
end

local has_proc = io.open("/proc/self/stat", "rb")
if has_proc then has_proc:close() end

--- Whether process `pid` is running (a zombie is not).
function M.alive(pid)
  if has_proc then
    local st = M.read_file("/proc/" .. pid .. "/stat")
    if not st then return false end
    local state = st:match(".*%) (%a)")
    return state ~= "Z" and state ~= "X"
  end
  return M.ok("kill -0 " .. pid .. " 2>/dev/null")
end

--- Runs a shell command; returns its exit code, stdout and stderr.
-- opts.env: VAR=value assignments (and `-u VAR` removals) for env(1);
-- opts.stdin: text for standard input (else empty);
-- opts.cwd: the directory to run it in (else this one);
-- opts.merge: stderr goes to stdout, in order (stderr is then "").
function M.run(cmd, opts)
  opts = opts or {}
  local err_file, in_file = os.tmpname(), M.write_file(opts.stdin or "")
  local full = ("%s <%s %s; echo \"exit:$?\""):format(command(cmd, opts), M.quote(in_file),
    opts.merge and "2>&1" or "2>" .. M.quote(err_file))
  local p = assert(io.popen(full, "r"))
  local out = p:read("*a")
  p:close()
  local err = M.read_file(err_file) or ""
  os.remove(err_file)
  os.remove(in_file)
  local code = tonumber(out:match("exit:(%d+)%s*$"))
  return code, (out:gsub("exit:%d+%s*$", "")), err
end

--- Runs a shell command under script(1), so that its stdin and stderr are
-- a terminal (a pty) while stdout goes to a file; opts as run (but stdin).
-- Returns the exit code, stdout and what the terminal showed (stderr, with
-- the pty's \r\n line ends).
function M.run_tty(cmd, opts)
  local out_file = os.tmpname()
  local inner = command(cmd, opts or {}) .. " >" .. M.quote(out_file)
  local p = assert(io.popen(("script -qec %s /dev/null </dev/null; echo \"exit:$?\""):format(M.quote(inner)), "r"))
  local tty = p:read("*a")
  p:close()
  local out = M.read_file(out_file) or ""
  os.remove(out_file)
  local code = tonumber(tty:match("exit:(%d+)%s*$"))
  return code, out, (tty:gsub("exit:%d+%s*$", ""))
end

--- Runs a Lua file with this suite's interpreter; as run.
function M.run_script(path, opts)
  return M.run(M.interpreter() .. " " .. M.quote(path), opts)
end

--- Runs a Lua chunk in a child process with this suite's interpreter; as run.
function M.run_lua(code, opts)
  local script = M.write_file(code)
  local rc, out, err = M.run_script(script, opts)
  os.remove(script)
  return rc, out, err
end

--- The value of header `name` (any case) of a request the test server
-- recorded (spec/support/server.lua's requests()), or nil.
function M.header(req, name)
  name = name:lower()
  if req.header_map then return req.header_map[name] end
  for _, h in ipairs(req.headers or {}) do
    if h[1]:lower() == name then return h[2] end
  end
  return nil
end

--- Why a test whose point is volume (a long stream, a big body) cannot
-- run in this process, or nil: scripts/valgrind.sh sets BASETEN_VALGRIND
-- (memcheck is 20-50x slower) and scripts/sanitize.sh sets
-- BASETEN_GC_TORTURE for its pass with the collector running all the
-- time. `make test` and the plain sanitizer pass run them.
function M.skip_volume()
  if os.getenv("BASETEN_VALGRIND") then return "too slow under valgrind (make test runs it)" end
  if os.getenv("BASETEN_GC_TORTURE") then return "too slow with constant GC (make test runs it)" end
  return nil
end

--- Why a test of sub-second latency cannot run in this process, or nil:
-- under valgrind, and in the GC-torture pass, whose finalizers perform the
-- engines at any moment (so a wait no longer follows from the code's own
-- calls).
function M.skip_latency()
  if os.getenv("BASETEN_VALGRIND") then return "latency is not measurable under valgrind" end
  if os.getenv("BASETEN_GC_TORTURE") then return "finalizers perform the engine: latency is theirs" end
  return nil
end

--- A whole chat.completion body, as a table for the test server's
-- `json` response, with one assistant message of `text`.
-- opts.model (default "openai/gpt-oss-120b"); opts.usage: a usage table
-- (default 3 + 4 = 7 tokens).
function M.completion(text, opts)
  opts = opts or {}
  return {
    id = "chatcmpl-x", object = "chat.completion", created = 1, model = opts.model or "openai/gpt-oss-120b",
    choices = { { index = 0, message = { role = "assistant", content = text }, finish_reason = "stop" } },
    usage = opts.usage or { prompt_tokens = 3, completion_tokens = 4, total_tokens = 7 },
  }
end

--- Polls a client until nothing is pending; fails after `limit` seconds
-- (default 20).
function M.drain(client, limit)
  local now = require("baseten.core").now
  local deadline = now() + (limit or 20)
  while client:pending() > 0 do
    assert(now() < deadline, "requests did not finish in time")
    client:poll(0.05)
  end
end

--- Performs a core engine until its transfer `t` is no longer running
-- (an SSE `[DONE]` can be read before curl has the end of the response);
-- fails after `limit` seconds (default 30). Returns `t`.
function M.finish(engine, t, limit)
  local now = require("baseten.core").now
  local deadline = now() + (limit or 30)
  while t:state() == "running" do
    assert(now() < deadline, "the transfer did not finish in time")
    engine:perform(0.05)
  end
  return t
end

--- Deep equality that also tells the JSON array mark apart from none
-- (baseten.json.is_array); with `numbers`, integers from floats too, where
-- the Lua has both.
function M.json_same(a, b, numbers)
  if type(a) ~= type(b) then return false end
  if numbers and math.type and type(a) == "number" and math.type(a) ~= math.type(b) then return false end
  if type(a) ~= "table" then return a == b end
  local json = require("baseten").json
  if json.is_array(a) ~= json.is_array(b) then return false end
  for k, v in pairs(a) do
    if not M.json_same(v, b[k], numbers) then return false end
  end
  for k in pairs(b) do
    if a[k] == nil then return false end
  end
  return true
end

return M
