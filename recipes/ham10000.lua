-- recipes/ham10000.lua: the CRAFT comparison on real dermoscopy (HAM10000, nevus vs melanoma).
--
--   ./build/craft recipes/ham10000.lua [--data ../shared/data/ham10000-mel-nv/labels.csv]
--        [--shots 16] [--out runs/ham10000] [--seeds 0,1,2] [--budget 200] [--jobs N] [--tune]
--        [--reuse] [--smoke] [--pipeline DIR] [--models DIR | --clip DIR --dinov2 DIR --judge DIR]
--
-- --data is the image folder's CSV (columns file, label, split, lesion_id; images relative to
-- the CSV's folder) or a MedMNIST-style npz. Parts take whole lesions (several photographs of one
-- lesion never straddle two parts). The reward and judge stand-ins come from
-- recipes/pretrain/real_standins.lua set=ham10000 (models/ham10000/).
local R = dofile('recipes/lib/real_set.lua')
local defaults = { data = '', out = 'runs/ham10000' }
for k, v in pairs(R.DEFAULTS) do defaults[k] = v end
local args = dofile('recipes/lib/args.lua')(arg, defaults,
  'craft recipes/ham10000.lua [--data CSV|NPZ] [--shots N] [--out DIR] [--seeds 0,1,2] [--budget N] [--jobs N] [--tune] [--reuse] [--smoke] [--pipeline|--models|--clip|--dinov2|--judge DIR]')
R.run('ham10000', args, {
  name = ('ham10000, %d shots per class'):format(args.shots),
  title = ('CRAFT on HAM10000 (nevus vs melanoma): %d labelled images per class'):format(args.shots),
  notes = 'HAM10000 (Tschandl et al., Sci Data 2018; CC BY-NC 4.0); reward and judge stand-ins from recipes/pretrain/real_standins.lua.',
})
return 0
