-- Limits of the C core that hold for the whole process or protocol, not one
-- object (issue 23): a depth budget shared by nested encodes, sparse marked
-- arrays, the 2^53 split, numbers in any locale, encoder options, and the
-- closes that every handle registers. The HTTP cases live in
-- spec/limits_http_spec.lua.
local core = require("baseten.core")
local json = core.json

local has_integers = math.type ~= nil

local function deep(d, leaf)
  local t = { leaf }
  for _ = 1, d - 1 do t = { t } end
  return t
end

describe("C core limits", function()
  describe("nested json.encode from __tojson", function()
    it("shares one depth budget, so the C stack cannot overflow", function()
      -- the issue's reproduction: 60 encodes, each 990 deep, one inside the
      -- next; it segfaulted on 5.4, 5.3 and 5.1 before the budget was shared
      local mt, n = {}, 0
      mt.__tojson = function()
        n = n + 1
        if n >= 60 then return 1 end
        return #json.encode(deep(990, setmetatable({}, mt)))
      end
      local ok, err = pcall(json.encode, deep(990, setmetatable({}, mt)))
      assert.is_false(ok)
      assert.matches("nesting too deep", tostring(err))
      -- the budget is whole again afterwards
      assert.are.equal(string.rep("[", 999) .. "1" .. string.rep("]", 999), json.encode(deep(999, 1)))
    end)

    it("counts the outer encode's depth in the inner one", function()
      local mt = { __tojson = function() return json.encode(deep(600, 1)) end }
      local ok, err = pcall(json.encode, deep(500, setmetatable({}, mt)))
      assert.is_false(ok)
      assert.matches("nesting too deep", tostring(err))
      mt.__tojson = function() return json.encode(deep(400, 1)) end
      assert.is_string(json.encode(deep(500, setmetatable({}, mt))))
    end)

    it("restores the budget when __tojson raises", function()
      local mt = { __tojson = function() error("boom") end }
      for _ = 1, 3 do
        local ok, err = pcall(json.encode, deep(900, setmetatable({}, mt)))
        assert.is_false(ok)
        assert.matches("boom", tostring(err))
      end
      assert.is_string(json.encode(deep(999, 1)))
    end)
  end)

  describe("sparse marked arrays", function()
    it("refuses an array whose largest index is far past its count", function()
      local ok, err = pcall(json.encode, json.array({ [5e7] = 1 }))
      assert.is_false(ok)
      assert.matches("sparse", tostring(err))
    end)

    it("refuses a key that cannot be an index, never drops it", function()
      for _, t in ipairs({ { [2 ^ 62] = 1 }, { [2 ^ 53] = 1 }, { 1, 2, x = 3 }, { [1.5] = 1 }, { [0] = 1 },
                           { [-1] = 1 } }) do
        local ok, err = pcall(json.encode, json.array(t))
        assert.is_false(ok)
        assert.matches("cannot encode", tostring(err))
      end
    end)

    it("keeps small holes as null", function()
      assert.are.equal("[null,null,3]", json.encode(json.array({ nil, nil, 3 })))
      assert.are.equal("[null,null,null,null,null,null,null,null,null,1]", json.encode(json.array({ [10] = 1 })))
      assert.are.equal("[1,null,3,null]", json.encode(json.array({ 1, nil, 3, [4] = json.null })))
    end)

    it("takes sparse_ratio from the options (0: any ratio)", function()
      local t = json.array({ [40] = 1 })
      assert.is_false(pcall(json.encode, t))
      assert.is_string(json.encode(t, { sparse_ratio = 40 }))
      assert.is_string(json.encode(t, { sparse_ratio = 0 }))
      assert.is_false(pcall(json.encode, json.array({ [12] = 1, [1] = 1 }), { sparse_ratio = 5 }))
    end)
  end)

  describe("encode options", function()
    it("takes max_depth", function()
      assert.is_string(json.encode(deep(5, 1), { max_depth = 5 }))
      local ok, err = pcall(json.encode, deep(6, 1), { max_depth = 5 })
      assert.is_false(ok)
      assert.matches("nesting too deep", tostring(err))
    end)

    it("raises at the caller for a bad option", function()
      for _, o in ipairs({ { max_depth = 0 }, { max_depth = 1001 }, { max_depth = 1.5 }, { max_depth = "3" },
                           { sparse_ratio = -1 }, { sparse_ratio = 0 / 0 }, { sparse_ratio = "2" }, "x" }) do
        local ok, err = pcall(json.encode, 1, o)
        assert.is_false(ok, tostring(o))
        assert.matches("bad argument #2", tostring(err))
      end
      assert.is_false(pcall(json.encode, 1, { maxdepth = 3 }))
    end)
  end)

  describe("the 2^53 boundary", function()
    local function check(v, text)
      local s = json.encode({ v })
      assert.are.equal("[" .. text .. "]", s)
      local back = json.decode(s)[1]
      assert.are.equal(v, back)
      return back
    end

    it("round-trips integers and floats at 2^53 - 1, 2^53 and 2^53 + 2", function()
      check(2 ^ 53 - 1, "9007199254740991")
      -- at and past 2^53 a float is written with ".0" and read back a float
      local f = check(2 ^ 53, "9007199254740992.0")
      local g = check(2 ^ 53 + 2, "9007199254740994.0")
      check(-(2 ^ 53), "-9007199254740992.0")
      if has_integers then
        assert.are.equal("float", math.type(f))
        assert.are.equal("float", math.type(g))
        for _, i in ipairs({ math.tointeger(2 ^ 53 - 1), math.tointeger(2 ^ 53), math.tointeger(2 ^ 53 + 2) }) do
          local back = check(i, string.format("%d", i))
          assert.are.equal("integer", math.type(back))
        end
        assert.are.equal("float", math.type(json.decode("9007199254740992.0")))
        assert.are.equal("integer", math.type(json.decode("9007199254740991.0")))
      end
    end)
  end)

  describe("numbers in a locale whose decimal point is two bytes", function()
    it("are still JSON", function()
      local old = os.setlocale(nil, "numeric")
      if not os.setlocale("ps_AF.UTF-8", "numeric") then
        pending("the ps_AF.UTF-8 locale is not installed (make deps-test generates it)")
        return
      end
      local ok, enc = pcall(json.encode, { 1.5, 0.25, 1e300, -2.5e-7, 2 ^ 60, 0.1, 2 ^ 53 })
      local dec = json.decode("[1.5,0.25]")
      os.setlocale(old, "numeric")
      assert.is_true(ok, enc)
      assert.are.equal("[1.5,0.25,1e+300,-2.5e-07,1.152921504606847e+18,0.1,9007199254740992.0]", enc)
      assert.are.same({ 1.5, 0.25 }, { dec[1], dec[2] })
    end)
  end)

  describe("__close", function()
    it("is registered on every Lua version for engine, transfer and SSE parser", function()
      local p = core.sse.new()
      local mt = getmetatable(p)
      assert.is_function(mt.__close)
      mt.__close(p)
      assert.matches("closed", tostring(p))
      assert.is_function(debug.getregistry()["baseten.core.transfer"].__close)
      local e = core.engine()
      assert.is_function(getmetatable(e).__close)
      getmetatable(e).__close(e)
      assert.matches("closed", tostring(e))
    end)
  end)
end)
