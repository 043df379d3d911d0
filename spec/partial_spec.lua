-- Specs for baseten.json.partial (csrc/jpartial.c, jpartial_lua.c), the resumable JSON parser.
-- Runs on Lua 5.1 to 5.4 and LuaJIT, so strings use decimal escapes ("\195\169").
local json = require("baseten").json
local util = require("spec.support.util")

-- Under valgrind or constant GC (make valgrind, make sanitize) every 7th split point: the same
-- code paths, a seventh of the work; make test checks them all.
local SPLIT_STEP = (os.getenv("BASETEN_VALGRIND") or os.getenv("BASETEN_GC_TORTURE")) and 7 or 1

-- Deep equality that also tells the JSON array mark apart from none, and
-- integers from floats where the Lua has both.
local function same(a, b)
  return util.json_same(a, b, true)
end

-- An object whose finalizer is fn: a table on 5.2+, a proxy on 5.1 and LuaJIT.
local function finalized(fn)
  if newproxy then
    local u = newproxy(true)
    getmetatable(u).__gc = fn
    return u
  end
  return setmetatable({}, { __gc = fn })
end

-- Feeds `piece` to p again and again, with a GC step at every allocation,
-- each time after making an object whose finalizer calls on_gc(feeding)
-- (feeding: whether p:feed is running then), until done() or 5000 feeds.
-- Returns the last feed's results, as a table.
local function feed_under_gc(p, piece, on_gc, done)
  local feeding, res
  local pause = collectgarbage("setpause", 0) -- a GC step at every allocation
  local stepmul = collectgarbage("setstepmul", 1000)
  for _ = 1, 5000 do
    finalized(function() on_gc(feeding) end)
    feeding = true
    local v, e = p:feed(piece) -- nothing allocates between the flag and the call
    feeding = false
    res = { v, e }
    if done() then break end
  end
  collectgarbage("setpause", pause)
  collectgarbage("setstepmul", stepmul)
  return res
end

