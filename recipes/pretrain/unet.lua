-- recipes/pretrain/unet.lua: the built-in foundation generator, a tiny UNet2DConditionModel, and
-- the pipeline folder around it (models/builtin/sd-tiny: model_index.json, scheduler/, unet/;
-- vae/ from vae.lua, text_encoder/ and tokenizer/ from clip.lua: run those first).
--   ./build/craft recipes/pretrain/unet.lua [steps=3000 batch=64]
-- Architecture: latents 8x8x4; block_out_channels (64, 128), one resnet per level; cross-
-- attention at 8x8 (4 heads of 16) and in the 4x4 mid block (8 heads of 16); cross_attention_dim
-- 64 = the tiny CLIP's text width; linear projections as SD 2.x.
-- What it must not know: the clinical labels CRAFT later adapts it to. Its captions name the
-- modality only, in generic words (captions.lua: generic_captions), for images of every class
-- (one caption in ten is empty, for classifier-free guidance). Its images come from its own seed
-- (seeds.lua: unet), disjoint from the reward / evaluator models' and from the finetuning set.
-- Training: DDPM epsilon loss, SD's scaled-linear betas (1000 steps), uniform timesteps, AdamW,
-- an EMA of the weights (what is saved). Latents are encoded once by the frozen VAE (mean and
-- log-variance cached, a fresh posterior sample each step) and the frozen text encoder's hidden
-- states are cached per caption: the UNet is the only network run per step.
local craft = require 'craft'
local C = require 'pretrain.common'
local models = require 'craft.models'
local U = require 'craft.models.unet'
local schedulers = require 'craft.models.schedulers'
local F = craft.F

local o = C.args { steps = 3000, batch = 64, lr = 3e-4, wd = 0.01, pool = 3072, ema = 0.999, uncond = 0.1,
  save_every = 500 }
local ROOT = C.out .. '/sd-tiny'
local CONFIG = {
  _class_name = 'UNet2DConditionModel', _diffusers_version = '0.27.2', act_fn = 'silu',
  attention_head_dim = { 4, 8 }, block_out_channels = { 64, 128 }, center_input_sample = false,
  cross_attention_dim = 64, down_block_types = { 'CrossAttnDownBlock2D', 'DownBlock2D' },
  downsample_padding = 1, dropout = 0.0, flip_sin_to_cos = true, freq_shift = 0, in_channels = 4,
  layers_per_block = 1, mid_block_scale_factor = 1, mid_block_type = 'UNetMidBlock2DCrossAttn',
  norm_eps = 1e-5, norm_num_groups = 16, out_channels = 4, sample_size = 8,
  transformer_layers_per_block = 1, up_block_types = { 'UpBlock2D', 'CrossAttnUpBlock2D' },
  upcast_attention = false, use_linear_projection = true, time_embedding_type = 'positional',
  only_cross_attention = false, resnet_time_scale_shift = 'default', conv_in_kernel = 3, conv_out_kernel = 3,
}
-- Stable Diffusion's own scheduler file (DDIM, scaled-linear betas 0.00085 .. 0.012)
local SCHEDULER = { _class_name = 'DDIMScheduler', _diffusers_version = '0.27.2', beta_end = 0.012,
  beta_schedule = 'scaled_linear', beta_start = 0.00085, clip_sample = false, clip_sample_range = 1.0,
  num_train_timesteps = 1000, prediction_type = 'epsilon', rescale_betas_zero_snr = false,
  set_alpha_to_one = false, steps_offset = 1, thresholding = false, timestep_spacing = 'leading',
  trained_betas = craft.io.null, dynamic_thresholding_ratio = 0.995, sample_max_value = 1.0 }
local NULL2 = { craft.io.null, craft.io.null }
local INDEX = { _class_name = 'StableDiffusionPipeline', _diffusers_version = '0.27.2',
  feature_extractor = NULL2, image_encoder = NULL2, safety_checker = NULL2, requires_safety_checker = false,
  scheduler = { 'diffusers', 'DDIMScheduler' }, text_encoder = { 'transformers', 'CLIPTextModel' },
  tokenizer = { 'transformers', 'CLIPTokenizer' }, unet = { 'diffusers', 'UNet2DConditionModel' },
  vae = { 'diffusers', 'AutoencoderKL' } }

local seed = C.seeds.unet.seed
craft.manual_seed(seed)
C.mkdir(ROOT .. '/unet'); C.mkdir(ROOT .. '/scheduler')
C.write_json(ROOT .. '/scheduler/scheduler_config.json', SCHEDULER)
C.write_json(ROOT .. '/model_index.json', INDEX)

---------------------------------------------------------------- frozen parts and caches
local vae = models.load_vae(ROOT .. '/vae'):eval()
local clip = require 'craft.models.clip'
local text_encoder = clip.from_pretrained(ROOT .. '/text_encoder')
local tok = require('craft.tokenizer').load(ROOT .. '/tokenizer')
local sf = vae.scaling_factor

