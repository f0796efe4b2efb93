-- craft.models.dinov2: the DINOv2 vision transformer of transformers (Dinov2Model), built from
-- its config.json, with parameters named by the checkpoint keys ("embeddings.cls_token",
-- "encoder.layer.0.attention.attention.query.weight", "encoder.layer.0.layer_scale1.lambda1").
--
--   local dinov2 = require 'craft.models.dinov2'
--   local model = dinov2.from_pretrained('path/to/dinov2-small')
--   local out = model(dinov2.preprocess(images))   -- out.pooler_output: the class token
--
-- Images of another size than the config's get position embeddings resampled as transformers
-- 4.38 does: bicubic (a = -0.75, align_corners false, border indices clamped) with the scale
-- factor (grid + 0.1) / native grid, also when the patch count is the same but the image is
-- not square. It is computed exactly, as two small interpolation matrices (no engine op
-- needed), so it is differentiable and matches the reference. Register tokens
-- (Dinov2WithRegisters) are not supported; the MLP is GELU (or SwiGLU with use_swiglu_ffn).
local T = require 'craft.tensor'
local argerror = require('craft.core').argerror
local F = require 'craft.functional'
local nn = require 'craft.nn'
local clip = require 'craft.models.clip'

local M = {}

-- transformers 4.38's Dinov2Config keys (see craft.models.options)
local O = require 'craft.models.options'
local K, null = O.K, require('craft.io').null
local BACKBONE = 'read only by Dinov2Backbone; craft builds Dinov2Model'
M.OPTIONS = O.transformers {
  hidden_size = { K.posint, 768 },
  num_hidden_layers = { K.posint, 12 },
  num_attention_heads = { K.posint, 12 },
  mlp_ratio = { K.posnum, 4 }, hidden_act = { K.string, 'gelu',
  only = { 'quick_gelu', 'gelu', 'gelu_new', 'gelu_pytorch_tanh', 'gelu_fast', 'relu', 'silu', 'swish' } },
  hidden_dropout_prob = { K.number, 0, only = { 0 }, note = 'craft has no dropout' },
  attention_probs_dropout_prob = { K.number, 0, only = { 0 }, note = 'craft has no dropout' },
  layer_norm_eps = { K.posnum, 1e-6 },
  image_size = { K.posint, 224 },
  patch_size = { K.posint, 16 },
  num_channels = { K.posint, 3 },
  qkv_bias = { K.bool, true },
  layerscale_value = { K.number, 1.0, note = 'the initial layer scale when no checkpoint is loaded' },
  drop_path_rate = { K.number, 0, only = { 0 }, note = 'craft has no stochastic depth' },
  use_swiglu_ffn = { K.bool, false },
  out_features = { K.any, nil, inert = BACKBONE },
  out_indices = { K.any, nil, inert = BACKBONE },
  stage_names = { K.any, nil, inert = BACKBONE },
  apply_layernorm = { K.any, true, inert = BACKBONE },
  reshape_hidden_states = { K.any, true, inert = BACKBONE },
  model_type = { K.string, nil, only = { null, 'dinov2' },
  note = 'dinov2_with_registers (register tokens) is refused' },
}
M.DEFAULTS = {}
for k, e in pairs(M.OPTIONS) do M.DEFAULTS[k] = e[2] end

---------------------------------------------------------------- bicubic position resampling
-- PyTorch's cubic convolution weights (a = -0.75) for fractional offset t.
local A = -0.75
local function cubic_weights(t)
  local function c1(x) return ((A + 2) * x - (A + 3)) * x * x + 1 end
  local function c2(x) return ((A * x - 5 * A) * x + 8 * A) * x - 4 * A end
  return { c2(t + 1), c1(t), c1(1 - t), c2(2 - t) }
end

-- [out_n, in_n] matrix of bicubic upsample_bicubic2d(align_corners=False) with scale factor
-- `factor` (source = (i + 0.5) / factor - 0.5); indices outside the input are clamped.
local function bicubic_matrix(in_n, out_n, factor)
  local rows = {}
  for i = 0, out_n - 1 do
    local row = {}
    for j = 1, in_n do row[j] = 0 end
    local src = (i + 0.5) / factor - 0.5
    local i0 = math.floor(src)
    local w = cubic_weights(src - i0)
    for k = 0, 3 do
      local j = math.max(0, math.min(in_n - 1, i0 - 1 + k))
      row[j + 1] = row[j + 1] + w[k + 1]
    end
    rows[i + 1] = row
  end
  return T.tensor(rows)
