-- craft.train.dpo: the preference-optimisation baseline (METHOD.md, "Baselines"): Diffusion-DPO
-- (Wallace et al. 2023) on pairs of the model's own generations ranked by their checklist score.
--
-- As in the published method, training is offline on a fixed preference set: first `pairs`
-- prompts (uniform over classes, then prompts) get two images each from the starting model (no
-- grad, two noise draws); the recipe's `reward` scores them (a function, or a reward spec over
-- `cas`; by default the raw checklist dimension) and the higher score is the winner (tied pairs
-- are dropped). A `heldout` share of the pairs never enters training: the
-- implicit preference accuracy and loss on them (logged every eval_every steps) say whether DPO
-- learnt the preference or only memorised its training pairs. Each step then draws batch_size
-- training pairs (a fresh permutation per epoch), one timestep t and ONE noise eps per pair shared
-- by winner and loser (as the reference implementation, so the weighting w(t) cancels):
--   d_theta = mse(eps_theta(x_w,t), eps) - mse(eps_theta(x_l,t), eps)
--   d_ref   = the same with the reference model (the LoRA-free model at the start, scale 0)
--   L = -log sigmoid(-beta / 2 * (d_theta - d_ref)),  averaged over pairs,
-- mse being the mean over the latent's elements (the reference implementation's
-- (pred - target).pow(2).mean(dim=[1,2,3])), so beta is on the scale of the published beta_dpo
-- (5000 for SD 1.5). The target is eps, or v for a v-prediction scheduler. x_w, x_l are the
-- sampled latents themselves (the VAE round trip of the generated images would only add the
-- autoencoder's error). The pair set is saved with the checkpoint (pairs.safetensors), so a
-- resumed run trains on the same pairs.
--
--   local dpo = require 'craft.train.dpo'
--   local r = dpo.train(pipe, {prompts = {...}, cas = cas, out = 'runs/dpo'})   -- ranked by the checklist
--   r.heldout.accuracy, r.heldout.loss, r.pairs (kept), r.ties
local tensor = require 'craft.tensor'
local A = require 'craft.autograd'
local argerror = require('craft.core').argerror
local common = require 'craft.train.common'
local RS = require 'craft.cas.reward_spec'
local ctrain = require 'craft.train.craft'
local F = require 'craft.functional'

local M = {}

M.DEFAULTS = {
  prompts = false,            -- {class -> {enriched prompts}} (required)
  classes = false,            -- label order; default: cas.classes, else the sorted prompt keys
  negative_prompt = '',
  reward = false,             -- what ranks a pair: function(images [N,3,H,W], labels i64 [N]) -> tensor or
                              -- list [N] (old name: rank), or a reward spec over cas (craft.cas.reward_spec
                              -- or a table of its fields); default with cas: the raw checklist dimension (the
                              -- same order as its z-score within a class, and a pair shares its class)
  cas = false,
  rank_by = 'checklist',      -- with cas: 'checklist' (METHOD.md: the checklist score) or 'cas' (the whole
                              -- CAS)
  beta = 5000,                -- beta_dpo (Wallace et al.: 5000 for SD 1.5)
  lora_rank = 16,             -- (choice: CRAFT's adapter, so the comparison isolates the objective)
  alpha = false, lora_targets = false, lora_convs = false,
  steps = 50, cfg = 7.5, eta = 0,  -- the generation of the pairs (as CRAFT samples)
  height = false, width = false,
  shared_noise = true,        -- one eps per pair for winner and loser (reference implementation)
  pairs = 512,                -- prompts of the preference set, two images each (choice)
  heldout = 0.25,             -- share of the ranked pairs kept out of training (choice)
  eval_every = 50,            -- held-out accuracy and loss every N steps and at the end
  eval_timesteps = 4,         -- fixed (t, eps) draws per held-out pair; the margin is their mean
  generate_batch = 8,         -- pairs generated per sampling call
  lr = 1e-5,                  -- (choice)
  batch_size = 4,             -- pairs per step (choice)
  max_steps = 1000,
  checkpoint_every = 100,
}
M.PRESETS = { full = {},
  tiny = { lora_rank = 4, steps = 10, batch_size = 2, beta = 1000, lr = 1e-3, max_steps = 100,
  pairs = 128, eval_every = 25, checkpoint_every = 25, gradient_checkpointing = false } }

local function per_sample_mse(pred, target) return (pred - target):square():mean({ 2, 3, 4 }) end

-- loss(pipe, {xw=, xl=, context=, t = {timesteps, one per pair}, noise = [P,...] (or noise_w,
-- noise_l), beta=}) -> loss, {inside = tensor [P] (the sigmoid's argument), acc = share of pairs
-- with inside > 0, model_w, model_l, ref_w, ref_l = per-pair mse lists}
function M.loss(pipe, o)
  local unet, sched = pipe.unet, pipe.scheduler
  local P = o.xw:size(1)
  local x = F.cat({ o.xw, o.xl }, 1)
  local eps = F.cat({ o.noise_w or o.noise, o.noise_l or o.noise }, 1)
  local ts = {}
  for i = 1, P do ts[i], ts[P + i] = o.t[i], o.t[i] end
  local noisy = sched:add_noise(x, eps, ts)
  local target = sched:target(x, eps, ts)
  local tt, ctx = tensor.tensor(ts), F.cat({ o.context, o.context }, 1)
  local m = per_sample_mse(unet(noisy, tt, ctx), target)
  local ref = A.no_grad(function()
    return per_sample_mse(common.with_lora_scale(unet, 0, unet, noisy, tt, ctx), target)
  end)
  local mw, ml = m:narrow(1, 1, P), m:narrow(1, P + 1, P)
  local rw, rl = ref:narrow(1, 1, P), ref:narrow(1, P + 1, P)
  local inside = ((mw - ml) - (rw - rl)) * (-0.5 * o.beta)
  local loss = (-inside):softplus():mean()   -- -log sigmoid(z) = softplus(-z)
  local acc = 0
  for _, v in ipairs(inside:flat()) do if v > 0 then acc = acc + 1 end end
  return loss, { inside = inside, acc = acc / P, model_w = mw:flat(), model_l = ml:flat(), ref_w = rw:flat(),
    ref_l = rl:flat() }
end

local function rank_of(r)
  if type(r.reward) == 'function' then return r.reward end
  if r.reward and r.cas then
    local spec = RS.new(r.reward)
    if spec.scale == 'start' then
      argerror('dpo: the reward spec\'s scale = \'start\' is CRAFT\'s (give {dim -> number})')
    end
    return function(images, labels)
      return A.no_grad(function() return r.cas:reward(images, labels, spec):flat() end)
    end
  end
  if r.cas and r.rank_by == 'cas' then
    return function(images, labels) return r.cas:score(images, labels).cas end
  end
  if r.cas then
    if r.rank_by ~= 'checklist' then
      argerror(('dpo: rank_by is %s (checklist or cas)'):format(tostring(r.rank_by)))
    end
    return function(images, labels) return r.cas:raw(images, labels, { 'checklist' }).checklist end
  end
  argerror('dpo: give reward = function(images, labels) -> scores, or cas = a craft.cas object (checklist '
    .. 'ranking; or reward = a reward spec over it)')
end

local function as_list(s)
  if tensor.is_tensor(s) then return s:flat() end
  return s
end

-- The preference set: `pairs` prompts, two generations each from the starting model, ranked.
-- -> {xw, xl (latents), ctx (prompt embeddings), n_train, n_heldout, ties, prompts}
local function make_pairs(pipe, r, cls, encode, rank, negs_for)
  local g = common.rng(r.seed, 0, 6)
  local prompts, ys = ctrain.pick(r, cls, g, r.pairs)
  local W, L, Cx = {}, {}, {}
  local ties, kept_prompts = 0, {}
  local G = r.generate_batch
  for s = 1, r.pairs, G do
    local n = math.min(G, r.pairs - s + 1)
    local ps, ysb = {}, {}
    for i = 1, n do ps[i], ysb[i] = prompts[s + i - 1], ys[s + i - 1] end
    local cond = encode(ps)
    local both, ys2 = F.cat({ cond, cond }, 1), {}
    for i = 1, n do ys2[i], ys2[n + i] = ysb[i], ysb[i] end
    local noise = tensor.randn(common.latent_shape(pipe, 2 * n, r), { seed = g.seed() })
    local images, latents = A.no_grad(pipe.generate, pipe, { prompt_embeds = both,
      negative_prompt_embeds = r.cfg > 1 and encode(negs_for(2 * n)) or nil, cfg = r.cfg, steps = r.steps,
      latents = noise, eta = r.eta, seed = g.seed() })
    local sc = as_list(rank(images, tensor.tensor(ys2, { dtype = 'i64' })))
    for i = 1, n do
      local a, b = sc[i], sc[n + i]
      if a == b then ties = ties + 1 else
        local wi, li = a > b and i or n + i, a > b and n + i or i
        W[#W + 1] = latents:narrow(1, wi, 1)
        L[#L + 1] = latents:narrow(1, li, 1)
        Cx[#Cx + 1] = cond:narrow(1, i, 1)
        kept_prompts[#kept_prompts + 1] = ps[i]
      end
    end
  end
  local P = #W
  if P < 2 then
    argerror(('dpo: only %d of %d pairs were not tied; the ranking cannot tell the images apart'):format(P,
      r.pairs))
  end
  local nh = math.max(1, math.floor(P * r.heldout + 0.5))
  if r.heldout <= 0 then nh = 0 end
  return { xw = F.cat(W, 1):detach(), xl = F.cat(L, 1):detach(), ctx = F.cat(Cx, 1):detach(), n = P,
    n_heldout = nh,
    n_train = P - nh, ties = ties, prompts = kept_prompts }
end

local function save_pairs(path, set)
  require('craft.io').save_safetensors(path, { xw = set.xw, xl = set.xl, ctx = set.ctx },
    { n_heldout = tostring(set.n_heldout), ties = tostring(set.ties),
    prompts = require('craft.io').encode_json(set.prompts) })
end

local function load_pairs(path)
  local io_ = require 'craft.io'
  local t, _, meta = io_.load_safetensors(path)
  local P = t.xw:size(1)
  local nh = tonumber(meta.n_heldout)
  return { xw = t.xw, xl = t.xl, ctx = t.ctx, n = P, n_heldout = nh, n_train = P - nh,
    ties = tonumber(meta.ties),
    prompts = io_.decode_json(meta.prompts, path) }
end

-- Held-out pairs (the last n_heldout of the set): the mean margin over eval_timesteps fixed
-- (t, eps) draws per pair; accuracy = share of pairs with a positive margin (a zero margin, as at
-- the start where the model is the reference, counts one half), loss = mean -log sigmoid(margin).
function M.heldout(pipe, set, r)
  local nh = set.n_heldout
  if nh == 0 then return nil end
  local T = pipe.scheduler.config.num_train_timesteps
  local nshape = { nh, set.xw:size(2), set.xw:size(3), set.xw:size(4) }
  local idx = {}
  for k = 1, nh do idx[k] = set.n_train + k end
  local take = require('craft.data').take
  local xw, xl, ctx = take(set.xw, idx), take(set.xl, idx), take(set.ctx, idx)
  local margin = {}
  for k = 1, nh do margin[k] = 0 end
  A.no_grad(function()
    for j = 1, r.eval_timesteps do
      local g = common.rng(r.seed, j, 7)   -- fixed across evaluations: the same draws every time
      local t = {}
      for k = 1, nh do t[k] = g.int(T) - 1 end
      local eps = tensor.randn(nshape, { seed = g.seed() })
      local _, info = M.loss(pipe, { xw = xw, xl = xl, context = ctx, t = t, noise = eps, beta = r.beta })
      local v = info.inside:flat()
      for k = 1, nh do margin[k] = margin[k] + v[k] / r.eval_timesteps end
    end
  end)
  local acc, loss = 0, 0
  for _, m in ipairs(margin) do
    acc = acc + (m > 0 and 1 or (m == 0 and 0.5 or 0))
    loss = loss + (m > 30 and math.exp(-m) or math.log(1 + math.exp(-m)))
  end
  return { accuracy = acc / nh, loss = loss / nh, n = nh }
end

-- train(pipe, recipe) -> {log, step, checkpoint, out, lora = adapted module names, heldout =
-- {accuracy, loss, n}, pairs = kept pairs, ties}
local function train(pipe, recipe)
  if recipe and recipe.rank ~= nil and type(recipe.rank) ~= 'function' then
    argerror(('dpo: rank is %s; the LoRA rank is lora_rank (rank was the old name of the ranking function, '
      .. 'now reward)')
      :format(tostring(recipe.rank)))
  end
  local r = common.options('dpo', common.renamed('dpo', recipe, { rank = 'reward' }), M.DEFAULTS, M.PRESETS,
    {})
  if type(r.prompts) ~= 'table' then argerror('dpo: recipe.prompts = {class -> {prompts}} is required') end
  if not (r.heldout >= 0 and r.heldout < 1) then
    argerror(('dpo: heldout is %s, must be in [0, 1)'):format(tostring(r.heldout)))
  end
  local cls = r.classes or (r.cas and r.cas.classes)
  if not cls then
    cls = {}
    for k in pairs(r.prompts) do cls[#cls + 1] = k end
    table.sort(cls)
  end
  local rank = rank_of(r)
  common.freeze(pipe)
  local encode = common.prompt_encoder(pipe)
  local function negs_for(n)
    local negs = {}
    for i = 1, n do negs[i] = r.negative_prompt end
    return negs
  end
  -- the preference set comes from the starting model, before any adapter of this run exists
  local pairs_path = r.out and (r.out .. '/pairs.safetensors')
  local set
  if r.resume and pairs_path and common.exists(pairs_path) then set = load_pairs(pairs_path)
  else
    set = make_pairs(pipe, r, cls, encode, rank, negs_for)
    -- every rank made the same set (the same seeds); one writes it
    if pairs_path and require('craft.dist').is_root() then
      common.mkdir(r.out)
      save_pairs(pairs_path, set)
    end
  end
  if not r.quiet and require('craft.dist').is_root() then
    io.stderr:write(('dpo: %d preference pairs (%d tied dropped): %d for training, %d held out\n')
      :format(set.n,
      set.ties, set.n_train, set.n_heldout))
  end
  if set.n_train < 1 then argerror('dpo: no training pairs left after the held-out share') end
  local names, params = common.attach_lora(pipe,
    { lora_rank = r.lora_rank, alpha = r.alpha, lora_targets = r.lora_targets,
    lora_convs = r.lora_convs, seed = r.seed })
  local prev_gc = pipe.unet.gradient_checkpointing
  pipe.unet.gradient_checkpointing = r.gradient_checkpointing
  local B = math.min(r.batch_size, set.n_train)
  local T = pipe.scheduler.config.num_train_timesteps
  local perms = {}
  local take = require('craft.data').take
  local final_heldout

  -- each rank computes its block of the batch's pairs (common.shard); the loss and the per-pair
  -- logs are its parts of the batch means, summed over ranks
  local sh = common.shard(B, 'dpo')
  local function step(s)
    local g = common.rng(r.seed, s, 2)
    local idx = {}
    for j = 1, B do
      local gi = (s - 1) * B + j - 1
      local ep, pos = math.floor(gi / set.n_train) + 1, gi % set.n_train + 1
      perms[ep] = perms[ep] or require('craft.data').permutation(set.n_train, r.seed, 2000 + ep)
      idx[j] = perms[ep][pos]
    end
    local t = {}
    for k = 1, B do t[k] = g.int(T) - 1 end
    idx, t = common.slice(idx, sh), common.slice(t, sh)
    local nshape = { B, set.xw:size(2), set.xw:size(3), set.xw:size(4) }
    local nw = common.noise_of(nshape, g.seed(), sh)
    local nl = r.shared_noise and nw or common.noise_of(nshape, g.seed(), sh)
    local loss, info = M.loss(pipe,
      { xw = take(set.xw, idx), xl = take(set.xl, idx), context = take(set.ctx, idx),
      t = t, noise_w = nw, noise_l = nl, beta = r.beta })
    local row = { pairs = B, implicit_acc = common.part(info.acc, sh) }
    local m, rf = 0, 0
    for k = 1, sh.n do
      m = m + (info.model_w[k] + info.model_l[k]) / (2 * B)
      rf = rf + (info.ref_w[k] + info.ref_l[k]) / (2 * B)
    end
    row.model_mse, row.ref_mse = m, rf
    common.reduce_row(row, sh, { 'implicit_acc', 'model_mse', 'ref_mse' })
    if set.n_heldout > 0 and (s % r.eval_every == 0 or s == r.max_steps) then
      -- measured before this step's update: the held-out figures of the weights after step s - 1
      local h = M.heldout(pipe, set, r)
      row.heldout_acc, row.heldout_loss = h.accuracy, h.loss
      final_heldout = h
    end
    return common.part(loss, sh), row
  end

  local res = common.run_lora(pipe, prev_gc, names,
    { name = 'dpo', recipe = r, params = params, step = step })
  -- the final weights' held-out figures
  if set.n_heldout > 0 then final_heldout = M.heldout(pipe, set, r) end
  res.heldout, res.pairs, res.ties, res.n_train_pairs = final_heldout, set.n, set.ties, set.n_train
  return res
end
M.train = common.on_device(train)   -- recipe.device: train there (craft.train.common)

return M
