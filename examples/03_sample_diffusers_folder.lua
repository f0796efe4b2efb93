-- examples/03_sample_diffusers_folder.lua: load a diffusers pipeline folder and sample from it.
--
--   craft examples/03_sample_diffusers_folder.lua [--out runs/examples/03] [--smoke]
--
-- models/builtin/sd-tiny is a StableDiffusionPipeline folder (model_index.json, scheduler/,
-- text_encoder/, tokenizer/, unet/, vae/) of tiny size, trained on the chest x-ray phantoms
-- among others; a real Stable Diffusion 1.x / 2.x folder loads the same way. Writes PNGs to DIR.
local craft = require 'craft'
local repo = require 'craft.repo'   -- paths inside the repository, from any working directory
local args = require('lib.args')(arg, { out = 'runs/examples/03', smoke = false },
  'craft examples/03_sample_diffusers_folder.lua [--out DIR] [--smoke]')
local out = args.out
os.execute(("mkdir -p '%s'"):format(out))

local pipe = craft.models.load(repo.path('models/builtin/sd-tiny'))
print(('loaded: UNet %d parameters, VAE %d, text encoder %d'):format(pipe.unet:num_parameters(),
  pipe.vae:num_parameters(), pipe.text_encoder:num_parameters()))

local prompts = { 'a normal chest x-ray with normal heart size and clear lungs',
  'a chest x-ray with an enlarged cardiac silhouette, cardiothoracic ratio above 0.5' }
local steps = args.smoke and 4 or 10

-- the folder's own scheduler (DDIM here); seed fixes the initial latents, so the same seed gives
-- the same images on every machine
local images, latents, info = craft.no_grad(function()
  return pipe:generate { prompt = prompts, steps = steps, cfg = 3, seed = 1, out = out .. '/ddim_%d.png' }
end)
print(('%s, %d steps: images %s in [%.3f, %.3f], latents %s'):format(info.sampler, #info.timesteps,
  table.concat(images.shape, 'x'), images:min():item(), images:max():item(),
  table.concat(latents.shape, 'x')))
assert(images:size(1) == 2 and images:size(2) == 3, 'two RGB images')

-- another sampler built from the same folder's betas (as diffusers' Class.from_config would)
local again = craft.no_grad(function()
  return pipe:generate { prompt = prompts, steps = steps, cfg = 3, seed = 1, sampler = 'dpm++2m',
    out = out .. '/dpm_%d.png' }
end)
print(('DPM-Solver++ from the same noise: mean |difference| to DDIM %.4f')
  :format((again - images):abs():mean():item()))

-- the gradient window of the trainers (DRaFT-K): a loss on the images reaches the UNet's
-- weights through the last K steps only
pipe.unet:requires_grad_(true)
local img = pipe:generate { prompt = prompts, steps = steps, cfg = 3, seed = 1, grad_steps = 1 }
img:mean():backward()
local moved = 0
for _, np in ipairs(pipe.unet:named_parameters()) do
  if np[2].grad and np[2].grad:abs():max():item() > 0 then moved = moved + 1 end
end
print(('a loss on the images gives %d UNet tensors a gradient (grad_steps = 1)'):format(moved))
assert(moved > 0, 'no gradient through the last step')
print('wrote ' .. out .. '/ddim_1.png ...')
print('example ok: sampled a diffusers folder')
