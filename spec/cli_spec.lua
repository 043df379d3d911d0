-- bin/baseten, the command-line tool, run as a child process (with the
-- interpreter that runs this suite) against the bundled local server.
local server = require("spec.support.server")
local fixture = require("spec.support.fixture")
local baseten = require("baseten")
local util = require("spec.support.util")

local MODEL = "deepseek-ai/DeepSeek-V3.1"

local quote, write_file = util.quote, util.write_file

-- bin/baseten with the arguments, as a shell command; `env` is a string
-- of VAR=value assignments (the caller's BASETEN_* variables are removed).
local function command(args, env)
  local parts = {}
  for i, a in ipairs(args) do parts[i] = quote(a) end
  return util.interpreter() .. " bin/baseten " .. table.concat(parts, " "),
    { env = "-u BASETEN_API_KEY -u BASETEN_MODEL -u BASETEN_BASE_URL " .. (env or "") }
end

-- Runs bin/baseten with the arguments; `env` is a string of VAR=value
-- assignments, `stdin` text for standard input. Returns code, stdout, stderr.
local function cli(args, env, stdin)
  local cmd, opts = command(args, env)
  opts.stdin = stdin
  return util.run(cmd, opts)
end

-- Runs bin/baseten under script(1), so that its stdin and stderr are a
-- terminal (a pty) while stdout goes to a file. Returns code, stdout and
-- what the terminal showed (stderr, with the pty's \r\n line ends).
local function cli_tty(args, env)
  return util.run_tty(command(args, env))
end

local function lines(text)
  local t = {}
  for line in text:gmatch("([^\n]*)\n") do t[#t + 1] = line end
  return t
end

describe("bin/baseten", function()
  local srv
  fixture.server(function(s) srv = s end)

  it("with no key for Baseten's servers, says what to do on the command line, not in Lua", function()
    local code, out, err = cli({ "chat", "-m", MODEL, "Hello" })
    assert.are.equal(1, code)
    assert.are.equal("", out)
    assert.truthy(err:find("export BASETEN_API_KEY=<your key>", 1, true), err)
    assert.truthy(err:find("https://app.baseten.co/settings/api_keys", 1, true), err)
    assert.is_nil(err:find("baseten.new", 1, true), err)
    assert.equal(0, #srv:requests())
  end)

  it("Ctrl-C (SIGINT) mid-stream: one line, exit 130, no file path", function()
    local chunks = {}
    for i = 1, 40 do
      chunks[i] = "data: " .. baseten.json.encode{ id = "c", object = "chat.completion.chunk", model = MODEL,
        choices = { { index = 0, delta = { content = "w" .. i .. " " } } } } .. "\n\n"
    end
    srv:enqueue{ chunks = chunks, chunk_delay = 0.1 }
    local cmd, opts = command({ "chat", "-m", MODEL, "--base-url", srv.url, "Hello" })
    -- the child in the background of a shell, interrupted once its first words are out
    local out_file = os.tmpname()
    local script = cmd .. " >" .. quote(out_file) .. " & pid=$!; i=0; while [ ! -s " .. quote(out_file)
      .. " ] && [ $i -lt 1500 ]; do sleep 0.02; i=$((i+1)); done; kill -INT $pid; wait $pid"
    local code, _, err = util.run("sh -c " .. quote(script), opts)
    local out = util.read_file(out_file) or ""
    os.remove(out_file)
    assert.are.equal(130, code, err)
    assert.truthy(out:find("w1 ", 1, true), out)
    assert.is_nil(out:find("w40", 1, true), out) -- it stopped
    assert.matches("baseten: interrupted\n$", err)
    assert.is_nil(err:find(".lua:", 1, true), err)
    assert.is_nil(err:find("traceback", 1, true), err)
  end)

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

  it("chat joins the prompt words and piped stdin: the words, a blank line, then the piped text", function()
    local code, out, err = cli({ "chat", "-m", MODEL, "--base-url", srv.url, "write", "a", "commit", "message" }, nil,
                               "diff --git a/x b/x\n+new line\n")
    assert.are.equal(0, code, err)
    assert.are.same({ role = "user", content = "write a commit message\n\ndiff --git a/x b/x\n+new line\n" },
                    srv:last_request().json.messages[1])
    assert.matches("^Hello from the local test server%. You said: write a commit message", out)
    -- empty piped input: the words alone
    code, out, err = cli({ "chat", "-m", MODEL, "--base-url", srv.url, "just", "words" }, nil, "")
    assert.are.equal(0, code, err)
    assert.are.equal("just words", srv:last_request().json.messages[1].content)
    assert.matches("You said: just words\n$", out)
  end)

  it("chat with a terminal on stdin does not wait for it when there are prompt words", function()
    local code, out = cli_tty({ "chat", "-m", MODEL, "--base-url", srv.url, "Hi" })
    assert.are.equal(0, code)
    assert.are.equal("Hello from the local test server. You said: Hi\n", out)
    assert.are.equal("Hi", srv:last_request().json.messages[1].content)
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

  it("--schema prints the structured answer as JSON; with --json the whole response", function()
    local schema = write_file([[{"type": "object", "additionalProperties": false,
      "required": ["name", "email"],
      "properties": {"name": {"type": "string"}, "email": {"type": "string"}}}]])
    local code, out, err = cli({ "chat", "-m", MODEL, "--base-url", srv.url, "--schema", schema,
                                 "Write to Grace Hopper at grace@example.com" })
    assert.are.equal(0, code, err)
    assert.are.same({ name = "Grace Hopper", email = "grace@example.com" }, baseten.json.decode(out))
    local rf = srv:last_request().json.response_format
    assert.are.equal("json_schema", rf.type)
    assert.is_true(rf.json_schema.strict)
    code, out, err = cli({ "chat", "-m", MODEL, "--base-url", srv.url, "--schema", schema, "--json",
                           "Write to Grace Hopper at grace@example.com" })
    os.remove(schema)
    assert.are.equal(0, code, err)
    local resp = baseten.json.decode(out)
    assert.are.equal("chat.completion", resp.object)
    assert.are.same({ name = "Grace Hopper", email = "grace@example.com" },
                    baseten.json.decode(resp.choices[1].message.content))
  end)

  it("--schema --partial prints each change while the JSON streams, one line each, then the value", function()
    local schema = write_file([[{"type": "object", "additionalProperties": false,
      "required": ["name", "email"],
      "properties": {"name": {"type": "string"}, "email": {"type": "string"}}}]])
    local code, out, err = cli({ "chat", "-m", MODEL, "--base-url", srv.url, "--schema", schema, "--partial",
                                 "Write to Grace Hopper at grace@example.com" })
    assert.are.equal(0, code, err)
    local got = {}
    for line in out:gmatch("[^\n]+") do got[#got + 1] = line end
    assert.is_true(srv:last_request().json.stream)
    assert.are.same({ name = "Grace Hopper", email = "grace@example.com" }, baseten.json.decode(got[#got]))
    local names = {}
    for i = 1, #got - 1 do
      local path, value = got[i]:match("^(%S+) = (.*)$")
      assert.is_string(path, got[i])
      if path == "name" then names[#names + 1] = baseten.json.decode(value) end
      assert.are_not.equal(got[i], got[i + 1]) -- a line only for a change
    end
    assert.is_true(#names >= 3) -- the name grew over several lines
    assert.are.equal("Grace Hopper", names[#names])
    code, out, err = cli({ "chat", "-m", MODEL, "--base-url", srv.url, "--partial", "hi" })
    os.remove(schema)
    assert.are.equal(2, code)
    assert.are.equal("", out)
    assert.matches("%-%-partial needs %-%-schema", err)
  end)

  it("--schema with a file that is not JSON, or no file, is a usage error", function()
    local bad = write_file("not json")
    local code, out, err = cli({ "chat", "-m", MODEL, "--base-url", srv.url, "--schema", bad, "hi" })
    os.remove(bad)
    assert.are.equal(2, code)
    assert.are.equal("", out)
    assert.matches("is not a JSON Schema object", err)
    code, out, err = cli({ "chat", "-m", MODEL, "--base-url", srv.url, "--schema", "/no/such/file.json", "hi" })
    assert.are.equal(2, code)
    assert.are.equal("", out)
    assert.matches("cannot read", err)
  end)

  it("--json followed by a schema file says to use --schema", function()
    local schema = write_file('{"type": "object"}')
    local named = schema .. ".json"
    assert(os.rename(schema, named))
    local code, out, err = cli({ "chat", "-m", MODEL, "--base-url", srv.url, "--json", named, "hi" })
    os.remove(named)
    assert.are.equal(2, code)
    assert.are.equal("", out)
    assert.matches("use %-%-schema", err)
    assert.are.equal(0, #srv:requests())
  end)

  it("--json prints the response as one line of JSON, on chat and on models", function()
    local code, out, err = cli({ "chat", "-m", MODEL, "--base-url", srv.url, "--json", "Hi" })
    assert.are.equal(0, code, err)
    assert.are.equal("", err)
    assert.are.equal(1, #lines(out))
    local resp = baseten.json.decode(out)
    assert.are.equal("chat.completion", resp.object)
    assert.are.equal("Hello from the local test server. You said: Hi", resp.choices[1].message.content)
    assert.are.equal("stop", resp.choices[1].finish_reason)
    assert.are.equal(1, resp.usage.prompt_tokens)
    code, out, err = cli({ "models", "--base-url", srv.url, "--json" })
    assert.are.equal(0, code, err)
    assert.are.equal(1, #lines(out))
    local list = baseten.json.decode(out)
    assert.are.equal("list", list.object)
    assert.are.equal(5, #list.data)
    assert.are.equal("openai/gpt-oss-120b", list.data[1].id)
  end)

  it("--stats is one line on stderr, after a newline, with times, tokens/s, usage and request id", function()
    local code, out, err = cli({ "chat", "-m", MODEL, "--base-url", srv.url, "--stats", "Hi" })
    assert.are.equal(0, code, err)
    assert.are.equal("Hello from the local test server. You said: Hi\n", out)
    assert.are.equal(2, #lines(err), err)
    assert.are.equal("", lines(err)[1])
    local stats = lines(err)[2]
    assert.matches("^baseten: stats: ", stats)
    assert.matches("time to first token %d+%.%d+ s", stats)
    assert.matches("[%d.]+ tokens/s", stats)
    assert.matches("total %d+%.%d+ s", stats)
    assert.matches("usage: prompt 1, completion %d+, total %d+ tokens", stats)
    assert.matches("request id req%-%d+", stats)
    assert.is_nil(stats:find("reasoning", 1, true))
    assert.is_true(srv:last_request().json.stream_options.include_usage)
  end)

  it("--stats with 2>&1 is never glued to the reply", function()
    srv:enqueue({ chunks = {
      'data: {"choices":[{"index":0,"delta":{"content":"no newline at the end"}}]}\n\n',
      'data: {"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}\n\n', "data: [DONE]\n\n" },
      headers = { ["Content-Type"] = "text/event-stream", ["x-request-id"] = "rid-7" } })
    local _, both = util.run(("%s bin/baseten chat -m %s --base-url %s --stats hi"):format(util.interpreter(), MODEL,
      srv.url), { env = "-u BASETEN_API_KEY", merge = true })
    local got = lines(both)
    assert.are.equal("no newline at the end", got[1], both)
    assert.matches("^baseten: stats: .*request id rid%-7$", got[#got])
  end)

  it("--max-retries sets the retries; a retried failure says how many attempts", function()
    local busy = { status = 503, json = { error = "overloaded" }, headers = { ["retry-after-ms"] = "1" } }
    srv:enqueue(busy, busy, busy)
    local code, out, err = cli({ "chat", "-m", MODEL, "--base-url", srv.url, "--max-retries", "0", "hi" })
    assert.are.equal(1, code)
    assert.are.equal("", out)
    assert.matches("^baseten: server %(HTTP 503%): overloaded", err)
    assert.are.equal(1, #srv:requests())
    srv:reset()
    srv:enqueue(busy, busy)
    code, out, err = cli({ "models", "--base-url", srv.url, "--max-retries=1" })
    assert.are.equal(1, code)
    assert.are.equal("", out)
    assert.matches("overloaded after 2 attempts", err)
    assert.are.equal(2, #srv:requests())
    srv:reset()
    srv:enqueue(busy)
    code, out, err = cli({ "chat", "-m", MODEL, "--base-url", srv.url, "--max-retries", "1", "hi" })
    assert.are.equal(0, code, err)
    assert.are.equal("Hello from the local test server. You said: hi\n", out)
    code, out, err = cli({ "models", "--max-retries", "-1" })
    assert.are.equal(2, code)
    assert.are.equal("", out)
    assert.matches("non%-negative integer", err)
    code, out, err = cli({ "models", "--max-retries", "1.5" })
    assert.are.equal(2, code)
    assert.are.equal("", out)
    assert.matches("non%-negative integer", err)
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

  it("a mid-stream error event exits 1 with its kind, after the text that came", function()
    srv:enqueue({ chunks = {
      'data: {"choices":[{"index":0,"delta":{"content":"partial"}}]}\n\n',
      'data: {"error":{"message":"the worker died","type":"server_error"}}\n\n' },
      headers = { ["Content-Type"] = "text/event-stream" } })
    local code, out, err = cli({ "chat", "-m", MODEL, "--base-url", srv.url, "hi" })
    assert.are.equal(1, code)
    assert.are.equal("partial\n", out)
    assert.matches("^baseten: error_event: the worker died", err)
  end)

  it("an option the command does not use is a usage error", function()
    local schema = write_file('{"type": "object"}')
    local cases = {
      { "models", "--schema", schema }, { "models", "--stats" }, { "models", "-m", MODEL },
      { "models", "--no-reasoning" }, { "models", "--temperature", "1" }, { "help", "--json" },
      { "help", "chat", "--stats" },
    }
    for _, args in ipairs(cases) do
      local code, out, err = cli(args, "BASETEN_BASE_URL=" .. srv.url)
      assert.are.equal(2, code, table.concat(args, " "))
      assert.are.equal("", out)
      assert.matches("is not an option of %a+", err)
    end
    os.remove(schema)
    assert.are.equal(0, #srv:requests())
    local code, _, err = cli({ "chat", "--json=yes", "hi" })
    assert.are.equal(2, code)
    assert.matches("takes no value", err)
  end)

  it("an empty model is a usage error", function()
    for _, args in ipairs({ { "chat", "-m", "", "hi" }, { "chat", "--model=", "hi" } }) do
      local code, out, err = cli(args, "BASETEN_MODEL=" .. MODEL .. " BASETEN_BASE_URL=" .. srv.url)
      assert.are.equal(2, code)
      assert.are.equal("", out)
      assert.matches("needs a model name", err)
    end
    local code, _, err = cli({ "chat", "hi" }, "BASETEN_MODEL= BASETEN_BASE_URL=" .. srv.url)
    assert.are.equal(2, code)
    assert.matches("no model", err)
    assert.are.equal(0, #srv:requests())
  end)

  it("help, help COMMAND and COMMAND --help", function()
    local code, out, err = cli({ "help" })
    assert.are.equal(0, code, err)
    assert.matches("Usage:", out)
    assert.matches("baseten chat", out)
    assert.matches("%-%-max%-retries", out)
    code, out = cli({ "help", "chat" })
    assert.are.equal(0, code)
    assert.matches("^Usage: baseten chat", out)
    assert.matches("%-%-schema FILE", out)
    assert.matches("%-%-no%-reasoning", out)
    assert.matches("prompt words first, then a blank line, then the\npiped text", out)
    local chat_help = out
    code, out = cli({ "chat", "--help" })
    assert.are.equal(0, code)
    assert.are.equal(chat_help, out)
    code, out = cli({ "help", "models" })
    assert.are.equal(0, code)
    assert.matches("^Usage: baseten models", out)
    code, out = cli({ "help", "help" })
    assert.are.equal(0, code)
    assert.matches("^Usage: baseten help", out)
    code, out, err = cli({ "help", "frobnicate" })
    assert.are.equal(2, code)
    assert.are.equal("", out)
    assert.matches("no help for", err)
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

  describe("with a reasoning model", function()
    local THINK = "The user said: Hi there I should answer."
    local ANSWER = "Hello from the local test server. You said: Hi there\n"

    it("never prints the reasoning on stdout, nor on stderr that is not a terminal", function()
      for _, model in ipairs({ "test/reasoning", "test/reasoning-alt" }) do
        local code, out, err = cli({ "chat", "-m", model, "--base-url", srv.url, "Hi there" })
        assert.are.equal(0, code, err)
        assert.are.equal(ANSWER, out)
        assert.are.equal("", err)
      end
    end)

    it("shows the reasoning dimmed on a terminal's stderr, before the answer on stdout", function()
      for _, model in ipairs({ "test/reasoning", "test/reasoning-alt" }) do
        local code, out, tty = cli_tty({ "chat", "-m", model, "--base-url", srv.url, "Hi there" })
        assert.are.equal(0, code, tty)
        assert.are.equal(ANSWER, out)
        assert.are.equal("\27[2m" .. THINK .. "\27[0m\r\n", tty)
      end
      local code, out, tty = cli_tty({ "chat", "-m", "test/reasoning", "--base-url", srv.url, "Hi there" },
                                     "NO_COLOR=1")
      assert.are.equal(0, code, tty)
      assert.are.equal(ANSWER, out)
      assert.are.equal(THINK .. "\r\n", tty)
    end)

    it("asks the core whether stderr is a terminal, not a shell (there is no `test -t` on Windows)", function()
      local cmd, opts = command({ "chat", "-m", "test/reasoning", "--base-url", srv.url, "Hi there" })
      cmd = cmd:gsub("^(%S+) bin/baseten", "%1 -e " .. quote("os.execute = function() error('no shell here') end")
        .. " bin/baseten")
      local code, out, tty = util.run_tty(cmd, opts)
      assert.are.equal(0, code, tty)
      assert.are.equal(ANSWER, out)
      assert.are.equal("\27[2m" .. THINK .. "\27[0m\r\n", tty)
      local probe = "local c = require('baseten.core') io.write(tostring(c.isatty(0)), tostring(c.isatty(2)))"
      local _, plain = util.run_lua(probe)
      assert.are.equal("falsefalse", plain) -- stdin a file, stderr a file
      local script = util.write_file(probe)
      local _, both = util.run_tty(util.interpreter() .. " " .. quote(script))
      os.remove(script)
      assert.are.equal("truetrue", both)
      assert.has_error(function() require("baseten.core").isatty(-1) end)
    end)

    it("--no-reasoning hides it", function()
      local code, out, tty = cli_tty({ "chat", "-m", "test/reasoning", "--base-url", srv.url, "--no-reasoning",
                                       "Hi there" })
      assert.are.equal(0, code, tty)
      assert.are.equal(ANSWER, out)
      assert.are.equal("", tty)
    end)

    it("--stats gives the first reasoning and first answer token times and the reasoning tokens", function()
      local code, out, tty = cli_tty({ "chat", "-m", "test/reasoning", "--base-url", srv.url, "--stats",
                                       "Hi there" })
      assert.are.equal(0, code, tty)
      assert.are.equal(ANSWER, out)
      local stats = tty:match("\r\n\r\n(baseten: stats: [^\r\n]*)\r\n$")
      assert.is_string(stats, tty)
      local r = tonumber(stats:match("time to first reasoning token (%d+%.%d+) s"))
      local a = tonumber(stats:match("time to first answer token (%d+%.%d+) s"))
      assert.is_number(r, stats)
      assert.is_number(a, stats)
      assert.is_true(a >= r, stats)
      assert.matches("reasoning 8 tokens", stats)
      assert.matches("usage: prompt 2, completion 18, total 20 tokens", stats)
      assert.matches("request id req%-%d+", stats)
      -- the same line when stderr is not a terminal (no reasoning shown)
      local err
      code, out, err = cli({ "chat", "-m", "test/reasoning-alt", "--base-url", srv.url, "--stats", "Hi there" })
      assert.are.equal(0, code, err)
      assert.are.equal(ANSWER, out)
      assert.matches("^\nbaseten: stats: time to first reasoning token [%d.]+ s, time to first answer token", err)
      assert.matches("reasoning 8 tokens", err)
    end)

    it("--json keeps the reasoning inside the JSON response", function()
      local code, out, err = cli({ "chat", "-m", "test/reasoning", "--base-url", srv.url, "--json", "Hi there" })
      assert.are.equal(0, code, err)
      local msg = baseten.json.decode(out).choices[1].message
      assert.are.equal(THINK, msg.reasoning_content)
      assert.are.equal("Hello from the local test server. You said: Hi there", msg.content)
    end)
  end)

  it("--help and --version", function()
    local code, out = cli({ "--help" })
    assert.are.equal(0, code)
    assert.matches("Usage:", out)
    assert.matches("baseten help %[COMMAND%]", out)
    code, out = cli({ "--version" })
    assert.are.equal(0, code)
    assert.are.equal("baseten " .. baseten.VERSION .. "\n", out)
  end)
end)
