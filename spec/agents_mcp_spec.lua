-- Issue 28 with MCP: an MCP session's tools as asynchronous handlers
-- (`session:tools{async = true}`) in start_tools, driven by client:poll
-- while the server takes its time, and in a blocking run_tools.
local baseten = require("baseten")
local mcp = require("baseten.mcp")
local fixture = require("spec.support.fixture")
local core = require("baseten.core")

local json = baseten.json
local FAULT = "spec/support/mcp_fault_server.lua"

-- A chat.completion whose message calls the echo tool with `text`.
local function echo_call(text)
  return { json = { id = "c", object = "chat.completion", created = 1, model = "m",
    choices = { { index = 0, finish_reason = "tool_calls", message = { role = "assistant", tool_calls = {
      { id = "call_1", type = "function", ["function"] = { name = "echo", arguments = json.encode({ text = text }) } },
    } } } }, usage = { prompt_tokens = 1, completion_tokens = 1, total_tokens = 2 } } }
end

describe("MCP tools in start_tools", function()
  local srv, client, session

  after_each(function()
    session:close() -- before the fixture closes the client
  end)

  fixture.client({ api_key = "k", model = "deepseek-ai/DeepSeek-V3.1", max_retries = 0 },
                 function(s, c) srv, client = s, c end)

  before_each(function()
    session = assert(mcp.connect{ command = { "lua5.4", FAULT, "ok" }, client = client })
  end)

  it("a slow tool answers while poll(0) keeps returning at once", function()
    srv:enqueue(echo_call("slow")) -- the server sleeps 0.5 s on "slow"
    local done, polls, at_call, during = nil, 0, nil, nil
    client:start_tools({ messages = { { role = "user", content = "echo slowly" } },
                         tools = session:tools{ only = { "echo" }, async = true } }, {
      on_tool_call = function() at_call = polls end,
      on_tool_result = function() during = polls - at_call end,
      on_done = function(resp, transcript, err) done = { resp, transcript, err } end,
    })
    local deadline = core.now() + 20
    while not done and core.now() < deadline do
      polls = polls + 1
      client:poll(0)
      core.sleep(0.005)
    end
    assert.is_table(done)
    assert.is_nil(done[3])
    assert.equal("echo: slow", done[2][3].content)
    -- a synchronous handler would answer inside the poll that called it (0)
    assert.is_true(during >= 3, "only " .. tostring(during) .. " polls while the tool ran")
    assert.equal(2, #srv:requests())
  end)

  it("without async the handler blocks its poll (the check above can fail)", function()
    srv:enqueue(echo_call("slow"))
    local polls, at_call, during, done = 0, nil, nil, nil
    client:start_tools({ messages = { { role = "user", content = "echo slowly" } },
                         tools = session:tools{ only = { "echo" } } }, {
      on_tool_call = function() at_call = polls end,
      on_tool_result = function() during = polls - at_call end,
      on_done = function() done = true end,
    })
    local deadline = core.now() + 20
    while not done and core.now() < deadline do
      polls = polls + 1
      client:poll(0)
    end
    assert.equal(0, during)
  end)

  it("the same tools in a blocking run_tools", function()
    srv:enqueue(echo_call("hi"))
    local resp, transcript = client:run_tools{ messages = { { role = "user", content = "echo" } },
                                               tools = session:tools{ only = { "echo" }, async = true } }
    assert.is_table(resp, tostring(transcript))
    assert.equal("echo: hi", transcript[3].content)
  end)

  it("async must be a boolean", function()
    assert.has_error(function() session:tools{ async = "yes" } end, "mcp: tools: async must be a boolean")
  end)
end)
