-- recipes/pretrain/clip.lua: the built-in reward VLM, a tiny CLIP (models/builtin/clip-tiny), and
-- its text tower as the foundation model's text encoder (models/builtin/sd-tiny/text_encoder).
--   ./build/craft recipes/pretrain/clip.lua [steps=2000 batch=64]
-- Architecture (transformers CLIPModel): text 64 wide, 4 layers, 4 heads, 77 positions, the real
-- CLIP BPE vocabulary (49408 ids: the embedding table is most of the weights, so the width stays
-- small); vision ViT 96 wide, 4 layers, patch 4 at 32 px (an 8x8 grid: a 4-pixel patch still
-- resolves a microaneurysm or a cup rim); projection 64.
-- Data: fresh phantoms every step (seeds.lua: clip) with captions written from each image's
-- ground truth (captions.lua): class findings, measured values, checklist statements positive
-- or negated as the parameters say. Loss: symmetric InfoNCE with a learnable logit scale
-- (clamped at 100 as CLIP). Four of five batches hold one modality (the negatives that teach
-- findings are images of the same modality), one in five mixes all four. Captions that come
-- out identical within a batch are each other's positives (soft targets), not false negatives.
local craft = require 'craft'
local C = require 'pretrain.common'
local clip = require 'craft.models.clip'
local F = craft.F

local o = C.args { steps = 2000, batch = 64, lr = 5e-4, wd = 0.1, max_len = 48, save_every = 500 }
local OUT, TE = C.out .. '/clip-tiny', C.out .. '/sd-tiny/text_encoder'
local TEXT = { vocab_size = 49408, hidden_size = 64, intermediate_size = 256, num_hidden_layers = 4,
  num_attention_heads = 4, max_position_embeddings = 77, hidden_act = 'quick_gelu', layer_norm_eps = 1e-5,
  bos_token_id = 49406, eos_token_id = 49407, pad_token_id = 49407, projection_dim = 64,
  model_type = 'clip_text_model' }
local VISION = { hidden_size = 96, intermediate_size = 384, num_hidden_layers = 4, num_attention_heads = 4,
  image_size = 32, patch_size = 4, num_channels = 3, hidden_act = 'quick_gelu', layer_norm_eps = 1e-5,
  projection_dim = 64, model_type = 'clip_vision_model' }
local CONFIG = { architectures = { 'CLIPModel' }, model_type = 'clip', projection_dim = 64,
  logit_scale_init_value = 2.6592, text_config = TEXT, vision_config = VISION, torch_dtype = 'float16',
  transformers_version = '4.38.2' }
local PRE = { size = 32, crop = 32 }   -- clip.preprocess: no resize at 32 px, CLIP's mean / std

local seed = C.seeds.clip.seed
craft.manual_seed(seed)
local model = clip.CLIPModel(CONFIG)
-- transformers' CLIP init for the embeddings (nn.Embedding is N(0, 1)): small token and position
-- vectors, so the untrained rows (unused vocabulary, positions past the longest caption) stay
-- small next to the trained ones
local function P(name)
  for _, np in ipairs(model:named_parameters()) do if np[1] == name then return np[2] end end
end
craft.no_grad(function()
  P('text_model.embeddings.token_embedding.weight'):mul_(0.02)
  P('text_model.embeddings.position_embedding.weight'):mul_(0.01)
  P('vision_model.embeddings.position_embedding.weight'):mul_(0.02)
  P('vision_model.embeddings.class_embedding'):mul_(VISION.hidden_size ^ -0.5)
end)

C.mkdir(OUT); C.mkdir(TE)
local tok = C.write_tokenizer(OUT)
C.write_tokenizer(C.out .. '/sd-tiny/tokenizer')
C.log('clip: %d parameters, %d steps of %d pairs (seed %d)', model:num_parameters(), o.steps, o.batch, seed)

