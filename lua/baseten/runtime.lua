--- What one client has in flight (internal): its libcurl engine, its key,
-- its running usage totals, the tasks `poll` drives and the transfers
-- left to finish in the background. Every module reaches a client's
-- runtime through `runtime.of(client)` and its methods; none reads another
-- module's fields.
--
--     local rt = runtime.of(client)
--     rt:closed()              -- the client was closed
--     rt:request(wire)         -- a transfer on the engine (see baseten.request)
--     rt:perform(wait)         -- runs the engine, waiting at most `wait` s
--     rt:count(usage)          -- one response ended: add it to the totals
--     rt:add(task)             -- poll drives it from now on (see baseten.task)
--     rt:poll(timeout)         -- drives every task (client:poll)
--
-- @module baseten.runtime
local core = require("baseten.core")
local errors = require("baseten.errors")

local M = {}

local Runtime = {}
Runtime.__index = Runtime
M.Runtime = Runtime

-- A client holds its runtime under this key (a table: no name to collide
-- with, and a strong reference, so a client and its runtime, tasks and
-- calls, which point back at it, are one cycle the collector frees on
-- every Lua; a weak table client -> runtime would not be freed on 5.1
-- while a task pointed back at its key).
local KEY = setmetatable({}, { __tostring = function() return "baseten.runtime" end })
-- runtime -> key: weak, and off the objects, so that no dump of a client or
-- runtime (inspect, vim.print, a debugger) shows it.
local secrets = setmetatable({}, { __mode = "k" })

--- Usage totals with every count at 0.
function M.zero_usage()
  return { requests = 0, prompt_tokens = 0, completion_tokens = 0, reasoning_tokens = 0, cached_tokens = 0 }
end

