-- Issue 12, part 1: what the client returns holds no null member in an
-- object (a JSON null member is an absent key, as None/null in the OpenAI
-- SDKs), while a null inside an array stays json.null; the low-level
-- json.decode keeps nulls unless asked. The mock model "test/nulls" sends
-- every nullable field as null (spec/support/server.py, null_heavy).
local baseten = require("baseten")
local server = require("spec.support.server")
local fixture = require("spec.support.fixture")

local json = baseten.json
local null = json.null

local function msgs(text)
  return { { role = "user", content = text or "Hello" } }
end

-- Whether a decoded value holds a null member in any object (arrays may hold nulls).
local function null_member(v, path)
  path = path or "$"
  if type(v) ~= "table" then return nil end
  local arr = json.is_array(v)
  for k, x in pairs(v) do
    local p = path .. "." .. tostring(k)
    if x == null and not arr then return p end
    local deeper = null_member(x, p)
    if deeper then return deeper end
  end
  return nil
end

local function no_null_member(v)
  local where = null_member(v)
  assert(where == nil, "a null member at " .. tostring(where))
end

local WEATHER = baseten.tool{
  name = "get_weather", description = "Weather",
  parameters = { type = "object", properties = { city = { type = "string" } }, required = { "city" } },
  handler = function(args) return { city = args.city, temp_c = 21 } end,
}

