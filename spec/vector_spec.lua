-- baseten.vector (csrc/vector.c over csrc/vecmath.c): packed float32
-- vectors, their math, little-endian bytes, base64, top_k, and every bad
-- input of issue 27 part 2 (mismatched dimensions raise with both sizes,
-- a zero vector's cosine is 0, NaN is refused).
-- luacheck: std max+busted
local baseten = require("baseten")
local vector = baseten.vector

local function close_to(a, b) return math.abs(a - b) < 1e-6 end

-- little-endian float32 of a number, written out by hand (no string.pack on 5.1)
local ONE_LE = "\0\0\128\63"     -- 1.0 = 0x3f800000
local MINUS_TWO_LE = "\0\0\0\192" -- -2.0 = 0xc0000000

describe("baseten.vector", function()
  it("holds float32 values: #v, v[i] 1-based, nil outside, read-only", function()
    local v = vector.from({ 1, 2.5, -3 })
    assert.equal(3, #v)
    assert.equal(1, v[1])
    assert.equal(-3, v[3])
    assert.is_nil(v[0])
    assert.is_nil(v[4])
    assert.is_nil(v[1.5])
    assert.is_true(close_to(0.1, vector.from({ 0.1 })[1]) and vector.from({ 0.1 })[1] ~= 0.1,
      "0.1 is rounded to float32")
    assert.has_error(function() v[1] = 2 end, nil)
    local ok, err = pcall(function() v[1] = 2 end)
    assert.is_false(ok)
    assert.matches("read%-only", err)
  end)

  it("dot, cosine, norm, normalized, totable", function()
    local a, b = vector.from({ 3, 4 }), vector.from({ 4, 3 })
    assert.equal(24, a:dot(b))
    assert.is_true(close_to(a:cosine(b), 24 / 25))
    assert.equal(5, a:norm())
    local n = a:normalized()
    assert.is_true(close_to(n:norm(), 1))
    assert.is_true(close_to(n[1], 0.6))
    assert.same({ 3, 4 }, a:totable())
    assert.equal(24, vector.dot(a, b), "the methods are functions of the module too")
  end)

  it("a zero vector's cosine is 0, not NaN; it normalizes to zeros", function()
    local z, a = vector.from({ 0, 0, 0 }), vector.from({ 1, 2, 3 })
    assert.equal(0, a:cosine(z))
    assert.equal(0, z:cosine(a))
    assert.equal(0, z:cosine(z))
    assert.same({ 0, 0, 0 }, z:normalized():totable())
  end)

  it("mismatched dimensions raise, naming both sizes", function()
    local a, b = vector.from({ 1, 2, 3 }), vector.from({ 1, 2 })
    for _, f in ipairs({ "dot", "cosine" }) do
      local ok, err = pcall(a[f], a, b)
      assert.is_false(ok)
      assert.matches("3", err)
      assert.matches("2", err)
      assert.matches("dimensions", err)
    end
    local ok, err = pcall(vector.top_k, a, { a, b }, 1)
    assert.is_false(ok)
    assert.matches("vectors%[2%] has 2 dimensions, the query 3", err)
  end)

  it("refuses NaN, infinities, values beyond float32, non-numbers and empty tables", function()
    for _, bad in ipairs({ { 1, 0 / 0 }, { math.huge }, { -math.huge }, { 1e39 }, { 1, "2" }, {} }) do
      local ok, err = pcall(vector.from, bad)
      assert.is_false(ok)
      assert.matches("baseten.vector", err)
    end
    assert.has_error(function() vector.from("1,2") end)
  end)

  it("tobytes and frombytes are little-endian float32", function()
    local v = vector.from({ 1, -2 })
    assert.equal(ONE_LE .. MINUS_TWO_LE, vector.tobytes(v))
    local w = vector.frombytes(ONE_LE .. MINUS_TWO_LE)
    assert.same({ 1, -2 }, w:totable())
    local r = vector.from({ 0.1, 1e-30, 3.4e38, -7 })
    assert.equal(vector.tobytes(r), vector.tobytes(vector.frombytes(vector.tobytes(r))))
    -- bytes from a file are data: nil, why (bt.h's convention), never a raise
    for _, bad in ipairs({ "", "abc", ONE_LE .. "x", "\0\0\192\127" --[[NaN]], "\0\0\128\127" --[[inf]] }) do
      local none, why = vector.frombytes(bad)
      assert.is_nil(none)
      assert.is_string(why)
    end
    assert.has_error(function() vector.frombytes({}) end, nil, "a non-string is misuse")
  end)

  it("frombase64 decodes the floats, and returns nil, why for bad text (server data)", function()
    local v = assert(vector.frombase64("AACAPwAAAMA=")) -- 1.0, -2.0
    assert.same({ 1, -2 }, v:totable())
    for _, bad in ipairs({ "", "AACAPw=", "AACAP!==", "AADAfw==" --[[NaN]], "AACA" --[[3 bytes]] }) do
      local r, why = vector.frombase64(bad)
      assert.is_nil(r)
      assert.is_string(why)
    end
  end)

  it("top_k returns indices and cosine scores, best first; ties keep the lower index", function()
    local q = vector.from({ 1, 0 })
    local vs = { vector.from({ 0, 1 }), vector.from({ 1, 0 }), vector.from({ 1, 1 }), vector.from({ 2, 0 }),
                 vector.from({ -1, 0 }), vector.from({ 0, 0 }) }
    local idx, scores = vector.top_k(q, vs, 3)
    assert.same({ 2, 4, 3 }, idx)
    assert.equal(1, scores[1])
    assert.equal(1, scores[2])
    assert.is_true(close_to(scores[3], math.sqrt(0.5)))
    local all = vector.top_k(q, vs, 100)
    assert.equal(6, #all, "k above #vectors gives them all")
    assert.same({}, (vector.top_k(q, vs, 0)))
    assert.same({}, (vector.top_k(q, {}, 5)))
    assert.has_error(function() vector.top_k(q, vs, -1) end)
    assert.has_error(function() vector.top_k(q, vs, 1.5) end)
    assert.has_error(function() vector.top_k(q, { vs[1], "x" }, 1) end)
    assert.has_error(function() vector.top_k({ 1, 0 }, vs, 1) end)
  end)

  it("top_k agrees with cosine over many vectors", function()
    local vs, dims = {}, 16
    local seed = 7
    local function rnd() seed = (seed * 1103515245 + 12345) % 2147483648; return seed / 2147483648 - 0.5 end
    for i = 1, 300 do
      local t = {}
      for j = 1, dims do t[j] = rnd() end
      vs[i] = vector.from(t)
    end
    local q = vs[17]
    local idx, scores = vector.top_k(q, vs, 10)
    local all = {}
    for i, v in ipairs(vs) do all[i] = { i = i, s = q:cosine(v) } end
    table.sort(all, function(a, b) return a.s > b.s or (a.s == b.s and a.i < b.i) end)
    for r = 1, 10 do
      assert.equal(all[r].i, idx[r])
      assert.is_true(close_to(all[r].s, scores[r]))
    end
    assert.equal(17, idx[1])
  end)

  it("tostring shows the dimension and the first values", function()
    assert.equal("baseten.vector(2) [1, -2]", tostring(vector.from({ 1, -2 })))
    assert.equal("baseten.vector(5) [1, 2, 3, 4, ...]", tostring(vector.from({ 1, 2, 3, 4, 5 })))
  end)

  it("a method on something else raises a clear error", function()
    local v = vector.from({ 1 })
    assert.has_error(function() v.dot({}, v) end)
    assert.has_error(function() v:dot({ 1 }) end)
  end)
end)
