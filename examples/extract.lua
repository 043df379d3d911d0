-- Structured extraction: a name and an email address out of free text,
-- with a JSON Schema, via client:json.
--   lua examples/extract.lua     (from the repo root, after `make build`)
-- With BASETEN_API_KEY set it asks Baseten's Model APIs; without it, the
-- bundled local OpenAI-compatible server (spec/support/server.py).
local baseten = require("baseten")

local MODEL = os.getenv("BASETEN_MODEL") or "deepseek-ai/DeepSeek-V3.1"
local server, client
if os.getenv("BASETEN_API_KEY") then
  client = baseten.new{ model = MODEL }
else
  server = require("spec.support.server").start()
  client = baseten.new{ base_url = server.url, api_key = false, model = MODEL }
end

local contact_schema = {
  type = "object",
  properties = {
    name = { type = "string", description = "The person's full name" },
    email = { type = "string", description = "Their email address" },
  },
  required = { "name", "email" },
  additionalProperties = false,
}

local text = "Hi! I'm Ada Lovelace and you can write to me at ada@example.com any time."

-- The schema becomes response_format = {type = "json_schema", json_schema =
-- {name = "contact", schema = ..., strict = true}}; the answer is decoded and
-- checked against the schema on the client too.
local contact, resp = client:json{
  messages = {
    { role = "system", content = "Extract the contact details from the user's message." },
    { role = "user", content = text },
  },
  schema = contact_schema,
  schema_name = "contact",
}

client:close()
if server then server:stop() end
if not contact then
  -- resp is the error: kind "refusal", "invalid_json", "schema_mismatch", ...
  io.stderr:write(tostring(resp), "\n")
  os.exit(1)
end
print("name:  " .. contact.name)
print("email: " .. contact.email)
print("as JSON: " .. baseten.json.encode(contact))
