-- craft.models.clip: the CLIP / MetaCLIP text and image towers of transformers (CLIPTextModel,
-- CLIPTextModelWithProjection, CLIPVisionModel, CLIPVisionModelWithProjection, CLIPModel),
-- built from a transformers config.json, with parameters named by the checkpoint keys
-- ("text_model.encoder.layers.0.self_attn.q_proj.weight", "vision_model.pre_layrnorm.weight").
--
--   local clip = require 'craft.models.clip'
--   local model = clip.from_pretrained('path/to/clip')      -- config.json + model.safetensors
--   local txt = model:encode_text(ids)                      -- projected, [B, projection_dim]
--   local img = model:encode_image(clip.preprocess(images)) -- differentiable in the pixels
--
-- Text pooling follows transformers 4.38: with eos_token_id == 2 (configs saved by older
-- transformers, SD 1.x / 2.x text encoders) the pooled token is the argmax of the ids (the
-- first end token, whose id is the largest); otherwise the first position whose id is
-- eos_token_id (position 0 when there is none). A missing eos_token_id means 49407 (the 4.38
-- default). Image preprocessing: see preprocess() below for how it differs from
-- CLIPImageProcessor.
local T = require 'craft.tensor'
local argerror = require('craft.core').argerror
local F = require 'craft.functional'
local nn = require 'craft.nn'

local M = {}

---------------------------------------------------------------- configs
local O = require 'craft.models.options'
local K, null = O.K, require('craft.io').null
local ACT_NAMES = { 'quick_gelu', 'gelu', 'gelu_new', 'gelu_pytorch_tanh', 'gelu_fast', 'relu', 'silu',
  'swish' }
local NO_DROPOUT = 'craft has no dropout'
-- transformers 4.38's CLIPTextConfig, CLIPVisionConfig and CLIPConfig keys (see
-- craft.models.options); config.json files leave out values equal to the defaults.
M.TEXT_OPTIONS = O.transformers {
  vocab_size = { K.posint, 49408 },
  hidden_size = { K.posint, 512 },
  intermediate_size = { K.posint, 2048 },
  projection_dim = { K.posint, 512 },
  num_hidden_layers = { K.posint, 12 },
  num_attention_heads = { K.posint, 8 },
  max_position_embeddings = { K.posint, 77 },
  hidden_act = { K.string, 'quick_gelu', only = ACT_NAMES },
  layer_norm_eps = { K.posnum, 1e-5 },
  attention_dropout = { K.number, 0, only = { 0 }, note = NO_DROPOUT },
  dropout = { K.number, 0, only = { 0 }, note = NO_DROPOUT .. '; older transformers wrote it' },
  eos_token_id = { K.int, 49407, note = 'chooses the pooled token' },
  model_type = { K.string, nil, only = { null, 'clip_text_model' } },
}
M.VISION_OPTIONS = O.transformers {
  hidden_size = { K.posint, 768 },
  intermediate_size = { K.posint, 3072 },
  projection_dim = { K.posint, 512 },
  num_hidden_layers = { K.posint, 12 },
  num_attention_heads = { K.posint, 12 },
  num_channels = { K.posint, 3 },
  image_size = { K.posint, 224 },
  patch_size = { K.posint, 32 },
  hidden_act = { K.string, 'quick_gelu', only = ACT_NAMES },
  layer_norm_eps = { K.posnum, 1e-5 },
  attention_dropout = { K.number, 0, only = { 0 }, note = NO_DROPOUT },
  dropout = { K.number, 0, only = { 0 }, note = NO_DROPOUT .. '; older transformers wrote it' },
  model_type = { K.string, nil, only = { null, 'clip_vision_model' } },
}
M.CLIP_OPTIONS = O.transformers {
  text_config = { K.object, nil },
  vision_config = { K.object, nil },
  -- older transformers wrote these beside text_config / vision_config; they take precedence
  text_config_dict = { K.object, nil },
  vision_config_dict = { K.object, nil },
  projection_dim = { K.posint, 512 }, logit_scale_init_value = { K.number, 2.6592,
  note = 'the initial logit_scale when no checkpoint is loaded' },
  model_type = { K.string, nil, only = { null, 'clip' } },
}
M.TEXT_DEFAULTS, M.VISION_DEFAULTS = {}, {}
for k, e in pairs(M.TEXT_OPTIONS) do M.TEXT_DEFAULTS[k] = e[2] end
for k, e in pairs(M.VISION_OPTIONS) do M.VISION_DEFAULTS[k] = e[2] end

