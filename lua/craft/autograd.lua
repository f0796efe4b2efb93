-- craft.autograd: grad-mode scopes, custom differentiable functions defined in Lua, and
-- gradient checkpointing (recompute a segment during backward instead of keeping its
-- activations).
local core = require 'craft.core'
local T = require 'craft.tensor'
local ffi, C, check = core.ffi, core.C, core.check
local wrap, is_tensor = T.wrap, T.is_tensor

local M = {}
local unpack = unpack or table.unpack
local function pack(...) return { n = select('#', ...), ... } end

function M.is_grad_enabled() return C.craft_grad_enabled() ~= 0 end
function M.set_grad_enabled(flag) return C.craft_set_grad_enabled(flag and 1 or 0) ~= 0 end

local function with_grad_mode(flag, fn, ...)
  core.want(flag == 0 and 'no_grad' or 'enable_grad', 'fn', fn, 'function')
  local prev = C.craft_set_grad_enabled(flag)
  local r = pack(pcall(fn, ...))
  C.craft_set_grad_enabled(prev)
  if not r[1] then error(r[2], 0) end
  return unpack(r, 2, r.n)
end
-- no_grad(fn, ...) runs fn with gradient recording off and returns its results.
function M.no_grad(fn, ...) return with_grad_mode(0, fn, ...) end
function M.enable_grad(fn, ...) return with_grad_mode(1, fn, ...) end

---------------------------------------------------------------- compute precision
-- set_precision('bf16') lets matmul, linear, conv2d and scaled_dot_product_attention compute
-- with bf16 operands and fp32 accumulation whenever they record no gradient (under no_grad, or
-- when no input requires grad) on a device with bf16 kernels (CPUs with AVX512-BF16); tensors
-- stay f32, and recorded ops, backward passes and every other op stay fp32
-- (craft_set_compute_precision in craft.h). Per thread, like grad mode. precision_info() says
-- what the device really does.
-- 'bf16-mixed' (mixed-precision training) also runs those ops in bf16 when they record a
-- gradient, and their backward's input gradients (weight gradients stay fp32).
-- 'fp16' is bf16's rule with IEEE half operands on devices with f16 kernels (OpenCL devices).
local PREC = { fp32 = 0, bf16 = 1, ['bf16-mixed'] = 2, fp16 = 3 }
local PREC_NAME = { [0] = 'fp32', [1] = 'bf16', [2] = 'bf16-mixed', [3] = 'fp16' }
M.precisions = { 'fp32', 'bf16', 'bf16-mixed', 'fp16' }

-- The precision code of a name (nil allowed when opt), erroring at the caller's line.
function M.precision_code(fname, name, opt)
  if name == nil and opt then return nil end
  core.want(fname, 'precision', name, 'string')
  local c = PREC[name]
  if not c then
    core.argerror(("%s: unknown precision '%s' (expected 'fp32', 'bf16', 'bf16-mixed' or 'fp16')")
      :format(fname, name))
  end
  return c
end

-- why device code `code` computes fp32 under precision c (1 bf16, 2 fp16), or its own state
local function why_of(c, code)
  if c == 3 then
    if code == 0 then
      return 'the CPU has no fp16 kernels: fp16 is an OpenCL precision (f16 storage, fp32 arithmetic)'
    end
    return 'f16 operands read with vload_half, fp32 arithmetic and accumulation'
  end
  return code == 0 and ffi.string(C.craft_cpu_bf16_info()) or 'the OpenCL back end has no bf16 kernels'
end

local noted = {}
-- one stderr line per device and precision when bf16 / fp16 is asked for where the device
-- computes fp32
local function note_support(c)
  if c == 0 then return end
  local dev = require 'craft.device'
  local code = dev.default_code()
  local key = code * 4 + c
  if noted[key] then return end
  noted[key] = true
  local k = ffi.new('int[1]')
  if C.craft_precision_kernels(code, c, k) == 0 and k[0] == 0 then
    io.stderr:write(('craft: note: precision %s: %s computes in fp32 (%s)\n')
      :format(PREC_NAME[c], dev.name(code), why_of(c, code)))
  elseif code == 0 and c ~= 3 then
    -- having bf16 instructions does not make them fast: say so where they are slower than fp32
    local s = tonumber(C.craft_cpu_bf16_speedup())
    if s > 0 and s < 1 then
      io.stderr:write(('craft: note: precision %s: this CPU multiplies in bf16 at %.2fx its fp32 rate '
        .. '(measured), so bf16 runs slower than fp32 here\n'):format(PREC_NAME[c], s))
    end
  end
