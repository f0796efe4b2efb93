-- DDPM sampling against diffusers' DDPMScheduler (tests/fixtures/make_ddpm_fixtures.py): timesteps
-- for every spacing, custom timesteps and the full chain; single steps (epsilon / v_prediction /
-- sample, clip_sample with its range, fixed_small, fixed_small_log, fixed_large, learned_range,
-- zero terminal SNR, the t = 0 step without noise) with the supplied noise, within 1e-5 relative
-- of diffusers' step run in float64 (and of its float32 step, up to that step's own rounding);
-- seeded noise and the pipeline sampling with a DDPM scheduler.
local craft = require 'craft'
local io_ = require 'craft.io'
local S = require 'craft.models.schedulers'
local T = {}

local DIR = 'tests/fixtures/models/cases/'
local cases = io_.read_json(DIR .. 'ddpm.json')
local ref = io_.load_safetensors(DIR .. 'ddpm.safetensors', { dtype = 'stored' })

local function rel(a, b) return (a - b):abs():max():item() / math.max(b:abs():max():item(), 1e-30) end

local function make(c)
  local s = S.from_config(c.config, { class = 'DDPMScheduler' })
  local steps = c.steps
  if steps ~= io_.null and steps ~= nil then s:set_timesteps(steps) end
  return s
end

function T.ddpm_timesteps_match_diffusers(t)
  for _, c in ipairs(cases) do
    local s = make(c)
    t.ok(getmetatable(s) == S.DDPMScheduler, c.name .. ' class')
    t.eq(table.concat(s.timesteps, ','), table.concat(ref[c.name .. '.timesteps']:flat(), ','), c.name .. ' timesteps')
  end
end

function T.ddpm_steps_match_diffusers(t)
  local n = 0
  for _, c in ipairs(cases) do
    local s = make(c)
    local out = c.learned and ref.model_output8 or ref.model_output
    for _, k in ipairs(c.step_indices) do
      local ts = s.timesteps[k + 1]
      local r = s:step(out, ts, ref.sample, { noise = ref.noise })
      local p64, x64 = ref[('%s.prev%d'):format(c.name, k)], ref[('%s.x0_%d'):format(c.name, k)]
      local p32, x32 = ref[('%s.prev%d_f32'):format(c.name, k)], ref[('%s.x0_%d_f32'):format(c.name, k)]
      local e1, e2 = rel(r.prev_sample, p64), rel(r.pred_original_sample, x64)
      t.ok(e1 <= 1e-5 and e2 <= 1e-5, ('%s step %d (t = %d): rel err %.2g / %.2g'):format(c.name, k, ts, e1, e2))
      -- diffusers' own float32 step: within 1e-5, or twice its distance from the float64 step
      -- (float32 rounding near t = 0)
      local tol = math.max(1e-5, 2 * rel(p32, p64), 2 * rel(x32, x64))
      local f1, f2 = rel(r.prev_sample, p32), rel(r.pred_original_sample, x32)
      t.ok(f1 <= tol and f2 <= tol, ('%s step %d (t = %d) vs float32 diffusers: rel err %.2g / %.2g > %.2g')
        :format(c.name, k, ts, f1, f2, tol))
      n = n + 1
    end
  end
  t.eq(n, 22, 'steps checked')
end

