-- recipes/ham10000.lua: the CRAFT comparison on real dermoscopy (HAM10000, nevus vs melanoma).
--
--   ./build/craft recipes/ham10000.lua [--data ../shared/data/ham10000-mel-nv/labels.csv]
--                 [--shots 16] [--out runs/ham10000] [--size 32] [--smoke]
--                 [--pipeline DIR] [--clip DIR] [--dinov2 DIR] [--ood DIR]
--
-- --data is either the image folder's CSV (columns file, label, split; images relative to the
-- CSV's folder; the full-size HAM10000 with such a CSV works the same) or a MedMNIST-style npz
-- (train / val / test arrays). Same methods and evaluation as recipes/quickstart.lua (recipes/
-- lib/real_set.lua); the built-in phantom-trained models are stand-ins for real checkpoints.
local craft = require 'craft'
local R = dofile('recipes/lib/real_set.lua')
local defaults = { data = '../shared/data/ham10000-mel-nv/labels.csv', out = 'runs/ham10000' }
for k, v in pairs(R.DEFAULTS) do defaults[k] = v end
local args = dofile('recipes/lib/args.lua')(arg, defaults,
  'craft recipes/ham10000.lua [--data CSV|NPZ] [--shots N] [--out DIR] [--size 32] [--smoke] [--pipeline|--clip|--dinov2|--ood DIR]')

local K = dofile('recipes/knowledge/ham10000.lua')
local function load(split)
  if args.data:match('%.npz$') then
    return craft.data.medmnist(args.data, { split = split, size = args.size, channels = 3, classes = K.classes })
  end
  -- the CSV's label column is 0 (nevus) / 1 (melanoma): the knowledge file's class order
  local ds = craft.data.image_folder { csv = args.data, path_col = 'file', label_col = 'label', split_col = 'split',
    split = split, size = args.size, channels = 3, classes = { '0', '1' } }
  ds.classes = K.classes
  return ds
end

R.run({
  name = ('ham10000, %d shots per class'):format(args.shots),
  title = ('CRAFT on HAM10000 (nevus vs melanoma): %d labelled images per class'):format(args.shots),
  knowledge = K, load = load,
  notes = 'HAM10000 (Tschandl et al., Sci Data 2018; CC BY-NC 4.0); built-in phantom-trained tiny models as stand-ins.',
}, args)
return 0