-- checked(cfg, options, where) -> the filled config; with_defaults is its old name
local function checked(cfg, options, where) return O.check(cfg, options, O.where(cfg, where)) end
function M.with_defaults(cfg, defaults)
  local r = {}
  for k, v in pairs(defaults) do r[k] = v end
  for k, v in pairs(cfg or {}) do r[k] = v end
  return r
end

-- The text (or vision) part of a CLIPConfig: text_config with text_config_dict over it, as
-- transformers 4.38 reads older files; checked under "<file> text_config".
local function sub_config(cfg, which, where)
  local base, dict = cfg[which .. '_config'], cfg[which .. '_config_dict']
  local c = {}
  for k, v in pairs(type(base) == 'table' and base or {}) do c[k] = v end
  for k, v in pairs(type(dict) == 'table' and dict or {}) do c[k] = v end
  return O.remember(c, where .. ' ' .. which .. '_config')
end

-- act(name) -> function(x): the activations transformers' ACT2FN names for these models.
local ACTS = {
  quick_gelu = function(x) return x:quick_gelu() end,
  gelu = function(x) return x:gelu() end,
  gelu_new = function(x) return x:gelu('tanh') end,
  gelu_pytorch_tanh = function(x) return x:gelu('tanh') end,
  gelu_fast = function(x) return x:gelu('tanh') end,
  relu = function(x) return x:relu() end,
  silu = function(x) return x:silu() end,
  swish = function(x) return x:silu() end,
}
function M.act(name)
  local f = ACTS[name]
  if not f then argerror(('clip: unknown hidden_act %q'):format(tostring(name))) end
  return f
end

---------------------------------------------------------------- shared blocks
-- CLIPAttention: q_proj, k_proj, v_proj, out_proj; heads split from the channel dim.
local Attention = nn.class('CLIPAttention')
function Attention:init(dim, heads)
  if dim % heads ~= 0 then
    argerror(('clip: hidden_size %d is not divisible by %d heads'):format(dim, heads))
  end
  self.heads = heads
  for _, n in ipairs { 'k_proj', 'v_proj', 'q_proj', 'out_proj' } do self:add(n, nn.Linear(dim, dim)) end
end
-- x [B, L, D]; mask additive (broadcast to [B, H, L, L]) or nil; causal: bool
function Attention:forward(x, mask, causal)
  local m, B, L, D = self._modules, x:size(1), x:size(2), x:size(3)
  local H = self.heads
  local function heads(t) return t:reshape(B, L, H, D / H):permute(1, 3, 2, 4) end
  local o = F.sdpa(heads(m.q_proj(x)), heads(m.k_proj(x)), heads(m.v_proj(x)),
    { mask = mask, causal = causal })
  return m.out_proj(o:permute(1, 3, 2, 4):reshape(B, L, D))
end

local MLP = nn.class('CLIPMLP')
function MLP:init(dim, inner, act)
  self.act = M.act(act)
  self:add('fc1', nn.Linear(dim, inner))
  self:add('fc2', nn.Linear(inner, dim))
end
function MLP:forward(x) return self._modules.fc2(self.act(self._modules.fc1(x))) end

