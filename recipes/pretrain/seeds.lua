-- recipes/pretrain/seeds.lua: the one place where every phantom seed of the built-in models is
-- defined. A phantom image is a pure function of (modality, seed, index, class)
-- (craft.phantoms.dataset{seed=, first_index=}), so two different seeds give two disjoint
-- streams of images. Each pretraining recipe draws fresh images from its own seed
-- (first_index advances with the step), so no two models share a training image, and none of
-- them sees the finetuning or evaluation data below.
--
--   local S = dofile('recipes/pretrain/seeds.lua'); S.clip.seed, S.finetune.train, ...
local S = {
  size = 32,                                       -- every built-in model works on 32x32 RGB
  modalities = { 'cxr', 'fundus', 'derm', 'histo' },

  -- pretraining of the built-in models (recipes/pretrain/*.lua)
  vae = { seed = 101 },        -- AutoencoderKL: reconstruction, all modalities and classes
  clip = { seed = 201 },       -- the reward VLM: images + clinical captions from the ground truth
  dinov2 = { seed = 301 },     -- vision encoder F (probe and fidelity dimensions)
  evaluator = { seed = 401 },  -- out-of-family ResNet evaluator
  unet = { seed = 501 },       -- the foundation generator (generic, label-free captions)

  -- the experiment splits (craft.experiment; docs/evaluation.md), each its own stream, pairwise
  -- disjoint and never used to pretrain any built-in model:
  --   train (few_shot): the labelled set the generator is adapted to (TI, LoRA, CRAFT's
  --     real-image loss); reward_fit: the reward's probe and kNN bank; val (calibration): the
  --     reward's standardisation and thresholds; judge_fit / judge_calibration: the judge's;
  --     test: every reported number; tune: stands in for test in tuning runs (--tune).
  finetune = { train = 1001, val = 1002, test = 1003, reward_fit = 1004, judge_fit = 1005, judge_calibration = 1006,
    tune = 1007 },

  -- the quality checks of the built-in models (tests/lua/test_builtin_models.lua, the
  -- numbers in models/builtin/README.md)
  heldout = { seed = 9001 },
}

return S
