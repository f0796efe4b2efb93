-- craft.encoders: frozen image/text encoders wrapped in the interface craft.cas consumes:
--   vlm    = {encode_image = fn(images) -> [N, D], encode_text = fn({strings}) -> [M, D]}
--   vision = {encode = fn(images) -> [N, E]}
-- Images are [N, 3, H, W] in [0, 1] (what the VAE decode gives after rescaling). Each adapter
-- applies its model's own preprocessing (preprocessor_config.json when the folder has one; else
-- the model's normalisation at its native size) and is differentiable in the images, so the same
-- object serves the metric and the reward. Parameters are frozen (requires_grad false).
-- {device = 'cl:0'} builds the model there (default: the current device); an encoder computes on
-- its model's device, images from elsewhere are moved there first (differentiably).
local T = require 'craft.tensor'
local F = require 'craft.functional'

local M = {}

local function exists(p) local f = io.open(p) if f then f:close() return true end return false end

-- What an experiment needs to keep the reward and the judge apart (craft.experiment.independence):
-- the folder, its weight files, and the data the model was trained on when the folder says so
-- (craft_training.json's `data`: a list of provenance entries, see docs/evaluation.md).
local function describe(kind, dir, adapter)
  local want = require('craft.core').want
  want('encoders.describe', 'kind', kind, 'string')
  want('encoders.describe', 'dir', dir, 'string')
  want('encoders.describe', 'adapter', adapter, 'table')
  adapter.dir = dir
  adapter.files = {}
  for _, f in ipairs { 'model.safetensors', 'diffusion_pytorch_model.safetensors',
    'pytorch_model.safetensors' } do
    if exists(dir .. '/' .. f) then adapter.files[#adapter.files + 1] = dir .. '/' .. f end
  end
  if exists(dir .. '/craft_training.json') then
    local ok, t = pcall(require('craft.io').read_json, dir .. '/craft_training.json')
    if ok and type(t) == 'table' and type(t.data) == 'table' then adapter.trained_on = t.data end
  end
  adapter.kind = kind
  return adapter
end
M.describe = describe

local function frozen(model)
  model:eval()
  model:requires_grad_(false)
  return model
end

local function options(fname, o)
  o = require('craft.core').want(fname, 'options', o, 'table', true) or {}
  if o.device ~= nil then require('craft.device').code(o.device) end
  return { device = o.device }
end

-- fn(x, ...) on the model's device: x moved there, tensors fn makes made there
local function on_model(model, fn)
  local devices = require 'craft.device'
  return function(x, ...)
    local p = model:named_parameters()[1]
    local dev = p and p[2].device or devices.default()
    if T.is_tensor(x) and x.device ~= dev then x = x:to(dev) end
    return devices.scope(dev, fn, x, ...)
  end
end

-- preprocessing options: the folder's preprocessor_config.json, else no resize (native size)
local function prep_options(dir, mean, std, native)
  local clip = require 'craft.models.clip'
  if exists(dir .. '/preprocessor_config.json') then
    return clip.preprocess_config(dir .. '/preprocessor_config.json')
  end
  return { size = native, crop = native, mean = mean, std = std }
end

-- clip(dir): a CLIPModel folder (transformers layout, with its tokenizer files) as a VLM.
function M.clip(dir, o)
  require('craft.core').want('encoders.clip', 'dir', dir, 'string')
  o = options('encoders.clip', o)
  local clip = require 'craft.models.clip'
  local model = frozen(clip.from_pretrained(dir, o))
  local tok = require('craft.tokenizer').load(dir)
  local vc = model.config.vision_config
  local prep = prep_options(dir, clip.MEAN, clip.STD, vc.image_size)
  -- the temperature the model was trained with (1 / exp(logit_scale)): the CAS default for its
  -- softmax and checklist sigmoids, so a confident model does not saturate them
  local temperature = 1 / math.exp(model._params.logit_scale:item())
  return describe('clip', dir, {
    name = 'clip:' .. dir, model = model, tokenizer = tok, temperature = temperature,
    encode_image = on_model(model, function(images)
      return model:encode_image(clip.preprocess(images, prep))
    end),
    encode_text = on_model(model, function(texts)
      local ids = tok:encode(texts, { max_len = model.config.text_config.max_position_embeddings or 77 })
      return model:encode_text(ids)
    end),
  })
end

-- dinov2(dir): a Dinov2Model folder as the vision encoder F (the class token).
function M.dinov2(dir, o)
  require('craft.core').want('encoders.dinov2', 'dir', dir, 'string')
  o = options('encoders.dinov2', o)
  local dino = require 'craft.models.dinov2'
  local model = frozen(dino.from_pretrained(dir, o))
  local prep = prep_options(dir, dino.MEAN, dino.STD, model.config and model.config.image_size or 224)
  local clip = require 'craft.models.clip'
  return describe('dinov2', dir, { name = 'dinov2:' .. dir, model = model,
    encode = on_model(model, function(images)
      return model(clip.preprocess(images, prep)).pooler_output
    end) })
end

-- resnet(dir): a ResNetModel folder as an out-of-family vision encoder (pooled features).
function M.resnet(dir, o)
  require('craft.core').want('encoders.resnet', 'dir', dir, 'string')
  o = options('encoders.resnet', o)
  local resnet = require 'craft.models.resnet'
  local model = frozen(resnet.from_pretrained(dir, o))
  local dino = require 'craft.models.dinov2'
  local clip = require 'craft.models.clip'
  local native = model.config and model.config.image_size
  local prep = exists(dir .. '/preprocessor_config.json') and clip.preprocess_config(dir
    .. '/preprocessor_config.json') or nil
  return describe('resnet', dir, { name = 'resnet:' .. dir, model = model,
    encode = on_model(model, function(images)
      local x = prep and clip.preprocess(images, prep)
        or (images - T.tensor(dino.MEAN):reshape(1, 3, 1, 1)) / T.tensor(dino.STD):reshape(1, 3, 1, 1)
      if native and not prep and x:size(3) ~= native then
        x = F.interpolate(x, { size = { native, native }, mode = 'bilinear' })
      end
      return model(x).features
    end) })
end

return M
