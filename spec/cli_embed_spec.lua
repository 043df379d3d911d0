-- `baseten embed FILE` (issue 27): the real bin/baseten run as a child
-- process against the local server: one JSONL vector per non-blank line in
-- file order, -o, --dimensions and --batch-size, the progress bar on a
-- terminal, a failed request, usage errors.
-- luacheck: std max+busted
local server = require("spec.support.server")
local baseten = require("baseten")
local util = require("spec.support.util")

local json = baseten.json

local function command(args)
  local parts = {}
  for i, a in ipairs(args) do parts[i] = util.quote(a) end
  return util.interpreter() .. " bin/baseten " .. table.concat(parts, " "),
    { env = "-u BASETEN_API_KEY -u BASETEN_MODEL -u BASETEN_BASE_URL" }
end

local function cli(args) return util.run(command(args)) end

local function records(text)
  local t = {}
  for line in text:gmatch("([^\n]*)\n") do t[#t + 1] = assert(json.decode(line), line) end
  return t
end

describe("baseten embed", function()
  local srv, input

  setup(function()
    srv = server.start()
    input = util.write_file("hello world\n\ngood day\r\nthird line\n   \nlast")
  end)
  teardown(function()
    if srv then srv:stop() end
    os.remove(input)
  end)
  before_each(function() srv:reset() end)

  it("writes one JSON line per non-blank line, in file order, with its line number", function()
    local code, out, err = cli({ "embed", input, "--base-url", srv.url, "--dimensions", "8", "--batch-size", "1" })
    assert.equal(0, code, err)
    local recs = records(out)
    assert.equal(4, #recs)
    local want_lines = { 1, 3, 4, 6 }
    local client = baseten.new{ api_key = false, base_url = srv.url }
    local texts = { "hello world", "good day", "third line", "last" }
    for i, r in ipairs(recs) do
      assert.equal(want_lines[i], r.line)
      assert.equal(8, #r.embedding)
      local v = assert(client:embed(texts[i], { dimensions = 8 }))[1]
      assert.same(v:totable(), r.embedding)
    end
    client:close()
    local posts = 0
    for _, r in ipairs(srv:requests()) do if r.path == "/v1/embeddings" then posts = posts + 1 end end
    assert.equal(4 + 4, posts, "--batch-size 1: one request per line (and the 4 checks)")
  end)

  it("-o writes a file; a tty shows the progress bar", function()
    local output = os.tmpname()
    local code, _, tty = util.run_tty(command({ "embed", input, "-o", output, "--base-url", srv.url }))
    assert.equal(0, code)
    assert.equal(4, #records(util.read_file(output)))
    assert.matches("%[[#%.]+%] %d/4 +[%d%.]+ texts/s +0 failed +ETA", tty)
    os.remove(output)
  end)

  it("a failed request exits 1 with the error on stderr", function()
    srv:config{ embed = { faults = { { match = "good", status = 400 } } } }
    local code, out, err = cli({ "embed", input, "--base-url", srv.url })
    assert.equal(1, code)
    assert.equal("", out)
    assert.matches("bad_request", err)
  end)

  it("help and usage errors", function()
    local code, out = cli({ "help", "embed" })
    assert.equal(0, code)
    assert.matches("Usage: baseten embed FILE", out)
    assert.equal(2, (cli({ "embed" })))
    assert.equal(2, (cli({ "embed", input, "--dimensions", "0", "--base-url", srv.url })))
    assert.equal(2, (cli({ "embed", input, "--stats" })))
  end)
end)