-- CLIPEncoderLayer: pre-LN attention and MLP, each with a residual.
local Layer = nn.class('CLIPEncoderLayer')
function Layer:init(c)
  self:add('self_attn', Attention(c.hidden_size, c.num_attention_heads))
  self:add('layer_norm1', nn.LayerNorm(c.hidden_size, { eps = c.layer_norm_eps }))
  self:add('mlp', MLP(c.hidden_size, c.intermediate_size, c.hidden_act))
  self:add('layer_norm2', nn.LayerNorm(c.hidden_size, { eps = c.layer_norm_eps }))
end
function Layer:forward(x, mask, causal)
  local m = self._modules
  x = x + m.self_attn(m.layer_norm1(x), mask, causal)
  return x + m.mlp(m.layer_norm2(x))
end

local Encoder = nn.class('CLIPEncoder')
function Encoder:init(c)
  local layers = self:add('layers', nn.ModuleList())
  for _ = 1, c.num_hidden_layers do layers:append(Layer(c)) end
end
-- forward(x, mask, causal, keep): keep(i, h) is called with the input of layer i and, at the
-- end, (n + 1, output), as transformers' hidden_states.
function Encoder:forward(x, mask, causal, keep)
  for i, layer in self._modules.layers:iter() do
    if keep then keep(i, x) end
    x = layer(x, mask, causal)
  end
  if keep then keep(self._modules.layers:len() + 1, x) end
  return x
end

---------------------------------------------------------------- text tower
local TextEmbeddings = nn.class('CLIPTextEmbeddings')
function TextEmbeddings:init(c)
  self:add('token_embedding', nn.Embedding(c.vocab_size, c.hidden_size))
  self:add('position_embedding', nn.Embedding(c.max_position_embeddings, c.hidden_size))
end
-- forward(ids, inputs_embeds): inputs_embeds [B, L, D], when given, replaces the token lookup
-- (textual inversion trains such rows); the ids still choose the pooled position.
function TextEmbeddings:forward(ids, inputs_embeds)
  local L = ids:size(2)
  local pos = self._modules.position_embedding._params.weight
  if L > pos:size(1) then
    argerror(('clip text: %d tokens, the model has %d positions'):format(L, pos:size(1)))
  end
  local tok = inputs_embeds or F.embedding(ids, self._modules.token_embedding._params.weight)
  return tok + pos:narrow(1, 1, L)
end

-- The pooled position of each row (0-based): see the rule at the top of this file.
local function eos_positions(ids, eos_token_id)
  local B, L = ids:size(1), ids:size(2)
  local flat, pos = ids:flat(), {}
  for b = 1, B do
    local best, at = nil, 0
    for k = 1, L do
      local v = flat[(b - 1) * L + k]
      if eos_token_id == 2 then
        if best == nil or v > best then best, at = v, k - 1 end
      elseif v == eos_token_id then at = k - 1; break end
    end
    pos[b] = (b - 1) * L + at
  end
  return T.tensor(pos, { dtype = 'i64' })
end

local TextTransformer = nn.class('CLIPTextTransformer')
function TextTransformer:init(c)
  self.config = c
  self:add('embeddings', TextEmbeddings(c))
  self:add('encoder', Encoder(c))
  self:add('final_layer_norm', nn.LayerNorm(c.hidden_size, { eps = c.layer_norm_eps }))
