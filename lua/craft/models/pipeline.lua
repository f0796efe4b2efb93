-- craft.models.pipeline: text-to-image sampling as diffusers' StableDiffusionPipeline does it
-- (the scheduler the folder names: DDIM, DDPM, PNDM, Euler, Euler ancestral or DPM-Solver++;
-- classifier-free guidance with the unconditional half first, VAE decode, [0, 1] images).
--   local pipe = require('craft.models').load('tiny_sd')
--   local images = pipe:generate{prompt = 'a chest x-ray', steps = 50, cfg = 7.5, seed = 1}
--   pipe:generate{prompt_embeds = e, negative_prompt_embeds = n, latents = x, out = 'img_%d.png'}
--   pipe:generate{prompt = p, sampler = 'dpm++2m_karras'}     -- another sampler, the folder's betas
--   pipe:generate{prompt = p, scheduler = require('craft.models.schedulers').DDPM(cfg)}
-- grad_steps = K keeps the graph through the last K denoising steps and the decode (DRaFT-K);
-- the earlier steps run without it. The trainers sample through the same function.
local T = require 'craft.tensor'
local A = require 'craft.autograd'
local F = require 'craft.functional'
local argerror = require('craft.core').argerror
local core = require 'craft.core'
local io_ = require 'craft.io'

local M = {}

-- where a pipeline's own scheduler came from, for the note saying which sampler runs
local function sched_source(s)
  return s.source and ('the folder\'s ' .. s.source) or 'the pipeline\'s scheduler'
end

local Pipeline = {}
Pipeline.__index = Pipeline
M.Pipeline = Pipeline

-- new{unet=, vae=, scheduler=, text_encoder=, tokenizer=}
function M.new(parts)
  require('craft.core').want('pipeline.new', 'parts', parts, 'table')
  for _, k in ipairs { 'unet', 'vae', 'scheduler' } do
    if not parts[k] then argerror('pipeline: missing component ' .. k) end
  end
  return setmetatable(parts, Pipeline)
end

-- The device the pipeline computes on: its UNet's ('cpu', 'cl:0', ...).
function Pipeline:device()
  local p = self.unet:named_parameters()[1]
  return p and p[2].device or require('craft.device').default()
end

-- to(device): moves the UNet, the VAE and the text encoder (parameters, buffers, adapters'
-- weights and installed textual-inversion vectors) to device; returns the pipeline.
function Pipeline:to(device)
  require('craft.device').code(device)
  for _, k in ipairs { 'unet', 'vae', 'text_encoder' } do
    local m = self[k]
    if m and m.to then
      m:to(device)
      -- LoRA adapters are kept beside the parameters (craft.models.lora): they move too
      if m.named_modules then
        for _, nm in ipairs(m:named_modules()) do
          local l = rawget(nm[2], '_lora')
          if l then
            for _, f in ipairs { 'down', 'up' } do
              l[f] = l[f]:detach():to(device):requires_grad_(l[f].requires_grad)
            end
            if l.saved then l.saved = l.saved:to(device) end
          end
        end
      end
    end
  end
  if self.ti and type(self.ti.vectors) == 'table' then
    for name, v in pairs(self.ti.vectors) do
      if require('craft.tensor').is_tensor(v) then self.ti.vectors[name] = v:detach():to(device) end
    end
  end
  return self
end