-- no weight decay on the logit scale (it would pull the temperature towards 1), norms, biases
local decay, rest = {}, {}
for _, np in ipairs(model:named_parameters()) do
  local n = np[1]
  if n == 'logit_scale' or n:match('norm') or n:match('bias$') then
    rest[#rest + 1] = np
  else
    decay[#decay + 1] = np
  end
end
local opts = { craft.optim.AdamW(decay,
  { lr = o.lr, weight_decay = o.wd, betas = { 0.9, 0.98 }, eps = 1e-6 }),
  craft.optim.AdamW(rest, { lr = o.lr, weight_decay = 0, betas = { 0.9, 0.98 }, eps = 1e-6 }) }
local schedule = craft.optim.schedule.cosine(o.steps, { warmup = 200, min_ratio = 0.05 })
local scheds = { craft.optim.LRScheduler(opts[1], schedule), craft.optim.LRScheduler(opts[2], schedule) }

local rng_state = seed
local function rand(n)   -- a small LCG: captions reproducible whatever else uses math.random
  rng_state = (rng_state * 1103515245 + 12345) % 2147483648
  return 1 + math.floor(rng_state / 2147483648 * n)
end

-- The batch of a step: images [B, 3, 32, 32] in [0, 1] and their captions.
local counters = {}
local function batch(step)
  local which = step % 5 == 0 and 'mixed' or C.seeds.modalities[step % 5]
  local imgs, rows
  local n = which == 'mixed' and o.batch / 4 or o.batch
  local first = counters[which] or 0
  counters[which] = first + n
  if which == 'mixed' then
    imgs, rows = C.mixed(n, seed, 10 ^ 8 + first)   -- its own index range: no image seen twice
  else
    local ds = C.phantoms(which, n, seed, first)
    imgs, rows = ds.images, ds.rows
    for _, r in ipairs(rows) do r.modality = which end
  end
  local caps = {}
  for i, r in ipairs(rows) do caps[i] = C.captions.caption(r.modality, r, rand) end
  return imgs, caps
end

-- soft targets: row i spreads its mass over the captions equal to caption i
local function targets(caps)
  local B, t = #caps, {}
  for i = 1, B do
    local row, n = {}, 0
    for j = 1, B do row[j] = caps[i] == caps[j] and 1 or 0; n = n + row[j] end
    for j = 1, B do row[j] = row[j] / n end
    t[i] = row
  end
  return craft.tensor(t)
end

local MAX_SCALE = math.log(100)
local logit_scale = P('logit_scale')
local function train_step(step)
  local imgs, caps = batch(step)
  local ids = tok:encode(caps, { max_len = o.max_len })
  local out = model(ids, clip.preprocess(imgs, PRE))
  local tgt = targets(caps)
  local li = -(tgt * F.log_softmax(out.logits_per_image, 2)):sum(2):mean()
  local lt = -(tgt * F.log_softmax(out.logits_per_text, 2)):sum(2):mean()
  local loss = (li + lt) * 0.5
  loss:backward()
  craft.optim.clip_grad_norm(model, 1.0)
  for i = 1, 2 do opts[i]:step(); opts[i]:zero_grad(); scheds[i]:step() end
  if logit_scale:item() > MAX_SCALE then craft.no_grad(function() logit_scale:fill_(MAX_SCALE) end) end
  return loss:item()
end

-- Zero-shot accuracy per modality on held-out phantoms (seeds.lua: heldout), class prompts of
-- captions.lua averaged per class (CLIP's prompt ensembling).
local function zero_shot(n)
  model:eval()
  local acc = C.zero_shot(model, tok, n, PRE)
  model:train()
  return acc
end

local function save(step, stats)
  C.write_json(OUT .. '/config.json', CONFIG)
  C.write_json(OUT .. '/preprocessor_config.json',
    { crop_size = { height = 32, width = 32 }, do_center_crop = true,
    do_normalize = true, do_resize = true, image_mean = clip.MEAN, image_std = clip.STD, resample = 3,
    size = { shortest_edge = 32 }, image_processor_type = 'CLIPImageProcessor' })
  C.save_half(OUT .. '/model.safetensors', model)
  -- the text tower alone, as a diffusers text_encoder/ folder (CLIPTextModel, text_model.* keys)
  local sd, te = model:state_dict(), {}
  for k, t in pairs(sd) do if k:match('^text_model%.') then te[k] = t end end
  local tc = {}
  for k, v in pairs(TEXT) do tc[k] = v end
  tc.architectures, tc.torch_dtype, tc.transformers_version = { 'CLIPTextModel' }, 'float16', '4.38.2'
  C.write_json(TE .. '/config.json', tc)
  C.save_half(TE .. '/model.safetensors', te)
  stats.step = step
  C.write_json(OUT .. '/craft_training.json', stats)
end

local ema, t0 = nil, C.now()
for step = 1, o.steps do
  local l = train_step(step)
  ema = ema and 0.98 * ema + 0.02 * l or l
  if step % 50 == 0 or step == 1 then
    C.log('step %5d  loss %.4f  logit scale %.2f  lr %.2e  %.2f s/step', step, ema,
      math.exp(logit_scale:item()),
      opts[1].lr, (C.now() - t0) / step)
  end
  if step % o.save_every == 0 or step == o.steps then
    local acc = zero_shot(48)
    local parts = {}
    for _, m in ipairs(C.seeds.modalities) do parts[#parts + 1] = ('%s %.2f'):format(m, acc[m]) end
    C.log('zero-shot held-out accuracy: %s', table.concat(parts, '  '))
    save(step, { loss = ema, logit_scale = math.exp(logit_scale:item()), zero_shot = acc,
      seconds = C.now() - t0,
      batch = o.batch, steps = o.steps, seed = seed })
  end
end
C.log('clip: done in %.0f s -> %s, %s', C.now() - t0, OUT, TE)
