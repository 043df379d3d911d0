-- baseten.new{deployment = ..., environment = ...}: dedicated deployments
-- (issue 13). Nothing here reaches the network.
local baseten = require("baseten")
local util = require("spec.support.util")

describe("dedicated deployments", function()
  local clients = {}
  local function new(opts)
    local c = baseten.new(opts)
    clients[#clients + 1] = c
    return c
  end
  after_each(function()
    for _, c in ipairs(clients) do c:close() end
    clients = {}
  end)

  it("builds the deployment's base URL; environment defaults to production", function()
    assert.are.equal("https://model-abcd1234.api.baseten.co/environments/production/sync/v1",
                     new{ api_key = "k", deployment = "abcd1234" }.base_url)
    assert.are.equal("https://model-abcd1234.api.baseten.co/environments/staging/sync/v1",
                     new{ api_key = "k", deployment = "abcd1234", environment = "staging" }.base_url)
    assert.are.equal("https://model-q1_x-9.api.baseten.co/environments/my_env-2/sync/v1",
                     new{ api_key = "k", deployment = "q1_x-9", environment = "my_env-2" }.base_url)
  end)

  it("wins over BASETEN_BASE_URL, which is only a default", function()
    -- a child process, to set the variable
    local code = 'local c = require("baseten").new{api_key = "k", deployment = "abcd1234", model = "m"} '
      .. 'io.write(tostring(c)) c:close()'
    local _, out = util.run_lua(code, { env = "BASETEN_BASE_URL=http://127.0.0.1:9/v1", merge = true })
    assert.are.equal("baseten.client (https://model-abcd1234.api.baseten.co/environments/production/sync/v1, m)", out)
  end)

  it("raises with base_url as well", function()
    assert.has_error(function()
      baseten.new{ api_key = "k", deployment = "abcd1234", base_url = "https://example.com/v1" }
    end, "baseten.new: give deployment or base_url, not both")
  end)

  it("raises on an id or environment that is not a plain slug", function()
    local bad = { "", "abc/def", "abc.def", "abc?x=1", "a@b", "-abc", "abc def", "abc\n", "ab%2F",
                  "évian", string.rep("a", 129), 12345, true, {} }
    for _, id in ipairs(bad) do
      local ok, e = pcall(baseten.new, { api_key = "k", deployment = id })
      assert.is_false(ok, "accepted deployment " .. tostring(id))
      assert.truthy(tostring(e):find("deployment must be a deployment id", 1, true), tostring(e))
      ok, e = pcall(baseten.new, { api_key = "k", deployment = "abcd1234", environment = id })
      assert.is_false(ok, "accepted environment " .. tostring(id))
      assert.truthy(tostring(e):find("environment must be an environment name", 1, true), tostring(e))
    end
  end)

  it("raises on environment without deployment", function()
    assert.has_error(function()
      baseten.new{ api_key = "k", environment = "production" }
    end, "baseten.new: environment is only for a deployment")
  end)

  it("the error points at the caller", function()
    local ok, e = pcall(function() baseten.new{ api_key = "k", deployment = "a/b" } end)
    assert.is_false(ok)
    assert.truthy(tostring(e):find("deployment_spec.lua", 1, true), tostring(e))
  end)

  it("without a key, a call fails with an authentication error and sends nothing", function()
    local c = new{ api_key = "", deployment = "abcd1234" }
    local resp, err = c:chat{ model = "m", messages = { { role = "user", content = "hi" } } }
    assert.is_nil(resp)
    assert.are.equal("authentication", err.kind)
    assert.are.equal(0, err.attempts)
    local s, serr = c:stream{ model = "m", messages = { { role = "user", content = "hi" } } }
    assert.is_nil(s)
    assert.are.equal("authentication", serr.kind)
    local done
    c:start({ model = "m", messages = { { role = "user", content = "hi" } } },
            { on_done = function(_, e) done = e end })
    while c:poll(0) > 0 do end
    assert.are.equal("authentication", done.kind)
  end)
end)
