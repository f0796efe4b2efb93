-- recipes/lib/phantoms.lua: the phantom side of the built-in comparisons (recipes/quickstart.lua,
-- recipes/ablation.lua): the labelled few-shot set, the held-out reals, the test split, the
-- knowledge artifacts and the built-in encoders. experiment(args) -> a craft.experiment config
-- without `methods`; args: modality, shots, out, smoke.
local craft = require 'craft'
local P = craft.phantoms
local E = craft.encoders

return function(args)
  local S = dofile('recipes/pretrain/seeds.lua')
  local K = dofile(('recipes/knowledge/phantoms_%s.lua'):format(args.modality))
  local classes = P.classes(args.modality)
  -- `per_class` phantoms of every class from one seed stream (disjoint from every pretraining
  -- stream: recipes/pretrain/seeds.lua)
  local function balanced(seed, per_class)
    local parts, labels, rows = {}, {}, {}
    for c = 1, #classes do
      local ds = P.dataset { modality = args.modality, n = per_class, size = S.size, seed = seed, class = c - 1 }
      parts[#parts + 1] = ds.images
      for k = 1, per_class do labels[#labels + 1] = c - 1; rows[#rows + 1] = ds.rows[k] end
    end
    return { images = craft.cat(parts, 1), labels = craft.tensor(labels, { dtype = 'i64' }), classes = classes, rows = rows }
  end
  local smoke = args.smoke
  return {
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
    -- `shots` labelled images per class to adapt to; held-out reals that standardise the CAS and
    -- set the tail thresholds; a test split for the downstream classifier
    data = {
      train = balanced(S.finetune.train, args.shots),
      val = balanced(S.finetune.val, smoke and 16 or 48),
      test = balanced(S.finetune.test, smoke and 16 or 64),
    },
    oracle = args.modality,
    cas = { q = 0.10, k = 5, reward_cap = dofile('recipes/lib/methods.lua').REWARD_CAP },
    generate = { per_class = smoke and 4 or 24, steps = smoke and 4 or 10, cfg = 3.0, seeds = smoke and { 0, 1 } or { 0, 1, 2 } },
    notes = 'Built-in tiny models (models/builtin/README.md); phantom seeds in recipes/pretrain/seeds.lua.',
  }
end
