-- recipes/pneumoniamnist.lua: the CRAFT comparison on real chest X-rays (PneumoniaMNIST).
--
--   ./build/craft recipes/pneumoniamnist.lua [--data ../shared/data/pneumoniamnist/pneumoniamnist.npz]
--                 [--shots 16] [--out runs/pneumoniamnist] [--size 32] [--smoke]
--                 [--pipeline DIR] [--clip DIR] [--dinov2 DIR] [--ood DIR]
--
-- Same methods and evaluation as recipes/quickstart.lua on a real data set (recipes/lib/
-- real_set.lua). The built-in models were trained on phantoms only, so here they are stand-ins
-- that exercise the pipeline: bring real checkpoints (a diffusers Stable Diffusion folder, a
-- CLIP / BiomedCLIP and a DINOv2 folder, another family's vision model) with the options.
local craft = require 'craft'
local R = dofile('recipes/lib/real_set.lua')
local defaults = { data = '../shared/data/pneumoniamnist/pneumoniamnist.npz', out = 'runs/pneumoniamnist' }
for k, v in pairs(R.DEFAULTS) do defaults[k] = v end
local args = dofile('recipes/lib/args.lua')(arg, defaults,
  'craft recipes/pneumoniamnist.lua [--data NPZ] [--shots N] [--out DIR] [--size 32] [--smoke] [--pipeline|--clip|--dinov2|--ood DIR]')

R.run({
  name = ('pneumoniamnist, %d shots per class'):format(args.shots),
  title = ('CRAFT on PneumoniaMNIST: %d labelled images per class'):format(args.shots),
  knowledge = dofile('recipes/knowledge/pneumoniamnist.lua'),
  load = function(split) return craft.data.medmnist(args.data, { split = split, size = args.size, channels = 3 }) end,
  notes = 'PneumoniaMNIST (MedMNIST v2, CC BY 4.0); built-in phantom-trained tiny models as stand-ins.',
}, args)
return 0
