-- craft.profile: where a run's time goes, per engine call.
--
-- With CRAFT_PROFILE set in the environment when the library loads, every call into libcraft
-- (craft_conv2d, craft_linear, craft_sdpa, ...) is timed, and a table of calls, total and
-- share of the wall time is printed when the process ends (to stderr, or appended to the file
-- CRAFT_PROFILE names when it is not "1"). The rest of the wall time ("outside the engine") is
-- Lua: model code, autograd bookkeeping, data handling. Each worker of a parallel run profiles
-- itself. craft.profile.report() returns the figures so far; craft.profile.reset() starts over.
--
-- Rows hold self time: an engine call made while another is running (backward's gradient
-- checkpointing recomputes the forward through Lua) counts in its own row, not in the outer
-- one's, so the rows add up to the engine's total. Engine calls are synchronous on the CPU, so
-- a call's time is its work; on OpenCL devices
-- kernels are queued and a call's time is its enqueue (the work shows up in whichever call
-- waits for it: a read or a synchronize).
--
-- Without CRAFT_PROFILE nothing is wrapped and nothing costs: the binding uses the C namespace
-- directly (the wrapper is chosen once, when craft.core loads).
local ffi = require 'ffi'

local M = {}

-- the engine's monotonic clock (craft_now; declaring clock_gettime here would clash with scripts
-- that declare it themselves); os.clock until wrap() has the namespace
local clock = os.clock
local function now() return clock() end
M.now = now

local stats, t_start = {}, now()
-- nesting (backward's checkpoint recomputes the forward through Lua): the time each open call
-- spent in nested engine calls, so that every row holds self time and the rows add up
local depth, child = 0, {}

-- Calls that only ask the engine something (errors, sizes, memory) are not worth a row.
local function timed(name)
  return not (name:find('^craft_last_') or name:find('^craft_tensor_') or name:find('_count$')
    or name:find('^craft_profile_') or name == 'craft_cdef_text' or name == 'craft_now')
end

local engine   -- the C namespace wrap() was given: backward's per-op rows come from it

-- wrap(C) -> a table that forwards to the C namespace, timing the engine's functions (and, inside
-- backward, each op's backward: craft_profile_backward).
function M.wrap(C)
  engine = C
  local craft_now = C.craft_now
  clock = function() return tonumber(craft_now()) end
  t_start = now()
  C.craft_profile_backward(1)
  local cache = {}
  return setmetatable({}, { __index = function(_, name)
    local f = cache[name]
    if f then return f end
    local real = C[name]
    local callable = type(real) == 'cdata' or type(real) == 'function'
    if not callable or not timed(name) then cache[name] = real; return real end
    local s = stats[name]
    if not s then s = { calls = 0, seconds = 0 }; stats[name] = s end
    f = function(...)
      local t0 = now()
      depth = depth + 1
      child[depth] = 0
      local r = real(...)
      local dt = now() - t0
      s.seconds = s.seconds + dt - child[depth]   -- self time: nested calls have their own rows
      s.calls = s.calls + 1
      depth = depth - 1
      if depth > 0 then child[depth] = child[depth] + dt end
      return r
    end
    cache[name] = f
    return f
  end })
end

-- report() -> {wall = seconds, engine = seconds, rows = {{name=, calls=, seconds=}, ...},
--   backward = {{name=, calls=, seconds=}, ...}} sorted by time, most first; backward's rows are
--   the ops whose backward ran inside the `backward` calls (their time is part of that row's).
function M.report()
  local rows, total = {}, 0
  for name, s in pairs(stats) do
    if s.calls > 0 then
      rows[#rows + 1] = { name = name:gsub('^craft_', ''), calls = s.calls, seconds = s.seconds }
      total = total + s.seconds
    end
  end
  table.sort(rows, function(a, b) return a.seconds > b.seconds end)
  local bw = {}
  if engine then
    local name, calls, secs = ffi.new('const char *[1]'), ffi.new('int64_t[1]'), ffi.new('double[1]')
    local i = 0
    while engine.craft_profile_backward_row(i, name, calls, secs) == 0 do
      bw[#bw + 1] = { name = ffi.string(name[0]), calls = tonumber(calls[0]), seconds = secs[0] }
      i = i + 1
    end
    table.sort(bw, function(a, b) return a.seconds > b.seconds end)
  end
  return { wall = now() - t_start, engine = total, rows = rows, backward = bw }
end

function M.reset()
  for _, s in pairs(stats) do s.calls, s.seconds = 0, 0 end
  if engine then engine.craft_profile_backward(-1); engine.craft_profile_backward(1) end
  t_start = now()
end

-- format(report, top) -> the table as text (the top rows; the rest summed in one line).
function M.format(r, top)
  top = top or 25
  local head = 'craft profile: %.2f s wall, %.2f s in %d engine functions, %.2f s outside the engine'
  local out = { head:format(
    r.wall, r.engine, #r.rows, r.wall - r.engine),
    ('  %-32s %9s %11s %7s %10s'):format('engine call', 'calls', 'total ms', 'share', 'ms/call') }
  local rest, nrest = 0, 0
  for i, row in ipairs(r.rows) do
    if i <= top then
      out[#out + 1] = ('  %-32s %9d %11.1f %6.1f%% %10.3f'):format(row.name, row.calls, row.seconds * 1e3,
        100 * row.seconds / math.max(r.wall, 1e-12), row.seconds * 1e3 / row.calls)
    else rest, nrest = rest + row.seconds, nrest + 1 end
  end
  if nrest > 0 then
    out[#out + 1] = ('  %-32s %9s %11.1f %6.1f%%'):format(('(%d others)'):format(nrest), '', rest * 1e3,
      100 * rest / math.max(r.wall, 1e-12))
  end
  if r.backward and #r.backward > 0 then
    out[#out + 1] = '  inside backward, per op:'
    for i, row in ipairs(r.backward) do
      if i > top then break end
      out[#out + 1] = ('    %-30s %9d %11.1f %6.1f%% %10.3f'):format(row.name, row.calls, row.seconds * 1e3,
        100 * row.seconds / math.max(r.wall, 1e-12), row.seconds * 1e3 / row.calls)
    end
  end
  return table.concat(out, '\n') .. '\n'
end

-- The end-of-process table: printed when the Lua state closes (craft's main closes it).
function M.print_at_exit(dest)
  local function emit()
    local text = M.format(M.report())
    if dest and dest ~= '' and dest ~= '1' then
      local f = io.open(dest, 'a')
      if f then f:write(text); f:close(); return end
    end
    io.stderr:write(text)
  end
  M._sentinel = newproxy(true)
  getmetatable(M._sentinel).__gc = function() pcall(emit) end
end

return M
