-- The base model with the knowledge artifacts' enriched prompts: no training.
return {
  kind = 'base',
  summary = 'the foundation model prompted with the enriched prompts',
  needs_reward = false,
  adapt = function(pipe, m, ctx)
    return { prompts = require('craft.methods').start_prompts(ctx), adapters = {}, budget = { steps = 0, images = 0 } }
  end,
}
