-- craft.train.lora_diffusion: the "TI + LoRA" baseline (METHOD.md, "Baselines"): after textual
-- inversion, LoRA adapters on the UNet trained with the standard diffusion loss (epsilon or v
-- prediction, per the scheduler config) on real images, the learned tokens frozen in the prompts.
--
--   local ld = require 'craft.train.lora_diffusion'
--   local res = ld.ti_then_lora(pipe, {data = ds, out = 'runs/ti'}, {data = ds, out = 'runs/ti_lora'})
--   -- or, with tokens already installed (craft.train.ti.install / .load) or none at all:
--   ld.train(pipe, {data = ds, ti = 'runs/ti/learned_embeds', out = 'runs/ti_lora'})
local common = require 'craft.train.common'
local argerror = require('craft.core').argerror
local ti = require 'craft.train.ti'

local M = {}

M.DEFAULTS = {
  data = false,               -- real images {images, labels, classes} (required)
  ti = false,                 -- learned tokens: a ti.train result, a folder written by ti.save, or
                              -- false to use whatever pipe already has installed
  templates = { 'a photo of {}' }, -- {} is replaced by the class's token (as in ti)
  prompts = false,            -- {class -> {prompts}}: a class's prompts (else its token in the templates)
  lora_rank = 32,             -- METHOD: rank 32 (old name: rank)
  alpha = false,              -- default = lora_rank
  lora_targets = false, lora_convs = false,
  height = false, width = false,
  lr = 5e-6,                  -- METHOD: lr 5e-6
  max_steps = 3000,           -- METHOD: 3000 steps
  batch_size = 4,             -- (choice)
  checkpoint_every = 250,
}
-- Tiny models: a rank-4 adapter learns at a higher rate in a short run.
M.PRESETS = { full = {},
  tiny = { lora_rank = 4, lr = 1e-3, max_steps = 200, batch_size = 4, checkpoint_every = 50,
  gradient_checkpointing = false } }

-- The prompt of a real image of class `name`: one of the recipe's prompts for it when given (a
-- run continued from an adapted model keeps that model's prompts), else a template with the
-- class's token.
local function prompt_for(r, tokens, name, g)
  local ps = r.prompts and r.prompts[name]
  if ps then return ps[g.int(#ps)] end
  local token = tokens[name]
  if token then
    local tpl = r.templates[g.int(#r.templates)]
    return (tpl:gsub('{}', (token:gsub('%%', '%%%%'))))
  end
  return (r.templates[g.int(#r.templates)]:gsub('{}', (name:gsub('%%', '%%%%'))))
end

-- train(pipe, recipe) -> {log, step, checkpoint, out, lora = adapted module names}
local function train(pipe, recipe)
  local r = common.options('lora_diffusion',
    common.renamed('lora_diffusion', recipe, { rank = 'lora_rank' }), M.DEFAULTS, M.PRESETS, {})
  local ds = r.data
  if not (type(ds) == 'table' and ds.classes) then
    argerror('lora_diffusion: recipe.data = {images, labels, classes} is required')
  end
  if type(r.ti) == 'string' then ti.load(pipe, r.ti)
  elseif type(r.ti) == 'table' then ti.install(pipe, r.ti.vectors, r.ti.tokens) end
  common.freeze(pipe)
  local tokens = pipe.ti and pipe.ti.tokens or {}
  local names, params = common.attach_lora(pipe, r)
  local prev_gc = pipe.unet.gradient_checkpointing
  pipe.unet.gradient_checkpointing = r.gradient_checkpointing
  local encode = common.prompt_encoder(pipe)   -- the tokens are frozen here: cached, no grad
  local real = common.real_data(pipe, ds, r)

  -- each rank computes its block of the batch (common.shard)
  local sh = common.shard(r.batch_size, 'lora_diffusion')
  local function step(s, pos)
    local g = common.rng(r.seed, s, 5)
    local x0, ys, ep, ix = real.batch(s, g, sh)
    local prompts = {}
    for i, y in ipairs(ys) do prompts[i] = prompt_for(r, tokens, ds.classes[y + 1], g) end
    pos.epoch, pos.index = ep, ix
    return common.diffusion_loss(pipe, x0, encode(common.slice(prompts, sh)), g, sh), {}
  end

  return common.run_lora(pipe, prev_gc, names,
    { name = 'lora_diffusion', recipe = r, params = params, step = step })
end
M.train = common.on_device(train)   -- recipe.device: train there (craft.train.common)

-- ti_then_lora(pipe, ti_recipe, lora_recipe): the whole baseline, TI first, then LoRA with its tokens.
function M.ti_then_lora(pipe, ti_recipe, lora_recipe)
  local t = ti.train(pipe, ti_recipe)
  local lr = {}
  for k, v in pairs(lora_recipe or {}) do lr[k] = v end
  lr.ti = lr.ti or t
  lr.data = lr.data or ti_recipe.data
  local l = M.train(pipe, lr)
  return { ti = t, lora = l }
end

return M
