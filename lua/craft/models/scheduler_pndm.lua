-- craft.models.scheduler_pndm: diffusers' PNDMScheduler (Liu et al. 2022, pseudo numerical
-- methods): with skip_prk_steps (Stable Diffusion 1.x's own scheduler_config.json) pure PLMS,
-- a linear multistep method on the model's noise predictions; without it, three Runge-Kutta
-- steps (12 model evaluations) first, then PLMS. The sampler keeps its past predictions between
-- steps: call set_timesteps(n) before each run, then step once per returned timestep, in order.
-- Use it through craft.models.schedulers (from_config, PNDM).
local core = require 'craft.core'
local O = require 'craft.models.options'
local B = require 'craft.models.scheduler_base'
local argerror, want = core.argerror, core.want
local K = O.K

local M = {}
local PNDM = setmetatable({ _name = 'schedulers.PNDM', class_name = 'PNDMScheduler' }, { __index = B.Base })
PNDM.__index = PNDM
M.PNDMScheduler = PNDM
-- diffusers 0.27.2's PNDMScheduler keys (no rescale_betas_zero_snr; epsilon or v_prediction)
PNDM.OPTIONS = B.common({ prediction_types = { 'epsilon', 'v_prediction' }, rescale = false }, {
  skip_prk_steps = { K.bool, false },
  set_alpha_to_one = { K.bool, false },
})

-- PNDM(cfg, overrides, {quiet=})
function M.PNDM(cfg, overrides, o) return B.new(PNDM, cfg, overrides, o) end
PNDM.create = M.PNDM

-- set_timesteps(n) -> the timesteps to step through, largest first: with skip_prk_steps n + 1
-- (PLMS repeats the second one: its first step is a two-evaluation predictor-corrector),
-- otherwise the 12 Runge-Kutta evaluations at the first four timesteps and their midpoints,
-- then n - 3 PLMS steps.
function PNDM:set_timesteps(n)
  local desc = self:_spaced_timesteps(n, 'PNDM')
  local asc = {}
  for i = #desc, 1, -1 do asc[#asc + 1] = desc[i] end
  local c = self.config
  local ts = {}
  if c.skip_prk_steps then
    -- asc[:-1], asc[-2:-1], asc[-1:], reversed
    local l = {}
    for i = 1, #asc - 1 do l[#l + 1] = asc[i] end
    if #asc >= 2 then l[#l + 1] = asc[#asc - 1] end
    l[#l + 1] = asc[#asc]
    for i = #l, 1, -1 do ts[#ts + 1] = l[i] end
    self.prk_count = 0
  else
    if n < 4 then argerror(('PNDM: %d inference steps; without skip_prk_steps it needs at least 4'):format(n)) end
    local half = math.floor(math.floor(c.num_train_timesteps / n) / 2)
    -- the last four (largest) timesteps, each twice, plus 0 / half alternately
    local prk = {}
    for i = #asc - 3, #asc do
      prk[#prk + 1] = asc[i]
      prk[#prk + 1] = asc[i] + half
    end
    -- prk[:-1].repeat(2)[1:-1], reversed
    local rep = {}
    for i = 1, #prk - 1 do rep[#rep + 1] = prk[i]; rep[#rep + 1] = prk[i] end
    local mid = {}
    for i = 2, #rep - 1 do mid[#mid + 1] = rep[i] end
    for i = #mid, 1, -1 do ts[#ts + 1] = mid[i] end
    self.prk_count = #mid
    for i = #asc - 3, 1, -1 do ts[#ts + 1] = asc[i] end
  end
  self.timesteps = ts
  self.ets, self.counter, self.cur_model_output, self.cur_sample = {}, 0, nil, nil
  return ts
end

-- x_prev from x_t and the (combined) noise prediction: formula (9) of Liu et al. 2022
function PNDM:_prev_sample(sample, t, prev_t, eps)
  local a_t = self:alpha_bar(t)
  local a_prev = prev_t >= 0 and self:alpha_bar(prev_t) or self.final_alpha_cumprod
  local b_t, b_prev = 1 - a_t, 1 - a_prev
  if self.config.prediction_type == 'v_prediction' then eps = eps * math.sqrt(a_t) + sample * math.sqrt(b_t) end
  local sample_coeff = math.sqrt(a_prev / a_t)
  local denom = a_t * math.sqrt(b_prev) + math.sqrt(a_t * b_t * a_prev)
  return sample * sample_coeff - eps * ((a_prev - a_t) / denom)
end

function PNDM:_step_prk(eps, t, sample)
  local c = self.config
  local k = self.counter
  local diff = k % 2 == 1 and 0 or math.floor(math.floor(c.num_train_timesteps / self.num_inference_steps) / 2)
  local prev_t = t - diff
  t = self.timesteps[math.floor(k / 4) * 4 + 1]
  local phase = k % 4
  if phase == 0 then
    self.cur_model_output = eps * (1 / 6)
    self.ets[#self.ets + 1] = eps
    self.cur_sample = sample
  elseif phase == 1 or phase == 2 then
    self.cur_model_output = self.cur_model_output + eps * (1 / 3)
  else
    eps = self.cur_model_output + eps * (1 / 6)
    self.cur_model_output = nil
  end
  local prev = self:_prev_sample(self.cur_sample or sample, t, prev_t, eps)
  self.counter = k + 1
  return prev
end

function PNDM:_step_plms(eps, t, sample)
  local c = self.config
  local ratio = math.floor(c.num_train_timesteps / self.num_inference_steps)
  local prev_t = t - ratio
  local ets = self.ets
  if self.counter ~= 1 then
    while #ets > 3 do table.remove(ets, 1) end
    ets[#ets + 1] = eps
  else
    prev_t = t
    t = t + ratio
  end
  local n = #ets
  if n == 1 and self.counter == 0 then
    self.cur_sample = sample
  elseif n == 1 and self.counter == 1 then
    eps = (eps + ets[n]) * 0.5
    sample = self.cur_sample
    self.cur_sample = nil
  elseif n == 2 then
    eps = (ets[n] * 3 - ets[n - 1]) * 0.5
  elseif n == 3 then
    eps = (ets[n] * 23 - ets[n - 1] * 16 + ets[n - 2] * 5) * (1 / 12)
  else
    eps = (ets[n] * 55 - ets[n - 1] * 59 + ets[n - 2] * 37 - ets[n - 3] * 9) * (1 / 24)
  end
  local prev = self:_prev_sample(sample, t, prev_t, eps)
  self.counter = self.counter + 1
  return prev
end

-- step(model_output, t, sample) -> { prev_sample = }: the next of the steps set_timesteps gave
-- (Runge-Kutta while they last, then PLMS). Differentiable in model_output and sample (also
-- through the stored past predictions of steps taken with grad on).
function PNDM:step(model_output, t, sample, o)
  want('PNDM.step', 'model_output', model_output, 'tensor')
  want('PNDM.step', 'timestep', t, 'integer')
  want('PNDM.step', 'sample', sample, 'tensor')
  want('PNDM.step', 'options', o, 'table', true)
  if not self.num_inference_steps or not self.ets then argerror('PNDM: call set_timesteps before step') end
  if self.counter >= #self.timesteps then
    argerror(('PNDM: step %d of %d: call set_timesteps again to sample anew'):format(self.counter + 1, #self.timesteps))
  end
  local prev
  if self.counter < self.prk_count then prev = self:_step_prk(model_output, t, sample)
  else prev = self:_step_plms(model_output, t, sample) end
  return { prev_sample = prev }
end

return M
