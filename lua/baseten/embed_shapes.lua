--- The shapes of embedding calls (internal, for baseten.embed): argument
-- checks, how inputs split into requests, and for each kind of call
-- (`embed` over `/embeddings`, `rerank` over BEI's `/rerank`, `classify`
-- over BEI's `/predict`) the request body of a run of inputs and how a
-- decoded answer fills the results. A parse returns nil, or why the
-- answer is not what was expected (the caller makes it an
-- `invalid_response`).
-- @module baseten.embed_shapes
local core = require("baseten.core")

local vector = core.vector
local json = core.json

local M = {}

-- Each check raises at `level`, counted from its caller (1: the caller).

local function positive_int(opts, name, where, level)
  local v = opts[name]
  if v ~= nil and (type(v) ~= "number" or v < 1 or v % 1 ~= 0 or v == math.huge) then
    error("baseten: " .. where .. ": " .. name .. " must be a positive integer", level + 1)
  end
  return v
end

--- Checks the options of an embedding call (raising at `level` counted
-- from the caller); returns them (a table, never nil). The call options
-- (`timeout` as a per-request limit, `max_retries`, `headers`) are checked
-- by `baseten.options.call`.
function M.check_options(opts, where, level)
  level = level + 1
  if opts == nil then return {} end
  if type(opts) ~= "table" then error("baseten: " .. where .. " options must be a table", level) end
  for _, k in ipairs({ "batch_size", "max_chars_per_request", "concurrency", "dimensions" }) do
    positive_int(opts, k, where, level)
  end
  for _, k in ipairs({ "hedge_delay", "timeout" }) do
    local v = opts[k]
    if v ~= nil and (type(v) ~= "number" or v ~= v or v <= 0 or v > 2147483) then
      error("baseten: " .. where .. ": " .. k .. " must be a number of seconds > 0", level)
    end
  end
  for _, k in ipairs({ "on_progress", "on_done", "on_batch" }) do
    if opts[k] ~= nil and type(opts[k]) ~= "function" then
      error("baseten: " .. where .. ": " .. k .. " must be a function", level)
    end
  end
  local f = opts.encoding_format
  if f ~= nil and f ~= "float" and f ~= "base64" then
    error("baseten: " .. where .. ": encoding_format must be \"float\" or \"base64\"", level)
  end
  if opts.model ~= nil and type(opts.model) ~= "string" then
    error("baseten: " .. where .. ": model must be a string", level)
  end
  return opts
end

--- The inputs as an array of strings (a string alone is an array of one);
-- raises at `level` counted from the caller.
function M.check_inputs(inputs, where, name, level)
  level = level + 1
  if type(inputs) == "string" then return { inputs } end
  if type(inputs) ~= "table" then
    error("baseten: " .. where .. " expects a string or an array of strings", level)
  end
  local n = #inputs
  for i = 1, n do
    if type(inputs[i]) ~= "string" then
      error(("baseten: %s: %s[%d] is a %s, not a string"):format(where, name, i, type(inputs[i])), level)
    end
  end
  if next(inputs) ~= nil and n == 0 then
    error("baseten: " .. where .. " expects an array of strings", level)
  end
  return inputs
end

--- Splits inputs 1..n into requests: consecutive runs of at most
-- `batch_size` inputs and `max_chars` characters (bytes); an input longer
-- than `max_chars` goes alone. Returns an array of `{first, last}`.
function M.split(items, batch_size, max_chars)
  local groups, first, chars = {}, 1, 0
  local n = #items
  for i = 1, n do
    local len = #items[i]
    if i > first and (i - first >= batch_size or (max_chars and chars + len > max_chars)) then
      groups[#groups + 1] = { first = first, last = i - 1 }
      first, chars = i, 0
    end
    chars = chars + len
  end
  if n > 0 then groups[#groups + 1] = { first = first, last = n } end
  return groups
end

-- One embedding of a response: a vector, or nil and why.
local function to_vector(e)
  if type(e) == "string" then return vector.frombase64(e) end
  if type(e) ~= "table" then return nil, "an embedding is a " .. type(e) end
  local ok, v = pcall(vector.from, e)
  if ok then return v end
  return nil, tostring(v):gsub("^.-baseten%.vector%.from: ", "")
end

-- The kinds of call: the path, the request body of inputs first..last,
-- and how a decoded response fills the results. Both get the call's
-- context: `items`, `opts`, `query` (rerank), `model` (the client's),
-- `results` (filled by index), `dims` (the dimension seen first).
local KINDS = {}
M.KINDS = KINDS

KINDS.embed = {
  path = "/embeddings",
  body = function(ctx, g)
    local o = ctx.opts
    local input = json.array()
    for i = g.first, g.last do input[#input + 1] = ctx.items[i] end
    return { input = input, model = o.model or ctx.model, dimensions = o.dimensions,
             encoding_format = o.encoding_format or "base64" }
  end,
  parse = function(ctx, g, doc)
    local data = type(doc) == "table" and doc.data
    local count = g.last - g.first + 1
    if type(data) ~= "table" or #data ~= count then
      return "expected " .. count .. " embeddings in data, got " .. (type(data) == "table" and #data or "none")
    end
    local out, seen = ctx.results, {}
    for pos, d in ipairs(data) do
      local idx = type(d) == "table" and d.index
      if idx == nil then idx = pos - 1 end
      if type(idx) ~= "number" or idx % 1 ~= 0 or idx < 0 or idx >= count or seen[idx] then
        return "data[" .. pos .. "].index is missing, repeated or out of range"
      end
      seen[idx] = true
      local v, why = to_vector(type(d) == "table" and d.embedding)
      if not v then return "data[" .. pos .. "].embedding: " .. why end
      local dims = ctx.dims or #v
      if #v ~= dims then
        return ("embeddings of different dimensions in one call: %d and %d"):format(dims, #v)
      end
      ctx.dims = dims
      out[g.first + idx] = v
    end
    return nil
  end,
}

KINDS.rerank = {
  path = "/rerank", bei = true,
  body = function(ctx, g)
    local o = ctx.opts
    local texts = json.array()
    for i = g.first, g.last do texts[#texts + 1] = ctx.items[i] end
    return { query = ctx.query, texts = texts, return_text = o.return_text and true or nil,
             raw_scores = o.raw_scores, truncate = o.truncate, model = o.model }
  end,
  parse = function(ctx, g, doc)
    local count = g.last - g.first + 1
    if type(doc) ~= "table" or #doc ~= count then return "expected " .. count .. " scores" end
    for pos, r in ipairs(doc) do
      local idx = type(r) == "table" and r.index
      if type(idx) ~= "number" or idx % 1 ~= 0 or idx < 0 or idx >= count or type(r.score) ~= "number"
          or r.score ~= r.score then
        return "result " .. pos .. " is not {index, score} in range"
      end
      ctx.results[g.first + idx] = { index = g.first + idx, score = r.score, text = r.text }
    end
    return nil
  end,
}

KINDS.classify = {
  path = "/predict", bei = true,
  body = function(ctx, g)
    local o = ctx.opts
    local inputs = json.array()
    for i = g.first, g.last do inputs[#inputs + 1] = json.array({ ctx.items[i] }) end
    return { inputs = inputs, raw_scores = o.raw_scores, truncate = o.truncate, model = o.model }
  end,
  parse = function(ctx, g, doc)
    local count = g.last - g.first + 1
    if type(doc) ~= "table" or #doc ~= count then return "expected " .. count .. " results" end
    for pos, labels in ipairs(doc) do
      if type(labels) ~= "table" then return "result " .. pos .. " is not an array" end
      local list = {}
      for j, l in ipairs(labels) do
        if type(l) ~= "table" or type(l.label) ~= "string" or type(l.score) ~= "number" then
          return "result " .. pos .. "[" .. j .. "] is not {label, score}"
        end
        list[j] = { label = l.label, score = l.score }
      end
      ctx.results[g.first + pos - 1] = list
    end
    return nil
  end,
}

return M