end
-- forward(ids i64 [B, L], {attention_mask = [B, L] 0/1, inputs_embeds, output_hidden_states,
-- penultimate})
-- -> { last_hidden_state [B, L, D], pooler_output [B, D], hidden_states = {...} (n + 1 entries,
--      the embeddings first), penultimate = hidden_states[n] (SD 2's "penultimate" layer) }
function TextTransformer:forward(ids, o)
  o = o or {}
  if not T.is_tensor(ids) or ids:dim() ~= 2 then argerror('clip text: input_ids must be a [B, L] tensor') end
  local m, n = self._modules, self.config.num_hidden_layers
  local x = m.embeddings(ids, o.inputs_embeds)
  local mask
  if o.attention_mask then
    local am = o.attention_mask:float()
    mask = ((am - 1) * 1e9):reshape(ids:size(1), 1, 1, ids:size(2))
  end
  local out, hs = {}, o.output_hidden_states and {} or nil
  local keep
  if hs or o.penultimate then
    keep = function(i, h)
      if hs then hs[i] = h end
      if i == n then out.penultimate = h end
    end
  end
  x = m.encoder(x, mask, true, keep)
  local last = m.final_layer_norm(x)
  out.last_hidden_state, out.hidden_states = last, hs
  local D = last:size(3)
  out.pooler_output = F.embedding(eos_positions(ids, self.config.eos_token_id), last:reshape(-1, D))
  return out
end

---------------------------------------------------------------- image tower
-- A patch "convolution" (kernel = stride = patch, no padding) as one matrix product over the
-- patches: the same sums as the conv, and it keeps the conv's checkpoint key and weight shape.
-- Rows and columns past the last whole patch are dropped, as the conv does.
local PatchConv = nn.class('PatchConv')
M.PatchConv = PatchConv
function PatchConv:init(cin, cout, p, bias)
  self.p = p
  local bound = 1 / math.sqrt(cin * p * p)
  self:param('weight', T.empty({ cout, cin, p, p }):uniform_(-bound, bound))
  if bias then self:param('bias', T.empty({ cout }):uniform_(-bound, bound)) end
end
-- x [B, C, H, W] -> [B, gh * gw, cout], gh, gw
function PatchConv:forward(x)
  local p, w = self.p, self._params.weight
  local B, Cin, H, W = x:size(1), x:size(2), x:size(3), x:size(4)
  if Cin ~= w:size(2) then
    argerror(('patch embedding: %d input channels, the model wants %d'):format(Cin, w:size(2)))
  end
  local gh, gw = math.floor(H / p), math.floor(W / p)
  if gh == 0 or gw == 0 then
    argerror(('patch embedding: a %dx%d image is smaller than one %dx%d patch'):format(H, W, p, p))
  end
  if gh * p ~= H then x = x:narrow(3, 1, gh * p) end
  if gw * p ~= W then x = x:narrow(4, 1, gw * p) end
  local cols = x:reshape(B, Cin, gh, p, gw, p):permute(1, 3, 5, 2, 4, 6):reshape(B, gh * gw, Cin * p * p)
  return F.linear(cols, w:reshape(w:size(1), Cin * p * p), self._params.bias), gh, gw
end

local VisionEmbeddings = nn.class('CLIPVisionEmbeddings')
function VisionEmbeddings:init(c)
  self.grid = math.floor(c.image_size / c.patch_size)
  self:param('class_embedding', T.randn({ c.hidden_size }))
  self:add('patch_embedding', PatchConv(c.num_channels, c.hidden_size, c.patch_size, false))
  self:add('position_embedding', nn.Embedding(self.grid * self.grid + 1, c.hidden_size))
end
function VisionEmbeddings:forward(pixels)
  local B = pixels:size(1)
  local patches, gh, gw = self._modules.patch_embedding(pixels)
  if gh ~= self.grid or gw ~= self.grid then
    error(('clip vision: a %dx%d image gives %dx%d patches, the model has %dx%d positions (resize to the '
      .. 'model size)')
      :format(pixels:size(3), pixels:size(4), gh, gw, self.grid, self.grid), 3)
  end
  local D = patches:size(3)
  local cls = self._params.class_embedding:reshape(1, 1, D):expand(B, 1, D)
  return F.cat({ cls, patches }, 2) + self._modules.position_embedding._params.weight
end

local VisionTransformer = nn.class('CLIPVisionTransformer')
function VisionTransformer:init(c)
  self.config = c
  self:add('embeddings', VisionEmbeddings(c))
  self:add('pre_layrnorm', nn.LayerNorm(c.hidden_size, { eps = c.layer_norm_eps }))
  self:add('encoder', Encoder(c))
  self:add('post_layernorm', nn.LayerNorm(c.hidden_size, { eps = c.layer_norm_eps }))
end
-- forward(pixels [B, C, S, S] normalised) -> { last_hidden_state [B, 1 + N, D] (no final norm,
-- as transformers), pooler_output [B, D] = post_layernorm(class token) }
function VisionTransformer:forward(pixels, o)
  if not T.is_tensor(pixels) or pixels:dim() ~= 4 then
    argerror('clip vision: pixel_values must be a [B, C, H, W] tensor')
  end
  local m = self._modules
  local hs = o and o.output_hidden_states and {} or nil
  local x = m.encoder(m.pre_layrnorm(m.embeddings(pixels)), nil, false, hs and function(i, h) hs[i] = h end)
  return { last_hidden_state = x, pooler_output = m.post_layernorm(x:select(2, 1)), hidden_states = hs }
end

---------------------------------------------------------------- the transformers classes
-- CLIPTextModel(cfg, {projection = true}) -> CLIPTextModelWithProjection (text_projection).
local TextModel = nn.class('CLIPTextModel')
M.CLIPTextModel = TextModel
function TextModel:init(cfg, o)
  local where = O.where(cfg, 'CLIPTextConfig')
  -- a whole CLIPModel config: its text part (as CLIPTextConfig.from_pretrained reads one)
  if type(cfg) == 'table' and cfg.model_type == 'clip' then
    O.check(cfg, M.CLIP_OPTIONS, where); cfg = sub_config(cfg, 'text', where)
  end
  local c = checked(cfg, M.TEXT_OPTIONS, where)
  self.config = c
  self:add('text_model', TextTransformer(c))
  if o and o.projection then
    self:add('text_projection', nn.Linear(c.hidden_size, c.projection_dim, { bias = false }))
  end
end
-- forward(ids, o) -> text_model's outputs, plus text_embeds with a projection
function TextModel:forward(ids, o)
  local out = self._modules.text_model(ids, o)
  if self._modules.text_projection then out.text_embeds = self._modules.text_projection(out.pooler_output) end
  return out
end

local VisionModel = nn.class('CLIPVisionModel')
M.CLIPVisionModel = VisionModel
function VisionModel:init(cfg, o)
  local where = O.where(cfg, 'CLIPVisionConfig')
  if type(cfg) == 'table' and cfg.model_type == 'clip' then
    O.check(cfg, M.CLIP_OPTIONS, where); cfg = sub_config(cfg, 'vision', where)
  end
  local c = checked(cfg, M.VISION_OPTIONS, where)
  self.config = c
  self:add('vision_model', VisionTransformer(c))
  if o and o.projection then
    self:add('visual_projection', nn.Linear(c.hidden_size, c.projection_dim, { bias = false }))
  end
end
function VisionModel:forward(pixels, o)
  local out = self._modules.vision_model(pixels, o)
  if self._modules.visual_projection then
    out.image_embeds = self._modules.visual_projection(out.pooler_output)
  end
  return out
end

-- CLIPModel(cfg): cfg as CLIPConfig's config.json (text_config, vision_config, projection_dim,
-- logit_scale_init_value).
local Model = nn.class('CLIPModel')
M.CLIPModel = Model
function Model:init(cfg)
  local where = O.where(cfg, 'CLIPConfig')
  local top = O.check(cfg, M.CLIP_OPTIONS, where)
  local pd = top.projection_dim
  local tc = checked(sub_config(top, 'text', where), M.TEXT_OPTIONS)
  local vc = checked(sub_config(top, 'vision', where), M.VISION_OPTIONS)
  self.config = { text_config = tc, vision_config = vc, projection_dim = pd }
  self:add('text_model', TextTransformer(tc))
  self:add('vision_model', VisionTransformer(vc))
  self:add('visual_projection', nn.Linear(vc.hidden_size, pd, { bias = false }))
  self:add('text_projection', nn.Linear(tc.hidden_size, pd, { bias = false }))
  self:param('logit_scale', T.full({}, top.logit_scale_init_value))
end
-- encode_text(ids, {normalize, attention_mask}) -> [B, projection_dim] (transformers'
-- get_text_features; normalize = true divides by the L2 norm, for cosine similarities)
function Model:encode_text(ids, o)
  local e = self._modules.text_projection(self._modules.text_model(ids, o).pooler_output)
  return (o and o.normalize) and F.normalize(e, -1) or e
end
-- encode_image(pixels, {normalize}) -> [B, projection_dim] (get_image_features)
function Model:encode_image(pixels, o)
  local e = self._modules.visual_projection(self._modules.vision_model(pixels).pooler_output)
  return (o and o.normalize) and F.normalize(e, -1) or e
end
-- forward(ids, pixels) -> { logits_per_image [Bi, Bt], logits_per_text, text_embeds, image_embeds }
-- (embeds normalised; logits = exp(logit_scale) * cosine similarity, as transformers)
function Model:forward(ids, pixels, o)
  local t = self:encode_text(ids, { normalize = true, attention_mask = o and o.attention_mask })
  local i = self:encode_image(pixels, { normalize = true })
  local lpi = i:matmul(t:t()) * self._params.logit_scale:exp()
  return { logits_per_image = lpi, logits_per_text = lpi:t(), text_embeds = t, image_embeds = i }
end

---------------------------------------------------------------- building and loading
local KINDS = {
  CLIPModel = function(c) return Model(c) end,
  CLIPTextModel = function(c) return TextModel(c) end,
  CLIPTextModelWithProjection = function(c) return TextModel(c, { projection = true }) end,
  CLIPVisionModel = function(c) return VisionModel(c) end,
  CLIPVisionModelWithProjection = function(c) return VisionModel(c, { projection = true }) end,
}
local BY_TYPE = { clip = 'CLIPModel', clip_text_model = 'CLIPTextModel',
  clip_vision_model = 'CLIPVisionModel' }

-- from_config(cfg, {kind = 'CLIPModel' | ...}): the class named by kind, else by
-- cfg.architectures[1], else by cfg.model_type.
function M.from_config(cfg, o)
  local where = O.where(cfg, 'CLIP config')
  if type(cfg) ~= 'table' or O.is_list(cfg) then
    argerror(('%s: the config must be an object, got %s'):format(where, O.show(cfg)))
  end
  local arch = cfg.architectures
  local kind = (o and o.kind) or (O.is_list(arch) and arch[1]) or BY_TYPE[cfg.model_type == nil and 'clip'
    or cfg.model_type]
  local make = KINDS[kind]
  if not make then
    argerror(('%s: model class %s is not implemented by craft (CLIPModel, CLIPTextModel, '
      .. 'CLIPTextModelWithProjection, CLIPVisionModel, CLIPVisionModelWithProjection)')
      :format(where, O.show(kind or cfg.model_type)))
  end
  local model = make(cfg)
  model.kind = kind
  return model
end

-- The checkpoint's tensors for `model`: position_ids buffers (saved by older transformers)
-- are dropped; everything else must match exactly.
function M.load_weights(model, path)
  local io = require 'craft.io'
  local sd = io.load_safetensors(path)
  for k in pairs(sd) do if k:match('position_ids$') then sd[k] = nil end end
  model:load_state_dict(sd)
  return model
end

-- The weights file of a transformers / diffusers folder: model.safetensors, else (or first,
-- with variant 'fp16') model.fp16.safetensors.
function M.weights_path(dir, variant)
  local names = variant and { 'model.' .. variant .. '.safetensors', 'model.safetensors' }
    or { 'model.safetensors', 'model.fp16.safetensors' }
  for _, n in ipairs(names) do
    local f = io.open(dir .. '/' .. n, 'rb')
    if f then f:close(); return dir .. '/' .. n end
  end
  argerror(('%s: no weights file (looked for %s)'):format(dir, table.concat(names, ', ')))
end

-- from_pretrained(dir, {kind, variant}) -> model in eval mode from dir/config.json and its
-- weights (a transformers save_pretrained folder, or a diffusers text_encoder/ folder).
local function from_pretrained(dir, o)
  local cfg = O.read(dir .. '/config.json', { quiet = o and o.quiet })
  local model = M.from_config(cfg, o)
  M.load_weights(model, M.weights_path(dir, o and o.variant))
  return model:eval()
end
-- {device = 'cl:0'}: the model is built and loaded there (default: the current device)
function M.from_pretrained(dir, o)
  return require('craft.device').scope(type(o) == 'table' and o.device or nil, from_pretrained, dir, o)
end
-- craft.models.load() looks for this to load a pipeline's text_encoder/
M.load_text_encoder = M.from_pretrained

---------------------------------------------------------------- image preprocessing
-- OpenAI CLIP's normalisation (CLIPImageProcessor's defaults).
M.MEAN = { 0.48145466, 0.4578275, 0.40821073 }
M.STD = { 0.26862954, 0.26130258, 0.27577711 }

