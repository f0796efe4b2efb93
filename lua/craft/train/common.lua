-- craft.train.common: what the trainers share. Recipe options, seeds derived from (recipe seed,
-- step) so that a resumed run draws exactly what an uninterrupted one would, the DDIM sampler
-- with gradient stopping (DRaFT-K), the diffusion loss on real images, atomic checkpoints with
-- resume, the per-step CSV log, and the training loop that ties them together.
local argerror = require('craft.core').argerror
local io_ = require 'craft.io'
local T = require 'craft.tensor'
local A = require 'craft.autograd'
local F = require 'craft.functional'
local optim = require 'craft.optim'
local data = require 'craft.data'
local lora = require 'craft.models.lora'
local progress = require 'craft.progress'
local runtime = require 'craft.runtime'
local dist = require 'craft.dist'

local M = {}

---------------------------------------------------------------- recipes
-- Fields every trainer understands (see docs/trainers.md); their defaults live in each trainer's
-- DEFAULTS so that one table documents a trainer.
M.COMMON = { seed = 0, max_steps = 100, batch_size = 1, lr = 1e-4, weight_decay = 1e-2,
  betas = { 0.9, 0.999 },
  adam_eps = 1e-8, max_grad_norm = 1.0, lr_schedule = false, out = false, checkpoint_every = 50,
  resume = false,
  stop_at = false, numeric_guard = false, gradient_checkpointing = true, quiet = false, device = false }

