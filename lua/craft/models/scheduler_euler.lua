-- craft.models.scheduler_euler: diffusers' EulerDiscreteScheduler and
-- EulerAncestralDiscreteScheduler (Karras et al. 2022, Algorithm 2 without churn; the ancestral
-- one splits each step into a deterministic part to sigma_down and fresh noise of sigma_up).
-- The sample lives at noise level sigma: latents start at init_noise_sigma, the model sees
-- x / sqrt(sigma^2 + 1) (scale_model_input), and timesteps may be fractional. Each sampler counts
-- its steps: call set_timesteps(n) before each run, then step once per timestep, in order.
-- Use them through craft.models.schedulers (from_config, Euler, EulerAncestral).
local core = require 'craft.core'
local O = require 'craft.models.options'
local B = require 'craft.models.scheduler_base'
local argerror, want = core.argerror, core.want
local K, f32 = O.K, B.f32

local M = {}

local function class(name, cname)
  local cls = setmetatable({ _name = name, class_name = cname }, { __index = B.Base })
  cls.__index = cls
  return cls
end
local Euler = class('schedulers.Euler', 'EulerDiscreteScheduler')
local Ancestral = class('schedulers.EulerAncestral', 'EulerAncestralDiscreteScheduler')
M.EulerDiscreteScheduler, M.EulerAncestralDiscreteScheduler = Euler, Ancestral

Euler.OPTIONS = B.common({ timestep_spacing = 'linspace' }, {
  interpolation_type = { K.string, 'linear', only = { 'linear', 'log_linear' } },
  use_karras_sigmas = { K.bool, false },
  sigma_min = { K.posnum, nil, note = 'with use_karras_sigmas' },
  sigma_max = { K.posnum, nil, note = 'with use_karras_sigmas' },
  timestep_type = { K.string, 'discrete', only = { 'discrete' } },
})
Ancestral.OPTIONS = B.common({ timestep_spacing = 'linspace', prediction_types = { 'epsilon', 'v_prediction' } })

