-- craft: tensors with reverse-mode autodiff on the C engine, modules, optimisers, and the
-- CRAFT experiment library. `local craft = require 'craft'`.
local core = require 'craft.core'
local argerror = require('craft.core').argerror
local T = require 'craft.tensor'
local A = require 'craft.autograd'
local F = require 'craft.functional'

local craft = {}
local C, ffi = core.C, core.ffi

craft.Tensor = T.Tensor
craft.is_tensor = T.is_tensor
for _, k in ipairs { 'tensor', 'zeros', 'ones', 'full', 'empty', 'randn', 'rand', 'arange', 'from_buffer', 'manual_seed' } do
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
craft.Function = A.Function
craft.nn = require 'craft.nn'
craft.optim = require 'craft.optim'
craft.version = ffi.string(C.craft_version())
craft.C = C
craft.ffi = ffi

function craft.num_threads() return C.craft_num_threads() end
function craft.set_num_threads(n) C.craft_set_num_threads(n) end
-- numeric_guard(true): every op checks its outputs and gradients for NaN/Inf and names the op.
function craft.numeric_guard(on) C.craft_set_numeric_guard(on and 1 or 0) end
-- memory(): bytes in use, cached, and the peak since the last reset
function craft.memory(reset_peak)
  local s = ffi.new('craft_pool_stats')
  C.craft_pool_get_stats(s)
  if reset_peak then C.craft_pool_reset_peak() end
  return { in_use = tonumber(s.in_use), cached = tonumber(s.cached), peak = tonumber(s.peak) }
end

-- Further modules load on first use (craft.data, craft.io, craft.models, craft.phantoms, ...).
setmetatable(craft, { __index = function(t, k)
  local ok, mod = pcall(require, 'craft.' .. k)
  if ok then rawset(t, k, mod); return mod end
  if type(mod) == 'string' and not mod:find("module 'craft." .. k .. "' not found", 1, true) then argerror(mod) end
  return nil
end })

return craft
