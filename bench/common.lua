-- bench/common.lua: what the benchmark runners share (bench/run.lua,
-- embed.lua, instructions.lua, compare.lua, partial.lua). They run from
-- the repository's root (bench/run.sh, bench/compare.sh), so
-- `require("bench.common")` finds this file. The consumers that the
-- runners measure (consumer.lua, embed_consumer.lua, partial_worker.lua)
-- do not load it: each stays one file that runs alone, in any tree.
local core = require("baseten.core")
local json = core.json

local M = {}

--- s quoted as one word for sh.
function M.q(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end

--- Runs a shell command; returns its standard output and whether it
-- exited 0.
function M.sh(cmd)
  local p = assert(io.popen(cmd, "r"))
  local out = p:read("*a")
  local ok = p:close()
  return out, ok
end

--- The first line a command prints (stderr included).
function M.first_line(cmd)
  return (M.sh(cmd .. " 2>&1"):match("[^\n]*"))
end

--- Runs a consumer and decodes the JSON line it ends with; raises with
-- all it printed when it fails or prints none.
function M.run_json(cmd)
  local out, ok = M.sh(cmd .. " 2>&1")
  local line = out:match("({[^\n]*})%s*$")
  local r = line and json.decode(line)
  if not ok or type(r) ~= "table" then error("bench: " .. cmd .. " failed:\n" .. out, 0) end
  return r
end

--- The `env ... ` prefix that makes a Lua `v` ("5.4", "5.1") load the
-- rocks of `make build` in `root`/.rocks/`v`; with `dev`, the tree's lua/
-- and the core of bench/build_dev.sh instead.
function M.lua_env(root, v, dev)
  local lp, cp
  if dev then
    lp = root .. "/lua/?.lua;" .. root .. "/lua/?/init.lua;;"
    cp = root .. "/bench/out/dev/" .. v .. "/?.so;;"
  else
    local tree = root .. "/.rocks/" .. v
    lp = tree .. "/share/lua/" .. v .. "/?.lua;" .. tree .. "/share/lua/" .. v .. "/?/init.lua;;"
    cp = tree .. "/lib/lua/" .. v .. "/?.so;;"
  end
  return "env -u LUA_PATH_5_4 -u LUA_CPATH_5_4 LUA_PATH=" .. M.q(lp) .. " LUA_CPATH=" .. M.q(cp) .. " "
end

--- The smallest of a list: the fastest run. Other processes on a busy
-- machine only ever add to a run's time (cache and core contention), so
-- the minimum is the steadiest estimate of what the work itself costs.
function M.best(list)
  local m = math.huge
  for _, v in ipairs(list) do m = math.min(m, v) end
  return m
end

--- The whole file, or "" when there is none.
function M.read_file(path)
  local f = io.open(path, "rb")
  local text = f and f:read("*a") or ""
  if f then f:close() end
  return text
end

--- Writes text to a file, replacing it.
function M.write_file(path, text)
  local f = assert(io.open(path, "wb"))
  f:write(text)
  f:close()
end

--- Puts `section` into the file at `path` in place of the text from the
-- marker `first` to the marker `last` (both included, as `section`
-- carries them), or at its end when they are not there.
function M.replace_marked(path, section, first, last)
  local text = M.read_file(path)
  local a, b = text:find(first, 1, true), select(2, text:find(last, 1, true))
  if a and b then
    text = text:sub(1, a - 1) .. section .. text:sub(b + 1)
  else
    text = text:gsub("\n*$", "\n\n") .. section .. "\n"
  end
  M.write_file(path, text)
end

-- The pid nginx wrote under dir, or nil.
local function nginx_pid(dir)
  local f = io.open(dir .. "/nginx.pid")
  local pid = f and f:read("*n")
  if f then f:close() end
  return pid
end

--- Starts nginx (one worker, keep-alive without limit) with its files
-- under `dir`, on a free port and the next one, which speaks HTTP/2 in
-- cleartext (prior knowledge: the only protocol the performance client's
-- node binding uses). `opts.http`: more lines of its http block;
-- `opts.server`: the lines of its server block after the two listens;
-- it is up when a POST of "{}" to `opts.probe` (a path) answers
-- `opts.expect`. Returns the first port's root URL, a function that stops
-- nginx, and the second port's root URL.
function M.start_nginx(dir, opts)
  os.execute("mkdir -p " .. M.q(dir .. "/tmp"))
  for attempt = 1, 20 do
    local port = 20000 + math.floor((core.now() * 7919 + attempt * 104729) % 20000)
    local conf = {
      "worker_processes 1;", "daemon off;", "pid " .. dir .. "/nginx.pid;",
      "error_log " .. dir .. "/error.log warn;", "events { worker_connections 4096; }",
      "http {", "  access_log off;", "  keepalive_requests 10000000;", "  keepalive_timeout 75s;",
    }
    for _, line in ipairs(opts.http or {}) do conf[#conf + 1] = line end
    for _, line in ipairs({ "  client_body_temp_path " .. dir .. "/tmp;", "  proxy_temp_path " .. dir .. "/tmp;",
      "  fastcgi_temp_path " .. dir .. "/tmp;",
      "  server {", "    listen 127.0.0.1:" .. port .. ";", "    listen 127.0.0.1:" .. (port + 1) .. " http2;" }) do
      conf[#conf + 1] = line
    end
    for _, line in ipairs(opts.server) do conf[#conf + 1] = line end
    conf[#conf + 1] = "  }"
    conf[#conf + 1] = "}"
    M.write_file(dir .. "/nginx.conf", table.concat(conf, "\n") .. "\n")
    os.remove(dir .. "/nginx.pid")
    os.execute(("nginx -p %s -c %s >%s 2>&1 &"):format(M.q(dir), M.q(dir .. "/nginx.conf"), M.q(dir .. "/out.log")))
    local url = "http://127.0.0.1:" .. port
    local deadline = core.now() + 5
    while core.now() < deadline do
      local out = M.sh("curl -s -m 1 -X POST -d '{}' " .. M.q(url .. opts.probe) .. " 2>/dev/null")
      if out == opts.expect then
        local pid = nginx_pid(dir)
        return url, function() if pid then os.execute("kill " .. pid) end end, "http://127.0.0.1:" .. (port + 1)
      end
      core.sleep(0.05)
    end
    local pid = nginx_pid(dir)
    if pid then os.execute("kill " .. pid) end
  end
  error("bench: nginx did not start (see " .. dir .. "/error.log)", 0)
end

return M
