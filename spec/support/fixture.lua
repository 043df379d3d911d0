-- spec/support/fixture.lua: the test server, client and request pieces
-- that many spec blocks set up alike.
--
--   local fixture = require("spec.support.fixture")
--   describe("...", function()
--     local srv, client
--     fixture.client({ api_key = "k", model = "m", max_retries = 0 },
--                    function(s, c) srv, client = s, c end)
--     ...
--   end)
--
--   fixture.server(set)          -- a test server for the block; reset before each test
--   fixture.client(opts, set)    -- that, and a new client per test, closed after it
--   fixture.tls_front(set)       -- a test server and nginx with TLS before it, for the block
--   fixture.msgs(text)           -- { { role = "user", content = text } }
--   fixture.weather_tool(handler) -- a get_weather tool taking { city = string }
--   fixture.sse_events(deltas, finish) -- a streamed reply's events, one string each
--
-- The hooks go into the describe block that calls these (busted's own
-- setup, teardown, before_each and after_each, in the order they are
-- called: a spec's after_each registered before fixture.client runs
-- before the client is closed).
local busted = require("busted")
local baseten = require("baseten")
local server = require("spec.support.server")

local M = {}

--- In the calling describe block: a test server started in setup and
-- stopped in teardown, reset before each test. `set(srv)` gets it once
-- it runs.
function M.server(set)
  local srv
  busted.setup(function()
    srv = server.start()
    set(srv)
  end)
  busted.teardown(function()
    if srv then srv:stop() end
  end)
  busted.before_each(function()
    srv:reset()
  end)
end

--- As `server`, and before each test a new client of the options `opts`
-- (a table copied, `base_url` set to the server's), closed after the test.
-- `set(srv, client)` gets each new pair.
function M.client(opts, set)
  local srv, client
  M.server(function(s)
    srv = s
    set(srv, nil)
  end)
  busted.before_each(function()
    local o = { base_url = srv.url }
    for k, v in pairs(opts) do o[k] = v end
    client = baseten.new(o)
    set(srv, client)
  end)
  busted.after_each(function()
    client:close()
  end)
end

--- In the calling describe block: a test server and nginx with TLS in
-- front of it (spec/support/tls.lua; check tls.available() first),
-- started in setup and stopped in teardown. `set(srv, front)` gets them.
function M.tls_front(set)
  local srv, front
  busted.setup(function()
    srv = server.start()
    front = require("spec.support.tls").start{ upstream = srv.port }
    set(srv, front)
  end)
  busted.teardown(function()
    if front then front:stop() end
    if srv then srv:stop() end
  end)
end

--- One user message, as a `messages` array.
function M.msgs(text)
  return { { role = "user", content = text } }
end

M.WEATHER_PARAMS = {
  type = "object", properties = { city = { type = "string" } }, required = { "city" },
}

--- A get_weather tool (one required string argument, `city`) whose
-- handler is `handler`.
function M.weather_tool(handler)
  return baseten.tool{ name = "get_weather", description = "Current weather in a city",
                       parameters = M.WEATHER_PARAMS, handler = handler }
end

--- spec/support/server.lua's sse_events: the events of a streamed chat
-- reply (role, one chunk per delta, a string being content; finish_reason
-- `finish`; [DONE]).
M.sse_events = server.sse_events

return M
