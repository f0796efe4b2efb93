-- examples/04_score_folder_with_cas.lua: score a folder of images with the Clinical Alignment
-- Score (METHOD.md: prompt alignment, checklist satisfaction, a diagnostic probe and real-image
-- fidelity, each standardised per class on held-out real images).
--
--   craft examples/04_score_folder_with_cas.lua [--folder DIR] [--modality cxr] [--out runs/examples/04]
--        [--smoke]
--
-- DIR holds images and a labels.csv (columns path, label, split: train / val / test), the layout
-- `craft phantoms` writes and craft.data.image_folder reads; without --folder the example writes
-- such a folder of chest x-ray phantoms first (in OUT/phantoms). The scores go to OUT/cas_scores.csv. The
-- CAS's probe and real-feature bank are fitted on the train split, its z-scores and per-class thresholds
-- calibrated on val, and the test images scored: each gets a CAS, its four standardised dimensions and a tail
-- flag (below the q = 0.10 quantile of its class's held-out reals).
local craft = require 'craft'
local repo = require 'craft.repo'
local args = require('lib.args')(arg,
  { folder = '', modality = 'cxr', out = 'runs/examples/04', smoke = false },
  'craft examples/04_score_folder_with_cas.lua [--folder DIR] [--modality cxr|fundus|derm|histo] [--out DIR] '
  .. '[--smoke]')

local folder = args.folder
if folder == '' then
  folder = args.out .. '/phantoms'
  -- the same code as `craft phantoms --modality cxr --n N --size 32 --out DIR`
  require('craft.commands.phantoms').main { '--modality', args.modality, '--n', args.smoke and '150' or '600',
    '--size', '32', '--out', folder }
end

local function split(name)
  return craft.data.image_folder { csv = folder .. '/labels.csv', label_col = 'class', split_col = 'split',
    split = name, size = 32,
    classes = craft.phantoms.classes(args.modality) }
end
local train, val, test = split('train'), split('val'), split('test')
print(('%s: %d train, %d val, %d test images; classes %s'):format(folder, train.images:size(1),
  val.images:size(1), test.images:size(1), table.concat(train.classes, ', ')))

-- the knowledge artifacts: enriched prompts (dimension 1) and the clinical checklist (dimension 2)
local K = require('knowledge').get(args.modality)
local E = craft.encoders
local vlm = E.clip(repo.path('models/builtin/clip-tiny'))   -- dimensions 1-2
local cas = craft.cas.new {
  classes = K.classes, prompts = K.prompts, checklists = K.checklists,
  vlm = vlm, vision = E.dinov2(repo.path('models/builtin/dinov2-tiny')),   -- dimensions 3-4
  -- the CLIP's own trained temperature: with the default 0.01 the tiny model's softmax saturates
  temperature = { prompt = vlm.temperature, checklist = vlm.temperature },
  k = 5, q = 0.10,
}
local probe = cas:fit(train.images, train.labels)
print(('probe accuracy: train %.3f, held out %.3f'):format(probe.train_accuracy, probe.val_accuracy))
cas:calibrate(val.images, val.labels)

local r = cas:score(test.images, test.labels)
print(('test images below their class threshold (the tail): %.1f%%'):format(100 * r.tail))
for c, name in ipairs(cas.classes) do
  local s, n = 0, 0
  for i, y in ipairs(r.labels) do if y + 1 == c then s, n = s + r.cas[i], n + 1 end end
  print(('  %-14s %3d images, mean CAS %7.3f, tail %5.1f%%'):format(name, n, n > 0 and s / n or 0 / 0,
    100 * r.tail_per_class[c]))
end
print('first image: CAS ' .. ('%.3f'):format(r.cas[1]) .. ', z-scores: ' .. (function()
  local parts = {}
  for _, d in ipairs(cas.dims) do parts[#parts + 1] = ('%s %.2f'):format(d, r.dims[d][1]) end
  return table.concat(parts, ', ')
end)())
-- per image, to a CSV beside the images
local rows = { { 'index', 'class', 'cas', 'below_threshold', 'z_prompt', 'z_checklist', 'z_probe',
  'z_fidelity' } }
for i, y in ipairs(r.labels) do
  rows[#rows + 1] = { i, cas.classes[y + 1], r.cas[i], r.below[i] and 1 or 0, r.dims.prompt[i],
    r.dims.checklist[i], r.dims.probe[i], r.dims.fidelity[i] }
end
os.execute("mkdir -p '" .. args.out .. "'")
craft.io.write_csv(args.out .. '/cas_scores.csv', rows)
print('wrote ' .. args.out .. '/cas_scores.csv')
assert(#r.cas == test.images:size(1) and r.tail >= 0 and r.tail <= 1, 'every test image scored')
print('example ok: scored a folder with CAS')
