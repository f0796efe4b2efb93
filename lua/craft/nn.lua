-- craft.nn: modules with named parameters (named by their checkpoint keys: a child's
-- parameters are "<child>.<name>", so state dicts line up with PyTorch / diffusers files),
-- train/eval mode, state dicts, and the common layers.
local T = require 'craft.tensor'
local argerror = require('craft.core').argerror
local F = require 'craft.functional'
local A = require 'craft.autograd'
local core = require 'craft.core'
local want = core.want

local nn = {}

---------------------------------------------------------------- Module
local Module = {}
Module.__index = Module
nn.Module = Module

-- class(name, parent): a new module class; instances are created with Class(...) which calls
-- Class.init(self, ...).
function nn.class(name, parent)
  parent = parent or Module
  local cls = setmetatable({}, { __index = parent, __call = function(c, ...)
    local obj = setmetatable({ _params = {}, _param_order = {}, _modules = {}, _module_order = {},
      _buffers = {}, _buffer_order = {}, training = true }, c)
    if c.init then c.init(obj, ...) end
    return obj
  end })
  cls.__index = cls
  cls.__call = function(self, ...) return self:forward(...) end
  cls.__tostring = function(self) return self:describe() end
  cls._name = name
  cls._parent = parent
  return cls
end

-- Registers a parameter (a tensor that requires grad), or nil for an absent optional one.
function Module:param(name, t)
  want('param', 'name', name, 'string')
  want('param', 'tensor', t, 'tensor', true)
  if t ~= nil then t:requires_grad_(true) end
  if self._params[name] == nil and not self._param_order[name] then
    self._param_order[#self._param_order + 1] = name
    self._param_order[name] = true
  end
  self._params[name] = t
  return t
end
function Module:buffer(name, t)
  want('buffer', 'name', name, 'string')
  want('buffer', 'tensor', t, 'tensor', true)
  if not self._buffer_order[name] then
    self._buffer_order[#self._buffer_order + 1] = name
    self._buffer_order[name] = true
  end
  self._buffers[name] = t
  return t
end
function Module:add(name, child)
  want('add', 'name', name, 'string|integer')
  if type(child) ~= 'table' or type(child.named_parameters) ~= 'function' then
    core.argerror(('add: child %s must be a module, got %s'):format(tostring(name), core.describe(child)))
  end
  name = tostring(name)
  if not self._modules[name] then self._module_order[#self._module_order + 1] = name end
  self._modules[name] = child
  return child
end
function Module:child(name) return self._modules[tostring(name)] end

function Module:named_parameters(prefix, out)
  out = want('named_parameters', 'out', out, 'table', true) or {}
  prefix = want('named_parameters', 'prefix', prefix, 'string', true) or ''
  for _, n in ipairs(self._param_order) do
    local p = self._params[n]
    if p then out[#out + 1] = { prefix .. n, p } end
  end
  for _, n in ipairs(self._module_order) do
    self._modules[n]:named_parameters(prefix .. n .. '.', out)
  end
  return out
end
-- to(device): moves every parameter and buffer of the module tree to device ('cpu', 'cl:0', ...)
-- in place (new leaf tensors, so make the optimiser afterwards); returns the module.
function Module:to(device)
  local prev = A.set_grad_enabled(false)
  local ok, err = pcall(function()
    for _, n in ipairs(self._param_order) do
      local p = self._params[n]
      if p then self._params[n] = p:detach():to(device):requires_grad_(p.requires_grad) end
    end
    for _, n in ipairs(self._buffer_order) do
      local b = self._buffers[n]
      if b then self._buffers[n] = b:to(device) end
    end
  end)
  A.set_grad_enabled(prev)
  if not ok then argerror(err) end
  for _, n in ipairs(self._module_order) do self._modules[n]:to(device) end
  return self
end
function Module:parameters()
  local r = {}
  for i, np in ipairs(self:named_parameters()) do r[i] = np[2] end
  return r
end
function Module:named_buffers(prefix, out)
  out = want('named_buffers', 'out', out, 'table', true) or {}
  prefix = want('named_buffers', 'prefix', prefix, 'string', true) or ''
  for _, n in ipairs(self._buffer_order) do
    if self._buffers[n] then out[#out + 1] = { prefix .. n, self._buffers[n] } end
  end
  for _, n in ipairs(self._module_order) do self._modules[n]:named_buffers(prefix .. n .. '.', out) end
  return out
end
function Module:num_parameters()
  local n = 0
  for _, p in ipairs(self:parameters()) do n = n + p:numel() end
  return n
end

-- state_dict(): { name = tensor } of parameters and buffers (the tensors themselves, detached views)
function Module:state_dict()
  local sd, order = {}, {}
  for _, np in ipairs(self:named_parameters()) do sd[np[1]] = np[2]:detach(); order[#order + 1] = np[1] end
  for _, nb in ipairs(self:named_buffers()) do sd[nb[1]] = nb[2]; order[#order + 1] = nb[1] end
  return sd, order
end

-- load_state_dict(sd, {strict=true}): copies values in place (dtype converted); returns the lists
-- of missing and unexpected keys. Strict mode raises on either, and on any shape mismatch.
-- One entry of load_state_dict. A function of the module, not a closure over sd: LuaJIT compiles
-- the loop's call with the callee as a constant of the trace, and a closure's upvalues then live as
-- long as the trace, which kept every loaded state dict (a second copy of the weights: 6 GB for a
-- full-size CRAFT run) until the traces were flushed.
local function load_entry(sd, known, missing, name, t)
  known[name] = true
  local src = sd[name]
  if src == nil then missing[#missing + 1] = name; return end
  want('load_state_dict', 'state dict entry ' .. name, src, 'tensor')
  local a, b = table.concat(t.shape, 'x'), table.concat(src.shape, 'x')
  if a ~= b then
    argerror(('load_state_dict: %s has shape [%s] in the model but [%s] in the state dict'):format(name, a,
      b))
  end
  t:copy_(src)
end
function Module:load_state_dict(sd, o)
  want('load_state_dict', 'state dict', sd, 'table')
  o = want('load_state_dict', 'options', o, 'table', true) or {}
  local strict = o.strict ~= false
  local known, missing, unexpected = {}, {}, {}
  for _, np in ipairs(self:named_parameters()) do load_entry(sd, known, missing, np[1], np[2]) end
  for _, nb in ipairs(self:named_buffers()) do load_entry(sd, known, missing, nb[1], nb[2]) end
  for k in pairs(sd) do if not known[k] then unexpected[#unexpected + 1] = tostring(k) end end
  table.sort(missing)
  table.sort(unexpected)
  if strict and (#missing > 0 or #unexpected > 0) then
    argerror(('load_state_dict: %d missing key(s)%s, %d unexpected key(s)%s'):format(#missing,
      #missing > 0 and (' (' .. table.concat(missing, ', ', 1, math.min(5, #missing))
      .. (#missing > 5 and ', ...' or '') .. ')') or '', #unexpected, #unexpected > 0
      and (' (' .. table.concat(unexpected, ', ', 1, math.min(5, #unexpected))
      .. (#unexpected > 5 and ', ...' or '') .. ')') or ''))
  end
  return missing, unexpected
end

function Module:train(flag)
  if flag == nil then flag = true end
  self.training = flag
  for _, n in ipairs(self._module_order) do self._modules[n]:train(flag) end
  return self
end
function Module:eval() return self:train(false) end
function Module:zero_grad()
  for _, p in ipairs(self:parameters()) do p:zero_grad() end
end
function Module:requires_grad_(flag)
  for _, p in ipairs(self:parameters()) do p:requires_grad_(flag) end
  return self
end
-- modules(): every module in the tree with its dotted name, depth first
function Module:named_modules(prefix, out)
  out = want('named_modules', 'out', out, 'table', true) or {}
  prefix = want('named_modules', 'prefix', prefix, 'string', true) or ''
  out[#out + 1] = { prefix:sub(1, -2), self }
  for _, n in ipairs(self._module_order) do self._modules[n]:named_modules(prefix .. n .. '.', out) end
  return out
end
function Module:describe(indent)
  indent = want('describe', 'indent', indent, 'string', true) or ''
  local s = (self._name or 'Module') .. (self.extra_repr and ('(' .. self:extra_repr() .. ')') or '')
  if #self._module_order == 0 then return s end
  local lines = { s .. ' {' }
  for _, n in ipairs(self._module_order) do
    lines[#lines + 1] = indent .. '  ' .. n .. ': ' .. self._modules[n]:describe(indent .. '  ')
  end
  lines[#lines + 1] = indent .. '}'
  return table.concat(lines, '\n')
end
function Module:forward() argerror((self._name or 'Module') .. ': forward is not implemented') end

---------------------------------------------------------------- init helpers
-- PyTorch's default init for Linear/Conv: U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for weight and bias.
local function uniform(shape, bound)
  return T.empty(shape):uniform_(-bound, bound)
end
nn.init = { uniform = uniform }

---------------------------------------------------------------- layers
-- A layer computes on its parameters' device: an input elsewhere (a host data set's images fed
-- to a model on cl:0) is moved there first, differentiably. The engine's matrix, convolution and
-- norm ops take operands on one device only.
local function here(x, w)
  if w ~= nil and T.is_tensor(x) and x._c.device ~= w._c.device then return x:to(w.device) end
  return x
end
nn.here = here

local Linear = nn.class('Linear')
nn.Linear = Linear
function Linear:init(nin, nout, o)
  want('Linear', 'in_features', nin, 'positive')
  want('Linear', 'out_features', nout, 'positive')
  o = want('Linear', 'options', o, 'table', true) or {}
  self.in_features, self.out_features = nin, nout
  local bound = 1 / math.sqrt(nin)
  self:param('weight', uniform({ nout, nin }, bound))
  if o.bias ~= false then self:param('bias', uniform({ nout }, bound)) end
end
function Linear:forward(x)
  return F.linear(here(x, self._params.weight), self._params.weight, self._params.bias)
end
function Linear:extra_repr() return self.in_features .. ' -> ' .. self.out_features end

local Conv2d = nn.class('Conv2d')
nn.Conv2d = Conv2d
-- Conv2d(cin, cout, k, {stride, padding, dilation, groups, bias})
-- the checks both convolutions share: channels, kernel size (a number or {kh, kw}), groups
local function conv_args(name, cin, cout, k, o)
  want(name, 'in_channels', cin, 'positive')
  want(name, 'out_channels', cout, 'positive')
  if type(k) == 'table' then
    want(name, 'kernel_size[1]', k[1], 'positive')
    want(name, 'kernel_size[2]', k[2], 'positive')
  else
    want(name, 'kernel_size', k, 'positive|table')
  end
  o = want(name, 'options', o, 'table', true) or {}
  local g = want(name, 'options.groups', o.groups, 'positive', true) or 1
  if cin % g ~= 0 or cout % g ~= 0 then
    core.argerror(('%s: %d groups do not divide %d input and %d output channels'):format(name, g, cin, cout))
  end
  return o
end

function Conv2d:init(cin, cout, k, o)
  o = conv_args('Conv2d', cin, cout, k, o)
  self.cin, self.cout, self.k = cin, cout, k
  self.opts = { stride = o.stride or 1, padding = o.padding or 0, dilation = o.dilation or 1,
    groups = o.groups or 1 }
  local kh, kw = type(k) == 'table' and k[1] or k, type(k) == 'table' and k[2] or k
  local bound = 1 / math.sqrt(cin / self.opts.groups * kh * kw)
  self:param('weight', uniform({ cout, cin / self.opts.groups, kh, kw }, bound))
  if o.bias ~= false then self:param('bias', uniform({ cout }, bound)) end
end
function Conv2d:forward(x)
  return F.conv2d(here(x, self._params.weight), self._params.weight, self._params.bias, self.opts)
end
function Conv2d:extra_repr()
  local k = type(self.k) == 'table' and (self.k[1] .. 'x' .. self.k[2]) or tostring(self.k)
  return ('%d -> %d, k=%s'):format(self.cin, self.cout, k)
end

local ConvTranspose2d = nn.class('ConvTranspose2d')
nn.ConvTranspose2d = ConvTranspose2d
function ConvTranspose2d:init(cin, cout, k, o)
  o = conv_args('ConvTranspose2d', cin, cout, k, o)
  want('ConvTranspose2d', 'kernel_size', k, 'positive')
  self.cin, self.cout = cin, cout
  self.opts = { stride = o.stride or 1, padding = o.padding or 0, output_padding = o.output_padding or 0,
    dilation = o.dilation or 1, groups = o.groups or 1 }
  local bound = 1 / math.sqrt(cout / self.opts.groups * k * k)
  self:param('weight', uniform({ cin, cout / self.opts.groups, k, k }, bound))
  if o.bias ~= false then self:param('bias', uniform({ cout }, bound)) end
end
function ConvTranspose2d:forward(x)
  return F.conv_transpose2d(here(x, self._params.weight), self._params.weight, self._params.bias, self.opts)
end

local GroupNorm = nn.class('GroupNorm')
nn.GroupNorm = GroupNorm
function GroupNorm:init(groups, channels, o)
  want('GroupNorm', 'num_groups', groups, 'positive')
  want('GroupNorm', 'num_channels', channels, 'positive')
  if channels % groups ~= 0 then
    core.argerror(('GroupNorm: %d groups do not divide %d channels'):format(groups, channels))
  end
  o = want('GroupNorm', 'options', o, 'table', true) or {}
  self.groups, self.eps = groups, o.eps or 1e-5
  if o.affine ~= false then
    self:param('weight', T.ones({ channels }))
    self:param('bias', T.zeros({ channels }))
  end
end
-- m(x) or m(x, 'silu'): the activation fused into the same pass (F.group_norm's act)
function GroupNorm:forward(x, act)
  local w = self._params.weight
  return F.group_norm(here(x, w), self.groups, w, self._params.bias, self.eps, act)
end

local LayerNorm = nn.class('LayerNorm')
nn.LayerNorm = LayerNorm
function LayerNorm:init(shape, o)
  want('LayerNorm', 'normalized_shape', shape, 'positive|table')
  o = want('LayerNorm', 'options', o, 'table', true) or {}
  if type(shape) == 'number' then shape = { shape } end
  if #shape == 0 then core.argerror('LayerNorm: normalized_shape is empty') end
  core.want_items('LayerNorm', 'normalized_shape', shape, 'positive')
  self.nshape, self.eps = shape, o.eps or 1e-5
  if o.affine ~= false then
    self:param('weight', T.ones(shape))
    self:param('bias', T.zeros(shape))
  end
end
function LayerNorm:forward(x)
  local w = self._params.weight
  return F.layer_norm(here(x, w), #self.nshape, w, self._params.bias, self.eps)
end

local Embedding = nn.class('Embedding')
nn.Embedding = Embedding
function Embedding:init(n, d)
  want('Embedding', 'num_embeddings', n, 'positive')
  want('Embedding', 'embedding_dim', d, 'positive')
  self:param('weight', T.randn({ n, d }))
end
function Embedding:forward(idx) return F.embedding(idx, self._params.weight) end

local function activation(name, fn)
  local cls = nn.class(name)
  cls.forward = function(_, x) return fn(x) end
  nn[name] = cls
end
activation('SiLU', function(x) return x:silu() end)
activation('GELU', function(x) return x:gelu() end)
activation('QuickGELU', function(x) return x:quick_gelu() end)
activation('ReLU', function(x) return x:relu() end)
activation('Tanh', function(x) return x:tanh() end)
activation('Sigmoid', function(x) return x:sigmoid() end)
activation('Identity', function(x) return x end)

local Dropout = nn.class('Dropout')
nn.Dropout = Dropout
function Dropout:init(p)
  want('Dropout', 'p', p, 'number', true)
  if p and not (p >= 0 and p < 1) then
    core.argerror(('Dropout: p must be in [0, 1), got %s'):format(tostring(p)))
  end
  self.p = p or 0.5
end
function Dropout:forward(x)
  if not self.training or self.p == 0 then return x end
  local keep = T.rand(x.shape, { device = x.device }):ge(T.full({}, self.p, { device = x.device }))
  return x * keep * (1 / (1 - self.p))
end

local Upsample = nn.class('Upsample')
nn.Upsample = Upsample
function Upsample:init(scale, mode) self.scale, self.mode = scale or 2, mode or 'nearest' end
function Upsample:forward(x) return F.interpolate(x, { scale_factor = self.scale, mode = self.mode }) end

local Sequential = nn.class('Sequential')
nn.Sequential = Sequential
-- Sequential(m1, m2, ...) names children "0", "1", ... like PyTorch
function Sequential:init(...)
  local ms = { ... }
  if #ms == 1 and getmetatable(ms[1]) == nil and type(ms[1]) == 'table' then ms = ms[1] end
  for i, m in ipairs(ms) do self:add(i - 1, m) end
end
function Sequential:forward(x, ...)
  for _, n in ipairs(self._module_order) do x = self._modules[n](x, ...) end
  return x
end
function Sequential:len() return #self._module_order end

local ModuleList = nn.class('ModuleList')
nn.ModuleList = ModuleList
function ModuleList:init(ms) for i, m in ipairs(ms or {}) do self:add(i - 1, m) end end
function ModuleList:append(m) return self:add(#self._module_order, m) end
function ModuleList:get(i) return self._modules[tostring(i - 1)] end   -- 1-based
function ModuleList:len() return #self._module_order end
function ModuleList:iter()
  local i = 0
  return function()
    i = i + 1
    local n = self._module_order[i]
    if n then return i, self._modules[n] end
  end
end

-- Attention as diffusers names it: to_q, to_k, to_v, to_out.0; heads split from the channel dim.
-- forward(x [B, L, C], context [B, Lc, Cc] or nil, mask)
local Attention = nn.class('Attention')
nn.Attention = Attention
function Attention:init(dim, o)
  want('Attention', 'dim', dim, 'positive')
  o = want('Attention', 'options', o, 'table', true) or {}
  want('Attention', 'options.heads', o.heads, 'positive', true)
  self.heads = o.heads or 8
  self.head_dim = o.head_dim or math.floor(dim / self.heads)
  local inner = self.heads * self.head_dim
  local cdim = o.context_dim or dim
  self:add('to_q', Linear(dim, inner, { bias = o.qkv_bias or false }))
  self:add('to_k', Linear(cdim, inner, { bias = o.qkv_bias or false }))
  self:add('to_v', Linear(cdim, inner, { bias = o.qkv_bias or false }))
  self:add('to_out', Sequential(Linear(inner, o.out_dim or dim), nn.Identity()))
end
local function split_heads(t, heads)
  local s = t.shape
  return t:reshape(s[1], s[2], heads, s[3] / heads):permute(1, 3, 2, 4)
end
function Attention:forward(x, context, mask)
  context = context or x
  local m = self._modules
  local q = split_heads(m.to_q(x), self.heads)
  local k = split_heads(m.to_k(context), self.heads)
  local v = split_heads(m.to_v(context), self.heads)
  local o = F.sdpa(q, k, v, { mask = mask })
  local s = o.shape
  o = o:permute(1, 3, 2, 4):reshape(s[1], s[3], s[2] * s[4])
  return m.to_out(o)
end

return nn
