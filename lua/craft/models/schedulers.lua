-- craft.models.schedulers: the DDPM and DDIM noise schedules of diffusers (training: add_noise and
-- targets; sampling: set_timesteps and step), configured from a scheduler/scheduler_config.json
-- table. Timesteps are the model's own integers (0 .. num_train_timesteps-1); per-timestep
-- constants are plain Lua numbers (doubles), tensors only carry samples. Noise comes from
-- craft.randn with explicit seeds (Philox: a seed gives the same noise on every machine and
-- thread count).
--   local s = schedulers.from_config(cfg)              -- by cfg._class_name, or schedulers.DDIM(cfg)
--   s:set_timesteps(50); for _, t in ipairs(s.timesteps) do x = s:step(eps, t, x).prev_sample end
--   local noisy = s:add_noise(x0, noise, t); local target = s:target(x0, noise, t)
--   local d = schedulers.DDPM(cfg); d:set_timesteps(50)             -- ancestral sampling
--   for i, t in ipairs(d.timesteps) do x = d:step(eps, t, x, {seed = i}).prev_sample end
local craft = require 'craft'
local argerror = require('craft.core').argerror
local io_ = require 'craft.io'

local M = {}

local DEFAULTS = { num_train_timesteps = 1000, beta_start = 0.0001, beta_end = 0.02, beta_schedule = 'linear',
  prediction_type = 'epsilon', clip_sample = true, clip_sample_range = 1.0, set_alpha_to_one = true,
  steps_offset = 0, timestep_spacing = 'leading', rescale_betas_zero_snr = false, thresholding = false,
  variance_type = 'fixed_small' }

local function settings(cfg, overrides)
  local c = {}
  for k, v in pairs(DEFAULTS) do c[k] = v end
  for k, v in pairs(cfg or {}) do if v ~= io_.null then c[k] = v end end
  for k, v in pairs(overrides or {}) do c[k] = v end
  if c.thresholding then argerror('scheduler: thresholding (dynamic) is not supported') end
  if c.trained_betas ~= nil then argerror('scheduler: trained_betas is not supported') end
  local pt = c.prediction_type
  if pt ~= 'epsilon' and pt ~= 'v_prediction' and pt ~= 'sample' then
    argerror(('scheduler: prediction_type %q is not supported (epsilon, v_prediction, sample)'):format(tostring(pt)))
  end
  return c
end

-- betas as diffusers makes them (linspace in float32 there; doubles here: equal to ~1e-7)
local function make_betas(c)
  local n, b = c.num_train_timesteps, {}
  local function lin(a, z, i) return n == 1 and a or a + (z - a) * i / (n - 1) end
  if c.beta_schedule == 'linear' then
    for i = 0, n - 1 do b[i + 1] = lin(c.beta_start, c.beta_end, i) end
  elseif c.beta_schedule == 'scaled_linear' then
    for i = 0, n - 1 do b[i + 1] = lin(math.sqrt(c.beta_start), math.sqrt(c.beta_end), i) ^ 2 end
  elseif c.beta_schedule == 'squaredcos_cap_v2' then
    local function abar(t) return math.cos((t + 0.008) / 1.008 * math.pi / 2) ^ 2 end
    for i = 0, n - 1 do b[i + 1] = math.min(1 - abar((i + 1) / n) / abar(i / n), 0.999) end
  else
    argerror(('scheduler: beta_schedule %q is not supported (linear, scaled_linear, squaredcos_cap_v2)'):format(tostring(c.beta_schedule)))
  end
  return b
end

local function cumprod(betas)
  local acp, p = {}, 1
  for i, beta in ipairs(betas) do p = p * (1 - beta); acp[i] = p end
  return acp
end