end
M.bicubic_matrix = bicubic_matrix

---------------------------------------------------------------- blocks
-- Modules that only hold children (their names are checkpoint key segments).
local Container = nn.class('Dinov2Container')
local function container(children)
  local c = Container()
  for _, kv in ipairs(children) do c:add(kv[1], kv[2]) end
  return c
end

local Embeddings = nn.class('Dinov2Embeddings')
function Embeddings:init(c)
  local D, p = c.hidden_size, c.patch_size
  self.grid = math.floor(c.image_size / p)
  self:param('cls_token', T.randn({ 1, 1, D }))
  self:param('mask_token', T.zeros({ 1, D }))
  self:param('position_embeddings', T.randn({ 1, self.grid * self.grid + 1, D }))
  self:add('patch_embeddings', container { { 'projection', clip.PatchConv(c.num_channels, D, p, true) } })
  self._interp = {}
end

-- Position embeddings for an image of H x W pixels giving a gh x gw patch grid.
function Embeddings:positions(H, W, gh, gw)
  local pos = self._params.position_embeddings
  local g = self.grid
  if gh * gw == g * g and H == W then return pos end
  local key = gh .. 'x' .. gw
  local mats = self._interp[key]
  if not mats then
    mats = { bicubic_matrix(g, gh, (gh + 0.1) / g), bicubic_matrix(g, gw, (gw + 0.1) / g) }
    self._interp[key] = mats
  end
  local D = pos:size(3)
  local patch = pos:narrow(2, 2, g * g):reshape(g, g * D)
  local rows = mats[1]:matmul(patch):reshape(gh, g, D)            -- [gh, g, D]
  local grid = mats[2]:matmul(rows)                               -- [gh, gw, D]
  return F.cat({ pos:narrow(2, 1, 1), grid:reshape(1, gh * gw, D) }, 2)
end

function Embeddings:forward(pixels)
  local B, H, W = pixels:size(1), pixels:size(3), pixels:size(4)
  local patches, gh, gw = self._modules.patch_embeddings._modules.projection(pixels)
  local D = patches:size(3)
  local x = F.cat({ self._params.cls_token:expand(B, 1, D), patches }, 2)
  return x + self:positions(H, W, gh, gw)
end

local SelfAttention = nn.class('Dinov2SelfAttention')
function SelfAttention:init(c)
  self.heads = c.num_attention_heads
  for _, n in ipairs { 'query', 'key', 'value' } do
    self:add(n, nn.Linear(c.hidden_size, c.hidden_size, { bias = c.qkv_bias }))
  end
end
function SelfAttention:forward(x)
  local m, B, L, D, H = self._modules, x:size(1), x:size(2), x:size(3), self.heads
  local function heads(t) return t:reshape(B, L, H, D / H):permute(1, 3, 2, 4) end
  local o = F.sdpa(heads(m.query(x)), heads(m.key(x)), heads(m.value(x)))
  return o:permute(1, 3, 2, 4):reshape(B, L, D)
end

local Attention = nn.class('Dinov2Attention')
function Attention:init(c)
  self:add('attention', SelfAttention(c))
  self:add('output', container { { 'dense', nn.Linear(c.hidden_size, c.hidden_size) } })
end
function Attention:forward(x)
  return self._modules.output._modules.dense(self._modules.attention(x))
end

local LayerScale = nn.class('Dinov2LayerScale')
function LayerScale:init(dim, value) self:param('lambda1', T.full({ dim }, value)) end
function LayerScale:forward(x) return x * self._params.lambda1 end

local MLP = nn.class('Dinov2MLP')
function MLP:init(c)
  local inner = math.floor(c.hidden_size * c.mlp_ratio)
  self.act = clip.act(c.hidden_act)
  self:add('fc1', nn.Linear(c.hidden_size, inner))
  self:add('fc2', nn.Linear(inner, c.hidden_size))
end
function MLP:forward(x) return self._modules.fc2(self.act(self._modules.fc1(x))) end

-- SwiGLU MLP of the giant models: weights_in gives [x1, x2]; silu(x1) * x2 -> weights_out.
local SwiGLU = nn.class('Dinov2SwiGLUFFN')
function SwiGLU:init(c)
  local inner = math.floor(c.hidden_size * c.mlp_ratio)
  inner = math.floor((math.floor(inner * 2 / 3) + 7) / 8) * 8
  self.inner = inner
  self:add('weights_in', nn.Linear(c.hidden_size, 2 * inner))
  self:add('weights_out', nn.Linear(inner, c.hidden_size))