end

-- drops the weight copies a lower precision cached (CPU bf16, OpenCL f16)
local function clear_caches()
  C.craft_cpu_bf16_cache_clear()
  C.craft_cl_f16_cache_clear()
end

function M.precision() return PREC_NAME[C.craft_compute_precision()] end

-- set_precision('fp32' | 'bf16' | 'bf16-mixed' | 'fp16') -> the previous name. Back to fp32 from bf16 or fp16
-- also frees the caches of converted weights (the CPU's bf16, the OpenCL devices' f16).
function M.set_precision(name)
  local c = M.precision_code('set_precision', name)
  local prev = ffi.new('int[1]')
  check(C.craft_set_compute_precision(c, prev), 2)
  if c == 0 and prev[0] ~= 0 then clear_caches() end
  note_support(c)
  return PREC_NAME[prev[0]]
end

-- clear_precision_cache(): frees the caches of bf16 (CPU) and f16 (OpenCL) weight copies (they
-- are made again on the next use): what a caller does before work that needs the memory more
-- than the copies.
function M.clear_precision_cache() clear_caches() end

-- set_precision_cache_mb(mb) -> the previous cap in MiB: how much the caches of converted weights
-- (the CPU's bf16 and the OpenCL devices' f16, each) may hold; CRAFT_BF16_CACHE_MB and
-- CRAFT_F16_CACHE_MB set them at start (4096 and 2048). Copies not in use leave, least recently
-- used first, until the rest fits; a weight that does not fit is converted on every call. A
-- lower cap trades memory for conversions (docs/performance.md measures both for a CRAFT step);
-- 0 keeps none. The previous value returned is the CPU cache's.
function M.set_precision_cache_mb(mb)
  core.want('set_precision_cache_mb', 'mb', mb, 'number')
  if mb < 0 or mb ~= math.floor(mb) or mb > 2 ^ 31 - 1 then
    error(('set_precision_cache_mb: mb must be a whole number from 0 to 2147483647, got %s')
      :format(tostring(mb)), 2)
  end
  local prev = C.craft_cpu_bf16_cache_cap_mb(mb)
  C.craft_cl_f16_cache_cap_mb(mb)
  return tonumber(prev)
end

-- with_precision(name, fn, ...): fn(...) under that precision, the previous one restored however
-- fn ends (its results, or its error re-raised). name nil: fn(...) as it is.
function M.with_precision(name, fn, ...)
  local c = M.precision_code('with_precision', name, true)
  core.want('with_precision', 'fn', fn, 'function')
  if c == nil then return fn(...) end
  local prev = ffi.new('int[1]')
  check(C.craft_set_compute_precision(c, prev), 2)
  note_support(c)
  local r = pack(pcall(fn, ...))
  C.craft_set_compute_precision(prev[0], nil)
  if not r[1] then error(r[2], 0) end
  return unpack(r, 2, r.n)
end

-- precision_info(device) -> { precision = 'bf16', device = 'cpu', computes = 'bf16' | 'fp16' | 'fp32',
--   bf16_kernels = 4, f16_kernels = 0, why = <the device's state under the setting>,
--   kernel_calls = <calls of the setting's kernels so far (bf16 or f16; fp32: bf16's)>,
--   f16_kernel_calls = ..., cache = { bytes, entries, hits, misses, cap_mb } (the setting's weight
--   cache: the CPU's bf16 one, or under fp16 the OpenCL devices' f16 one),
--   bf16_speedup = <the CPU's bf16 multiply-add rate over its fp32 one, measured; nil on other
--   devices or without bf16 kernels> }
function M.precision_info(device)
  local dev = require 'craft.device'
  local code = dev.code(device or dev.default())
  local k, kh = ffi.new('int[1]'), ffi.new('int[1]')
  check(C.craft_precision_kernels(code, 1, k), 2)
  check(C.craft_precision_kernels(code, 3, kh), 2)
  local p = M.precision()
  local st = ffi.new('int64_t[4]')
  if p == 'fp16' then C.craft_cl_f16_cache_stats(st, st + 1, st + 2, st + 3)
  else C.craft_cpu_bf16_cache_stats(st, st + 1, st + 2, st + 3) end
  local n = p == 'fp16' and kh[0] or k[0]
  local speedup = code == 0 and k[0] > 0 and tonumber(C.craft_cpu_bf16_speedup()) or 0
  return { precision = p, device = dev.name(code), bf16_kernels = k[0], f16_kernels = kh[0],
    bf16_speedup = speedup > 0 and speedup or nil,
    computes = p == 'fp32' and 'fp32' or n == 0 and 'fp32' or p == 'fp16' and 'fp16' or 'bf16',
    why = why_of(p == 'fp16' and 3 or 1, code),
    kernel_calls = tonumber(p == 'fp16' and C.craft_f16_kernel_calls() or C.craft_bf16_kernel_calls()),
    f16_kernel_calls = tonumber(C.craft_f16_kernel_calls()),
    cache = { bytes = tonumber(st[0]), entries = tonumber(st[1]), hits = tonumber(st[2]),
      misses = tonumber(st[3]), cap_mb = tonumber(p == 'fp16' and C.craft_cl_f16_cache_cap_mb(-1)
        or C.craft_cpu_bf16_cache_cap_mb(-1)) } }
