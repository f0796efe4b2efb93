-- recipes/ablation.lua: which parts of CRAFT's reward matter, on the built-in phantoms.
--
--   ./build/craft recipes/ablation.lua [--modality cxr] [--shots 16] [--out runs/ablation]
--        [--budget 200] [--ks 1,5] [--seeds 0,1,2] [--jobs N] [--tune] [--reuse] [--smoke]
--
-- CRAFT trained with every CAS dimension in its reward (the quickstart's recipe), then with each
-- dimension dropped from the reward (its reward weight 0), then with other K (DRaFT-K: the
-- denoising steps the gradient flows through), then without the reward cap, then without the log
-- compression of the reward's dimensions; every variant starts
-- from the same TI + LoRA generator per training seed and is graded by the same judges, with
-- CRAFT (reward 0) as the control. One table and report.
local parse = dofile('recipes/lib/args.lua')
local args = parse(arg, { modality = 'cxr', shots = 16, out = 'runs/ablation', budget = 0, ks = '1,5', smoke = false,
  seeds = '', jobs = 0, tune = false, reuse = false },
  'craft recipes/ablation.lua [--modality M] [--shots N] [--out DIR] [--budget N] [--ks 1,5] [--seeds 0,1,2] [--jobs N] [--tune] [--reuse] [--smoke]')
local lib = dofile('recipes/lib/methods.lua')
local run = dofile('recipes/lib/run.lua')
local cfg = dofile('recipes/lib/phantoms.lua')(args)
cfg.name = ('ablation %s, %d shots per class'):format(args.modality, args.shots)
cfg.title = ('CRAFT ablation: reward dimensions and K, %s phantoms'):format(args.modality)

local budget = args.budget > 0 and args.budget or nil
local function variant(name, over)
  local m = lib.list { smoke = args.smoke, budget = budget, only = { CRAFT = true }, craft = over }[1]
  m.name, m.key = name, nil
  return m
end
local methods = lib.list { smoke = args.smoke, budget = budget, only = { ti_lora = true, ['CRAFT (reward 0)'] = true } }
methods[#methods + 1] = variant('CRAFT (all four)', {})
for _, d in ipairs { 'prompt', 'checklist', 'probe', 'fidelity' } do
  local w = { prompt = 1, checklist = 1, probe = 1, fidelity = 1 }
  w[d] = 0
  methods[#methods + 1] = variant('CRAFT - ' .. d, { reward_weights = w })
end
for k in tostring(args.ks):gmatch('%d+') do
  k = tonumber(k)
  if k ~= lib.CRAFT.grad_steps then
    methods[#methods + 1] = variant(('CRAFT K=%d'):format(k), { grad_steps = args.smoke and math.min(k, 4) or k })
  end
end
methods[#methods + 1] = variant('CRAFT, no reward cap', { reward_cap = false })
methods[#methods + 1] = variant('CRAFT, linear reward (no log)', { reward_transform = false })
cfg.methods = methods
cfg.train_seeds = run.seeds(args, args.smoke and { 0 } or { 0, 1, 2 })
cfg.jobs, cfg.reuse = run.jobs(args), args.reuse
require('craft.experiment').run(cfg)
return 0
