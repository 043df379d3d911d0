--- Structured outputs: `client:json(req)`.
--
--     local value, resp = client:json{
--       messages = {{role = "user", content = "Ada Lovelace, ada@example.com"}},
--       schema = { type = "object", additionalProperties = false,
--                  required = {"name", "email"},
--                  properties = { name = {type = "string"}, email = {type = "string"} } },
--       schema_name = "contact",   -- optional, default "response"
--     }
--     if not value then print(resp.kind, resp.message) end   -- resp is err here
--
-- `M.json(client, req, opts)` is the client's `json` method (baseten.client
-- puts it in the method table).
-- @module baseten.structured
local core = require("baseten.core")
local errors = require("baseten.errors")
local options = require("baseten.options")
local runtime = require("baseten.runtime")
local schema_mod = require("baseten.schema")
local request = require("baseten.request")
local partial = require("baseten.partial")

local json = core.json

local M = {}

local judge -- M.judge, with a value already parsed (below)

--- The `json_schema.name` sent when `req.schema_name` is not given.
M.DEFAULT_SCHEMA_NAME = "response"

-- client:json's options besides the call options.
local JSON_OPTS = { on_partial = "func" }

-- Client-side keys of a json request, never sent to the server.
local STRIP = { schema = true, schema_name = true }

--- The `response_format` that `client:json` sends for a request (and the
-- schema it validates against), without sending anything.
-- @tparam table req the request as given to `client:json`
-- @treturn table|nil the response_format to set, or nil when the request
--   carries its own (kept as it is)
-- @treturn table|boolean|nil the schema to validate the content against
function M.response_format(req)
  local schema = req.schema
  if req.response_format ~= nil then
    local rf = req.response_format
    if schema == nil and type(rf) == "table" and rf.type == "json_schema" and type(rf.json_schema) == "table" then
      schema = rf.json_schema.schema
    end
    return nil, schema
  end
  if schema == nil then return { type = "json_object" }, nil end
  return {
    type = "json_schema",
    json_schema = { name = req.schema_name or M.DEFAULT_SCHEMA_NAME, schema = schema, strict = true },
  }, schema
end

