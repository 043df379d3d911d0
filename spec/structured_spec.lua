-- client:json: structured outputs, against the local test server.
local baseten = require("baseten")
local fixture = require("spec.support.fixture")

local json = baseten.json
local null = json.null

local msgs = fixture.msgs

-- A whole chat.completion body with one message.
local function completion(message, finish)
  message.role = message.role or "assistant"
  return json.encode({
    id = "chatcmpl-x", object = "chat.completion", created = 1, model = "openai/gpt-oss-120b",
    choices = { { index = 0, message = message, finish_reason = finish or "stop", logprobs = null } },
    usage = { prompt_tokens = 3, completion_tokens = 4, total_tokens = 7 },
  })
end

local function reply(message, finish)
  return { body = completion(message, finish), headers = { ["Content-Type"] = "application/json" } }
end

-- An SSE body (as one string) carrying content deltas.
local function sse_content(pieces, finish)
  return table.concat(fixture.sse_events(pieces, finish))
end

local CONTACT = {
  type = "object",
  properties = { name = { type = "string" }, email = { type = "string" } },
  required = { "name", "email" },
  additionalProperties = false,
}

describe("client:json", function()
  local srv, client
  fixture.client({ api_key = "k", model = "openai/gpt-oss-120b", max_retries = 0 },
                 function(s, c) srv, client = s, c end)

  describe("request", function()
    it("schema mode: response_format json_schema, strict, no schema/schema_name keys", function()
      local value, resp = client:json{ messages = msgs("Ada Lovelace, ada@example.com"),
                                       schema = CONTACT, schema_name = "contact" }
      assert.same({ name = "Ada Lovelace", email = "ada@example.com" }, value)
      assert.equal("chat.completion", resp.object)
      local req = srv:requests()[1]
      local sent = json.decode(req.body)
      assert.is_nil(sent.schema)
      assert.is_nil(sent.schema_name)
      assert.is_nil(req.body:find('"schema_name"', 1, true))
      assert.equal("json_schema", sent.response_format.type)
      assert.equal("contact", sent.response_format.json_schema.name)
      assert.is_true(sent.response_format.json_schema.strict)
      assert.same({ "name", "email" }, sent.response_format.json_schema.schema.required)
      assert.is_false(sent.response_format.json_schema.schema.additionalProperties)
      assert.truthy(req.body:find('"strict":true', 1, true))
      assert.is_nil(sent.stream)
    end)

    it("schema mode names the schema \"response\" by default", function()
      assert(client:json{ messages = msgs("Ada Lovelace ada@example.com"), schema = CONTACT })
      local sent = json.decode(srv:requests()[1].body)
      assert.equal("response", sent.response_format.json_schema.name)
    end)

    it("JSON mode without a schema: response_format json_object, exact bytes", function()
      local value, resp = client:json{ messages = msgs("hello") }
      assert.same({ answer = "hello" }, value)
      assert.is_table(resp.usage)
      local req = srv:requests()[1]
      assert.truthy(req.body:find('"response_format":{"type":"json_object"}', 1, true))
      local sent = json.decode(req.body)
      assert.is_nil(sent.schema)
    end)

    it("keeps a response_format given by the caller, and validates with its schema", function()
      local rf = { type = "json_schema", json_schema = { name = "mine", strict = false,
        schema = { type = "object", properties = { n = { type = "integer" } }, required = { "n" } } } }
      srv:enqueue(reply({ content = '{"n": "one"}' }))
      local value, err = client:json{ messages = msgs("x"), response_format = rf }
      assert.is_nil(value)
      assert.equal("schema_mismatch", err.kind)
      assert.equal("$.n", err.path)
      local sent = json.decode(srv:requests()[1].body)
      assert.same(json.decode(json.encode(rf)), sent.response_format)
      assert.is_false(sent.response_format.json_schema.strict)
    end)

    it("passes other keys through", function()
      assert(client:json{ messages = msgs("x"), temperature = 0, max_tokens = 50, seed = 1 })
      local sent = json.decode(srv:requests()[1].body)
      assert.equal(0, sent.temperature)
      assert.equal(50, sent.max_tokens)
      assert.equal("openai/gpt-oss-120b", sent.model)
    end)

    it("raises on misuse", function()
      assert.has_error(function() client:json("x") end)
      assert.has_error(function() client:json{ messages = msgs("x"), schema = "object" } end)
      assert.has_error(function() client:json{ messages = msgs("x"), schema_name = 1 } end)
      assert.has_error(function() client:json{ messages = {} } end)
      assert.equal(0, #srv:requests())
    end)
  end)

  describe("answers", function()
    it("decodes nested values with integers, floats, null and empty containers", function()
      local s = { type = "object", properties = {
        n = { type = "integer" }, x = { type = "number" }, z = { type = { "string", "null" } },
        list = { type = "array", items = { type = "string" } }, obj = { type = "object" } },
        required = { "n", "x", "z", "list", "obj" }, additionalProperties = false }
      srv:enqueue(reply({ content = '{"n": 3.0, "x": 2.5, "z": null, "list": [], "obj": {}}' }))
      local v, resp = client:json{ messages = msgs("x"), schema = s }
      assert.is_table(v, tostring(resp))
      assert.equal(3, v.n)
      assert.is_nil(v.z) -- a null member is an absent key (issue 12), after validation (z is required)
      assert.is_true(json.is_array(v.list))
      assert.equal("[]", json.encode(v.list))
      assert.equal("{}", json.encode(v.obj))
    end)

    it("a refusal is kind refusal with the refusal text", function()
      srv:enqueue(reply({ content = null, refusal = "I can't help with that." }))
      local v, err = client:json{ messages = msgs("x"), schema = CONTACT }
      assert.is_nil(v)
      assert.equal("refusal", err.kind)
      assert.equal("I can't help with that.", err.message)
      assert.equal("I can't help with that.", err.refusal)
      assert.equal("chatcmpl-x", err.response.id)
      assert.truthy(tostring(err):find("refusal", 1, true))
    end)

    it("content that is not JSON is invalid_json", function()
      srv:enqueue(reply({ content = "Sure! Here is the contact: Ada" }))
      local v, err = client:json{ messages = msgs("x"), schema = CONTACT }
      assert.is_nil(v)
      assert.equal("invalid_json", err.kind)
      assert.equal("Sure! Here is the contact: Ada", err.content)
      assert.is_table(err.response)
    end)

    it("no content at all is invalid_json", function()
      srv:enqueue(reply({ content = null }))
      local v, err = client:json{ messages = msgs("x") }
      assert.is_nil(v)
      assert.equal("invalid_json", err.kind)
    end)

    it("JSON cut off by max_tokens is invalid_json and says so", function()
      srv:enqueue(reply({ content = '{"name": "Ada", "em' }, "length"))
      local v, err = client:json{ messages = msgs("x"), schema = CONTACT }
      assert.is_nil(v)
      assert.equal("invalid_json", err.kind)
      assert.truthy(err.message:find("length", 1, true))
    end)

    it("accepts JSON wrapped in one Markdown code fence", function()
      srv:enqueue(reply({ content = '```json\n{"name": "Ada", "email": "a@b.c"}\n```\n' }))
      local v = assert(client:json{ messages = msgs("x"), schema = CONTACT })
      assert.equal("Ada", v.name)
    end)

    it("a JSON null answer is json.null, not a failure", function()
      srv:enqueue(reply({ content = "null" }))
      local v, resp = client:json{ messages = msgs("x") }
      assert.equal(null, v)
      assert.is_table(resp.choices)
    end)

    it("a value that violates the schema is schema_mismatch with the path", function()
      local s = { type = "object", required = { "items" }, properties = {
        items = { type = "array", items = { type = "object", required = { "email" },
          properties = { email = { type = "string" } } } } } }
      srv:enqueue(reply({ content = '{"items": [{"email": "a@x"}, {"email": "b@x"}, {"email": 3}]}' }))
      local v, err = client:json{ messages = msgs("x"), schema = s }
      assert.is_nil(v)
      assert.equal("schema_mismatch", err.kind)
      assert.equal("$.items[2].email: expected string, got number", err.message)
      assert.equal("$.items[2].email", err.path)
      assert.equal(3, err.value.items[3].email)
      assert.is_table(err.response)
    end)

    it("checks additionalProperties = false and required on the client", function()
      srv:enqueue(reply({ content = '{"name": "Ada", "email": "a@b", "phone": "1"}' }),
                  reply({ content = '{"name": "Ada"}' }))
      local _, err = client:json{ messages = msgs("x"), schema = CONTACT }
      assert.equal("schema_mismatch", err.kind)
      assert.equal("$.phone", err.path)
      _, err = client:json{ messages = msgs("x"), schema = CONTACT }
      assert.equal("$.email: missing required property", err.message)
    end)

    it("validates $ref to $defs", function()
      local s = { type = "object", properties = { who = { ["$ref"] = "#/$defs/person" } }, required = { "who" },
                  ["$defs"] = { person = { type = "object", properties = { age = { type = "integer", minimum = 0 } },
                                           required = { "age" } } } }
      srv:enqueue(reply({ content = '{"who": {"age": -1}}' }))
      local _, err = client:json{ messages = msgs("x"), schema = s }
      assert.equal("$.who.age: must be at least 0, got -1", err.message)
    end)

    it("an HTTP error comes through as it is", function()
      srv:enqueue({ status = 400, json = { error = "bad schema" } })
      local v, err = client:json{ messages = msgs("x"), schema = CONTACT }
      assert.is_nil(v)
      assert.equal("bad_request", err.kind)
      assert.equal(400, err.status)
    end)

    it("a response without a message is invalid_response", function()
      srv:enqueue({ json = { id = "x", object = "chat.completion", choices = {} } })
      local _, err = client:json{ messages = msgs("x") }
      assert.equal("invalid_response", err.kind)
      assert.is_table(err.response)
    end)
  end)

  describe("streaming", function()
    it("stream = true streams, accumulates, then decodes and validates", function()
      local value, resp = client:json{ messages = msgs("Ada Lovelace, ada@example.com"),
                                       schema = CONTACT, stream = true }
      assert.same({ name = "Ada Lovelace", email = "ada@example.com" }, value)
      assert.equal("stop", resp.choices[1].finish_reason)
      local sent = json.decode(srv:requests()[1].body)
      assert.is_true(sent.stream)
      assert.equal("json_schema", sent.response_format.type)
      assert.is_nil(sent.schema)
    end)

    for _, split in ipairs({ "byte", "random" }) do
      it("JSON split across deltas and bytes (split = " .. split .. ")", function()
        srv:enqueue({ split = split, chunks = { sse_content({
          { content = '{"na' }, { content = 'me": "Zoë", "em' }, { content = 'ail": "z@' },
          { content = 'x.org"}' } }) } })
        local v, resp = client:json{ messages = msgs("x"), schema = CONTACT, stream = true }
        assert.is_table(v, tostring(resp))
        assert.same({ name = "Zoë", email = "z@x.org" }, v)
      end)
    end

    it("a streamed refusal and a streamed violation", function()
      srv:enqueue({ chunks = { sse_content({ { refusal = "No " }, { refusal = "way." } }) } },
                  { chunks = { sse_content({ { content = '{"name": 1, "email": "e"}' } }) } })
      local _, err = client:json{ messages = msgs("x"), schema = CONTACT, stream = true }
      assert.equal("refusal", err.kind)
      assert.equal("No way.", err.message)
      _, err = client:json{ messages = msgs("x"), schema = CONTACT, stream = true }
      assert.equal("schema_mismatch", err.kind)
      assert.equal("$.name: expected string, got number", err.message)
    end)

    it("a stream cut off is an error, not a partial value", function()
      local body = sse_content({ { content = '{"name": "Ada", ' }, { content = '"email": "a@b"}' } })
      srv:enqueue({ chunks = { body:sub(1, #body - 60) }, truncate = true })
      local v, err = client:json{ messages = msgs("x"), schema = CONTACT, stream = true }
      assert.is_nil(v)
      assert.equal("connection", err.kind)
    end)
  end)
end)
