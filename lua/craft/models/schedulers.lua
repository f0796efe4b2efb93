-- craft.models.schedulers: diffusers' noise schedulers, configured from a
-- scheduler/scheduler_config.json table: DDPM and DDIM (here), PNDM (PLMS; scheduler_pndm.lua),
-- Euler and Euler ancestral (scheduler_euler.lua), DPM-Solver++ multistep (scheduler_dpm.lua).
-- Each checks its config against its own table of keys (CLASS.OPTIONS, craft.models.options).
-- Training side (every class): add_noise and targets of DDPM's process; sampling:
-- set_timesteps(n) -> the timesteps, then step(model_output, t, sample, o) for each, in order
-- (PNDM, Euler and DPM-Solver keep state between steps; set_timesteps resets it).
-- Timesteps are the model's own numbers (Euler's may be fractional); per-timestep constants are
-- plain Lua numbers (doubles), tensors only carry samples. Noise comes from craft.randn with
-- explicit seeds (Philox: a seed gives the same noise on every machine and thread count).
--   local s = schedulers.from_config(cfg)              -- by cfg._class_name, or schedulers.DDIM(cfg)
--   local e = schedulers.from_config(s, {class = 'euler'})   -- another sampler, s's betas
--   s:set_timesteps(50); for _, t in ipairs(s.timesteps) do x = s:step(eps, t, x).prev_sample end
--   local noisy = s:add_noise(x0, noise, t); local target = s:target(x0, noise, t)
--   local d = schedulers.DDPM(cfg); d:set_timesteps(50)             -- ancestral sampling
--   for i, t in ipairs(d.timesteps) do x = d:step(eps, t, x, {seed = i}).prev_sample end
local tensor = require 'craft.tensor'
local io_ = require 'craft.io'
local core = require 'craft.core'
local argerror, want = core.argerror, core.want
local O = require 'craft.models.options'
local B = require 'craft.models.scheduler_base'
local K, null = O.K, io_.null
local Base, new = B.Base, B.new

local M = { Base = Base }

---------------------------------------------------------------- DDPM
local DDPM = setmetatable({ _name = 'schedulers.DDPM', class_name = 'DDPMScheduler' }, { __index = Base })
DDPM.__index = DDPM
M.DDPMScheduler = DDPM
local THRESHOLD_INERT = 'read only with thresholding, which craft refuses'
DDPM.OPTIONS = B.common({}, {
  variance_type = { K.string, 'fixed_small',
  only = { 'fixed_small', 'fixed_small_log', 'fixed_large', 'learned', 'learned_range' } },
  clip_sample = { K.bool, true },
  clip_sample_range = { K.posnum, 1.0 },
  thresholding = { K.bool, false, only = { false } },
  dynamic_thresholding_ratio = { K.posnum, 0.995, inert = THRESHOLD_INERT },
  sample_max_value = { K.posnum, 1.0, inert = THRESHOLD_INERT },
})
-- DDPM(cfg, overrides, {quiet=}): diffusers' DDPMScheduler defaults for absent keys (clip_sample
-- true, variance_type "fixed_small"). Without set_timesteps, step walks the whole training chain.
function M.DDPM(cfg, overrides, o) return new(DDPM, cfg, overrides, o) end
DDPM.create = M.DDPM

