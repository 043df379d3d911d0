-- stream:final()'s accumulation, fed chunk tables directly: what the
-- official SDKs do, plus what real servers send that they do not expect.
local accumulate = require("baseten.accumulate")
local json = require("baseten").json

local function chunk(delta, extra)
  local c = { id = "c1", object = "chat.completion.chunk", created = 1, model = "m",
              choices = { { index = 0, delta = delta } } }
  for k, v in pairs(extra or {}) do c[k] = v end
  return c
end

local function fold(chunks)
  local acc = accumulate.new()
  for _, c in ipairs(chunks) do acc:add(c) end
  return acc:result()
end

describe("accumulate", function()
  it("concatenates content, refusal, reasoning_content and reasoning", function()
    local r = fold{
      chunk{ role = "assistant", content = "" },
      chunk{ content = "Hel", reasoning_content = "think " },
      chunk{ content = "lo", reasoning_content = "hard", reasoning = "r1" },
      chunk{ refusal = "no", reasoning = "r2" },
    }
    local m = r.choices[1].message
    assert.equal("assistant", m.role)
    assert.equal("Hello", m.content)
    -- reasoning_content: each chunk's reasoning under either name, once per chunk
    assert.equal("think hardr2", m.reasoning_content)
    assert.equal("r1r2", m.reasoning)
    assert.equal("no", m.refusal)
    assert.equal("c1", r.id)
    assert.equal("chat.completion", r.object)
    assert.equal("m", r.model)
  end)

  it("accumulates without a role chunk and leaves absent fields nil", function()
    local r = fold{ chunk{ content = "a" }, chunk{ content = "b" } }
    assert.equal("ab", r.choices[1].message.content)
    assert.equal("assistant", r.choices[1].message.role)
    assert.is_nil(r.choices[1].message.tool_calls)
    assert.is_nil(r.choices[1].message.refusal)
    assert.is_nil(r.usage)
  end)

  it("keys choices by index and keeps finish_reason", function()
    local c1 = { choices = { { index = 1, delta = { content = "B" } }, { index = 0, delta = { content = "A" } } } }
    local c2 = { choices = { { index = 1, delta = {}, finish_reason = "length" },
                             { index = 0, delta = {}, finish_reason = "stop" } } }
    local r = fold{ c1, c2 }
    assert.equal(2, #r.choices)
    assert.equal(0, r.choices[1].index)
    assert.equal("A", r.choices[1].message.content)
    assert.equal("stop", r.choices[1].finish_reason)
    assert.equal("B", r.choices[2].message.content)
    assert.equal("length", r.choices[2].finish_reason)
  end)

  it("ignores a null finish_reason after a real one", function()
    local r = fold{ chunk({ content = "x" }), { choices = { { index = 0, delta = {}, finish_reason = "stop" } } },
                    { choices = { { index = 0, delta = {}, finish_reason = json.null } } } }
    assert.equal("stop", r.choices[1].finish_reason)
  end)

  it("merges tool calls by index, appending arguments", function()
    local r = fold{
      chunk{ tool_calls = { { index = 0, id = "call_a", type = "function", ["function"] = { name = "f", arguments = "" } } } },
      chunk{ tool_calls = { { index = 1, id = "call_b", type = "function", ["function"] = { name = "g", arguments = '{"y"' } } } },
      chunk{ tool_calls = { { index = 0, ["function"] = { arguments = '{"x":' } } } },
      chunk{ tool_calls = { { index = 0, ["function"] = { arguments = "1}" } } } },
      chunk{ tool_calls = { { index = 1, ["function"] = { arguments = ":2}" } } } },
    }
    local calls = r.choices[1].message.tool_calls
    assert.equal(2, #calls)
    assert.equal("call_a", calls[1].id)
    assert.equal("f", calls[1]["function"].name)
    assert.equal('{"x":1}', calls[1]["function"].arguments)
    assert.equal("call_b", calls[2].id)
    assert.equal('{"y":2}', calls[2]["function"].arguments)
    assert.equal("function", calls[2].type)
    assert.same({ index = 0, id = "call_a", type = "function", ["function"] = { name = "f", arguments = '{"x":1}' } },
      json.decode(json.encode(calls[1])))
  end)

  it("sets a repeated id, name and type instead of appending them", function()
    local r = fold{
      chunk{ tool_calls = { { index = 0, id = "call_1", type = "function", ["function"] = { name = "get_weather", arguments = '{"ci' } } } },
      chunk{ tool_calls = { { index = 0, id = "call_1", type = "function", ["function"] = { name = "get_weather", arguments = 'ty":"Paris"}' } } } },
    }
    local call = r.choices[1].message.tool_calls[1]
    assert.equal(1, #r.choices[1].message.tool_calls)
    assert.equal("call_1", call.id)
    assert.equal("get_weather", call["function"].name)
    assert.equal("function", call.type)
    assert.equal('{"city":"Paris"}', call["function"].arguments)
  end)

  it("continues a delta without index by its id, or else the last call", function()
    local r = fold{
      chunk{ tool_calls = { { id = "a", type = "function", ["function"] = { name = "f", arguments = "{" } } } },
      chunk{ tool_calls = { { id = "b", type = "function", ["function"] = { name = "g", arguments = "[" } } } },
      chunk{ tool_calls = { { id = "a", ["function"] = { arguments = "}" } } } },
      chunk{ tool_calls = { { ["function"] = { arguments = "]" } } } },
    }
    local calls = r.choices[1].message.tool_calls
    assert.equal(2, #calls)
    assert.equal("{}", calls[1]["function"].arguments)
    assert.equal("[]", calls[2]["function"].arguments)
  end)

  it("starts a new call when a new id arrives on the same index", function()
    local r = fold{
      chunk{ tool_calls = { { index = 0, id = "a", ["function"] = { name = "f", arguments = "{}" } } } },
      chunk{ tool_calls = { { index = 0, id = "b", ["function"] = { name = "g", arguments = "{" } } } },
      chunk{ tool_calls = { { index = 0, ["function"] = { arguments = "}" } } } },
    }
    local calls = r.choices[1].message.tool_calls
    assert.equal(2, #calls)
    assert.equal("a", calls[1].id)
    assert.equal("f", calls[1]["function"].name)
    assert.equal("{}", calls[1]["function"].arguments)
    assert.equal("b", calls[2].id)
    assert.equal("g", calls[2]["function"].name)
    assert.equal("{}", calls[2]["function"].arguments)
  end)

  it("takes the last cumulative usage and never adds them up", function()
    local r = fold{
      chunk({ content = "a" }, { usage = { prompt_tokens = 5, completion_tokens = 1, total_tokens = 6 } }),
      chunk({ content = "b" }, { usage = { prompt_tokens = 5, completion_tokens = 2, total_tokens = 7 } }),
      chunk({ content = "c" }, { usage = { prompt_tokens = 5, completion_tokens = 3, total_tokens = 8 } }),
    }
    assert.equal(8, r.usage.total_tokens)
    assert.equal(3, r.usage.completion_tokens)
  end)

  it("takes usage from a last chunk with choices = [] and ignores usage = null", function()
    local r = fold{
      chunk({ content = "a" }, { usage = json.null }),
      { id = "c1", choices = json.array(), usage = { prompt_tokens = 2, completion_tokens = 1, total_tokens = 3 } },
    }
    assert.equal(3, r.usage.total_tokens)
    assert.equal("a", r.choices[1].message.content)
  end)

  it("encodes its result as JSON with arrays kept", function()
    local r = fold{ { choices = json.array() } }
    assert.equal("[]", json.encode(r.choices))
  end)
end)
