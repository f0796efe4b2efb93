-- craft.runtime: the binding of the engine's process-wide services (clock, threads, numeric
-- guard, memory pool, the Philox counter generator) and of the two libc calls the library needs
-- (isatty, getcwd). One of the binding modules (docs/architecture.md): the rest of the library
-- asks here instead of calling the C library.
local core = require 'craft.core'
local ffi, C = core.ffi, core.C

-- libc: declared once per process whichever module asks first (a second ffi.cdef of the same
-- prototype is an error, hence pcall)
pcall(ffi.cdef, 'int isatty(int fd);')
pcall(ffi.cdef, 'char *getcwd(char *buf, size_t size);')

local M = {}

-- now() -> seconds on the engine's monotonic clock (timings, progress)
function M.now() return tonumber(C.craft_now()) end

-- version() -> the engine's version string
function M.version() return ffi.string(C.craft_version()) end

-- num_threads() / set_num_threads(n): the engine's CPU threads
function M.num_threads() return C.craft_num_threads() end
function M.set_num_threads(n)
  core.want('runtime.set_num_threads', 'n', n, 'positive')
  C.craft_set_num_threads(n)
end

-- numeric_guard() -> whether every op checks its outputs and gradients for NaN / Inf;
-- set_numeric_guard(on) switches it.
function M.numeric_guard() return C.craft_numeric_guard() ~= 0 end
function M.set_numeric_guard(on) C.craft_set_numeric_guard(on and 1 or 0) end

-- memory(reset_peak) -> {in_use =, cached =, peak =} bytes of the CPU pool (peak since the last
-- reset)
function M.memory(reset_peak)
  local s = ffi.new('craft_pool_stats')
  C.craft_pool_get_stats(s)
  if reset_peak then C.craft_pool_reset_peak() end
  return { in_use = tonumber(s.in_use), cached = tonumber(s.cached), peak = tonumber(s.peak) }
end

-- philox(seed, counter) -> the four 32-bit words of Philox-4x32-10 at (seed, counter), as
-- numbers: the engine's counter-based generator, for draws that must not depend on the global
-- random stream (trainers' per-step seeds, bootstrap resampling)
local words = ffi.new('uint32_t[4]')
function M.philox(seed, counter)
  if type(seed) ~= 'number' or type(counter) ~= 'number' then
    core.want('runtime.philox', 'seed', seed, 'number')
    core.want('runtime.philox', 'counter', counter, 'number')
  end
  C.craft_philox4x32(seed, counter, words)
  return tonumber(words[0]), tonumber(words[1]), tonumber(words[2]), tonumber(words[3])
end

-- isatty(fd) -> whether the file descriptor is a terminal
function M.isatty(fd)
  core.want('runtime.isatty', 'fd', fd, 'count')
  return ffi.C.isatty(fd) ~= 0
end

-- cwd() -> the current working directory (nil when it cannot be read)
function M.cwd()
  local buf = ffi.new('char[?]', 4096)
  if ffi.C.getcwd(buf, 4096) == nil then return nil end
  return ffi.string(buf)
end

return M
