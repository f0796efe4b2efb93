-- TI + LoRA (METHOD.md, "Baselines"): textual inversion of one token per class on the few-shot
-- reals, then LoRA with the diffusion loss on them, the tokens frozen. recipe fields: ti = {TI
-- trainer options}, lora = {LoRA trainer options}, templates = {'... {}'} (the prompts the
-- tokens go into; default: the knowledge's generic prompt + ' showing {}').
local methods = require 'craft.methods'

return {
  kind = 'ti_lora',
  summary = 'textual inversion, then LoRA on the diffusion loss of the few-shot reals',
  needs_reward = false,
  adapt = function(pipe, m, ctx)
    local ld = require 'craft.train.lora_diffusion'
    local templates = m.templates or { (ctx.knowledge.generic_prompt or 'an image') .. ' showing {}' }
    local base = { preset = 'tiny', data = ctx.few_shot, templates = templates, seed = ctx.seed, quiet = ctx.quiet }
    local r = ld.ti_then_lora(pipe, methods.merge(base, methods.merge({ out = ctx.dir .. '/ti' }, m.ti)),
      methods.merge(base, methods.merge({ out = ctx.dir .. '/lora' }, m.lora)))
    local tokens = (r.ti and r.ti.tokens) or {}
    local prompts = {}
    for _, class in ipairs(ctx.classes) do
      local tok = tokens[class]
      if tok then
        local ps = {}
        for i, t in ipairs(templates) do ps[i] = (t:gsub('{}', (tok:gsub('%%', '%%%%')))) end
        prompts[class] = ps
      else
        prompts[class] = ctx.knowledge.prompts[class]
      end
    end
    local steps = (r.ti and r.ti.step or 0) + (r.lora and r.lora.step or 0)
    return { prompts = prompts, result = r.lora, adapters = { { kind = 'ti', path = ctx.dir .. '/ti/learned_embeds' },
      { kind = 'lora', path = ctx.dir .. '/lora/lora.safetensors' } }, budget = { steps = steps, images = 0 } }
  end,
}