end
function SwiGLU:forward(x)
  local h = self._modules.weights_in(x)
  local n = self.inner
  return self._modules.weights_out(h:narrow(-1, 1, n):silu() * h:narrow(-1, n + 1, n))
end

local Layer = nn.class('Dinov2Layer')
function Layer:init(c)
  local D = c.hidden_size
  self:add('norm1', nn.LayerNorm(D, { eps = c.layer_norm_eps }))
  self:add('attention', Attention(c))
  self:add('layer_scale1', LayerScale(D, c.layerscale_value))
  self:add('norm2', nn.LayerNorm(D, { eps = c.layer_norm_eps }))
  self:add('mlp', c.use_swiglu_ffn and SwiGLU(c) or MLP(c))
  self:add('layer_scale2', LayerScale(D, c.layerscale_value))
end
function Layer:forward(x)
  local m = self._modules
  x = x + m.layer_scale1(m.attention(m.norm1(x)))
  return x + m.layer_scale2(m.mlp(m.norm2(x)))
end

---------------------------------------------------------------- the model
local Model = nn.class('Dinov2Model')
M.Dinov2Model = Model
function Model:init(cfg)
  local where = O.where(cfg, 'Dinov2Config')
  local c = O.check(cfg, M.OPTIONS, where)
  if c.hidden_size % c.num_attention_heads ~= 0 then
    O.refuse(where, 'num_attention_heads', c.num_attention_heads,
      ('does not divide hidden_size %d'):format(c.hidden_size))
  end
  self.config = c
  self:add('embeddings', Embeddings(c))
  local layers = nn.ModuleList()
  for _ = 1, c.num_hidden_layers do layers:append(Layer(c)) end
  self:add('encoder', container { { 'layer', layers } })
  self:add('layernorm', nn.LayerNorm(c.hidden_size, { eps = c.layer_norm_eps }))
end
-- forward(pixels [B, C, H, W], {output_hidden_states}) -> { last_hidden_state [B, 1 + N, D]
-- (after the final layernorm), pooler_output [B, D] (class token), patch_tokens [B, N, D],
-- hidden_states (embeddings, then each layer's output, before the final norm) }
function Model:forward(pixels, o)
  if not T.is_tensor(pixels) or pixels:dim() ~= 4 then
    argerror('dinov2: pixel_values must be a [B, C, H, W] tensor')
  end
  local m = self._modules
  local hs = o and o.output_hidden_states and {} or nil
  local x = m.embeddings(pixels)
  for i, layer in m.encoder._modules.layer:iter() do
    if hs then hs[i] = x end
    x = layer(x)
  end
  if hs then hs[#hs + 1] = x end
  local last = m.layernorm(x)
  return { last_hidden_state = last, pooler_output = last:select(2, 1),
    patch_tokens = last:narrow(2, 2, last:size(2) - 1), hidden_states = hs }
end

function M.from_config(cfg) return Model(cfg) end

-- from_pretrained(dir) -> Dinov2Model in eval mode from dir/config.json + dir/model.safetensors
local function from_pretrained(dir, o)
  local io = require 'craft.io'
  local model = Model(O.read(dir .. '/config.json', { quiet = o and o.quiet }))
  model:load_state_dict(io.load_safetensors(dir .. '/model.safetensors'))
  return model:eval()
end
-- {device = 'cl:0'}: the model is built and loaded there (default: the current device)
function M.from_pretrained(dir, o)
  return require('craft.device').scope(type(o) == 'table' and o.device or nil, from_pretrained, dir, o)
end

-- ImageNet normalisation, BitImageProcessor's defaults for DINOv2 (shortest side 256, crop 224).
M.MEAN = { 0.485, 0.456, 0.406 }
M.STD = { 0.229, 0.224, 0.225 }
-- preprocess(images, o): clip.preprocess with DINOv2's defaults (and its caveats: bilinear
-- where the reference resizes with PIL bicubic).
function M.preprocess(images, o)
  o = o or {}
  return clip.preprocess(images, { size = o.size or 256, crop = o.crop or 224, mean = o.mean or M.MEAN,
    std = o.std or M.STD, range = o.range })
end

return M
