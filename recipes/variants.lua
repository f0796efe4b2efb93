-- recipes/variants.lua: CRAFT recipe variants side by side, each from the same TI + LoRA
-- generators, graded by the judges (how docs/results.md's variants were run).
--
--   ./build/craft recipes/variants.lua --variants recipes/tuning/round1.lua [--modality cxr]
--        [--out DIR] [--seeds ...] [--budget 200] [--jobs N] [--tune] [--reuse] [--smoke]
--        [--baselines ti_lora|all]
--
-- The variants file returns a list {{name = 'CRAFT, ...', craft = {CRAFT recipe overrides}}, ...}
-- (or {name =, dpo = {DPO recipe overrides}} for a DPO variant).
-- With --reuse and the --out of an earlier run, its finished TI + LoRA and control jobs are kept.
-- Choices are made with --tune (tuning seeds and split); reported runs use recipes/study.lua.
local parse = dofile('recipes/lib/args.lua')
local args = parse(arg, { modality = 'cxr', shots = 16, out = 'runs/variants', budget = 0, variants = '', smoke = false,
  seeds = '', jobs = 0, tune = false, reuse = false, baselines = 'ti_lora', data = '', size = 32 },
  'craft recipes/variants.lua --variants FILE [--modality M] [--out DIR] [--budget N] [--seeds ...] [--jobs N] [--tune] [--reuse] [--smoke] [--baselines ti_lora|all]')
if args.variants == '' then error('recipes/variants.lua: give --variants FILE', 0) end
local lib = dofile('recipes/lib/methods.lua')
local run = dofile('recipes/lib/run.lua')
local phantom = { cxr = true, fundus = true, derm = true, histo = true }
local cfg
if phantom[args.modality] then
  cfg = dofile('recipes/lib/phantoms.lua')(args)
else
  local R = dofile('recipes/lib/real_set.lua')
  for k, v in pairs(R.DEFAULTS) do if args[k] == nil then args[k] = v end end
  cfg = R.config(args.modality, args)
end
cfg.name = ('variants %s, %d shots per class'):format(args.modality, args.shots)
cfg.title = ('CRAFT variants: %s'):format(args.modality)
local budget = args.budget > 0 and args.budget or nil
local methods = args.baselines == 'all' and lib.list { smoke = args.smoke, budget = budget }
  or lib.list { smoke = args.smoke, budget = budget, only = { ti_lora = true, ['CRAFT (reward 0)'] = true } }
for _, v in ipairs(dofile(args.variants)) do
  local m
  if v.dpo then
    -- a DPO variant: the list's DPO with its recipe fields overridden
    m = lib.list { smoke = args.smoke, budget = budget, only = { dpo = true } }[1]
    m.recipe = lib.with(m.recipe, v.dpo)
  else
    m = lib.list { smoke = args.smoke, budget = budget, only = { CRAFT = true }, craft = v.craft }[1]
  end
  m.name, m.key = v.name, nil
  methods[#methods + 1] = m
end
cfg.methods = methods
cfg.train_seeds = run.seeds(args, args.smoke and { 0 } or { 0, 1, 2 })
cfg.jobs, cfg.reuse = run.jobs(args), args.reuse
require('craft.experiment').run(cfg)
return 0