-- set_timesteps(n) with the config's timestep_spacing, or set_timesteps{t1, t2, ...}: custom
-- timesteps, strictly decreasing and below num_train_timesteps (each step then goes to the next
-- one in the list, the last to 0's predecessor).
function DDPM:set_timesteps(n)
  if type(n) ~= 'table' then return self:_spaced_timesteps(n, 'DDPM') end
  local T = self.config.num_train_timesteps
  local ts = {}
  for i, t in ipairs(n) do
    want('DDPM.set_timesteps', ('timesteps[%d]'):format(i), t, 'integer')
    if t % 1 ~= 0 or t < 0 or t >= T then
      argerror(('DDPM: custom timestep %s outside 0..%d'):format(tostring(t), T - 1))
    end
    if i > 1 and t >= ts[i - 1] then argerror('DDPM: custom timesteps must be in descending order') end
    ts[i] = t
  end
  if #ts == 0 then argerror('DDPM: no custom timesteps') end
  self.timesteps, self.custom_timesteps, self.num_inference_steps = ts, true, nil
  return ts
end

-- The timestep a step from t lands on (-1 past the end), as diffusers' previous_timestep.
function DDPM:previous_timestep(t)
  want('DDPM', 'timestep', t, 'integer')
  if self.custom_timesteps then
    local ts = self.timesteps
    for i = 1, #ts do
      if ts[i] == t then return ts[i + 1] or -1 end
    end
    argerror(('DDPM: timestep %s is not one of the custom timesteps'):format(tostring(t)))
  end
  local T = self.config.num_train_timesteps
  return t - math.floor(T / (self.num_inference_steps or T))
end

-- step(model_output, t, sample, {noise=, seed=, offset=0}) -> { prev_sample =, pred_original_sample = }
-- diffusers' DDPMScheduler.step: x0 from the prediction (clipped to +-clip_sample_range when
-- clip_sample), the posterior mean of q(x_prev | x_t, x0), plus std * noise for t > 0, std by
-- variance_type: fixed_small sqrt(beta~_t) (= fixed_small_log), fixed_large sqrt(beta_t), learned /
-- learned_range from the second half of model_output's channels. The noise: o.noise if given,
-- else craft.randn from (o.seed, o.offset) (Philox), else from the global stream (craft.manual_seed).
-- Differentiable in model_output and sample.
function DDPM:step(model_output, t, sample, o)
  want('DDPM.step', 'model_output', model_output, 'tensor')
  want('DDPM.step', 'timestep', t, 'integer')
  want('DDPM.step', 'sample', sample, 'tensor')
  o = want('DDPM.step', 'options', o, 'table', true) or {}
  local c = self.config
  local vt = c.variance_type
  local learned = vt == 'learned' or vt == 'learned_range'
  local predicted_variance
  if learned then
    local ch = sample:size(2)
    if model_output:size(2) ~= 2 * ch then
      error(('DDPM: variance_type %s wants %d model output channels (prediction and variance), got %d')
        :format(vt, 2 * ch, model_output:size(2)), 2)
    end
    predicted_variance = model_output:narrow(2, ch + 1, ch)
    model_output = model_output:narrow(2, 1, ch)
  end
  local prev_t = self:previous_timestep(t)
  local a_t = self:alpha_bar(t)
  local a_prev = prev_t >= 0 and self:alpha_bar(prev_t) or 1.0
  local b_t, b_prev = 1 - a_t, 1 - a_prev
  local cur_alpha = a_t / a_prev
  local cur_beta = 1 - cur_alpha
  local x0
  if c.prediction_type == 'epsilon' then
    x0 = (sample - model_output * math.sqrt(b_t)) * (1 / math.sqrt(a_t))
  elseif c.prediction_type == 'sample' then
    x0 = model_output
  else
    x0 = sample * math.sqrt(a_t) - model_output * math.sqrt(b_t)
  end
  if c.clip_sample then x0 = x0:clamp(-c.clip_sample_range, c.clip_sample_range) end
  -- the posterior mean, formula (7) of Ho et al. 2020
  local prev = x0 * (math.sqrt(a_prev) * cur_beta / b_t) + sample * (math.sqrt(cur_alpha) * b_prev / b_t)
  if t > 0 then
    local var = math.max(b_prev / b_t * cur_beta, 1e-20)   -- beta~_t, clamped as diffusers does
    local std
    if vt == 'fixed_small' or vt == 'fixed_small_log' then std = math.sqrt(var)
    elseif vt == 'fixed_large' then std = math.sqrt(cur_beta)
    elseif vt == 'learned' then std = predicted_variance:sqrt()
    else   -- learned_range: interpolate log beta~_t .. log beta_t by (v + 1) / 2
      local lo, hi = math.log(var), math.log(cur_beta)
      std = ((predicted_variance + 1) * (0.25 * (hi - lo)) + 0.5 * lo):exp()
    end
    local noise = o.noise
    if not noise then
      if o.seed then noise = tensor.randn(sample.shape, { seed = o.seed, offset = o.offset or 0 })
      else noise = tensor.randn(sample.shape) end
    end
    prev = prev + noise * std
  end
  return { prev_sample = prev, pred_original_sample = x0 }
end