-- options(name, recipe, defaults, presets, optional) -> resolved recipe. recipe.preset picks a
-- preset ('full' = METHOD.md scale, 'tiny' = the built-in tiny models) layered over defaults; an
-- unknown field is an error (a typo must not silently fall back to a default).
function M.options(name, recipe, defaults, presets, optional)
  recipe = recipe or {}
  local r, known = {}, {}
  for k, v in pairs(M.COMMON) do r[k] = v; known[k] = true end
  for k, v in pairs(defaults) do r[k] = v; known[k] = true end
  for _, k in ipairs(optional or {}) do known[k] = true end
  known.preset = true
  local preset = recipe.preset or 'full'
  if presets then
    local p = presets[preset]
    if not p then argerror(('%s: unknown preset %q (full, tiny)'):format(name, tostring(preset))) end
    for k, v in pairs(p) do r[k] = v end
  end
  for k, v in pairs(recipe) do
    if not known[k] then
      local list = {}
      for kk in pairs(known) do list[#list + 1] = kk end
      table.sort(list)
      argerror(('%s: unknown recipe field %q (known: %s)'):format(name, tostring(k),
        table.concat(list, ', ')))
    end
    r[k] = v
  end
  r.preset = preset
  return r
end

-- on_device(train) -> train(pipe, recipe) honouring recipe.device ('cl:0', ...): the pipeline is
-- moved there and the whole run (adapters, batches, noise, optimiser state) happens with it as
-- the current device. Without it the run follows the current device (--device).
function M.on_device(train)
  return function(pipe, recipe)
    local dev = type(recipe) == 'table' and recipe.device or nil
    if dev then
      local devices = require 'craft.device'
      local name = devices.name(devices.code(dev))
      if type(pipe) == 'table' and type(pipe.to) == 'function' and type(pipe.device) == 'function'
        and pipe:device() ~= name then
        pipe:to(name)
      end
      return devices.scope(name, train, pipe, recipe)
    end
    return train(pipe, recipe)
  end
end

-- Old recipe field names still understood, each said once per process (stderr).
local told = {}
function M.deprecated(name, old, new)
  local line = ('%s: recipe field %s is %s now (the old name still works)'):format(name, old, new)
  if not told[line] then
    told[line] = true
    io.stderr:write('craft: note: ', line, '\n')
  end
end

-- renamed(name, recipe, {old = new, ...}) -> a copy of the recipe with the old names replaced (both
-- names given is an error)
function M.renamed(name, recipe, map)
  if recipe == nil then return nil end
  local r = {}
  for k, v in pairs(recipe) do r[k] = v end
  for old, new in pairs(map) do
    if r[old] ~= nil then
      if r[new] ~= nil then argerror(('%s: give %s or its old name %s, not both'):format(name, new, old)) end
      M.deprecated(name, old, new)
      r[new], r[old] = r[old], nil
    end
  end
  return r
end

---------------------------------------------------------------- seeds
local philox = runtime.philox
-- A 52-bit seed from (seed, step, stream) through Philox: exact in a double, a valid uint64.
function M.derive(seed, step, stream)
  local w0, w1 = philox(seed, (stream or 0) * 2 ^ 32 + step)
  return w0 + (w1 % 2 ^ 20) * 2 ^ 32
end
-- rng(seed, step, stream): a small generator for one step: g.int(n) in 1..n, g.seed() a seed.
function M.rng(seed, step, stream)
  local key, k = M.derive(seed, step, stream), 0
  local g = {}
  function g.int(n)
    k = k + 1
    return philox(key, k) % n + 1
  end
  function g.seed()
    k = k + 1
    local w0, w1 = philox(key, k)
    return w0 + (w1 % 2 ^ 20) * 2 ^ 32
  end
  return g
end

---------------------------------------------------------------- data-parallel steps
-- shard(B, name) -> this rank's block of a global batch of B samples (craft.dist): {first, n, B,
-- share = n / B, on = more than one rank}. A step draws everything a sample needs for all B
-- samples, in the same order on every rank (prompts, timesteps, the noise's seeds), and computes
-- only its block; Philox noise for samples first..first+n-1 is drawn at their offset in the whole
-- batch (noise_of). So every sample gets the same noise whatever the number of ranks. The block's
-- mean loss times `share` is this rank's part of the batch mean: the parts' gradients, summed over
-- ranks (craft.dist.allreduce_grads, in run), are the whole batch's.
function M.shard(B, name)
  local P = dist.size()
  if P == 1 then return { first = 1, n = B, B = B, share = 1, on = false } end
  if B < P then
    argerror(('%s: a batch of %d cannot be split across %d ranks (batch_size must be at least the number '
      .. 'of ranks)'):format(name or 'train', B, P))
  end
  local first, n = dist.shard(B)
  return { first = first, n = n, B = B, share = n / B, on = true }
end

-- slice(list, sh) -> the block's entries of a per-sample list
function M.slice(list, sh)
  if not sh.on then return list end
  local r = {}
  for j = sh.first, sh.first + sh.n - 1 do r[#r + 1] = list[j] end
  return r
end

-- noise_of(shape, seed, sh) -> the block's rows of randn(shape with B rows, {seed = seed})
function M.noise_of(shape, seed, sh)
  if not sh.on then return T.randn(shape, { seed = seed }) end
  local s, per = {}, 1
  for i, v in ipairs(shape) do s[i] = v; if i > 1 then per = per * v end end
  s[1] = sh.n
  return T.randn(s, { seed = seed, offset = (sh.first - 1) * per })
end

-- part(x, sh) -> a block's mean (tensor or number) as its part of the batch mean
function M.part(x, sh)
  if not sh.on then return x end
  return x * sh.share
end

-- reduce_row(row, sh, keys) -> row with its fields `keys` (default: every number) summed over
-- ranks: each rank logs its part of a batch mean (M.part), the sum is the batch's.
function M.reduce_row(row, sh, keys)
  if not sh.on then return row end
  local names = {}
  if keys then
    for _, k in ipairs(keys) do if type(row[k]) == 'number' then names[#names + 1] = k end end
  else
    for k, v in pairs(row) do if type(v) == 'number' then names[#names + 1] = k end end
  end
  table.sort(names)
  local v = {}
  for i, k in ipairs(names) do v[i] = row[k] end
  v = dist.allreduce(v)
  for i, k in ipairs(names) do row[k] = v[i] end
  return row
end

---------------------------------------------------------------- models
-- Freezes every component; trainers then switch on what they train.
function M.freeze(pipe)
  for _, k in ipairs { 'unet', 'vae', 'text_encoder' } do
    if pipe[k] and pipe[k].requires_grad_ then pipe[k]:requires_grad_(false) end
  end
end

-- with_lora_scale(model, s, fn, ...): craft.models.lora.with_scale (fn(...) with every adapter at
-- scale s; 0 = the frozen base model)
M.with_lora_scale = lora.with_scale

-- attach_lora(pipe, r): fresh adapters (rank r.lora_rank, alpha r.alpha or rank, on r.lora_targets or
-- the attention projections, plus convolutions with r.lora_convs) seeded by r.seed. Adapters
-- already on the UNet (an earlier trainer's) are merged into its base weights first, so they
-- become part of the frozen starting model (DPO's reference, the KL penalty's base).
function M.attach_lora(pipe, r)
  if #lora.adapted(pipe.unet) > 0 then lora.merge(pipe.unet) end
  local names = lora.attach(pipe.unet,
    { rank = r.lora_rank, alpha = r.alpha or r.lora_rank, targets = r.lora_targets or nil,
    convs = r.lora_convs, seed = r.seed })
  return names, lora.parameters(pipe.unet)
end

-- Prompt embeddings for a list of strings, no grad, cached per string (the text encoder is
-- frozen in CRAFT, LoRA and DPO). pipe:encode_prompt is what a textual inversion installs over.
function M.prompt_encoder(pipe)
  local cache = {}
  return function(prompts)
    local rows = {}
    for i, p in ipairs(prompts) do
      if not cache[p] then cache[p] = A.no_grad(function() return pipe:encode_prompt({ p }):detach() end) end
      rows[i] = cache[p]
    end
    return F.cat(rows, 1)
  end
end

-- The latent shape of a batch at the recipe's resolution (default: the UNet's sample size).
function M.latent_shape(pipe, b, r)
  local f = pipe:vae_scale_factor()
  local s = pipe.unet.config.sample_size or 64
  local h, w = r.height or s * f, r.width or s * f
  if h % f ~= 0 or w % f ~= 0 then argerror(('height and width must be multiples of %d'):format(f)) end
  return { b, pipe.unet.config.in_channels or 4, h / f, w / f }
end

---------------------------------------------------------------- sampling
-- sample(pipe, {cond=, uncond=, cfg=7.5, steps=50, noise=, grad_steps=0, kl=false, eta=0, seed=0,
--   checkpoint_vae=true, decode=true, precision=nil}) -> images [B, 3, H, W] in [0, 1] (nil with
--   decode = false), final latents, {kl = tensor or nil}
-- The trainers' names for pipe:generate (craft.models.pipeline, the one sampler): cond / uncond
-- are the prompt embeddings (no guidance without uncond), noise the initial latents, and the VAE
-- decode is recomputed in backward unless checkpoint_vae = false. grad_steps = K is DRaFT-K's
-- window; with kl each grad-carrying step adds the LoRA-vs-base penalty (pipeline.lora_kl).
function M.sample(pipe, o)
  local cfg = o.cfg or 7.5
  local guided = cfg > 1 and o.uncond ~= nil
  local images, x, info = pipe:generate { prompt_embeds = o.cond, negative_prompt_embeds = guided
    and o.uncond or nil,
    cfg = guided and cfg or 1, steps = o.steps or 50, latents = o.noise, grad_steps = o.grad_steps,
    kl = o.kl or nil,
    eta = o.eta, seed = o.seed or 0, checkpoint_vae = o.checkpoint_vae ~= false, decode = o.decode,
    precision = o.precision }
  return images, x, { kl = info.kl }
end

---------------------------------------------------------------- real images
-- real_data(pipe, ds, r): the VAE posterior (mean, logvar) of every real image, computed once
-- under no_grad (the encoder is frozen, so this equals encoding each step; a fresh latent
-- sample is drawn per step). Images are resized to the recipe resolution and greyscale ones
-- repeated to 3 channels. batch(step, g) -> scaled latents x0 [B, 4, h, w], labels (0-based
-- list), and the data position (epoch, index) of the batch's last image.
function M.real_data(pipe, ds, r)
  if not (ds and ds.images and ds.labels) then
    argerror('real images: give data = {images = [N,C,H,W] in [0,1], labels = i64 [N], classes = {...}}')
  end
  local shape = M.latent_shape(pipe, 1, r)
  local f = pipe:vae_scale_factor()
  local x = ds.images
  if x:size(3) ~= shape[3] * f or x:size(4) ~= shape[4] * f then
    if shape[3] ~= shape[4] then argerror('real images: non-square resolutions are not supported') end
    x = data.resize(x:contiguous(), shape[3] * f)
  end
  if x:size(2) == 1 then x = x:expand(x:size(1), 3, x:size(3), x:size(4)) end
  local n = x:size(1)
  local means, logvars = {}, {}
  A.no_grad(function()
    for s = 1, n, 16 do
      local m, lv = pipe.vae:encode(x:narrow(1, s, math.min(16, n - s + 1)) * 2 - 1)
      means[#means + 1], logvars[#logvars + 1] = m:contiguous(), lv:contiguous()
    end
  end)
  local mean, logvar = F.cat(means, 1), F.cat(logvars, 1)
  local labels, perms = ds.labels:flat(), {}
  local B = r.batch_size
  local D = { n = n, labels = labels, classes = ds.classes }
  -- The batch of a step is a function of the step alone: image g = (step-1)*B + j of the
  -- concatenated per-epoch permutations (the same order on resume, no loader state to save).
  function D.indices(step)
    local idx, ep, pos
    for j = 1, B do
      local gi = (step - 1) * B + j - 1
      ep, pos = math.floor(gi / n) + 1, gi % n + 1
      perms[ep] = perms[ep] or data.permutation(n, r.seed, 1000 + ep)
      idx = idx or {}
      idx[j] = perms[ep][pos]
    end
    return idx, ep, pos
  end
  -- sh (M.shard): the latents of the rank's block only; the labels are the whole batch's
  function D.batch(step, g, sh)
    local idx, ep, pos = D.indices(step)
    local seed = g.seed()
    local mine = sh and M.slice(idx, sh) or idx
    local m, lv = data.take(mean, mine), data.take(logvar, mine)
    local off = (sh and sh.on) and (sh.first - 1) * (m:numel() / #mine) or 0
    local z = pipe.vae:sample(m, lv, { seed = seed, offset = off }) * pipe.vae.scaling_factor
    local ys = {}
    for j, i in ipairs(idx) do ys[j] = labels[i] end
    return z, ys, ep, pos
  end
  return D
end

-- diffusion_loss(pipe, x0, context, g, sh) -> mse of the UNet's prediction against the scheduler's
-- target (epsilon or v by its prediction_type) at one uniform timestep per sample. With a shard
-- sh (M.shard), x0 and context are the rank's block and the result its part of the batch's mse.
function M.diffusion_loss(pipe, x0, context, g, sh)
  local sched = pipe.scheduler
  local n = sched.config.num_train_timesteps
  local ts = {}
  for i = 1, sh and sh.B or x0:size(1) do ts[i] = g.int(n) - 1 end
  local seed = g.seed()
  local noise
  if sh then
    ts = M.slice(ts, sh)
    local shape = x0.shape
    shape[1] = sh.B
    noise = M.noise_of(shape, seed, sh)
  else
    noise = T.randn(x0.shape, { seed = seed })
  end
  local pred = pipe.unet(sched:add_noise(x0, noise, ts), T.tensor(ts), context)
  local loss = F.mse_loss(pred, sched:target(x0, noise, ts))
  return sh and M.part(loss, sh) or loss
end

---------------------------------------------------------------- files
local function exists(p)
  local f = io.open(p, 'rb')
  if f then f:close(); return true end
  return false
end
M.exists = exists
function M.mkdir(dir) os.execute("mkdir -p '" .. dir:gsub("'", "'\\''") .. "'") end

-- write_csv(path, rows): every row a table of numbers/strings; columns: step first, then the
-- union of the other keys, sorted. Written to path.tmp and renamed, so a reader never sees half.
function M.write_csv(path, rows)
  local seen, cols = { step = true }, { 'step' }
  for _, row in ipairs(rows) do
    for k in pairs(row) do if not seen[k] then seen[k] = true; cols[#cols + 1] = k end end
  end
  table.sort(cols, function(a, b)
    if a == 'step' or b == 'step' then return a == 'step' and b ~= 'step' end return a < b
  end)
  local tmp = path .. '.tmp'
  local w = io_.csv_writer(tmp)
  local function put(values)
    local cells = {}
    for i = 1, #cols do
      local v = values[i]
      if v ~= nil and v ~= false then cells[i] = type(v) == 'number' and ('%.9g'):format(v) or tostring(v) end
    end
    w:row(cells, #cols)
  end
  put(cols)
  for _, row in ipairs(rows) do
    local v = {}
    for i, c in ipairs(cols) do v[i] = row[c] end
    put(v)
  end
  w:close()
  local ok, err = os.rename(tmp, path)
  if not ok then argerror('write_csv: ' .. tostring(err)) end
end

-- Checkpoint: ONE safetensors file (the C writer goes through path.tmp, fsync, rename, so the
-- file on disk is always a complete checkpoint). Tensors: "param.<name>" (trainable weights),
-- "exp_avg.<name>", "exp_avg_sq.<name>" (AdamW moments). Metadata: "craft_trainer", "state"
-- (JSON: step, optimiser step and lr, the global RNG's seed and offset, recipe seed, data
-- position) and "log" (JSON: the per-step log rows so far).
function M.save_checkpoint(path, name, params, opt, state, rows)
  local out = {}
  for _, np in ipairs(params) do out['param.' .. np[1]] = np[2]:detach() end
  for k, t in pairs(opt:state_dict()) do if T.is_tensor(t) then out[k] = t end end
  local st = {}
  for k, v in pairs(state) do st[k] = v end
  st.opt_step, st.lr, st.version = opt.step_count, opt.lr, 1
  st.rng_seed, st.rng_offset = T.rng.seed, T.rng.offset
  -- JSON has no NaN / Inf: a logged diagnostic (not the loss, which is checked) may be one
  local clean = io_.array()
  for i, row in ipairs(rows) do
    local c = {}
    for k, v in pairs(row) do
      c[k] = (type(v) == 'number' and (v ~= v or v == math.huge or v == -math.huge)) and tostring(v) or v
    end
    clean[i] = c
  end
  io_.save_safetensors(path, out, { craft_trainer = name, state = io_.encode_json(st),
    log = io_.encode_json(clean) })
end

-- load_checkpoint(path, name, params, opt) -> state table, log rows. Restores the weights, the
-- optimiser and the global RNG in place.
function M.load_checkpoint(path, name, params, opt)
  local sd, _, meta = io_.load_safetensors(path)
  if meta.craft_trainer ~= name then
    argerror(('%s: a checkpoint of trainer %s, not %s'):format(path, tostring(meta.craft_trainer), name))
  end
  local st = io_.decode_json(meta.state, path .. ' state')
  A.no_grad(function()
    for _, np in ipairs(params) do
      local t = sd['param.' .. np[1]]
      if not t then
        argerror(('%s: no weights for %s (a checkpoint of another recipe?)'):format(path, np[1]))
      end
      if table.concat(t.shape, 'x') ~= table.concat(np[2].shape, 'x') then
        argerror(('%s: %s has shape [%s] in the checkpoint but [%s] in the model'):format(path, np[1],
          table.concat(t.shape, ', '), table.concat(np[2].shape, ', ')))
      end
      np[2]:copy_(t)
    end
  end)
  local osd = { step = st.opt_step, lr = st.lr }
  for k, t in pairs(sd) do if k:match('^exp_avg') then osd[k] = t end end
  opt:load_state_dict(osd)
  T.rng.seed, T.rng.offset = st.rng_seed, st.rng_offset
  local rows = {}
  for i, row in ipairs(io_.decode_json(meta.log, path .. ' log')) do rows[i] = row end
  return st, rows
end

-- Reads only the step of a checkpoint (for tests and tools).
function M.checkpoint_step(path)
  local _, meta = io_.inspect(path)
  return io_.decode_json(meta.state).step
end

---------------------------------------------------------------- the loop
local function finite(v) return v == v and v ~= math.huge and v ~= -math.huge end

-- run{name=, recipe=r, params={{name, tensor}, ...}, step=function(s) -> loss, row,
--   export=function(dir) or nil, label=} -> {log = rows, step = last step, checkpoint = path, out = dir}
-- Each step: lr from the schedule, loss = step(s), a non-finite loss stops training with the
-- step named (the last good checkpoint stays), backward, global-norm clipping, AdamW. Every
-- checkpoint_every steps (and at the end) the checkpoint and the CSV log are written.
function M.run(spec)
  local r, name = spec.recipe, spec.name
  local params = spec.params
  local opt = optim.AdamW(params,
    { lr = r.lr, betas = r.betas, eps = r.adam_eps, weight_decay = r.weight_decay })
  local out = r.out or nil
  local ck = out and (out .. '/checkpoint.safetensors')
  local rows, start, last_ck = {}, 0, nil
  if out then M.mkdir(out) end
  if r.resume and not out then
    argerror(name .. ': resume = true needs out (the folder of the checkpoint)')
  end
  if r.resume and ck and exists(ck) then
    local st
    st, rows = M.load_checkpoint(ck, name, params, opt)
    if st.seed ~= r.seed then
      argerror(('%s: resume: the checkpoint was made with seed %s, the recipe has %s'):format(name,
        tostring(st.seed), tostring(r.seed)))
    end
    start, last_ck = st.step, st.step
    if not r.quiet and dist.is_root() then
      io.stderr:write(('%s: resumed from %s at step %d\n'):format(name, ck, start))
    end
  end
  local data_pos = {}
  local root = dist.is_root()
  local function save(s)
    if not ck then return end
    last_ck = s
    if not root then return end   -- one writer; every rank holds the same weights
    M.save_checkpoint(ck, name, params, opt, { step = s, seed = r.seed, data_epoch = data_pos.epoch or 0,
      data_index = data_pos.index or 0 }, rows)
    M.write_csv(out .. '/log.csv', rows)
  end
  local function stop(s, why)
    if ck and last_ck and root then M.write_csv(out .. '/log.csv', rows) end
    error(('%s: step %d: %s; training stopped. %s'):format(name, s, why,
      last_ck and ('The last good checkpoint is %s (step %d).'):format(ck, last_ck)
      or 'No checkpoint was written yet.'), 0)
  end
  local prev_guard = runtime.numeric_guard()
  if r.numeric_guard then runtime.set_numeric_guard(true) end
  local bar = progress(r.max_steps - start, spec.label or name)
  local loss_devices = {}   -- where each step's loss was computed: {['cl:0'] = steps}
  if r.quiet or not root then bar.enabled = false end
  local P = dist.size()
  local last = start
  local ok, err = pcall(function()
    for s = start + 1, r.max_steps do
      opt.lr = r.lr * (r.lr_schedule and r.lr_schedule(s) or 1)
      opt:zero_grad()
      local t0 = runtime.now()
      local okf, loss, row = pcall(spec.step, s, data_pos)
      if not okf then stop(s, tostring(loss)) end
      row = row or {}
      local lv = loss and loss:item()
      if loss then loss_devices[loss.device] = (loss_devices[loss.device] or 0) + 1 end
      local learns = loss and loss.requires_grad
      -- several ranks: each step returned its part of the batch's loss (M.part); the sum is the
      -- batch's, and the step learns when any rank's part carries a graph
      if P > 1 then
        local v = dist.allreduce({ lv or 0 / 0, learns and 1 or 0 })
        lv, learns = loss and v[1], v[2] > 0
      end
      if lv == nil then stop(s, 'the step returned no loss')
      elseif not finite(lv) then
        local extra = (row.reward and not finite(row.reward))
        and (' (reward ' .. tostring(row.reward) .. ')') or ''
        stop(s, ('the loss is %s%s'):format(tostring(lv), extra))
      end
      local gn = 0
      if learns then
        if loss.requires_grad then
          local okb, berr = pcall(loss.backward, loss)
          if not okb then stop(s, 'backward failed: ' .. tostring(berr)) end
        end
        dist.allreduce_grads(params)
        gn = r.max_grad_norm and optim.clip_grad_norm(params, r.max_grad_norm) or 0
        if not finite(gn) then stop(s, 'the gradient norm is ' .. tostring(gn)) end
        opt:step()
      else
        row.skipped = 1   -- nothing to learn from this step (e.g. every DPO pair tied)
      end
      row.step, row.loss, row.grad_norm, row.lr = s, lv, gn, opt.lr
      row.seconds = runtime.now() - t0
      rows[#rows + 1] = row
      last = s
      bar:update(s - start, { loss = lv, reward = row.reward })
      if s % r.checkpoint_every == 0 or s == r.max_steps or (r.stop_at and s >= r.stop_at) then save(s) end
      if r.stop_at and s >= r.stop_at then break end
    end
  end)
  runtime.set_numeric_guard(prev_guard)
  bar:done()
  if not ok then error(err, 0) end
  if spec.export and out and last == r.max_steps and root then spec.export(out) end
  return { log = rows, step = last, checkpoint = ck, out = out, optimizer = opt, loss_devices = loss_devices }
end

-- run_lora(pipe, prev_gc, names, opts): M.run for a trainer of the UNet's LoRA adapters (names:
-- the adapted modules). The adapters are exported as lora.safetensors, the UNet's gradient
-- checkpointing flag goes back to prev_gc however the run ends, and the result lists the names.
function M.run_lora(pipe, prev_gc, names, opts)
  opts.export = function(dir) lora.save(pipe.unet, dir .. '/lora.safetensors') end
  local ok, res = pcall(M.run, opts)
  pipe.unet.gradient_checkpointing = prev_gc
  if not ok then error(res, 0) end
  res.lora = names
  return res
end

return M
