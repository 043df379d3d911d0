--- baseten: a client for Baseten's Model APIs and any OpenAI-compatible
-- chat-completions server.
--
--     local baseten = require("baseten")
--     local client = baseten.new{ model = "deepseek-ai/DeepSeek-V3.1" }
--     local resp = baseten.check(client:chat{ messages = {{role = "user", content = "Hi"}} })
--     print(resp.choices[1].message.content)
--
-- @module baseten
-- a core built for another Lua fails with a bare "undefined symbol": say why
local core_ok, core = pcall(require, "baseten.core")
if not core_ok then error(require("baseten.abi").explain(core), 0) end
local client = require("baseten.client") -- a client has every method when it is made
local tool = require("baseten.tool")
local errors = require("baseten.errors")

-- The types of the public API (for Neovim's and VS Code's Lua language
-- servers) are in baseten/types.lua, which is never loaded.
---@class baseten
local M = {}

--- The library version, "X.Y.Z".
M.VERSION = core.VERSION

--- JSON in C (a one-pass decoder, an owned-buffer encoder): `encode`, `decode`, `null`, `array`, `object`.
M.json = core.json

--- The incremental Server-Sent Events parser: `baseten.sse.new()`.
M.sse = core.sse

--- Packed float32 vectors in C (embeddings): `from`, `frombytes`,
-- `frombase64`, `tobytes`, `top_k`; methods `dot`, `cosine`, `norm`,
-- `normalized`, `totable`, `#v`, `v[i]`.
M.vector = core.vector

--- Makes a client. See `baseten.client.new` for the options.
M.new = client.new

--- Makes a tool for `run_tools` (and any request's `tools`).
M.tool = tool.tool

--- Error helpers: `errors.is_error(v)`, `errors.KINDS`.
M.errors = errors

--- `assert` for calls that return `nil, err`: returns all its arguments
-- when the first is not nil, else raises `tostring(err)`, a string, at the
-- caller's line. Use it instead of `assert(client:chat{...})`: on PUC Lua
-- 5.1 `assert` refuses a table message ("bad argument #2 to 'assert'") and
-- an uncaught error table prints "(error object is not a string)". Only
-- nil fails, so a `false` JSON answer of `client:json` passes.
--     local resp = baseten.check(client:chat{ messages = msgs })
-- @param v the first result of a call
-- @param err the second (the error when `v` is nil)
-- @return v, err, ... unchanged
function M.check(v, err, ...)
  if v == nil then
    error(err == nil and "baseten: check failed (nil without an error)" or tostring(err), 2)
  end
  return v, err, ...
end

return M
