-- examples/extensions/best_prompt.lua: a baseline method in one file (craft.methods describes
-- the fields). "Best prompt": no training; for every class it generates a few images from each of
-- the knowledge's enriched prompts with the starting model, scores them with the reward suite's
-- CAS, and keeps the prompt whose images score highest. Selection by the reward, so the
-- experiment's reward-hacking alarm watches it like the trained methods. Method entry fields:
-- per_prompt = 2 (images per prompt), steps = 10, cfg = 3.
local A = require 'craft.autograd'
local methods = require 'craft.methods'

return {
  kind = 'best_prompt',
  summary = 'for each class, the enriched prompt whose generations the reward scores highest',
  needs_reward = true,
  adapt = function(pipe, m, ctx)
    local cas = ctx.reward()
    local start = methods.start_prompts(ctx)
    local prompts, generated = {}, 0
    for ci, class in ipairs(ctx.classes) do
      local best, best_score
      for pi, p in ipairs(start[class]) do
        local batch = {}
        for k = 1, m.per_prompt or 2 do batch[k] = p end
        local images = A.no_grad(function()
          return pipe:generate { prompt = batch, steps = m.steps or 10, cfg = m.cfg or 3,
            seed = 100003 * (ctx.seed + 1) + 1009 * ci + pi }
        end)
        local ys = {}
        for k = 1, #batch do ys[k] = ci - 1 end
        local r = cas:score(images, ys)
        local mean = 0
        for _, v in ipairs(r.cas) do mean = mean + v / #r.cas end
        generated = generated + #batch
        if not best_score or mean > best_score then best, best_score = p, mean end
      end
      prompts[class] = { best }
      if not ctx.quiet then
        io.stderr:write(('best_prompt: %s: %q (reward CAS %.2f)\n'):format(class, best, best_score))
      end
    end
    return { prompts = prompts, adapters = {}, budget = { steps = 0, images = generated } }
  end,
}