-- The spatial factor between latents and images: 2 per VAE level after the first.
function Pipeline:vae_scale_factor() return 2 ^ (#self.vae.config.block_out_channels - 1) end

-- encode_prompt(list of strings) -> [B, L, C] text embeddings (needs text_encoder and tokenizer)
function Pipeline:encode_prompt(prompts)
  if not (self.text_encoder and self.tokenizer) then
    argerror('pipeline: no text encoder loaded (craft.models.clip); pass prompt_embeds / '
      .. 'negative_prompt_embeds')
  end
  local ids = self.tokenizer:encode(prompts)
  local out = self.text_encoder(ids)
  if not T.is_tensor(out) then out = out.last_hidden_state or out[1] end
  return out
end

local function as_list(p, n)
  if type(p) == 'string' then
    local l = {}
    for i = 1, n or 1 do l[i] = p end
    return l
  end
  return p
end

-- Writes images [B, 3, H, W] in [0, 1] as 8-bit PNGs; pattern has one %d (1-based index).
function M.write_png(images, pattern)
  local want = require('craft.core').want
  want('pipeline.write_png', 'images', images, 'tensor')
  want('pipeline.write_png', 'pattern', pattern, 'string')
  if images:dim() ~= 4 then
    argerror(('pipeline.write_png: images must be [B, C, H, W], got %s')
      :format(require('craft.core').describe(images)))
  end
  local b = images:size(1)
  local x = images:detach():float():contiguous()
  local paths = {}
  for i = 1, b do
    local path = pattern:find('%%d') and pattern:format(i) or (b == 1 and pattern
      or pattern:gsub('%.png$', '') .. '_' .. i .. '.png')
    io_.write_png(path, x:select(1, i))
    paths[i] = path
  end
  return paths
end

-- what has been said (once per process: a recipe loads the same folder many times)
local told = {}

-- sampler(o) -> the scheduler generate{...} samples with: o.scheduler (a scheduler object), else
-- o.sampler (a name: 'ddim', 'ddpm', 'pndm', 'euler', 'euler_a', 'dpm++2m', 'dpm++2m_karras',
-- or a diffusers class name; made from the folder's scheduler config as diffusers'
-- Class.from_config(pipe.scheduler.config) does, o.sampler_config overriding keys), else the
-- folder's own. The first use of each (per folder) says so on stderr, once per process (not with
-- {quiet = true} at load).
function Pipeline:sampler(o)
  local sched, how
  if o.scheduler ~= nil then
    sched, how = o.scheduler, 'scheduler ='
    if type(sched) ~= 'table' or type(sched.step) ~= 'function'
      or type(sched.set_timesteps) ~= 'function' then
      argerror('generate: scheduler must be a craft.models.schedulers sampler (DDIM, DDPM, PNDM, Euler, '
        .. 'DPM-Solver)')
    end
  elseif o.sampler ~= nil then
    core.want('generate', 'sampler', o.sampler, 'string')
    core.want('generate', 'sampler_config', o.sampler_config, 'table', true)
    local S = require 'craft.models.schedulers'
    local key = o.sampler .. (o.sampler_config and require('craft.io').encode_json(o.sampler_config) or '')
    self._samplers = self._samplers or {}
    sched = self._samplers[key]
    if not sched then
      sched = S.from_config(self.scheduler,
        { class = o.sampler, overrides = o.sampler_config, quiet = self.quiet })
      self._samplers[key] = sched
    end
    how = ("sampler = '%s'"):format(o.sampler)
  else
    sched, how = self.scheduler, sched_source(self.scheduler)
  end
  local name = sched.class_name or 'a custom scheduler'
  local line = ('%s: sampling with %s (%s)'):format(self.path or 'pipeline', name, how)
  if not told[line] and not self.quiet then
    told[line] = true
    io.stderr:write('craft: note: ', line, '\n')
  end
  return sched, name
end

