-- spec/dist/check.lua DIR VERSION: what scripts/dist_test.sh runs against an
-- unpacked release archive (or a LÖVE kit's folder), in an empty folder,
-- with an interpreter the user has (lua5.4, luajit, luajit.exe under Wine)
-- and nothing from the build tree. Plain Lua 5.1-5.4, no other module.
--
-- DIR is the unpacked archive: DIR/lua/baseten/*.lua and core.so/core.dll
-- (CHECK_LUA_DIR names another folder holding baseten/*.lua: a LÖVE kit's).
-- CHECK_URL is the test server (its mock model echoes "You said: ...") and
-- CHECK_KEY the key it wants. With CHECK_CPATH=default, package.cpath is
-- left as the interpreter has it (the LÖVE kit's `!\?.dll` case), else it is
-- DIR/lua/?.so (or .dll). It prints one line per check and exits non-zero
-- on the first failure.
local dir, want_version = arg[1], arg[2]
assert(dir and want_version, "usage: check.lua DIR VERSION")
local windows = package.config:sub(1, 1) == "\\"
local sep = windows and "\\" or "/"
local url = assert(os.getenv("CHECK_URL"), "CHECK_URL is not set")
local key = assert(os.getenv("CHECK_KEY"), "CHECK_KEY is not set")

local lua_dir = dir .. sep .. "lua" .. sep
local lua_files = os.getenv("CHECK_LUA_DIR") and (os.getenv("CHECK_LUA_DIR") .. sep) or lua_dir
package.path = lua_files .. "?.lua;" .. lua_files .. "?" .. sep .. "init.lua"
if os.getenv("CHECK_CPATH") ~= "default" then
  package.cpath = lua_dir .. "?." .. (windows and "dll" or "so")
end

local function fail(msg)
  io.stderr:write("dist check FAILED: ", msg, "\n")
  os.exit(1)
end

local function ok(v, err)
  if v == nil then fail("unexpected failure: " .. tostring(err)) end
  return v
end

local loaded, baseten = pcall(require, "baseten")
if not loaded then fail("require('baseten'): " .. tostring(baseten)) end
local core_file = package.searchpath and package.searchpath("baseten.core", package.cpath)
print("core: " .. tostring(core_file) .. " (" .. (rawget(_G, "jit") and jit.version or _VERSION) .. ")")
if os.getenv("CHECK_CPATH") ~= "default" and core_file and core_file:sub(1, #dir) ~= dir then
  fail("the core came from " .. core_file .. ", not from " .. dir)
end
if baseten.VERSION ~= want_version then
  fail("baseten.VERSION is " .. tostring(baseten.VERSION) .. ", the archive is " .. want_version)
end
print("version: " .. baseten.VERSION)
local core = require("baseten.core")
print("libcurl: " .. tostring(core.curl_version and core.curl_version()))

local client = baseten.new { api_key = key, base_url = url, model = "test/dist", max_retries = 0, timeout = 30 }
local resp = ok(client:chat { messages = { { role = "user", content = "ping from the archive" } } })
local text = resp.choices[1].message.content
if not text:find("You said: ping from the archive", 1, true) then fail("chat answered " .. tostring(text)) end
print("chat: " .. text)

local s = ok(client:stream { messages = { { role = "user", content = "one two three four" } } })
local parts, chunks = {}, 0
local read_ok, read_err = pcall(function()
  for chunk in s do
    chunks = chunks + 1
    local d = chunk.choices[1] and chunk.choices[1].delta
    if d and type(d.content) == "string" then parts[#parts + 1] = d.content end
  end
end)
if not read_ok then fail("stream: " .. tostring(read_err)) end
local final = ok(s:final())
if final.choices[1].finish_reason ~= "stop" then fail("stream ended with " .. tostring(final.choices[1].finish_reason)) end
local streamed = table.concat(parts)
if chunks < 3 or not streamed:find("You said: one two three four", 1, true) then
  fail(("stream gave %d chunks: %q"):format(chunks, streamed))
end
print(("stream: %d chunks: %s"):format(chunks, streamed))
print("dist check passed")
