-- recipes/ablation.lua: which parts of CRAFT's reward matter, on the built-in phantoms.
--
--   ./build/craft recipes/ablation.lua [--modality cxr] [--shots 16] [--out runs/ablation]
--                                      [--max-steps 800] [--ks 1,2,3] [--smoke]
--
-- CRAFT trained with every CAS dimension (the quickstart's recipe), then with each dimension
-- dropped from the reward (its reward weight set to 0; the evaluation CAS keeps all four), then
-- with K (DRaFT-K: the denoising steps the gradient flows through) varied, then without the
-- reward cap. Every variant starts from the same TI + LoRA generator and is evaluated like the
-- quickstart's methods, in one table and report. About 5 minutes per variant on two cores.
local parse = dofile('recipes/lib/args.lua')
local args = parse(arg, { modality = 'cxr', shots = 16, out = 'runs/ablation', max_steps = 800, ks = '1,2,3', smoke = false },
  'craft recipes/ablation.lua [--modality M] [--shots N] [--out DIR] [--max-steps N] [--ks 1,2,3] [--smoke]')

local lib = dofile('recipes/lib/methods.lua')
local cfg = dofile('recipes/lib/phantoms.lua')(args)
cfg.name = ('ablation %s, %d shots per class'):format(args.modality, args.shots)
cfg.title = ('CRAFT ablation: reward dimensions and K, %s phantoms'):format(args.modality)

local function craft_variant(name, over)
  local m = lib.list { smoke = args.smoke, data = cfg.data.train, only = { craft = true },
    craft = over }[1]
  m.name = name
  m.recipe.max_steps = args.smoke and m.recipe.max_steps or args.max_steps
  return m
end

-- the base model, and TI + LoRA: the generator every CRAFT variant starts from
local methods = lib.list { smoke = args.smoke, only = { base = true, ti_lora = true } }
methods[#methods + 1] = craft_variant('CRAFT (all four)', {})
for _, d in ipairs { 'prompt', 'checklist', 'probe', 'fidelity' } do
  local w = { prompt = 1, checklist = 1, probe = 1, fidelity = 1 }
  w[d] = 0
  methods[#methods + 1] = craft_variant('CRAFT - ' .. d, { reward_weights = w })
end
for k in tostring(args.ks):gmatch('%d+') do
  k = tonumber(k)
  if k ~= lib.CRAFT.grad_steps then
    methods[#methods + 1] = craft_variant(('CRAFT K=%d'):format(k), { grad_steps = args.smoke and math.min(k, 4) or k })
  end
end
-- no cap on the reward's dimensions (METHOD.md's plain weighted sum): a reward of its own
methods[#methods + 1] = craft_variant('CRAFT, no reward cap', { reward_cap = false })
cfg.methods = methods
require('craft.experiment').run(cfg)
return 0
