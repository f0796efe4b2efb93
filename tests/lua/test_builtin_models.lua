-- The built-in models (models/builtin, made by recipes/pretrain/*.lua) load through the public
-- loaders and do their jobs on held-out phantoms (recipes/pretrain/seeds.lua: heldout):
-- the VAE reconstructs, CLIP classifies zero-shot above chance, DINOv2 and ResNet features
-- support a linear probe above chance, and the pipeline samples finite images in range that
-- the CLIP recognises as the prompted modality. The bounds sit below the numbers in
-- models/builtin/README.md, with a margin for thread-count rounding differences.
local craft = require 'craft'
local models = require 'craft.models'
local clip = require 'craft.models.clip'
local dinov2 = require 'craft.models.dinov2'
local resnet = require 'craft.models.resnet'
local tokenizer = require 'craft.tokenizer'
local C = dofile('recipes/pretrain/common.lua')
local B = C.out .. '/'   -- models/builtin (CRAFT_BUILTIN_DIR overrides, for trial runs)
local T = {}

local CHANCE = { cxr = 1 / 3, fundus = 1 / 3, derm = 1 / 2, histo = 1 / 3 }

-- held-out reconstruction PSNR measured after training: cxr 37.6, fundus 35.5, derm 33.2, histo 26.1 dB
local MIN_PSNR = { cxr = 34, fundus = 32, derm = 30, histo = 24 }

local function psnr(a, b) return 10 * math.log10(1 / math.max((a - b):square():mean():item(), 1e-12)) end

function T.vae_reconstructs_heldout_phantoms(t)
  local vae = models.load_vae(B .. 'sd-tiny/vae')
  t.eq(table.concat(vae.config.block_out_channels, ','), '32,64,64', 'VAE levels')
  for _, m in ipairs(C.seeds.modalities) do
    local x = C.phantoms(m, 32, C.seeds.heldout.seed, 0).images
    local y = craft.no_grad(function()
      local mean = vae:encode(x * 2 - 1)
      t.eq(table.concat(mean.shape, 'x'), '32x4x8x8', 'latent shape')
      return (vae:decode(mean) * 0.5 + 0.5):clamp(0, 1)
    end)
    local p = psnr(y, x)
    t.ok(p > MIN_PSNR[m], ('%s: reconstruction PSNR %.2f dB (want > %g)'):format(m, p, MIN_PSNR[m]))
  end
end

function T.clip_zero_shot_is_above_chance(t)
  local dir = B .. 'clip-tiny'
  local model = clip.from_pretrained(dir)
  t.eq(model.kind, 'CLIPModel', 'kind')
  local tok = tokenizer.load(dir)
  t.eq(tok:vocab_size(), 49408, 'the real CLIP vocabulary')
  local acc = C.zero_shot(model, tok, 96, clip.preprocess_config(dir .. '/preprocessor_config.json'))
  for _, m in ipairs(C.seeds.modalities) do
    t.ok(acc[m] > CHANCE[m] + 0.15, ('%s: zero-shot accuracy %.3f (chance %.3f)'):format(m, acc[m], CHANCE[m]))
  end
end

function T.dinov2_features_support_a_linear_probe(t)
  local model = dinov2.from_pretrained(B .. 'dinov2-tiny')
  local acc = C.linear_probe(function(x)
    return model(dinov2.preprocess(x, { size = 32, crop = 32 })).pooler_output
  end)
  for _, m in ipairs(C.seeds.modalities) do
    t.ok(acc[m] > CHANCE[m] + 0.15, ('%s: linear-probe accuracy %.3f (chance %.3f)'):format(m, acc[m], CHANCE[m]))
  end
end

function T.resnet_evaluator_features_support_a_linear_probe(t)
  local model = resnet.from_pretrained(B .. 'resnet-tiny')
  local mean = craft.tensor(dinov2.MEAN):reshape(1, 3, 1, 1)
  local std = craft.tensor(dinov2.STD):reshape(1, 3, 1, 1)
  local acc = C.linear_probe(function(x) return model((x - mean) / std).features end)
  for _, m in ipairs(C.seeds.modalities) do
    t.ok(acc[m] > CHANCE[m] + 0.15, ('%s: linear-probe accuracy %.3f (chance %.3f)'):format(m, acc[m], CHANCE[m]))
  end
end

function T.pipeline_samples_the_prompted_modality(t)
  local pipe = models.load(B .. 'sd-tiny', { quiet = true })
  t.ok(pipe.text_encoder ~= nil and pipe.tokenizer ~= nil, 'text encoder and tokenizer loaded')
  local prompts, want = {}, {}
  for k, m in ipairs(C.seeds.modalities) do
    for j = 1, 4 do prompts[#prompts + 1] = C.captions.generic_captions[m][j]; want[#want + 1] = k - 1 end
  end
  local img, lat = craft.no_grad(function() return pipe:generate { prompt = prompts, steps = 4, cfg = 3, seed = 1 } end)
  t.eq(table.concat(img.shape, 'x'), '16x3x32x32', 'image shape')
  t.eq(img:ne(img):sum():item(), 0, 'no NaN in the images')
  t.eq(lat:ne(lat):sum():item(), 0, 'no NaN in the latents')
  t.ok(lat:abs():max():item() < 50, 'latents bounded')
  t.ok(img:min():item() >= 0 and img:max():item() <= 1, 'images in [0, 1]')
  t.ok(img:std():item() > 0.05, 'images are not flat')
  -- which modality does the reward CLIP see in each sample?
  local dir = B .. 'clip-tiny'
  local vlm, tok = clip.from_pretrained(dir), tokenizer.load(dir)
  local pred = craft.no_grad(function()
    local txt = vlm:encode_text(tok:encode({ 'a chest x-ray', 'a fundus photograph', 'a dermoscopy image of a skin lesion',
      'a histopathology image' }), { normalize = true })
    local im = vlm:encode_image(clip.preprocess(img, { size = 32, crop = 32 }), { normalize = true })
    return im:matmul(txt:t()):argmax(2):flat()
  end)
  local ok = 0
  for i = 1, #want do if pred[i] == want[i] then ok = ok + 1 end end
  t.ok(ok >= 12, ('the CLIP names the prompted modality of %d of 16 samples (want >= 12)'):format(ok))
end

function T.weights_are_float16_and_small(t)
  for _, f in ipairs { 'sd-tiny/unet/diffusion_pytorch_model.safetensors', 'sd-tiny/vae/diffusion_pytorch_model.safetensors',
    'sd-tiny/text_encoder/model.safetensors', 'clip-tiny/model.safetensors', 'dinov2-tiny/model.safetensors',
    'resnet-tiny/model.safetensors' } do
    local list = craft.io.inspect(B .. f)
    local bad = 0
    for _, e in ipairs(list) do
      if e.dtype ~= 'F16' and not e.name:match('num_batches_tracked$') then bad = bad + 1 end
    end
    t.eq(bad, 0, f .. ': tensors not float16')
  end
  local p = io.popen('du -sk ' .. B .. ' 2>/dev/null')
  local kb = tonumber((p:read('*a') or ''):match('^(%d+)'))
  p:close()
  if kb then t.ok(kb < 40 * 1024, ('models/builtin is %.1f MB (want < 40)'):format(kb / 1024)) end
end

return T
