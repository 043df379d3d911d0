-- spec/support/server.lua: start/stop/script the local OpenAI-compatible test
-- server (spec/support/server.py) from busted specs.
--
--   local server = require("spec.support.server")
--   local s = server.start()          -- or server.start{api_key = "k"}
--   s.url   --> "http://127.0.0.1:PORT/v1"
--   s:enqueue({status = 429, headers = {["Retry-After"] = "0"}}, {json = {...}})
--   ... run the client against s.url ...
--   local reqs = s:requests()         -- recorded requests (see README below)
--   s:stop()
--
-- Works on Lua 5.1, 5.2, 5.3, 5.4 and LuaJIT.  Uses LuaSocket ("socket")
-- for the control endpoints when available; otherwise falls back to a tiny
-- python3 one-liner (slower, but no C module needed).
--
-- The JSON encoder/decoder in here is deliberately minimal and only meant for
-- talking to the control endpoints; it is exported as server.json_encode /
-- server.json_decode for convenience in specs.

local M = {}

local has_socket, socket = pcall(require, "socket")
if not has_socket then socket = nil end

local floor = math.floor
local byte, char, sub, find, format = string.byte, string.char, string.sub,
  string.find, string.format
local concat = table.concat

---------------------------------------------------------------------------
-- JSON
---------------------------------------------------------------------------

-- JSON null (decoded inside arrays; use it in tables to send null).
M.null = setmetatable({}, { __tostring = function() return "null" end })

local array_mt = { __tostring = function() return "json-array" end }

-- Mark a table as a JSON array (needed for empty arrays; {} is an object).
function M.array(t)
  return setmetatable(t or {}, array_mt)
end

local function is_array(t)
  if getmetatable(t) == array_mt then return true end
  local n, max = 0, 0
  for k in pairs(t) do
    if type(k) ~= "number" or k < 1 or k % 1 ~= 0 then return false end
    n = n + 1
    if k > max then max = k end
  end
  return n > 0 and max == n
end

-- Length of the valid UTF-8 sequence starting at i, or nil.
local function utf8_len(s, i, n)
  local c = byte(s, i)
  local len
  if c < 0x80 then return 1
  elseif c >= 0xC2 and c <= 0xDF then len = 2
  elseif c >= 0xE0 and c <= 0xEF then len = 3
  elseif c >= 0xF0 and c <= 0xF4 then len = 4
  else return nil end
  if i + len - 1 > n then return nil end
  for j = i + 1, i + len - 1 do
    local b = byte(s, j)
    if b < 0x80 or b > 0xBF then return nil end
  end
  local b = byte(s, i + 1)
  if (c == 0xE0 and b < 0xA0) or (c == 0xED and b > 0x9F)
      or (c == 0xF0 and b < 0x90) or (c == 0xF4 and b > 0x8F) then
    return nil
  end
  return len
end

local function is_utf8(s)
  if not find(s, "[\128-\255]") then return true end
  local i, n = 1, #s
  while i <= n do
    local len = utf8_len(s, i, n)
    if not len then return false end
    i = i + len
  end
  return true
end

local escapes = {
  ['"'] = '\\"', ['\\'] = '\\\\', ['\b'] = '\\b', ['\f'] = '\\f',
  ['\n'] = '\\n', ['\r'] = '\\r', ['\t'] = '\\t',
}

local function escape_char(c)
  return escapes[c] or format("\\u%04x", byte(c))
end

