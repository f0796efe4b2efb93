-- craft.functional (also craft.F): stateless differentiable functions over tensors, the
-- counterpart of torch.nn.functional. Arguments follow PyTorch; dims are 1-based.
local core = require 'craft.core'
local T = require 'craft.tensor'
local ffi, C, check, argerror = core.ffi, core.C, core.check, core.argerror
local cdim, wrap = T.cdim, T.wrap

local F = {}
local outp = ffi.new('craft_tensor*[1]')
local function call(rc)
  check(rc, 3)
  return wrap(outp[0])
end
-- argument checks (messages at the caller's line): a tensor's handle, an optional one, an
-- integer or a number with a default
local want = core.want
local function tc(v, fname, what) return want(fname, what, v, 'tensor')._c end
local function tc_opt(v, fname, what)
  if v == nil then return nil end return want(fname, what, v, 'tensor')._c
end
local function int(v, fname, what, default)
  if v == nil then return default end return want(fname, what, v, 'integer')
end
local function num(v, fname, what, default)
  if v == nil then return default end return want(fname, what, v, 'number')
end
local function opts(o, fname) return want(fname, 'options', o, 'table', true) or {} end
local function pair(v, default, fname, what)
  v = v == nil and default or v
  want(fname, what, v, 'integer|table')
  local a = ffi.new('int[2]')
  if type(v) == 'number' then a[0], a[1] = v, v
  else
    a[0], a[1] = want(fname, what .. '[1]', v[1], 'integer'), want(fname, what .. '[2]', v[2], 'integer')
  end
  return a
end

function F.linear(x, w, b)
  return call(C.craft_linear(tc(x, 'linear', 'input'), tc(w, 'linear', 'weight'),
    tc_opt(b, 'linear', 'bias'), outp))
end
function F.matmul(a, b) return call(C.craft_matmul(tc(a, 'matmul', 'a'), tc(b, 'matmul', 'b'), outp)) end

-- conv2d(x, w, b, {stride=1, padding=0, dilation=1, groups=1})
function F.conv2d(x, w, b, o)
  local f = 'conv2d'
  o = opts(o, f)
  return call(C.craft_conv2d(tc(x, f, 'input'), tc(w, f, 'weight'), tc_opt(b, f, 'bias'),
    pair(o.stride, 1, f, 'stride'),
    pair(o.padding, 0, f, 'padding'), pair(o.dilation, 1, f, 'dilation'), int(o.groups, f, 'groups', 1),
    outp))
end
function F.conv_transpose2d(x, w, b, o)
  local f = 'conv_transpose2d'
  o = opts(o, f)
  return call(C.craft_conv_transpose2d(tc(x, f, 'input'), tc(w, f, 'weight'), tc_opt(b, f, 'bias'),
    pair(o.stride, 1, f, 'stride'), pair(o.padding, 0, f, 'padding'),
    pair(o.output_padding, 0, f, 'output_padding'),
    pair(o.dilation, 1, f, 'dilation'), int(o.groups, f, 'groups', 1), outp))
end
-- group_norm(x, groups, w, b, eps, act): act names a unary op ('silu', 'gelu', ...) applied to the
-- result in the same pass (craft_group_norm_act: the same numbers as group_norm then x:act()).
function F.group_norm(x, groups, w, b, eps, act)
  local f = 'group_norm'
  if act ~= nil then
    local code = require('craft.tensor').UNARY[act]
    if not code then
      argerror(("group_norm: unknown activation %s (expected a unary op name such as 'silu')"):format(
        type(act) == 'string' and ("'" .. act .. "'") or tostring(act)))
    end
    return call(C.craft_group_norm_act(tc(x, f, 'input'), want(f, 'groups', groups, 'integer'),
      tc_opt(w, f, 'weight'), tc_opt(b, f, 'bias'), num(eps, f, 'eps', 1e-5), code, outp))
  end
  return call(C.craft_group_norm(tc(x, f, 'input'), want(f, 'groups', groups, 'integer'),
    tc_opt(w, f, 'weight'),
    tc_opt(b, f, 'bias'), num(eps, f, 'eps', 1e-5), outp))
end
-- geglu(x): a * gelu(g) for a, g the two halves of x's last dim (diffusers' GEGLU gate, exact
-- GELU), in one pass (craft_geglu: the same numbers as the slices, gelu and mul)
function F.geglu(x)
  return call(C.craft_geglu(tc(x, 'geglu', 'input'), outp))
