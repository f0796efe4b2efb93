-- LoRA continued: the control that gives a diffusion-loss baseline the extra steps CRAFT gets.
-- Starts from another method (m.from, e.g. TI + LoRA: its tokens and baked LoRA), attaches fresh
-- adapters and trains them with the diffusion loss on the few-shot reals, with that method's
-- prompts. recipe = {LoRA trainer options} (max_steps: CRAFT's).
local methods = require 'craft.methods'

return {
  kind = 'lora_continue',
  summary = 'more LoRA steps on the diffusion loss of the few-shot reals, from another method',
  needs_reward = false,
  adapt = function(pipe, m, ctx)
    local ld = require 'craft.train.lora_diffusion'
    local prompts = methods.start_prompts(ctx)
    local r = ld.train(pipe, methods.merge({ preset = 'tiny', data = ctx.few_shot, prompts = prompts,
      templates = { '{}' }, seed = ctx.seed, quiet = ctx.quiet, out = ctx.dir .. '/lora' }, m.recipe))
    return { prompts = prompts, result = r, adapters = { { kind = 'lora', path = ctx.dir .. '/lora/lora.safetensors' } },
      budget = { steps = r.step or 0, images = 0 } }
  end,
}