--- Makes the runtime of `client` (baseten.new does, once).
-- @tparam table client
-- @tparam table fields `key` (or nil), `keyless` (sends no key on purpose),
--   `headers` (the client's extra header lines), `log` (function(event) or nil)
function M.new(client, fields)
  local rt = setmetatable({
    engine = core.engine(),
    extra = fields.headers or {},
    keyless = fields.keyless or false,
    usage_totals = M.zero_usage(),
    tasks = {},      -- what poll drives, in start order
    lingering = {},  -- transfers finishing after their stream's [DONE]
    deferred = {},   -- what finalizers left to run (see `defer`)
    activity = 0,    -- a count of chunks and completions, to see whether a poll served anything
    is_closed = false,
    prices = fields.prices, -- model -> {prompt, completion, cached} per million tokens, or nil
    borrowed = setmetatable({}, { __mode = "k" }), -- runtimes of fallback clients its calls moved to
  }, Runtime)
  if rt.prices then rt.usage_totals.cost = 0 end
  secrets[rt] = fields.key
  local log = fields.log
  if log then
    -- every string a log event carries is scrubbed of the key: a server may
    -- echo it back (in the request id), and the URL is the user's
    rt.logger = function(event)
      for k, v in pairs(event) do event[k] = errors.scrub(v, secrets[rt]) end
      return log(event)
    end
  end
  rawset(client, KEY, rt)
  return rt
end

--- The runtime of a client (raises for anything else, at the caller's caller).
function M.of(client)
  local rt = type(client) == "table" and rawget(client, KEY) or nil
  if rt == nil then error("baseten: expected a client made by baseten.new, got " .. type(client), 3) end
  return rt
end

--- The API key, or nil: for the Authorization header and for scrubbing
-- it from every text that leaves the library.
function Runtime:secret()
  return secrets[self]
end

--- Whether no key is sent on purpose (`api_key = false`).
function Runtime:sends_no_key()
  return self.keyless
end

--- The client's extra header lines (`headers` of `baseten.new`).
function Runtime:headers()
  return self.extra
end

--- Whether there is a logger (so the hot path builds no event without one).
function Runtime:logging()
  return self.logger ~= nil
end

--- Hands `event` to the client's logger; a raising logger never breaks a request.
function Runtime:emit(event)
  local log = self.logger
  if log then pcall(log, event) end
end

--- Whether the client was closed (also the field `is_closed`, which
-- baseten.stream reads on its per-chunk path instead of this call).
function Runtime:closed()
  return self.is_closed
end

--- Starts a transfer on the engine (see `baseten.request.wire`). Callers
-- check `closed()` first: a closed engine raises.
function Runtime:request(wire)
  return self.engine:request(wire)
end

--- A call of this runtime's tasks moved to `other` (a fallback client):
-- `poll` runs that engine too from now on.
function Runtime:borrow(other)
  if other ~= self then self.borrowed[other] = (self.borrowed[other] or 0) + 1 end
end

--- That call ended (or moved on): `poll` stops running `other`'s engine
-- once no call of this runtime is on it.
function Runtime:unborrow(other)
  local n = self.borrowed[other]
  if n == nil then return end
  self.borrowed[other] = n > 1 and n - 1 or nil
end

-- Runs the engines of the fallback clients this runtime's calls moved to
-- (their own engines only: never theirs in turn).
local function perform_borrowed(self)
  for other in pairs(self.borrowed) do
    if not other.is_closed then other.engine:perform(0) end
  end
end

-- The most seconds poll waits on its own engine while a fallback client's
-- engine also has transfers of it (a wait there would not wake it).
M.BORROWED_WAIT = 0.01

--- Runs the engine: reads what the sockets hold, waiting at most `wait`
-- seconds for something to arrive. Does nothing on a closed client.
function Runtime:perform(wait)
  self:run_deferred()
  if self.is_closed then return end
  if next(self.borrowed) == nil then return self.engine:perform(wait) end
  self.engine:perform(math.min(wait, M.BORROWED_WAIT))
  perform_borrowed(self)
end

--- Notes that something happened (a chunk handed out, a call ended), so
-- `poll` does not wait on the network in a poll that served something.
function Runtime:touch()
  self.activity = self.activity + 1
end

-- A token count of a usage table, or 0 (absent, null, not a number).
local function count(t, k)
  local v = type(t) == "table" and t[k]
  return type(v) == "number" and v or 0
end

--- Whether the client was given `prices` (so a response's model is
-- worth finding for its cost).
function Runtime:priced()
  return self.prices ~= nil
end

-- The cost of one response's usage at `price` (per million tokens):
-- cached prompt tokens at `cached` (else at `prompt`).
local function cost_of(usage, price)
  local p, c = count(usage, "prompt_tokens"), count(usage, "completion_tokens")
  local cached = math.min(count(usage.prompt_tokens_details, "cached_tokens"), p)
  local pp, cp = tonumber(price.prompt) or 0, tonumber(price.completion) or 0
  local kp = tonumber(price.cached) or pp
  return ((p - cached) * pp + cached * kp + c * cp) / 1e6
end

--- One response ended: adds it to the usage totals (`client:usage()`).
-- Every response passes here exactly once (see `baseten.request`).
-- @param usage the response's `usage` table, or nil
-- @tparam[opt] string model the model it is priced as (with `prices`)
function Runtime:count(usage, model)
  local u = self.usage_totals
  u.requests = u.requests + 1
  if type(usage) == "table" then
    u.prompt_tokens = u.prompt_tokens + count(usage, "prompt_tokens")
    u.completion_tokens = u.completion_tokens + count(usage, "completion_tokens")
    -- the details are absent from most responses: no call for those
    local cd, pd = usage.completion_tokens_details, usage.prompt_tokens_details
    if cd ~= nil then u.reasoning_tokens = u.reasoning_tokens + count(cd, "reasoning_tokens") end
    if pd ~= nil then u.cached_tokens = u.cached_tokens + count(pd, "cached_tokens") end
    local price = self.prices and model ~= nil and self.prices[model]
    if type(price) == "table" then u.cost = u.cost + cost_of(usage, price) end
  end
  if self.counted then self.counted(usage) end
end

--- Calls `f(usage)` after each `count` (for specs and tools that watch
-- every response end); nil removes it.
function Runtime:on_count(f)
  self.counted = f
end

--- A copy of the usage totals; `reset` zeroes them after reading.
function Runtime:usage(reset)
  self:run_deferred()
  local copy = {}
  for k, v in pairs(self.usage_totals) do copy[k] = v end
  if reset then
    self.usage_totals = M.zero_usage()
    if self.prices then self.usage_totals.cost = 0 end
  end
  return copy
end

--- The most seconds a transfer may go on finishing after its stream ended.
M.LINGER = 5

--- Keeps a transfer whose stream got its `[DONE]` until its body ends, so
-- that curl can reuse the connection (closing it now would drop it); it is
-- closed at a later `sweep`, or after `LINGER` seconds.
function Runtime:linger(t)
  if t:state() == "running" and not self.is_closed then self.engine:perform(0) end
  if t:state() ~= "running" then
    t:close()
    return
  end
  local list = self.lingering
  list[#list + 1] = { t = t, deadline = core.now() + M.LINGER }
end

--- Runs `f` at the runtime's next call (sweep, perform, usage, close),
-- not now: for finalizers on LuaJIT, which must run no pairs() loop and
-- no user callback. Inside a finalizer LuaJIT records no trace, and a
-- pairs() loop the JIT compiled whose end is first reached there (the
-- logger's scrub of an event, a user's logger, the mending of held
-- chunks) spins forever: before upstream's fix in lj_trace_exit (a JLOOP
-- dispatches to the original instruction "to ensure forward progress"),
-- which Debian 12's 2.1.0~beta3+git20220320 lacks, every exit of that
-- trace enters it again. It hung issue 22's spec of a stream left by
-- `break` about once in 20 runs. No loop and no call here.
function Runtime:defer(f)
  local list = self.deferred
  list[#list + 1] = f
end

--- Runs what finalizers deferred, in order (a raising one does not stop
-- the others).
function Runtime:run_deferred()
  local list = self.deferred
  if list[1] == nil then return end
  self.deferred = {} -- a finalizer run meanwhile defers into the new list
  for i = 1, #list do pcall(list[i]) end
end

--- Closes the lingering transfers that have ended (or waited too long).
function Runtime:sweep()
  self:run_deferred()
  local list = self.lingering
  if #list == 0 then return end
  local now = core.now()
  for i = #list, 1, -1 do
    local e = list[i]
    if e.t:state() ~= "running" or now > e.deadline then
      e.t:close()
      table.remove(list, i)
    end
  end
end

--- `poll` drives `task` from now on (see `baseten.task` for what a task is).
function Runtime:add(task)
  local list = self.tasks
  list[#list + 1] = task
end

--- `poll` no longer drives `task` (a task removes itself when it ends).
function Runtime:remove(task)
  local list = self.tasks
  for i = #list, 1, -1 do
    if list[i] == task then table.remove(list, i) end
  end
end

--- The number of tasks not yet ended.
function Runtime:pending()
  return #self.tasks
end

local function copy(list)
  local out = {}
  for i, h in ipairs(list) do out[i] = h end
  return out
end

-- A library error inside one task's step: it ends that task (the error
-- goes out of poll once, boxed); the other tasks go on.
local function contain(task, e)
  pcall(task.abort, task, "baseten: internal error: " .. tostring(e))
  return { err = e }
end

-- Steps every task once (over a copy: an ending task leaves the list).
-- Returns the first error (boxed), after every task had its turn.
local function serve(list)
  local first = nil
  for _, task in ipairs(copy(list)) do
    if not task:done() then
      local ok, e = pcall(task.step, task)
      if not ok then e = contain(task, e) end
      if first == nil then first = e end
    end
  end
  return first
end

local function next_wait(list, timeout)
  local now = core.now()
  for _, task in ipairs(list) do
    local due = task:next_due()
    if due then timeout = math.min(timeout, math.max(due - now, 0)) end
  end
  return timeout
end

-- What tasks wait on besides the engine's transfers (an MCP call's
-- `wait_fds`: a child's pipes, its session engine's sockets), or nil.
local function extra_fds(list)
  local fds
  for _, task in ipairs(list) do
    local f = task.wait_fds and task:wait_fds()
    for _, v in ipairs(f or {}) do
      fds = fds or {}
      fds[#fds + 1] = v
    end
  end
  return fds
end

local function on_network(list)
  for _, task in ipairs(list) do
    if task:on_network() then return true end
  end
  return false
end

--- Ends every task still pending as canceled. Returns the first callback
-- error (boxed).
function Runtime:abort_all(message)
  local first = nil
  for _, task in ipairs(copy(self.tasks)) do
    local ok, e = pcall(task.abort, task, message)
    if not ok then e = { err = e } end
    if first == nil then first = e end
  end
  return first
end

--- Drives every task: serves what is buffered; reads what the sockets hold
-- (never waiting) and serves that; waits for the network (at most
-- `timeout` s, or until a task's next due time) only when neither gave
-- anything. Returns the number of tasks still pending, or raises the first
-- error a task's callback (or step) raised, once, after every task had its
-- turn. (engine:perform(t) waits even after it read data, so it must not
-- be the first read.)
function Runtime:poll(timeout)
  local list = self.tasks
  if #list == 0 then return 0 end
  local first
  if not self.is_closed then
    self:sweep()
    local before = self.activity
    first = serve(list)
    if first == nil and #list > 0 and not self.is_closed and on_network(list) then
      self.engine:perform(0)
      perform_borrowed(self)
      first = serve(list)
    end
    if first == nil and #list > 0 and self.activity == before and not self.is_closed then
      local wait = next_wait(list, timeout)
      if next(self.borrowed) ~= nil then wait = math.min(wait, M.BORROWED_WAIT) end
      if wait > 0 then
        if on_network(list) then
          self.engine:perform(wait, extra_fds(list))
          perform_borrowed(self)
        else
          -- only timers are due: nothing for curl to wait on, so sleep
          -- (else drain and poll(t) loops would spin until it is due)
          core.sleep(wait)
        end
        first = serve(list)
      end
    end
  end
  -- the client was closed (maybe by a callback): what is left ends here
  if self.is_closed and #list > 0 then
    local e = self:abort_all("the client was closed")
    if first == nil then first = e end
  end
  if first ~= nil then error(first.err, 0) end
  return #list
end

--- Closes the engine and every transfer on it. Idempotent. Tasks still
-- pending end as canceled at the next poll.
function Runtime:close()
  self:run_deferred()
  if self.is_closed then return end
  self.is_closed = true
  self.lingering = {}
  self.engine:close()
end

return M