function T.ddpm_noise_seeds_and_errors(t)
  local s = S.DDPM({ clip_sample = false })
  s:set_timesteps(10)
  local x, eps = ref.sample, ref.model_output
  local a = s:step(eps, 901, x, { seed = 5 }).prev_sample
  t.eq(rel(a, s:step(eps, 901, x, { seed = 5 }).prev_sample), 0, 'same seed, same step')
  t.eq(rel(a, s:step(eps, 901, x, { noise = craft.randn(x.shape, { seed = 5 }) }).prev_sample), 0, 'seed = craft.randn seed')
  t.ok(rel(a, s:step(eps, 901, x, { seed = 6 }).prev_sample) > 1e-3, 'other seed, other step')
  craft.manual_seed(3)
  local g1 = s:step(eps, 901, x).prev_sample
  craft.manual_seed(3)
  t.eq(rel(g1, s:step(eps, 901, x).prev_sample), 0, 'global stream follows craft.manual_seed')
  -- t = 0 adds no noise; the step is differentiable in the model output
  local e = eps:clone():requires_grad_(true)
  local r0 = s:step(e, 0, x, { seed = 1 })
  t.eq(rel(r0.prev_sample, s:step(eps, 0, x, { seed = 2 }).prev_sample), 0, 'no noise at t = 0')
  r0.prev_sample:sum():backward()
  t.ok(e.grad ~= nil and e.grad:abs():max():item() > 0, 'gradient to the model output')
  t.raises(function() S.DDPM({ variance_type = 'fixed_large_log' }) end, 'variance_type = "fixed_large_log" is not implemented by craft')
  t.raises(function() S.DDPM({ thresholding = true }) end, 'thresholding = true is not implemented by craft (implemented: false)')
  t.raises(function() S.DDPM({ timestep_spacing = 'karras' }):set_timesteps(4) end, 'timestep_spacing = "karras" is not implemented by craft')
  t.raises(function() s:set_timesteps(1001) end, 'DDPM: 1001 inference steps (1 .. 1000)')
  t.raises(function() s:set_timesteps({ 10, 20 }) end, 'custom timesteps must be in descending order')
  s:set_timesteps({ 800, 20 })
  t.raises(function() s:step(eps, 500, x, { seed = 1 }) end, 'timestep 500 is not one of the custom timesteps')
  local lr = S.DDPM({ variance_type = 'learned_range' })
  t.raises(function() lr:step(eps, 10, x, { seed = 1 }) end, 'wants 8 model output channels')
end

-- The tiny pipeline folder sampled with a DDPM scheduler: the loop is the scheduler's (noise from
-- seed + step index, offset 1), seeded runs repeat, and DRaFT gradients pass through.
function T.pipeline_generates_with_ddpm(t)
  local models = require 'craft.models'
  local pipe = models.load('tests/fixtures/models/tiny_sd', { quiet = true })
  local c = io_.load_safetensors(DIR .. 'pipeline.safetensors')
  local ddpm = S.from_config(pipe.scheduler, { class = 'ddpm' })
  t.ok(getmetatable(ddpm) == S.DDPMScheduler and ddpm.config.steps_offset == 1, 'DDPM from the folder\'s DDIM config')
  local o = { prompt_embeds = c.prompt_embeds, negative_prompt_embeds = c.negative_prompt_embeds, latents = c.latents,
    steps = 3, cfg = 2, seed = 9, height = 16, width = 16, scheduler = ddpm }
  local img, lat = pipe:generate(o)
  t.eq(table.concat(img.shape, ','), '1,3,16,16')
  local img2 = pipe:generate(o)
  t.eq(rel(img, img2), 0, 'same seed, same image')
  -- the same loop by hand
  local x = c.latents
  local ctx = craft.cat({ c.negative_prompt_embeds, c.prompt_embeds }, 1)
  craft.no_grad(function()
    for i, ts in ipairs(ddpm:set_timesteps(3)) do
      local e = pipe.unet(craft.cat({ x, x }, 1), ts, ctx)
      local u, k = e:narrow(1, 1, 1), e:narrow(1, 2, 1)
      x = ddpm:step(u + (k - u) * 2, ts, x, { seed = 9 + i, offset = 1 }).prev_sample
    end
  end)
  t.ok(rel(lat, x) < 1e-6, ('latents equal the hand-written DDPM loop (rel err %.2g)'):format(rel(lat, x)))
  local ddim_img = pipe:generate { prompt_embeds = c.prompt_embeds, negative_prompt_embeds = c.negative_prompt_embeds,
    latents = c.latents, steps = 3, cfg = 2, seed = 9, height = 16, width = 16 }
  t.ok(rel(img, ddim_img) > 1e-4, 'DDPM differs from the default DDIM')
  local e = c.prompt_embeds:clone():requires_grad_(true)
  o.prompt_embeds, o.grad_steps = e, 1
  pipe:generate(o):mean():backward()
  t.ok(e.grad ~= nil and e.grad:abs():max():item() > 0, 'gradient through the last DDPM step')
  t.raises(function() pipe:generate { prompt_embeds = c.prompt_embeds, steps = 1, scheduler = {} } end,
    'scheduler must be a craft.models.schedulers sampler')
end

return T
