-- Diffusion-DPO (METHOD.md, "Baselines"; craft.train.dpo): offline preference optimisation on
-- pairs of the starting model's generations ranked by the reward suite's checklist dimension.
-- recipe = {DPO trainer options}. The held-out preference accuracy it logs is reported: a DPO
-- whose held-out accuracy is at chance learnt nothing, and the table says so.
local methods = require 'craft.methods'

return {
  kind = 'dpo',
  summary = 'Diffusion-DPO on checklist-ranked pairs of the model\'s own generations',
  needs_reward = true,
  adapt = function(pipe, m, ctx)
    local dpo = require 'craft.train.dpo'
    local recipe = methods.merge({ preset = 'tiny', prompts = methods.start_prompts(ctx), classes = ctx.classes,
      seed = ctx.seed, quiet = ctx.quiet, out = ctx.dir .. '/dpo' }, m.recipe)
    if not recipe.rank then recipe.cas = recipe.cas or ctx.reward() end
    local r = dpo.train(pipe, recipe)
    local pairs = recipe.pairs or dpo.PRESETS.tiny.pairs
    return { prompts = recipe.prompts, result = r, adapters = { { kind = 'lora', path = ctx.dir .. '/dpo/lora.safetensors' } },
      budget = { steps = r.step or 0, images = 2 * pairs }, heldout = r.heldout, pairs = r.pairs }
  end,
}
