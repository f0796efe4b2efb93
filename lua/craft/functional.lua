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
local function c_or_nil(t) return t and t._c or nil end
local function pair(v, default)
  v = v == nil and default or v
  local a = ffi.new('int[2]')
  if type(v) == 'number' then a[0], a[1] = v, v else a[0], a[1] = v[1], v[2] end
  return a
end

function F.linear(x, w, b) return call(C.craft_linear(x._c, w._c, c_or_nil(b), outp)) end
function F.matmul(a, b) return call(C.craft_matmul(a._c, b._c, outp)) end

-- conv2d(x, w, b, {stride=1, padding=0, dilation=1, groups=1})
function F.conv2d(x, w, b, o)
  o = o or {}
  return call(C.craft_conv2d(x._c, w._c, c_or_nil(b), pair(o.stride, 1), pair(o.padding, 0),
    pair(o.dilation, 1), o.groups or 1, outp))
end
function F.conv_transpose2d(x, w, b, o)
  o = o or {}
  return call(C.craft_conv_transpose2d(x._c, w._c, c_or_nil(b), pair(o.stride, 1), pair(o.padding, 0),
    pair(o.output_padding, 0), pair(o.dilation, 1), o.groups or 1, outp))
end
function F.group_norm(x, groups, w, b, eps)
  return call(C.craft_group_norm(x._c, groups, c_or_nil(w), c_or_nil(b), eps or 1e-5, outp))
end
-- layer_norm(x, normalized_shape (number of trailing dims or a shape table), w, b, eps)
function F.layer_norm(x, nshape, w, b, eps)
  local n = type(nshape) == 'table' and #nshape or (nshape or 1)
  return call(C.craft_layer_norm(x._c, n, c_or_nil(w), c_or_nil(b), eps or 1e-5, outp))
end
function F.softmax(x, dim) return call(C.craft_softmax(x._c, cdim(dim or -1, 2), outp)) end
function F.log_softmax(x, dim) return call(C.craft_log_softmax(x._c, cdim(dim or -1, 2), outp)) end
-- sdpa(q, k, v, {mask=, scale=, causal=})
function F.sdpa(q, k, v, o)
  o = o or {}
  return call(C.craft_sdpa(q._c, k._c, v._c, c_or_nil(o.mask), o.scale or 0, o.causal and 1 or 0, outp))
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
  local n = #ts
  if n == 0 then argerror('cat: no tensors given') end
  local arr = ffi.new('craft_tensor*[?]', n)
  for i = 1, n do arr[i - 1] = ts[i]._c end
  return call(C.craft_concat(n, arr, cdim(dim or 1, 2), outp))
end
F.concat = F.cat
function F.stack(ts, dim)
  dim = dim or 1
  local us = {}
  for i = 1, #ts do us[i] = ts[i]:unsqueeze(dim) end
  return F.cat(us, dim)
end
-- split(x, size, dim): pieces of `size` along dim (the last one shorter), as torch.split
function F.split(x, size, dim)
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
  local m = PAD_MODES[mode or 'constant']
  if not m then argerror(('pad: unknown mode %q (constant, reflect, replicate)'):format(tostring(mode))) end
  if #pads % 2 ~= 0 then argerror('pad: pads must come in (before, after) pairs') end
  local a = ffi.new('int64_t[?]', math.max(#pads, 1))
  for i = 1, #pads do a[i - 1] = pads[i] end
  return call(C.craft_pad(x._c, #pads / 2, a, m, value or 0, outp))
end

-- interpolate(x, {size={h,w}} or {scale_factor=s}, mode='nearest'|'bilinear', align_corners)
function F.interpolate(x, o)
  o = o or {}
  local h, w
  if o.size then h, w = o.size[1], o.size[2]
  elseif o.scale_factor then
    h, w = math.floor(x:size(3) * o.scale_factor), math.floor(x:size(4) * o.scale_factor)
  else argerror('interpolate: give size or scale_factor') end
  local mode = o.mode or 'nearest'
  local m = mode == 'nearest' and 0 or (mode == 'bilinear' and 1 or nil)
  if not m then argerror(('interpolate: unknown mode %q (nearest, bilinear)'):format(mode)) end
  return call(C.craft_interpolate(x._c, h, w, m, o.align_corners and 1 or 0, outp))
end
function F.avg_pool2d(x, kernel, stride, padding)
  return call(C.craft_avg_pool2d(x._c, kernel, stride or kernel, padding or 0, outp))
end
function F.embedding(idx, weight) return call(C.craft_embedding(weight._c, idx._c, outp)) end
-- timestep_embedding(t, dim, {flip_sin_to_cos=false, downscale_freq_shift=1, scale=1, max_period=10000})
function F.timestep_embedding(t, dim, o)
  o = o or {}
  return call(C.craft_timestep_embedding(t._c, dim, o.flip_sin_to_cos and 1 or 0,
    o.downscale_freq_shift or 1, o.scale or 1, o.max_period or 10000, outp))
end
function F.normalize(x, dim, eps) return call(C.craft_l2_normalize(x._c, cdim(dim or -1, 2), eps or 1e-12, outp)) end
function F.cosine_similarity(a, b, dim, eps)
  return call(C.craft_cosine_similarity(a._c, b._c, cdim(dim or -1, 2), eps or 1e-8, outp))
end
local RED = { none = 0, mean = 1, sum = 2 }
local function red(r)
  local v = RED[r or 'mean']
  if not v then argerror(('unknown reduction %q (none, mean, sum)'):format(tostring(r))) end
  return v
end
function F.cross_entropy(logits, targets, o)
  o = o or {}
  return call(C.craft_cross_entropy(logits._c, targets._c, red(o.reduction), o.label_smoothing or 0, outp))
end
function F.mse_loss(a, b, reduction) return call(C.craft_mse_loss(a._c, b._c, red(reduction), outp)) end
function F.where(cond, a, b) return call(C.craft_where(cond._c, a._c, b._c, outp)) end
function F.lerp(a, b, w) return call(C.craft_lerp(a._c, b._c, w, outp)) end

return F
