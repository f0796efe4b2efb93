-- craft.models.scheduler_base: what every sampler of craft.models.schedulers shares: the config
-- keys common to diffusers' schedulers, the beta schedules, the training side (add_noise and
-- targets, DDPM's variance-preserving process whatever the sampler: diffusers' training scripts
-- train with DDPMScheduler), the inference timestep spacings and the sigma tables of the
-- Karras-style samplers (Euler, DPM-Solver). Per-timestep constants are Lua numbers (doubles);
-- tensors only carry samples.
local craft = require 'craft'
local core = require 'craft.core'
local O = require 'craft.models.options'
local argerror, want = core.argerror, core.want
local ffi = core.ffi
local K, null = O.K, craft.io.null

local M = {}

---------------------------------------------------------------- options
local BETA_SCHEDULES = { 'linear', 'scaled_linear', 'squaredcos_cap_v2' }
local SPACINGS = { 'leading', 'trailing', 'linspace' }
-- common(defaults, extra) -> the option table of a scheduler class: the keys every diffusers
-- scheduler has (with this class's defaults), plus extra.
function M.common(defaults, extra)
  local t = {
    num_train_timesteps = { K.posint, 1000 },
    beta_start = { K.posnum, 0.0001 },
    beta_end = { K.posnum, 0.02 },
    beta_schedule = { K.string, 'linear', only = BETA_SCHEDULES },
    trained_betas = { K.list(K.posnum), nil, note = 'one beta per training timestep' },
    prediction_type = { K.string, 'epsilon', only = defaults.prediction_types or { 'epsilon', 'v_prediction', 'sample' } },
    timestep_spacing = { K.string, defaults.timestep_spacing or 'leading', only = SPACINGS },
    steps_offset = { K.count, 0 },
  }
  if defaults.rescale ~= false then t.rescale_betas_zero_snr = { K.bool, false } end
  for k, v in pairs(extra or {}) do t[k] = v end
  return t
end

---------------------------------------------------------------- betas
local function f32(x)
  local b = ffi.new('float[1]', x)
  return tonumber(b[0])
end
M.f32 = f32

-- betas as diffusers makes them: a float32 tensor (linspace, or scaled_linear's squared
-- linspace, in float32 there; each value rounded to float32 here, the same to ~1 ulp)
local function make_betas(c, where)
  local n, b = c.num_train_timesteps, {}
  if c.trained_betas then
    if #c.trained_betas ~= n then
      O.refuse(where, 'trained_betas', c.trained_betas, ('has %d betas for num_train_timesteps = %d'):format(#c.trained_betas, n))
    end
    for i = 1, n do
      if c.trained_betas[i] >= 1 then O.refuse(where, 'trained_betas', c.trained_betas, 'must be below 1') end
      b[i] = f32(c.trained_betas[i])
    end
    return b
  end
  local function lin(a, z, i) return n == 1 and a or a + (z - a) * i / (n - 1) end
  if c.beta_schedule == 'linear' then
    for i = 0, n - 1 do b[i + 1] = f32(lin(c.beta_start, c.beta_end, i)) end
  elseif c.beta_schedule == 'scaled_linear' then
    for i = 0, n - 1 do b[i + 1] = f32(f32(lin(math.sqrt(c.beta_start), math.sqrt(c.beta_end), i)) ^ 2) end
  else
    local function abar(t) return math.cos((t + 0.008) / 1.008 * math.pi / 2) ^ 2 end
    for i = 0, n - 1 do b[i + 1] = f32(math.min(1 - abar((i + 1) / n) / abar(i / n), 0.999)) end
  end
  for i = 1, n do
    if not (b[i] > 0 and b[i] < 1) then
      O.refuse(where, 'beta_end', c.beta_end, ('gives beta = %.6g at timestep %d (betas must lie in (0, 1))'):format(b[i], i - 1))
    end
  end
  return b
end

local function cumprod(betas)
  local acp, p = {}, 1
  for i, beta in ipairs(betas) do p = p * (1 - beta); acp[i] = p end
  return acp
end
M.cumprod = cumprod

-- Zero terminal SNR (Lin et al. 2023, Algorithm 1): shift and scale sqrt(alpha_bar) so the last
-- is 0. Step by step in float32 as diffusers computes it: near the end the shift cancels, and
-- the reference's own rounding there moves the last sigmas by ~1e-4.
local function rescale_zero_snr(betas)
  local s, p = {}, 1
  for i, beta in ipairs(betas) do
    p = p * f32(1 - beta)                 -- torch's float32 cumprod accumulates in double
    s[i] = f32(math.sqrt(f32(p)))
  end
  local s0, sT = s[1], s[#s]
  local scale = f32(s0 / f32(s0 - sT))
  local ab = {}
  for i = 1, #s do
    local v = f32(f32(s[i] - sT) * scale)
    ab[i] = f32(v * v)
  end
  local out = {}
  for i = 1, #ab do out[i] = f32(1 - (i == 1 and ab[1] or f32(ab[i] / ab[i - 1]))) end
  return out
end

-- numpy's round: halves to even
local function round_even(x)
  local f = math.floor(x)
  local d = x - f
  if d > 0.5 or (d == 0.5 and f % 2 == 1) then return f + 1 end
  return f
end
M.round_even = round_even

-- numpy.linspace(a, b, n) (the same arithmetic: i * step + a, the last one exactly b)
local function linspace(a, b, n)
  local r = {}
  if n == 1 then return { a } end
  local step = (b - a) / (n - 1)
  for i = 0, n - 1 do r[i + 1] = i * step + a end
  r[n] = b
  return r
end
M.linspace = linspace

-- numpy.arange(a, b, step): ceil((b - a) / step) values a + i * step
function M.arange(a, b, step)
  local r = {}
  for i = 0, math.ceil((b - a) / step) - 1 do r[i + 1] = a + i * step end
  return r
end

---------------------------------------------------------------- the base class
local Base = {}
Base.__index = Base
M.Base = Base

-- new(cls, cfg, overrides, {where=, quiet=}) -> a scheduler of class cls (cls.OPTIONS, cls._name,
-- cls.class_name), its config checked and filled, betas and alphas_cumprod made.
function M.new(cls, cfg, overrides, o)
  want(cls._name, 'config', cfg, 'table', true)
  want(cls._name, 'overrides', overrides, 'table', true)
  o = want(cls._name, 'options', o, 'table', true) or {}
  local where = o.where or O.where(cfg, cls.class_name .. ' config')
  -- another class's config (schedulers.DDPM(ddim_config)): its keys this class has, as
  -- diffusers' from_config takes them (see schedulers.from_config)
  if cfg and type(cfg._class_name) == 'string' and cfg._class_name ~= cls.class_name then
    local defaulted, kept = {}, {}
    if O.is_list(cfg._use_default_values) then for _, k in ipairs(cfg._use_default_values) do defaulted[k] = true end end
    for k, v in pairs(cfg) do if cls.OPTIONS[k] and not defaulted[k] then kept[k] = v end end
    cfg = kept
  end
  local merged = cfg or {}
  if overrides and next(overrides) then
    merged = {}
    for k, v in pairs(cfg or {}) do merged[k] = v end
    for k, v in pairs(overrides) do merged[k] = v end
    O.remember(merged, where, { quiet = o.quiet })
  end
  local c = O.check(merged, cls.OPTIONS, where, { quiet = o.quiet })
  local betas = make_betas(c, where)
  if c.rescale_betas_zero_snr then betas = rescale_zero_snr(betas) end
  -- raw: the config as given (another class is made from it, as diffusers' from_config does)
  local self = setmetatable({ config = c, raw = merged, betas = betas, alphas_cumprod = cumprod(betas), init_noise_sigma = 1.0,
    class_name = cls.class_name, source = where }, cls)
  self.final_alpha_cumprod = c.set_alpha_to_one and 1.0 or self.alphas_cumprod[1]
  -- diffusers' own float32 alphas_cumprod (its float32 cumprod accumulates in double and rounds
  -- each entry), which PNDM, Euler and DPM-Solver compute from (see "float32" below)
  local acp32, p = {}, 1
  for i, beta in ipairs(betas) do p = p * f32(1 - beta); acp32[i] = f32(p) end
  self.acp32 = acp32
  self.timesteps = {}
  for i = 1, c.num_train_timesteps do self.timesteps[i] = c.num_train_timesteps - i end
  return self
end

-- alpha_bar(t) for a model timestep t (0-based)
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
-- A stochastic step's noise: o.noise, else Philox from (o.seed, o.offset), else the global stream.
function M.step_noise(o, shape)
  if o.noise then return o.noise end
  if o.seed then return craft.randn(shape, { seed = o.seed, offset = o.offset or 0 }) end
  return craft.randn(shape)
end

function M.check_steps(self, n, who)
  local T = self.config.num_train_timesteps
  if type(n) ~= 'number' or n < 1 or n > T or n % 1 ~= 0 then
    argerror(('%s: %s inference steps (1 .. %d)'):format(who, tostring(n), T))
  end
end

-- The inference timesteps of diffusers' set_timesteps for config.timestep_spacing ("leading",
-- "trailing", "linspace"; Table 2 of Lin et al. 2023), largest first, as integers (DDIM, DDPM,
-- PNDM).
function Base:_spaced_timesteps(n, who)
  local c = self.config
  local T = c.num_train_timesteps
  M.check_steps(self, n, who)
  self.num_inference_steps = n
  self.custom_timesteps = false
  local ts = {}
  if c.timestep_spacing == 'linspace' then
    local l = linspace(0, T - 1, n)
    for i = n, 1, -1 do ts[#ts + 1] = round_even(l[i]) end
  elseif c.timestep_spacing == 'leading' then
    local ratio = math.floor(T / n)
    for i = n - 1, 0, -1 do ts[#ts + 1] = i * ratio + c.steps_offset end
  else   -- trailing
    for _, x in ipairs(M.arange(T, 0, -T / n)) do ts[#ts + 1] = round_even(x) - 1 end
  end
  for _, t in ipairs(ts) do
    if t < 0 or t >= T then
      argerror(('%s: %d steps with steps_offset %d give timestep %d, outside 0..%d'):format(who, n, c.steps_offset, t, T - 1))
    end
  end
  self.timesteps = ts
  return ts
end

---------------------------------------------------------------- sigmas (Euler, DPM-Solver)
-- float32: PNDM, Euler and DPM-Solver compute their per-step constants the way diffusers does,
-- in float32 (0-dim float32 tensors, float32 numpy arrays): f32() after each operation. The
-- results match diffusers to a few float32 ulps; with doubles they differed by up to 4e-4
-- relative where the sample is large and the step cancels (sigma_max 4096 and more).

-- sigma(t) = sqrt((1 - alpha_bar) / alpha_bar) for every training timestep (index t + 1), from
-- float32 alphas_cumprod, in float32
function M.train_sigmas(acp32)
  local s = {}
  for i, a in ipairs(acp32) do s[i] = f32(math.sqrt(f32(f32(1 - a) / a))) end
  return s
end
-- numpy's float32 log of each
function M.log32(list)
  local r = {}
  for i, v in ipairs(list) do r[i] = f32(math.log(v)) end
  return r
end
-- sqrt(sigma^2 + 1) in float32
function M.hyp32(sigma) return f32(math.sqrt(f32(f32(sigma * sigma) + 1))) end

-- numpy.interp(x, 0..#ys-1, ys): linear between integer positions, clamped at the ends
function M.interp(x, ys)
  if x <= 0 then return ys[1] end
  if x >= #ys - 1 then return ys[#ys] end
  local i = math.floor(x)
  local w = x - i
  return ys[i + 1] * (1 - w) + ys[i + 2] * w
end

-- Karras et al. 2022 (eq. 5, rho = 7): n sigmas from sigma_max down to sigma_min
function M.karras(sigma_min, sigma_max, n)
  local rho = 7.0
  local lo, hi = sigma_min ^ (1 / rho), sigma_max ^ (1 / rho)
  local ramp = linspace(0, 1, n)
  local r = {}
  for i = 1, n do r[i] = (hi + ramp[i] * (lo - hi)) ^ rho end
  return r
end

-- The (fractional) training timestep of a sigma: linear in log sigma between the two
-- neighbouring training sigmas (diffusers' _sigma_to_t; log_sigmas are float32 there, and so
-- is their difference).
function M.sigma_to_t(sigma, log_sigmas)
  local ls = math.log(math.max(sigma, 1e-10))
  local n = #log_sigmas
  -- low: the last index whose log sigma is <= ls (log sigmas increase with t), at most n - 2
  local low = 0
  for i = 1, n do if ls - log_sigmas[i] >= 0 then low = i - 1 end end
  if low > n - 2 then low = n - 2 end
  local lo, hi = log_sigmas[low + 1], log_sigmas[low + 2]
  local w = (lo - ls) / f32(lo - hi)
  w = math.max(0, math.min(1, w))
  return (1 - w) * low + w * (low + 1)
end

-- The step index of timestep t in self.timesteps as diffusers' index_for_timestep finds it
-- (the second match when t is there twice, for image-to-image starts); nil when absent.
function M.index_for_timestep(ts, t)
  local first, second
  for i, v in ipairs(ts) do
    if v == t then
      if first then second = i; break end
      first = i
    end
  end
  return second or first
end

M.null = null
return M
