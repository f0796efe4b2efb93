-- recipes/variants.lua: CRAFT recipe variants side by side, each from the same TI + LoRA
-- generators, graded by the judges (how docs/results.md's variants were run).
--
--   ./build/craft recipes/variants.lua --variants recipes/tuning/round1.lua [--modality cxr]
--        [--out DIR] [--seeds ...] [--budget 200] [--jobs N] [--tune] [--reuse] [--smoke]
--        [--baselines ti_lora|start|all]   (ti_lora: TI + LoRA and CRAFT (reward 0); start: TI + LoRA alone)
--
-- The variants file returns a list {{name = 'CRAFT, ...', craft = {CRAFT recipe overrides}}, ...}
-- (or {name =, dpo = {DPO recipe overrides}} for a DPO variant); craft.reward = {fields} is laid
-- over the CRAFT recipe's reward spec (recipes/lib/methods.lua).
-- With --reuse and the --out of an earlier run, its finished TI + LoRA and control jobs are kept.
-- Choices are made with --tune (tuning seeds and split); reported runs use recipes/study.lua.
local parse = require 'lib.args'
local args = parse(arg,
  { modality = 'cxr', shots = 16, out = 'runs/variants', budget = 0, variants = '', smoke = false,
  seeds = '', jobs = 0, tune = false, reuse = false, baselines = 'ti_lora', data = '', size = 32 },
  'craft recipes/variants.lua --variants FILE [--modality M] [--out DIR] [--budget N] [--seeds ...] [--jobs '
  .. 'N] '
  .. '[--tune] [--reuse] [--smoke] [--baselines ti_lora|start|all]')
if args.variants == '' then error('recipes/variants.lua: give --variants FILE', 0) end
local lib = require 'lib.methods'
local run = require 'lib.run'
local phantom = { cxr = true, fundus = true, derm = true, histo = true }
local cfg
if phantom[args.modality] then
  cfg = require('lib.phantoms')(args)
else
  local R = require 'lib.real_set'
  for k, v in pairs(R.DEFAULTS) do if args[k] == nil then args[k] = v end end
  cfg = R.config(args.modality, args)
end
cfg.name = ('variants %s, %d shots per class'):format(args.modality, args.shots)
cfg.title = ('CRAFT variants: %s'):format(args.modality)
local budget = args.budget > 0 and args.budget or nil
local methods
if args.baselines == 'all' then methods = lib.list { smoke = args.smoke, budget = budget }
elseif args.baselines == 'start' then
  methods = lib.list { smoke = args.smoke, budget = budget, only = { ti_lora = true } }
else
  methods = lib.list { smoke = args.smoke, budget = budget,
    only = { ti_lora = true, ['CRAFT (reward 0)'] = true } }
end
-- the variants file: a path from the working directory, else from the repository (recipes/tuning/...)
local vfile = args.variants
if not io.open(vfile) then vfile = require('craft.repo').path(vfile) end
for _, v in ipairs(dofile(vfile)) do
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
