-- recipes/quickstart.lua: the built-in CRAFT comparison on clinical phantoms, with no download.
--
--   ./build/craft recipes/quickstart.lua [--modality cxr|fundus|derm|histo] [--shots 16]
--        [--out runs/quickstart] [--seeds 0,1,2] [--budget 200] [--jobs N] [--tune] [--reuse] [--smoke]
--
-- The foundation generator (models/builtin/sd-tiny) was pretrained on phantoms of every
-- modality with label-free captions; here it is adapted to a small labelled set (few-shot, as in
-- the paper's setting) by the methods of recipes/lib/methods.lua — the base model with enriched
-- prompts, TI + LoRA, and from the TI + LoRA generator at CRAFT's step budget: TI + LoRA
-- continued, DPO, CRAFT without its reward, and CRAFT — each for several training seeds. Every
-- model is graded by judges apart from the reward (a ResNet of another family fitted on its own
-- splits, and the phantom oracle), as METHOD.md's "Evaluation integrity" binds. Prints the table
-- and writes runs/quickstart/report/index.html. --tune: tuning seeds (100 and up) and a tuning
-- split in place of the test split, for choosing recipes (docs/results.md). --reuse: keep the
-- finished jobs of an earlier run with the same settings.
local parse = dofile('recipes/lib/args.lua')
local args = parse(arg, { modality = 'cxr', shots = 16, out = 'runs/quickstart', smoke = false, seeds = '',
  budget = 0, jobs = 0, tune = false, reuse = false },
  'craft recipes/quickstart.lua [--modality cxr|fundus|derm|histo] [--shots N] [--out DIR] [--seeds 0,1,2] [--budget N] [--jobs N] [--tune] [--reuse] [--smoke]')
local lib = dofile('recipes/lib/methods.lua')
local run = dofile('recipes/lib/run.lua')

local cfg = dofile('recipes/lib/phantoms.lua')(args)
cfg.name = ('quickstart %s, %d shots per class'):format(args.modality, args.shots)
cfg.title = ('CRAFT quickstart: %s phantoms, %d labelled images per class'):format(args.modality, args.shots)
cfg.methods = lib.list { smoke = args.smoke, budget = args.budget > 0 and args.budget or nil }
cfg.train_seeds = run.seeds(args, args.smoke and { 0, 1 } or { 0, 1, 2 })
cfg.jobs, cfg.reuse = run.jobs(args), args.reuse
require('craft.experiment').run(cfg)
return 0