---------------------------------------------------------------- DDIM
local DDIM = setmetatable({ _name = 'schedulers.DDIM', class_name = 'DDIMScheduler' }, { __index = Base })
DDIM.__index = DDIM
M.DDIMScheduler = DDIM
DDIM.OPTIONS = B.common({}, {
  clip_sample = { K.bool, true },
  clip_sample_range = { K.posnum, 1.0 },
  set_alpha_to_one = { K.bool, true },
  thresholding = { K.bool, false, only = { false } },
  dynamic_thresholding_ratio = { K.posnum, 0.995, inert = THRESHOLD_INERT },
  sample_max_value = { K.posnum, 1.0, inert = THRESHOLD_INERT },
})
-- DDIM(cfg, overrides, {quiet=}): diffusers' defaults for absent keys; SD's scheduler_config.json
-- sets clip_sample false, set_alpha_to_one false, steps_offset 1.
function M.DDIM(cfg, overrides, o) return new(DDIM, cfg, overrides, o) end
DDIM.create = M.DDIM

function DDIM:set_timesteps(n) return self:_spaced_timesteps(n, 'DDIM') end

-- step(model_output, t, sample, {eta=0, noise=, seed=, use_clipped_model_output=})
--   -> { prev_sample = , pred_original_sample = }
-- Differentiable in model_output and sample (DRaFT backpropagates through the last steps).
function DDIM:step(model_output, t, sample, o)
  want('DDIM.step', 'model_output', model_output, 'tensor')
  want('DDIM.step', 'timestep', t, 'integer')
  want('DDIM.step', 'sample', sample, 'tensor')
  o = want('DDIM.step', 'options', o, 'table', true) or {}
  if not self.num_inference_steps then argerror('DDIM: call set_timesteps before step') end
  local c = self.config
  local eta = o.eta or 0
  local prev_t = t - math.floor(c.num_train_timesteps / self.num_inference_steps)
  local a_t = self:alpha_bar(t)
  local a_prev = prev_t >= 0 and self:alpha_bar(prev_t) or self.final_alpha_cumprod
  local b_t = 1 - a_t
  local x0, eps
  if c.prediction_type == 'epsilon' then
    x0 = (sample - model_output * math.sqrt(b_t)) * (1 / math.sqrt(a_t))
    eps = model_output
  elseif c.prediction_type == 'sample' then
    x0 = model_output
    eps = (sample - x0 * math.sqrt(a_t)) * (1 / math.sqrt(b_t))
  else
    x0 = sample * math.sqrt(a_t) - model_output * math.sqrt(b_t)
    eps = model_output * math.sqrt(a_t) + sample * math.sqrt(b_t)
  end
  if c.clip_sample then x0 = x0:clamp(-c.clip_sample_range, c.clip_sample_range) end
  local variance = (1 - a_prev) / b_t * (1 - a_t / a_prev)
  local std = eta * math.sqrt(variance)
  if o.use_clipped_model_output then eps = (sample - x0 * math.sqrt(a_t)) * (1 / math.sqrt(b_t)) end
  local prev = x0 * math.sqrt(a_prev) + eps * math.sqrt(1 - a_prev - std * std)
  if eta > 0 then
    local noise = o.noise or tensor.randn(sample.shape,
      { seed = o.seed or argerror('DDIM: eta > 0 needs noise or a seed'),
      offset = o.offset or 0 })
    prev = prev + noise * std
  end
  return { prev_sample = prev, pred_original_sample = x0 }
end

---------------------------------------------------------------- the classes, by name
local PNDM = require 'craft.models.scheduler_pndm'
local EULER = require 'craft.models.scheduler_euler'
local DPM = require 'craft.models.scheduler_dpm'
M.PNDMScheduler, M.PNDM = PNDM.PNDMScheduler, PNDM.PNDM
M.EulerDiscreteScheduler, M.Euler = EULER.EulerDiscreteScheduler, EULER.Euler
M.EulerAncestralDiscreteScheduler = EULER.EulerAncestralDiscreteScheduler
M.EulerAncestral = EULER.EulerAncestral
M.DPMSolverMultistepScheduler, M.DPMSolverMultistep = DPM.DPMSolverMultistepScheduler, DPM.DPMSolverMultistep

-- diffusers class name -> the class
M.CLASSES = { DDIMScheduler = DDIM, DDPMScheduler = DDPM, PNDMScheduler = M.PNDMScheduler,
  EulerDiscreteScheduler = M.EulerDiscreteScheduler,
  EulerAncestralDiscreteScheduler = M.EulerAncestralDiscreteScheduler,
  DPMSolverMultistepScheduler = M.DPMSolverMultistepScheduler }
