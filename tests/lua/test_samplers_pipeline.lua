-- A Stable Diffusion 1.5-shaped folder (tests/fixtures/models/tiny_sd15: tiny random weights,
-- SD 1.5's own PNDM scheduler_config.json) sampled by pipe:generate against diffusers'
-- StableDiffusionPipeline (tests/fixtures/make_sampler_fixtures.py): 10 steps at guidance 7.5
-- with the folder's PNDM, and with sampler = 'pndm' (Runge-Kutta start), 'ddim', 'euler',
-- 'euler_a' (craft's seeded noise, exported to the script), 'dpm++2m' and 'dpm++2m_karras'.
-- Then DRaFT's differentiable window with each deterministic sampler: the gradient through all
-- steps matches a central finite difference, and the last-K window's gradient flows.
local craft = require 'craft'
local io_ = require 'craft.io'
local models = require 'craft.models'
local T = {}

local DIR = 'tests/fixtures/models/'
local ref = io_.load_safetensors(DIR .. 'cases/sd15_samplers.safetensors')
local run = io_.read_json(DIR .. 'cases/sd15_samplers.json')
local noise = io_.load_safetensors(DIR .. 'cases/sampler_noise.safetensors')

local pipe
local function get() pipe = pipe or models.load(DIR .. 'tiny_sd15', { quiet = true }); return pipe end

local function options(r, extra)
  local o = { prompt_embeds = ref.prompt_embeds, negative_prompt_embeds = ref.negative_prompt_embeds, steps = run.steps,
    cfg = run.cfg, height = run.height, width = run.width, seed = run.seed }
  for k, v in pairs(r and r.generate or {}) do o[k] = v end
  for k, v in pairs(extra or {}) do o[k] = v end
  return o
end

function T.exported_noise_is_what_generate_draws(t)
  local shape = noise.latents.shape
  t.eq(t.rel(craft.randn(shape, { seed = run.seed }), noise.latents), 0, 'initial latents')
  for i = 1, run.steps do
    t.eq(t.rel(craft.randn(shape, { seed = run.seed + i, offset = 1 }), noise[('step_noise.%d'):format(i)]), 0, 'step noise ' .. i)
  end
end

function T.sd15_folder_samples_with_its_pndm_and_others_at_parity(t)
  local p = get()
  t.eq(p.scheduler.class_name, 'PNDMScheduler', 'the folder\'s scheduler')
  t.eq(#run.runs, 7, 'runs')
  for _, r in ipairs(run.runs) do
    local _, lat, info = p:generate(options(r))
    t.eq(info.sampler, r.class_name, r.name .. ' sampler used')
    t.eq(#info.timesteps, r.evaluations, r.name .. ' model evaluations')
    t.close(lat, ref[r.name .. '.latents'], 1e-5, r.name .. ' latents after 10 steps')
  end
end

-- d/de of L = sum(latents * w) along a direction, by the graph and by central differences (the
-- final latents, not the images: their clamp to [0, 1] has kinks a difference may straddle)
local function directional(p, o, w, dir, h)
  local e = o.prompt_embeds:clone():requires_grad_(true)
  o.prompt_embeds = e
  local _, lat = p:generate(o)
  ;(lat * w):sum():backward()
  local analytic = (e.grad * dir):sum():item()
  if not h then return analytic end
  o.grad_steps = 0
  local function L(x)
    o.prompt_embeds = x
    return craft.no_grad(function() local _, l = p:generate(o); return (l * w):sum():item() end)
  end
  local base = ref.prompt_embeds
  local fd = (L(base + dir * h) - L(base - dir * h)) / (2 * h)
  return analytic, fd
end

function T.draft_window_gradients_with_each_deterministic_sampler(t)
  local p = get()
  local w = craft.randn({ 1, 4, 8, 8 }, { seed = 3 })
  local dir = craft.randn(ref.prompt_embeds.shape, { seed = 4 })
  -- (dpm++2m's update is dpm++2m_karras' with other sigmas)
  for _, name in ipairs { 'ddim', 'pndm', 'euler', 'dpm++2m_karras' } do
    -- every step keeps the graph (PLMS takes 4 evaluations for 3 steps): the gradient is the
    -- derivative
    local o = options(nil, { sampler = name, steps = 3, cfg = 3, grad_steps = 99 })
    local a, fd = directional(p, o, w, dir, 1e-2)
    t.ok(math.abs(a - fd) <= 5e-3 * math.abs(fd) and math.abs(fd) > 1e-3,
      ('%s: gradient %.6g vs finite difference %.6g'):format(name, a, fd))
    -- the last step only: a gradient flows, and it is not the full one
    local o1 = options(nil, { sampler = name, steps = o.steps, cfg = 3, grad_steps = 1 })
    local a1 = directional(p, o1, w, dir)
    t.ok(a1 ~= 0 and math.abs(a1 - a) > 1e-6 * math.abs(a), ('%s: last-step gradient %.6g (all steps %.6g)'):format(name, a1, a))
  end
  t.raises(function() p:generate(options(nil, { sampler = 'euler', eta = 0.5 })) end, 'eta = 0.5 is DDIM\'s')
  t.raises(function() p:generate(options(nil, { sampler = 'heun' })) end, 'sampler "heun" is not implemented by craft')
end

-- The trainers' DRaFT sampler (craft.train.common.sample, unchanged) runs the folder's scheduler
-- through the same interface: with each deterministic sampler it gives pipe:generate's images and
-- last-step gradient.
function T.trainers_sampler_runs_every_deterministic_sampler(t)
  local common = require 'craft.train.common'
  local w = craft.randn({ 1, 3, 16, 16 }, { seed = 5 })
  for _, name in ipairs { 'ddim', 'pndm', 'euler', 'dpm++2m', 'dpm++2m_karras' } do
    local p = models.load(DIR .. 'tiny_sd15', { quiet = true, sampler = name })
    local function grad(f)
      local e = ref.prompt_embeds:clone():requires_grad_(true)
      local img = f(e)
      ;(img * w):sum():backward()
      return img:detach(), e.grad
    end
    local img1, g1 = grad(function(e)
      return (common.sample(p, { cond = e, uncond = ref.negative_prompt_embeds, cfg = 3, steps = 2, noise = noise.latents,
        grad_steps = 1 }))
    end)
    local img2, g2 = grad(function(e)
      return (p:generate(options(nil, { prompt_embeds = e, cfg = 3, steps = 2, latents = noise.latents, grad_steps = 1 })))
    end)
    t.ok(t.rel(img1, img2) < 1e-6, name .. ': the trainers\' sampler gives generate\'s images')
    t.ok(g1:abs():max():item() > 0 and t.rel(g1, g2) < 1e-5, ('%s: last-step gradient equal (rel %.2g)'):format(name, t.rel(g1, g2)))
  end
end

function T.load_with_another_sampler_and_refusals(t)
  local p = models.load(DIR .. 'tiny_sd15', { quiet = true, sampler = 'euler' })
  t.eq(p.scheduler.class_name, 'EulerDiscreteScheduler', 'models.load sampler =')
  local _, lat = p:generate(options())
  t.close(lat, ref['euler.latents'], 1e-5, 'the same latents as sampler = euler at generate')
  t.raises(function() models.load(DIR .. 'tiny_sd15', { sampler = 7 }) end, 'options.sampler must be a string')
end

return T
