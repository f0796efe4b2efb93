-- craft.tensor: the Tensor class. A Lua table { _c = craft_tensor* } with operators and
-- methods; every method calls the C engine through `check`, so engine errors surface as Lua
-- errors at the caller's line. Dims are 1-based like Lua (negative counts from the end);
-- dimension ORDER is PyTorch's (NCHW).
local core = require 'craft.core'
local ffi, C, check, argerror = core.ffi, core.C, core.check, core.argerror

local Tensor = {}
Tensor.__index = Tensor
local M = { Tensor = Tensor }

local outp = ffi.new('craft_tensor*[1]')
local outp2 = ffi.new('craft_tensor*[1]')

-- LuaJIT's collector sees only the small Lua wrapper of a tensor, not the engine memory behind
-- it, so without help a loop can hold gigabytes of dead activations. Every wrapper made adds its
-- storage's bytes to a counter; past a budget a full collection runs, and the budget grows with
-- the memory still live afterwards (like a generational trigger), by an eighth of it: dead
-- activations then add at most an eighth to a model's weights, and a full collection of the
-- small Lua heap beside them costs next to nothing. CRAFT_GC_MB sets the floor.
local gc_floor = (tonumber(os.getenv('CRAFT_GC_MB')) or 64) * 2 ^ 20
local gc_budget, gc_count = gc_floor, 0
local pool_stats = ffi.new('craft_pool_stats')
local function wrap(ptr)
  local s = ptr.storage
  if s ~= nil then
    gc_count = gc_count + tonumber(s.nbytes)
    if gc_count > gc_budget then
      collectgarbage()
      C.craft_pool_get_stats(pool_stats)
      gc_count = 0
      gc_budget = math.max(gc_floor, 0.125 * tonumber(pool_stats.in_use))
    end
  end
  return setmetatable({ _c = ffi.gc(ptr, C.craft_tensor_release) }, Tensor)
end
M.wrap = wrap