-- the names a recipe may give (pipe:generate{sampler = ...}): a class and config overrides
M.NAMES = {
  ddim = { 'DDIMScheduler' }, ddpm = { 'DDPMScheduler' }, pndm = { 'PNDMScheduler' },
  plms = { 'PNDMScheduler' },
  euler = { 'EulerDiscreteScheduler' }, euler_a = { 'EulerAncestralDiscreteScheduler' },
  euler_ancestral = { 'EulerAncestralDiscreteScheduler' }, ['dpm++2m'] = { 'DPMSolverMultistepScheduler' },
  ['dpm++2m_karras'] = { 'DPMSolverMultistepScheduler', { use_karras_sigmas = true } },
}
local function sorted_keys(t)
  local r = {}
  for k in pairs(t) do r[#r + 1] = k end
  table.sort(r)
  return r
end
M.class_list = table.concat(sorted_keys(M.CLASSES), ', ')
M.name_list = table.concat(sorted_keys(M.NAMES), ', ')

-- resolve(name) -> class, overrides: a short name (M.NAMES) or a diffusers class name
function M.resolve(name, where)
  if M.CLASSES[name] then return M.CLASSES[name], nil end
  local n = type(name) == 'string' and M.NAMES[name:lower()]
  if n then return M.CLASSES[n[1]], n[2] end
  argerror(('%s: sampler %s is not implemented by craft (names: %s; classes: %s)'):format(where
    or 'schedulers',
    O.show(name), M.name_list, M.class_list))
end

local function is_scheduler(v)
  return type(v) == 'table' and getmetatable(v) and v.class_name and v.config and v.step
end

-- from_config(cfg, {class=, overrides=, quiet=}) -> a scheduler.
-- cfg: a config table, a path (a scheduler_config.json or the folder holding it), or a scheduler
-- (then the config it was made from). class: a diffusers class name or a short name (M.NAMES);
-- by default cfg's _class_name (DDIMScheduler when it has none). A class craft does not
-- implement is refused. Another class than the config's own is made as diffusers' 0.27
-- Class.from_config(pipe.scheduler.config) makes it: from the keys the file gave (also those its
-- own class ignores, such as SD 1.5's clip_sample; not those _use_default_values lists) that the
-- new class has; its own defaults for the rest.
function M.from_config(cfg, o)
  want('schedulers.from_config', 'config', cfg, 'string|table')
  o = want('schedulers.from_config', 'options', o, 'table', true) or {}
  want('schedulers.from_config', 'options.overrides', o.overrides, 'table', true)
  local where
  if type(cfg) == 'string' then
    local p = cfg
    if not p:match('%.json$') then p = p .. '/scheduler_config.json' end
    cfg = O.read(p, { quiet = o.quiet })
    where = p
  end
  local source_class
  if is_scheduler(cfg) then
    source_class, where = cfg.class_name, cfg.source
    cfg = cfg.raw
  else
    where = O.where(cfg, where or 'scheduler config')
    if O.is_list(cfg) then
      argerror(('%s: a scheduler config must be an object, got %s'):format(where, O.show(cfg)))
    end
    local cn = cfg._class_name
    if cn ~= nil and type(cn) ~= 'string' then O.refuse(where, '_class_name', cn, 'must be a string') end
    source_class = cn or 'DDIMScheduler'
  end
  if not o.class and not M.CLASSES[source_class] then
    argerror(('%s: _class_name = %s is not implemented by craft (implemented: %s; models.load(dir, {sampler '
      .. '= \'ddim\'}) samples with another)')
      :format(where, O.show(source_class), M.class_list))
  end
  local cls, name_over = M.resolve(o.class or source_class, where)
  local overrides = {}
  for k, v in pairs(name_over or {}) do overrides[k] = v end
  for k, v in pairs(o.overrides or {}) do overrides[k] = v end
  if cls.class_name == source_class then
    return cls.create(cfg, overrides, { where = where, quiet = o.quiet })
  end
  local defaulted = {}
  if O.is_list(cfg._use_default_values) then
    for _, k in ipairs(cfg._use_default_values) do defaulted[k] = true end
  end
  local kept = {}
  for k, v in pairs(cfg) do
    if cls.OPTIONS[k] and not defaulted[k] then kept[k] = v end
  end
  return cls.create(kept, overrides, { where = where .. ' (as ' .. cls.class_name .. ')', quiet = o.quiet })
end

return M