-- The KL hook of generate{kl = true}: mean((eps_lora - eps_base)^2) of one UNet evaluation (both
-- classifier-free guidance halves), the base prediction taken with every LoRA adapter at scale 0
-- and without a graph (DRaFT+'s penalty on drifting from the starting model).
function M.lora_kl(unet, input, t, context, out)
  core.want('pipeline.lora_kl', 'unet', unet, 'table')
  core.want('pipeline.lora_kl', 'input', input, 'tensor')
  core.want('pipeline.lora_kl', 'out', out, 'tensor')
  local base = A.no_grad(require('craft.models.lora').with_scale, unet, 0, unet, input, t, context)
  return (out - base):square():mean()
end

-- generate{prompt=, negative_prompt=, prompt_embeds=, negative_prompt_embeds=, steps=50, cfg=7.5,
--   seed=0, noise_offset=0, height=, width=, latents=, eta=0, grad_steps=0, kl=false, decode=true,
--   checkpoint_vae=false, out=, sampler=, sampler_config=, scheduler=}
--   -> images [B,3,H,W] in [0,1] (nil with decode = false), latents,
--      {sampler = class name, timesteps = {...}, kl = tensor or nil}
-- The one sampler of craft: generation and every trainer that samples (CRAFT, DPO's pairs) run it.
-- The sampler: see Pipeline:sampler. Step i of a stochastic sampler (DDIM with eta > 0, DDPM,
-- Euler ancestral) draws its noise from craft.randn with (seed + i, offset 1); the initial
-- latents, unless given, from (seed, offset 0). noise_offset = k shifts both by k elements: a
-- batch that is images j..j+n-1 of a larger one (a rank's shard, craft.dist) passes (j - 1) times
-- one latent's size and draws exactly the noise those images get in the whole batch.
-- The gradient window (DRaFT-K): grad_steps = K keeps the graph through the last K model
-- evaluations and the decode; the earlier steps run without one and their result is detached, so a
-- loss on the images reaches the weights through those K steps only.
-- kl = true (or a function(unet, input, t, context, out) -> scalar tensor): a penalty evaluated at
-- every model evaluation that carries a graph, averaged over them (info.kl); true is M.lora_kl.
-- checkpoint_vae = true recomputes the decoder's activations in backward instead of keeping them (block
-- by block when the VAE checkpoints its blocks, as craft's AutoencoderKL does).
-- device = 'cl:0': where the latents and noise are made; it must be the UNet's (the default),
-- which is where every step runs (move a pipeline with pipe:to(device)).
-- precision = 'bf16' | 'bf16-mixed' | 'fp16' | 'fp32': what the prompt encoding, the steps run
-- without a graph and a decode without a graph compute their matrix products in
-- (craft.set_precision; default: the current setting); steps inside the gradient window and a
-- decode with a graph run in fp32, except under 'bf16-mixed' (mixed-precision training: bf16
-- products there too, fp32 weight gradients).
function Pipeline:generate(o)
  o = o or {}
  local dev = self:device()
  if o.device ~= nil and require('craft.device').name(require('craft.device').code(o.device)) ~= dev then
    argerror(('generate: device = %s, but the pipeline is on %s (move it with pipe:to(%q))'):format(
      tostring(o.device), dev, tostring(o.device)))
  end
  return require('craft.device').scope(dev, self._generate, self, o)
end
function Pipeline:_generate(o)
  A.precision_code('generate', o.precision, true)   -- an unknown name fails before any work
  local prec = o.precision
  local function at(p, fn, ...) return A.with_precision(p, fn, ...) end
  local mixed = (prec or A.precision()) == 'bf16-mixed'
  local window_prec = prec and (mixed and prec or 'fp32')   -- the gradient window's
  local steps, cfg, seed = o.steps or 50, o.cfg or 7.5, o.seed or 0
  local sched, sampler_name = self:sampler(o)
  if (o.eta or 0) > 0 and sampler_name ~= 'DDIMScheduler' then
    argerror(('generate: eta = %s is DDIM\'s; %s has no eta'):format(tostring(o.eta), sampler_name))
  end
  core.want('generate', 'kl', o.kl, 'boolean|function', true)
  local guided = cfg > 1
  local cond = o.prompt_embeds
  if not cond then
    if not o.prompt then argerror('generate: give prompt or prompt_embeds') end
    cond = at(prec, self.encode_prompt, self, as_list(o.prompt))
  end
  local b = cond:size(1)
  local uncond
  if guided then
    uncond = o.negative_prompt_embeds
      or at(prec, self.encode_prompt, self, as_list(o.negative_prompt or '', b))
    if uncond:size(1) ~= b then
      argerror(('generate: %d negative embeddings for %d prompts'):format(uncond:size(1), b))
    end
  end
  local f = self:vae_scale_factor()
  local ss = self.unet.config.sample_size or 64
  local sh, sw = ss, ss
  if type(ss) == 'table' then sh, sw = ss[1], ss[2] end
  local hgt, wid = o.height or sh * f, o.width or sw * f
  if hgt % f ~= 0 or wid % f ~= 0 then
    argerror(('generate: height and width must be multiples of %d'):format(f))
  end
  local lc = self.unet.config.in_channels or 4
  local noff = o.noise_offset or 0
  local latents = o.latents or T.randn({ b, lc, hgt / f, wid / f }, { seed = seed, offset = noff })
  local context = guided and F.cat({ uncond, cond }, 1) or cond
  -- after set_timesteps: Euler's initial sigma is the first inference step's
  local ts = sched:set_timesteps(steps)
  latents = latents * sched.init_noise_sigma
  local K = math.min(o.grad_steps or 0, #ts)
  local kl = o.kl == true and M.lora_kl or o.kl or nil
  local kl_sum, kl_n = nil, 0

  local function denoise(i, t, x)
    local input = sched:scale_model_input(guided and F.cat({ x, x }, 1) or x, t)
    local out = self.unet(input, t, context)
    if kl and A.is_grad_enabled() then
      local d = kl(self.unet, input, t, context, out)
      kl_sum, kl_n = kl_sum and kl_sum + d or d, kl_n + 1
    end
    local eps = out
    if guided then
      local u, c = out:narrow(1, 1, b), out:narrow(1, b + 1, b)
      eps = u + (c - u) * cfg
    end
    -- a stochastic step (DDIM eta > 0, DDPM, Euler ancestral) draws fresh noise from the seed
    -- and the step index
    return sched:step(eps, t, x, { eta = o.eta, seed = seed + i, offset = 1 + noff }).prev_sample
  end
  for i, t in ipairs(ts) do
    if i <= #ts - K then
      latents = at(prec, A.no_grad, denoise, i, t, latents)
      if i == #ts - K then
        latents = latents:detach()   -- the gradient stops here
        -- the window computes in fp32: the bf16 copies of the weights the steps before it used
        -- would sit beside its activations (1.7 GB for SD 1.5's UNet); the next step makes them again
        -- (under 'bf16-mixed' the window uses them)
        if A.is_grad_enabled() and (prec or A.precision()) ~= 'fp32' and not mixed then
          A.clear_precision_cache()
        end
      end
    else
      latents = at(window_prec, denoise, i, t, latents)
    end
  end
  local info = { sampler = sampler_name, timesteps = ts, kl = kl_sum and kl_sum * (1 / kl_n) or nil }
  if o.decode == false then return nil, latents, info end
  local function decode(z)
    local img = self.vae:decode(z * (1 / self.vae.scaling_factor))
    return (img * 0.5 + 0.5):clamp(0, 1)
  end
  local images
  if K > 0 and A.is_grad_enabled() then
    images = at(window_prec, function()
      if not o.checkpoint_vae then return decode(latents) end
      -- a VAE that checkpoints its own blocks recomputes one block at a time in backward: the
      -- same work as recomputing the whole decode, but only one block's activations alive at
      -- once (an SD 1.5 decode at 512 px keeps several GB otherwise)
      if self.vae.gradient_checkpointing ~= nil then
        local saved = self.vae.gradient_checkpointing
        self.vae.gradient_checkpointing = true
        local ok, r = pcall(decode, latents)
        self.vae.gradient_checkpointing = saved
        if not ok then error(r, 0) end
        return r
      end
      return A.checkpoint(decode, latents)
    end)
  else
    images = at(prec, A.no_grad, decode, latents)
  end
  if o.out then M.write_png(images, o.out) end
  return images, latents, info
end

return M
