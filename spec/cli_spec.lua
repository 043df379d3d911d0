-- bin/baseten, the command-line tool, run as a child process (with the
-- interpreter that runs this suite) against the bundled local server.
local server = require("spec.support.server")
local baseten = require("baseten")

local MODEL = "deepseek-ai/DeepSeek-V3.1"

local function interpreter()
  local forced = os.getenv("BASETEN_TEST_LUA")
  if forced and forced ~= "" then return forced end
  if rawget(_G, "jit") then return "luajit" end
  return "lua" .. _VERSION:match("%d+%.%d+")
end

local function quote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

local function write_file(text)
  local path = os.tmpname()
  local f = assert(io.open(path, "wb"))
  f:write(text)
  f:close()
  return path
end

-- Runs bin/baseten with the arguments; `env` is a string of VAR=value
-- assignments, `stdin` text for standard input. Returns code, stdout, stderr.
local function cli(args, env, stdin)
  local parts = {}
  for i, a in ipairs(args) do parts[i] = quote(a) end
  local err_file = os.tmpname()
  local in_file = write_file(stdin or "")
  local cmd = ("env -u BASETEN_API_KEY -u BASETEN_MODEL -u BASETEN_BASE_URL %s %s bin/baseten %s <%s 2>%s; echo \"exit:$?\"")
    :format(env or "", interpreter(), table.concat(parts, " "), in_file, err_file)
  local p = assert(io.popen(cmd, "r"))
  local out = p:read("*a")
  p:close()
  local f = assert(io.open(err_file, "rb"))
  local err = f:read("*a")
  f:close()
  os.remove(err_file)
  os.remove(in_file)
  local code = tonumber(out:match("exit:(%d+)%s*$"))
  return code, (out:gsub("exit:%d+%s*$", "")), err
end

