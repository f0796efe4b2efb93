-- recipes/quickstart.lua: the built-in CRAFT comparison on clinical phantoms, with no download.
--
--   ./build/craft recipes/quickstart.lua [--modality cxr|fundus|derm|histo] [--shots 16]
--                                        [--out runs/quickstart] [--smoke]
--
-- The foundation generator (models/builtin/sd-tiny) was pretrained on phantoms of every
-- modality with label-free captions; here it is adapted to a small labelled set (few-shot, as
-- in the paper's setting) by four methods on the same engine: the base model with enriched
-- prompts, Textual Inversion + LoRA, Diffusion-DPO and CRAFT. Each is then evaluated the way
-- METHOD.md asks: mean CAS and the low-alignment tail with bootstrap CIs and a paired test
-- across generation seeds, out-of-family CAS (a ResNet's features), the oracle's clinical
-- correctness (the phantom auditor measures the findings from pixels), the checklist audit, a
-- downstream classifier trained on each method's images and tested on real phantoms,
-- memorisation and FID / KID. Prints the table and writes runs/quickstart/report/index.html.
local craft = require 'craft'
local P = craft.phantoms
local E = craft.encoders

local args = { modality = 'cxr', shots = 16, out = 'runs/quickstart' }
do
  local i = 1
  while arg[i] do
    local k = arg[i]
    if k == '--smoke' then args.smoke = true; i = i + 1
    elseif k:match('^%-%-') and arg[i + 1] then args[k:sub(3)] = tonumber(arg[i + 1]) or arg[i + 1]; i = i + 2
    else error('usage: craft recipes/quickstart.lua [--modality cxr|fundus|derm|histo] [--shots N] [--out DIR] [--smoke]', 0) end
  end
end

local S = dofile('recipes/pretrain/seeds.lua')
local K = dofile(('recipes/knowledge/phantoms_%s.lua'):format(args.modality))
local classes = P.classes(args.modality)
local size = S.size

-- Real (phantom) data: `shots` labelled images per class to adapt to; held-out reals that
-- standardise the CAS and set the tail thresholds; a test split for the downstream classifier.
-- Seed streams disjoint from every pretraining stream (recipes/pretrain/seeds.lua).
local function balanced(seed, per_class)
  local parts, labels, rows = {}, {}, {}
  for c = 1, #classes do
    local ds = P.dataset { modality = args.modality, n = per_class, size = size, seed = seed, class = c - 1 }
    parts[#parts + 1] = ds.images
    for k = 1, per_class do labels[#labels + 1] = c - 1; rows[#rows + 1] = ds.rows[k] end
  end
  return { images = craft.cat(parts, 1), labels = craft.tensor(labels, { dtype = 'i64' }), classes = classes, rows = rows }
end

local smoke = args.smoke
local data = {
  train = balanced(S.finetune.train, args.shots),
  val = balanced(S.finetune.val, smoke and 16 or 48),
  test = balanced(S.finetune.test, smoke and 16 or 64),
}

-- optimiser steps per method: the quickstart's budget (under 15 minutes on 2 cores in all)
local steps = smoke and { ti = 4, lora = 4, dpo = 3, craft = 3 } or { ti = 200, lora = 300, dpo = 150, craft = 800 }
local result = require('craft.experiment').run {
  name = ('quickstart %s, %d shots per class'):format(args.modality, args.shots),
  title = ('CRAFT quickstart: %s phantoms, %d labelled images per class'):format(args.modality, args.shots),
  out = args.out,
  seed = 0,
  pipeline = 'models/builtin/sd-tiny',
  classes = classes,
  knowledge = K,
  encoders = {
    vlm = E.clip('models/builtin/clip-tiny'),            -- the reward's VLM (CAS dimensions 1-2)
    vision = E.dinov2('models/builtin/dinov2-tiny'),     -- F: probe and fidelity (dimensions 3-4)
    ood = E.resnet('models/builtin/resnet-tiny'),        -- out-of-family evaluator
  },
  data = data,
  oracle = args.modality,
  cas = { q = 0.10, k = 5 },
  generate = { per_class = smoke and 4 or 24, steps = smoke and 4 or 10, cfg = 3.0, seeds = smoke and { 0, 1 } or { 0, 1, 2 } },
  downstream = { epochs = smoke and 2 or 15 },
  methods = {
    { name = 'Base + enriched', kind = 'base', baseline = true },
    { name = 'TI + LoRA', kind = 'ti_lora', baseline = true,
      ti = { max_steps = steps.ti }, lora = { max_steps = steps.lora } },
    { name = 'DPO', kind = 'dpo', baseline = true,
      recipe = { max_steps = steps.dpo, steps = smoke and 4 or 10, cfg = 3.0, batch_size = 4, lr = 1e-3 } },
    { name = 'CRAFT', kind = 'craft',
      recipe = { max_steps = steps.craft, steps = smoke and 4 or 10, cfg = 3.0, grad_steps = 1, kl_weight = 0.1,
        batch_size = 4, lr = 1e-3, rank = 8 } },
  },
  notes = 'Built-in tiny models (models/builtin/README.md); phantom seeds in recipes/pretrain/seeds.lua.',
}
return 0
