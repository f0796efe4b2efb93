-- examples/05_recipe_on_csv_folder.lua: a CRAFT comparison on your own labelled image folder.
--
--   craft examples/05_recipe_on_csv_folder.lua [--csv DIR/labels.csv] [--label_col class]
--        [--shots 8] [--out runs/examples/05] [--smoke]
--
-- The folder is images plus a CSV with a path column (relative to the CSV) and a label column:
-- any data set in that shape runs through craft.experiment. Without --csv the example first
-- writes one: chest x-ray phantoms from a seed no built-in model was trained on (`craft phantoms
-- --seed 2001`, in OUT/phantoms), standing in for your data. The recipe then
--   1. cuts the folder into the six disjoint splits an experiment needs (few-shot reals the
--      generator adapts to; the reward's fit and calibration reals; the judge's; a test split),
--      recording which CSV rows each holds (the independence check compares them);
--   2. names the reward (tiny CLIP + DINOv2: the CAS CRAFT ascends) and the judge (a ResNet of
--      another family) and the knowledge artifacts (prompts and checklists per class);
--   3. runs the base model, TI + LoRA, and CRAFT from TI + LoRA, and writes the table and report.
local craft = require 'craft'
local repo = require 'craft.repo'
local args = require('lib.args')(arg,
  { csv = '', label_col = 'class', shots = 8, out = 'runs/examples/05', smoke = false },
  'craft examples/05_recipe_on_csv_folder.lua [--csv FILE] [--label_col NAME] [--shots N] [--out DIR] '
  .. '[--smoke]')
local smoke = args.smoke

local out = args.out
local csv = args.csv
if csv == '' then
  local dir = out .. '/phantoms'
  require('craft.commands.phantoms').main { '--modality', 'cxr', '--n', smoke and '400' or '1200',
    '--size', '32', '--seed', '2001', '--out', dir }
  csv = dir .. '/labels.csv'
end

-- the knowledge artifacts of the images' domain: here the cxr phantoms' (recipes/knowledge)
local K = require('knowledge').get('cxr')
local all = craft.data.image_folder { csv = csv, label_col = args.label_col, size = 32, classes = K.classes }
print(('%s: %d images of %s'):format(csv, all.images:size(1), table.concat(all.classes, ', ')))

-- 1. six disjoint splits, per class in a seeded order
local per = smoke and 16 or 48
local sizes = { { 'few_shot', args.shots }, { 'reward_fit', per }, { 'calibration', per },
  { 'judge_fit', per }, { 'judge_calibration', per }, { 'test', per } }
local labels = all.labels:flat()
local order = craft.data.permutation(#labels, 7, 0)
local by_class = {}
for _, i in ipairs(order) do
  local c = labels[i] + 1
  by_class[c] = by_class[c] or {}
  by_class[c][#by_class[c] + 1] = i
end
local splits, taken = {}, {}
for _, s in ipairs(sizes) do
  local idx, ys = {}, {}
  for c = 1, #all.classes do
    local pool = by_class[c] or {}
    taken[c] = taken[c] or 0
    if taken[c] + s[2] > #pool then
      error(('%s: class %s has %d images, the splits need %d or more'):format(csv, all.classes[c], #pool,
        taken[c] + s[2]), 0)
    end
    for k = 1, s[2] do idx[#idx + 1] = pool[taken[c] + k]; ys[#ys + 1] = c - 1 end
    taken[c] = taken[c] + s[2]
  end
  splits[s[1]] = { images = craft.data.take(all.images, idx), labels = craft.tensor(ys, { dtype = 'i64' }),
    classes = all.classes, name = s[1], provenance = { { source = 'csv:' .. csv, indices = idx } } }
end

-- 2. the reward, the judge and the knowledge
local E = craft.encoders
local cfg = {
  name = 'my folder', title = 'CRAFT on ' .. csv, out = out,
  pipeline = repo.path('models/builtin/sd-tiny'),
  classes = all.classes, knowledge = K, splits = splits,
  reward = { vlm = E.clip(repo.path('models/builtin/clip-tiny')),
    vision = E.dinov2(repo.path('models/builtin/dinov2-tiny')), cas = { q = 0.10, k = 5 } },
  -- no oracle: real data has none
  judge = { vision = E.resnet(repo.path('models/builtin/resnet-tiny')), cas = { q = 0.10, k = 5 } },
  train_seeds = { 0 },
  generate = { per_class = 4, steps = smoke and 4 or 10, cfg = 3 },
  jobs = 1,
}

-- 3. the methods (craft.methods), at a few steps each here
local S = smoke and 3 or 50
cfg.methods = {
  { name = 'Base + enriched', kind = 'base', baseline = true },
  { name = 'TI + LoRA', kind = 'ti_lora', baseline = true, ti = { max_steps = smoke and 4 or 100 },
    lora = { max_steps = smoke and 4 or 200 } },
  { name = 'CRAFT', kind = 'craft', from = 'TI + LoRA', recipe = { max_steps = S, steps = smoke and 4 or 10,
    grad_steps = 2, cfg = 3, batch_size = 2, lr = 1e-3, lora_rank = 4, real_diffusion_weight = 5,
    reward = { cap = 0.5, transform = 'log' } } },
}
local res = require('craft.experiment').run(cfg)
assert(#res.rows == 3 and res.rows[3].judge_tail ~= nil, 'three methods graded')
print('example ok: a recipe on a CSV image folder (report: ' .. out .. '/report/index.html)')
