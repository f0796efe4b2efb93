-- craft.device: the devices tensors can live on. 'cpu' is device code 0; 'cl:N' is OpenCL
-- device N (code 1 + N), numbered across all platforms in a stable order (docs/opencl.md).
--   craft.device.list()              -> { {name = 'cpu', ...}, {name = 'cl:0', device = ..., fp16 = false,
--   ...}, ... }
--   craft.device.set_default('cl:0') -- the current device: every tensor made without a device
--                                       option (craft.zeros, randn, tensor, ...) is made there
--   craft.device.default()           -> 'cpu' unless set, or given by --device / env CRAFT_DEVICE
--   craft.device.scope('cl:0', fn, ...) -- fn(...) with that current device, restored afterwards
--   craft.device.launches('cl:0')    -> OpenCL kernels launched on it so far (this process)
--   craft.device.syncs('cl:0')       -> times the host waited for its queue so far
--   craft.device.describe('cl:0')    -> 'cl:0 <device name>'
-- docs/backends.md ("The device in the Lua library") says how the device flows through the layers.
local core = require 'craft.core'
local ffi, C, check = core.ffi, core.C, core.check

local M = {}

local auto_code
-- 'cl:auto': one device per rank of a node (craft.dist's local rank k): the k-th GPU (modulo their
-- number), or the k-th OpenCL device when there is no GPU. More ranks on a node than devices share
-- them, said once on stderr.
local function auto()
  if auto_code then return auto_code end
  local n, why = M.count()
  if n == 0 then core.argerror('device cl:auto: no OpenCL device' .. (why and (' (' .. why .. ')') or '')) end
  local pool = {}
  for i = 0, n - 1 do if M.info(i).gpu then pool[#pool + 1] = i end end
  if #pool == 0 then for i = 0, n - 1 do pool[#pool + 1] = i end end
  local dist = require 'craft.dist'
  if dist.local_size() > #pool and dist.local_rank() == 0 then
    io.stderr:write(('craft: note: %d ranks on this node share %d OpenCL device(s) (cl:auto)\n')
      :format(dist.local_size(), #pool))
  end
  auto_code = 1 + pool[dist.local_rank() % #pool + 1]
  return auto_code
end

-- 'cpu' / 'cl:N' / 'cl:auto' (or a device code) -> device code (errors at the user's line)
function M.code(name)
  if type(name) == 'number' and name >= 0 and name < 2 ^ 31 and name % 1 == 0 then return name end
  if name == 'cpu' then return 0 end
  if name == 'cl:auto' then return auto() end
  local n = type(name) == 'string' and name:match('^cl:(%d+)$')
  if n then return 1 + tonumber(n) end
  core.argerror(('unknown device %s (cpu, cl:0, cl:1, ..., cl:auto)'):format(core.describe(name)))
end

function M.name(code)
  core.want('device.name', 'code', code, 'count')
  return code == 0 and 'cpu' or ('cl:' .. (code - 1))
end

-- Number of OpenCL devices, and the engine's message when there is no OpenCL platform at all.
function M.count()
  local n = ffi.new('int[1]')
  if C.craft_cl_device_count(n) ~= 0 then return 0, ffi.string(C.craft_last_error()) end
  return tonumber(n[0])
end

local function cstr(a) return ffi.string(a) end

-- The properties of OpenCL device i (0-based, as in 'cl:i').
function M.info(i)
  core.want('device.info', 'index', i, 'count')
  local s = ffi.new('craft_cl_info')
  check(C.craft_cl_device_info(i, s), 2)
  return {
    name = 'cl:' .. i, device = cstr(s.name), vendor = cstr(s.vendor), platform = cstr(s.platform),
    platform_index = tonumber(s.platform_index), driver = cstr(s.driver_version),
    version = cstr(s.device_version),
    opencl_c = cstr(s.opencl_c_version), global_mem = tonumber(s.global_mem),
    max_alloc = tonumber(s.max_alloc),
    local_mem = tonumber(s.local_mem), compute_units = tonumber(s.compute_units),
    max_work_group = tonumber(s.max_work_group), fp16 = s.fp16 ~= 0, fp64 = s.fp64 ~= 0, gpu = s.is_gpu ~= 0,
  }
end

-- Every device, the CPU first; the second result explains an empty OpenCL list.
function M.list()
  local out = { { name = 'cpu', device = 'host CPU', fp16 = false, fp64 = true, gpu = false } }
  local n, why = M.count()
  for i = 0, n - 1 do out[#out + 1] = M.info(i) end
  return out, why
end

-- Checks that a device exists (an error naming it otherwise) and returns its code.
local function checked(name)
  local code = M.code(name)
  if code > 0 then check(C.craft_cl_device_info(code - 1, ffi.new('craft_cl_info'))) end
  return code
end

local default_code
function M.set_default(name)
  default_code = checked(name)
  return M.name(default_code)
end

-- The default device's name: set_default's, else --device / CRAFT_DEVICE, else 'cpu'.
function M.default()
  if not default_code then
    local from = rawget(_G, 'CRAFT_DEVICE') or os.getenv('CRAFT_DEVICE')
    default_code = (from and from ~= '') and checked(from) or 0
  end
  return M.name(default_code)
end
function M.default_code()   -- every tensor creation asks: no checks once it is known
  if not default_code then M.default() end
  return default_code
end

-- scope(name, fn, ...): fn(...) with `name` as the current device, the previous one restored
-- however fn ends (its results, or its error re-raised). name nil: fn(...) as it is.
function M.scope(name, fn, ...)
  core.want('device.scope', 'fn', fn, 'function')
  if name == nil or name == false then return fn(...) end
  local code = checked(name)
  local prev = M.default_code()
  if code == prev then return fn(...) end
  default_code = code
  local res = { pcall(fn, ...) }
  default_code = prev
  if not res[1] then error(res[2], 0) end
  return unpack(res, 2, table.maxn(res))
end

-- The work launched on the device so far in this process (craft_cl_launch_count; 0 for the CPU).
function M.launches(name)
  local n = ffi.new('int64_t[1]')
  check(C.craft_cl_launch_count(M.code(name or M.default()), n), 2)
  return tonumber(n[0])
end

-- The times the host waited for the device's queue so far (craft_cl_sync_count; 0 for the CPU).
function M.syncs(name)
  local n = ffi.new('int64_t[1]')
  check(C.craft_cl_sync_count(M.code(name or M.default()), n), 2)
  return tonumber(n[0])
end

-- 'cpu', or 'cl:0 <device name>' for messages and a run's table.
function M.describe(name)
  local code = M.code(name or M.default())
  if code == 0 then return 'cpu' end
  return M.name(code) .. ' ' .. M.info(code - 1).device
end

-- census(tensors...) -> { [device name] = count }: where the given tensors, modules (every
-- parameter and buffer) and tables of those (an optimiser's state) live.
function M.census(...)
  local T = require 'craft.tensor'
  local out, seen = {}, {}
  local function visit(v)
    if T.is_tensor(v) then
      out[v.device] = (out[v.device] or 0) + 1
    elseif type(v) == 'table' and not seen[v] then
      seen[v] = true
      if type(v.named_parameters) == 'function' and type(v.named_buffers) == 'function' then
        for _, np in ipairs(v:named_parameters()) do visit(np[2]) end
        for _, nb in ipairs(v:named_buffers()) do visit(nb[2]) end
      else
        for _, x in pairs(v) do visit(x) end
      end
    end
  end
  for i = 1, select('#', ...) do visit((select(i, ...))) end
  return out
end

-- Waits until the device has finished its queued work (a no-op for the CPU).
function M.synchronize(name)
  check(C.craft_cl_synchronize(M.code(name or M.default())), 2)
end

-- The device's buffer pool: bytes in use, cached and the peak.
function M.memory(name)
  local code = M.code(name or M.default())
  if code == 0 then return require('craft.runtime').memory() end
  local s = ffi.new('craft_pool_stats')
  check(C.craft_cl_pool_stats(code, s), 2)
  return { in_use = tonumber(s.in_use), cached = tonumber(s.cached), peak = tonumber(s.peak) }
end

return M
