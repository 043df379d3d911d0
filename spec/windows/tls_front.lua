-- spec/windows/tls_front.lua UPSTREAM_PORT OUT_FILE: nginx terminating TLS
-- in front of a local test server (spec/support/tls.lua), for the Wine
-- smoke suite (scripts/windows_smoke.sh runs it with the Lua 5.4 build).
-- Writes "url ip_url ca_file" to OUT_FILE, then stays until its parent
-- shell (the smoke script) is gone, and stops nginx.
local tls = require("spec.support.tls")
local util = require("spec.support.util")
local core = require("baseten.core")

local upstream, out = tonumber(arg[1]), arg[2]
local parent = tonumber(arg[3])
assert(upstream and out and parent, "usage: tls_front.lua UPSTREAM_PORT OUT_FILE PARENT_PID")
if not tls.available() then
  io.stderr:write(tls.missing, "\n")
  os.exit(1)
end
local front = tls.start { upstream = upstream }
local f = assert(io.open(out .. ".tmp", "w"))
f:write(front.url, " ", front.ip_url, " ", front.ca_file, "\n")
f:close()
assert(os.rename(out .. ".tmp", out))
while util.alive(parent) do core.sleep(0.2) end
front:stop()
