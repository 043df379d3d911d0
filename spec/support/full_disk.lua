-- A full disk without mounting one: wraps io.open so that the files whose
-- path starts with a prefix share `free` bytes, as on a small file system.
-- A write that does not fit writes what fits (a cut line, as a real full
-- disk leaves) and fails with ENOSPC's message; flush and close then fail
-- too. Reading is untouched. Used in-process, and in a child through
--   lua -e 'require("spec.support.full_disk").from_env()' bin/baseten ...
-- with BT_FULL_PREFIX and BT_FULL_FREE set.
local M = {}

local NOSPC = "No space left on device"

local Proxy = {}
Proxy.__index = Proxy

function Proxy:write(...)
  for i = 1, select("#", ...) do
    local s = tostring((select(i, ...)))
    local fits = math.min(#s, self.fs.free)
    if fits > 0 then
      assert(self.f:write(s:sub(1, fits)))
      self.fs.free = self.fs.free - fits
    end
    if fits < #s then
      self.failed = true
      return nil, NOSPC, 28
    end
  end
  return self
end

function Proxy:flush()
  assert(self.f:flush())
  if self.failed then return nil, NOSPC, 28 end
  return self
end

function Proxy:seek(...) return self.f:seek(...) end
function Proxy:read(...) return self.f:read(...) end
function Proxy:lines(...) return self.f:lines(...) end
function Proxy:setvbuf(...) return self.f:setvbuf(...) end

function Proxy:close()
  self.f:close()
  if self.failed then return nil, NOSPC, 28 end
  return true
end

--- Wraps io.open; returns the file system state (`fs.free`, `fs.restore()`).
function M.install(prefix, free)
  local real = io.open
  local fs = { free = free }
  io.open = function(path, mode) -- luacheck: ignore 122
    local f, why, code = real(path, mode)
    if not f or path:sub(1, #prefix) ~= prefix or not (mode or "r"):find("[wa+]") then return f, why, code end
    return setmetatable({ f = f, fs = fs }, Proxy)
  end
  function fs.restore() io.open = real end -- luacheck: ignore 122
  return fs
end

--- install() from BT_FULL_PREFIX and BT_FULL_FREE, in a child process.
function M.from_env()
  return M.install(assert(os.getenv("BT_FULL_PREFIX")), assert(tonumber(os.getenv("BT_FULL_FREE"))))
end

return M