-- The training sigmas: with rescale_betas_zero_snr the last alpha_bar is 2^-24 instead of 0
-- (as diffusers: sigma would be infinite).
local function setup(self)
  if self.config.rescale_betas_zero_snr then
    self.alphas_cumprod[#self.alphas_cumprod], self.acp32[#self.acp32] = 2 ^ -24, 2 ^ -24
  end
  self.train_sigmas = B.train_sigmas(self.acp32)
  local max = 0
  for _, s in ipairs(self.train_sigmas) do max = math.max(max, s) end
  self:_set_init_sigma(max)
  return self
end
function M.Euler(cfg, overrides, o) return setup(B.new(Euler, cfg, overrides, o)) end
function M.EulerAncestral(cfg, overrides, o) return setup(B.new(Ancestral, cfg, overrides, o)) end
Euler.create, Ancestral.create = M.Euler, M.EulerAncestral

-- diffusers: sigma_max for the linspace and trailing spacings, sqrt(sigma_max^2 + 1) for leading
function Euler:_set_init_sigma(max)
  local sp = self.config.timestep_spacing
  self.init_noise_sigma = (sp == 'linspace' or sp == 'trailing') and max or B.hyp32(max)
end
Ancestral._set_init_sigma = Euler._set_init_sigma

-- The timesteps (float32 values, maybe fractional), largest first
local function spaced(self, n, who)
  B.check_steps(self, n, who)
  local c = self.config
  local T = c.num_train_timesteps
  local ts = {}
  if c.timestep_spacing == 'linspace' then
    local l = B.linspace(0, T - 1, n)
    for i = n, 1, -1 do ts[#ts + 1] = f32(l[i]) end
  elseif c.timestep_spacing == 'leading' then
    local ratio = math.floor(T / n)
    for i = n - 1, 0, -1 do ts[#ts + 1] = i * ratio + c.steps_offset end
  else
    for _, x in ipairs(B.arange(T, 0, -T / n)) do ts[#ts + 1] = B.round_even(x) - 1 end
  end
  return ts
end

-- diffusers' init_noise_sigma is a property of the current sigmas (after set_timesteps: the
-- largest inference sigma)
local function set_sigmas(self, sig)
  local max = 0
  for _, s in ipairs(sig) do max = math.max(max, s) end
  self.sigmas = sig
  self:_set_init_sigma(max)
end

-- set_timesteps(n) -> the n timesteps; sigmas: one per step, then 0
function Euler:set_timesteps(n)
  local c = self.config
  local ts = spaced(self, n, 'Euler')
  local train = self.train_sigmas
  local sig = {}
  if c.interpolation_type == 'linear' then
    for i, t in ipairs(ts) do sig[i] = B.interp(t, train) end
  else   -- log_linear: n + 1 sigmas evenly spaced in log from the largest to the smallest
    local l = B.linspace(f32(math.log(train[#train])), f32(math.log(train[1])), n + 1)
    for i = 1, n + 1 do sig[i] = f32(math.exp(f32(l[i]))) end
  end
  if c.use_karras_sigmas then
    local log_sigmas = B.log32(train)
    sig = B.karras(c.sigma_min or sig[#sig], c.sigma_max or sig[1], n)
    for i = 1, n do ts[i] = f32(B.sigma_to_t(sig[i], log_sigmas)) end
  end
  for i = 1, #sig do sig[i] = f32(sig[i]) end
  sig[#sig + 1] = 0
  set_sigmas(self, sig)
  self.timesteps, self.num_inference_steps, self.step_index = ts, n, nil
  return ts
end

function Ancestral:set_timesteps(n)
  local ts = spaced(self, n, 'EulerAncestral')
  local sig = {}
  for i, t in ipairs(ts) do sig[i] = f32(B.interp(t, self.train_sigmas)) end
  sig[#sig + 1] = 0
  set_sigmas(self, sig)
  self.timesteps, self.num_inference_steps, self.step_index = ts, n, nil
  return ts
end

local function init_index(self, t, who)
  if not self.num_inference_steps then argerror(who .. ': call set_timesteps before step') end
  if not self.step_index then
    self.step_index = B.index_for_timestep(self.timesteps, t)
    if not self.step_index then argerror(('%s: timestep %s is not one of set_timesteps\' timesteps'):format(who, tostring(t))) end
  end
  if self.step_index > #self.timesteps then
    argerror(('%s: all %d steps taken: call set_timesteps again to sample anew'):format(who, #self.timesteps))
  end
  return self.sigmas[self.step_index]
end

-- scale_model_input(x, t): x / sqrt(sigma^2 + 1), what the model was trained to see
function Euler:scale_model_input(x, t)
  local sigma = init_index(self, t, self._name)
  return x / B.hyp32(sigma)
end
Ancestral.scale_model_input = Euler.scale_model_input

-- the predicted x0, in diffusers' order of float32 operations (see scheduler_base: float32)
local function x0_of(self, model_output, sample, sigma)
  local pt = self.config.prediction_type
  if pt == 'epsilon' then return sample - model_output * sigma end
  if pt == 'v_prediction' then
    return model_output * f32(-sigma / B.hyp32(sigma)) + sample / f32(f32(sigma * sigma) + 1)
  end
  return model_output
end

-- step(model_output, t, sample) -> { prev_sample =, pred_original_sample = }: one Euler step
-- from sigma_i to sigma_{i+1} along (x - x0) / sigma. Differentiable in model_output and sample.
function Euler:step(model_output, t, sample, o)
  want('Euler.step', 'model_output', model_output, 'tensor')
  want('Euler.step', 'timestep', t, 'number')
  want('Euler.step', 'sample', sample, 'tensor')
  want('Euler.step', 'options', o, 'table', true)
  local sigma = init_index(self, t, 'Euler')
  local x0 = x0_of(self, model_output, sample, sigma)
  local dt = f32(self.sigmas[self.step_index + 1] - sigma)
  local prev = sample + ((sample - x0) / sigma) * dt
  self.step_index = self.step_index + 1
  return { prev_sample = prev, pred_original_sample = x0 }
end

-- step(model_output, t, sample, {noise=, seed=, offset=}) -> { prev_sample =, pred_original_sample = }
-- An Euler step to sigma_down, plus sigma_up * noise (o.noise, else Philox from (o.seed,
-- o.offset), else the global stream). Differentiable in model_output and sample.
function Ancestral:step(model_output, t, sample, o)
  want('EulerAncestral.step', 'model_output', model_output, 'tensor')
  want('EulerAncestral.step', 'timestep', t, 'number')
  want('EulerAncestral.step', 'sample', sample, 'tensor')
  o = want('EulerAncestral.step', 'options', o, 'table', true) or {}
  local sigma = init_index(self, t, 'EulerAncestral')
  local x0 = x0_of(self, model_output, sample, sigma)
  local s_to = self.sigmas[self.step_index + 1]
  local to2, from2 = f32(s_to * s_to), f32(sigma * sigma)
  local up = f32(math.sqrt(f32(f32(to2 * f32(from2 - to2)) / from2)))
  local down = f32(math.sqrt(f32(to2 - f32(up * up))))
  local prev = sample + ((sample - x0) / sigma) * f32(down - sigma)
  prev = prev + B.step_noise(o, sample.shape) * up
  self.step_index = self.step_index + 1
  return { prev_sample = prev, pred_original_sample = x0 }
end

return M
