-- craft.train.dpo: the preference-optimisation baseline (METHOD.md, "Baselines"): Diffusion-DPO
-- (Wallace et al. 2023) on pairs of the model's own generations ranked by their checklist score.
--
-- Each step: for each of batch_size prompts, two images from the current model (no grad, two
-- noise seeds); the recipe's `rank` callable scores them and the higher score is the winner (tied
-- pairs are dropped). Then, with one timestep t and ONE noise eps per pair shared by winner and
-- loser (as the reference implementation does, so the weighting w(t) cancels),
--   d_theta = mse(eps_theta(x_w,t), eps) - mse(eps_theta(x_l,t), eps)
--   d_ref   = the same with the reference model (the LoRA-free model at the start, scale 0)
--   L = -log sigmoid(-beta / 2 * (d_theta - d_ref)),  averaged over pairs,
-- mse being the mean over the latent's elements (the reference implementation's
-- (pred - target).pow(2).mean(dim=[1,2,3])), so beta is on the scale of the published beta_dpo
-- (5000 for SD 1.5). The target is eps, or v for a v-prediction scheduler. x_w, x_l are the
-- sampled latents themselves (the VAE round trip of the generated images would only add the
-- autoencoder's error).
--
--   local dpo = require 'craft.train.dpo'
--   dpo.train(pipe, {prompts = {...}, cas = cas, out = 'runs/dpo'})   -- rank = checklist z-score
local craft = require 'craft'
local argerror = require('craft.core').argerror
local common = require 'craft.train.common'
local ctrain = require 'craft.train.craft'
local F = craft.F

local M = {}

M.DEFAULTS = {
  prompts = false,            -- {class -> {enriched prompts}} (required)
  classes = false,            -- label order; default: cas.classes, else the sorted prompt keys
  negative_prompt = '',
  rank = false,               -- function(images [N,3,H,W], labels i64 [N]) -> tensor or list [N];
                              -- default with cas: the raw checklist dimension (the same order as
                              -- its z-score within a class, and a pair shares its class)
  cas = false,
  beta = 5000,                -- beta_dpo (Wallace et al.: 5000 for SD 1.5)
  lora_rank = 16,             -- (choice: CRAFT's adapter, so the comparison isolates the objective)
  alpha = false, lora_targets = false, lora_convs = false,
  steps = 50, cfg = 7.5, eta = 0,  -- the generation of the pairs (as CRAFT samples)
  height = false, width = false,
  shared_noise = true,        -- one eps per pair for winner and loser (reference implementation)
  lr = 1e-5,                  -- (choice)
  batch_size = 4,             -- pairs per step (choice)
  max_steps = 1000,
  checkpoint_every = 100,
}
M.PRESETS = { full = {}, tiny = { lora_rank = 4, steps = 10, batch_size = 2, beta = 1000, lr = 1e-3, max_steps = 100,
  checkpoint_every = 25 } }

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
  local tt, ctx = craft.tensor(ts), F.cat({ o.context, o.context }, 1)
  local m = per_sample_mse(unet(noisy, tt, ctx), target)
  local ref = craft.no_grad(function()
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
  if type(r.rank) == 'function' then return r.rank end
  if r.cas then
    return function(images, labels) return r.cas:raw(images, labels, { 'checklist' }).checklist end
  end
  argerror('dpo: give rank = function(images, labels) -> scores, or cas = a craft.cas object (checklist ranking)')
end

local function as_list(s)
  if craft.is_tensor(s) then return s:flat() end
  return s
end

-- train(pipe, recipe) -> {log, step, checkpoint, out, lora = adapted module names}
function M.train(pipe, recipe)
  local r = common.options('dpo', recipe, M.DEFAULTS, M.PRESETS, {})
  if type(r.prompts) ~= 'table' then argerror('dpo: recipe.prompts = {class -> {prompts}} is required') end
  local cls = r.classes or (r.cas and r.cas.classes)
  if not cls then
    cls = {}
    for k in pairs(r.prompts) do cls[#cls + 1] = k end
    table.sort(cls)
  end
  local rank = rank_of(r)
  common.freeze(pipe)
  local names, params = common.attach_lora(pipe, { rank = r.lora_rank, alpha = r.alpha, lora_targets = r.lora_targets,
    lora_convs = r.lora_convs, seed = r.seed })
  local prev_gc = pipe.unet.gradient_checkpointing
  pipe.unet.gradient_checkpointing = r.gradient_checkpointing
  local encode = common.prompt_encoder(pipe)
  local B = r.batch_size
  local negs = {}
  for i = 1, 2 * B do negs[i] = r.negative_prompt end

  local function step(s)
    local g = common.rng(r.seed, s, 2)
    local prompts, ys = ctrain.pick(r, cls, g, B)
    local cond = encode(prompts)
    -- two generations per prompt, rows 1..B and B+1..2B, from two noise draws
    local both, ys2 = F.cat({ cond, cond }, 1), {}
    for i = 1, B do ys2[i], ys2[B + i] = ys[i], ys[i] end
    local noise = craft.randn(common.latent_shape(pipe, 2 * B, r), { seed = g.seed() })
    local images, latents = craft.no_grad(common.sample, pipe, { cond = both, uncond = r.cfg > 1 and encode(negs) or nil,
      cfg = r.cfg, steps = r.steps, noise = noise, eta = r.eta, seed = g.seed() })
    local sc = as_list(rank(images, craft.tensor(ys2, { dtype = 'i64' })))
    local wi, li, ctx_i = {}, {}, {}
    for i = 1, B do
      local a, b = sc[i], sc[B + i]
      if a ~= b then
        wi[#wi + 1], li[#li + 1] = a > b and i or B + i, a > b and B + i or i
        ctx_i[#ctx_i + 1] = i
      end
    end
    local P = #wi
    local row = { pairs = P, score_gap = 0 }
    for k = 1, P do row.score_gap = row.score_gap + (sc[wi[k]] - sc[li[k]]) / P end
    local T = pipe.scheduler.config.num_train_timesteps
    local t = {}
    for k = 1, B do t[k] = g.int(T) - 1 end   -- drawn for every pair, used for the kept ones
    local nshape = common.latent_shape(pipe, B, r)
    local nw = craft.randn(nshape, { seed = g.seed() })
    local nl = r.shared_noise and nw or craft.randn(nshape, { seed = g.seed() })
    if P == 0 then return craft.zeros({}), row end   -- every pair tied: nothing to learn from
    local take = require('craft.data').take
    local tk = {}
    for k = 1, P do tk[k] = t[ctx_i[k]] end
    local loss, info = M.loss(pipe, { xw = take(latents, wi), xl = take(latents, li), context = take(cond, ctx_i),
      t = tk, noise_w = take(nw, ctx_i), noise_l = take(nl, ctx_i), beta = r.beta })
    row.implicit_acc = info.acc
    local m, rf = 0, 0
    for k = 1, P do m = m + (info.model_w[k] + info.model_l[k]) / (2 * P); rf = rf + (info.ref_w[k] + info.ref_l[k]) / (2 * P) end
    row.model_mse, row.ref_mse = m, rf
    return loss, row
  end

  return common.run_lora(pipe, prev_gc, names, { name = 'dpo', recipe = r, params = params, step = step })
end

return M
