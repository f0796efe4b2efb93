-- recipes/lib/real_sets.lua: the real data sets of the built-in comparisons, each cut once into
-- disjoint parts (recipes/lib/partition.lua, fixed seeds): the experiment splits and the pools
-- its stand-in models are pretrained on (recipes/pretrain/real_standins.lua). Nothing a model was
-- pretrained on is ever an experiment image, and the reward's and the judge's stand-ins see
-- different pools; craft.experiment.independence checks the indices both sides record.
--   local R = require 'lib.real_sets'     (recipes/ is on package.path: craft.repo)
--   local parts = R.parts(R.sets.pneumoniamnist, path, 32)  -- name -> data set with .provenance
local craft = require 'craft'
local partition = require 'lib.partition'

-- the real data sets: $CRAFT_SHARED_DATA, else the shared/data folder beside the repository
local function shared(rel)
  return (os.getenv('CRAFT_SHARED_DATA') or require('craft.repo').path('../shared/data')) .. '/' .. rel
end

local M = {}

M.sets = {
  pneumoniamnist = {
    name = 'pneumoniamnist',
    title = 'PneumoniaMNIST', data = shared('pneumoniamnist/pneumoniamnist.npz'),
    knowledge = 'pneumoniamnist',   -- recipes/knowledge (require 'knowledge')
    models = 'models/pneumoniamnist',
    seed = 7,
    -- the npz's own splits, cut into parts: `per_class` images of every class, then the rest in
    -- equal shares. few_shot_pool holds the candidates of the few-shot set (a run takes the first
    -- `shots` of each class), so --shots never moves another part.
    parts = {
      train = { { 'few_shot_pool', per_class = 64 }, { 'reward_fit', per_class = 64 },
      { 'judge_fit', per_class = 64 },
        { 'tune', per_class = 64 }, { 'pool_reward_vlm', rest = 4 }, { 'pool_reward_vision', rest = 4 },
        { 'pool_judge', rest = 4 }, { 'pool_generator', rest = 4 } },
      val = { { 'calibration', per_class = 64 }, { 'judge_calibration', per_class = 64 } },
      test = { { 'test', per_class = 128 } },
    },
    load = function(path, split, size)
      return craft.data.medmnist(path, { split = split, size = size, channels = 3 })
    end,
  },
  ham10000 = {
    name = 'ham10000',
    title = 'HAM10000 (nevus vs melanoma)', data = shared('ham10000-mel-nv/labels.csv'),
    knowledge = 'ham10000',
    models = 'models/ham10000',
    seed = 11,
    -- several photographs of one lesion share a lesion_id: parts take whole lesions
    group_col = 'lesion_id',
    parts = {
      train = { { 'few_shot_pool', per_class = 64 }, { 'reward_fit', per_class = 64 },
      { 'judge_fit', per_class = 64 },
        { 'tune', per_class = 64 }, { 'pool_reward_vlm', rest = 4 }, { 'pool_reward_vision', rest = 4 },
        { 'pool_judge', rest = 4 }, { 'pool_generator', rest = 4 } },
      val = { { 'calibration', per_class = 54 }, { 'judge_calibration', per_class = 54 } },
      test = { { 'test', per_class = 128 } },
    },
    load = function(path, split, size)
      local K = require('knowledge').get('ham10000')
      if path:match('%.npz$') then
        return craft.data.medmnist(path, { split = split, size = size, channels = 3, classes = K.classes })
      end
      -- the CSV's label column is 0 (nevus) / 1 (melanoma): the knowledge file's class order
      local ds = craft.data.image_folder { csv = path, path_col = 'file', label_col = 'label',
      split_col = 'split',
        split = split, size = size, channels = 3, classes = { '0', '1' } }
      ds.classes = K.classes
      return ds
    end,
  },
}

-- parts(set, path, size) -> {part name -> {images, labels, classes, provenance, indices}}
function M.parts(set, path, size)
  local out = {}
  for _, split in ipairs { 'train', 'val', 'test' } do
    if set.parts[split] then
      local ds = set.load(path or set.data, split, size)
      local groups
      if set.group_col and ds.rows then
        groups = {}
        for i, r in ipairs(ds.rows) do groups[i] = r[set.group_col] end
      end
      local idx = partition(ds.labels:flat(), set.seed, set.parts[split], groups)
      for name, list in pairs(idx) do
        local ys = {}
        local flat = ds.labels:flat()
        for k, i in ipairs(list) do ys[k] = flat[i] end
        out[name] = { images = craft.data.take(ds.images, list), labels = craft.tensor(ys, { dtype = 'i64' }),
          classes = ds.classes, indices = list, name = name,
          provenance = { { source = set.name .. ':' .. split, indices = list } } }
      end
    end
  end
  return out
end

-- the first `shots` images of every class of a part (its order is the partition's)
function M.first_per_class(part, shots)
  local keep, ys, counts = {}, {}, {}
  for i, y in ipairs(part.labels:flat()) do
    counts[y] = (counts[y] or 0) + 1
    if counts[y] <= shots then keep[#keep + 1] = i; ys[#ys + 1] = y end
  end
  local idx = {}
  for k, i in ipairs(keep) do idx[k] = part.indices[i] end
  return { images = craft.data.take(part.images, keep), labels = craft.tensor(ys, { dtype = 'i64' }),
    classes = part.classes,
    indices = idx, name = part.name, provenance = { { source = part.provenance[1].source, indices = idx } } }
end

return M
