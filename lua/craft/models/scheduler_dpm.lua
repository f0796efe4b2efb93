-- craft.models.scheduler_dpm: diffusers' DPMSolverMultistepScheduler (Lu et al. 2022): the
-- deterministic "dpmsolver++" (data prediction; DPM-Solver++ 2M is solver_order 2) and
-- "dpmsolver" (noise prediction) multistep solvers of orders 1 to 3, midpoint or Heun
-- corrections, optional Karras or Lu lambda sigmas. Each step's prediction is kept for the next
-- ones: call set_timesteps(n) before each run, then step once per timestep, in order.
-- Use it through craft.models.schedulers (from_config, DPMSolverMultistep).
local core = require 'craft.core'
local O = require 'craft.models.options'
local B = require 'craft.models.scheduler_base'
local argerror, want = core.argerror, core.want
local K, f32, null = O.K, B.f32, require('craft.io').null

local M = {}
local DPM = setmetatable({ _name = 'schedulers.DPMSolverMultistep', class_name = 'DPMSolverMultistepScheduler' },
  { __index = B.Base })
DPM.__index = DPM
M.DPMSolverMultistepScheduler = DPM

local THRESHOLD_INERT = 'read only with thresholding, which craft refuses'
DPM.OPTIONS = B.common({ timestep_spacing = 'linspace' }, {
  solver_order = { K.posint, 2, only = { 1, 2, 3 } },
  thresholding = { K.bool, false, only = { false } },
  dynamic_thresholding_ratio = { K.posnum, 0.995, inert = THRESHOLD_INERT },
  sample_max_value = { K.posnum, 1.0, inert = THRESHOLD_INERT },
  algorithm_type = { K.string, 'dpmsolver++', only = { 'dpmsolver++', 'dpmsolver' },
    note = 'the SDE variants draw noise; craft refuses them' },
  -- diffusers itself replaces logrho, bh1 and bh2 by midpoint
  solver_type = { K.string, 'midpoint', only = { 'midpoint', 'heun', 'logrho', 'bh1', 'bh2' } },
  lower_order_final = { K.bool, true },
  euler_at_final = { K.bool, false },
  use_karras_sigmas = { K.bool, false },
  use_lu_lambdas = { K.bool, false },
  final_sigmas_type = { K.string, 'zero', only = { 'zero', 'sigma_min' } },
  lambda_min_clipped = { K.number_or_inf, '-Infinity' },
  variance_type = { K.string, nil, only = { null } },
})

