-- baseten.batchfile, in-process (issue 22): a write failure stops the run
-- naming the file and never claims a result it did not write; a resume
-- never replaces the output by a cut copy; ids not in the input are not
-- counted as answered; a directory is a clear error. The disk fills up
-- through spec.support.full_disk (no mount needed); cli_batch_spec runs the
-- same on a real 32 KiB tmpfs.
-- luacheck: std max+busted
local fixture = require("spec.support.fixture")
local util = require("spec.support.util")
local full_disk = require("spec.support.full_disk")
local baseten = require("baseten")
local batchfile = require("baseten.batchfile")

local json = baseten.json
local MODEL = "deepseek-ai/DeepSeek-V3.1"
local quote, read = util.quote, util.read_file

local function write(path, text)
  local f = assert(io.open(path, "wb"))
  assert(f:write(text))
  assert(f:close())
end

local function input_of(n, prefix)
  local t = {}
  for i = 1, n do
    t[i] = json.encode({ custom_id = (prefix or "q") .. i, body = { model = MODEL,
      messages = { { role = "user", content = "question number " .. i } } } })
  end
  return table.concat(t, "\n") .. (n > 0 and "\n" or "")
end

-- The output's complete lines (decoded), and its cut last line or nil.
local function output_lines(path)
  local text = read(path) or ""
  local recs = {}
  for line in text:gmatch("([^\n]*)\n") do recs[#recs + 1] = assert(json.decode(line), line) end
  local cut = text:match("([^\n]+)$")
  return recs, cut
end

describe("baseten.batchfile", function()
  local srv, client, dir, input, output

  fixture.server(function(s) srv = s end)
  before_each(function()
    dir = util.tmpdir()
    input, output = dir .. "/in.jsonl", dir .. "/out.jsonl"
    client = baseten.new{ base_url = srv.url, max_retries = 0 }
  end)
  after_each(function()
    client:close()
    os.execute("rm -rf " .. quote(dir))
  end)

  -- batchfile.run with io.open filling up after `free` bytes under dir
  local function run_full(free, c)
    local fs = full_disk.install(dir, free)
    local ok, s, err, partial, which = pcall(batchfile.run, c or client, { input = input, output = output })
    fs.restore()
    assert(ok, s)
    return s, err, partial, which
  end

  it("a full disk stops the run with an error naming the output, claiming only what it wrote", function()
    write(input, input_of(130))
    local s, err, partial, which = run_full(32 * 1024)
    assert.is_nil(s)
    assert.equal("output", which)
    assert.equal("cannot write " .. output .. ": No space left on device", err)
    local recs, cut = output_lines(output)
    assert.is_true(#recs > 0 and #recs < 130, #recs .. " lines")
    assert.truthy(cut, "a full disk leaves a cut line")
    assert.equal(#recs, partial.succeeded, "succeeded counts the lines written whole, no more")
    -- the batch stopped: not every request was sent
    assert.is_true(#srv:requests() < 130, #srv:requests() .. " requests sent")
  end)

  it("a resume that cannot rewrite the output leaves it as it was", function()
    write(input, input_of(130))
    run_full(32 * 1024)
    local before = read(output)
    -- requests of the first run that were in flight when it stopped may
    -- still reach the server on a busy machine: this run's are marked
    local marked = baseten.new{ base_url = srv.url, max_retries = 0, headers = { ["X-Run"] = "resume" } }
    local function sent_by_resume()
      local n = 0
      for _, r in ipairs(srv:requests()) do
        if util.header(r, "x-run") == "resume" then n = n + 1 end
      end
      return n
    end
    local s, err, _, which = run_full(1000, marked) -- no room for the rewritten copy
    assert.is_nil(s)
    assert.equal("output", which)
    assert.matches("^cannot rewrite " .. output:gsub("%p", "%%%0") .. " %(left as it was%): ", err)
    assert.equal(before, read(output))
    assert.is_nil(io.open(output .. ".tmp", "rb"))
    assert.equal(0, sent_by_resume(), "nothing is sent when the output cannot be rewritten")
    marked:close()
    -- with room, the resume drops the cut line and sends only the rest
    local answered = #output_lines(output)
    s = assert(batchfile.run(client, { input = input, output = output }))
    assert.equal(0, s.status)
    assert.equal(answered, s.skipped)
    assert.equal(130 - answered, s.total)
    assert.equal(1, #s.dropped_lines)
    local recs, cut = output_lines(output)
    assert.is_nil(cut)
    assert.equal(130, #recs)
    local ids = {}
    for _, rec in ipairs(recs) do
      assert.is_nil(ids[rec.custom_id], rec.custom_id)
      ids[rec.custom_id] = true
    end
  end)

  it("on Windows, where rename does not replace a file, the resume still replaces the output", function()
    write(input, input_of(2))
    write(output, "cut") -- a cut line: the resume rewrites the output
    local real_rename, real_config = os.rename, package.config
    package.config = "\\" .. real_config:sub(2) -- luacheck: ignore 122
    os.rename = function(from, to) -- luacheck: ignore 122
      local f = io.open(to, "rb")
      if f then
        f:close()
        return nil, to .. ": File exists", 17
      end
      return real_rename(from, to)
    end
    local ok, s = pcall(batchfile.run, client, { input = input, output = output })
    os.rename, package.config = real_rename, real_config -- luacheck: ignore 122
    assert(ok, s)
    assert.equal(0, s.status)
    assert.equal(2, #output_lines(output))
    assert.is_nil(io.open(output .. ".tmp", "rb"))
  end)

  it("a failing close stops the run too", function()
    write(input, input_of(3))
    local real = io.open
    local s, err, _, which = batchfile.run(client, { input = input, output = output, open = function(path, mode)
      local f, why = real(path, mode)
      if f and mode == "ab" then
        return setmetatable({}, { __index = function(_, k)
          if k == "close" then return function() f:close() return nil, "Input/output error", 5 end end
          return function(_, ...) return f[k](f, ...) end
        end })
      end
      return f, why
    end })
    assert.is_nil(s)
    assert.equal("output", which)
    assert.equal("cannot write " .. output .. ": Input/output error", err)
  end)

  it("counts as already answered only the ids of the input", function()
    write(input, input_of(3))
    assert.equal(0, assert(batchfile.run(client, { input = input, output = output })).status)
    write(input, "")
    local s = assert(batchfile.run(client, { input = input, output = output }))
    assert.equal(0, s.skipped)
    assert.equal(0, s.total)
    write(input, input_of(2, "other") .. input_of(1))
    s = assert(batchfile.run(client, { input = input, output = output }))
    assert.equal(1, s.skipped)
    assert.equal(2, s.total)
    assert.equal(5, #output_lines(output))
  end)

  it("a directory as input or output is a clear error", function()
    local s, err, _, which = batchfile.run(client, { input = dir, output = output })
    assert.is_nil(s)
    assert.equal("input", which)
    assert.matches("^cannot read " .. dir:gsub("%p", "%%%0") .. ": ", err)
    write(input, input_of(1))
    s, err, _, which = batchfile.run(client, { input = input, output = dir })
    assert.is_nil(s)
    assert.equal("output", which)
    assert.matches("^cannot read " .. dir:gsub("%p", "%%%0") .. ": ", err)
    assert.equal(0, #srv:requests())
  end)
end)
