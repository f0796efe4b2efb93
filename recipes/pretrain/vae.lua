-- recipes/pretrain/vae.lua: the built-in tiny AutoencoderKL (models/builtin/sd-tiny/vae).
--   ./build/craft recipes/pretrain/vae.lua [resume=1]
-- 32x32 RGB phantoms of all four modalities -> 8x8x4 latents (the SD factor of 8 would leave
-- 4x4, too coarse for a lesion; 4 keeps an 8x8 latent grid the UNet can still attend over).
-- Architecture: block_out_channels (32, 64, 64): three levels give the two downsamplings, and the
-- 64-channel 8x8 level holds the mid-block attention as SD's VAE does. norm_num_groups 8: 4 to 8
-- channels per group, the ratio SD's VAE has (32 groups over 128..512 channels); 16 groups would
-- normalise pairs of channels at the first level. layers_per_block 1 (decoder 2, as diffusers).
-- Loss: L1 + L2 reconstruction (L1 keeps small bright / dark lesions sharp, L2 the flat areas)
-- plus a small KL (1e-4 of the per-element mean): enough to keep the posterior a distribution the
-- diffusion model can sample, small enough not to blur. Fresh phantoms every step (seeds.lua: vae).
-- Two stages: 2000 steps of that loss, then 1500 more (lr 3e-4) adding an L1 loss on the
-- images' horizontal and vertical differences: pixel losses alone averaged thin structures
-- (fundus vessels, red derm patches, nuclei) away after stage 1; the gradient term is the
-- cheap stand-in for SD's perceptual + adversarial losses. `resume=1` runs stage 2 only, from the
-- stage-1 weights in the output folder.
local craft = require 'craft'
local C = require 'pretrain.common'
local V = require 'craft.models.vae'

local o = C.args { batch = 32, kl = 1e-4, save_every = 250, resume = 0 }
local STAGES = { { steps = 2000, lr = 5e-4, grad = 0 }, { steps = 1500, lr = 3e-4, grad = 1 } }
local OUT = C.out .. '/sd-tiny/vae'
local CONFIG = {
  _class_name = 'AutoencoderKL', _diffusers_version = '0.27.2', act_fn = 'silu',
  block_out_channels = { 32, 64, 64 },
  down_block_types = { 'DownEncoderBlock2D', 'DownEncoderBlock2D', 'DownEncoderBlock2D' },
  up_block_types = { 'UpDecoderBlock2D', 'UpDecoderBlock2D', 'UpDecoderBlock2D' },
  force_upcast = true, in_channels = 3, out_channels = 3, latent_channels = 4, layers_per_block = 1,
  norm_num_groups = 8, sample_size = 32, scaling_factor = 1.0,
  latents_mean = craft.io.null, latents_std = craft.io.null,
}

local seed = C.seeds.vae.seed
craft.manual_seed(seed)
local vae = V.AutoencoderKL(CONFIG)
C.mkdir(OUT)
C.log('vae: %d parameters, stages of %d + %d steps of %d images (seed %d)', vae:num_parameters(),
  STAGES[1].steps,
  STAGES[2].steps, o.batch, seed)

local per = o.batch / 4

local function psnr(mse) return 10 * math.log10(1 / math.max(mse, 1e-12)) end

-- The scaling factor makes the latents unit variance for the UNet (SD's 0.18215 is this same
-- statistic of its own VAE), measured on the VAE's training stream past the indices it used.
local function fit_scaling()
  local x = C.mixed(128, seed, 10 ^ 7)
  local mean = craft.no_grad(function() return (vae:encode(x * 2 - 1)) end)
  local sd = math.sqrt(mean:var():item())
  return 1 / sd, sd
end

local function save(step, stats)
  CONFIG.scaling_factor = fit_scaling()   -- (a cheap no-grad pass: kept current with every save)
  C.write_json(OUT .. '/config.json', CONFIG)
  C.save_half(OUT .. '/diffusion_pytorch_model.safetensors', vae)
  stats.step, stats.scaling_factor = step, CONFIG.scaling_factor
  C.write_json(OUT .. '/craft_training.json', stats)
