-- recipes/lib/real_set.lua: the CRAFT comparison on a real labelled data set (recipes/
-- pneumoniamnist.lua, recipes/ham10000.lua). run(spec, args):
--   spec = {name, title, knowledge, notes, load = function(split) -> data set (craft.data)}
--   args = {shots, out, pipeline, clip, dinov2, ood, smoke}
-- `shots` labelled training images per class to adapt to (the first ones in file order:
-- deterministic), the val split as the held-out reals that standardise the CAS and set the
-- thresholds, the test split for the downstream classifier. There is no oracle for real images.
local craft = require 'craft'
local E = craft.encoders
local data = craft.data

local M = {}

M.DEFAULTS = { shots = 16, pipeline = 'models/builtin/sd-tiny', clip = 'models/builtin/clip-tiny',
  dinov2 = 'models/builtin/dinov2-tiny', ood = 'models/builtin/resnet-tiny', size = 32, smoke = false }

-- per_class images of each class of ds (the first ones in file order)
function M.take_balanced(ds, per_class)
  local idx, ys, counts = {}, {}, {}
  local flat = ds.labels:flat()
  for i, y in ipairs(flat) do
    counts[y] = (counts[y] or 0) + 1
    if counts[y] <= per_class then idx[#idx + 1] = i; ys[#ys + 1] = y end
  end
  for c = 0, #ds.classes - 1 do
    if (counts[c] or 0) < per_class then
      io.stderr:write(('note: class %s has %d images in this split, fewer than the %d asked for\n'):format(
        ds.classes[c + 1], counts[c] or 0, per_class))
    end
  end
  return { images = data.take(ds.images, idx), labels = craft.tensor(ys, { dtype = 'i64' }), classes = ds.classes }
end

function M.run(spec, args)
  local K, smoke = spec.knowledge, args.smoke
  local function split(name, per_class) return M.take_balanced(spec.load(name), per_class) end
  local train = split('train', args.shots)
  return require('craft.experiment').run {
    name = spec.name, title = spec.title, out = args.out, seed = 0,
    pipeline = args.pipeline,
    classes = K.classes, knowledge = K,
    encoders = { vlm = E.clip(args.clip), vision = E.dinov2(args.dinov2), ood = E.resnet(args.ood) },
    cas = { q = 0.10, k = 5, reward_cap = dofile('recipes/lib/methods.lua').REWARD_CAP },
    data = { train = train, val = split('val', smoke and 16 or 64), test = split('test', smoke and 16 or 128) },
    generate = { per_class = smoke and 4 or 24, steps = smoke and 4 or 10, cfg = 3.0, seeds = smoke and { 0, 1 } or { 0, 1, 2 } },
    methods = dofile('recipes/lib/methods.lua').list { smoke = smoke, data = train },
    notes = spec.notes,
  }
end

return M
