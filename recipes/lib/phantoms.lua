-- recipes/lib/phantoms.lua: the phantom side of the built-in comparisons (recipes/quickstart.lua,
-- recipes/study.lua, recipes/ablation.lua): the six experiment splits (each a phantom stream of its
-- own, recipes/pretrain/seeds.lua), the knowledge artifacts, the reward suite (tiny CLIP + DINOv2)
-- and the judge suite (the ResNet judge + the phantom oracle), kept apart by construction.
-- experiment(args) -> a craft.experiment config without `methods`; args: modality, shots, out,
-- smoke, tune (the tuning split stands in for the test split), sizes = {per-split images per class}.
local craft = require 'craft'
local repo = require 'craft.repo'
local P = craft.phantoms
local E = craft.encoders

return function(args)
  local S = require 'pretrain.seeds'
  local K = require('knowledge').get('phantoms_' .. args.modality)
  local classes = P.classes(args.modality)
  -- `per_class` phantoms of every class from one seed stream
  local function balanced(name, seed, per_class)
    local parts, labels, rows, prov = {}, {}, {}, {}
    for c = 1, #classes do
      local ds = P.dataset { modality = args.modality, n = per_class, size = S.size, seed = seed,
        class = c - 1 }
      parts[#parts + 1] = ds.images
      for k = 1, per_class do labels[#labels + 1] = c - 1; rows[#rows + 1] = ds.rows[k] end
      prov[c] = { source = 'phantoms:' .. args.modality, seed = seed, class = c - 1, first = 0,
        n = per_class }
    end
    return { images = craft.cat(parts, 1), labels = craft.tensor(labels, { dtype = 'i64' }),
      classes = classes, rows = rows,
      provenance = prov, name = name }
  end
  local smoke = args.smoke
  local n = args.sizes or {}
  local F = S.finetune
  return {
    out = args.out, pipeline = repo.path('models/builtin/sd-tiny'),
    generator = (function()
      local u = E.describe('generator', repo.path('models/builtin/sd-tiny/unet'), {})
      local v = E.describe('generator', repo.path('models/builtin/sd-tiny/vae'), {})
      local t = {}
      for _, e in ipairs(u.trained_on or {}) do t[#t + 1] = e end
      for _, e in ipairs(v.trained_on or {}) do t[#t + 1] = e end
      return { name = 'sd-tiny (UNet, VAE)', trained_on = t }
    end)(),
    classes = classes,
    knowledge = K,
    splits = {
      few_shot = balanced('few_shot', F.train, args.shots),
      reward_fit = balanced('reward_fit', F.reward_fit, n.reward_fit or (smoke and 16 or 64)),
      calibration = balanced('calibration', F.val, n.calibration or (smoke and 16 or 48)),
      judge_fit = balanced('judge_fit', F.judge_fit, n.judge_fit or (smoke and 16 or 64)),
      judge_calibration = balanced('judge_calibration', F.judge_calibration, n.judge_calibration
      or (smoke and 16 or 48)),
      test = args.tune and balanced('tune', F.tune, n.test or (smoke and 16 or 64))
        or balanced('test', F.test, n.test or (smoke and 16 or 64)),
    },
    -- the reward the trainers ascend: the VLM for CAS dimensions 1-2, DINOv2 for 3-4
    reward = { vlm = E.clip(repo.path('models/builtin/clip-tiny')),
    vision = E.dinov2(repo.path('models/builtin/dinov2-tiny')),
      cas = { q = 0.10, k = 5 } },
    -- the judges: another model family (a convolutional ResNet trained on class labels only, on
    -- its own phantom stream) fitted on its own splits, and the oracle
    judge = { vision = E.resnet(repo.path('models/builtin/resnet-tiny')), cas = { q = 0.10, k = 5 },
    oracle = args.modality },
    tune = args.tune or false,
    generate = { per_class = smoke and 4 or 24, steps = smoke and 4 or 10, cfg = 3.0 },
    notes = 'Built-in tiny models (models/builtin/README.md); phantom seeds in recipes/pretrain/seeds.lua.',
  }
end