-- The text of a message's content: a string, or a list of text parts.
local function content_text(content)
  if type(content) == "string" then return content end
  if type(content) == "table" then
    local parts = {}
    for _, p in ipairs(content) do
      if type(p) == "string" then
        parts[#parts + 1] = p
      elseif type(p) == "table" and type(p.text) == "string" then
        parts[#parts + 1] = p.text
      end
    end
    if #parts > 0 then return table.concat(parts) end
  end
  return nil
end

-- Surrounding whitespace and one Markdown code fence (```json ... ```),
-- which some models wrap JSON in even in JSON mode.
local function trim(text)
  local i = text:find("%S")
  if not i then return "" end
  local j = #text
  while j > i do -- a plain scan back: linear in any run of whitespace
    local b = text:byte(j)
    if b ~= 32 and (b < 9 or b > 13) then break end
    j = j - 1
  end
  return text:sub(i, j)
end

local function unfence(text)
  local s = trim(text)
  local inner = s:match("^```[%w_-]*[ \t]*\r?\n(.-)\r?\n?```$")
  return inner or s
end

--- Sends a chat completion that must answer with JSON, and decodes it.
--
-- `req.schema` (a JSON Schema table) and `req.schema_name` become
-- `response_format = {type = "json_schema", json_schema = {name, schema,
-- strict = true}}` (name default "response"); without a schema, JSON mode
-- (`{type = "json_object"}`). Neither key is sent as such. A
-- `response_format` given in `req` is sent as it is (and, when it is a
-- json_schema one and `req.schema` is absent, its schema is used to validate).
-- `req.stream = true` streams the answer, accumulates it, then decodes it.
--
-- The content is decoded after trimming whitespace and one surrounding
-- Markdown code fence; then validated against the schema on the client (see
-- `baseten.schema`). The value is validated as decoded, nulls included (so
-- a `required` member whose type allows null may be `null`), and returned
-- without null members in its objects (a `null` member is an absent key; a
-- `null` in an array stays `json.null`). A JSON `null` answer is returned as
-- `json.null`.
--
-- Errors, besides those of `chat`: `refusal` (the model refused;
-- `err.message` and `err.refusal` are its text), `invalid_json` (the
-- content is not JSON, or there is none; `err.content`), `schema_mismatch`
-- (`err.message` is "`<path>: <what>`", e.g. `$.items[2].email: expected
-- string, got number`; `err.path` the path, `err.value` the decoded value,
-- its nulls kept as `json.null` so that the path it names is there),
-- `invalid_response` (no message in the response). Each carries
-- `err.response`, the response it judged.
-- @tparam table req the request, as OpenAI's Chat Completions JSON, plus
--   `schema` and `schema_name`
-- @tparam[opt] table opts `timeout`, `max_retries`, `headers` for this call,
--   and `on_partial(snapshot, path)`: streams the reply and calls it after
--   each content delta with the value parsed so far, one live table updated
--   in place (see baseten.partial; snapshots are not validated)
-- @return the decoded value, or nil
-- @treturn table the response (`resp.usage`, ...), or the error
function M.json(self, req, opts)
  if type(req) ~= "table" then error("baseten: json expects a request table", 2) end
  options.check(options.JSON, req, "baseten: json", 2, "req.")
  local on_partial = type(opts) == "table" and opts.on_partial or nil
  if on_partial ~= nil then options.check(JSON_OPTS, opts, "baseten: json", 2) end
  local rf, schema = M.response_format(req)
  local stream = (req.stream or on_partial) and true or false
  local over = { response_format = rf }
  if stream then over.stream = true end
  local body = request.chat_body(self, req, over, STRIP, "json", 2)
  local copts = options.call(self, opts, "json", 2)
  local resp, err = request.new(self, "POST", "/chat/completions", body, stream, copts):run()
  local parsed, fed
  if resp and on_partial then
    resp, err, parsed, fed = partial.drain(resp, on_partial)
  elseif resp and stream then
    local st = resp
    resp, err = st:final()
    st:close()
  end
  if not resp then return nil, err end
  return judge(self, resp, schema, parsed, fed)
end

local function fail(client, fields)
  return nil, errors.new(fields, client and runtime.of(client):secret() or nil)
end

--- Judges a chat completion that should carry JSON (internal to
-- `client:json`, public for callers that made the request otherwise, e.g.
-- with `client:start`).
-- @tparam[opt] Client client the client, for scrubbing its key from errors
-- @tparam table resp a chat.completion table
-- @tparam[opt] table|boolean schema the JSON Schema to validate against
-- @return the decoded value, or nil
-- @treturn table `resp`, or the error
function M.judge(client, resp, schema)
  return judge(client, resp, schema)
end

-- M.judge; `parsed` is the value the stream's watcher parsed from `fed`
-- bytes of content (partial.drain), or nil. When those bytes are the
-- whole content and hold no null, it is what both decodes below give, so
-- they are skipped: the value is validated and returned the same.
judge = function(client, resp, schema, parsed, fed)
  local choice = type(resp.choices) == "table" and resp.choices[1] or nil
  local msg = type(choice) == "table" and choice.message or nil
  if type(msg) ~= "table" then
    return fail(client, { kind = "invalid_response", response = resp, message = "the response has no message" })
  end
  local refusal = msg.refusal
  if type(refusal) == "string" and refusal ~= "" then
    return fail(client, { kind = "refusal", response = resp, refusal = refusal, message = refusal })
  end
  local finish = choice.finish_reason
  local cut = finish == "length" and " (finish_reason is \"length\": the answer was cut off)" or ""
  local text = content_text(msg.content)
  if text == nil or text:match("^%s*$") then
    return fail(client, { kind = "invalid_json", response = resp, content = text,
                          message = "the response has no content" .. cut })
  end
  local body = unfence(text)
  local value, why
  local same = parsed ~= nil and fed == #text and not body:find("null", 1, true)
  if same then value = parsed else value, why = json.decode(body) end
  if value == nil then
    return fail(client, { kind = "invalid_json", response = resp, content = text,
                          message = "the content is not JSON (" .. tostring(why) .. ")" .. cut
                            .. ": " .. text:sub(1, 120) })
  end
  if schema ~= nil then
    local ok, path, what, report = schema_mod.validate(value, schema)
    for _, skip in ipairs(client and report.skipped or {}) do -- checks not made: say so
      request.emit(client, { event = "schema_skipped", path = skip.path, pattern = skip.pattern,
                             reason = skip.reason })
    end
    if not ok then
      return fail(client, { kind = "schema_mismatch", response = resp, content = text, value = value,
                            path = path, message = path .. ": " .. what .. cut })
    end
  end
  -- validated with its nulls (so `required` with a nullable type holds),
  -- returned without null members, as every other value the client returns
  if not same and type(value) == "table" and body:find("null", 1, true) then
    value = json.decode(body, request.DECODE_OPTS)
  end
  return value, resp
end

return M
