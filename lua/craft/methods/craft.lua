-- CRAFT (METHOD.md, "CRAFT finetuning"): LoRA fine-tuning by the gradient of the reward suite's
-- CAS through the last K sampling steps (craft.train.craft). recipe = {CRAFT trainer options};
-- recipe.reward_weight = 0 is the control "CRAFT (reward 0)": the same trainer, sampling, KL
-- penalty and real-image loss, without the reward. With real_diffusion_weight the real images
-- are the few-shot set (what the generator was adapted to).
local methods = require 'craft.methods'

return {
  kind = 'craft',
  summary = 'reward fine-tuning through the last K sampling steps (DRaFT-K)',
  needs_reward = true,
  adapt = function(pipe, m, ctx)
    local trainer = require 'craft.train.craft'
    local recipe = methods.merge({ preset = 'tiny', prompts = methods.start_prompts(ctx), classes = ctx.classes,
      seed = ctx.seed, quiet = ctx.quiet, out = ctx.dir .. '/craft' }, m.recipe)
    if (recipe.reward_weight or 1) ~= 0 and not recipe.reward then recipe.cas = recipe.cas or ctx.reward() end
    if (recipe.real_diffusion_weight or 0) ~= 0 and not recipe.data then recipe.data = ctx.few_shot end
    local r = trainer.train(pipe, recipe)
    local B = recipe.batch_size or trainer.PRESETS.tiny.batch_size
    return { prompts = recipe.prompts, result = r, adapters = { { kind = 'lora', path = ctx.dir .. '/craft/lora.safetensors' } },
      budget = { steps = r.step or 0, images = (r.step or 0) * B } }
  end,
}