end

-- Forwards whose outputs join a graph (checkpoint segments, custom functions) run with grad off
-- but must compute what their recorded recomputation or backward assumes: fp32 under 'bf16'
-- (whose backward is fp32), bf16 under 'bf16-mixed' (whose recorded ops are bf16 too).
local function graph_forward(fn, ...)
  if C.craft_compute_precision() ~= 1 or not M.is_grad_enabled() then return M.no_grad(fn, ...) end
  return M.with_precision('fp32', M.no_grad, fn, ...)
end

---------------------------------------------------------------- custom nodes
-- State of each custom node lives here, keyed by an integer id passed to C as `ud`; C reports
-- freed nodes through craft_custom_take_freed and we drop their state on the next attach.
local pending, next_id = {}, 0
local freed_buf = ffi.new('int64_t[256]')

local function sweep()
  while true do
    local n = C.craft_custom_take_freed(freed_buf, 256)
    for i = 0, n - 1 do pending[tonumber(freed_buf[i])] = nil end
    if n < 256 then break end
  end
end

local dispatch = function(ud, n_out, grad_outputs, n_in, grad_inputs)
  local id = tonumber(ffi.cast('intptr_t', ud))
  local ok, err = pcall(function()
    local st = pending[id]
    if not st then error('custom backward: its state is gone (node ' .. id .. ')') end
    local gouts = {}
    for i = 0, n_out - 1 do
      local g = grad_outputs[i]
      gouts[i + 1] = g ~= nil and wrap(C.craft_tensor_retain(g)) or false
    end
    local gins = st.backward(gouts)
    for i = 0, n_in - 1 do
      local g = gins and gins[i + 1]
      grad_inputs[i] = (g and is_tensor(g)) and C.craft_tensor_retain(g._c) or nil
    end
  end)
  if not ok then return C.craft_set_error(8, tostring(err)) end
  return 0
end
local dispatch_cb = ffi.cast('craft_custom_backward_fn', dispatch)

-- A 1-element leaf requiring grad, added to every custom node's inputs so that the node is
-- recorded even when only parameters used inside the segment need gradients.
local anchor = T.zeros({ 1 }, { device = 'cpu' })   -- made at load, before any --device: say where
anchor:requires_grad_(true)

-- attach(name, inputs, outputs, backward): backward(grad_outputs) -> list of input grads.
-- inputs/outputs are lists of tensors; outputs must have been computed with grad off.
function M.attach(name, inputs, outputs, backward)
  local want = core.want
  want('autograd.attach', 'name', name, 'string')
  core.want_items('autograd.attach', 'inputs', inputs, 'tensor')
  core.want_items('autograd.attach', 'outputs', outputs, 'tensor')
  want('autograd.attach', 'backward', backward, 'function')
  sweep()
  next_id = next_id + 1
  local id = next_id
  pending[id] = { backward = function(gouts)
    local g = backward(gouts)
    return g
  end }
  local nin = #inputs + 1
  local ins = ffi.new('craft_tensor*[?]', nin)
  for i = 1, #inputs do ins[i - 1] = inputs[i]._c end
  ins[nin - 1] = anchor._c
  local nout = #outputs
  local outs = ffi.new('craft_tensor*[?]', nout)
  for i = 1, nout do outs[i - 1] = outputs[i]._c end
  check(C.craft_custom_attach(name, nin, ins, nout, outs, dispatch_cb, ffi.cast('void*', id),
    C.craft_custom_note_freed), 3)
