-- craft.models.resnet: transformers' ResNetModel (basic or bottleneck layers), the convolutional
-- out-of-family image encoder, built from its config.json with parameters and buffers named by
-- the checkpoint keys ("embedder.embedder.convolution.weight",
-- "encoder.stages.0.layers.0.shortcut.normalization.running_mean").
--
--   local resnet = require 'craft.models.resnet'
--   local model = resnet.from_pretrained('path/to/resnet-50')   -- eval mode
--   local feats = model(pixels).features                         -- [B, C], the pooled output
--
-- BatchNorm is not an engine op: eval mode is the per-channel affine map of the running
-- statistics, (x - mean) * (w / sqrt(var + eps)) + b; train mode normalises with the batch's
-- mean and (biased) variance over (N, H, W) and updates the running statistics as PyTorch does
-- (momentum 0.1, unbiased variance). Max pooling is the maximum of the strided views of the
-- padded input (the same values; where a window holds equal maxima the gradient may be split
-- differently than PyTorch's first-index rule).
local T = require 'craft.tensor'
local argerror = require('craft.core').argerror
local F = require 'craft.functional'
local nn = require 'craft.nn'
local A = require 'craft.autograd'

local M = {}

-- transformers 4.38's ResNetConfig keys, defaults of ResNet-50 (see craft.models.options)
local O = require 'craft.models.options'
local K, null = O.K, require('craft.io').null
local BACKBONE = 'read only by ResNetBackbone; craft builds ResNetModel'
M.OPTIONS = O.transformers {
  num_channels = { K.posint, 3 },
  embedding_size = { K.posint, 64 },
  hidden_sizes = { K.list(K.posint), { 256, 512, 1024, 2048 } },
  depths = { K.list(K.posint), { 3, 4, 6, 3 } },
  layer_type = { K.string, 'bottleneck', only = { 'basic', 'bottleneck' } },
  hidden_act = { K.string, 'relu', only = { 'relu', 'gelu', 'silu', 'swish', 'tanh' } },
  downsample_in_first_stage = { K.bool, false },
  downsample_in_bottleneck = { K.bool, false },
  out_features = { K.any, nil, inert = BACKBONE },
  out_indices = { K.any, nil, inert = BACKBONE },
  stage_names = { K.any, nil, inert = BACKBONE },
  model_type = { K.string, nil, only = { null, 'resnet' } },
}
M.DEFAULTS = {}
for k, e in pairs(M.OPTIONS) do M.DEFAULTS[k] = e[2] end

local ACTS = {
  relu = function(x) return x:relu() end,
  gelu = function(x) return x:gelu() end,
  silu = function(x) return x:silu() end,
  swish = function(x) return x:silu() end,
  tanh = function(x) return x:tanh() end,
}
local function act(name)
  if name == nil then return nil end
  local f = ACTS[name]
  if not f then argerror(('resnet: unknown hidden_act %q'):format(tostring(name))) end
  return f
end

---------------------------------------------------------------- BatchNorm2d
local BatchNorm2d = nn.class('BatchNorm2d')
M.BatchNorm2d = BatchNorm2d
function BatchNorm2d:init(C, o)
  o = o or {}
  self.eps, self.momentum = o.eps or 1e-5, o.momentum or 0.1
  self:param('weight', T.ones({ C }))
  self:param('bias', T.zeros({ C }))
  self:buffer('running_mean', T.zeros({ C }))
  self:buffer('running_var', T.ones({ C }))
  self:buffer('num_batches_tracked', T.zeros({}, { dtype = 'i64' }))
end
function BatchNorm2d:forward(x)
  local C = x:size(2)
  local p, b = self._params, self._buffers
  if C ~= p.weight:size(1) then
    argerror(('batch_norm: %d channels, the layer has %d'):format(C, p.weight:size(1)))
  end
  local function ch(t) return t:reshape(1, C, 1, 1) end
  if not self.training then
    local scale = p.weight / (b.running_var + self.eps):sqrt()
    return (x - ch(b.running_mean)) * ch(scale) + ch(p.bias)
  end
  local mean = x:mean({ 1, 3, 4 }, true)
  local var = x:var({ 1, 3, 4 }, { correction = 0, keepdim = true })
  local n = x:numel() / C
  A.no_grad(function()
    local m = self.momentum
    b.running_mean:mul_(1 - m):add_(mean:detach():reshape(C), m)
    b.running_var:mul_(1 - m):add_(var:detach():reshape(C), m * n / math.max(n - 1, 1))
    b.num_batches_tracked:fill_(b.num_batches_tracked:item() + 1)
  end)
  return (x - mean) * (var + self.eps):rsqrt() * ch(p.weight) + ch(p.bias)
end

-- max_pool2d(x, k, stride, padding): the maximum over the k*k strided views of x padded with
-- the lowest float (never a maximum: every window holds at least one input element).
function M.max_pool2d(x, k, stride, padding)
  local H, W = x:size(3), x:size(4)
  if padding > 0 then x = F.pad(x, { padding, padding, padding, padding }, 'constant', -3.4e38) end
  local oh = math.floor((H + 2 * padding - k) / stride) + 1
  local ow = math.floor((W + 2 * padding - k) / stride) + 1
  local y
  for i = 1, k do
    for j = 1, k do
      local v = x:slice(3, i, i + (oh - 1) * stride, stride):slice(4, j, j + (ow - 1) * stride, stride)
      y = y and y:maximum(v) or v
    end
  end
  return y
end

---------------------------------------------------------------- blocks
-- ResNetConvLayer: conv (no bias, padding k // 2) -> BatchNorm -> activation (none when nil)
local ConvLayer = nn.class('ResNetConvLayer')
function ConvLayer:init(cin, cout, k, stride, activation)
  k = k or 3
  self:add('convolution',
    nn.Conv2d(cin, cout, k, { stride = stride or 1, padding = math.floor(k / 2), bias = false }))
  self:add('normalization', BatchNorm2d(cout))
  self.act = act(activation)
end
function ConvLayer:forward(x)
  local y = self._modules.normalization(self._modules.convolution(x))
  return self.act and self.act(y) or y
end

local ShortCut = nn.class('ResNetShortCut')
function ShortCut:init(cin, cout, stride)
  self:add('convolution', nn.Conv2d(cin, cout, 1, { stride = stride, bias = false }))
  self:add('normalization', BatchNorm2d(cout))
end
function ShortCut:forward(x) return self._modules.normalization(self._modules.convolution(x)) end

-- A residual layer: basic (two 3x3 convs) or bottleneck (1x1 reduce by 4, 3x3, 1x1 expand).
-- The inner convs use ReLU whatever hidden_act says; hidden_act follows the residual sum
-- (as transformers).
local ResLayer = nn.class('ResNetLayer')
function ResLayer:init(cin, cout, stride, c, bottleneck)
  if cin ~= cout or stride ~= 1 then self:add('shortcut', ShortCut(cin, cout, stride)) end
  local convs
  if bottleneck then
    local r = math.floor(cout / 4)
    local in_first = c.downsample_in_bottleneck
    convs = { ConvLayer(cin, r, 1, in_first and stride or 1, 'relu'),
      ConvLayer(r, r, 3, in_first and 1 or stride, 'relu'),
      ConvLayer(r, cout, 1, 1, nil) }
  else
    convs = { ConvLayer(cin, cout, 3, stride, 'relu'), ConvLayer(cout, cout, 3, 1, nil) }
  end
  self:add('layer', nn.Sequential(convs))
  self.act = act(c.hidden_act)
end
function ResLayer:forward(x)
  local m = self._modules
  local residual = m.shortcut and m.shortcut(x) or x
  return self.act(m.layer(x) + residual)
end

local Stage = nn.class('ResNetStage')
function Stage:init(c, cin, cout, stride, depth)
  local bottleneck = c.layer_type == 'bottleneck'
  local layers = { ResLayer(cin, cout, stride, c, bottleneck) }
  for i = 2, depth do layers[i] = ResLayer(cout, cout, 1, c, bottleneck) end
  self:add('layers', nn.Sequential(layers))
end
function Stage:forward(x) return self._modules.layers(x) end

local Embeddings = nn.class('ResNetEmbeddings')
function Embeddings:init(c)
  self:add('embedder', ConvLayer(c.num_channels, c.embedding_size, 7, 2, c.hidden_act))
end
function Embeddings:forward(x) return M.max_pool2d(self._modules.embedder(x), 3, 2, 1) end

local Encoder = nn.class('ResNetEncoder')
function Encoder:init(c)
  local stages = self:add('stages', nn.ModuleList())
  local sizes = c.hidden_sizes
  stages:append(Stage(c, c.embedding_size, sizes[1], c.downsample_in_first_stage and 2 or 1, c.depths[1]))
  for i = 2, #sizes do stages:append(Stage(c, sizes[i - 1], sizes[i], 2, c.depths[i])) end
end

---------------------------------------------------------------- the model
local Model = nn.class('ResNetModel')
M.ResNetModel = Model
function Model:init(cfg)
  local where = O.where(cfg, 'ResNetConfig')
  local c = O.check(cfg, M.OPTIONS, where)
  if #c.depths ~= #c.hidden_sizes then
    O.refuse(where, 'depths', c.depths,
      ('has %d entries for %d hidden_sizes'):format(#c.depths, #c.hidden_sizes))
  end
  self.config = c
  act(c.hidden_act)
  self:add('embedder', Embeddings(c))
  self:add('encoder', Encoder(c))
end
-- forward(pixels [B, C, H, W], {output_hidden_states}) -> { last_hidden_state [B, C', h, w],
-- pooler_output [B, C', 1, 1] (global average), features [B, C'], hidden_states (the stem's
-- output, then each stage's) }
function Model:forward(pixels, o)
  if not T.is_tensor(pixels) or pixels:dim() ~= 4 then
    argerror('resnet: pixel_values must be a [B, C, H, W] tensor')
  end
  if pixels:size(2) ~= self.config.num_channels then
    argerror(('resnet: %d input channels, the model wants %d'):format(pixels:size(2),
      self.config.num_channels))
  end
  local hs = o and o.output_hidden_states and {} or nil
  local x = self._modules.embedder(pixels)
  for i, stage in self._modules.encoder._modules.stages:iter() do
    if hs then hs[i] = x end
    x = stage(x)
  end
  if hs then hs[#hs + 1] = x end
  local pooled = x:mean({ 3, 4 }, true)
  return { last_hidden_state = x, pooler_output = pooled, features = pooled:reshape(x:size(1), x:size(2)),
    hidden_states = hs }
end

function M.from_config(cfg) return Model(cfg) end

-- from_pretrained(dir) -> ResNetModel in eval mode. A ResNetForImageClassification checkpoint
-- (keys "resnet.*" and a classifier) loads its backbone.
local function from_pretrained(dir, o)
  local io = require 'craft.io'
  local cfg = O.read(dir .. '/config.json', { quiet = o and o.quiet })
  local model = Model(cfg)
  local classifier = O.is_list(cfg.architectures) and cfg.architectures[1] == 'ResNetForImageClassification'
  model:load_state_dict(io.load_safetensors(dir .. '/model.safetensors',
    { prefix = classifier and 'resnet.' or nil }))
  return model:eval()
end
-- {device = 'cl:0'}: the model is built and loaded there (default: the current device)
function M.from_pretrained(dir, o)
  return require('craft.device').scope(type(o) == 'table' and o.device or nil, from_pretrained, dir, o)
end

return M