-- preprocess(images [B, C, H, W] float, {size = 224, crop = 224, mean, std, range = {0, 1}})
-- -> normalised [B, C, crop, crop], differentiable in the images (reward finetuning goes
-- through it). As CLIPImageProcessor: the shortest side resized to `size` (the other to
-- floor(size * long / short)), a centre crop (offsets floor((H - crop) / 2)), then
-- (x - mean) / std. `range` is the value range of the input ({-1, 1} for a VAE decode).
-- Differences: CLIPImageProcessor resizes uint8 images with PIL's antialiased bicubic; this
-- uses bilinear (align_corners false), after an average pooling by floor(scale) when shrinking
-- by 2x or more (a box prefilter standing in for the antialiasing), on floats. Parity tests
-- feed already-preprocessed pixels.
function M.preprocess(images, o)
  o = o or {}
  if not T.is_tensor(images) or images:dim() ~= 4 then
    argerror('preprocess: images must be a [B, C, H, W] tensor')
  end
  local size, crop = o.size or 224, o.crop or o.size or 224
  local mean, std, range = o.mean or M.MEAN, o.std or M.STD, o.range or { 0, 1 }
  local x = images
  if range[1] ~= 0 or range[2] ~= 1 then x = (x - range[1]) * (1 / (range[2] - range[1])) end
  local H, W = x:size(3), x:size(4)
  local short, long = math.min(H, W), math.max(H, W)
  local ns, nl = size, math.floor(size * long / short)
  local oh, ow = H <= W and ns or nl, H <= W and nl or ns
  if oh ~= H or ow ~= W then
    local k = math.floor(short / size)
    if k >= 2 then
      x = F.avg_pool2d(x, k, k)
      H, W = x:size(3), x:size(4)
    end
    if oh ~= H or ow ~= W then x = F.interpolate(x, { size = { oh, ow }, mode = 'bilinear' }) end
  end
  if oh < crop or ow < crop then
    argerror(('preprocess: resized image %dx%d is smaller than the %d crop'):format(oh, ow, crop))
  end
  local top, left = math.floor((oh - crop) / 2), math.floor((ow - crop) / 2)
  x = x:narrow(3, top + 1, crop):narrow(4, left + 1, crop)
  local C = x:size(2)
  if #mean ~= C or #std ~= C then
    argerror(('preprocess: %d channels, but %d means and %d stds'):format(C, #mean, #std))
  end
  return (x - T.tensor(mean):reshape(1, C, 1, 1)) / T.tensor(std):reshape(1, C, 1, 1)
end

-- preprocess_config(path) -> the options of preprocess() from a preprocessor_config.json
function M.preprocess_config(path)
  local c = require('craft.io').read_json(path)
  local size = type(c.size) == 'table' and (c.size.shortest_edge or c.size.height) or c.size
  local crop = type(c.crop_size) == 'table' and (c.crop_size.height
    or c.crop_size.shortest_edge) or c.crop_size
  return { size = size, crop = crop, mean = c.image_mean, std = c.image_std }
end

return M
