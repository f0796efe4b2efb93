-- craft: tensors with reverse-mode autodiff on the C engine, modules, optimisers, and the
-- CRAFT experiment library. `local craft = require 'craft'`.
local core = require 'craft.core'
local argerror = require('craft.core').argerror
local T = require 'craft.tensor'
local A = require 'craft.autograd'
local F = require 'craft.functional'

local runtime = require 'craft.runtime'

local craft = {}

craft.Tensor = T.Tensor
craft.is_tensor = T.is_tensor
for _, k in ipairs { 'tensor', 'zeros', 'ones', 'full', 'empty', 'randn', 'rand', 'arange', 'from_buffer',
  'manual_seed' } do
  craft[k] = T[k]
end
craft.F = F
craft.functional = F
for _, k in ipairs { 'cat', 'stack', 'split', 'chunk', 'matmul', 'where', 'lerp' } do craft[k] = F[k] end
craft.no_grad = A.no_grad
craft.enable_grad = A.enable_grad
craft.is_grad_enabled = A.is_grad_enabled
craft.set_grad_enabled = A.set_grad_enabled
craft.checkpoint = A.checkpoint
-- set_precision('bf16'): no-grad matmul / linear / conv2d / attention in bf16 with fp32
-- accumulation where the device has bf16 kernels; 'bf16-mixed': recorded ones and their input
-- gradients too; 'fp16': the no-grad ones with f16 operands on OpenCL devices (with_precision
-- scopes it; precision_info says what the device does)
craft.set_precision = A.set_precision
craft.precision = A.precision
craft.with_precision = A.with_precision
craft.precision_info = A.precision_info
craft.clear_precision_cache = A.clear_precision_cache
craft.set_precision_cache_mb = A.set_precision_cache_mb
craft.Function = A.Function
craft.nn = require 'craft.nn'
craft.optim = require 'craft.optim'
craft.version = runtime.version()
-- the raw binding, for users who call the C library themselves (the library does not)
craft.C = core.C
craft.ffi = core.ffi

craft.num_threads = runtime.num_threads
craft.set_num_threads = runtime.set_num_threads
-- numeric_guard(true): every op checks its outputs and gradients for NaN/Inf and names the op.
craft.numeric_guard = runtime.set_numeric_guard
-- memory(): bytes in use, cached, and the peak since the last reset
craft.memory = runtime.memory
craft.now = runtime.now
-- set_default_device('cl:0'): the current device (what --device sets); tensors made without a
-- device option go there (craft.device: scope, launches, describe)
craft.set_default_device = function(name) return require('craft.device').set_default(name) end
craft.default_device = function() return require('craft.device').default() end

-- Further modules load on first use (craft.data, craft.io, craft.models, craft.phantoms, ...).
setmetatable(craft, { __index = function(t, k)
  local ok, mod = pcall(require, 'craft.' .. k)
  if ok then rawset(t, k, mod); return mod end
  if type(mod) == 'string' and not mod:find("module 'craft." .. k .. "' not found", 1, true) then
    argerror(mod)
  end
  return nil
end })

return craft
