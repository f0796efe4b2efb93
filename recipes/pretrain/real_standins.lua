-- recipes/pretrain/real_standins.lua: stand-ins for real checkpoints on a real data set, so that
-- its comparison has a reward that has seen real images of the set and a judge apart from it.
--   ./build/craft recipes/pretrain/real_standins.lua [set=pneumoniamnist] [data=PATH] [steps=600]
--        [only=clip|dinov2|resnet]
-- Each model starts from its built-in phantom-trained counterpart and is fine-tuned on its OWN
-- pool of the set's training split (recipes/lib/real_sets.lua): the reward's VLM (tiny CLIP) on
-- pool_reward_vlm, the reward's vision encoder (tiny DINOv2) on pool_reward_vision, the judge
-- (tiny ResNet, another family) on pool_judge. No pool holds an experiment image (few-shot,
-- reward-fit, calibration, judge, tuning or test). Each model's craft_training.json records the
-- phantom stream and the pool indices it saw (`data`).
--   * CLIP: symmetric InfoNCE of images and captions drawn from their class's enriched prompts and
--     checklist findings (the knowledge artifacts); every caption of the image's class is a
--     positive (soft targets by class), since the set has no per-image reports.
--   * DINOv2 and ResNet: class cross-entropy from a linear head on the pooled features (a
--     supervised stand-in, as the phantom ones); the ResNet sees shifts and gain jitter.
-- The last tenth of each pool is held out for the logged accuracy (probe or zero-shot).
local craft = require 'craft'
local F = craft.F
local nn = craft.nn
local R = require 'lib.real_sets'
local clip = require 'craft.models.clip'
local dinov2 = require 'craft.models.dinov2'
local resnet = require 'craft.models.resnet'

local o = { set = 'pneumoniamnist', data = false, steps = 600, batch = 64, only = false, size = 32 }
for _, a in ipairs(arg or {}) do
  local k, v = a:match('^([%w_]+)=(.*)$')
  if k then
    o[k] = tonumber(v) or v
  else
    error('usage: craft recipes/pretrain/real_standins.lua [set=NAME] [data=PATH] [steps=N] '
      .. '[only=clip|dinov2|resnet]', 0)
  end
end
if os.getenv('CRAFT_THREADS') then craft.set_num_threads(tonumber(os.getenv('CRAFT_THREADS'))) end
local set = R.sets[o.set] or error('unknown set ' .. tostring(o.set), 0)
local K = require('knowledge').get(set.knowledge)
local OUT = (os.getenv('CRAFT_MODELS_DIR') or require('craft.repo').path(set.models))
local parts = R.parts(set, o.data or set.data, o.size)
local t0 = require('craft.runtime').now()
local function log(fmt, ...)
  io.stderr:write(('[%7.1fs] '):format(require('craft.runtime').now() - t0), fmt:format(...), '\n')
end
local function mkdir(p) assert(os.execute(("mkdir -p '%s'"):format(p))) end
local function copy(src, dst) assert(os.execute(("cp '%s' '%s'"):format(src, dst))) end

