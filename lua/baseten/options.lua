--- Option checks (internal): every option a user gives is checked here,
-- where it is given, from one table per place: `CLIENT` for `baseten.new`,
-- `CALL` for the per-call options of every call (`chat`, `stream`,
-- `models`, `json`, `run_tools`, `start`, `batch`, ...).
--
-- A bad option is a programming error: it raises at the caller's line, and
-- the message names the option and says what it must be
-- (`baseten.new: timeout must be a number of seconds from 0 to 2147483, not nan`).
-- Options a table does not list are left alone (a feature module checks
-- its own, with `check` and a table of its own).
-- @module baseten.options
local M = {}

--- The longest time limit libcurl takes, in seconds (a 32-bit count of ms).
M.MAX_SECONDS = 2147483

--- The most retries a call may ask for.
M.MAX_RETRIES = 100

local function repr(v)
  if type(v) == "string" then return string.format("%q", #v > 40 and v:sub(1, 40) .. "..." or v) end
  if type(v) == "number" and v ~= v then return "nan" end
  return tostring(v)
end

-- Each check: value -> ok, and what the option must be.
local CHECKS = {}

function CHECKS.seconds(v)
  return type(v) == "number" and v == v and v >= 0 and v <= M.MAX_SECONDS,
    "a number of seconds from 0 to " .. M.MAX_SECONDS
end

function CHECKS.retries(v)
  return type(v) == "number" and v >= 0 and v <= M.MAX_RETRIES and v % 1 == 0,
    "an integer from 0 to " .. M.MAX_RETRIES
end

function CHECKS.string(v)
  return type(v) == "string", "a string"
end

function CHECKS.boolean(v)
  return type(v) == "boolean", "a boolean"
end

function CHECKS.func(v)
  if type(v) == "function" then return true end
  local mt = getmetatable(v)
  return type(mt) == "table" and mt.__call ~= nil, "a function"
end

function CHECKS.session(v)
  if v == false then return true end
  return type(v) == "string" and v ~= "" and #v <= 256 and not M.breaks_header(v),
    "a non-empty string of at most 256 bytes without CR, LF or NUL, or false"
end

-- An array of clients made by baseten.new (a client's runtime tells).
function CHECKS.clients(v)
  local what = "an array of clients made by baseten.new"
  if type(v) ~= "table" then return false, what end
  local runtime = require("baseten.runtime")
  for i = 1, #v do
    if not pcall(runtime.of, v[i]) then return false, what .. " ([" .. i .. "] is a " .. type(v[i]) .. ")" end
  end
  for k in pairs(v) do
    if type(k) ~= "number" or k < 1 or k > #v or k % 1 ~= 0 then return false, what end
  end
  return true
end

-- model -> {prompt = $, completion = $, cached = $} per million tokens.
function CHECKS.prices(v)
  local what = "a table of model -> {prompt = n, completion = n, cached = n} (prices per million tokens)"
  if type(v) ~= "table" then return false, what end
  for model, p in pairs(v) do
    if type(model) ~= "string" or type(p) ~= "table" then return false, what end
    for _, k in ipairs({ "prompt", "completion", "cached" }) do
      if p[k] ~= nil and (type(p[k]) ~= "number" or p[k] ~= p[k] or p[k] < 0) then
        return false, what .. " (" .. model .. "." .. k .. " is not a number >= 0)"
      end
    end
  end
  return true
end

function CHECKS.table(v)
  return type(v) == "table", "a table"
end

function CHECKS.positive_integer(v)
  return type(v) == "number" and v >= 1 and v % 1 == 0 and v < math.huge, "a positive integer"
end

-- An HTTP field name is a token (RFC 9110 §5.1, §5.6.2): letters, digits
-- and !#$%&'*+-.^_`|~; anything else (":", space, CR, LF) could forge a
-- header line.
local TOKEN = "^[A-Za-z0-9!#$%%&'*+%-.^_`|~]+$"

--- Whether `name` is a valid HTTP header name.
function M.is_token(name)
  return type(name) == "string" and name:find(TOKEN) ~= nil
end

-- Whether a header value or key holds a byte that would end the header
-- line (CR, LF) or the C string (NUL).
function M.breaks_header(s)
  return s:find("\r", 1, true) ~= nil or s:find("\n", 1, true) ~= nil or s:find("\0", 1, true) ~= nil
end

function CHECKS.headers(v)
  if type(v) ~= "table" then return false, "a table of header names to values" end
  for k, val in pairs(v) do
    if not M.is_token(k) then
      return false, "a table of header names to values (" .. repr(k)
        .. " is not a valid header name: letters, digits and !#$%&'*+-.^_`|~ only)"
    end
    if type(val) ~= "string" and type(val) ~= "number" then
      return false, "a table of header names to strings (" .. k .. " is a " .. type(val) .. ")"
    end
    if M.breaks_header(tostring(val)) then
      return false, "a table of header names to values without CR, LF or NUL (the value of " .. k .. ")"
    end
  end
  return true
end

--- The options of `baseten.new` that have a plain check (api_key,
-- base_url, deployment and environment are checked by `baseten.client`).
M.CLIENT = {
  model = "string", timeout = "seconds", connect_timeout = "seconds", idle_timeout = "seconds",
  max_retries = "retries", headers = "headers", ca_file = "string", ca_path = "string",
  proxy = "string", insecure = "boolean", ssl_no_revoke = "boolean", log = "func",
  session = "session", prices = "prices", fallback = "clients",
}

--- The per-call options every call takes (its `opts` argument, or the
-- handlers table of `start`, or the options of `batch`).
M.CALL = { timeout = "seconds", max_retries = "retries", headers = "headers", session = "session",
           fallback = "clients" }

--- The header that pins a conversation to one replica (prompt-cache affinity).
M.SESSION_HEADER = "x-session-affinity"

-- The header lines of one call: the session's first (the call's, else the
-- client's), so that an explicit header of the same name wins.
local function call_headers(client, copts)
  local lines = M.header_lines(copts and copts.headers)
  local session = copts and copts.session
  if session == nil then session = client.session end
  if type(session) == "string" then table.insert(lines, 1, M.SESSION_HEADER .. ": " .. session) end
  return lines
end

--- The options of `batch` and `start_batch` besides `CALL`.
M.BATCH = { concurrency = "positive_integer", on_result = "func", on_progress = "func", on_done = "func",
            max_total_tokens = "positive_integer" }

--- The handlers of `start` besides `CALL`.
M.HANDLERS = { on_chunk = "func", on_done = "func" }

--- The client-side keys of a `run_tools` request (a list of strings is
-- one of those values).
M.RUN_TOOLS = {
  max_rounds = "positive_integer", reasoning_history = { "keep", "drop" }, tools = "table",
  on_content = "func", on_reasoning = "func", on_tool_call = "func", on_tool_error = "func", confirm = "func",
}

--- The client-side keys of a `json` request.
M.JSON = { schema = "table", schema_name = "string" }

-- A list of the strings an option may be.
local function one_of(list, v)
  for _, x in ipairs(list) do
    if v == x then return true end
  end
  local quoted = {}
  for i, x in ipairs(list) do quoted[i] = string.format("%q", x) end
  return false, table.concat(quoted, " or ")
end

--- Checks `opts` against `spec` (a table of option name -> check name, or
-- -> a list of the strings it may be), and raises at `level` (counted from
-- the caller of `check`) on the first bad one, as "<where>: <prefix><name>
-- must be <what>, not <value>".
-- @tparam table spec
-- @tparam table opts
-- @tparam string where e.g. "baseten.new"
-- @tparam integer level 1: the caller of `check`
-- @tparam[opt] string prefix before each name, e.g. "req."
function M.check(spec, opts, where, level, prefix)
  for name, kind in pairs(spec) do
    local v = opts[name]
    if v ~= nil then
      local ok, what
      if type(kind) == "table" then ok, what = one_of(kind, v) else ok, what = CHECKS[kind](v) end
      if not ok then
        local shown = kind == "headers" and type(v) == "table" and "" or (", not " .. repr(v))
        error(where .. ": " .. (prefix or "") .. name .. " must be " .. what .. shown, level + 1)
      end
    end
  end
end

--- The header lines `"Name: value"` of a checked headers table, sorted.
function M.header_lines(headers)
  local list = {}
  if headers == nil then return list end
  for k, v in pairs(headers) do list[#list + 1] = k .. ": " .. v end
  table.sort(list)
  return list
end

--- The options of one call: the client's, overridden by `copts` (checked
-- here, raising at `level` counted from the caller of `call`).
-- @tparam table client
-- @tparam[opt] table copts `timeout`, `max_retries`, `headers`
-- @tparam string where the call's name, for messages
-- @tparam integer level
-- @treturn table `{timeout, max_retries, headers}` (headers as lines)
function M.call(client, copts, where, level)
  if copts == nil then
    return { timeout = client.timeout, max_retries = client.max_retries, headers = call_headers(client, nil),
             fallback = client.fallback }
  end
  if type(copts) ~= "table" then error("baseten: " .. where .. ": options must be a table", level + 1) end
  M.check(M.CALL, copts, "baseten: " .. where, level + 1)
  local timeout, retries = copts.timeout, copts.max_retries
  if timeout == nil then timeout = client.timeout end
  if retries == nil then retries = client.max_retries end
  local fallback = copts.fallback
  if fallback == nil then fallback = client.fallback end
  return { timeout = timeout, max_retries = retries, headers = call_headers(client, copts), fallback = fallback }
end

return M
