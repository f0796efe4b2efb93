-- recipes/pneumoniamnist.lua: the CRAFT comparison on real chest X-rays (PneumoniaMNIST).
--
--   ./build/craft recipes/pneumoniamnist.lua [--data ../shared/data/pneumoniamnist/pneumoniamnist.npz]
--        [--shots 16] [--out runs/pneumoniamnist] [--seeds 0,1,2] [--budget 200] [--jobs N] [--tune]
--        [--reuse] [--smoke] [--pipeline DIR] [--models DIR | --clip DIR --dinov2 DIR --judge DIR]
--
-- The methods and the evaluation of recipes/quickstart.lua on a real data set (recipes/lib/
-- real_set.lua): the reward and the judge are stand-ins pretrained on their own pools of the
-- set's training split (models/pneumoniamnist/, recipes/pretrain/real_standins.lua); the
-- generator is the built-in phantom-trained one. Real checkpoints go in with the options.
local R = dofile('recipes/lib/real_set.lua')
local defaults = { data = '', out = 'runs/pneumoniamnist' }
for k, v in pairs(R.DEFAULTS) do defaults[k] = v end
local args = dofile('recipes/lib/args.lua')(arg, defaults,
  'craft recipes/pneumoniamnist.lua [--data NPZ] [--shots N] [--out DIR] [--seeds 0,1,2] [--budget N] [--jobs N] [--tune] [--reuse] [--smoke] [--pipeline|--models|--clip|--dinov2|--judge DIR]')
R.run('pneumoniamnist', args, {
  name = ('pneumoniamnist, %d shots per class'):format(args.shots),
  title = ('CRAFT on PneumoniaMNIST: %d labelled images per class'):format(args.shots),
  notes = 'PneumoniaMNIST (MedMNIST v2, CC BY 4.0); reward and judge stand-ins from recipes/pretrain/real_standins.lua.',
})
return 0
