-- PNDM, Euler, Euler ancestral and DPM-Solver multistep against diffusers 0.27.2
-- (tests/fixtures/make_sampler_fixtures.py, models/cases/samplers.*): for each of 24 configs, the
-- timesteps, sigmas, initial sigma and every step of a run driven by a made-up linear model
-- (out = 0.3 * scale_model_input(x, t) + c * t / 1000), Euler ancestral with the supplied noise.
-- Then the sampler state rules (set_timesteps resets, steps past the end refused), class
-- switching as diffusers' from_config, and scheduler config refusals.
local craft = require 'craft'
local io_ = require 'craft.io'
local O = require 'craft.models.options'
local S = require 'craft.models.schedulers'
local T = {}

local DIR = 'tests/fixtures/models/cases/'
-- O.read: the file holds Python's -Infinity (lambda_min_clipped), as diffusers' own files do
local CASES = O.read(DIR .. 'samplers.json').cases
local ref = io_.load_safetensors(DIR .. 'samplers.safetensors', { dtype = 'stored' })
local TOL = 1e-5

local function run(s, name, steps, record)
  local ts = s:set_timesteps(steps)
  local x = ref.x0 * s.init_noise_sigma
  for i, t in ipairs(ts) do
    local out = s:scale_model_input(x, t) * 0.3 + ref.c * (t / 1000)
    x = s:step(out, t, x, { noise = ref[('%s.noise%d'):format(name, i)] }).prev_sample
    if record then record(i, x) end
  end
  return x, ts
end

