-- spec/support/tls.lua: a real nginx terminating TLS (HTTP/2 and HTTP/1.1)
-- in front of the local test server, with a CA and a server certificate
-- made at test time with openssl; and a CONNECT proxy (proxy.py).
--
--   local tls = require("spec.support.tls")
--   if not tls.available() then pending(tls.missing) end
--   local front = tls.start{ upstream = srv.port }
--   front.url      --> "https://localhost:PORT/v1"  (the certificate's name)
--   front.ip_url   --> "https://127.0.0.1:PORT/v1"  (not in the certificate)
--   front.ca_file  --> the CA that signed it
--   front:access_log() -> lines "proto connection request_uri status"
--   front:stop()
--   local p = tls.proxy()   p.url, p:tunnels() -> {"CONNECT host:port", ...}, p:stop()
--
-- nginx runs as the current user, in the foreground (daemon off) in the
-- background of a shell, with its prefix, config, pid, logs and temp paths
-- in a fresh temporary directory; nothing under /etc, /var or /run is used.
-- A watchdog shell kills it should the Lua process die without stop().
-- The server certificate names only DNS:localhost, so the same server at
-- https://127.0.0.1 is a host name mismatch.
local core = require("baseten.core")

local M = {}

local util = require("spec.support.util")
local q, ok, read, capture, alive = util.quote, util.ok, util.read_file, util.capture, util.alive

local function write(path, s)
  local f = assert(io.open(path, "wb"))
  f:write(s)
  f:close()
end

local function here()
  local src = debug.getinfo(1, "S").source
  return src:sub(1, 1) == "@" and (src:sub(2):match("^(.*)/[^/]*$") or ".") or "spec/support"
end

local function find_nginx()
  for _, p in ipairs({ "/usr/sbin/nginx", "/usr/local/sbin/nginx", "/usr/local/nginx/sbin/nginx" }) do
    if ok("test -x " .. q(p)) then return p end
  end
  local p = capture("command -v nginx 2>/dev/null")
  return p ~= "" and p or nil
end

M.nginx = find_nginx()
M.missing = "TLS specs need nginx and openssl (bash scripts/deps.sh tls)"

function M.available()
  return M.nginx ~= nil and ok("command -v openssl >/dev/null 2>&1")
end

local function kill(pid)
  if not pid or not alive(pid) then return end
  os.execute("kill " .. pid .. " 2>/dev/null")
  local deadline = core.now() + 5
  while alive(pid) and core.now() < deadline do core.sleep(0.02) end
  if alive(pid) then os.execute("kill -9 " .. pid .. " 2>/dev/null") end
end

local function free_port()
  return tonumber(capture([[python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])']]))
end

local function wait_port(port, timeout)
  return ok(("python3 -c %s %d %s"):format(q([[
import socket, sys, time
port, deadline = int(sys.argv[1]), time.time() + float(sys.argv[2])
while time.time() < deadline:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        sys.exit(0)
    except OSError:
        time.sleep(0.02)
sys.exit(1)
]]), port, timeout))
end

-- A CA and a server certificate for DNS:localhost (only), in dir.
local function make_certs(dir)
  local ec = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes"
  write(dir .. "/server.ext", "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n"
    .. "extendedKeyUsage=serverAuth\nsubjectAltName=DNS:localhost\n")
  local cmds = {
    ("openssl req -x509 %s -keyout %s/ca.key -out %s/ca.pem -days 2 -subj '/CN=baseten test CA'"
      .. " -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign"):format(ec, dir, dir),
    ("openssl req %s -keyout %s/server.key -out %s/server.csr -subj '/CN=localhost'"):format(ec, dir, dir),
    ("openssl x509 -req -in %s/server.csr -CA %s/ca.pem -CAkey %s/ca.key -CAcreateserial -days 2"
      .. " -out %s/server.pem -extfile %s/server.ext"):format(dir, dir, dir, dir, dir),
  }
  for _, c in ipairs(cmds) do
    if not ok(c .. " >>" .. dir .. "/openssl.log 2>&1") then
      error("tls: openssl failed: " .. c .. "\n" .. (read(dir .. "/openssl.log") or ""), 3)
    end
  end
end

local CONF = [[
daemon off;
master_process on;
worker_processes 1;
user ${user} ${group};
pid ${dir}/nginx.pid;
error_log ${dir}/error.log info;
events { worker_connections 256; }
http {
  log_format probe '$server_protocol $connection $request_uri $status';
  access_log ${dir}/access.log probe;
  client_body_temp_path ${dir}/tmp/body;
  proxy_temp_path ${dir}/tmp/proxy;
  fastcgi_temp_path ${dir}/tmp/fastcgi;
  uwsgi_temp_path ${dir}/tmp/uwsgi;
  scgi_temp_path ${dir}/tmp/scgi;
  server {
    listen 127.0.0.1:${port} ssl http2;
    server_name localhost;
    ssl_certificate ${dir}/server.pem;
    ssl_certificate_key ${dir}/server.key;
    # response headers of 280 KB in all: past libcurl's HTTP/2 header cap and ours
    location /v1/huge-header/ {
${huge}
      return 200 '{}';
    }
    location / {
      proxy_pass http://127.0.0.1:${upstream};
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_buffering off;
      proxy_request_buffering off;
      proxy_read_timeout 60s;
    }
  }
}
]]

-- nginx lines adding 70 headers of 4000 bytes each, 280 KB (one parameter of nginx's
-- config may not hold them all).
function M.huge_headers()
  local lines = {}
  for i = 1, 70 do
    lines[i] = ("      add_header X-Huge-%d %s always;"):format(i, string.rep(string.char(97 + i % 26), 4000))
  end
  return table.concat(lines, "\n")
end

local Front = {}
Front.__index = Front

function Front:access_log()
  local lines = {}
  for line in (read(self.dir .. "/access.log") or ""):gmatch("[^\n]+") do lines[#lines + 1] = line end
  return lines
end

function Front:error_log()
  return read(self.dir .. "/error.log") or ""
end

function Front:stop()
  if self.stopped then return end
  self.stopped = true
  kill(self.pid)
  if self.watchdog then kill(self.watchdog) end
  os.execute("rm -rf " .. q(self.dir))
end

--- Starts nginx in front of 127.0.0.1:opts.upstream. Raises on failure.
function M.start(opts)
  assert(M.available(), M.missing)
  local dir = capture("mktemp -d /tmp/baseten-tls.XXXXXX")
  assert(dir ~= "", "tls: mktemp failed")
  os.execute("mkdir -p " .. q(dir .. "/tmp"))
  make_certs(dir)
  local last_err
  for _ = 1, 3 do -- the free port may be taken before nginx binds it
    local port = free_port()
    local vars = { dir = dir, port = port, upstream = opts.upstream, huge = M.huge_headers(),
                   user = capture("id -un"), group = capture("id -gn") }
    write(dir .. "/nginx.conf", (CONF:gsub("%${(%w+)}", function(k) return tostring(vars[k]) end)))
    os.remove(dir .. "/nginx.pid")
    -- nginx in the background of a shell that kills it when the Lua
    -- process (this shell's parent) is gone
    local cmd = ("lp=$PPID; (%s -p %s -c %s -e %s </dev/null >>%s 2>&1 & n=$!; echo $n >%s; "
      .. "while kill -0 $lp 2>/dev/null && kill -0 $n 2>/dev/null; do sleep 0.5; done; kill $n 2>/dev/null) "
      .. ">/dev/null 2>&1 & echo $! >%s")
      :format(q(M.nginx), q(dir), q(dir .. "/nginx.conf"), q(dir .. "/error.log"), q(dir .. "/stdout.log"),
              q(dir .. "/master.pid"), q(dir .. "/watchdog.pid"))
    assert(ok(cmd), "tls: could not start nginx")
    local deadline = core.now() + 5
    local pid
    while core.now() < deadline and not pid do
      pid = tonumber((read(dir .. "/master.pid") or ""):match("%d+"))
      if not pid then core.sleep(0.01) end
    end
    local self = setmetatable({ dir = dir, port = port, pid = pid, ca_file = dir .. "/ca.pem",
                                watchdog = tonumber((read(dir .. "/watchdog.pid") or ""):match("%d+")),
                                url = "https://localhost:" .. port .. "/v1",
                                ip_url = "https://127.0.0.1:" .. port .. "/v1" }, Front)
    if pid and wait_port(port, 5) and alive(pid) then return self end
    last_err = (read(dir .. "/error.log") or "") .. (read(dir .. "/stdout.log") or "")
    kill(pid)
    if self.watchdog then kill(self.watchdog) end
  end
  os.execute("rm -rf " .. q(dir))
  error("tls: nginx did not start:\n" .. tostring(last_err), 2)
end

local Proxy = {}
Proxy.__index = Proxy

function Proxy:tunnels()
  local list = {}
  for line in (read(self.log) or ""):gmatch("[^\n]+") do list[#list + 1] = line end
  return list
end

function Proxy:stop()
  if self.stopped then return end
  self.stopped = true
  kill(self.pid)
  os.remove(self.log)
  os.remove(self.portfile)
end

--- Starts spec/support/proxy.py, a CONNECT proxy on 127.0.0.1.
function M.proxy()
  local portfile, log, pidfile = os.tmpname(), os.tmpname(), os.tmpname()
  os.remove(portfile)
  local cmd = ("python3 %s --port-file %s --log %s --parent-pid $PPID </dev/null >/dev/null 2>&1 & echo $! >%s")
    :format(q(here() .. "/proxy.py"), q(portfile), q(log), q(pidfile))
  assert(ok(cmd), "tls: could not start the proxy")
  local pid = tonumber((read(pidfile) or ""):match("%d+"))
  os.remove(pidfile)
  local deadline = core.now() + 10
  local port
  while core.now() < deadline do
    port = tonumber((read(portfile) or ""):match("^(%d+)"))
    if port or not (pid and alive(pid)) then break end
    core.sleep(0.01)
  end
  assert(port, "tls: the proxy did not start")
  return setmetatable({ pid = pid, port = port, log = log, portfile = portfile,
                        url = "http://127.0.0.1:" .. port }, Proxy)
end

return M
