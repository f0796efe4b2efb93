-- recipes/pneumoniamnist.lua: the CRAFT comparison on real chest X-rays (PneumoniaMNIST).
--
--   ./build/craft recipes/pneumoniamnist.lua [--data ../shared/data/pneumoniamnist/pneumoniamnist.npz]
--                                             [--shots 16] [--out runs/pneumoniamnist] [--smoke]
--
-- Same methods and evaluation as recipes/quickstart.lua, on a real data set: `shots` labelled
-- training images per class to adapt to, the val split as the held-out reals that standardise
-- the CAS and set the thresholds, the test split for the downstream classifier. There is no
-- oracle for real images. The built-in models were trained on phantoms only, so here they are
-- stand-ins that exercise the pipeline: bring real checkpoints (a diffusers Stable Diffusion
-- folder, a CLIP / BiomedCLIP and a DINOv2 folder) with --pipeline, --clip, --dinov2, --ood.
local craft = require 'craft'
local E = craft.encoders

local args = { data = '../shared/data/pneumoniamnist/pneumoniamnist.npz', shots = 16, out = 'runs/pneumoniamnist',
  pipeline = 'models/builtin/sd-tiny', clip = 'models/builtin/clip-tiny', dinov2 = 'models/builtin/dinov2-tiny',
  ood = 'models/builtin/resnet-tiny', size = 32 }
do
  local i = 1
  while arg[i] do
    local k = arg[i]
    if k == '--smoke' then args.smoke = true; i = i + 1
    elseif k:match('^%-%-') and arg[i + 1] then args[k:sub(3)] = tonumber(arg[i + 1]) or arg[i + 1]; i = i + 2
    else error('usage: craft recipes/pneumoniamnist.lua [--data NPZ] [--shots N] [--out DIR] [--size 32] [--smoke]', 0) end
  end
end

local K = dofile('recipes/knowledge/pneumoniamnist.lua')
local data = craft.data

-- per_class images of each class from a split (the first ones in file order, deterministic)
local function take_balanced(ds, per_class)
  local idx, counts = {}, {}
  for i, y in ipairs(ds.labels:flat()) do
    counts[y] = (counts[y] or 0) + 1
    if counts[y] <= per_class then idx[#idx + 1] = i end
  end
  local ys = {}
  local flat = ds.labels:flat()
  for k, i in ipairs(idx) do ys[k] = flat[i] end
  return { images = data.take(ds.images, idx), labels = craft.tensor(ys, { dtype = 'i64' }), classes = ds.classes }
end

local function split(name, per_class)
  local ds = data.medmnist(args.data, { split = name, size = args.size, channels = 3 })
  return per_class and take_balanced(ds, per_class) or ds
end

local smoke = args.smoke
local result = require('craft.experiment').run {
  name = ('pneumoniamnist, %d shots per class'):format(args.shots),
  title = ('CRAFT on PneumoniaMNIST: %d labelled images per class'):format(args.shots),
  out = args.out, seed = 0,
  pipeline = args.pipeline,
  classes = K.classes, knowledge = K,
  encoders = { vlm = E.clip(args.clip), vision = E.dinov2(args.dinov2), ood = E.resnet(args.ood) },
  data = { train = split('train', args.shots), val = split('val', smoke and 16 or 64), test = split('test', smoke and 16 or 128) },
  generate = { per_class = smoke and 4 or 24, steps = smoke and 4 or 10, cfg = 3.0, seeds = smoke and { 0, 1 } or { 0, 1, 2 } },
  downstream = { epochs = smoke and 2 or 15 },
  methods = {
    { name = 'Base + enriched', kind = 'base', baseline = true },
    { name = 'TI + LoRA', kind = 'ti_lora', baseline = true, ti = { max_steps = smoke and 4 or 200 }, lora = { max_steps = smoke and 4 or 300 } },
    { name = 'DPO', kind = 'dpo', baseline = true, recipe = { max_steps = smoke and 3 or 150, steps = smoke and 4 or 10, cfg = 3.0, batch_size = 4, lr = 1e-3 } },
    { name = 'CRAFT', kind = 'craft', recipe = { max_steps = smoke and 3 or 800, steps = smoke and 4 or 10, cfg = 3.0,
      kl_weight = 0.1, batch_size = 4, lr = 1e-3, rank = 8 } },
  },
  notes = 'PneumoniaMNIST (MedMNIST v2, CC BY 4.0); built-in phantom-trained tiny models as stand-ins.',
}
return 0