-- Zero terminal SNR (Lin et al. 2023, Algorithm 1): shift and scale sqrt(alpha_bar) so the last is 0.
local function rescale_zero_snr(betas)
  local acp = cumprod(betas)
  local s = {}
  for i, a in ipairs(acp) do s[i] = math.sqrt(a) end
  local s0, sT = s[1], s[#s]
  for i = 1, #s do s[i] = (s[i] - sT) * s0 / (s0 - sT) end
  local out = {}
  for i = 1, #s do
    local ab = s[i] ^ 2
    out[i] = 1 - (i == 1 and ab or ab / s[i - 1] ^ 2)
  end
  return out
end

-- numpy's round: halves to even
local function round_even(x)
  local f = math.floor(x)
  local d = x - f
  if d > 0.5 or (d == 0.5 and f % 2 == 1) then return f + 1 end
  return f
end

local Base = {}
Base.__index = Base

local function new(cls, cfg, overrides)
  local want = require('craft.core').want
  want(cls._name or 'scheduler', 'config', cfg, 'table', true)
  want(cls._name or 'scheduler', 'overrides', overrides, 'table', true)
  local c = settings(cfg, overrides)
  want(cls._name or 'scheduler', 'num_train_timesteps', c.num_train_timesteps, 'positive')
  local betas = make_betas(c)
  if c.rescale_betas_zero_snr then betas = rescale_zero_snr(betas) end
  local self = setmetatable({ config = c, betas = betas, alphas_cumprod = cumprod(betas), init_noise_sigma = 1.0 }, cls)
  self.final_alpha_cumprod = c.set_alpha_to_one and 1.0 or self.alphas_cumprod[1]
  self.timesteps = {}
  for i = 1, c.num_train_timesteps do self.timesteps[i] = c.num_train_timesteps - i end
  return self
end

-- alpha_bar(t) for a model timestep t (0-based)
local want = require('craft.core').want
function Base:alpha_bar(t)
  want('scheduler', 'timestep', t, 'integer')
  local a = self.alphas_cumprod[t + 1]
  if not a then argerror(('scheduler: timestep %s outside 0..%d'):format(tostring(t), #self.alphas_cumprod - 1)) end
  return a
end

-- A [B, 1, 1, ...] tensor of f(alpha_bar(t_b)) shaped to broadcast against x.
local function per_sample(self, t, x, f)
  want('scheduler', 'sample', x, 'tensor')
  want('scheduler', 'timesteps', t, 'integer|list')
  local ts
  if type(t) == 'number' then ts = { t }
  elseif craft.is_tensor(t) then ts = t:flat()
  else ts = t end
  local shape = { #ts }
  for i = 2, x:dim() do shape[i] = 1 end
  local v = {}
  for i, ti in ipairs(ts) do v[i] = f(self:alpha_bar(ti)) end
  return craft.tensor(v):reshape(shape)
end

-- add_noise(x0, noise, t): sqrt(ab) x0 + sqrt(1 - ab) noise; t a number or one per sample
function Base:add_noise(x0, noise, t)
  return x0 * per_sample(self, t, x0, math.sqrt) + noise * per_sample(self, t, x0, function(a) return math.sqrt(1 - a) end)
end
-- get_velocity(x0, noise, t): the v target, sqrt(ab) noise - sqrt(1 - ab) x0
function Base:get_velocity(x0, noise, t)
  return noise * per_sample(self, t, x0, math.sqrt) - x0 * per_sample(self, t, x0, function(a) return math.sqrt(1 - a) end)
end
-- target(x0, noise, t): what the model is trained to predict under this config's prediction_type
function Base:target(x0, noise, t)
  local pt = self.config.prediction_type
  if pt == 'epsilon' then return noise end
  if pt == 'v_prediction' then return self:get_velocity(x0, noise, t) end
  return x0
end
-- Noise for a sample of `shape`, drawn from Philox with an explicit seed.
function Base:noise(shape, seed, offset)
  want('scheduler.noise', 'seed', seed, 'count', true)
  want('scheduler.noise', 'offset', offset, 'count', true)
  return craft.randn(shape, { seed = seed, offset = offset or 0 })
end
function Base:scale_model_input(x) return x end

-- The inference timesteps of diffusers' set_timesteps for config.timestep_spacing ("leading",
-- "trailing", "linspace"; Table 2 of Lin et al. 2023), largest first.
function Base:_spaced_timesteps(n, who)
  local c = self.config
  local T = c.num_train_timesteps
  if type(n) ~= 'number' or n < 1 or n > T or n % 1 ~= 0 then
    argerror(('%s: %s inference steps (1 .. %d)'):format(who, tostring(n), T))
  end
  self.num_inference_steps = n
  self.custom_timesteps = false
  local ts = {}
  if c.timestep_spacing == 'linspace' then
    for i = n - 1, 0, -1 do ts[#ts + 1] = round_even(n == 1 and 0 or i * (T - 1) / (n - 1)) end
  elseif c.timestep_spacing == 'leading' then
    local ratio = math.floor(T / n)
    for i = n - 1, 0, -1 do ts[#ts + 1] = i * ratio + c.steps_offset end
  elseif c.timestep_spacing == 'trailing' then
    local ratio = T / n
    local x = T
    while x > 0 do ts[#ts + 1] = round_even(x) - 1; x = x - ratio end
  else
    argerror(('%s: timestep_spacing %q is not supported (leading, trailing, linspace)'):format(who, tostring(c.timestep_spacing)))
  end
  self.timesteps = ts
  return ts
end

---------------------------------------------------------------- DDPM
local DDPM = setmetatable({ _name = 'schedulers.DDPM' }, { __index = Base })
DDPM.__index = DDPM
M.DDPMScheduler = DDPM
local VARIANCE_TYPES = { fixed_small = true, fixed_small_log = true, fixed_large = true, learned = true, learned_range = true }
-- DDPM(cfg, overrides): diffusers' DDPMScheduler defaults for absent keys (clip_sample true,
-- variance_type "fixed_small"). Without set_timesteps, step walks the whole training chain.
function M.DDPM(cfg, overrides)
  local s = new(DDPM, cfg, overrides)
  local vt = s.config.variance_type
  if not VARIANCE_TYPES[vt] then
    error(('DDPM: variance_type %q is not supported (fixed_small, fixed_small_log, fixed_large, learned, learned_range)')
      :format(tostring(vt)), 2)
  end
  return s
end

-- set_timesteps(n) with the config's timestep_spacing, or set_timesteps{t1, t2, ...}: custom
-- timesteps, strictly decreasing and below num_train_timesteps (each step then goes to the next
-- one in the list, the last to 0's predecessor).
function DDPM:set_timesteps(n)
  if type(n) ~= 'table' then return self:_spaced_timesteps(n, 'DDPM') end
  local T = self.config.num_train_timesteps
  local ts = {}
  for i, t in ipairs(n) do
    want('DDPM.set_timesteps', ('timesteps[%d]'):format(i), t, 'integer')
    if t % 1 ~= 0 or t < 0 or t >= T then argerror(('DDPM: custom timestep %s outside 0..%d'):format(tostring(t), T - 1)) end
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
      if o.seed then noise = craft.randn(sample.shape, { seed = o.seed, offset = o.offset or 0 })
      else noise = craft.randn(sample.shape) end
    end
    prev = prev + noise * std
  end
  return { prev_sample = prev, pred_original_sample = x0 }
end

---------------------------------------------------------------- DDIM
local DDIM = setmetatable({ _name = 'schedulers.DDIM' }, { __index = Base })
DDIM.__index = DDIM
M.DDIMScheduler = DDIM
-- DDIM(cfg, overrides): diffusers' defaults for absent keys; SD's scheduler_config.json sets
-- clip_sample false, set_alpha_to_one false, steps_offset 1.
function M.DDIM(cfg, overrides) return new(DDIM, cfg, overrides) end

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
    local noise = o.noise or craft.randn(sample.shape, { seed = o.seed or argerror('DDIM: eta > 0 needs noise or a seed'),
      offset = o.offset or 0 })
    prev = prev + noise * std
  end
  return { prev_sample = prev, pred_original_sample = x0 }
end

---------------------------------------------------------------- from a config file
local CLASSES = { DDIMScheduler = M.DDIM, DDPMScheduler = M.DDPM }
-- from_config(cfg_table_or_path, {class=, overrides}) -> a scheduler; class defaults to the
-- config's _class_name (PNDM and the other SD defaults become DDIM: same betas, our sampler).
function M.from_config(cfg, o)
  local want = require('craft.core').want
  want('schedulers.from_config', 'config', cfg, 'string|table')
  o = want('schedulers.from_config', 'options', o, 'table', true) or {}
  if type(cfg) == 'string' then
    local p = cfg
    if not p:match('%.json$') then p = p .. '/scheduler_config.json' end
    cfg = io_.read_json(p)
  end
  local cls = o.class or cfg._class_name or 'DDIMScheduler'
  local make = CLASSES[cls] or M.DDIM
  return make(cfg, o.overrides)
end

return M