end
-- layer_norm(x, normalized_shape (number of trailing dims or a shape table), w, b, eps)
function F.layer_norm(x, nshape, w, b, eps)
  local f = 'layer_norm'
  want(f, 'normalized_shape', nshape, 'integer|table', true)
  local n = type(nshape) == 'table' and #nshape or (nshape or 1)
  return call(C.craft_layer_norm(tc(x, f, 'input'), n, tc_opt(w, f, 'weight'), tc_opt(b, f, 'bias'),
    num(eps, f, 'eps', 1e-5), outp))
end
function F.softmax(x, dim) return call(C.craft_softmax(tc(x, 'softmax', 'input'), cdim(dim or -1), outp)) end
function F.log_softmax(x, dim)
  return call(C.craft_log_softmax(tc(x, 'log_softmax', 'input'), cdim(dim or -1), outp))
end
-- sdpa(q, k, v, {mask=, scale=, causal=})
function F.sdpa(q, k, v, o)
  local f = 'sdpa'
  o = opts(o, f)
  return call(C.craft_sdpa(tc(q, f, 'q'), tc(k, f, 'k'), tc(v, f, 'v'), tc_opt(o.mask, f, 'options.mask'),
    num(o.scale, f, 'options.scale', 0), o.causal and 1 or 0, outp))
end
F.scaled_dot_product_attention = F.sdpa

function F.silu(x) return x:silu() end
function F.gelu(x, approximate) return x:gelu(approximate) end
function F.quick_gelu(x) return x:quick_gelu() end
function F.relu(x) return x:relu() end
function F.sigmoid(x) return x:sigmoid() end
function F.tanh(x) return x:tanh() end

-- cat({tensors}, dim)
function F.cat(ts, dim)
  want('cat', 'tensors', ts, 'table')
  local n = #ts
  if n == 0 then argerror('cat: no tensors given') end
  local arr = ffi.new('craft_tensor*[?]', n)
  for i = 1, n do arr[i - 1] = tc(ts[i], 'cat', ('tensors[%d]'):format(i)) end
  return call(C.craft_concat(n, arr, cdim(dim or 1), outp))
end
F.concat = F.cat
function F.stack(ts, dim)
  dim = dim or 1
  want('stack', 'tensors', ts, 'table')
  local us = {}
  for i = 1, #ts do
    want('stack', ('tensors[%d]'):format(i), ts[i], 'tensor')
    us[i] = ts[i]:unsqueeze(dim)
  end
  return F.cat(us, dim)
