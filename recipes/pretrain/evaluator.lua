-- recipes/pretrain/evaluator.lua: the out-of-family evaluator, a small convolutional ResNet
-- (transformers ResNetModel layout: models/builtin/resnet-tiny) whose pooled features give CAS
-- dimensions 3 (probe) and 4 (fidelity) in a feature space of another family than the ViTs the
-- reward uses: a gain that holds in both spaces is not the reward model's blind spot.
--   ./build/craft recipes/pretrain/evaluator.lua [steps=2000 batch=64]
-- Architecture: basic blocks, stem 32 channels (7x7 stride 2 and max pool: 32 px -> 8x8), stages
-- (32, 64, 128) of one layer each (8x8, 4x4, 2x2): about 0.3 M parameters, 128-d features.
-- Training, supervised (an evaluator, like an ImageNet ResNet): the 11 (modality, class) labels,
-- plus the regression of each modality's standardised generator parameters (richer features
-- than the label alone, for the fidelity dimension's nearest neighbours). Its data come from its
-- own seed (seeds.lua: evaluator), disjoint from the reward models' and the finetuning set's.
-- There is no text side: out-of-family CAS uses the probe and fidelity dimensions only.
local craft = require 'craft'
local C = dofile(arg[0]:match('^(.*)/') .. '/common.lua')
local resnet = require 'craft.models.resnet'
local nn, F = craft.nn, craft.F

local o = C.args { steps = 2000, batch = 64, lr = 2e-3, wd = 1e-4, save_every = 500 }
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
local stats = {}
for _, m in ipairs(C.seeds.modalities) do stats[m] = C.param_stats(m, seed) end
local heads = nn.Sequential(nn.Linear(D, #classes))
local reg = {}
for _, m in ipairs(C.seeds.modalities) do reg[m] = nn.Linear(D, #stats[m]) end

local params = {}
for _, np in ipairs(model:named_parameters()) do params[#params + 1] = np end
for _, np in ipairs(heads:named_parameters()) do params[#params + 1] = { 'cls.' .. np[1], np[2] } end
for m, h in pairs(reg) do for _, np in ipairs(h:named_parameters()) do params[#params + 1] = { m .. '.' .. np[1], np[2] } end end
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

local per = o.batch / 4
local t0, ema = C.now(), nil
for step = 1, o.steps do
  model:train()
  local x, rows = C.mixed(per, seed, (step - 1) * per)
  local f = features(x)
  local ys = {}
  for i, r in ipairs(rows) do ys[i] = r.label end
  local ce = F.cross_entropy(heads(f), craft.tensor(ys, { dtype = 'i64' }))
  local mse
  for k, m in ipairs(C.seeds.modalities) do
    local l = F.mse_loss(reg[m](f:narrow(1, (k - 1) * per + 1, per)),
      C.param_targets({ unpack(rows, (k - 1) * per + 1, k * per) }, stats[m]))
    mse = mse and mse + l or l
  end
  local loss = ce + mse * 0.25
  loss:backward()
  opt:step(); opt:zero_grad(); sched:step()
  local s = { ce = ce:item(), mse = mse:item() * 0.25 }
  if not ema then ema = s else for k, v in pairs(s) do ema[k] = 0.95 * ema[k] + 0.05 * v end end
  if step % 50 == 0 or step == 1 then
    C.log('step %5d  ce %.4f  param mse %.4f  lr %.2e  %.2f s/step', step, ema.ce, ema.mse, opt.lr, (C.now() - t0) / step)
  end
  if step % o.save_every == 0 or step == o.steps then
    model:eval()   -- BatchNorm on its running statistics, as loaded
    local acc = C.linear_probe(function(im) return features(im) end)
    C.log('linear probe (held-out): %s', C.fmt_acc(acc))
    save(step, { ce = ema.ce, param_mse = ema.mse, probe = acc, seconds = C.now() - t0, steps = o.steps,
      batch = o.batch, seed = seed })
  end
end
C.log('resnet: done in %.0f s -> %s', C.now() - t0, OUT)