describe("null members", function()
  local srv, client
  fixture.client({ api_key = false, model = "test/nulls", max_retries = 0 }, function(s, c) srv, client = s, c end)

  it("json.decode keeps every null by default and drops members on request", function()
    local v = json.decode('{"a":null,"b":[null,{"c":null}]}')
    assert.equal(null, v.a)
    assert.equal(null, v.b[1])
    assert.equal(null, v.b[2].c)
    local lean = json.decode('{"a":null,"b":[null,{"c":null}]}', { drop_nulls = true })
    assert.is_nil(lean.a)
    assert.equal(null, lean.b[1])
    assert.is_nil(lean.b[2].c)
    assert.equal(2, #lean.b)
  end)

  it("a chat response: null members are absent keys, nulls in arrays stay", function()
    srv:enqueue({ json = { id = "c1", object = "chat.completion", created = 1, model = "m",
      choices = { { index = 0, logprobs = server.null, finish_reason = "stop",
        message = { role = "assistant", content = "hi", refusal = server.null, tool_calls = server.null,
                    audio = server.null } } },
      usage = { prompt_tokens = 1, completion_tokens = 1, total_tokens = 2, details = server.null },
      extra = { server.null, { a = server.null, b = 1 } } } })
    local resp = assert(client:chat{ messages = msgs() })
    local msg = resp.choices[1].message
    assert.equal("hi", msg.content)
    assert.is_nil(msg.refusal)
    assert.is_nil(msg.tool_calls)
    assert.is_nil(msg.audio)
    assert.is_nil(resp.choices[1].logprobs)
    assert.is_nil(resp.usage.details)
    assert.equal(null, resp.extra[1])  -- positions hold
    assert.is_nil(resp.extra[2].a)
    assert.equal(1, resp.extra[2].b)
  end)

  it("a tool-call response from the null-heavy mock: content is nil, so `if msg.content` works", function()
    local resp = assert(client:chat{ messages = msgs("Weather in Paris?"), tools = { WEATHER } })
    local msg = resp.choices[1].message
    assert.is_nil(msg.content)
    assert.is_nil(msg.refusal)
    assert.equal("get_weather", msg.tool_calls[1]["function"].name)
    no_null_member(resp)
  end)

  it("the README's chunk loop runs on a stream where every nullable field is null", function()
    local out, finishes, seen_usage = {}, 0, 0
    local s = assert(client:stream{ messages = msgs("one two"), stream_options = { include_usage = true } })
    for chunk in s do
      no_null_member(chunk)
      local c = chunk.choices[1]
      local delta = c and c.delta
      if delta and delta.content then out[#out + 1] = delta.content end -- io.write in the README
      if c and c.finish_reason then finishes = finishes + 1 end
      if chunk.usage then seen_usage = seen_usage + 1 end
    end
    assert.equal("Hello from the local test server. You said: one two", table.concat(out))
    assert.equal(1, finishes)
    assert.equal(1, seen_usage)
  end)

  it("a tool-call stream: text() gives no piece, final() holds no null", function()
    local s = assert(client:stream{ messages = msgs("Weather in Paris?"), tools = { WEATHER } })
    local pieces = {}
    for piece in s:text() do pieces[#pieces + 1] = piece end
    assert.same({}, pieces)
    local s2 = assert(client:stream{ messages = msgs("Weather in Paris?"), tools = { WEATHER } })
    local final = assert(s2:final())
    no_null_member(final)
    assert.is_nil(final.choices[1].message.content)
    assert.equal("tool_calls", final.choices[1].finish_reason)
    assert.equal('{"city":"Paris"}', final.choices[1].message.tool_calls[1]["function"].arguments)
  end)

  it("a last event without its blank line is decoded without null members too", function()
    srv:enqueue({ chunks = {
      'data: {"id":"c","choices":[{"index":0,"delta":{"content":"a","refusal":null},"finish_reason":null}]}\n\n',
      'data: {"id":"c","choices":[{"index":0,"delta":{"content":null},"finish_reason":"stop"}],"usage":null}',
    } })
    local s = assert(client:stream{ messages = msgs() })
    local chunks = {}
    for chunk in s do chunks[#chunks + 1] = chunk end
    assert.equal(2, #chunks)
    no_null_member(chunks[1])
    no_null_member(chunks[2])
    assert.is_nil(chunks[2].choices[1].delta.content)
    assert.equal("a", s:snapshot().choices[1].message.content)
  end)

  it("non-blocking: on_chunk and on_done see no null member", function()
    local got, done = {}, nil
    client:start({ messages = msgs("x y"), stream = true }, {
      on_chunk = function(chunk) got[#got + 1] = chunk end,
      on_done = function(resp, err) done = resp or err end,
    })
    client:start({ messages = msgs("Weather in Paris?"), tools = { WEATHER } }, {
      on_done = function(resp, err)
        assert.is_nil(err)
        no_null_member(resp)
        assert.is_nil(resp.choices[1].message.content)
      end,
    })
    client:drain(10)
    assert.is_true(#got > 2)
    for _, chunk in ipairs(got) do no_null_member(chunk) end
    no_null_member(done)
    assert.equal("Hello from the local test server. You said: x y", done.choices[1].message.content)
  end)

  for _, stream in ipairs({ false, true }) do
    it("run_tools (stream = " .. tostring(stream) .. "): the transcript holds no null member", function()
      local contents = {}
      local resp, messages = client:run_tools{
        messages = msgs("Weather in Paris?"), tools = { WEATHER }, stream = stream or nil,
        on_content = stream and function(piece) contents[#contents + 1] = piece end or nil,
      }
      assert.truthy(resp, messages)
      no_null_member(resp)
      for i = 2, #messages do no_null_member(messages[i]) end
      assert.equal("assistant", messages[2].role)
      assert.is_nil(messages[2].content) -- `if msg.content then` works
      assert.truthy(resp.choices[1].message.content:find("Here is what the tools returned", 1, true))
      if stream then assert.equal(resp.choices[1].message.content, table.concat(contents)) end
    end)
  end

  it("tool-handler arguments have no null member; a null in an array stays", function()
    local seen
    local tool = baseten.tool{ name = "f", parameters = { type = "object" },
                               handler = function(args) seen = args return "ok" end }
    local call = { id = "call_1", type = "function",
                   ["function"] = { name = "f", arguments = '{"a":1,"b":null,"c":[null,{"d":null}]}' } }
    srv:enqueue(
      { json = { id = "c1", object = "chat.completion", created = 1, model = "m", choices = {
        { index = 0, finish_reason = "tool_calls", message = { role = "assistant", content = server.null,
                                                               tool_calls = { call } } } } } },
      { json = { id = "c2", object = "chat.completion", created = 1, model = "m", choices = {
        { index = 0, finish_reason = "stop", message = { role = "assistant", content = "done" } } } } })
    local resp = assert(client:run_tools{ messages = msgs(), tools = { tool } })
    assert.equal("done", resp.choices[1].message.content)
    assert.equal(1, seen.a)
    assert.is_nil(seen.b)
    assert.equal(null, seen.c[1])
    assert.is_nil(seen.c[2].d)
  end)

  describe("client:json", function()
    local schema = {
      type = "object",
      properties = { name = { type = "string" }, nick = { type = { "string", "null" } },
                     tags = { type = "array", items = { type = { "string", "null" } } } },
      required = { "name", "nick", "tags" },
      additionalProperties = false,
    }
    local function reply(content)
      return { json = { id = "c1", object = "chat.completion", created = 1, model = "m", choices = {
        { index = 0, finish_reason = "stop", logprobs = server.null,
          message = { role = "assistant", content = content, refusal = server.null } } } } }
    end

    it("validates with the nulls (required and nullable), then drops null members", function()
      srv:enqueue(reply('{"name":"Ada","nick":null,"tags":["a",null]}'))
      local v, resp = client:json{ messages = msgs(), schema = schema }
      assert.truthy(v, resp)
      assert.equal("Ada", v.name)
      assert.is_nil(v.nick)
      assert.equal(null, v.tags[2])
      assert.equal(2, #v.tags)
      assert.is_nil(resp.choices[1].message.refusal)
      assert.is_nil(resp.choices[1].logprobs)
    end)

    it("a required member that is absent is still a mismatch", function()
      srv:enqueue(reply('{"name":"Ada","tags":[]}'))
      local v, err = client:json{ messages = msgs(), schema = schema }
      assert.is_nil(v)
      assert.equal("schema_mismatch", err.kind)
    end)

    it("err.value of a mismatch keeps its nulls, so the path it names is there", function()
      srv:enqueue(reply('{"name":null,"nick":null,"tags":[]}'))
      local v, err = client:json{ messages = msgs(), schema = schema }
      assert.is_nil(v)
      assert.equal("$.name", err.path)
      assert.equal(null, err.value.name)
    end)

    it("streamed: the same rules", function()
      srv:enqueue({ chunks = {
        'data: {"id":"c","choices":[{"index":0,"delta":{"content":"{\\"name\\":\\"Ada\\",","refusal":null},"finish_reason":null}]}\n\n',
        'data: {"id":"c","choices":[{"index":0,"delta":{"content":"\\"nick\\":null,\\"tags\\":[null]}"},"finish_reason":"stop"}]}\n\n',
        "data: [DONE]\n\n" } })
      local v, resp = client:json{ messages = msgs(), schema = schema, stream = true }
      assert.truthy(v, resp)
      assert.is_nil(v.nick)
      assert.equal(null, v.tags[1])
      no_null_member(resp)
    end)
  end)

  it("models() works on a list whose entries carry null members", function()
    srv:enqueue({ json = { object = "list", data = {
      { id = "a", object = "model", owned_by = server.null }, { id = "b", created = server.null } } } })
    assert.same({ "a", "b" }, assert(client:models()))
  end)
end)
