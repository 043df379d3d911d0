--- A tool loop's options (internal): `run_tools`' and `start_tools`'
-- request keys and options, checked where they are given (raising at the
-- caller's line), merged (`opts` wins over `req`), and the call options of
-- every round (the conversation's session id included).
-- @module baseten.toolopts
local core = require("baseten.core")
local options = require("baseten.options")
local request = require("baseten.request")
local agent = require("baseten.agent")

local M = {}

-- The loop's own options, in `req` or in `opts` (`opts` wins).
local LOOP = {
  on_tool_result = "func", on_round = "func", on_done = "func", confirm = "func",
  max_total_tokens = "positive_integer", transcript = "table", on_tool_call_delta = "func",
}
local CALLBACKS = { "on_content", "on_reasoning", "on_tool_call", "on_tool_error", "on_tool_result",
                    "on_round", "on_done", "confirm", "max_rounds", "reasoning_history",
                    "max_total_tokens", "transcript", "on_tool_call_delta" }

local seq = 0
--- A fresh session id for one conversation's affinity header: random
-- enough that two processes started in the same second differ.
function M.session_id()
  seq = seq + 1
  local t = core.now()
  local addr = tostring({}):match("0x(%x+)") or tostring({}):match("(%x+)$") or "0"
  return string.format("bt-%x-%06x-%s-%x", os.time(), math.floor((t * 1e6) % 0x1000000), addr:sub(-8), seq)
end

-- The options of one loop from `req` and `opts`: checks them (raising at
-- `level` counted from the caller) and returns the settings table.
function M.settings(client, req, opts, where, level)
  level = level + 1
  if type(req) ~= "table" then error("baseten: " .. where .. " expects a request table", level) end
  if opts ~= nil and type(opts) ~= "table" then error("baseten: " .. where .. ": options must be a table", level) end
  opts = opts or {}
  local problem = request.messages_problem(req.transcript or req.messages)
  if problem then error("baseten: " .. where .. ": req.messages " .. problem, level) end
  if req.model == nil and client.model == nil then
    error("baseten: " .. where .. ": req.model is required (or set model on the client)", level)
  end
  options.check(options.RUN_TOOLS, req, "baseten: " .. where, level, "req.")
  options.check(LOOP, req, "baseten: " .. where, level, "req.")
  options.check(options.RUN_TOOLS, opts, "baseten: " .. where, level, "opts.")
  options.check(LOOP, opts, "baseten: " .. where, level, "opts.")
  local s = {}
  for _, k in ipairs(CALLBACKS) do
    if opts[k] ~= nil then s[k] = opts[k] else s[k] = req[k] end
  end
  local handlers, names = agent.handlers_of(req.tools)
  if not handlers then error("baseten: " .. where .. ": " .. names, level) end
  s.handlers, s.names = handlers, names
  s.max_rounds = s.max_rounds or agent.DEFAULT_MAX_ROUNDS
  -- the session: per call, else the client's, else one per conversation
  local session = opts.session
  if session == nil then session = req.session end
  if session == nil and client.session == nil then session = M.session_id() end
  local copts = { timeout = opts.timeout, max_retries = opts.max_retries, headers = opts.headers,
                  session = session, fallback = opts.fallback }
  s.copts = options.call(client, copts, where, level)
  return s
end

return M