end

local t0, done, history = C.now(), 0, {}
if o.resume == 1 then
  local saved = craft.io.read_json(OUT .. '/craft_training.json')
  assert((saved.stage or 1) == 1 and saved.step == STAGES[1].steps,
    'resume=1 needs the finished stage-1 weights in ' .. OUT)
  vae:load_state_dict(craft.models.load_vae(OUT):state_dict())
  done = STAGES[1].steps
  history[1] = saved.stages and saved.stages[1] or { l1 = saved.l1, psnr_train = saved.psnr_train,
    kl = saved.kl,
    steps = STAGES[1].steps, lr = STAGES[1].lr, grad_weight = 0, seconds = saved.seconds }
  C.log('resuming after stage 1 (%d steps)', done)
end
for si, st in ipairs(STAGES) do
  if not (o.resume == 1 and si == 1) then
    local opt = craft.optim.AdamW(vae, { lr = st.lr, weight_decay = 0 })
    local sched = craft.optim.LRScheduler(opt,
      craft.optim.schedule.cosine(st.steps, { warmup = 100, min_ratio = 0.1 }))
    local ema, ts = nil, C.now()
    for step = 1, st.steps do
      -- a global step count keeps the images fresh across stages
      local x = C.mixed(per, seed, (done + step - 1) * per) * 2 - 1
      local mean, logvar = vae:encode(x)
      local y = vae:decode(vae:sample(mean, logvar))
      local d = y - x
      local l1, l2 = d:abs():mean(), d:square():mean()
      local kl = ((mean:square() + logvar:exp() - logvar - 1) * 0.5):mean()
      local loss = l1 + l2 + kl * o.kl
      local g = 0
      if st.grad > 0 then
        local gx = (d:narrow(4, 2, 31) - d:narrow(4, 1, 31)):abs():mean()
        local gy = (d:narrow(3, 2, 31) - d:narrow(3, 1, 31)):abs():mean()
        loss = loss + (gx + gy) * st.grad
        g = gx:item() + gy:item()
      end
      loss:backward()
      craft.optim.clip_grad_norm(vae, 1.0)
      opt:step(); opt:zero_grad(); sched:step()
      -- mse01: on [0, 1] pixels
      local s = { l1 = l1:item(), mse01 = l2:item() / 4, kl = kl:item(), grad = g }
      if not ema then ema = s else for k, v in pairs(s) do ema[k] = 0.95 * ema[k] + 0.05 * v end end
      if step % 50 == 0 or step == 1 then
        C.log('stage %d step %5d  l1 %.4f  psnr %.2f dB  grad-l1 %.4f  kl %.3f  lr %.2e  %.2f s/step', si,
          step, ema.l1,
          psnr(ema.mse01), ema.grad, ema.kl, opt.lr, (C.now() - ts) / step)
      end
      if step % o.save_every == 0 or step == st.steps then
        history[si] = { l1 = ema.l1, psnr_train = psnr(ema.mse01), grad_l1 = ema.grad, kl = ema.kl,
          steps = st.steps,
          lr = st.lr, grad_weight = st.grad, seconds = C.now() - ts }
        save(step, { stage = si, stages = history, batch = o.batch, seed = seed })
      end
    end
    done = done + st.steps
  end
end

-- Held-out check (seeds.lua: heldout), the README's number.
vae:eval()
for _, m in ipairs(C.seeds.modalities) do
  local x = C.phantoms(m, 64, C.seeds.heldout.seed, 0).images
  local y = craft.no_grad(function() return (vae:decode(vae:encode(x * 2 - 1)) * 0.5 + 0.5):clamp(0, 1) end)
  C.log('held-out %-6s PSNR %.2f dB', m, psnr((y - x):square():mean():item()))
end
C.log('vae: done in %.0f s, scaling_factor %.5f -> %s', C.now() - t0, CONFIG.scaling_factor, OUT)
