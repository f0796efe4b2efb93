-- recipes/study.lua: the full comparison of docs/results.md: every method of recipes/lib/methods.lua
-- at equal budget from the same TI + LoRA generators, five training seeds, graded by the judges.
--
--   ./build/craft recipes/study.lua --modality cxr|fundus|derm|histo|pneumoniamnist|ham10000
--        [--shots 16] [--out runs/study-<modality>] [--seeds 0,1,2,3,4] [--budget 200] [--jobs N]
--        [--data PATH] [--tune] [--reuse] [--smoke]
--
-- Phantom modalities use the built-in models and the oracle (recipes/lib/phantoms.lua); the real
-- sets use their stand-ins (recipes/lib/real_set.lua). --tune runs tuning seeds (100-104) on the
-- tuning split instead of the test split: the runs that choose a recipe, never the reported ones.
local parse = dofile('recipes/lib/args.lua')
local args = parse(arg, { modality = 'cxr', shots = 16, out = '', seeds = '', budget = 0, jobs = 0, data = '',
  tune = false, reuse = false, smoke = false, pipeline = '', models = '', clip = '', dinov2 = '', judge = '', size = 32 },
  'craft recipes/study.lua --modality cxr|fundus|derm|histo|pneumoniamnist|ham10000 [--shots N] [--out DIR] [--seeds 0,1,2,3,4] [--budget N] [--jobs N] [--data PATH] [--tune] [--reuse] [--smoke]')
if args.out == '' then args.out = 'runs/study-' .. args.modality .. (args.tune and '-tune' or '') end
local lib = dofile('recipes/lib/methods.lua')
local run = dofile('recipes/lib/run.lua')
local phantom = { cxr = true, fundus = true, derm = true, histo = true }
local cfg
if phantom[args.modality] then
  cfg = dofile('recipes/lib/phantoms.lua')(args)
  cfg.name = ('study %s phantoms, %d shots per class'):format(args.modality, args.shots)
  cfg.title = ('CRAFT study: %s phantoms, %d labelled images per class'):format(args.modality, args.shots)
else
  local R = dofile('recipes/lib/real_set.lua')
  for k, v in pairs(R.DEFAULTS) do if args[k] == nil then args[k] = v end end
  if args.pipeline == '' then args.pipeline = R.DEFAULTS.pipeline end
  cfg = R.config(args.modality, args)
  cfg.name = ('study %s, %d shots per class'):format(args.modality, args.shots)
  cfg.title = ('CRAFT study: %s, %d labelled images per class'):format(args.modality, args.shots)
end
cfg.methods = lib.list { smoke = args.smoke, budget = args.budget > 0 and args.budget or nil }
cfg.train_seeds = run.seeds(args, args.smoke and { 0, 1 } or { 0, 1, 2, 3, 4 })
cfg.jobs, cfg.reuse = run.jobs(args), args.reuse
require('craft.experiment').run(cfg)
return 0