-- Every member of the snapshot s is in the final value f: a finished scalar
-- equal, a string a prefix of f's, a table consistent again.
local function consistent(s, f)
  if type(s) == "string" then return type(f) == "string" and f:sub(1, #s) == s end
  if type(s) ~= "table" then return s == f end
  if type(f) ~= "table" then return false end
  for k, v in pairs(s) do
    if not consistent(v, f[k]) then return false end
  end
  return true
end

local function feed_pieces(text, cuts, opts)
  local p, at, snap, err = json.partial(opts), 1, nil, nil -- luacheck: ignore 311
  for _, c in ipairs(cuts) do
    snap, err = p:feed(text:sub(at, c))
    at = c + 1
    if err then return nil, err, p end
  end
  return snap, nil, p
end

local corpus = {
  '{"mood":"happy","say":"Hello th\\u00e9re \\ud83d\\ude00 w\195\169!","n":[1,2.5,-3e2,true,false,null,{"a":null}]}',
  '[1, [2, [3, {"x": "y"}]], "", {}, []]',
  '  "abc"  ',
  "123",
  "-0.25e-3",
  "9007199254740993",
  '{"file":"foo.lua","steps":[{"line":3,"text":"local x = 1"},{"line":9,"text":"return x"}]}',
  '{"\\u0000":"\\u0000","a\\"b":"\\\\\\/\\b\\f\\n\\r\\t"}',
}

local invalid = {
  "[1 2]", '{"a":1,}', "01", "1.", "[tru]", "truex", '"\\uD800"', '"\\uDC00x"', '"a\1"', '"\195\40"',
  '{"a" 1}', "[1]]", '"\\x"', '"\\u12G4"', "\128", "[", '{"a":"b', "", "-",
}

describe("baseten.json.partial", function()
  it("at every split point, each snapshot is consistent and the result is json.decode's", function()
    for _, text in ipairs(corpus) do
      local want = assert(json.decode(text, { drop_nulls = true }))
      for k = 0, #text, SPLIT_STEP do
        local p = json.partial()
        local s1, e1 = p:feed(text:sub(1, k))
        assert.is_nil(e1)
        if s1 ~= nil then assert.is_true(consistent(s1, want), text .. " cut at " .. k) end
        local s2, e2 = p:feed(text:sub(k + 1))
        assert.is_nil(e2)
        if type(s1) == "table" then assert.are.equal(s1, s2) end -- one live table
        assert.is_true(same(assert(p:result()), want), text .. " cut at " .. k)
      end
    end
  end)

  it("in 1-byte pieces, every snapshot is consistent, and the live table is the same object", function()
    for _, text in ipairs(corpus) do
      local want = json.decode(text, { drop_nulls = true })
      local p, first = json.partial(), nil
      for i = 1, #text do
        local snap, err = p:feed(text:sub(i, i))
        assert.is_nil(err)
        if snap ~= nil then assert.is_true(consistent(snap, want), text .. " at byte " .. i) end
        if type(snap) == "table" then
          first = first or snap
          assert.are.equal(first, snap)
        end
      end
      assert.is_true(same(p:result(), want))
    end
  end)

  it("shows an unfinished string, but not an unfinished number or literal", function()
    local p = json.partial()
    assert.are.same({ say = "Hel" }, p:feed('{"say":"Hel'))
    local snap = p:feed('lo","n":12')
    assert.are.same({ say = "Hello" }, snap)
    p:feed("3")
    assert.are.same({ say = "Hello" }, snap) -- 123 could go on: 1234
    p:feed(',"ok":tr')
    assert.are.same({ say = "Hello", n = 123 }, snap)
    p:feed("u")
    assert.are.same({ say = "Hello", n = 123 }, snap)
    p:feed("e}")
    assert.are.same({ say = "Hello", n = 123, ok = true }, snap)
  end)

  it("shows a member once its name is complete and its value has begun", function()
    local p = json.partial()
    local snap = p:feed('{"mo')
    assert.are.same({}, snap)
    p:feed('od":')
    assert.is_nil(snap.mood)
    p:feed('"')
    assert.are.equal("", snap.mood)
    p:feed('x", "list": [')
    assert.are.same({ mood = "x", list = {} }, snap)
  end)

  it("splits inside a UTF-8 sequence show only whole characters", function()
    local text = '{"say":"h\195\169 \240\159\152\128!"}'
    local p = json.partial()
    local seen = {}
    for i = 1, #text do
      local snap = p:feed(text:sub(i, i))
      if snap and snap.say then seen[#seen + 1] = snap.say end
    end
    for _, s in ipairs(seen) do
      assert.is_truthy(json.encode(s)) -- encode refuses invalid UTF-8
    end
    assert.are.same({ "", "h", "h", "h\195\169", "h\195\169 ", "h\195\169 ", "h\195\169 ", "h\195\169 " }, {
      seen[1], seen[2], seen[3], seen[4], seen[5], seen[6], seen[7], seen[8],
    })
    assert.are.equal("h\195\169 \240\159\152\128!", p:result().say)
  end)

  it("splits inside a \\u escape pair wait for the pair", function()
    local text = '["\\ud83d\\ude00"]'
    for k = 1, #text - 1 do
      local p = json.partial()
      local snap = p:feed(text:sub(1, k))
      -- the pair ends at byte 14: before that the string shows nothing of it
      if k < 2 then assert.is_nil(snap[1])
      elseif k < 14 then assert.are.equal("", snap[1]) else assert.are.equal("\240\159\152\128", snap[1]) end
      p:feed(text:sub(k + 1))
      assert.are.equal("\240\159\152\128", p:result()[1])
    end
  end)

  it("fails invalid JSON at the byte json.decode names, under any split, and stays failed", function()
    for _, text in ipairs(invalid) do
      local _, derr = json.decode(text, { drop_nulls = true })
      assert.is_string(derr)
      for k = 0, #text do
        local _, err, p = feed_pieces(text, { k, #text })
        local r, rerr = p:result()
        assert.is_nil(r)
        assert.are.equal(derr, err or rerr, text .. " cut at " .. k)
        if err then
          local again, err2 = p:feed("[")
          assert.is_nil(again)
          assert.are.equal(err, err2)
        end
      end
    end
  end)

  it("reports text after the root value, a lone surrogate and depth with the byte offset", function()
    local _, e1 = json.partial():feed('{"a":1} x')
    assert.matches("at byte 9", e1)
    local _, e2 = json.partial():feed('"\\udc00"')
    assert.matches("lone surrogate.*at byte 2", e2)
    local _, e3 = json.partial({ max_depth = 2 }):feed("[[[1]]]")
    assert.matches("too deep at byte 3", e3)
    assert.is_truthy(json.partial({ max_depth = 3 }):feed("[[[1]]]"))
  end)

  it("has json.decode's null handling: null members dropped by default, nulls in arrays kept", function()
    local p = json.partial()
    p:feed('{"a":null,"b":[null,1]}')
    local v = p:result()
    assert.is_nil(v.a)
    assert.are.equal(json.null, v.b[1])
    local q = json.partial({ drop_nulls = false })
    q:feed('{"a":null}')
    assert.are.equal(json.null, q:result().a)
  end)

  it("takes json.decode's lone_surrogates option", function()
    local p = json.partial({ lone_surrogates = "replace" })
    p:feed('"a\\ud800b"')
    assert.are.equal(json.decode('"a\\ud800b"', { lone_surrogates = "replace" }), p:result())
  end)

  it("result() is nil and an error while the text is incomplete, and feeding can go on after it", function()
    local p = json.partial()
    p:feed('{"a":[1,')
    local r, err = p:result()
    assert.is_nil(r)
    assert.is_string(err)
    p:feed("2]}")
    assert.are.same({ a = { 1, 2 } }, p:result())
    local q = json.partial()
    q:feed("12")
    assert.are.equal(12, q:result()) -- a root number ends with the text
    q:feed("3")
    assert.are.equal(123, q:result())
  end)

  it("path() names the value being filled", function()
    local p = json.partial()
    p:feed('{"items":[{"name":"a"},{"name":"b')
    assert.are.same({ "items", 2, "name" }, p:path())
    p:feed('"}]')
    assert.are.same({ "items" }, p:path())
    p:feed("}")
    assert.are.same({}, p:path())
  end)

  it("misuse raises at the caller", function()
    assert.has_error(function() json.partial({ max_depth = 0 }) end)
    assert.has_error(function() json.partial({ drop_nulls = "yes" }) end)
    assert.has_error(function() json.partial({ lone_surrogates = "drop" }) end)
    assert.has_error(function() json.partial():feed({}) end)
  end)

  it("a feed from inside its own feed (a finalizer run by a GC step) raises, and the outer feed goes on", function()
    local p = json.partial()
    local inner
    local piece = string.rep('"abcdefghijklmnopqrstuvwxyz0123456789abcdefghij",', 50) -- 50 strings: 50 allocations
    p:feed("[")
    feed_under_gc(p, piece, function(feeding)
      if feeding then inner = inner or { pcall(p.feed, p, "1") } end
    end, function() return inner ~= nil end)
    assert.is_table(inner, "no finalizer ran during a feed")
    assert.is_false(inner[1])
    assert.matches("while this parser is feeding", inner[2])
    local r = assert(p:feed('"end"]'))
    assert.are.equal(0, (#r - 1) % 50)
  end)

  it("close() frees it; using it after raises; close is idempotent and tostring says (closed)", function()
    local p = json.partial()
    p:feed('{"a":"b')
    p:close()
    p:close()
    assert.matches("%(closed%)", tostring(p))
    assert.has_error(function() p:feed("x") end, "json.partial: attempt to use a closed parser")
    assert.has_error(function() p:result() end)
    assert.has_error(function() p:path() end)
  end)

  it("a close from a finalizer during a feed stops that feed, which frees the parser as it ends", function()
    local p = json.partial()
    local closed
    local piece = string.rep('"abcdefghijklmnopqrstuvwxyz0123456789abcdefghij",', 50)
    p:feed("[")
    local res = feed_under_gc(p, piece, function(feeding)
      if feeding and not closed then
        closed = true
        p:close()
      end
    end, function() return closed end)
    assert.is_true(closed, "no finalizer ran during a feed")
    assert.is_nil(res[1])
    assert.matches("closed during the feed", res[2])
    assert.matches("%(closed%)", tostring(p))
    collectgarbage()
  end)

  it("a parser never finished is collected", function()
    local weak = setmetatable({}, { __mode = "k" })
    do
      local p = json.partial()
      p:feed('{"a":"' .. string.rep("y", 10000))
      weak[p] = true
    end
    collectgarbage()
    collectgarbage()
    assert.is_nil(next(weak))
  end)

  it("a long string fed in small pieces grows in place", function()
    local p = json.partial()
    local snap = p:feed('{"say":"')
    for _ = 1, 500 do
      p:feed("abcdefgh")
    end
    assert.are.equal(4000, #snap.say)
  end)
end)