-- Valid UTF-8 passes through; every byte that is not part of a valid UTF-8
-- sequence is sent as \u00XX (i.e. read as Latin-1).
local function encode_string(s)
  s = s:gsub('[%c"\\]', escape_char)
  if find(s, "[\128-\255]") then
    local out, i, n, start = {}, 1, #s, 1
    while i <= n do
      local len = utf8_len(s, i, n)
      if len then
        i = i + len
      else
        out[#out + 1] = sub(s, start, i - 1)
        out[#out + 1] = format("\\u%04x", byte(s, i))
        i = i + 1
        start = i
      end
    end
    out[#out + 1] = sub(s, start)
    s = concat(out)
  end
  return '"' .. s .. '"'
end

local function encode_number(x)
  if x ~= x or x == math.huge or x == -math.huge then
    error("json_encode: cannot encode " .. tostring(x), 3)
  end
  if math.type and math.type(x) == "integer" then return format("%d", x) end
  if x == floor(x) and x > -2^53 and x < 2^53 then return format("%.0f", x) end
  local s = format("%.14g", x)
  if tonumber(s) ~= x then s = format("%.17g", x) end
  return s
end

local encode_value

local function encode_table(t, depth)
  if depth > 64 then error("json_encode: table too deep (cycle?)", 3) end
  local out = {}
  if is_array(t) then
    for i = 1, #t do out[i] = encode_value(t[i], depth + 1) end
    return "[" .. concat(out, ",") .. "]"
  end
  local keys = {}
  for k in pairs(t) do
    if type(k) ~= "string" and type(k) ~= "number" then
      error("json_encode: bad key type " .. type(k), 3)
    end
    keys[#keys + 1] = k
  end
  table.sort(keys, function(a, b) return tostring(a) < tostring(b) end)
  for i, k in ipairs(keys) do
    out[i] = encode_string(tostring(k)) .. ":" .. encode_value(t[k], depth + 1)
  end
  return "{" .. concat(out, ",") .. "}"
end

encode_value = function(v, depth)
  local tv = type(v)
  if v == nil or v == M.null then return "null"
  elseif tv == "boolean" then return v and "true" or "false"
  elseif tv == "number" then return encode_number(v)
  elseif tv == "string" then return encode_string(v)
  elseif tv == "table" then return encode_table(v, depth or 0)
  end
  error("json_encode: cannot encode " .. tv, 2)
end

function M.json_encode(v) return encode_value(v, 0) end

local function utf8_char(cp)
  if cp < 0x80 then return char(cp)
  elseif cp < 0x800 then
    return char(0xC0 + floor(cp / 0x40), 0x80 + cp % 0x40)
  elseif cp < 0x10000 then
    return char(0xE0 + floor(cp / 0x1000), 0x80 + floor(cp / 0x40) % 0x40,
      0x80 + cp % 0x40)
  end
  return char(0xF0 + floor(cp / 0x40000), 0x80 + floor(cp / 0x1000) % 0x40,
    0x80 + floor(cp / 0x40) % 0x40, 0x80 + cp % 0x40)
end

local unescapes = {
  b = "\b", f = "\f", n = "\n", r = "\r", t = "\t",
  ['"'] = '"', ['\\'] = '\\', ['/'] = '/',
}

-- Decode JSON text.  null -> nil in objects, M.null inside arrays.
function M.json_decode(str)
  local pos = 1
  local function fail(msg)
    error(format("json_decode: %s at position %d", msg, pos), 0)
  end
  local function skip()
    pos = find(str, "[^ \t\r\n]", pos) or (#str + 1)
  end
  local value
  local function string_value()
    local buf = {}
    pos = pos + 1
    while true do
      local s = find(str, '["\\]', pos)
      if not s then fail("unterminated string") end
      buf[#buf + 1] = sub(str, pos, s - 1)
      if sub(str, s, s) == '"' then
        pos = s + 1
        return concat(buf)
      end
      local c = sub(str, s + 1, s + 1)
      if c == "u" then
        local cp = tonumber(sub(str, s + 2, s + 5), 16)
        if not cp or #sub(str, s + 2, s + 5) < 4 then fail("bad \\u escape") end
        pos = s + 6
        if cp >= 0xD800 and cp <= 0xDBFF and sub(str, pos, pos + 1) == "\\u" then
          local lo = tonumber(sub(str, pos + 2, pos + 5), 16)
          if lo and lo >= 0xDC00 and lo <= 0xDFFF then
            cp = 0x10000 + (cp - 0xD800) * 0x400 + (lo - 0xDC00)
            pos = pos + 6
          end
        end
        buf[#buf + 1] = utf8_char(cp)
      else
        local u = unescapes[c]
        if not u then fail("bad escape") end
        buf[#buf + 1] = u
        pos = s + 2
      end
    end
  end
  value = function()
    skip()
    local c = sub(str, pos, pos)
    if c == "{" then
      local obj = {}
      pos = pos + 1
      skip()
      if sub(str, pos, pos) == "}" then pos = pos + 1; return obj end
      while true do
        skip()
        if sub(str, pos, pos) ~= '"' then fail("expected object key") end
        local k = string_value()
        skip()
        if sub(str, pos, pos) ~= ":" then fail("expected ':'") end
        pos = pos + 1
        local v = value()
        if v ~= M.null then obj[k] = v end
        skip()
        c = sub(str, pos, pos)
        pos = pos + 1
        if c == "}" then return obj end
        if c ~= "," then fail("expected ',' or '}'") end
      end
    elseif c == "[" then
      local arr = M.array({})
      pos = pos + 1
      skip()
      if sub(str, pos, pos) == "]" then pos = pos + 1; return arr end
      local n = 0
      while true do
        n = n + 1
        arr[n] = value()
        skip()
        c = sub(str, pos, pos)
        pos = pos + 1
        if c == "]" then return arr end
        if c ~= "," then fail("expected ',' or ']'") end
      end
    elseif c == '"' then
      return string_value()
    elseif sub(str, pos, pos + 3) == "true" then
      pos = pos + 4; return true
    elseif sub(str, pos, pos + 4) == "false" then
      pos = pos + 5; return false
    elseif sub(str, pos, pos + 3) == "null" then
      pos = pos + 4; return M.null
    else
      local s, e = find(str, "^-?%d+%.?%d*[eE]?[-+]?%d*", pos)
      if not s then fail("unexpected character") end
      local num = tonumber(sub(str, s, e))
      if not num then fail("bad number") end
      pos = e + 1
      return num
    end
  end
  local v = value()
  skip()
  if pos <= #str then fail("trailing garbage") end
  if v == M.null then return nil end
  return v
end

---------------------------------------------------------------------------
-- base64 (pure Lua, no bit ops: works on 5.1 .. 5.4)
---------------------------------------------------------------------------

local b64chars =
  "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
local b64index = {}
for i = 1, 64 do b64index[byte(b64chars, i)] = i - 1 end

function M.b64encode(s)
  local out, n = {}, #s
  for i = 1, n, 3 do
    local a, b, c = byte(s, i, i + 2)
    local v = a * 65536 + (b or 0) * 256 + (c or 0)
    local c1 = floor(v / 262144) % 64 + 1
    local c2 = floor(v / 4096) % 64 + 1
    local c3 = floor(v / 64) % 64 + 1
    local c4 = v % 64 + 1
    out[#out + 1] = sub(b64chars, c1, c1) .. sub(b64chars, c2, c2)
      .. (b and sub(b64chars, c3, c3) or "=")
      .. (c and sub(b64chars, c4, c4) or "=")
  end
  return concat(out)
end

function M.b64decode(s)
  s = s:gsub("[^%w%+/]", "")
  local out, n = {}, #s
  for i = 1, n, 4 do
    local a, b, c, d = byte(s, i, i + 3)
    a, b = b64index[a], b64index[b or 61] or 0
    local cc, dd = c and b64index[c], d and b64index[d]
    local v = a * 262144 + b * 4096 + (cc or 0) * 64 + (dd or 0)
    local x, y, z = floor(v / 65536), floor(v / 256) % 256, v % 256
    if dd then out[#out + 1] = char(x, y, z)
    elseif cc then out[#out + 1] = char(x, y)
    else out[#out + 1] = char(x) end
  end
  return concat(out)
end

---------------------------------------------------------------------------
-- process helpers
---------------------------------------------------------------------------

local util = require("spec.support.util")
local shell_quote, execute_ok, read_file, alive = util.quote, util.ok, util.read_file, util.alive

local function sleep(sec)
  if socket then socket.sleep(sec) else os.execute("sleep " .. sec) end
end

local function now()
  if socket then return socket.gettime() end
  return os.time()
end

-- directory of this file, so the helper works from any cwd
local function here()
  local src = debug.getinfo(1, "S").source
  if sub(src, 1, 1) == "@" then
    local dir = src:sub(2):match("^(.*)/[^/]*$")
    if dir then return dir end
    return "."
  end
  return "spec/support"
end

M.script = here() .. "/server.py"

---------------------------------------------------------------------------
-- control client (HTTP/1.0, one connection per call)
---------------------------------------------------------------------------

local PY_CLIENT = [[
import socket,sys
port,path=int(sys.argv[1]),sys.argv[2]
data=open(path,'rb').read()
s=socket.create_connection(('127.0.0.1',port),timeout=60)
s.sendall(data)
out=[]
while True:
    b=s.recv(65536)
    if not b: break
    out.append(b)
sys.stdout.buffer.write(b''.join(out))
]]

local Server = {}
Server.__index = Server

function Server:_http(method, path, body)
  body = body or ""
  local req = method .. " " .. path .. " HTTP/1.0\r\n"
    .. "Host: 127.0.0.1:" .. self.port .. "\r\n"
    .. "Content-Type: application/json\r\n"
    .. "Content-Length: " .. #body .. "\r\n\r\n" .. body
  local resp
  if socket then
    local c = socket.tcp()
    c:settimeout(60)
    local ok, err = c:connect("127.0.0.1", self.port)
    if not ok then
      c:close()
      error("test server control: connect failed: " .. tostring(err), 3)
    end
    local i = 1
    while i <= #req do
      local last, serr = c:send(req, i)
      if last then
        i = last + 1
      else
        c:close()
        error("test server control: send failed: " .. tostring(serr), 3)
      end
    end
    local data, rerr, partial = c:receive("*a")
    c:close()
    resp = data or partial
    if not resp or resp == "" then
      error("test server control: no response: " .. tostring(rerr), 3)
    end
  else
    local tmp = os.tmpname()
    local f = assert(io.open(tmp, "wb"))
    f:write(req)
    f:close()
    local p = assert(io.popen(self.python .. " -c " .. shell_quote(PY_CLIENT)
      .. " " .. self.port .. " " .. shell_quote(tmp), "r"))
    resp = p:read("*a")
    p:close()
    os.remove(tmp)
  end
  local status = tonumber(resp:match("^HTTP/%d%.%d (%d%d%d)"))
  local hend = find(resp, "\r\n\r\n", 1, true)
  if not status or not hend then
    error("test server control: bad response: " .. resp:sub(1, 200), 3)
  end
  local rbody = resp:sub(hend + 4)
  local decoded = rbody ~= "" and M.json_decode(rbody) or nil
  if status ~= 200 then
    local msg = type(decoded) == "table" and decoded.error or rbody
    error("test server control " .. path .. ": HTTP " .. status .. ": "
      .. tostring(msg), 3)
  end
  return decoded
end

-- Raw-bytes fields: a string that is not valid UTF-8 is sent as {b64 = ...}
-- so the exact bytes reach the wire.
local function raw(v)
  if type(v) == "string" and not is_utf8(v) then
    return { b64 = M.b64encode(v) }
  end
  return v
end

local function prepare(r)
  if type(r) ~= "table" then
    error("enqueue: each response must be a table", 3)
  end
  local out = {}
  for k, v in pairs(r) do out[k] = v end
  if out.body ~= nil then out.body = raw(out.body) end
  if out.garbage ~= nil then out.garbage = raw(out.garbage) end
  if type(out.chunks) == "table" then
    local chunks = M.array({})
    for i, item in ipairs(out.chunks) do
      if type(item) == "table" and item["repeat"] ~= nil then
        chunks[i] = { ["repeat"] = raw(item["repeat"]), count = item.count }
      else
        chunks[i] = raw(item)
      end
    end
    out.chunks = chunks
  end
  return out
end

-- s:enqueue(R1, R2, ...) or s:enqueue({R1, R2, ...}); returns queue length.
function Server:enqueue(...)
  local list = { ... }
  if select("#", ...) == 1 and type(list[1]) == "table" and is_array(list[1])
      and type(list[1][1]) == "table" then
    list = list[1]
  end
  local responses = M.array({})
  for i = 1, #list do responses[i] = prepare(list[i]) end
  local res = self:_http("POST", "/_control/enqueue",
    M.json_encode({ responses = responses }))
  return res.queued
end

function Server:reset()
  self:_http("POST", "/_control/reset", "")
  return self
end

-- Runtime config: {api_key = "k" | server.null, expect_100 = "answer"|"ignore",
-- rate_limit = {share = 0.5, retry_after = "1", count = 3} | server.null}
-- (rate_limit: 429s for a share of chat completions, see server.py's control())
-- (restored to the start() options by reset()).
function Server:config(t)
  self:_http("POST", "/_control/config", M.json_encode(t or {}))
  return self
end

-- List of recorded requests.  Each: index, method, path, http_version,
-- headers ({{name, value}, ...} as received), header_map (lower-case name ->
-- value, repeated headers joined with ", "), body (exact raw bytes),
-- body_text (UTF-8 with U+FFFD for bad bytes), json (parsed body or nil),
-- expect_100, connection_id, time, scripted.
function Server:requests()
  local res = self:_http("GET", "/_control/requests")
  local list = res.requests or {}
  for _, r in ipairs(list) do
    r.body_text = r.body
    r.body = M.b64decode(r.body_b64 or "")
    local map = {}
    for _, h in ipairs(r.headers or {}) do
      local k = h[1]:lower()
      map[k] = map[k] and (map[k] .. ", " .. h[2]) or h[2]
    end
    r.header_map = map
  end
  return list
end

function Server:last_request()
  local list = self:requests()
  return list[#list]
end

-- {connections, requests, open_connections, distinct_connections, queued,
--  hung_up, barrier_most}
function Server:stats()
  return self:_http("GET", "/_control/stats")
end

function Server:alive()
  return self.pid ~= nil and alive(self.pid)
end

function Server:log()
  return read_file(self.logfile) or ""
end

function Server:stop()
  if not self.pid then return end
  local pid = self.pid
  self.pid = nil
  os.execute("kill " .. pid .. " 2>/dev/null")
  local deadline = now() + 5
  while alive(pid) and now() < deadline do sleep(0.01) end
  if alive(pid) then os.execute("kill -9 " .. pid .. " 2>/dev/null") end
  os.remove(self.portfile)
  os.remove(self.logfile)
end

---------------------------------------------------------------------------
-- start
---------------------------------------------------------------------------

-- server.start{api_key = nil, verbose = false, python = "python3",
--              timeout = 10, args = "extra args"} -> server object
function M.start(opts)
  opts = opts or {}
  local python = opts.python or os.getenv("BASETEN_TEST_PYTHON") or "python3"
  local portfile, logfile, pidfile = os.tmpname(), os.tmpname(), os.tmpname()
  os.remove(portfile)
  local cmd = { shell_quote(python), shell_quote(M.script), "--port 0",
    "--port-file", shell_quote(portfile), "--parent-pid $PPID" }
  if opts.api_key then cmd[#cmd + 1] = "--api-key " .. shell_quote(opts.api_key) end
  if opts.verbose then cmd[#cmd + 1] = "--verbose" end
  if opts.args then cmd[#cmd + 1] = opts.args end
  local line = concat(cmd, " ") .. " </dev/null >" .. shell_quote(logfile)
    .. " 2>&1 & echo $! >" .. shell_quote(pidfile)
  if not execute_ok(line) then
    error("test server: could not run: " .. line, 2)
  end
  local pid = tonumber((read_file(pidfile) or ""):match("%d+"))
  os.remove(pidfile)
  if not pid then error("test server: no pid", 2) end

  local self = setmetatable({ pid = pid, python = python, portfile = portfile,
    logfile = logfile, host = "127.0.0.1" }, Server)
  local deadline = now() + (opts.timeout or 10)
  local port
  while true do
    port = tonumber((read_file(portfile) or ""):match("^(%d+)"))
    if port then break end
    if not alive(pid) then
      local log = self:log()
      os.remove(logfile)
      error("test server exited during startup:\n" .. log, 2)
    end
    if now() > deadline then
      local log = self:log()
      self:stop()
      error("test server did not start within timeout:\n" .. log, 2)
    end
    sleep(0.005)
  end
  self.port = port
  self.base_url = "http://127.0.0.1:" .. port
  self.url = self.base_url .. "/v1"
  return self
end

M.Server = Server
return M