end
-- split(x, size, dim): pieces of `size` along dim (the last one shorter), as torch.split
function F.split(x, size, dim)
  want('split', 'input', x, 'tensor')
  dim = dim or 1
  if type(size) ~= 'number' or size % 1 ~= 0 or size < 1 then
    argerror(('split: size must be a positive integer, got %s'):format(tostring(size)))
  end
  local n, r = x:size(dim), {}
  if n == 0 then return { x:narrow(dim, 1, 0) } end   -- torch: one empty piece
  local s = 1
  while s <= n do
    r[#r + 1] = x:narrow(dim, s, math.min(size, n - s + 1))
    s = s + size
  end
  return r
end
-- chunk(x, k, dim): at most k pieces of equal size (the last one shorter), as torch.chunk
function F.chunk(x, k, dim)
  want('chunk', 'input', x, 'tensor')
  dim = dim or 1
  if type(k) ~= 'number' or k % 1 ~= 0 or k < 1 then
    argerror(('chunk: k must be a positive integer, got %s'):format(tostring(k)))
  end
  -- an empty dim gives one empty piece (torch gives k)
  return F.split(x, math.max(1, math.ceil(x:size(dim) / k)), dim)
end

local PAD_MODES = { constant = 0, reflect = 1, replicate = 2 }
-- pad(x, {left, right, top, bottom, ...}, mode, value): pairs from the last dim, as torch
function F.pad(x, pads, mode, value)
  local xc = tc(x, 'pad', 'input')
  core.want_items('pad', 'pads', pads, 'integer')
  local m = PAD_MODES[mode or 'constant']
  if not m then argerror(('pad: unknown mode %q (constant, reflect, replicate)'):format(tostring(mode))) end
  if #pads % 2 ~= 0 then argerror('pad: pads must come in (before, after) pairs') end
  local a = ffi.new('int64_t[?]', math.max(#pads, 1))
  for i = 1, #pads do a[i - 1] = pads[i] end
  return call(C.craft_pad(xc, #pads / 2, a, m, num(value, 'pad', 'value', 0), outp))
end

-- interpolate(x, {size={h,w}} or {scale_factor=s}, mode='nearest'|'bilinear', align_corners)
function F.interpolate(x, o)
  local f = 'interpolate'
  local xc = tc(x, f, 'input')
  o = opts(o, f)
  local h, w
  if o.size then
    want(f, 'options.size', o.size, 'table')
    h, w = want(f, 'options.size[1]', o.size[1], 'integer'), want(f, 'options.size[2]', o.size[2], 'integer')
  elseif o.scale_factor then
    want(f, 'options.scale_factor', o.scale_factor, 'number')
    if x:dim() ~= 4 then
      argerror(('interpolate: input must be [N, C, H, W], got %s'):format(core.describe(x)))
    end
    h, w = math.floor(x:size(3) * o.scale_factor), math.floor(x:size(4) * o.scale_factor)
  else argerror('interpolate: give size or scale_factor') end
  local mode = o.mode or 'nearest'
  local m = mode == 'nearest' and 0 or (mode == 'bilinear' and 1 or nil)
  if not m then argerror(('interpolate: unknown mode %q (nearest, bilinear)'):format(mode)) end
  return call(C.craft_interpolate(xc, h, w, m, o.align_corners and 1 or 0, outp))
end
function F.avg_pool2d(x, kernel, stride, padding)
  local f = 'avg_pool2d'
  want(f, 'kernel', kernel, 'integer')
  return call(C.craft_avg_pool2d(tc(x, f, 'input'), kernel, int(stride, f, 'stride', kernel),
    int(padding, f, 'padding', 0), outp))
end
function F.embedding(idx, weight)
  return call(C.craft_embedding(tc(weight, 'embedding', 'weight'), tc(idx, 'embedding', 'indices'), outp))
end
-- timestep_embedding(t, dim, {flip_sin_to_cos=false, downscale_freq_shift=1, scale=1, max_period=10000})
function F.timestep_embedding(t, dim, o)
  local f = 'timestep_embedding'
  o = opts(o, f)
  return call(C.craft_timestep_embedding(tc(t, f, 'timesteps'), want(f, 'dim', dim, 'integer'),
    o.flip_sin_to_cos and 1 or 0,
    num(o.downscale_freq_shift, f, 'options.downscale_freq_shift', 1), num(o.scale, f, 'options.scale', 1),
    num(o.max_period, f, 'options.max_period', 10000), outp))
end
function F.normalize(x, dim, eps)
  return call(C.craft_l2_normalize(tc(x, 'normalize', 'input'), cdim(dim or -1),
    num(eps, 'normalize', 'eps', 1e-12), outp))
end
function F.cosine_similarity(a, b, dim, eps)
  local f = 'cosine_similarity'
  return call(C.craft_cosine_similarity(tc(a, f, 'a'), tc(b, f, 'b'), cdim(dim or -1),
    num(eps, f, 'eps', 1e-8), outp))
end
local RED = { none = 0, mean = 1, sum = 2 }
local function red(r)
  local v = RED[r or 'mean']
  if not v then argerror(('unknown reduction %q (none, mean, sum)'):format(tostring(r))) end
  return v
end
function F.cross_entropy(logits, targets, o)
  local f = 'cross_entropy'
  o = opts(o, f)
  return call(C.craft_cross_entropy(tc(logits, f, 'logits'), tc(targets, f, 'targets'), red(o.reduction),
    num(o.label_smoothing, f, 'options.label_smoothing', 0), outp))
end
function F.mse_loss(a, b, reduction)
  return call(C.craft_mse_loss(tc(a, 'mse_loss', 'input'), tc(b, 'mse_loss', 'target'), red(reduction), outp))
end
function F.where(cond, a, b)
  return call(C.craft_where(tc(cond, 'where', 'cond'), tc(a, 'where', 'a'), tc(b, 'where', 'b'), outp))
end
function F.lerp(a, b, w)
  return call(C.craft_lerp(tc(a, 'lerp', 'a'), tc(b, 'lerp', 'b'), want('lerp', 'weight', w, 'number'), outp))
end

return F
