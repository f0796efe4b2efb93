-- Schedulers against diffusers (tests/fixtures/make_model_fixtures.py): DDIM timesteps for every
-- spacing, alphas_cumprod for every beta schedule, single DDIM steps (epsilon / v_prediction,
-- eta 0 and > 0, clipping, the final step's alpha), DDPM add_noise and velocity targets.
local craft = require 'craft'
local io_ = require 'craft.io'
local S = require 'craft.models.schedulers'
local T = {}

local DIR = 'tests/fixtures/models/cases/'
local cases = io_.read_json(DIR .. 'schedulers.json')
local ref = io_.load_safetensors(DIR .. 'schedulers.safetensors', { dtype = 'stored' })

local function rel(a, b) return (a - b):abs():max():item() / math.max(b:abs():max():item(), 1e-30) end

function T.ddim_timesteps_alphas_and_steps(t)
  local n = 0
  for _, c in ipairs(cases) do
    if c.kind == 'ddim' then
      n = n + 1
      local s = S.from_config(c.config, { class = 'DDIMScheduler' })
      local ts = s:set_timesteps(c.steps)
      t.eq(table.concat(ts, ','), table.concat(ref[c.name .. '.timesteps']:flat(), ','), c.name .. ' timesteps')
      t.ok(rel(craft.tensor(s.alphas_cumprod), ref[c.name .. '.alphas_cumprod']) < 1e-5, c.name .. ' alphas_cumprod')
      for _, k in ipairs(c.step_indices) do
        local r = s:step(ref.model_output, ts[k + 1], ref.sample, { eta = c.eta, noise = ref.noise })
        local e1, e2 = rel(r.prev_sample, ref[('%s.step%d'):format(c.name, k)]), rel(r.pred_original_sample, ref[('%s.x0_%d'):format(c.name, k)])
        t.ok(e1 < 1e-5 and e2 < 1e-5, ('%s step %d: rel err %.2g / %.2g'):format(c.name, k, e1, e2))
      end
    end
  end
  t.eq(n, 4, 'ddim cases')
end

function T.ddpm_add_noise_and_velocity(t)
  for _, c in ipairs(cases) do
    if c.kind == 'ddpm' then
      local s = S.from_config(c.config, { class = 'DDPMScheduler' })
      t.ok(getmetatable(s) == S.DDPMScheduler, c.name .. ' class')
      local ts = ref[c.name .. '.t']
      local x = ref.sample:expand(4, 4, 4, 4)
      local nz = ref.noise:expand(4, 4, 4, 4)
      t.ok(rel(s:add_noise(x, nz, ts), ref[c.name .. '.noisy']) < 1e-5, c.name .. ' add_noise')
      t.ok(rel(s:get_velocity(x, nz, ts), ref[c.name .. '.velocity']) < 1e-5, c.name .. ' velocity')
      local want = c.config.prediction_type == 'v_prediction' and ref[c.name .. '.velocity'] or nz
      t.ok(rel(s:target(x, nz, ts), want) < 1e-5, c.name .. ' target')
    end
  end
end

function T.seeded_noise_is_reproducible_and_errors_are_clear(t)
  local s = S.DDIM({ beta_schedule = 'scaled_linear', beta_start = 0.00085, beta_end = 0.012 })
  t.allclose(s:noise({ 2, 3 }, 42), s:noise({ 2, 3 }, 42):flat(), 0)
  t.ok(rel(s:noise({ 2, 3 }, 42), s:noise({ 2, 3 }, 43)) > 0.1, 'other seed, other noise')
  t.raises(function() s:step(ref.model_output, 1, ref.sample) end, 'call set_timesteps before step')
  t.raises(function() S.DDIM({ beta_schedule = 'sigmoid' }) end, 'beta_schedule = "sigmoid" is not implemented by craft')
  t.raises(function() S.DDIM({ prediction_type = 'flow' }) end, 'prediction_type = "flow" is not implemented by craft')
  s:set_timesteps(10)
  t.raises(function() s:step(ref.model_output, 1000, ref.sample) end, 'timestep 1000 outside 0..999')
end

return T