-- Every step within 1e-5 of diffusers' (float32) run; timesteps and sigmas to float32 accuracy.
function T.samplers_match_diffusers(t)
  local classes, worst_all = {}, 0
  for _, c in ipairs(CASES) do
    local s = S.from_config(c.config, { quiet = true })
    t.eq(s.class_name, c.config._class_name, c.name .. ' class')
    classes[s.class_name] = (classes[s.class_name] or 0) + 1
    local worst = 0
    local _, ts = run(s, c.name, c.steps, function(i, x)
      worst = math.max(worst, t.rel(x, ref[('%s.x%d'):format(c.name, i)]))
    end)
    worst_all = math.max(worst_all, worst)
    t.allclose(ts, ref[c.name .. '.timesteps']:flat(), 1e-6, c.name .. ' timesteps')
    if s.sigmas then t.allclose(s.sigmas, ref[c.name .. '.sigmas']:flat(), 2e-6, c.name .. ' sigmas') end
    t.near(s.init_noise_sigma, c.init_noise_sigma, 1e-6 * c.init_noise_sigma, c.name .. ' init_noise_sigma')
    t.ok(worst <= TOL, ('%s: worst step rel err %.3g over %d steps'):format(c.name, worst, #ts))
  end
  t.eq(classes.PNDMScheduler, 4, 'PNDM cases')
  t.eq(classes.EulerDiscreteScheduler, 8, 'Euler cases')
  t.eq(classes.EulerAncestralDiscreteScheduler, 2, 'Euler ancestral cases')
  t.eq(classes.DPMSolverMultistepScheduler, 10, 'DPM-Solver cases')
  if os.getenv('CRAFT_SHOW_ERRORS') then print(('worst step error over all cases %.3g'):format(worst_all)) end
end

function T.state_resets_and_ends(t)
  local cfg
  for _, c in ipairs(CASES) do if c.name == 'dpm_2m_karras_sd15' then cfg = c.config end end
  local s = S.from_config(cfg, { quiet = true })
  local a = run(s, 'dpm_2m_karras_sd15', 10)
  local b = run(s, 'dpm_2m_karras_sd15', 10)
  t.eq(t.rel(a, b), 0, 'a second run after set_timesteps is the same')
  t.raises(function() s:step(ref.x0, 0, ref.x0) end, 'all 10 steps taken')
  for _, name in ipairs { 'pndm', 'euler', 'euler_a' } do
    local p = S.from_config(cfg, { class = name })
    t.raises(function() p:step(ref.x0, 999, ref.x0) end, 'call set_timesteps before step')
  end
  local p = S.from_config(cfg, { class = 'pndm' })
  local ts = p:set_timesteps(3)
  for _, tt in ipairs(ts) do p:step(ref.x0, tt, ref.x0) end
  t.raises(function() p:step(ref.x0, 1, ref.x0) end, 'call set_timesteps again')
end

-- from_config(other class) as diffusers 0.27: the keys the file gave (also those the file's class
-- does not have), not those _use_default_values lists; the new class's defaults for the rest.
function T.switching_class_follows_diffusers(t)
  local sd15 = O.read('tests/fixtures/models/tiny_sd15/scheduler/scheduler_config.json', { quiet = true })
  local pndm = S.from_config(sd15, { quiet = true })
  t.eq(pndm.class_name, 'PNDMScheduler', 'the class the file names')
  t.eq(pndm.config.timestep_spacing, 'leading', 'PNDM default spacing')
  local e = S.from_config(pndm, { class = 'euler' })
  t.eq(e.config.timestep_spacing, 'linspace', 'Euler keeps its own default spacing (not in the file)')
  t.eq(e.config.steps_offset, 1, 'the file\'s steps_offset carried')
  local d = S.from_config(pndm, { class = 'ddim' })
  t.eq(d.config.clip_sample, false, 'DDIM gets the file\'s clip_sample, which PNDM ignores')
  t.eq(d.config.set_alpha_to_one, false, 'and its set_alpha_to_one')
  local k = S.from_config(pndm, { class = 'dpm++2m_karras' })
  t.ok(k.class_name == 'DPMSolverMultistepScheduler' and k.config.use_karras_sigmas == true, 'dpm++2m_karras')
  local saved = {}
  for key, v in pairs(sd15) do saved[key] = v end
  saved.timestep_spacing, saved._use_default_values = 'leading', { 'timestep_spacing' }
  t.eq(S.from_config(saved, { class = 'euler' }).config.timestep_spacing, 'linspace', '_use_default_values dropped')
  t.raises(function() S.from_config(pndm, { class = 'lms' }) end, 'sampler "lms" is not implemented by craft')
end

function T.config_refusals_are_one_clear_line(t)
  local function refuses(cfg, text)
    local ok, err = pcall(S.from_config, O.remember(cfg, 'scheduler/scheduler_config.json'))
    err = tostring(err)
    t.ok(not ok and err:find(text, 1, true) and err:find('scheduler/scheduler_config.json', 1, true) and not err:find('\n'),
      ('refused with %q, got %q'):format(text, err))
  end
  refuses({ _class_name = 'LMSDiscreteScheduler' }, '_class_name = "LMSDiscreteScheduler" is not implemented by craft')
  refuses({ _class_name = 'DPMSolverMultistepScheduler', algorithm_type = 'sde-dpmsolver++' },
    'algorithm_type = "sde-dpmsolver++" is not implemented by craft')
  refuses({ _class_name = 'DPMSolverMultistepScheduler', algorithm_type = 'dpmsolver' },
    'final_sigmas_type = "zero" does not go with algorithm_type "dpmsolver"')
  refuses({ _class_name = 'EulerDiscreteScheduler', timestep_type = 'continuous' }, 'timestep_type = "continuous" is not implemented')
  refuses({ _class_name = 'EulerAncestralDiscreteScheduler', prediction_type = 'sample' }, 'prediction_type = "sample" is not implemented')
  refuses({ _class_name = 'PNDMScheduler', num_train_timesteps = { 1000 } }, 'num_train_timesteps = [1000] is not valid')
  refuses({ _class_name = 'PNDMScheduler', trained_betas = { 0.1, 0.2 } }, 'trained_betas = [0.1, 0.2] has 2 betas for num_train_timesteps = 1000')
  refuses({ _class_name = 'DDIMScheduler', beta_end = 2 }, 'beta_end = 2 gives beta')
  refuses({ _class_name = 7 }, '_class_name = 7 must be a string')
  -- trained_betas implemented: the same betas as the schedule they list
  local betas = S.DDIM({ beta_schedule = 'linear' }).betas
  local s = S.from_config({ _class_name = 'PNDMScheduler', trained_betas = betas })
  t.near(s.alphas_cumprod[1000], S.PNDM({}).alphas_cumprod[1000], 1e-12, 'trained_betas')
end

return T
