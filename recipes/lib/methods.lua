-- recipes/lib/methods.lua: the methods of a CRAFT comparison on the built-in tiny models (8x8
-- latents, 10 DDIM steps) and their budgets. list{smoke = bool, budget = CRAFT's steps,
-- craft = {CRAFT recipe overrides}, only = {kind or name = true}} -> the list for craft.experiment.
-- In `craft`, reward = {fields} is laid over the CRAFT recipe's reward spec (reward = {cap = false}
-- keeps the transform and drops the cap); a reward spec object or a function replaces it.
--
-- Every method after TI + LoRA starts from the TI + LoRA generator of the same training seed and
-- gets CRAFT's step budget: the controls of METHOD.md's "Evaluation integrity" at equal budget.
local RS = require 'craft.cas.reward_spec'

local M = {}

-- CRAFT's recipe for the tiny models (every field is a craft.train.craft option; METHOD.md's
-- defaults are the trainer's, these are the built-in comparisons' choices, made on tuning seeds and
-- the tuning split: docs/results.md lists every variant tried): fine-tune the TI + LoRA generator
-- (`from`) with METHOD.md's optional diffusion loss on the few-shot reals and KL penalty, the
-- gradient through the last K = 3 of 10 sampling steps (with K = 1 it reaches only the last
-- step's fine detail, and the judges saw the images get worse), and each reward dimension capped
-- at 0.5 z above the real images and compressed logarithmically below -1 (the z-scores reach -800
-- where the real images agree closely, and uncompressed the worst images of a batch own its
-- gradient, ten to thirty times the real-image loss's).
M.REWARD = RS.new { cap = 0.5, transform = 'log' }   -- over the reward suite's CAS, its four dimensions
M.CRAFT = { steps = 10, cfg = 3.0, grad_steps = 3, batch_size = 4, lr = 1e-3, lora_rank = 8, kl_weight = 0.1,
  real_diffusion_weight = 5, reward = M.REWARD }
M.BUDGET = 200          -- CRAFT's steps in the quickstart, and every equal-budget control's

local function with(base, over)
  local r = {}
  for k, v in pairs(base) do r[k] = v end
  for k, v in pairs(over or {}) do r[k] = v end
  return r
end
M.with = with

function M.list(o)
  o = o or {}
  local smoke = o.smoke
  local S = smoke and 3 or (o.budget or M.BUDGET)
  local craft_recipe = with(with(M.CRAFT, { max_steps = S }), o.craft)
  local rw = o.craft and o.craft.reward
  if type(rw) == 'table' and not RS.is(rw) then craft_recipe.reward = M.REWARD:with(rw) end
  if smoke then
    craft_recipe = with(craft_recipe, { steps = 4, grad_steps = math.min(craft_recipe.grad_steps, 2) })
  end
  local all = {
    { name = 'Base + enriched', kind = 'base', baseline = true, cost = 0.2 },
    -- TI: METHOD.md's 500 steps; LoRA: half of its full-scale 3000
    { name = 'TI + LoRA', kind = 'ti_lora', baseline = true, cost = 3,
      ti = { max_steps = smoke and 4 or 500 }, lora = { max_steps = smoke and 4 or 1500 } },
    -- the diffusion-loss baseline given CRAFT's extra steps
    { name = 'TI + LoRA (continued)', kind = 'lora_continue', baseline = true, from = 'TI + LoRA', cost = 1,
      recipe = { max_steps = S, lora_rank = 8, lr = 1e-3, batch_size = 4 } },
    -- preference optimisation of the same generator on ranked pairs of its own images: 512 pairs
    -- ranked by the reward's CAS (tuning round dpo1: with 128 pairs, or ranked by the checklist
    -- dimension alone, its held-out preference accuracy stayed at chance)
    { name = 'DPO', kind = 'dpo', baseline = true, from = 'TI + LoRA', cost = 5,
      recipe = { max_steps = S, steps = smoke and 4 or 10, cfg = 3.0, batch_size = 4, lr = 1e-3,
      lora_rank = 8,
        pairs = smoke and 8 or 512, rank_by = 'cas', eval_every = smoke and 2 or 100 } },
    -- CRAFT's own trainer without the reward: what the reward itself adds
    { name = 'CRAFT (reward 0)', kind = 'craft', control = true, from = 'TI + LoRA', cost = 6,
      recipe = with(craft_recipe, { reward_weight = 0 }) },
    { name = 'CRAFT', kind = 'craft', from = 'TI + LoRA', cost = 10, recipe = craft_recipe },
  }
  if not o.only then return all end
  local r = {}
  for _, m in ipairs(all) do
    if o.only[m.kind] or o.only[m.name] then r[#r + 1] = m end
  end
  return r
end

return M
