-- A stdio MCP server for the specs (run by lua5.4, no modules): it plays
-- one fault, named by arg[1], and otherwise answers like a small server
-- with an "echo" tool. arg[2], when given, is a file where it writes each
-- message it receives, one per line (the specs read it back).
--   ok             a well-behaved server
--   garbage        answers tools/call with a line that is not JSON
--   long           answers tools/call with a line of 2 MiB (over the specs' limit)
--   crash          exits (code 3) when tools/call arrives
--   silent         never answers tools/call
--   handshake_exit exits before answering initialize
--   rpc_error      answers tools/call with a JSON-RPC error -32602
--   unknown_id     answers tools/call with a response for an id never sent
--   huge_list      tools/list in 50 pages of 100 tools each
--   old_version    answers initialize with protocol 2024-11-05
--   stderr_flood   writes 4 MiB to stderr before answering tools/call
--   changing       after the first tools/call: notifications/tools/list_changed,
--                  and tools/list has a third tool, "added"
--   elicit         tools/call asks elicitation/create (a schema with
--                  defaults) and answers with the response line it got
--   pid            writes "pid N" (its process id) to the record file first
-- The echo tool: text "fail" gives isError, "big" 100000 bytes, "slow"
-- answers after 0.5 s.
local mode, record = arg[1] or "ok", arg[2]
local rec = record and io.open(record, "a")
local called = false
if mode == "pid" and rec then
  local stat = io.open("/proc/self/stat", "r")
  rec:write("pid ", stat and stat:read("*l"):match("^(%d+)") or "?", "\n")
  rec:flush()
  if stat then stat:close() end
end

local function send(s)
  io.stdout:write(s, "\n")
  io.stdout:flush()
end

local function result(id, r) send(('{"jsonrpc":"2.0","id":%s,"result":%s}'):format(id, r)) end

local function text(s) return ('{"content":[{"type":"text","text":"%s"}],"isError":false}'):format(s) end

local function tools_page(cursor)
  local page = tonumber(cursor or "0")
  local items = {}
  for i = 1, 100 do
    items[i] = ('{"name":"t%d_%d","description":"tool %d of page %d","inputSchema":{"type":"object"}}')
      :format(page, i, i, page)
  end
  local next_cursor = page < 49 and (',"nextCursor":"%d"'):format(page + 1) or ""
  return ('{"tools":[%s]%s}'):format(table.concat(items, ","), next_cursor)
end

local handlers = {}

function handlers.initialize(id)
  if mode == "handshake_exit" then os.exit(2) end
  local version = mode == "old_version" and "2024-11-05" or "2025-06-18"
  result(id, ('{"protocolVersion":"%s","capabilities":{"tools":{"listChanged":true}},'
    .. '"serverInfo":{"name":"fault","version":"1.0"}}'):format(version))
end

function handlers.ping(id) result(id, "{}") end

handlers["tools/list"] = function(id, line)
  if mode == "huge_list" then return result(id, tools_page(line:match('"cursor":"(%d+)"'))) end
  local added = (mode == "changing" and called) and ',{"name":"added","inputSchema":{"type":"object"}}' or ""
  result(id, '{"tools":[{"name":"echo","description":"echoes","inputSchema":{"type":"object",'
    .. '"properties":{"text":{"type":"string"}}}},{"name":"shout","description":"upper case",'
    .. '"inputSchema":{"type":"object","properties":{"text":{"type":"string"}}}}' .. added .. ']}')
end

local function json_string(v)
  return '"' .. v:gsub('[%c"\\]', function(c) return ("\\u%04x"):format(c:byte()) end) .. '"'
end

handlers["tools/call"] = function(id, line)
  called = true
  if mode == "changing" then send('{"jsonrpc":"2.0","method":"notifications/tools/list_changed"}') end
  if mode == "elicit" then
    send('{"jsonrpc":"2.0","id":"e1","method":"elicitation/create","params":{"message":"Your name?",'
      .. '"requestedSchema":{"type":"object","properties":{"name":{"type":"string"},'
      .. '"color":{"type":"string","default":"blue"},"n":{"type":"integer","default":3}}}}}')
    for reply in io.lines() do
      if reply:find('"id":"e1"', 1, true) then return result(id, text(json_string(reply):sub(2, -2))) end
    end
    return
  end
  if mode == "garbage" then return send("this is not json {") end
  if mode == "long" then return send(('{"jsonrpc":"2.0","id":%s,"result":"%s"}'):format(id, ("x"):rep(2 * 1048576))) end
  if mode == "crash" then os.exit(3) end
  if mode == "silent" then return end
  if mode == "rpc_error" then
    return send(('{"jsonrpc":"2.0","id":%s,"error":{"code":-32602,"message":"unknown tool: nope"}}'):format(id))
  end
  if mode == "unknown_id" then return result(tonumber(id) + 1000, text("who asked?")) end
  if mode == "stderr_flood" then
    local chunk = ("e"):rep(1023) .. "\n"
    for _ = 1, 4096 do io.stderr:write(chunk) end
    io.stderr:flush()
  end
  local arg_text = line:match('"text":"([^"]*)"') or ""
  if line:find('"name":"shout"', 1, true) then return result(id, text(arg_text:upper())) end
  if arg_text == "fail" then
    return result(id, '{"content":[{"type":"text","text":"it failed"}],"isError":true}')
  end
  if arg_text == "big" then return result(id, text(("y"):rep(100000))) end
  if arg_text == "slow" then os.execute("sleep 0.5") end
  result(id, text("echo: " .. arg_text))
end

for line in io.lines() do
  if rec then
    rec:write(line, "\n")
    rec:flush()
  end
  local method = line:match('"method":"([^"]+)"')
  local id = line:match('"id":(%d+)')
  if method and id and handlers[method] then
    handlers[method](id, line)
  elseif method and id then
    send(('{"jsonrpc":"2.0","id":%s,"error":{"code":-32601,"message":"method not found"}}'):format(id))
  end
end