-- Wrap the out-pointer after a successful call (level: how far up the user's frame is).
local function call(level, rc)
  check(rc, level + 1)
  return wrap(outp[0])
end

local function is_tensor(x) return getmetatable(x) == Tensor end
M.is_tensor = is_tensor
-- the handle of a tensor argument (a string's ._c would be nil: the engine would get NULL)
local function tensor_arg(v, fname, what)
  if not is_tensor(v) then
    argerror(('%s: %s must be a tensor, got %s'):format(fname, what, core.describe(v)))
  end
  return v._c
end

-- Lua dim (1-based, negatives from the end) -> C dim (0-based, negatives kept)
local function cdim(d)
  if type(d) ~= 'number' or d == 0 or d % 1 ~= 0 then
    argerror(('dim must be a non-zero integer (1-based, negative from the end), got %s'):format(tostring(d)))
  end
  return d > 0 and d - 1 or d
end
M.cdim = cdim

local function shape_array(shape)
  if type(shape) ~= 'table' then argerror('shape must be a table of sizes, got ' .. type(shape)) end
  local n = #shape
  if n > 8 then argerror(('shape has %d dims (at most 8)'):format(n)) end
  local a = ffi.new('int64_t[?]', math.max(n, 1))
  for i = 1, n do
    local s = shape[i]
    if type(s) ~= 'number' or s % 1 ~= 0 then
      argerror(('shape entry %d is %s, not an integer'):format(i, tostring(s)))
    end
    a[i - 1] = s
  end
  return a, n
end
M.shape_array = shape_array

-- varargs or a table -> shape table
local function shape_args(...)
  local first = ...
  if type(first) == 'table' and not is_tensor(first) then return first end
  return { ... }
end

---------------------------------------------------------------- properties
local props = {}
function props.shape(t)
  local c, s = t._c, {}
  for i = 0, c.ndim - 1 do s[i + 1] = tonumber(c.shape[i]) end
  return s
end
function props.ndim(t) return tonumber(t._c.ndim) end
function props.dtype(t) return core.DTYPE_NAMES[tonumber(t._c.dtype)] end
function props.device(t)
  local d = tonumber(t._c.device)
  return d == 0 and 'cpu' or ('cl:' .. (d - 1))
end
function props.requires_grad(t) return t._c.requires_grad ~= 0 end
function props.is_leaf(t) return t._c.node == nil end
function props.grad(t)
  local g = t._c.grad
  if g == nil then return nil end
  return wrap(C.craft_tensor_retain(g))
end
function props.grad_fn(t)
  local s = ffi.string(C.craft_grad_fn_name(t._c))
  return s ~= '' and s or nil
end

Tensor.__index = function(t, k)
  local m = Tensor[k]
  if m ~= nil then return m end
  local p = props[k]
  if p then return p(t) end
  return nil
end

Tensor.__newindex = function(t, k, v)
  if k == 'requires_grad' then
    check(C.craft_set_requires_grad(t._c, v and 1 or 0), 2)
  elseif k == 'grad' then
    check(C.craft_set_grad(t._c, v ~= nil and tensor_arg(v, 'grad', 'the new gradient') or nil), 2)
  else
    rawset(t, k, v)
  end
end

function Tensor:size(d)
  if d == nil then return props.shape(self) end
  local c = self._c
  if type(d) ~= 'number' or d % 1 ~= 0 then
    argerror(('size: dim must be an integer, got %s'):format(tostring(d)))
  end
  local i = d > 0 and d - 1 or c.ndim + d
  if i < 0 or i >= c.ndim then argerror(('size: dim %d out of range for %d dims'):format(d, c.ndim)) end
  return tonumber(c.shape[i])
end
function Tensor:dim() return tonumber(self._c.ndim) end
function Tensor:numel() return tonumber(self._c.numel) end
function Tensor:is_contiguous() return C.craft_is_contiguous(self._c) ~= 0 end
-- The address of element 0 in host memory: CPU tensors only (a device tensor's storage is a
-- device buffer; read it with :flat() or move it with :to('cpu')).
function Tensor:data_ptr()
  if self._c.device ~= 0 then
    argerror(('data_ptr: the tensor %s is on %s, not in host memory; move it with :to(\'cpu\')')
      :format(core.describe(self), props.device(self)))
  end
  return C.craft_tensor_data(self._c)
end
-- After writing through data_ptr(): bumps the storage's version, which autograd's saved-tensor
-- check and the bf16 weight cache (craft.set_precision) key on. Returns self.
function Tensor:mark_written()
  check(C.craft_tensor_mark_written(self._c), 2)
  return self
end

---------------------------------------------------------------- creation
local rng = { seed = 0, offset = 0 }
M.rng = rng
function M.manual_seed(seed)
  rng.seed = seed
  rng.offset = 0
end
-- Reserve `n` random numbers from the global stream: returns (seed, offset).
function M.take_random(n)
  local off = rng.offset
  rng.offset = rng.offset + math.ceil(n / 4) * 4
  return rng.seed, off
end

local function opts_of(o) return type(o) == 'table' and o or {} end

-- The device a new tensor goes to: o.device, else the current device (craft.device.default:
-- --device, craft.set_default_device, craft.device.scope). Loaded on first use: craft.device
-- needs this module's callers' errors, not the reverse.
local devices
local function device_of(o)
  devices = devices or require 'craft.device'
  if o.device ~= nil then return devices.code(o.device) end
  return devices.default_code()
end
M.device_of = device_of

-- t on `code` (t itself when it is there already): for tensors made on the host first
local function place(t, code, level)
  if code == 0 or tonumber(t._c.device) == code then return t end
  return call(level + 2, C.craft_to_device(t._c, code, outp))
end

local function finish_new(t, o)
  if o.requires_grad then check(C.craft_set_requires_grad(t._c, 1), 3) end
  return t
end

function M.empty(shape, o)
  o = opts_of(o)
  local a, n = shape_array(shape)
  return finish_new(call(2, C.craft_empty(n, a, core.dtype_code(o.dtype), device_of(o), outp)), o)
end
function M.zeros(shape, o)
  o = opts_of(o)
  local a, n = shape_array(shape)
  return finish_new(call(2, C.craft_zeros(n, a, core.dtype_code(o.dtype), device_of(o), outp)), o)
end
function M.full(shape, value, o)
  o = opts_of(o)
  local a, n = shape_array(shape)
  core.want('full', 'value', value, 'number')
  local dev = device_of(o)
  if dev == 0 then
    return finish_new(call(2, C.craft_full(n, a, core.dtype_code(o.dtype), value, outp)), o)
  end
  local t = call(2, C.craft_empty(n, a, core.dtype_code(o.dtype), dev, outp))
  check(C.craft_fill_(t._c, value), 2)
  return finish_new(t, o)
end
function M.ones(shape, o) return M.full(shape, 1, o) end

local function random_tensor(fill, shape, o)
  o = opts_of(o)
  local a, n = shape_array(shape)
  local t = call(3, C.craft_empty(n, a, 0, device_of(o), outp))
  local seed, off
  if o.seed then seed, off = o.seed, o.offset or 0 else seed, off = M.take_random(t:numel()) end
  check(fill(t._c, seed, off), 3)
  return finish_new(t, o)
end
function M.randn(shape, o) return random_tensor(C.craft_randn_, shape, o) end
function M.rand(shape, o) return random_tensor(C.craft_rand_, shape, o) end

function M.arange(a, b, step, o)
  if b == nil then a, b = 0, a end
  core.want('arange', 'start', a, 'number')
  core.want('arange', 'end', b, 'number')
  core.want('arange', 'step', step, 'number', true)
  o = opts_of(o)
  local t = call(2, C.craft_arange(a, b, step or 1, core.dtype_code(o.dtype or 'f32'), outp))
  return place(t, device_of(o), 2)
end

-- Nested Lua tables (or a number) -> tensor.
function M.tensor(data, o)
  o = opts_of(o)
  local shape, flat = {}, {}
  if type(data) == 'number' then
    flat[1] = data
  elseif type(data) == 'table' then
    local x = data
    while type(x) == 'table' do
      shape[#shape + 1] = #x
      x = x[1]
    end
    local function walk(t, depth)
      if #t ~= shape[depth] then
        argerror(('tensor: ragged nested table at depth %d (%d vs %d entries)'):format(depth, #t,
          shape[depth]))
      end
      for i = 1, #t do
        local v = t[i]
        if depth < #shape then
          if type(v) ~= 'table' then argerror('tensor: ragged nested table') end
          walk(v, depth + 1)
        else
          if type(v) ~= 'number' then argerror(('tensor: entry is %s, not a number'):format(type(v))) end
          flat[#flat + 1] = v
        end
      end
    end
    walk(data, 1)
  else
    argerror('tensor: expected a number or a nested table of numbers, got ' .. type(data))
  end
  local n = #flat
  local buf = ffi.new('double[?]', math.max(n, 1))
  for i = 1, n do buf[i - 1] = flat[i] end
  local a, nd = shape_array(shape)
  local t = call(2, C.craft_from_data(nd, a, core.DTYPES.f64, buf, outp))
  local dt = core.dtype_code(o.dtype or 'f32')
  if dt ~= core.DTYPES.f64 then t = call(2, C.craft_to_dtype(t._c, dt, outp)) end
  return finish_new(place(t, device_of(o), 2), o)
end

-- A tensor over (a copy of) a raw host buffer, on the current device unless o.device says.
function M.from_buffer(ptr, shape, dtype, o)
  core.want('from_buffer', 'pointer', ptr, 'cdata')
  local a, n = shape_array(shape)
  local t = call(2, C.craft_from_data(n, a, core.dtype_code(dtype or 'f32'), ptr, outp))
  return place(t, device_of(opts_of(o)), 2)
end

---------------------------------------------------------------- element access
function Tensor:item()
  local v = ffi.new('double[1]')
  check(C.craft_item(self._c, v), 2)
  return tonumber(v[0])
end

local function index_array(self, idx)
  local c = self._c
  if #idx ~= c.ndim then argerror(('index has %d entries for a %d-dim tensor'):format(#idx, c.ndim)) end
  local a = ffi.new('int64_t[8]')
  for i = 1, #idx do
    local k = core.want('index', ('index %d'):format(i), idx[i], 'integer')
    a[i - 1] = k > 0 and k - 1 or k
  end
  return a
end
function Tensor:get(...)
  local v = ffi.new('double[1]')
  check(C.craft_get(self._c, index_array(self, { ... }), v), 2)
  return tonumber(v[0])
end
function Tensor:set(value, ...)
  core.want('set', 'value', value, 'number')
  check(C.craft_set(self._c, index_array(self, { ... }), value), 2)
  return self
end

-- Flat Lua array of the values (row-major).
function Tensor:flat()
  local n = self:numel()
  local buf = ffi.new('double[?]', math.max(n, 1))
  check(C.craft_tensor_read(self._c, core.DTYPES.f64, buf, n * 8), 2)
  local r = {}
  for i = 1, n do r[i] = tonumber(buf[i - 1]) end
  return r
end

function Tensor:tolist()
  local flat, shape = self:flat(), self.shape
  if #shape == 0 then return flat[1] end
  local pos = 0
  local function build(d)
    local r = {}
    for i = 1, shape[d] do
      if d == #shape then pos = pos + 1; r[i] = flat[pos] else r[i] = build(d + 1) end
    end
    return r
  end
  return build(1)
end

---------------------------------------------------------------- views and copies
function Tensor:reshape(...)
  local a, n = shape_array(shape_args(...))
  return call(2, C.craft_reshape(self._c, n, a, outp))
end
Tensor.view = Tensor.reshape
-- flatten(from): keep dims before `from` (1-based, negative from the end), merge the rest
function Tensor:flatten(from)
  from = from or 1
  local nd = math.max(self._c.ndim, 1)   -- a 0-dim tensor flattens to one element, as in torch
  if type(from) ~= 'number' or from % 1 ~= 0 or from == 0 or from > nd or from < -nd then
    argerror(('flatten: start dim must be an integer in 1..%d or -%d..-1, got %s'):format(nd, nd,
      tostring(from)))
  end
  if from < 0 then from = nd + from + 1 end
  local s = self.shape
  local ns = {}
  for i = 1, from - 1 do ns[i] = s[i] end
  ns[from] = -1
  local a, n = shape_array(ns)
  return call(2, C.craft_reshape(self._c, n, a, outp))
end
function Tensor:permute(...)
  local p = shape_args(...)
  local a = ffi.new('int[8]')
  if #p ~= self._c.ndim then
    argerror(('permute: %d dims given for a %d-dim tensor'):format(#p, self._c.ndim))
  end
  for i = 1, #p do a[i - 1] = cdim(p[i]) end
  return call(2, C.craft_permute(self._c, a, outp))
end
function Tensor:transpose(d0, d1)
  return call(2, C.craft_transpose(self._c, cdim(d0 or 1), cdim(d1 or 2), outp))
end
function Tensor:t() return call(2, C.craft_transpose(self._c, 0, 1, outp)) end
-- slice(dim, start, stop, step): 1-based, stop inclusive (like string.sub); negatives from the end.
function Tensor:slice(dim, start, stop, step)
  core.want('slice', 'dim', dim, 'integer')
  core.want('slice', 'start', start, 'integer', true)
  core.want('slice', 'stop', stop, 'integer', true)
  core.want('slice', 'step', step, 'integer', true)
  local n = self:size(dim)
  start = start or 1
  stop = stop or n
  if start < 0 then start = n + start + 1 end
  if stop < 0 then stop = n + stop + 1 end
  return call(2, C.craft_slice(self._c, cdim(dim), start - 1, stop, step or 1, outp))
end
function Tensor:narrow(dim, start, length)
  core.want('narrow', 'start', start, 'integer')
  core.want('narrow', 'length', length, 'integer')
  return call(2, C.craft_slice(self._c, cdim(dim), start - 1, start - 1 + length, 1, outp))
end
-- select(dim, i): drop `dim`, keep index i (1-based)
function Tensor:select(dim, i)
  core.want('select', 'dim', dim, 'integer')
  core.want('select', 'index', i, 'integer')
  local n = self:size(dim)
  if i < 0 then i = n + i + 1 end
  local s = call(2, C.craft_slice(self._c, cdim(dim), i - 1, i, 1, outp))
  return call(2, C.craft_squeeze(s._c, cdim(dim), outp))
end
function Tensor:expand(...)
  local a, n = shape_array(shape_args(...))
  return call(2, C.craft_expand(self._c, n, a, outp))
end
function Tensor:expand_as(o)
  tensor_arg(o, 'expand_as', 'other')
  return self:expand(o.shape)
end
function Tensor:unsqueeze(d)
  -- 1-based insert position: unsqueeze(1) adds a leading dim; negative counts from the end
  core.want('unsqueeze', 'dim', d, 'integer')
  local cd = d > 0 and d - 1 or d
  return call(2, C.craft_unsqueeze(self._c, cd, outp))
end
function Tensor:squeeze(d)
  return call(2, C.craft_squeeze(self._c, d and cdim(d) or -1000, outp))
end
function Tensor:contiguous() return call(2, C.craft_contiguous(self._c, outp)) end
function Tensor:clone() return call(2, C.craft_clone(self._c, outp)) end
function Tensor:detach() return call(2, C.craft_detach(self._c, outp)) end
-- x:to('cl:0') / x:to('cpu') copies to a device (differentiably; x itself when already there);
-- x:to('f16') converts the dtype.
function Tensor:to(what)
  if type(what) == 'string' and (what == 'cpu' or what:match('^cl:')) then
    return call(2, C.craft_to_device(self._c, require('craft.device').code(what), outp))
  end
  return call(2, C.craft_to_dtype(self._c, core.dtype_code(what), outp))
end
function Tensor:float() return self:to('f32') end
function Tensor:half() return self:to('f16') end
function Tensor:long() return self:to('i64') end
function Tensor:copy_(src)
  check(C.craft_copy_(self._c, tensor_arg(src, 'copy_', 'source')), 2)
  return self
end
function Tensor:fill_(v)
  check(C.craft_fill_(self._c, core.want('fill_', 'value', v, 'number')), 2)
  return self
end
function Tensor:zero_() return self:fill_(0) end
function Tensor:add_(other, alpha)
  core.want('add_', 'alpha', alpha, 'number', true)
  if type(other) == 'number' then
    local s = M.full({}, other, { device = tonumber(self._c.device) })
    check(C.craft_axpy_(self._c, alpha or 1, s._c), 2)
  else
    check(C.craft_axpy_(self._c, alpha or 1, tensor_arg(other, 'add_', 'other')), 2)
  end
  return self
end
function Tensor:mul_(s)
  check(C.craft_scale_(self._c, core.want('mul_', 'factor', s, 'number')), 2)
  return self
end
function Tensor:normal_(mean, std, seed)
  core.want('normal_', 'mean', mean, 'number', true)
  core.want('normal_', 'std', std, 'number', true)
  core.want('normal_', 'seed', seed, 'count', true)
  local s, off = M.take_random(self:numel())
  check(C.craft_randn_(self._c, seed or s, seed and 0 or off), 2)
  if (std or 1) ~= 1 then check(C.craft_scale_(self._c, std), 2) end
  if (mean or 0) ~= 0 then self:add_(mean) end
  return self
end
function Tensor:uniform_(lo, hi, seed)
  core.want('uniform_', 'low', lo, 'number', true)
  core.want('uniform_', 'high', hi, 'number', true)
  core.want('uniform_', 'seed', seed, 'count', true)
  local s, off = M.take_random(self:numel())
  check(C.craft_rand_(self._c, seed or s, seed and 0 or off), 2)
  lo, hi = lo or 0, hi or 1
  if hi - lo ~= 1 then check(C.craft_scale_(self._c, hi - lo), 2) end
  if lo ~= 0 then self:add_(lo) end
  return self
end

---------------------------------------------------------------- autograd
function Tensor:requires_grad_(flag)
  if flag == nil then flag = true end
  check(C.craft_set_requires_grad(self._c, flag and 1 or 0), 2)
  return self
end
local backward_impl = function(self, grad, retain_graph)
  return C.craft_backward(self._c, grad ~= nil and tensor_arg(grad, 'backward', 'gradient') or nil,
    retain_graph and 1 or 0)
end
-- The backward walk may call back into Lua (checkpoint, custom ops): keep it off the JIT.
jit.off(backward_impl)
function Tensor:backward(grad, retain_graph)
  check(backward_impl(self, grad, retain_graph), 2)
end
function Tensor:zero_grad() C.craft_zero_grad(self._c) end

---------------------------------------------------------------- arithmetic
local BIN = { add = 0, sub = 1, mul = 2, div = 3, pow = 4, maximum = 5, minimum = 6 }
local function to_tensor_like(x) return is_tensor(x) and x or nil end

local function binop(op, a, b, level)
  level = (level or 2) + 1
  local ta, tb = to_tensor_like(a), to_tensor_like(b)
  if ta and tb then return call(level, C.craft_binary(op, ta._c, tb._c, outp)) end
  if ta and type(b) == 'number' then return call(level, C.craft_binary_scalar(op, ta._c, b, 0, outp)) end
  if tb and type(a) == 'number' then return call(level, C.craft_binary_scalar(op, tb._c, a, 1, outp)) end
  argerror(('arithmetic on %s and %s (expected tensors or numbers)'):format(type(a), type(b)))
end
M.binop = binop

Tensor.__add = function(a, b) return binop(BIN.add, a, b) end
Tensor.__sub = function(a, b) return binop(BIN.sub, a, b) end
Tensor.__mul = function(a, b) return binop(BIN.mul, a, b) end
Tensor.__div = function(a, b) return binop(BIN.div, a, b) end
Tensor.__pow = function(a, b) return binop(BIN.pow, a, b) end
Tensor.__unm = function(a) return call(2, C.craft_unary(0, a._c, outp)) end
function Tensor:add(b) return binop(BIN.add, self, b) end
function Tensor:sub(b) return binop(BIN.sub, self, b) end
function Tensor:mul(b) return binop(BIN.mul, self, b) end
function Tensor:div(b) return binop(BIN.div, self, b) end
function Tensor:pow(b) return binop(BIN.pow, self, b) end
function Tensor:maximum(b) return binop(BIN.maximum, self, b) end
function Tensor:minimum(b) return binop(BIN.minimum, self, b) end

local UN = { neg = 0, exp = 1, log = 2, sqrt = 3, rsqrt = 4, abs = 5, sin = 6, cos = 7, tanh = 8, sigmoid = 9,
  relu = 10, silu = 11, gelu = 12, gelu_tanh = 13, quick_gelu = 14, square = 15, reciprocal = 16,
  softplus = 17,
  log1p = 18 }
M.UNARY = UN
for name, code in pairs(UN) do
  Tensor[name] = function(self) return call(2, C.craft_unary(code, self._c, outp)) end
end
function Tensor:gelu(approximate)
  return call(2, C.craft_unary(approximate == 'tanh' and UN.gelu_tanh or UN.gelu, self._c, outp))
end
function Tensor:clamp(lo, hi)
  core.want('clamp', 'min', lo, 'number', true)
  core.want('clamp', 'max', hi, 'number', true)
  return call(2, C.craft_clamp(self._c, lo or -math.huge, hi or math.huge, outp))
end

local CMP = { eq = 0, ne = 1, lt = 2, le = 3, gt = 4, ge = 5 }
for name, code in pairs(CMP) do
  Tensor[name] = function(self, other)
    if type(other) == 'number' then other = M.full({}, other, { device = tonumber(self._c.device) }) end
    return call(2, C.craft_compare(code, self._c, tensor_arg(other, name, 'other'), outp))
  end
end

---------------------------------------------------------------- reductions
local function dims_array(dims)
  if dims == nil then return nil, 0 end
  if type(dims) == 'number' then dims = { dims } end
  if type(dims) ~= 'table' or is_tensor(dims) then
    argerror(('dims must be a dim or a list of dims, got %s'):format(core.describe(dims)))
  end
  if #dims > 8 then argerror(('%d dims given (tensors have at most 8)'):format(#dims)) end
  local a = ffi.new('int[8]')
  for i = 1, #dims do a[i - 1] = cdim(dims[i]) end
  return a, #dims
end
function Tensor:sum(dims, keepdim)
  local a, n = dims_array(dims)
  return call(2, C.craft_sum(self._c, n, a, keepdim and 1 or 0, outp))
end
function Tensor:mean(dims, keepdim)
  local a, n = dims_array(dims)
  return call(2, C.craft_mean(self._c, n, a, keepdim and 1 or 0, outp))
end
-- var(dims, {correction=1, keepdim=false}) ; correction 1 is the unbiased estimate (torch default)
function Tensor:var(dims, o)
  o = opts_of(o)
  local a, n = dims_array(dims)
  local corr = o.correction
  if corr == nil then corr = (o.unbiased == false) and 0 or 1 end
  return call(2, C.craft_var(self._c, n, a, corr, o.keepdim and 1 or 0, outp))
end
function Tensor:std(dims, o) return self:var(dims, o):sqrt() end
-- max(dim, keepdim) -> values, indices (int64, 1-based? no: 0-based like the engine; use :long())
function Tensor:max(dim, keepdim)
  if dim == nil then
    return call(2, C.craft_max(self:reshape(-1)._c, 0, 0, outp, nil))
  end
  check(C.craft_max(self._c, cdim(dim), keepdim and 1 or 0, outp, outp2), 2)
  return wrap(outp[0]), wrap(outp2[0])
end
function Tensor:min(dim, keepdim)
  if dim == nil then
    return call(2, C.craft_min(self:reshape(-1)._c, 0, 0, outp, nil))
  end
  check(C.craft_min(self._c, cdim(dim), keepdim and 1 or 0, outp, outp2), 2)
  return wrap(outp[0]), wrap(outp2[0])
end
-- argmax(dim): int64 indices, 0-based as stored (add 1 for Lua indexing)
function Tensor:argmax(dim, keepdim)
  return call(2, C.craft_argmax(self._c, cdim(dim or -1), keepdim and 1 or 0, outp))
end

---------------------------------------------------------------- linear algebra, nn functions
function Tensor:matmul(b) return call(2, C.craft_matmul(self._c, tensor_arg(b, 'matmul', 'b'), outp)) end
function Tensor:softmax(dim) return call(2, C.craft_softmax(self._c, cdim(dim or -1), outp)) end
function Tensor:log_softmax(dim) return call(2, C.craft_log_softmax(self._c, cdim(dim or -1), outp)) end

-- printing: craft.tensor_print
function Tensor:__tostring() return require('craft.tensor_print')(self) end

Tensor.__len = function(t) return t._c.ndim > 0 and tonumber(t._c.shape[0]) or 0 end

return M
