-- recipes/pretrain/evaluator.lua: the judge's encoder on phantoms, a small convolutional ResNet
-- (transformers ResNetModel layout: models/builtin/resnet-tiny). The experiments grade every method
-- with it (judge_tail, downstream classifier, memorisation, FID), apart from the reward by
-- construction (docs/evaluation.md): another architecture family than the reward's ViTs (tiny CLIP
-- and DINOv2), its own phantom stream (seeds.lua: evaluator), disjoint from the reward models', the
-- generator's and every experiment split's, and other targets: the 11 (modality, class) labels
-- only. The reward's DINOv2 also regresses the phantom generator's parameters; the judge does not,
-- so the two feature spaces are not taught the same measurements.
--   ./build/craft recipes/pretrain/evaluator.lua [steps=2000 batch=64 augment=1]
-- Architecture: basic blocks, stem 32 channels (7x7 stride 2 and max pool: 32 px -> 8x8), stages
-- (32, 64, 128) of one layer each (8x8, 4x4, 2x2): about 0.3 M parameters, 128-d features.
-- Augmentation (augment = 1): shifts of up to 2 pixels (replicate padding) and a mild gain / offset
-- jitter per image, so that the judge's verdict rests on the anatomy rather than on exact pixel
-- positions or levels. There is no text side: the judge's CAS uses the probe and fidelity
-- dimensions only.
local craft = require 'craft'
local C = dofile(arg[0]:match('^(.*)/') .. '/common.lua')
local resnet = require 'craft.models.resnet'
local nn, F = craft.nn, craft.F

local o = C.args { steps = 2000, batch = 64, lr = 2e-3, wd = 1e-4, save_every = 500, augment = 1 }
local OUT = C.out .. '/resnet-tiny'
local CONFIG = { architectures = { 'ResNetModel' }, model_type = 'resnet', num_channels = 3, embedding_size = 32,
  hidden_sizes = { 32, 64, 128 }, depths = { 1, 1, 1 }, layer_type = 'basic', hidden_act = 'relu',
  downsample_in_first_stage = false, downsample_in_bottleneck = false, torch_dtype = 'float16',
  transformers_version = '4.38.2' }
local MEAN, STD = { 0.485, 0.456, 0.406 }, { 0.229, 0.224, 0.225 }   -- ImageNet, as ResNet processors
local function normalise(x)
  return (x - craft.tensor(MEAN):reshape(1, 3, 1, 1)) / craft.tensor(STD):reshape(1, 3, 1, 1)
end

local seed = C.seeds.evaluator.seed
craft.manual_seed(seed)
local model = resnet.ResNetModel(CONFIG)
local D = CONFIG.hidden_sizes[#CONFIG.hidden_sizes]
local classes = C.all_classes()
local heads = nn.Sequential(nn.Linear(D, #classes))

local params = {}
for _, np in ipairs(model:named_parameters()) do params[#params + 1] = np end
for _, np in ipairs(heads:named_parameters()) do params[#params + 1] = { 'cls.' .. np[1], np[2] } end
local opt = craft.optim.AdamW(params, { lr = o.lr, weight_decay = o.wd })
local sched = craft.optim.LRScheduler(opt, craft.optim.schedule.cosine(o.steps, { warmup = 100, min_ratio = 0.02 }))

local function features(x) return model(normalise(x)).features end
local baseline = C.linear_probe(function(x) return features(x) end)
C.log('resnet: %d parameters; untrained linear probe %s', model:num_parameters(), C.fmt_acc(baseline))

C.mkdir(OUT)
local function save(step, st)
  C.write_json(OUT .. '/config.json', CONFIG)
  C.write_json(OUT .. '/preprocessor_config.json', { crop_size = { height = 32, width = 32 }, do_normalize = true,
    do_resize = true, image_mean = MEAN, image_std = STD, size = { shortest_edge = 32 }, crop_pct = 1.0,
    image_processor_type = 'ConvNextImageProcessor' })
  C.save_half(OUT .. '/model.safetensors', model)
  st.step, st.untrained_probe, st.classes = step, baseline, classes
  C.write_json(OUT .. '/craft_training.json', st)
end

-- shifts of up to 2 px and a gain / offset per image, drawn from the step's own seed
local function augment(x, step)
  if o.augment == 0 then return x end
  local n, S = x:size(1), x:size(3)
  local g = craft.rand({ n, 4 }, { seed = seed * 7919 + step }):flat()
  local p = F.pad(x, { 2, 2, 2, 2 }, 'replicate')
  local parts = {}
  for i = 1, n do
    local dx, dy = math.floor(g[4 * i - 3] * 5), math.floor(g[4 * i - 2] * 5)
    local gain, off = 0.9 + 0.2 * g[4 * i - 1], 0.1 * g[4 * i] - 0.05
    parts[i] = ((p:narrow(1, i, 1):narrow(3, dy + 1, S):narrow(4, dx + 1, S)) * gain + off):clamp(0, 1)
  end
  return craft.cat(parts, 1)
end

local per = o.batch / 4
local t0, ema = C.now(), nil
for step = 1, o.steps do
  model:train()
  local x, rows = C.mixed(per, seed, (step - 1) * per)
  local f = features(augment(x, step))
  local ys = {}
  for i, r in ipairs(rows) do ys[i] = r.label end
  local ce = F.cross_entropy(heads(f), craft.tensor(ys, { dtype = 'i64' }))
  ce:backward()
  opt:step(); opt:zero_grad(); sched:step()
  local s = { ce = ce:item() }
  if not ema then ema = s else for k, v in pairs(s) do ema[k] = 0.95 * ema[k] + 0.05 * v end end
  if step % 50 == 0 or step == 1 then
    C.log('step %5d  ce %.4f  lr %.2e  %.2f s/step', step, ema.ce, opt.lr, (C.now() - t0) / step)
  end
  if step % o.save_every == 0 or step == o.steps then
    model:eval()   -- BatchNorm on its running statistics, as loaded
    local acc = C.linear_probe(function(im) return features(im) end)
    C.log('linear probe (held-out): %s', C.fmt_acc(acc))
    save(step, { ce = ema.ce, probe = acc, seconds = C.now() - t0, steps = o.steps, batch = o.batch, seed = seed,
      augment = o.augment, targets = 'labels', data = { { source = 'phantoms', seed = seed, all = true } } })
  end
end
C.log('resnet: done in %.0f s -> %s', C.now() - t0, OUT)