-- captions: every generic caption of every modality, and the empty one (index 1)
local caps, cap_ids = { '' }, {}
for k, m in ipairs(C.seeds.modalities) do
  cap_ids[k] = {}
  for _, c in ipairs(C.captions.generic_captions[m]) do
    caps[#caps + 1] = c; cap_ids[k][#cap_ids[k] + 1] = #caps
  end
end
-- [n, 77, 64]
local ctx_all = craft.no_grad(function() return text_encoder(tok:encode(caps)).last_hidden_state end)
local L, W = ctx_all:size(2), ctx_all:size(3)
ctx_all = ctx_all:reshape(#caps, L * W):contiguous()

-- latent pool: o.pool phantoms per modality (all classes), posterior mean and log-variance
local t0 = C.now()
local means, logvars, mods = {}, {}, {}
craft.no_grad(function()
  for k, m in ipairs(C.seeds.modalities) do
    for first = 0, o.pool - 1, 256 do
      local x = C.phantoms(m, math.min(256, o.pool - first), seed, first).images
      local mu, lv = vae:encode(x * 2 - 1)
      means[#means + 1], logvars[#logvars + 1] = mu, lv
      for _ = 1, x:size(1) do mods[#mods + 1] = k end
    end
  end
end)
local N = #mods
local mean_all = craft.cat(means, 1):reshape(N, -1):contiguous()
local std_all = (craft.cat(logvars, 1) * 0.5):exp():reshape(N, -1):contiguous()
means, logvars = nil, nil
C.log('unet: %d latents encoded in %.0f s (scaling factor %.4f, latent sd %.3f)', N, C.now() - t0, sf,
  (mean_all * sf):var():sqrt():item())

---------------------------------------------------------------- model
local unet = U.UNet2DConditionModel(CONFIG)
local sched = schedulers.DDPM(SCHEDULER)
local opt = craft.optim.AdamW(unet, { lr = o.lr, weight_decay = o.wd })
local lrs = craft.optim.LRScheduler(opt,
  craft.optim.schedule.cosine(o.steps, { warmup = 200, min_ratio = 0.05 }))
local ema = craft.optim.EMA(unet, o.ema)
local shadow = U.UNet2DConditionModel(CONFIG)   -- the EMA weights, for saving and sampling
C.log('unet: %d parameters, %d steps of %d latents', unet:num_parameters(), o.steps, o.batch)

local rng_state = seed
local function rand(n)
  rng_state = (rng_state * 1103515245 + 12345) % 2147483648
  return 1 + math.floor(rng_state / 2147483648 * n)
end

local function with_ema()
  ema:copy_to(shadow)
  return shadow:eval()
end

local function save(step, stats)
  local m = with_ema()
  C.write_json(ROOT .. '/unet/config.json', CONFIG)
  C.save_half(ROOT .. '/unet/diffusion_pytorch_model.safetensors', m)
  stats.step = step
  C.write_json(ROOT .. '/unet/craft_training.json', stats)
end

-- A 4-step DDIM sample per modality (cfg 3) from the saved folder, as a PNG strip, and its range.
local function sample_check(path)
  local pipe = models.load(ROOT, { quiet = true })
  local prompts = {}
  for _, m in ipairs(C.seeds.modalities) do
    for j = 1, 4 do prompts[#prompts + 1] = C.captions.generic_captions[m][j] end
  end
  local img = craft.no_grad(function()
    return pipe:generate { prompt = prompts, steps = 4, cfg = 3, seed = 7 }
  end)
  local rows = {}
  for k = 1, 4 do
    local parts = {}
    for j = 1, 4 do parts[j] = img:select(1, (k - 1) * 4 + j) end
    rows[k] = craft.cat(parts, 3)
  end
  craft.phantoms.write_png(path, craft.cat(rows, 2))
  return img:min():item(), img:max():item()
end

local t1, avg = C.now(), nil
for step = 1, o.steps do
  local idx, cidx, ts = {}, {}, {}
  for i = 1, o.batch do
    local j = rand(N)
    idx[i] = j - 1
    local ids = cap_ids[mods[j]]
    cidx[i] = (rand(1000) <= o.uncond * 1000) and 0 or ids[rand(#ids)] - 1
    ts[i] = rand(1000) - 1
  end
  local it = craft.tensor(idx, { dtype = 'i64' })
  local z0 = (F.embedding(it, mean_all) + F.embedding(it, std_all) * craft.randn({ o.batch, 256 })) * sf
  z0 = z0:reshape(o.batch, 4, 8, 8)
  local ctx = F.embedding(craft.tensor(cidx, { dtype = 'i64' }), ctx_all):reshape(o.batch, L, W)
  local noise = craft.randn(z0.shape)
  local pred = unet(sched:add_noise(z0, noise, ts), craft.tensor(ts), ctx)
  local loss = F.mse_loss(pred, noise)
  loss:backward()
  craft.optim.clip_grad_norm(unet, 1.0)
  opt:step(); opt:zero_grad(); lrs:step()
  ema.decay = math.min(o.ema, (1 + step) / (10 + step))   -- the EMA warms up: no random init left in it
  ema:update()
  local l = loss:item()
  avg = avg and 0.98 * avg + 0.02 * l or l
  if step % 50 == 0 or step == 1 then
    C.log('step %5d  loss %.4f  lr %.2e  %.2f s/step', step, avg, opt.lr, (C.now() - t1) / step)
  end
  if step % o.save_every == 0 or step == o.steps then
    save(step, { loss = avg, seconds = C.now() - t1, encode_seconds = t1 - t0, steps = o.steps,
      batch = o.batch,
      seed = seed, pool = o.pool })
    local lo, hi = sample_check('/tmp/sd-tiny-samples.png')
    C.log('4-step DDIM samples in [%.3f, %.3f] -> /tmp/sd-tiny-samples.png', lo, hi)
  end
end
C.log('unet: done in %.0f s -> %s', C.now() - t0, ROOT)
