-- craft.train.craft: CRAFT reward finetuning (METHOD.md, "CRAFT finetuning"), the DRaFT-K
-- family. LoRA adapters on the UNet's attention projections, everything else frozen; each step
-- samples images with DDIM and classifier-free guidance from seeded noise, keeps the graph only
-- through the last K denoising steps and the VAE decode, and ascends the reward (the recipe's
-- weighting of the standardised CAS dimensions, or any differentiable callable).
--
--   local train = require 'craft.train.craft'
--   local res = train.train(pipe, {prompts = {melanoma = {...}, nevus = {...}}, cas = cas,
--     reward = {weights = {prompt = 1, checklist = 1, probe = 1, fidelity = 0}, cap = 0.5},
--     out = 'runs/craft'})                  -- reward: a craft.cas.reward_spec (or its fields)
--   res.log[i].reward, res.log[i].cas_checklist, ...; files: out/checkpoint.safetensors,
--   out/log.csv, out/lora.safetensors (peft layout, diffusers' load_lora_weights reads it)
local T = require 'craft.tensor'
local A = require 'craft.autograd'
local F = require 'craft.functional'
local argerror = require('craft.core').argerror
local common = require 'craft.train.common'
local RS = require 'craft.cas.reward_spec'

local M = {}

-- Defaults at the paper's scale (METHOD.md where it names one; "choice" where it leaves it open).
M.DEFAULTS = {
  prompts = false,            -- {class -> {enriched prompts}} (required)
  classes = false,            -- label order; default: cas.classes, else the sorted prompt keys
  negative_prompt = '',       -- the unconditional side of classifier-free guidance
  lora_rank = 16,             -- METHOD: LoRA rank 16 (old name: rank)
  alpha = false,              -- LoRA alpha; default = lora_rank (scale 1)
  lora_targets = false,       -- Lua patterns of module names; default: to_q, to_k, to_v, to_out.0
  lora_convs = false,         -- METHOD: "optionally convolutions"
  steps = 50,                 -- METHOD: DDIM, 50 steps
  cfg = 7.5,                  -- guidance scale (choice: Stable Diffusion's usual 7.5)
  grad_steps = 1,             -- K of DRaFT-K (METHOD: K = 1)
  eta = 0,                    -- DDIM eta (0: deterministic given the initial noise)
  height = false, width = false, -- default: the UNet's sample_size times the VAE factor
  reward = false,             -- a reward spec over `cas` (craft.cas.reward_spec, or a table of its fields:
                              -- weights, cap, transform, scale = 'start' | {dim -> n}, scale_images);
                              -- default: the spec {} (the CAS recipe's reward weights and cap). Or any
                              -- differentiable
                              -- function(images [N,3,H,W] in [0,1], labels i64 [N]) -> tensor [N]
  cas = false,                -- a calibrated craft.cas object: reward = cas:reward(images, labels, spec)
  reward_weight = 1,          -- weight of the reward in the loss; 0 is the control "CRAFT (reward 0)": the
                              -- same sampling, KL penalty and real-image loss without the reward (nothing
                              -- decoded)
  reward_augment = false,     -- {shift = px, noise = sd, blur = sigma}: the reward sees each image shifted by
                              -- up to `shift` pixels (replicate padding), with Gaussian noise added (a fresh
                              -- draw per step) and blurred, so the gradient cannot lean on pixel-exact
                              -- patterns of the reward models (choice)
  log_dims = true,            -- with cas: log the mean z-score of every calibrated dimension per step
  kl_weight = 0,              -- DRaFT+-style penalty on (eps_lora - eps_base)^2 (METHOD: optional)
  real_diffusion_weight = 0,  -- weight of the diffusion loss on real images (METHOD: optional)
  data = false,               -- real images {images, labels, classes} for real_diffusion_weight
  checkpoint_vae = true,      -- recompute the VAE decoder in backward (METHOD: memory)
  lr = 1e-4,                  -- AdamW lr (choice)
  batch_size = 4,             -- prompts per step (choice)
  max_steps = 1000,           -- (choice)
  checkpoint_every = 100,
}
-- The built-in tiny models (8x8 latents): fewer denoising steps, a smaller adapter, short runs, and
-- no recomputation in backward (their activations are small; recomputing costs a third of a step).
M.PRESETS = { full = {},
  tiny = { lora_rank = 4, steps = 10, batch_size = 2, max_steps = 100, checkpoint_every = 25,
  gradient_checkpointing = false, checkpoint_vae = false } }

-- Class order and prompt lists, checked.
local function classes_of(r)
  local cls = r.classes or (r.cas and r.cas.classes)
  if not cls then
    cls = {}
    for k in pairs(r.prompts) do cls[#cls + 1] = k end
    table.sort(cls)
  end
  for _, c in ipairs(cls) do
    local ps = r.prompts[c]
    if type(ps) ~= 'table' or #ps == 0 then
      argerror(('craft: no prompts for class %q (recipe.prompts)'):format(tostring(c)))
    end
  end
  return cls
end

-- The recipe's old reward fields, each now a field of the reward spec.
M.OLD_REWARD_FIELDS = { reward_weights = 'weights', reward_cap = 'cap', reward_transform = 'transform',
  reward_scale = 'scale', reward_scale_images = 'scale_images' }
local OLD_NAMES = {}
for old in pairs(M.OLD_REWARD_FIELDS) do OLD_NAMES[#OLD_NAMES + 1] = old end
table.sort(OLD_NAMES)

-- reward_spec_of(r) -> the reward spec of a recipe: r.reward (a spec or a table of its fields),
-- with any old field (reward_cap, ...) laid over it; nil when r.reward is a function or a CAS.
function M.reward_spec_of(r, name)
  name = name or 'craft'
  local base = r.reward
  if type(base) == 'function' then return nil end
  if type(base) == 'table' and type(base.reward) == 'function' then base = nil end   -- a CAS given as reward
  if base and type(base) ~= 'table' then
    argerror(('%s: reward must be a reward spec (craft.cas.reward_spec or a table of its fields) or a '
      .. 'function, got %s')
      :format(name, type(base)))
  end
  local fields = {}
  for k, v in pairs(base or {}) do fields[k] = v end
  for _, old in ipairs(OLD_NAMES) do
    if r[old] ~= nil then
      local new = M.OLD_REWARD_FIELDS[old]
      common.deprecated(name, old, 'reward = {' .. new .. ' = ...}')
      if old == 'reward_cap' and r[old] == 'cas' then fields.cap = nil   -- the CAS recipe's
      else fields[new] = r[old] end
    end
  end
  return RS.new(fields)
end

-- reward_of(r) -> function(images, labels) -> tensor [N], the CAS (or nil), the spec (or nil)
local function reward_of(r)
  if type(r.reward) == 'function' then return r.reward end
  local cas = (type(r.reward) == 'table' and type(r.reward.reward) == 'function') and r.reward or r.cas
  if not (cas and cas.reward) then
    argerror('craft: give reward = function(images, labels) -> tensor [N], or cas = a calibrated craft.cas '
      .. 'object '
      .. '(reward then a reward spec over it, or none)')
  end
  local spec = M.reward_spec_of(r) or RS.new()
  local resolved = spec
  return function(images, labels) return cas:reward(images, labels, resolved) end, cas, spec,
    function(scales) resolved = spec:with { scale = scales } end
end

-- The spread of every reward dimension's z-score on the starting model's images (its adapters at
-- scale 0, so a resumed run measures the same): IQR / 1.349, at least 1.
local function start_scales(pipe, r, cas, classes, encode, negs, n_images)
  local stats = require 'craft.stats'
  local g = common.rng(r.seed, 0, 8)
  local z = {}
  local n, B = n_images, r.batch_size
  for s = 1, n, B do
    local b = math.min(B, n - s + 1)
    local prompts, ys = M.pick(r, classes, g, b)
    local noise = T.randn(common.latent_shape(pipe, b, r), { seed = g.seed() })
    local nb = {}
    for i = 1, b do nb[i] = negs[i] end
    local images = A.no_grad(common.with_lora_scale, pipe.unet, 0, pipe.generate, pipe,
      { prompt_embeds = encode(prompts), negative_prompt_embeds = r.cfg > 1 and encode(nb) or nil,
      cfg = r.cfg, steps = r.steps, latents = noise, eta = r.eta, seed = g.seed() })
    local raw = cas:raw(images, ys, cas.calib.dims)
    for _, d in ipairs(cas.calib.dims) do
      z[d] = z[d] or {}
      for i, y in ipairs(ys) do
        z[d][#z[d] + 1] = (raw[d][i] - cas.calib.mu[d][y + 1]) / cas.calib.sd[d][y + 1]
      end
    end
  end
  local scales = {}
  for d, v in pairs(z) do
    scales[d] = math.max(1, (stats.quantile(v, 0.75) - stats.quantile(v, 0.25)) / 1.349)
  end
  return scales
end

-- shift each image by up to `shift` pixels (replicate padding) and add Gaussian noise: a fresh
-- draw from the step's generator; differentiable in the images. sh: the rank's block of the batch
-- (common.shard): the shifts and the noise are drawn for the whole batch, the block's taken.
local function augment(images, o, g, sh)
  local n, S = images:size(1), images:size(3)
  local k = o.shift or 0
  local x = images
  if k > 0 then
    local p = F.pad(images, { k, k, k, k }, 'replicate')
    local shifts = {}
    for i = 1, sh.B do shifts[i] = { g.int(2 * k + 1) - 1, g.int(2 * k + 1) - 1 } end
    shifts = common.slice(shifts, sh)
    local parts = {}
    for i = 1, n do
      local dx, dy = shifts[i][1], shifts[i][2]
      parts[i] = p:narrow(1, i, 1):narrow(3, dy + 1, S):narrow(4, dx + 1, S)
    end
    x = F.cat(parts, 1)
  end
  if (o.noise or 0) > 0 then
    local shape = x.shape
    shape[1] = sh.B
    x = (x + common.noise_of(shape, g.seed(), sh) * o.noise):clamp(0, 1)
  end
  if (o.blur or 0) > 0 then
    -- a Gaussian blur (sigma o.blur pixels, replicate edges): the reward's gradient then reaches
    -- the image only through its low frequencies, where the findings live (a heart's outline, a
    -- consolidation), not through pixel-level patterns
    local r = math.max(1, math.ceil(2 * o.blur))
    local k, sum = {}, 0
    for i = -r, r do k[#k + 1] = math.exp(-i * i / (2 * o.blur * o.blur)); sum = sum + k[#k] end
    for i = 1, #k do k[i] = k[i] / sum end
    local C = x:size(2)
    local kh = T.tensor(k):reshape(1, 1, 1, #k):expand(C, 1, 1, #k):contiguous()
    local kv = T.tensor(k):reshape(1, 1, #k, 1):expand(C, 1, #k, 1):contiguous()
    x = F.conv2d(F.pad(x, { r, r, 0, 0 }, 'replicate'), kh, nil, { groups = C })
    x = F.conv2d(F.pad(x, { 0, 0, r, r }, 'replicate'), kv, nil, { groups = C })
  end
  return x
end

-- Mean z-score of each calibrated CAS dimension over the batch (metric mode: no graph); over a
-- rank's block of B, its part of the batch's mean.
local function log_dims(cas, images, ys, row, B)
  local c = cas.calib
  if not c then return end
  local raw = cas:raw(images, ys, c.dims)
  for _, d in ipairs(c.dims) do
    local s = 0
    for i, y in ipairs(ys) do s = s + (raw[d][i] - c.mu[d][y + 1]) / c.sd[d][y + 1] end
    row['cas_' .. d] = s / (B or #ys)
  end
end

-- pick(r, classes, g, n) -> n prompts and their 0-based labels, uniform over classes then prompts
function M.pick(r, classes, g, n)
  local prompts, ys = {}, {}
  for i = 1, n do
    local c = g.int(#classes)
    local ps = r.prompts[classes[c]]
    prompts[i], ys[i] = ps[g.int(#ps)], c - 1
  end
  return prompts, ys
end

-- train(pipe, recipe) -> {log = rows, step =, checkpoint =, out =, lora = adapted module names}
local function train(pipe, recipe)
  local r = common.options('craft', common.renamed('craft', recipe, { rank = 'lora_rank' }), M.DEFAULTS,
    M.PRESETS, OLD_NAMES)
  if type(r.prompts) ~= 'table' then argerror('craft: recipe.prompts = {class -> {prompts}} is required') end
  if r.grad_steps < 1 or r.grad_steps > r.steps then
    argerror(('craft: grad_steps (K) is %d, must be 1 .. steps (%d)'):format(r.grad_steps, r.steps))
  end
  local classes = classes_of(r)
  local reward, reward_cas, spec, set_scales
  if r.reward_weight ~= 0 then reward, reward_cas, spec, set_scales = reward_of(r) end
  if spec and spec.scale == 'start' and not (reward_cas and reward_cas.calib) then
    argerror('craft: the reward spec\'s scale = \'start\' needs cas = a calibrated craft.cas object')
  end
  common.freeze(pipe)
  local names, params = common.attach_lora(pipe, r)
  local prev_gc = pipe.unet.gradient_checkpointing
  pipe.unet.gradient_checkpointing = r.gradient_checkpointing
  local encode = common.prompt_encoder(pipe)
  local B = r.batch_size
  local negs = {}
  for i = 1, B do negs[i] = r.negative_prompt end
  local real
  if r.real_diffusion_weight ~= 0 then real = common.real_data(pipe, r.data, r) end
  if spec and spec.scale == 'start' then
    local scales = start_scales(pipe, r, reward_cas, classes, encode, negs, spec.scale_images)
    set_scales(scales)
    if not r.quiet then
      local parts = {}
      for _, d in ipairs(reward_cas.calib.dims) do
        parts[#parts + 1] = ('%s %.3g'):format(d, scales[d] or 1)
      end
      io.stderr:write('craft: reward scales on the starting model\'s images: ' .. table.concat(parts, ', ')
        .. '\n')
    end
  end

  -- each rank samples its block of the batch (common.shard); every logged value is its part of the
  -- batch's mean, summed over ranks at the end of the step
  local sh = common.shard(B, 'craft')
  local nb = common.slice(negs, sh)
  local function step(s, pos)
    local g = common.rng(r.seed, s, 1)
    local prompts, ys = M.pick(r, classes, g, B)
    prompts, ys = common.slice(prompts, sh), common.slice(ys, sh)
    local noise = common.noise_of(common.latent_shape(pipe, B, r), g.seed(), sh)
    local per = noise:numel() / sh.n
    local images, _, info = pipe:generate { prompt_embeds = encode(prompts),
      negative_prompt_embeds = r.cfg > 1 and encode(nb) or nil, cfg = r.cfg, steps = r.steps,
      latents = noise, grad_steps = r.grad_steps, kl = r.kl_weight ~= 0, eta = r.eta, seed = g.seed(),
      noise_offset = (sh.first - 1) * per, checkpoint_vae = r.checkpoint_vae, decode = reward ~= nil }
    local row, loss = {}, nil
    if reward then
      local seen = r.reward_augment and augment(images, r.reward_augment, common.rng(r.seed, s, 9), sh)
        or images
      local R = common.part(reward(seen, T.tensor(ys, { dtype = 'i64' })):mean(), sh)
      row.reward = R:item()
      loss = R * -r.reward_weight
    end
    if info.kl then
      local kl = common.part(info.kl, sh)
      row.kl = kl:item()
      loss = loss and loss + kl * r.kl_weight or kl * r.kl_weight
    end
    if real then
      local gr = common.rng(r.seed, s, 4)
      local x0, rys, ep, ix = real.batch(s, gr, sh)
      local rp = {}
      for i, y in ipairs(rys) do
        local ps = r.prompts[real.classes[y + 1]]
        if not ps then
          error(('craft: no prompts for the real images of class %q'):format(tostring(real.classes[y + 1])),
            0)
        end
        rp[i] = ps[gr.int(#ps)]
      end
      local dl = common.diffusion_loss(pipe, x0, encode(common.slice(rp, sh)), gr, sh)
      row.real_diffusion = dl:item()
      loss = loss and loss + dl * r.real_diffusion_weight or dl * r.real_diffusion_weight
      pos.epoch, pos.index = ep, ix
    end
    if not loss then
      argerror('craft: reward_weight 0 with no KL penalty and no real-image loss leaves nothing to train')
    end
    -- (with several ranks always: every rank must log the same fields to sum them)
    if reward and r.cas and r.log_dims and (sh.on or row.reward == row.reward) then
      log_dims(r.cas, images:detach(), ys, row, B)
    end
    return loss, common.reduce_row(row, sh)
  end

  return common.run_lora(pipe, prev_gc, names, { name = 'craft', recipe = r, params = params, step = step })
end
M.train = common.on_device(train)   -- recipe.device: train there (craft.train.common)

return M
