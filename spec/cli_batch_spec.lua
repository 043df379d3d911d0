-- `baseten batch` (issue 16), the real bin/baseten run as a child process
-- (with the interpreter that runs this suite) against the local server:
-- both input formats, malformed lines, duplicate ids, resuming after a
-- failed run and after `kill -9` in the middle, the progress bar.
-- luacheck: std max+busted
local fixture = require("spec.support.fixture")
local baseten = require("baseten")
local core = require("baseten.core")
local util = require("spec.support.util")

local json = baseten.json
local MODEL = "deepseek-ai/DeepSeek-V3.1"

local read, quote = util.read_file, util.quote

local function write(path, text)
  local f = assert(io.open(path, "wb"))
  f:write(text)
  f:close()
end

-- bin/baseten with the arguments, as a shell command and util.run's opts
local function command(args)
  local parts = {}
  for i, a in ipairs(args) do parts[i] = quote(a) end
  return util.interpreter() .. " bin/baseten " .. table.concat(parts, " "),
    { env = "-u BASETEN_API_KEY -u BASETEN_MODEL -u BASETEN_BASE_URL" }
end

-- Runs bin/baseten; returns code, stdout, stderr.
local function cli(args)
  return util.run(command(args))
end

local function lines(text)
  local t = {}
  for line in (text or ""):gmatch("([^\n]*)\n") do t[#t + 1] = line end
  return t
end

-- The output file's records, by custom_id (fails on a duplicate id).
local function records(path)
  local text = read(path) or ""
  if text ~= "" then assert.equal("\n", text:sub(-1), "the output ends with a newline") end
  local by_id, n = {}, 0
  for _, line in ipairs(lines(text)) do
    local rec = assert(json.decode(line), "not JSON: " .. line)
    assert.is_nil(by_id[rec.custom_id], "duplicate line for " .. tostring(rec.custom_id))
    by_id[rec.custom_id] = rec
    n = n + 1
  end
  return by_id, n
end

local function ok(rec)
  return rec and rec.error == json.null and rec.response.status_code == 200
end

local function openai_line(id, text, model)
  return json.encode({ custom_id = id, method = "POST", url = "/v1/chat/completions",
                       body = { model = model or MODEL, messages = { { role = "user", content = text } } } })
end

local function plain_line(text)
  return json.encode({ model = MODEL, messages = { { role = "user", content = text } } })
end

local function completion(text) return util.completion(text, { model = MODEL }) end

describe("baseten batch", function()
  local srv, dir, input, output

  fixture.server(function(s) srv = s end)
  before_each(function()
    dir = os.tmpname()
    os.remove(dir)
    assert(os.execute("mkdir -p " .. quote(dir)))
    input, output = dir .. "/in.jsonl", dir .. "/out.jsonl"
  end)
  after_each(function() os.execute("rm -rf " .. quote(dir)) end)

  local function run_with_input(path, extra)
    local args = { "batch", path, "-o", output, "--base-url", srv.url }
    for _, a in ipairs(extra or {}) do args[#args + 1] = a end
    return cli(args)
  end
  local function run(extra) return run_with_input(input, extra) end

  it("takes OpenAI Batch API lines and plain requests, and writes OpenAI's output format", function()
    write(input, table.concat({
      openai_line("q1", "first"),
      plain_line("second"),
      "",
      openai_line("q3", "third"),
      plain_line("fourth"),
    }, "\n") .. "\n")
    local code, out, err = run({ "-c", "2" })
    assert.equal(0, code, err)
    assert.equal("", out)
    local by_id, n = records(output)
    assert.equal(4, n)
    local want = { q1 = "first", ["2"] = "second", q3 = "third", ["5"] = "fourth" } -- plain: the line number
    for id, text in pairs(want) do
      local rec = by_id[id]
      assert.truthy(ok(rec), id)
      assert.matches("^batch_req_", rec.id)
      assert.matches("^req%-%d+$", rec.response.request_id)
      assert.equal("Hello from the local test server. You said: " .. text, rec.response.body.choices[1].message.content)
    end
    local ids = {}
    for _, rec in pairs(by_id) do
      assert.is_nil(ids[rec.id], "two lines with one id")
      ids[rec.id] = true
    end
    for _, r in ipairs(srv:requests()) do
      assert.equal(MODEL, r.json.model)
      assert.is_nil(r.json.custom_id)
      assert.is_nil(r.json.stream)
    end
    assert.equal(4, #srv:requests())
    -- stderr is not a terminal: the summary line alone
    assert.equal(1, #lines(err), err)
    assert.matches("^baseten: batch: 4 of 4 requests succeeded, 0 failed", err)
  end)

  it("uses -m for lines without a model", function()
    write(input, json.encode({ messages = { { role = "user", content = "x" } } }) .. "\n")
    local code, _, err = run()
    assert.equal(1, code)
    assert.matches("in%.jsonl:1: malformed line skipped: no model", err)
    assert.equal(0, #srv:requests())
    code, _, err = run({ "-m", MODEL })
    assert.equal(0, code, err)
    assert.equal(MODEL, srv:last_request().json.model)
  end)

  it("reports a malformed line with its number, skips it, and sends the rest", function()
    write(input, table.concat({
      openai_line("a", "one"),
      "{not json",
      json.encode({ custom_id = "c", body = { model = MODEL } }),            -- no messages
      openai_line("d", "four"),
      json.encode({ custom_id = 5, body = { model = MODEL, messages = {} } }), -- id not a string
      json.encode({ custom_id = "f", url = "/v1/embeddings", body = { model = MODEL, input = "x" } }),
      "[1, 2]",
      plain_line("eight"),
    }, "\n")) -- no newline at the end
    local code, _, err = run()
    assert.equal(1, code) -- malformed lines: not everything was answered
    for _, n in ipairs({ 2, 3, 5, 6, 7 }) do
      assert.matches("in%.jsonl:" .. n .. ": malformed line skipped", err)
    end
    assert.matches("5 malformed lines skipped", err)
    local by_id, n = records(output)
    assert.equal(3, n)
    assert.truthy(ok(by_id.a) and ok(by_id.d) and ok(by_id["8"]))
    assert.equal(3, #srv:requests())
  end)

  it("duplicate custom_ids are an error before anything is sent", function()
    write(input, table.concat({
      openai_line("a", "one"), openai_line("b", "two"), openai_line("a", "three"),
    }, "\n") .. "\n")
    local code, _, err = run()
    assert.equal(2, code)
    assert.matches("in%.jsonl:3: duplicate custom_id \"a\" %(first on line 1%)", err)
    assert.matches("nothing was sent", err)
    assert.equal(0, #srv:requests())
    assert.is_nil(read(output))
  end)

  it("writes failures, exits 1, and a re-run sends only the failed ones again", function()
    local list = {}
    for i = 1, 6 do list[i] = openai_line("r" .. i, "text " .. i) end
    write(input, table.concat(list, "\n") .. "\n")
    srv:config{ rate_limit = { share = 0.5, retry_after = "0" } } -- every second request: 429
    local code, _, err = run({ "--max-retries", "0", "-c", "1" })
    assert.equal(1, code)
    assert.matches("3 of 6 requests succeeded, 3 failed", err)
    assert.matches("failures: 3 rate_limit;", err) -- why, by error kind
    local by_id, n = records(output)
    assert.equal(6, n)
    local failed = 0
    for _, rec in pairs(by_id) do
      if not ok(rec) then
        failed = failed + 1
        assert.equal("rate_limit", rec.error.code)
        assert.equal(429, rec.response.status_code)
      end
    end
    assert.equal(3, failed)
    srv:reset()
    code, _, err = run()
    assert.equal(0, code, err)
    assert.matches("3 of 3 requests succeeded, 0 failed.*3 already answered", err)
    assert.equal(3, #srv:requests())
    by_id, n = records(output)
    assert.equal(6, n) -- the failed lines were replaced, not added to
    for i = 1, 6 do assert.truthy(ok(by_id["r" .. i]), i) end
  end)

  it("drops a line cut short by a crash and sends its request again", function()
    write(input, table.concat({ plain_line("one"), plain_line("two"), plain_line("three") }, "\n") .. "\n")
    assert.equal(0, (run()))
    local text = read(output)
    local kept = lines(text)
    -- the last result was being written when the process died
    write(output, kept[1] .. "\n" .. kept[2] .. "\n" .. kept[3]:sub(1, 40))
    local dropped = json.decode(kept[3]).custom_id
    srv:reset()
    local code, _, err = run()
    assert.equal(0, code, err)
    assert.matches("dropped an incomplete line", err)
    assert.equal(1, #srv:requests())
    local by_id, n = records(output)
    assert.equal(3, n)
    assert.truthy(ok(by_id[dropped]))
  end)

  it("resumes after kill -9 in the middle: no duplicate, no lost line", function()
    local total = 40
    local list, scripted = {}, {}
    for i = 1, total do
      list[i] = openai_line("k" .. i, "item " .. i)
      scripted[i] = { delay = 0.1, json = completion("slow " .. i) }
    end
    write(input, table.concat(list, "\n") .. "\n")
    srv:enqueue(scripted)
    local pid_file = dir .. "/pid"
    os.execute(("(exec %s >/dev/null 2>&1) & echo $! >%s"):format(
      command({ "batch", input, "-o", output, "--base-url", srv.url, "-c", "2" }), quote(pid_file)))
    local pid = tonumber(read(pid_file):match("%d+"))
    local deadline = core.now() + 30
    while #lines(read(output)) < 5 do
      assert(core.now() < deadline, "the first run wrote nothing")
      core.sleep(0.02)
    end
    os.execute("kill -9 " .. pid)
    while (read("/proc/" .. pid .. "/stat") or ""):match("%) ([^Z])") do -- gone, or a zombie
      assert(core.now() < deadline, "the killed run is still there")
      core.sleep(0.02)
    end
    local answered = 0
    for _, line in ipairs(lines(read(output))) do
      local rec = json.decode(line)
      if rec and ok(rec) then answered = answered + 1 end
    end
    assert.is_true(answered >= 5 and answered < total, answered .. " answered before the kill")
    srv:reset() -- the re-run gets the mock's fast answers
    local code, _, err = run({ "-c", "4" })
    assert.equal(0, code, err)
    assert.equal(total - answered, #srv:requests()) -- only what had no answer
    local by_id, n = records(output)
    assert.equal(total, n)
    for i = 1, total do assert.truthy(ok(by_id["k" .. i]), "k" .. i) end
  end)

  it("shows a progress bar on a terminal, ending with the summary", function()
    write(input, table.concat({ plain_line("a"), plain_line("b"), plain_line("c") }, "\n") .. "\n")
    local scripted = {}
    for i = 1, 3 do scripted[i] = { delay = 0.25, json = completion("x" .. i) } end
    srv:enqueue(scripted)
    local code, _, tty = util.run_tty(command({ "batch", input, "-o", output, "--base-url", srv.url, "-c", "1" }))
    assert.equal(0, code)
    assert.matches("%[[#%.]+%] %d/3 +[%d%.]+ req/s +%d+ tok/s +0 failed +window 1 +ETA %d+:%d%d", tty)
    assert.matches("\r\27%[K", tty) -- the bar is cleared before the summary
    assert.matches("baseten: batch: 3 of 3 requests succeeded", tty)
  end)

  -- A 32 KiB file system for the output: a real tmpfs when this process
  -- may mount one (root on Linux), else bin/baseten runs with io.open
  -- wrapped by spec.support.full_disk (also when BASETEN_NO_MOUNT is set,
  -- to run that path where mounting works). Returns the directory, a runner
  -- and a function that gives the file system room.
  local function small_disk()
    local mnt = dir .. "/mnt"
    assert(os.execute("mkdir -p " .. quote(mnt)))
    if not os.getenv("BASETEN_NO_MOUNT") and util.ok("mount -t tmpfs -o size=32k tmpfs " .. quote(mnt) .. " 2>/dev/null") then
      return mnt, function(args) return cli(args) end,
        function() assert(util.ok("mount -o remount,size=1m " .. quote(mnt))) end,
        function() os.execute("umount " .. quote(mnt)) end
    end
    local size = 32 * 1024
    local function runner(args)
      local cmd, opts = command(args)
      cmd = cmd:gsub("^(%S+) bin/baseten", "%1 -e " .. quote('require("spec.support.full_disk").from_env()')
        .. " bin/baseten")
      local free = size - #(read(mnt .. "/out.jsonl") or "") -- what the output already takes
      opts.env = opts.env .. " BT_FULL_PREFIX=" .. quote(mnt) .. " BT_FULL_FREE=" .. free
      return util.run(cmd, opts)
    end
    return mnt, runner, function() size = 1024 * 1024 end, function() end
  end

  it("a full disk stops the run, naming the file, and a resume never shrinks the output", function()
    -- N results take about 3x the 32 KiB (a third as many fitted once on LuaJIT)
    local N, list = 400, {}
    for i = 1, N do list[i] = openai_line("q" .. i, "question number " .. i) end
    write(input, table.concat(list, "\n") .. "\n")
    local mnt, runner, grow, unmount = small_disk()
    local out = mnt .. "/out.jsonl"
    local args = { "batch", input, "-o", out, "--base-url", srv.url }
    local ok_run, err_run = pcall(function()
      local code, _, err = runner(args)
      assert.equal(1, code, err)
      assert.matches("cannot write " .. out:gsub("%p", "%%%0") .. ": No space left on device", err)
      assert.is_nil(err:find(N .. " of " .. N, 1, true), err)
      assert.is_nil(err:find("traceback", 1, true), err)
      local first = read(out)
      assert.is_true(#lines(first) < N)
      -- the resume has no room for its rewrite: the output stays as it is
      code, _, err = runner(args)
      assert.equal(1, code, err)
      assert.matches("left as it was", err)
      assert.is_nil(err:find("already answered", 1, true), err)
      assert.equal(first, read(out))
      grow()
      code, _, err = runner(args)
      assert.equal(0, code, err)
      assert.matches(#lines(first) .. " already answered", err)
      local by_id, n = records(out)
      assert.equal(N, n)
      for i = 1, N do assert.truthy(ok(by_id["q" .. i]), "q" .. i) end
    end)
    unmount()
    assert(ok_run, err_run)
  end)

  it("a directory as input is a usage error, not a traceback", function()
    local code, out, err = run_with_input(dir)
    assert.equal(2, code)
    assert.equal("", out)
    assert.matches("^baseten: cannot read " .. dir:gsub("%p", "%%%0") .. ": Is a directory", err)
    assert.is_nil(err:find("traceback", 1, true), err)
    assert.equal(0, #srv:requests())
  end)

  it("an empty input reports no ids as already answered", function()
    write(input, table.concat({ plain_line("a"), plain_line("b"), plain_line("c") }, "\n") .. "\n")
    assert.equal(0, (run()))
    write(input, "")
    local code, _, err = run()
    assert.equal(0, code, err)
    assert.matches("0 of 0 requests succeeded", err)
    assert.is_nil(err:find("already answered", 1, true), err)
  end)

  it("--json prints the summary as one line of JSON on stdout", function()
    write(input, table.concat({ plain_line("a"), plain_line("b") }, "\n") .. "\n")
    local code, out, err = run({ "--json" })
    assert.equal(0, code, err)
    local s = assert(json.decode(out), out)
    assert.equal(1, #lines(out))
    assert.same({ 2, 0, 2, 0, 0, output }, { s.succeeded, s.failed, s.total, s.skipped, s.malformed, s.output })
    assert.matches("^baseten: batch: 2 of 2 requests succeeded", err)
  end)

  it("help and usage errors", function()
    local code, out = cli({ "help", "batch" })
    assert.equal(0, code)
    assert.matches("Usage: baseten batch INPUT%.jsonl %-o OUTPUT%.jsonl", out)
    code, out = cli({ "batch", "--help" })
    assert.equal(0, code)
    assert.matches("custom_id", out)
    code = select(1, cli({ "batch", input }))
    assert.equal(2, code) -- no -o
    code = select(1, cli({ "batch", "-o", output }))
    assert.equal(2, code) -- no input
    code = select(1, cli({ "batch", dir .. "/missing.jsonl", "-o", output }))
    assert.equal(2, code)
    code = select(1, cli({ "batch", input, "-o", output, "-c", "0" }))
    assert.equal(2, code)
    code = select(1, cli({ "models", "-o", output }))
    assert.equal(2, code) -- -o is batch's alone
  end)
end)