end

local backward_multi = function(n, roots, grads)
  return C.craft_backward_multi(n, roots, grads, 0)
end
jit.off(backward_multi)
jit.off(dispatch)

---------------------------------------------------------------- checkpointing
-- checkpoint(fn, ...) returns fn(...), keeping none of fn's intermediate activations; during
-- backward fn is run again (same random stream) to recompute them. Tensor arguments that
-- require grad receive gradients; parameters used inside fn receive theirs directly.
function M.checkpoint(fn, ...)
  core.want('checkpoint', 'fn', fn, 'function')
  if not M.is_grad_enabled() then return fn(...) end
  local args = pack(...)
  local rng_seed, rng_offset = T.rng.seed, T.rng.offset
  -- the recomputation runs under the precision the forward had (graph_forward's), whatever the
  -- setting when backward runs
  local recompute_prec = C.craft_compute_precision() == 2 and 'bf16-mixed' or 'fp32'
  local outs = pack(graph_forward(fn, ...))
  local tin, tout = {}, {}
  for i = 1, args.n do if is_tensor(args[i]) then tin[#tin + 1] = args[i] end end
  for i = 1, outs.n do
    if is_tensor(outs[i]) then tout[#tout + 1] = outs[i]
    elseif outs[i] ~= nil then core.argerror('checkpoint: the function must return tensors only') end
  end
  if #tout == 0 then core.argerror('checkpoint: the function returned no tensor') end
  M.attach('checkpoint', tin, tout, function(gouts)
    -- recompute with the same arguments (detached) and the same random stream
    local det, map = {}, {}
    for i = 1, args.n do
      local a = args[i]
      if is_tensor(a) then
        local d = a:detach()
        if a.requires_grad then d:requires_grad_(true) end
        det[i] = d
        map[#map + 1] = d
      else
        det[i] = a
      end
    end
    local saved_seed, saved_off = T.rng.seed, T.rng.offset
    T.rng.seed, T.rng.offset = rng_seed, rng_offset
    local ok, r = pcall(M.with_precision, recompute_prec, function()
      return pack(M.enable_grad(fn, unpack(det, 1, args.n)))
    end)
    T.rng.seed, T.rng.offset = saved_seed, saved_off
    if not ok then error(r, 0) end
    local roots, grads, n = {}, {}, 0
    local k = 0
    for i = 1, r.n do
      if is_tensor(r[i]) then
        k = k + 1
        if gouts[k] and r[i].requires_grad then
          n = n + 1
          roots[n], grads[n] = r[i], gouts[k]
        end
      end
    end
    if n > 0 then
      local ra = ffi.new('craft_tensor*[?]', n)
      local ga = ffi.new('craft_tensor*[?]', n)
      for i = 1, n do ra[i - 1], ga[i - 1] = roots[i]._c, grads[i]._c end
      check(M.with_precision(recompute_prec, backward_multi, n, ra, ga), 2)
    end
    local gins = {}
    for i = 1, #map do gins[i] = map[i].grad or false end
    return gins
  end)
  return unpack(outs, 1, outs.n)
end

---------------------------------------------------------------- custom functions
-- Function(name, forward, backward): forward(ctx, ...) -> outputs (computed with grad off);
-- backward(ctx, grad_outputs...) -> grads for each tensor argument (nil where none).
function M.Function(name, forward, backward)
  core.want('autograd.Function', 'name', name, 'string')
  core.want('autograd.Function', 'forward', forward, 'function')
  core.want('autograd.Function', 'backward', backward, 'function')
  return function(...)
    local args = pack(...)
    local ctx = {}
    local outs = pack(graph_forward(forward, ctx, ...))
    if not M.is_grad_enabled() then return unpack(outs, 1, outs.n) end
    local tin, tout = {}, {}
    for i = 1, args.n do if is_tensor(args[i]) then tin[#tin + 1] = args[i] end end
    for i = 1, outs.n do if is_tensor(outs[i]) then tout[#tout + 1] = outs[i] end end
    M.attach(name, tin, tout, function(gouts)
      return { M.no_grad(backward, ctx, unpack(gouts, 1, #tout)) }
    end)
    return unpack(outs, 1, outs.n)
  end
end

return M
