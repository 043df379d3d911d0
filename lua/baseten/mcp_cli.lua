--- The MCP side of the `baseten` command-line tool: `baseten mcp tools`,
-- `baseten mcp call` and `baseten chat --mcp`. Not a public module.
-- @module baseten.mcp_cli
local core = require("baseten.core")
local mcp = require("baseten.mcp")

local json = core.json
local M = {}

--- Splits a command line into words the way a shell would for plain
-- words, '...' and "..." (with \" and \\ inside double quotes); no
-- variables, globs or operators, and nothing is run by a shell.
-- @return the words, or nil, why
function M.split(s)
  local words, cur, i, quote, have = {}, {}, 1, nil, false
  while i <= #s do
    local c = s:sub(i, i)
    if quote == "'" then
      if c == "'" then quote = nil else cur[#cur + 1] = c end
    elseif quote == '"' then
      if c == '"' then quote = nil
      elseif c == "\\" and (s:sub(i + 1, i + 1) == '"' or s:sub(i + 1, i + 1) == "\\") then
        i = i + 1
        cur[#cur + 1] = s:sub(i, i)
      else cur[#cur + 1] = c end
    elseif c == "'" or c == '"' then
      quote, have = c, true
    elseif c:match("%s") then
      if have or #cur > 0 then words[#words + 1] = table.concat(cur) end
      cur, have = {}, false
    else
      cur[#cur + 1] = c
    end
    i = i + 1
  end
  if quote then return nil, "unbalanced " .. quote .. " in " .. s end
  if have or #cur > 0 then words[#words + 1] = table.concat(cur) end
  if words[1] == nil then return nil, "an empty MCP server command" end
  return words
end

--- Connects to `spec`: a URL (Streamable HTTP) or a command line (stdio).
-- The server's stderr goes to `log` when given.
-- @return the session, or nil, err (a string for a bad spec)
function M.connect(spec, opts)
  opts = opts or {}
  local o = { timeout = opts.timeout, log = opts.log }
  if spec:match("^https?://") then
    o.url, o.log = spec, nil
  else
    local words, why = M.split(spec)
    if not words then return nil, why end
    o.command = words
  end
  return mcp.connect(o)
end

--- `baseten mcp tools SERVER`: one line per tool, its name and the first
-- line of its description (or, with `as_json`, the list as JSON).
function M.list(session, out, as_json)
  local tools, err = session:list_tools()
  if not tools then return nil, err end
  if as_json then
    out:write(json.encode(tools), "\n")
    return true
  end
  local width = 0
  for _, t in ipairs(tools) do width = math.max(width, #tostring(t.name)) end
  for _, t in ipairs(tools) do
    local desc = type(t.description) == "string" and t.description:match("^[^\n]*") or ""
    out:write(("%-" .. width .. "s  %s"):format(tostring(t.name), desc):gsub("%s+$", ""), "\n")
  end
  return true
end

--- `baseten mcp call SERVER NAME [JSON]`: the result's text (or, with
-- `as_json`, the whole result). Returns true, or nil, err; a result with
-- isError is printed and returns false.
function M.call(session, name, args_text, out, as_json)
  local args = {}
  if args_text and args_text:match("%S") then
    local v, why = json.decode(args_text, { drop_nulls = true })
    if type(v) ~= "table" or v[1] ~= nil then
      return nil, "the arguments must be a JSON object" .. (why and (" (" .. why .. ")") or "")
    end
    args = v
  end
  local result, err = session:call_tool(name, args)
  if not result then return nil, err end
  if as_json then
    out:write(json.encode(result), "\n")
  else
    local text = require("baseten.mcp_tools").result_text(result)
    out:write(text, text:sub(-1) == "\n" and "" or "\n")
  end
  return not result.isError
end

--- The tools of every server in `specs` for run_tools, and the sessions
-- (to close). Two servers' tools of the same name get the server's number
-- as a prefix ("s2_name").
-- @return tools, nil, sessions; or nil, err, sessions
function M.tools(specs, opts)
  local all, sessions, seen = {}, {}, {}
  for i, spec in ipairs(specs) do
    local s, err = M.connect(spec, opts)
    if not s then return nil, err, sessions end
    sessions[#sessions + 1] = s
    local list, lerr = s:list_tools()
    if not list then return nil, lerr, sessions end
    local clash = false
    for _, t in ipairs(list) do clash = clash or seen[t.name] end
    local tools = s:tools{ prefix = clash and ("s" .. i .. "_") or nil }
    for _, t in ipairs(tools) do
      seen[t["function"].name] = true
      all[#all + 1] = t
    end
  end
  return all, nil, sessions
end

return M