-- a pool cut into training images and the held-out tenth
local function pool(name)
  local p = parts[name]
  local n = p.images:size(1)
  local perm = craft.data.permutation(n, set.seed, 31)
  local nh = math.floor(n / 10)
  local tr, ho = {}, {}
  for k, i in ipairs(perm) do if k <= nh then ho[#ho + 1] = i else tr[#tr + 1] = i end end
  local ys = p.labels:flat()
  local function sub(idx)
    local y = {}
    for k, i in ipairs(idx) do y[k] = ys[i] end
    return { images = craft.data.take(p.images, idx), labels = y }
  end
  return sub(tr), sub(ho), p
end

local function batch_of(ds, step, B, salt)
  local n = #ds.labels
  local idx, ys = {}, {}
  for j = 1, B do
    local gi = (step - 1) * B + j - 1
    local ep, pos = math.floor(gi / n) + 1, gi % n + 1
    local perm = craft.data.permutation(n, set.seed + salt, ep)
    idx[j] = perm[pos]
    ys[j] = ds.labels[perm[pos]]
  end
  return craft.data.take(ds.images, idx), ys
end

local function shift_jitter(x, step)
  local n, S = x:size(1), x:size(3)
  local g = craft.rand({ n, 4 }, { seed = set.seed * 7919 + step }):flat()
  local p = F.pad(x, { 2, 2, 2, 2 }, 'replicate')
  local out = {}
  for i = 1, n do
    local dx, dy = math.floor(g[4 * i - 3] * 5), math.floor(g[4 * i - 2] * 5)
    out[i] = (p:narrow(1, i, 1):narrow(3, dy + 1, S):narrow(4, dx + 1,
      S) * (0.9 + 0.2 * g[4 * i - 1]) + (0.1 * g[4 * i] - 0.05)):clamp(0, 1)
  end
  return craft.cat(out, 1)
end

local function accuracy(logits, ys)
  local pred = logits:argmax(2):flat()
  local ok = 0
  for i, y in ipairs(ys) do if pred[i] == y then ok = ok + 1 end end
  return ok / #ys
end

local function record(dir, base_dir, pool_part, extra)
  local t = craft.io.read_json(base_dir .. '/craft_training.json')
  local rec = { base = base_dir, base_data = t.data, set = set.name, steps = o.steps, batch = o.batch,
    data = {}, seconds = require('craft.runtime').now() - t0 }
  for _, e in ipairs(t.data or {}) do rec.data[#rec.data + 1] = e end
  rec.data[#rec.data + 1] = pool_part.provenance[1]
  for k, v in pairs(extra or {}) do rec[k] = v end
  craft.io.write_json(dir .. '/craft_training.json', rec)
end

-- a classifier fine-tune of a vision encoder: encode(images) -> features
local function finetune_classifier(name, model, encode, dim, lr, aug)
  local tr, ho, p = pool(name)
  craft.manual_seed(set.seed)
  local head = nn.Linear(dim, #K.classes)
  local params = {}
  for _, np in ipairs(model:named_parameters()) do params[#params + 1] = np end
  for _, np in ipairs(head:named_parameters()) do params[#params + 1] = { 'head.' .. np[1], np[2] } end
  local opt = craft.optim.AdamW(params, { lr = lr, weight_decay = 1e-4 })
  local sched = craft.optim.LRScheduler(opt,
    craft.optim.schedule.cosine(o.steps, { warmup = 50, min_ratio = 0.05 }))
  -- class-balanced loss: the pools hold about three pneumonia images per normal one
  local counts = {}
  for _, y in ipairs(tr.labels) do counts[y + 1] = (counts[y + 1] or 0) + 1 end
  local w = {}
  for c = 1, #K.classes do w[c] = #tr.labels / (#K.classes * (counts[c] or 1)) end
  for step = 1, o.steps do
    model:train()
    local x, ys = batch_of(tr, step, o.batch, 1)
    if aug then x = shift_jitter(x, step) end
    local yt = craft.tensor(ys, { dtype = 'i64' })
    local wb = {}
    for i, y in ipairs(ys) do wb[i] = w[y + 1] end
    local loss = F.cross_entropy(head(encode(x)), yt, { reduction = 'none' }):mul(craft.tensor(wb)):mean()
    loss:backward()
    craft.optim.clip_grad_norm(params, 1.0)
    opt:step(); opt:zero_grad(); sched:step()
    if step % 100 == 0 or step == o.steps then
      model:eval()
      local acc = craft.no_grad(function() return accuracy(head(encode(ho.images)), ho.labels) end)
      log('%s step %d  loss %.4f  held-out accuracy %.3f (%d images)', name, step, loss:item(), acc,
        #ho.labels)
    end
  end
  model:eval()
  local acc = craft.no_grad(function() return accuracy(head(encode(ho.images)), ho.labels) end)
  return acc, p
end

local function save_half(path, model)
  local out = {}
  for k, t in pairs(model:state_dict()) do
    out[k] = (t.dtype == 'f32') and t:detach():half() or t:detach()
  end
  craft.io.save_safetensors(path .. '.tmp', out, { format = 'pt' })
  assert(os.rename(path .. '.tmp', path))
end

local function want(role) return not o.only or o.only == role end

if want('dinov2') then
  local base = require('craft.repo').path('models/builtin/dinov2-tiny')
  local model = dinov2.from_pretrained(base)
  local pre = { size = 32, crop = 32 }
  local acc, p = finetune_classifier('pool_reward_vision', model,
    function(x) return model(dinov2.preprocess(x, pre)).pooler_output end,
    model.config.hidden_size, 2e-4, false)
  local dir = OUT .. '/dinov2'
  mkdir(dir)
  for _, f in ipairs { 'config.json', 'preprocessor_config.json' } do
    copy(base .. '/' .. f, dir .. '/' .. f)
  end
  save_half(dir .. '/model.safetensors', model)
  record(dir, base, p, { role = 'reward vision encoder', heldout_accuracy = acc })
  log('dinov2 -> %s (held-out accuracy %.3f)', dir, acc)
end

if want('resnet') then
  local base = require('craft.repo').path('models/builtin/resnet-tiny')
  local model = resnet.from_pretrained(base)
  local MEAN, STD = craft.tensor({ 0.485, 0.456, 0.406 }):reshape(1, 3, 1,
    1), craft.tensor({ 0.229, 0.224, 0.225 }):reshape(1, 3, 1, 1)
  local acc, p = finetune_classifier('pool_judge', model,
    function(x) return model((x - MEAN) / STD).features end,
    model.config.hidden_sizes[#model.config.hidden_sizes], 1e-3, true)
  local dir = OUT .. '/resnet'
  mkdir(dir)
  for _, f in ipairs { 'config.json', 'preprocessor_config.json' } do
    copy(base .. '/' .. f, dir .. '/' .. f)
  end
  save_half(dir .. '/model.safetensors', model)
  record(dir, base, p, { role = 'judge', heldout_accuracy = acc })
  log('resnet -> %s (held-out accuracy %.3f)', dir, acc)
end

if want('clip') then
  local base = require('craft.repo').path('models/builtin/clip-tiny')
  local model = clip.from_pretrained(base)
  local tok = require('craft.tokenizer').load(base)
  local tr, ho, p = pool('pool_reward_vlm')
  local pre = { size = 32, crop = 32 }
  -- the captions of each class: its enriched prompts and checklist findings
  local caps = {}
  for c, name in ipairs(K.classes) do
    local l = {}
    for _, s in ipairs(K.prompts[name]) do l[#l + 1] = s end
    for _, it in ipairs(K.checklists[name]) do l[#l + 1] = type(it) == 'table' and it.pos or it end
    caps[c] = l
  end
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
    { lr = 1e-4, weight_decay = 0.1, betas = { 0.9, 0.98 }, eps = 1e-6 }),
    craft.optim.AdamW(rest, { lr = 1e-4, weight_decay = 0, betas = { 0.9, 0.98 }, eps = 1e-6 }) }
  local schedule = craft.optim.schedule.cosine(o.steps, { warmup = 50, min_ratio = 0.05 })
  local scheds = { craft.optim.LRScheduler(opts[1], schedule), craft.optim.LRScheduler(opts[2], schedule) }
  local rng = 12345
  local function rand(n)
    rng = (rng * 1103515245 + 12345) % 2147483648; return 1 + math.floor(rng / 2147483648 * n)
  end
  local function zero_shot(images, ys)
    local texts, owner = {}, {}
    for c, l in ipairs(caps) do
      for k = 1, #K.prompts[K.classes[c]] do texts[#texts + 1] = l[k]; owner[#owner + 1] = c end
    end
    return craft.no_grad(function()
      local ti = F.normalize(model:encode_text(tok:encode(texts, { max_len = 77 })), 2)
      local rows = {}
      for c = 1, #caps do
        local sel = {}
        for k, oc in ipairs(owner) do if oc == c then sel[#sel + 1] = k end end
        rows[c] = F.normalize(craft.data.take(ti, sel):mean(1), 1)
      end
      local T = F.stack(rows, 1)
      local im = F.normalize(model:encode_image(clip.preprocess(images, pre)), 2)
      return accuracy(im:matmul(T:t()), ys)
    end)
  end
  log('clip: zero-shot held-out accuracy before %.3f', zero_shot(ho.images, ho.labels))
  local MAX_SCALE = math.log(100)
  local logit_scale
  for _, np in ipairs(model:named_parameters()) do if np[1] == 'logit_scale' then logit_scale = np[2] end end
  for step = 1, o.steps do
    model:train()
    local x, ys = batch_of(tr, step, o.batch, 2)
    local texts = {}
    for i, y in ipairs(ys) do texts[i] = caps[y + 1][rand(#caps[y + 1])] end
    local out = model(tok:encode(texts, { max_len = 77 }), clip.preprocess(x, pre))
    -- soft targets: every caption of the image's class
    local t = {}
    for i = 1, #ys do
      local row, n = {}, 0
      for j = 1, #ys do row[j] = ys[i] == ys[j] and 1 or 0; n = n + row[j] end
      for j = 1, #ys do row[j] = row[j] / n end
      t[i] = row
    end
    local tgt = craft.tensor(t)
    local loss = ((-(tgt * F.log_softmax(out.logits_per_image,
      2)):sum(2):mean()) + (-(tgt * F.log_softmax(out.logits_per_text, 2)):sum(2):mean())) * 0.5
    loss:backward()
    craft.optim.clip_grad_norm(model, 1.0)
    for i = 1, 2 do opts[i]:step(); opts[i]:zero_grad(); scheds[i]:step() end
    if logit_scale:item() > MAX_SCALE then craft.no_grad(function() logit_scale:fill_(MAX_SCALE) end) end
    if step % 100 == 0 or step == o.steps then
      model:eval()
      log('clip step %d  loss %.4f  zero-shot held-out accuracy %.3f', step, loss:item(),
        zero_shot(ho.images, ho.labels))
    end
  end
  model:eval()
  local acc = zero_shot(ho.images, ho.labels)
  local dir = OUT .. '/clip'
  mkdir(dir)
  for _, f in ipairs { 'config.json', 'preprocessor_config.json', 'merges.txt', 'special_tokens_map.json',
    'tokenizer_config.json', 'vocab.json' } do
    copy(base .. '/' .. f, dir .. '/' .. f)
  end
  save_half(dir .. '/model.safetensors', model)
  record(dir, base, p, { role = 'reward VLM', heldout_zero_shot_accuracy = acc })
  log('clip -> %s (zero-shot held-out accuracy %.3f)', dir, acc)
end
