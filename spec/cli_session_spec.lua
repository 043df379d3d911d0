-- bin/baseten --session, --stats (cached tokens) and --prices (issue 28),
-- run as a child process against the bundled local server.
local fixture = require("spec.support.fixture")
local baseten = require("baseten")
local util = require("spec.support.util")

local json = baseten.json
local MODEL = "deepseek-ai/DeepSeek-V3.1"

local function cli(args)
  local parts = {}
  for i, a in ipairs(args) do parts[i] = util.quote(a) end
  return util.run(util.interpreter() .. " bin/baseten " .. table.concat(parts, " "),
    { env = "-u BASETEN_API_KEY -u BASETEN_MODEL -u BASETEN_BASE_URL BASETEN_API_KEY=k" })
end

-- A stream whose usage reports cached prompt tokens.
local function cached_stream()
  local function chunk(t) return "data: " .. json.encode(t) .. "\n\n" end
  return { chunks = {
    chunk({ id = "c", object = "chat.completion.chunk", model = MODEL,
            choices = { { index = 0, delta = { content = "hi" }, finish_reason = json.null } } }),
    chunk({ id = "c", object = "chat.completion.chunk", model = MODEL, choices = json.array(),
            usage = { prompt_tokens = 1000, completion_tokens = 100, total_tokens = 1100,
                      prompt_tokens_details = { cached_tokens = 400 } } }),
    "data: [DONE]\n\n" } }
end

describe("bin/baseten chat", function()
  local srv
  fixture.server(function(s) srv = s end)

  it("--session sends x-session-affinity; --stats shows cached tokens and, with --prices, the cost", function()
    local prices = util.write_file(json.encode({ [MODEL] = { prompt = 2, completion = 10, cached = 1 } }))
    srv:enqueue(cached_stream())
    local code, out, err = cli({ "chat", "-m", MODEL, "--base-url", srv.url, "--session", "conv-7", "--stats",
                                 "--prices", prices, "Hi" })
    os.remove(prices)
    assert.equal(0, code, err)
    assert.equal("hi\n", out)
    assert.equal("conv-7", srv:last_request().header_map["x-session-affinity"])
    assert.matches("cached 400 prompt tokens", err)
    assert.matches("cost %$0%.002600", err) -- (600 * 2 + 400 * 1 + 100 * 10) / 1e6
  end)

  it("--stats without --prices shows no cost; a bad prices file is a usage error", function()
    local code, _, err = cli({ "chat", "-m", MODEL, "--base-url", srv.url, "--stats", "Hi" })
    assert.equal(0, code, err)
    assert.matches("cached 0 prompt tokens", err)
    assert.is_nil(err:find("cost", 1, true))
    local bad = util.write_file("[1, 2]")
    code, _, err = cli({ "chat", "-m", MODEL, "--base-url", srv.url, "--prices", bad, "Hi" })
    os.remove(bad)
    assert.equal(2, code, err)
    assert.matches("is not a JSON object of model", err)
  end)
end)