describe("bin/baseten", function()
  local srv
  setup(function() srv = server.start() end)
  teardown(function() srv:stop() end)
  before_each(function() srv:reset() end)

  it("chat streams the answer to stdout", function()
    local code, out, err = cli({ "chat", "-m", MODEL, "--base-url", srv.url, "Hello", "there" })
    assert.are.equal(0, code, err)
    assert.are.equal("Hello from the local test server. You said: Hello there\n", out)
    assert.are.equal("", err)
    local req = srv:last_request()
    assert.is_true(req.json.stream)
    assert.are.equal(MODEL, req.json.model)
  end)

  it("chat sends --system, --temperature and --max-tokens", function()
    local code, out, err = cli({ "chat", "--model=" .. MODEL, "--base-url=" .. srv.url, "--system", "Be brief.",
                                 "--temperature", "0.5", "--max-tokens", "3", "one two three four five" })
    assert.are.equal(0, code, err)
    assert.are.equal("Hello from the\n", out) -- the mock stops at max_tokens words
    local body = srv:last_request().json
    assert.are.same({ role = "system", content = "Be brief." }, body.messages[1])
    assert.are.same({ role = "user", content = "one two three four five" }, body.messages[2])
    assert.are.equal(0.5, body.temperature)
    assert.are.equal(3, body.max_tokens)
  end)

  it("chat reads the prompt from stdin, with - or with none", function()
    for _, args in ipairs({ { "chat", "-" }, { "chat" } }) do
      local code, out, err = cli(args, "BASETEN_MODEL=" .. MODEL .. " BASETEN_BASE_URL=" .. srv.url,
                                 "from standard input\n")
      assert.are.equal(0, code, err)
      assert.are.equal("Hello from the local test server. You said: from standard input\n", out)
    end
  end)

  it("models lists the model ids", function()
    local code, out, err = cli({ "models", "--base-url", srv.url })
    assert.are.equal(0, code, err)
    assert.matches("^openai/gpt%-oss%-120b\ndeepseek%-ai/DeepSeek%-V3%.1\n", out)
    assert.are.equal(5, select(2, out:gsub("\n", "")))
  end)

  it("--json prints the structured answer as JSON", function()
    local schema = write_file([[{"type": "object", "additionalProperties": false,
      "required": ["name", "email"],
      "properties": {"name": {"type": "string"}, "email": {"type": "string"}}}]])
    local code, out, err = cli({ "chat", "-m", MODEL, "--base-url", srv.url, "--json", schema,
                                 "Write to Grace Hopper at grace@example.com" })
    os.remove(schema)
    assert.are.equal(0, code, err)
    assert.are.same({ name = "Grace Hopper", email = "grace@example.com" }, baseten.json.decode(out))
    local rf = srv:last_request().json.response_format
    assert.are.equal("json_schema", rf.type)
    assert.is_true(rf.json_schema.strict)
  end)

  it("--json with a file that is not JSON is a usage error", function()
    local bad = write_file("not json")
    local code, out, err = cli({ "chat", "-m", MODEL, "--base-url", srv.url, "--json", bad, "hi" })
    os.remove(bad)
    assert.are.equal(2, code)
    assert.are.equal("", out)
    assert.matches("is not a JSON Schema object", err)
  end)

  it("--stats prints time to first token, tokens per second and usage to stderr", function()
    local code, out, err = cli({ "chat", "-m", MODEL, "--base-url", srv.url, "--stats", "Hi" })
    assert.are.equal(0, code, err)
    assert.are.equal("Hello from the local test server. You said: Hi\n", out)
    assert.matches("time to first token %d+%.%d+ s", err)
    assert.matches("[%d.]+ tokens/s", err)
    assert.matches("usage: prompt 1, completion %d+, total %d+ tokens", err)
    assert.is_true(srv:last_request().json.stream_options.include_usage)
  end)

  it("a 401 exits 1 with the error kind and never prints the key", function()
    local locked = server.start{ api_key = "the-right-key" }
    local code, out, err = cli({ "chat", "-m", MODEL, "--base-url", locked.url, "hi" },
                               "BASETEN_API_KEY=sk-wrong-secret-1234")
    locked:stop()
    assert.are.equal(1, code)
    assert.are.equal("", out)
    assert.matches("^baseten: authentication %(HTTP 401%): ", err)
    assert.is_nil(err:find("sk-wrong-secret-1234", 1, true))
  end)

  it("an unknown model exits 1 with kind not_found", function()
    local code, _, err = cli({ "chat", "-m", "no/such-model", "--base-url", srv.url, "hi" })
    assert.are.equal(1, code)
    assert.matches("^baseten: not_found %(HTTP 404%): ", err)
  end)

  it("a server that is not there exits 1 with kind connection", function()
    local code, _, err = cli({ "models", "--base-url", "http://127.0.0.1:1/v1" })
    assert.are.equal(1, code)
    assert.matches("^baseten: connection: ", err)
  end)

  it("a bad option, a missing value or a missing model is a usage error", function()
    local code, out, err = cli({ "chat", "--bogus", "hi" })
    local _
    assert.are.equal(2, code)
    assert.are.equal("", out)
    assert.matches("unknown option %-%-bogus", err)
    code, _, err = cli({ "chat", "hi", "--max-tokens" })
    assert.are.equal(2, code)
    assert.matches("%-%-max%-tokens needs a value", err)
    code, _, err = cli({ "chat", "--temperature", "warm", "hi" })
    assert.are.equal(2, code)
    assert.matches("needs a number", err)
    code, _, err = cli({ "chat", "--base-url", srv.url, "hi" })
    assert.are.equal(2, code)
    assert.matches("no model", err)
    code, _, err = cli({ "frobnicate" })
    assert.are.equal(2, code)
    assert.matches("unknown command", err)
  end)

  it("--help and --version", function()
    local code, out = cli({ "--help" })
    assert.are.equal(0, code)
    assert.matches("Usage:", out)
    assert.matches("%-%-stats", out)
    code, out = cli({ "--version" })
    assert.are.equal(0, code)
    assert.are.equal("baseten " .. baseten.VERSION .. "\n", out)
  end)
end)