-- DPMSolverMultistep(cfg, overrides, {quiet=})
function M.DPMSolverMultistep(cfg, overrides, o)
  local s = B.new(DPM, cfg, overrides, o)
  local c = s.config
  if c.algorithm_type == 'dpmsolver' and c.final_sigmas_type == 'zero' then
    O.refuse(s.source, 'final_sigmas_type', c.final_sigmas_type, 'does not go with algorithm_type "dpmsolver" (diffusers refuses it too: use "sigma_min")')
  end
  if c.rescale_betas_zero_snr then s.alphas_cumprod[#s.alphas_cumprod], s.acp32[#s.acp32] = 2 ^ -24, 2 ^ -24 end
  local lmc = c.lambda_min_clipped
  s.lambda_min = lmc == '-Infinity' and -math.huge or lmc == 'Infinity' and math.huge or lmc
  return s
end
DPM.create = M.DPMSolverMultistep

-- alpha_t, sigma_t of a sigma, in float32 (see scheduler_base: float32)
local function alpha_sigma(sigma)
  local a = f32(1 / B.hyp32(sigma))
  return a, f32(sigma * a)
end

-- set_timesteps(n) -> n integer timesteps, largest first; sigmas: one per step, then the final one
function DPM:set_timesteps(n)
  B.check_steps(self, n, 'DPMSolverMultistep')
  local c = self.config
  local T = c.num_train_timesteps
  local acp = self.acp32
  -- timesteps whose lambda = log(alpha / sigma) is below lambda_min_clipped are cut off the top
  local clipped = 0
  for i = T, 1, -1 do
    local lam = f32(f32(math.log(f32(math.sqrt(acp[i])))) - f32(math.log(f32(math.sqrt(f32(1 - acp[i]))))))
    if lam < self.lambda_min then clipped = clipped + 1 else break end
  end
  local last = T - clipped
  local ts = {}
  if c.timestep_spacing == 'linspace' then
    local l = B.linspace(0, last - 1, n + 1)
    for i = n + 1, 2, -1 do ts[#ts + 1] = B.round_even(l[i]) end
  elseif c.timestep_spacing == 'leading' then
    local ratio = math.floor(last / (n + 1))
    for i = n, 1, -1 do ts[#ts + 1] = i * ratio + c.steps_offset end
  else
    for _, x in ipairs(B.arange(last, 0, -T / n)) do ts[#ts + 1] = B.round_even(x) - 1 end
  end
  local train = B.train_sigmas(acp)
  local log_sigmas = B.log32(train)
  local sig = {}
  if c.use_karras_sigmas then
    sig = B.karras(train[1], train[#train], #ts)
    for i = 1, #sig do ts[i] = B.round_even(B.sigma_to_t(sig[i], log_sigmas)) end
  elseif c.use_lu_lambdas then
    -- log sigmas (-lambda up to log alpha) evenly spaced from the largest to the smallest
    local hi, lo = log_sigmas[#log_sigmas], log_sigmas[1]
    local ramp = B.linspace(0, 1, #ts)
    for i = 1, #ts do sig[i] = math.exp(hi + ramp[i] * (lo - hi)) end
    for i = 1, #sig do ts[i] = B.round_even(B.sigma_to_t(sig[i], log_sigmas)) end
  else
    for i, t in ipairs(ts) do sig[i] = B.interp(t, train) end
  end
  for i = 1, #sig do sig[i] = f32(sig[i]) end
  sig[#sig + 1] = c.final_sigmas_type == 'sigma_min' and train[1] or 0
  for _, t in ipairs(ts) do
    if t < 0 or t >= T then
      argerror(('DPMSolverMultistep: %d steps with steps_offset %d give timestep %d, outside 0..%d'):format(n, c.steps_offset, t, T - 1))
    end
  end
  self.sigmas, self.timesteps, self.num_inference_steps = sig, ts, #ts
  self.model_outputs, self.lower_order_nums, self.step_index = {}, 0, nil
  return ts
end

-- The model output as the solver wants it: x0 (dpmsolver++) or eps (dpmsolver)
function DPM:_convert(out, sample)
  local c = self.config
  local alpha, sigma = alpha_sigma(self.sigmas[self.step_index])
  local pt = c.prediction_type
  if c.algorithm_type == 'dpmsolver++' then
    if pt == 'epsilon' then return (sample - out * sigma) * (1 / alpha) end
    if pt == 'sample' then return out end
    return sample * alpha - out * sigma
  end
  if pt == 'epsilon' then return out end
  if pt == 'sample' then return (sample - out * alpha) * (1 / sigma) end
  return out * alpha + sample * sigma
end

local function lambda(alpha, sigma) return math.log(alpha) - math.log(sigma) end

function DPM:_first_order(m0, sample)
  local i = self.step_index
  local a_t, s_t = alpha_sigma(self.sigmas[i + 1])
  local a_s, s_s = alpha_sigma(self.sigmas[i])
  local h = lambda(a_t, s_t) - lambda(a_s, s_s)
  if self.config.algorithm_type == 'dpmsolver++' then
    return sample * (s_t / s_s) - m0 * (a_t * (math.exp(-h) - 1))
  end
  return sample * (a_t / a_s) - m0 * (s_t * (math.exp(h) - 1))
end

function DPM:_second_order(sample)
  local i, ms = self.step_index, self.model_outputs
  local a_t, s_t = alpha_sigma(self.sigmas[i + 1])
  local a_0, s_0 = alpha_sigma(self.sigmas[i])
  local a_1, s_1 = alpha_sigma(self.sigmas[i - 1])
  local l_t, l_0, l_1 = lambda(a_t, s_t), lambda(a_0, s_0), lambda(a_1, s_1)
  local m0, m1 = ms[#ms], ms[#ms - 1]
  local h, h0 = l_t - l_0, l_0 - l_1
  local r0 = h0 / h
  local D0, D1 = m0, (m0 - m1) * (1 / r0)
  local c = self.config
  local heun = c.solver_type == 'heun'
  if c.algorithm_type == 'dpmsolver++' then
    local e = math.exp(-h) - 1
    local x = sample * (s_t / s_0) - D0 * (a_t * e)
    if heun then return x + D1 * (a_t * (e / h + 1)) end
    return x - D1 * (0.5 * a_t * e)
  end
  local e = math.exp(h) - 1
  local x = sample * (a_t / a_0) - D0 * (s_t * e)
  if heun then return x - D1 * (s_t * (e / h - 1)) end
  return x - D1 * (0.5 * s_t * e)
end

function DPM:_third_order(sample)
  local i, ms = self.step_index, self.model_outputs
  local a_t, s_t = alpha_sigma(self.sigmas[i + 1])
  local a_0, s_0 = alpha_sigma(self.sigmas[i])
  local a_1, s_1 = alpha_sigma(self.sigmas[i - 1])
  local a_2, s_2 = alpha_sigma(self.sigmas[i - 2])
  local l_t, l_0, l_1, l_2 = lambda(a_t, s_t), lambda(a_0, s_0), lambda(a_1, s_1), lambda(a_2, s_2)
  local m0, m1, m2 = ms[#ms], ms[#ms - 1], ms[#ms - 2]
  local h, h0, h1 = l_t - l_0, l_0 - l_1, l_1 - l_2
  local r0, r1 = h0 / h, h1 / h
  local D1_0, D1_1 = (m0 - m1) * (1 / r0), (m1 - m2) * (1 / r1)
  local D1 = D1_0 + (D1_0 - D1_1) * (r0 / (r0 + r1))
  local D2 = (D1_0 - D1_1) * (1 / (r0 + r1))
  if self.config.algorithm_type == 'dpmsolver++' then
    local e = math.exp(-h) - 1
    return sample * (s_t / s_0) - m0 * (a_t * e) + D1 * (a_t * (e / h + 1)) - D2 * (a_t * ((e + h) / (h * h) - 0.5))
  end
  local e = math.exp(h) - 1
  return sample * (a_t / a_0) - m0 * (s_t * e) - D1 * (s_t * (e / h - 1)) - D2 * (s_t * ((e - h) / (h * h) - 0.5))
end

-- step(model_output, t, sample) -> { prev_sample =, pred_original_sample = (dpmsolver++) }:
-- the multistep update of the highest order the kept predictions allow (lower at the end with
-- lower_order_final / euler_at_final / a zero final sigma, as diffusers). Differentiable in
-- model_output and sample (also through the kept predictions of steps taken with grad on).
function DPM:step(model_output, t, sample, o)
  want('DPMSolverMultistep.step', 'model_output', model_output, 'tensor')
  want('DPMSolverMultistep.step', 'timestep', t, 'integer')
  want('DPMSolverMultistep.step', 'sample', sample, 'tensor')
  want('DPMSolverMultistep.step', 'options', o, 'table', true)
  if not self.num_inference_steps then argerror('DPMSolverMultistep: call set_timesteps before step') end
  local ts, c = self.timesteps, self.config
  if not self.step_index then self.step_index = B.index_for_timestep(ts, t) or #ts end
  local i, n = self.step_index, #ts
  if i > n then argerror(('DPMSolverMultistep: all %d steps taken: call set_timesteps again to sample anew'):format(n)) end
  local final = i == n and (c.euler_at_final or (c.lower_order_final and n < 15) or c.final_sigmas_type == 'zero')
  local second = i == n - 1 and c.lower_order_final and n < 15
  local m = self:_convert(model_output, sample)
  local ms = self.model_outputs
  ms[#ms + 1] = m
  while #ms > c.solver_order do table.remove(ms, 1) end
  local prev
  if c.solver_order == 1 or self.lower_order_nums < 1 or final then prev = self:_first_order(m, sample)
  elseif c.solver_order == 2 or self.lower_order_nums < 2 or second then prev = self:_second_order(sample)
  else prev = self:_third_order(sample) end
  if self.lower_order_nums < c.solver_order then self.lower_order_nums = self.lower_order_nums + 1 end
  self.step_index = i + 1
  return { prev_sample = prev, pred_original_sample = c.algorithm_type == 'dpmsolver++' and m or nil }
end

return M
