-- The judge must share no model, fitted data or real image with the reward (METHOD.md, "Evaluation
-- integrity"): craft.experiment.independence refuses a configuration that breaks this, naming the
-- overlap, and craft.experiment.run refuses it before any training starts.
local craft = require 'craft'
local I = require 'craft.experiment.independence'
local T = {}

local function ds(seed, n, prov)
  return { images = craft.rand({ n, 3, 8, 8 }, { seed = seed }), labels = craft.tensor({ 0, 1, 0, 1 }, { dtype = 'i64' }),
    provenance = prov or { { source = 'toy', seed = seed, first = 0, n = n } } }
end

local function splits()
  return { few_shot = ds(1, 4), reward_fit = ds(2, 4), calibration = ds(3, 4), judge_fit = ds(4, 4),
    judge_calibration = ds(5, 4), test = ds(6, 4) }
end

local reward_vision = { name = 'dinov2:models/builtin/dinov2-tiny', files = { 'models/builtin/dinov2-tiny/model.safetensors' },
  trained_on = { { source = 'phantoms', seed = 301, all = true } }, encode = function() end }
local reward_vlm = { name = 'clip:models/builtin/clip-tiny', files = { 'models/builtin/clip-tiny/model.safetensors' },
  trained_on = { { source = 'phantoms', seed = 201, all = true } } }
local judge_vision = { name = 'resnet:models/builtin/resnet-tiny', files = { 'models/builtin/resnet-tiny/model.safetensors' },
  trained_on = { { source = 'phantoms', seed = 401, all = true } }, encode = function() end }

function T.apart_configuration_passes(t)
  local p = I.check { splits = splits(), reward = { vlm = reward_vlm, vision = reward_vision }, judge = { vision = judge_vision } }
  t.eq(#p, 0, 'no overlap found')
end

function T.shared_encoder_or_file_is_refused(t)
  t.raises(function()
    I.check { splits = splits(), reward = { vlm = reward_vlm, vision = reward_vision }, judge = { vision = reward_vision } }
  end, 'the judge vision and the reward vision are the same encoder')
  -- the same weights under another name: found by content
  local tmp = os.tmpname()
  os.execute(("cp models/builtin/dinov2-tiny/model.safetensors '%s'"):format(tmp))
  local copy = { name = 'copy', files = { tmp }, encode = function() end }
  t.raises(function()
    I.check { splits = splits(), reward = { vlm = reward_vlm, vision = reward_vision }, judge = { vision = copy } }
  end, 'is used by the judge (vision) and by the reward (vision, as models/builtin/dinov2-tiny/model.safetensors)')
  os.remove(tmp)
end

function T.shared_images_are_refused(t)
  local s = splits()
  s.judge_fit = s.reward_fit
  t.raises(function() I.check { splits = s, reward = { vision = reward_vision }, judge = { vision = judge_vision } } end,
    'splits reward_fit and judge_fit are the same data set')
  -- the same pixels under another provenance
  s = splits()
  s.judge_calibration = { images = s.calibration.images:clone(), labels = s.calibration.labels,
    provenance = { { source = 'elsewhere', seed = 9 } } }
  t.raises(function() I.check { splits = s, reward = { vision = reward_vision }, judge = { vision = judge_vision } } end,
    '4 image(s) of split calibration are also in split judge_calibration')
  -- overlapping provenance ranges of one stream
  s = splits()
  s.test = ds(7, 4, { { source = 'toy', seed = 2, first = 3, n = 10 } })
  t.raises(function() I.check { splits = s, reward = { vision = reward_vision }, judge = { vision = judge_vision } } end,
    'splits reward_fit and test draw on the same images')
end

function T.models_trained_on_experiment_data_are_refused(t)
  local s = splits()
  local leaky = { name = 'leaky judge', files = {}, encode = function() end,
    trained_on = { { source = 'toy', seed = 6, all = true } } }
  t.raises(function() I.check { splits = s, reward = { vision = reward_vision }, judge = { vision = leaky } } end,
    'the judge vision (leaky judge) was trained on images of split test')
  local twin = { name = 'twin', files = {}, encode = function() end, trained_on = { { source = 'phantoms:cxr', seed = 301, class = 1 } } }
  t.raises(function() I.check { splits = s, reward = { vision = reward_vision }, judge = { vision = twin } } end,
    'the judge vision and the reward vision were trained on the same images')
  -- a generator trained on the test split
  t.raises(function()
    I.check { splits = s, reward = { vision = reward_vision }, judge = { vision = judge_vision },
      generator = { name = 'gen', trained_on = { { source = 'toy', seed = 1, indices = { 0, 1 } } } } }
  end, 'the generator (gen) was trained on images of split few_shot')
end

function T.provenance_overlap_rules(t)
  t.ok(I.entries_overlap({ source = 'phantoms', seed = 4, all = true }, { source = 'phantoms:cxr', seed = 4, class = 0, first = 0, n = 2 }))
  t.ok(not I.entries_overlap({ source = 'phantoms', seed = 4, all = true }, { source = 'phantoms:cxr', seed = 5, class = 0 }))
  t.ok(not I.entries_overlap({ source = 'phantoms:cxr', seed = 4, class = 0, first = 0, n = 2 },
    { source = 'phantoms:cxr', seed = 4, class = 1, first = 0, n = 2 }), 'other class')
  t.ok(not I.entries_overlap({ source = 'a:train', indices = { 1, 2 } }, { source = 'a:train', indices = { 3 } }))
  t.ok(I.entries_overlap({ source = 'a:train', indices = { 1, 2 } }, { source = 'a:train', indices = { 2, 9 } }))
  t.ok(not I.entries_overlap({ source = 'a:train', all = true }, { source = 'a:test', all = true }), 'other split')
  t.ok(not I.entries_overlap({ source = 'phantomsx', seed = 1, all = true }, { source = 'phantoms', seed = 1, all = true }),
    'a prefix only at a colon')
end

-- The experiment refuses before any job runs: the smoke quickstart with the reward's DINOv2 as the judge
function T.experiment_refuses_a_judge_that_is_the_reward(t)
  local cfg = dofile('recipes/lib/phantoms.lua') { modality = 'cxr', shots = 4, out = os.tmpname(), smoke = true }
  os.remove(cfg.out)
  cfg.judge.vision = cfg.reward.vision
  cfg.methods = { { name = 'Base', kind = 'base', baseline = true } }
  cfg.train_seeds = { 0 }
  t.raises(function() require('craft.experiment').run(cfg) end,
    'experiment: the judge is not independent of the reward: the judge vision and the reward vision are the same encoder')
  local f = io.open(cfg.out .. '/base/s0/done.json')
  t.ok(f == nil, 'no job ran')
  if f then f:close() end
  os.execute("rm -rf '" .. cfg.out .. "'")
end

-- The real sets' parts (recipes/lib/partition.lua): disjoint, the same on every call, per-class
-- quotas, whole groups (HAM10000's lesions) in one part.
function T.partition_is_disjoint_deterministic_and_grouped(t)
  local partition = dofile('recipes/lib/partition.lua')
  local labels, groups = {}, {}
  for i = 1, 300 do labels[i] = i % 3 == 0 and 1 or 0; groups[i] = 'g' .. math.floor((i - 1) / 3) * 3 + labels[i] end
  local parts = { { 'a', per_class = 10 }, { 'b', per_class = 20 }, { 'p1', rest = 2 }, { 'p2', rest = 2 } }
  local p = partition(labels, 5, parts)
  local seen, total = {}, 0
  for name, list in pairs(p) do
    for _, i in ipairs(list) do
      t.ok(not seen[i], 'image ' .. i .. ' in one part only (' .. name .. ')')
      seen[i] = true
      total = total + 1
    end
  end
  t.eq(total, 300, 'every image in a part')
  local c = { 0, 0 }
  for _, i in ipairs(p.a) do c[labels[i] + 1] = c[labels[i] + 1] + 1 end
  t.eq(c[1], 10); t.eq(c[2], 10)
  local again = partition(labels, 5, parts)
  t.eq(table.concat(again.b, ','), table.concat(p.b, ','), 'deterministic')
  t.ok(table.concat(partition(labels, 6, parts).b, ',') ~= table.concat(p.b, ','), 'another seed, another cut')
  local g = partition(labels, 5, parts, groups)
  local where = {}
  for name, list in pairs(g) do
    for _, i in ipairs(list) do
      local k = groups[i]
      t.ok(where[k] == nil or where[k] == name, 'group ' .. k .. ' in one part')
      where[k] = name
    end
  end
  local n = 0
  for _, i in ipairs(g.a) do if labels[i] == 0 then n = n + 1 end end
  t.ok(n >= 10, 'a grouped part has at least its share')
end

return T
