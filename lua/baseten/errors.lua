--- Error values for every failure a call can meet.
-- An error is a table with a `__tostring`; fields: `kind`, `message`, and
-- where known `status`, `type`, `code`, `request_id`, `retry_after`, `body`,
-- `attempts`, `elapsed`, ... (the README's Errors section lists them all).
-- @module baseten.errors
local json = require("baseten.core").json

local M = {}

local null = json.null

--- The metatable of every error value.
local Error = {}
Error.__index = Error
M.Error = Error

-- " after 3 attempts in 4.4 s" when more than one attempt was made (the
-- time only when `elapsed` is known), else "".
local function attempts_text(e)
  local n = tonumber(e.attempts)
  if not n or n < 2 then return "" end
  local s = " after " .. string.format("%d", n) .. " attempts"
  local t = tonumber(e.elapsed)
  if t and t >= 0 then s = s .. string.format(t < 1 and " in %.2f s" or " in %.1f s", t) end
  return s
end

--- `baseten: <kind> (HTTP <status>): <message> after <n> attempts in <t> s
-- [request_id <id>]`; the status, the attempts (only when more than one)
-- and the request id only where known.
function Error.__tostring(e)
  local s = "baseten: " .. tostring(e.kind)
  if e.status then s = s .. " (HTTP " .. tostring(e.status) .. ")" end
  s = s .. ": " .. tostring(e.message) .. attempts_text(e)
  if e.request_id then s = s .. " [request_id " .. tostring(e.request_id) .. "]" end
  return s
end

--- Every kind an error can have, as in shared/API.md.
M.KINDS = {
  "bad_request", "authentication", "payment_required", "permission_denied",
  "not_found", "unprocessable", "rate_limit", "server", "http", "connection",
  "timeout", "tls", "invalid_response", "error_event", "refusal",
  "invalid_json", "schema_mismatch", "canceled",
}

local BY_STATUS = {
  [400] = "bad_request", [401] = "authentication", [402] = "payment_required",
  [403] = "permission_denied", [404] = "not_found", [422] = "unprocessable",
  [429] = "rate_limit",
}

--- The error kind of an HTTP status.
-- @tparam integer status
-- @treturn string kind
function M.kind_of_status(status)
  if BY_STATUS[status] then return BY_STATUS[status] end
  if status >= 500 then return "server" end
  return "http"
end

--- Whether a status is worth another attempt: 408, 409, 429 and 5xx.
function M.retryable_status(status)
  return status == 408 or status == 409 or status == 429 or status >= 500
end

--- Keys shorter than this many bytes are placeholders, not secrets, and are
-- never scrubbed (see `scrub`).
M.MIN_SECRET_LEN = 8

local function scrub(s, secret)
  if type(s) ~= "string" or type(secret) ~= "string" or #secret < M.MIN_SECRET_LEN then return s end
  local out, i = {}, 1
  while true do
    local a, b = s:find(secret, i, true)
    if not a then break end
    out[#out + 1] = s:sub(i, a - 1)
    out[#out + 1] = "[REDACTED]"
    i = b + 1
  end
  if #out == 0 then return s end
  out[#out + 1] = s:sub(i)
  return table.concat(out)
end

--- A string with every occurrence of `secret` replaced by "[REDACTED]"
-- (anything else is returned as is). Used on errors, log events and the
-- request id a server sends back.
--
-- The rule: a key of `MIN_SECRET_LEN` (8) bytes or more is replaced
-- wherever it occurs, inside a word too, so a real key never shows. A
-- shorter key is a placeholder that local servers are given (`"EMPTY"`,
-- `"x"`, `"none"`, as in vLLM's documentation): it cannot be a secret, and
-- replacing it would garble ordinary words ("rate_limit_e[REDACTED]ceeded"
-- for `"x"`), so text is left as it is.
M.scrub = scrub

--- Makes an error value. `fields.kind` and `fields.message` are required.
-- Every string field is scrubbed of `secret` (the API key) so that a server
-- that echoes the key cannot leak it through an error.
-- @tparam table fields
-- @tparam[opt] string secret
-- @treturn table the error
function M.new(fields, secret)
  local e = {}
  for k, v in pairs(fields) do e[k] = scrub(v, secret) end
  return setmetatable(e, Error)
end

--- Whether a value is an error made here.
function M.is_error(v)
  return getmetatable(v) == Error
end

local MONTHS = { Jan = 1, Feb = 2, Mar = 3, Apr = 4, May = 5, Jun = 6,
  Jul = 7, Aug = 8, Sep = 9, Oct = 10, Nov = 11, Dec = 12 }

-- Seconds since the epoch of a UTC civil time, by the civil-from-days
-- algorithm: no os.time(table), which reads a table as local time (and DST).
local function epoch_seconds(year, month, d, hh, mm, ss)
  if month <= 2 then year = year - 1 end
  local era = math.floor(year / 400)
  local yoe = year - era * 400
  local mp = (month + 9) % 12
  local doy = math.floor((153 * mp + 2) / 5) + d - 1
  local doe = yoe * 365 + math.floor(yoe / 4) - math.floor(yoe / 100) + doy
  local days = era * 146097 + doe - 719468
  return days * 86400 + hh * 3600 + mm * 60 + ss
end

-- A two-digit year of an RFC 850 date: the year with those last two
-- digits that is not more than 50 years in the future (RFC 9110 5.6.7).
local function full_year(yy)
  local this = tonumber(os.date("!%Y"))
  local y = this - this % 100 + yy
  if y > this + 50 then y = y - 100 end
  return y
end

-- Seconds from now until an HTTP date in any of its three forms (RFC 9110
-- 5.6.7): IMF-fixdate "Sun, 06 Nov 1994 08:49:37 GMT", the obsolete RFC 850
-- "Sunday, 06-Nov-94 08:49:37 GMT" and asctime "Sun Nov  6 08:49:37 1994".
local function seconds_until_date(s)
  local y, mon, d, hh, mm, ss
  d, mon, y, hh, mm, ss = s:match("^%a+, (%d%d?) (%a+) (%d%d%d%d) (%d%d):(%d%d):(%d%d) GMT$")
  if not d then
    d, mon, y, hh, mm, ss = s:match("^%a+, (%d%d)%-(%a+)%-(%d%d) (%d%d):(%d%d):(%d%d) GMT$")
    if y then y = full_year(tonumber(y)) end
  end
  if not d then
    mon, d, hh, mm, ss, y = s:match("^%a+ (%a+) +(%d%d?) (%d%d):(%d%d):(%d%d) (%d%d%d%d)$")
  end
  if not d or not MONTHS[mon] then return nil end
  local at = epoch_seconds(tonumber(y), MONTHS[mon], tonumber(d), tonumber(hh), tonumber(mm), tonumber(ss))
  return at - os.time() -- os.time() with no argument is the epoch time itself
end

--- Seconds the server asked us to wait, from `retry-after-ms` or
-- `Retry-After` (seconds or an HTTP date, in any of RFC 9110's three
-- forms), or nil.
function M.retry_after(ms, after)
  local n = ms and tonumber(ms)
  if n and n >= 0 then return n / 1000 end
  if after then
    n = tonumber(after) or seconds_until_date(after)
    if n then return math.max(n, 0) end
  end
  return nil
end

local function str(v)
  if type(v) == "string" then return v end
  if type(v) == "number" then return tostring(v) end
  return nil
end

-- Reads the error body shapes real servers send: Baseten's
-- {"error": "message"}, OpenAI's {"error": {"message", "type", "code"}},
-- vLLM's top-level {"message", "type", "code"} and FastAPI's {"detail"}.
local function parse_body(body)
  local ok, doc = pcall(json.decode, body)
  if not ok or type(doc) ~= "table" then return nil end
  local e = doc.error
  if type(e) == "string" then return e end
  if type(e) == "table" then
    return str(e.message), str(e.type), e.code ~= null and str(e.code) or nil
  end
  if type(doc.message) == "string" then
    return doc.message, str(doc.type), doc.code ~= null and str(doc.code) or nil
  end
  if type(doc.detail) == "string" then return doc.detail end
  if type(doc.detail) == "table" then
    local okd, text = pcall(json.encode, doc.detail)
    if okd then return text end
  end
  return nil
end

--- The error for a non-2xx response.
-- @tparam integer status
-- @tparam string body the raw response text
-- @tparam table info `request_id`, `retry_after`
-- @tparam[opt] string secret the key to scrub
function M.from_response(status, body, info, secret)
  local message, etype, code = parse_body(body or "")
  if not message then
    local snippet = (body or ""):sub(1, 200):gsub("%s+", " ")
    message = "HTTP " .. status .. (snippet ~= "" and (": " .. snippet) or "")
  end
  return M.new({
    kind = M.kind_of_status(status), status = status, message = message,
    type = etype, code = code, body = body, request_id = info.request_id,
    retry_after = info.retry_after, retryable = M.retryable_status(status),
  }, secret)
end

return M
