-- recipes/pretrain/dinov2.lua: the built-in vision encoder F of CAS dimensions 3 and 4, a tiny
-- DINOv2-architecture ViT (transformers Dinov2Model layout: models/builtin/dinov2-tiny).
--   ./build/craft recipes/pretrain/dinov2.lua [objective=proxy|dino steps= batch=]
-- The shipped weights are the supervised proxy's (objective = 'proxy', the default): DINO did not
-- learn useful features within this budget (see models/builtin/README.md for the two runs).
-- Architecture: 96 wide, 4 layers, 4 heads, MLP ratio 4, patch 4 at 32 px (an 8x8 grid, as the
-- CLIP tower), layer scale 0.1 (DINOv2 starts it small too; 1e-5 would freeze a 4-layer net
-- for a short run).
-- objective = 'dino': DINO self-distillation without labels. A student and an EMA
--   teacher (momentum 0.99 -> 0.999, cosine) see two augmented global views of each phantom
--   (random resized crop of 40-100 % of the area, flips, mild brightness / contrast jitter: no
--   blur and no colour drop, which would erase microaneurysms and the exudates' yellow); the
--   student's softmax (temperature 0.1) over 1024 prototypes matches the teacher's centred and
--   sharpened one (temperature 0.04, centre EMA 0.9) across views. The head (3-layer MLP,
--   L2-normalised bottleneck, weight-normalised prototypes) is dropped after training.
--   Each batch holds one modality, with a centre per modality: with mixed batches the four
--   modalities are the easy answer (a first run settled on ~5 prototypes and a linear probe no
--   better than the untrained network's), so here centring removes what a modality's images
--   share and the teacher's targets must come from the differences between its images.
-- objective = 'proxy' (default): a supervised stand-in: regress each modality's standardised
--   generator parameters (heart size, cup-to-disc ratio, lesion counts, ABCD measures, nuclear
--   density...) from the class token, name the modality, and (class_weight 1) the 11
--   (modality, class) labels, on unaugmented images (augment = 0: crops and flips contradict
--   position parameters such as the optic disc's, and cut the thorax a heart ratio needs).
--   A first proxy run with augmentation and without the labels reached a probe of only 0.74.
--   F is therefore a supervised encoder, not a label-free one as DINOv2 is.
-- Either way the class token (pooler_output) is the feature; held-out linear-probe accuracy
-- is logged against the untrained network's, so the README can say what DINO bought.
local craft = require 'craft'
local C = require 'pretrain.common'
local dinov2 = require 'craft.models.dinov2'
local nn, F = craft.nn, craft.F

local o = C.args { objective = 'proxy', steps = 3000, batch = 64, lr = 5e-4, wd = 0.04, save_every = 500,
  augment = 0, class_weight = 1,
  prototypes = 1024, t_student = 0.1, t_teacher = 0.04, center_momentum = 0.9 }
local OUT = C.out .. '/dinov2-tiny'
local CONFIG = { architectures = { 'Dinov2Model' }, model_type = 'dinov2', hidden_size = 96,
  num_hidden_layers = 4,
  num_attention_heads = 4, mlp_ratio = 4, hidden_act = 'gelu', layer_norm_eps = 1e-6, image_size = 32,
  patch_size = 4,
  num_channels = 3, qkv_bias = true, layerscale_value = 0.1, use_swiglu_ffn = false, apply_layernorm = true,
  drop_path_rate = 0.0, hidden_dropout_prob = 0.0, attention_probs_dropout_prob = 0.0,
  initializer_range = 0.02,
  torch_dtype = 'float16', transformers_version = '4.38.2' }
local PRE = { size = 32, crop = 32 }   -- dinov2.preprocess at 32 px: ImageNet mean / std only

local seed = C.seeds.dinov2.seed
craft.manual_seed(seed)
local function make()
  local m = dinov2.Dinov2Model(CONFIG)
  -- transformers' init: N(0, 0.02) position embeddings and class token (nn params are N(0, 1))
  for _, np in ipairs(m:named_parameters()) do
    if np[1] == 'embeddings.position_embeddings' or np[1] == 'embeddings.cls_token' then
      craft.no_grad(function() np[2]:mul_(0.02) end)
    end
  end
  return m
end
local student = make()
local function features(model, images) return model(dinov2.preprocess(images, PRE)).pooler_output end

-- DINO head: MLP 96 -> 256 -> 256 -> 64, L2-normalised, then weight-normalised prototypes
local Head = nn.class('DINOHead')
function Head:init(d, k)
  self:add('mlp', nn.Sequential(nn.Linear(d, 256), nn.GELU(), nn.Linear(256, 256), nn.GELU(),
    nn.Linear(256, 64)))
  self:param('prototypes', craft.randn({ k, 64 }))
end
function Head:forward(x)
  return F.linear(F.normalize(self._modules.mlp(x), -1), F.normalize(self._params.prototypes, -1))
end

-- Proxy head: one regression per modality over its standardised parameters, plus the modality
local Proxy = nn.class('ProxyHead')
function Proxy:init(d, stats)
  for _, m in ipairs(C.seeds.modalities) do self:add(m, nn.Linear(d, #stats[m])) end
  self:add('modality', nn.Linear(d, #C.seeds.modalities))
  self:add('class', nn.Linear(d, #C.all_classes()))
end

local baseline = C.linear_probe(function(x) return features(student:eval(), x) end)
student:train()
C.log('dinov2 (%s): %d parameters; untrained linear probe %s', o.objective, student:num_parameters(),
  C.fmt_acc(baseline))
C.mkdir(OUT)
local function save(model, step, stats)
  C.write_json(OUT .. '/config.json', CONFIG)
  C.write_json(OUT .. '/preprocessor_config.json',
    { crop_size = { height = 32, width = 32 }, do_center_crop = true,
    do_normalize = true, do_resize = true, image_mean = dinov2.MEAN, image_std = dinov2.STD, resample = 3,
    size = { shortest_edge = 32 }, image_processor_type = 'BitImageProcessor' })
  C.save_half(OUT .. '/model.safetensors', model)
  stats.step, stats.objective, stats.untrained_probe = step, o.objective, baseline
  C.write_json(OUT .. '/craft_training.json', stats)
end

---------------------------------------------------------------- augmentations
local flip_matrix = (function()
  local rows = {}
  for i = 1, 32 do rows[i] = {}; for j = 1, 32 do rows[i][j] = (i + j == 33) and 1 or 0 end end
  return craft.tensor(rows)
end)()
local rng_state = seed
local function u()   -- uniform in [0, 1), reproducible
  rng_state = (rng_state * 1103515245 + 12345) % 2147483648
  return rng_state / 2147483648
end
-- one augmented view of each image of x [B, 3, 32, 32] in [0, 1]
local function view(x)
  local B, out = x:size(1), {}
  for i = 1, B do
    local area = 0.4 + 0.6 * u()
    local ar = math.exp((u() - 0.5) * 0.5)
    local h = math.max(8, math.min(32, math.floor(32 * math.sqrt(area / ar) + 0.5)))
    local w = math.max(8, math.min(32, math.floor(32 * math.sqrt(area * ar) + 0.5)))
    local top, left = math.floor(u() * (32 - h + 1)), math.floor(u() * (32 - w + 1))
    local v = x:narrow(1, i, 1):narrow(3, top + 1, h):narrow(4, left + 1, w)
    if h ~= 32 or w ~= 32 then v = F.interpolate(v, { size = { 32, 32 }, mode = 'bilinear' }) end
    if u() < 0.5 then v = v:matmul(flip_matrix) end
    out[i] = v
  end
  local y = craft.cat(out, 1)
  local a, b = {}, {}
  for i = 1, B do a[i] = 0.85 + 0.3 * u(); b[i] = (u() - 0.5) * 0.1 end
  return (y * craft.tensor(a):reshape(B, 1, 1, 1) + craft.tensor(b):reshape(B, 1, 1, 1)):clamp(0, 1)
end

---------------------------------------------------------------- training
local head, teacher, teacher_head, center, stats
if o.objective == 'dino' then
  head = Head(CONFIG.hidden_size, o.prototypes)
  teacher, teacher_head = make(), Head(CONFIG.hidden_size, o.prototypes)
  teacher:load_state_dict(student:state_dict()); teacher_head:load_state_dict(head:state_dict())
  teacher:requires_grad_(false); teacher_head:requires_grad_(false)
  center = {}
  for _, m in ipairs(C.seeds.modalities) do center[m] = craft.zeros({ 1, o.prototypes }) end
elseif o.objective == 'proxy' then
  stats = {}
  for _, m in ipairs(C.seeds.modalities) do stats[m] = C.param_stats(m, seed) end
  head = Proxy(CONFIG.hidden_size, stats)
else
  error('dinov2: objective must be dino or proxy, got ' .. tostring(o.objective))
end
local params = {}
for _, np in ipairs(student:named_parameters()) do params[#params + 1] = np end
for _, np in ipairs(head:named_parameters()) do params[#params + 1] = { 'head.' .. np[1], np[2] } end
local opt = craft.optim.AdamW(params, { lr = o.lr, weight_decay = o.wd })
local sched = craft.optim.LRScheduler(opt,
  craft.optim.schedule.cosine(o.steps, { warmup = 100, min_ratio = 0.02 }))

local teacher_pairs
local function ema_update(m)
  if not teacher_pairs then
    teacher_pairs = {}
    local t = {}
    for _, np in ipairs(teacher:named_parameters()) do t[np[1]] = np[2] end
    for _, np in ipairs(teacher_head:named_parameters()) do t['head.' .. np[1]] = np[2] end
    for _, np in ipairs(params) do teacher_pairs[#teacher_pairs + 1] = { t[np[1]], np[2] } end
  end
  for _, p in ipairs(teacher_pairs) do craft.optim.ema_update(p[1], p[2], m) end
end

local function dino_step(step, x, _, m)
  local v1, v2 = view(x), view(x)
  local both = craft.cat({ v1, v2 }, 1)
  local B = x:size(1)
  local t_out = craft.no_grad(function() return teacher_head(features(teacher, both)) end)
  local t_prob = F.softmax((t_out - center[m]) * (1 / o.t_teacher), 2)
  local s_logp = F.log_softmax(head(features(student, both)) * (1 / o.t_student), 2)
  -- cross-view: the student's view 1 learns the teacher's view 2 and vice versa
  local t1, t2 = t_prob:narrow(1, 1, B), t_prob:narrow(1, B + 1, B)
  local s1, s2 = s_logp:narrow(1, 1, B), s_logp:narrow(1, B + 1, B)
  local loss = -((t2 * s1):sum(2):mean() + (t1 * s2):sum(2):mean()) * 0.5
  loss:backward()
  craft.optim.clip_grad_norm(params, 3.0)
  opt:step(); opt:zero_grad(); sched:step()
  ema_update(math.min(0.999, 1 - 0.01 * (math.cos(math.pi * step / o.steps) + 1) / 2))
  center[m]:mul_(o.center_momentum):add_(t_out:mean(1, true), 1 - o.center_momentum)
  -- entropy of the mean teacher distribution: collapse shows as it falling to 0
  local mp = t_prob:mean(1)
  return loss:item(), -(mp * (mp + 1e-12):log()):sum():item()
end

local function proxy_step(_, x, rows)
  local feats = features(student, o.augment == 1 and view(x) or x)
  local loss, per = nil, x:size(1) / 4
  for k, m in ipairs(C.seeds.modalities) do
    local f = feats:narrow(1, (k - 1) * per + 1, per)
    local l = F.mse_loss(head._modules[m](f),
      C.param_targets({ unpack(rows, (k - 1) * per + 1, k * per) }, stats[m]))
    loss = loss and loss + l or l
  end
  local mods = {}
  for k = 1, 4 do for _ = 1, per do mods[#mods + 1] = k - 1 end end
  loss = loss * 0.25 + F.cross_entropy(head._modules.modality(feats), craft.tensor(mods, { dtype = 'i64' }))
  if o.class_weight > 0 then
    local ys = {}
    for i, r in ipairs(rows) do ys[i] = r.label end
    loss = loss + F.cross_entropy(head._modules.class(feats),
      craft.tensor(ys, { dtype = 'i64' })) * o.class_weight
  end
  loss:backward()
  craft.optim.clip_grad_norm(params, 3.0)
  opt:step(); opt:zero_grad(); sched:step()
  return loss:item(), 0
end

local t0, ema = C.now(), nil
local per = o.batch / 4
for step = 1, o.steps do
  local l, h
  if o.objective == 'dino' then
    -- modality k's batches take consecutive index ranges of the stream: no image twice
    local k = (step - 1) % 4 + 1
    local m = C.seeds.modalities[k]
    l, h = dino_step(step, C.phantoms(m, o.batch, seed, math.floor((step - 1) / 4) * o.batch).images, nil, m)
  else
    local x, rows = C.mixed(per, seed, (step - 1) * per)
    l, h = proxy_step(step, x, rows)
  end
  ema = ema and 0.95 * ema + 0.05 * l or l
  if step % 50 == 0 or step == 1 then
    C.log('step %5d  loss %.4f%s  lr %.2e  %.2f s/step', step, ema,
      o.objective == 'dino' and ('  teacher entropy %.2f'):format(h) or '', opt.lr, (C.now() - t0) / step)
  end
  if step % o.save_every == 0 or step == o.steps then
    -- DINO keeps the teacher (the better network, as the DINO papers do); proxy the student
    local final = o.objective == 'dino' and teacher or student
    local acc = C.linear_probe(function(im) return features(final:eval(), im) end)
    final:train()
    C.log('linear probe (held-out): %s', C.fmt_acc(acc))
    save(final, step, { loss = ema, probe = acc, seconds = C.now() - t0, steps = o.steps, batch = o.batch,
      seed = seed })
  end
end
C.log('dinov2: done in %.0f s -> %s', C.now() - t0, OUT)
