-- craft.experiment: one CRAFT comparison, as METHOD.md's "Evaluation" describes it. Given a
-- generator, frozen encoders, the knowledge artifacts and real data, it adapts the generator
-- with each method (base + enriched prompts, TI + LoRA, DPO, CRAFT), generates images per class
-- for several seeds, scores them (CAS in-family and out-of-family, tail, checklist audit,
-- oracle correctness on phantoms, downstream classifier, memorisation, FID / KID), prints the
-- table and writes the report. Every choice is a field of the recipe table; recipes/quickstart.lua
-- is the worked example.
--
--   local result = require('craft.experiment').run{
--     name = 'quickstart', out = 'runs/quickstart', seed = 0,
--     pipeline = 'models/builtin/sd-tiny', classes = {...}, knowledge = {...},
--     encoders = {vlm = ..., vision = ..., ood = ...},   -- craft.encoders adapters
--     data = {train = ds, val = ds, test = ds},           -- few-shot labelled / held-out / test reals
--     oracle = 'cxr',                                     -- phantoms only: the oracle auditor
--     methods = {{name = 'Base', kind = 'base', baseline = true}, ...},
--     generate = {per_class = 16, steps = 10, cfg = 3, seeds = {0, 1, 2}},
--   }
local craft = require 'craft'
local argerror = require('craft.core').argerror
local T = require 'craft.tensor'
local F = require 'craft.functional'
local stats = require 'craft.stats'
local metrics = require 'craft.metrics'

local M = {}

M.DEFAULTS = {
  seed = 0,
  out = 'runs/experiment',
  cas = {},                                    -- craft.cas recipe fields (weights, temperature, q, k, ...)
  generate = { per_class = 16, steps = 10, cfg = 3.0, seeds = { 0, 1, 2 }, batch = 16 },
  -- encoder: 'ood' (default when there is one), 'vision' or 'pixels' (epochs, lr, batch_size, width
  -- are the pixel CNN's; steps, lr, weight_decay the linear head's)
  downstream = { epochs = 12, batch_size = 32, width = 16 },
  memorisation = { percentile = 0.99, ssim_candidates = 16 },
  kid = { n_subsets = 20, subset_size = 64 },
  report = { bootstrap = { n = 500, seed = 0 }, grid = { per_class = 4 } },
}

local function merge(a, b)
  local r = {}
  for k, v in pairs(a or {}) do r[k] = v end
  for k, v in pairs(b or {}) do r[k] = v end
  return r
end

local function say(fmt, ...) io.stderr:write(('[%s] '):format(os.date('%H:%M:%S')), fmt:format(...), '\n') end

local function mkdir(d) os.execute("mkdir -p '" .. d:gsub("'", "'\\''") .. "'") end

---------------------------------------------------------------- the reference side
-- The in-family CAS (the reward's VLM and vision encoder) and the out-of-family one (another
-- architecture's features: probe and fidelity dimensions only), fitted on the labelled reals
-- and calibrated on the held-out reals.
local function build_cas(cfg)
  local K, data = cfg.knowledge, cfg.data
  local t = cfg.encoders.vlm and cfg.encoders.vlm.temperature
  if t and not cfg.cas.temperature then cfg.cas.temperature = { prompt = t, checklist = t } end
  local cas = require('craft.cas').new(merge({ classes = cfg.classes, vlm = cfg.encoders.vlm,
    vision = cfg.encoders.vision, prompts = K.prompts, checklists = K.checklists }, cfg.cas))
  local probe = cas:fit(data.train.images, data.train.labels, { val_images = data.val.images, val_labels = data.val.labels })
  cas:calibrate(data.val.images, data.val.labels)
  local ood
  if cfg.encoders.ood then
    ood = require('craft.cas').new { classes = cfg.classes, vision = cfg.encoders.ood,
      weights = { prompt = 0, checklist = 0, probe = 1, fidelity = 1 }, k = cfg.cas.k, q = cfg.cas.q }
    ood:fit(data.train.images, data.train.labels, { val_images = data.val.images, val_labels = data.val.labels })
    ood:calibrate(data.val.images, data.val.labels)
  end
  return cas, ood, probe
end

---------------------------------------------------------------- adapting the generator
-- Each method gets a freshly loaded pipeline and returns a prompt function class -> prompts.
local function enriched_prompts(K) return function(class) return K.prompts[class] end end

local ADAPT = {}
function ADAPT.base(pipe, m, cfg) return enriched_prompts(cfg.knowledge) end

function ADAPT.ti_lora(pipe, m, cfg)
  local lora_diffusion = require 'craft.train.lora_diffusion'
  local templates = m.templates or { (cfg.knowledge.generic_prompt or 'an image') .. ' showing {}' }
  local ti_recipe = merge({ preset = 'tiny', data = cfg.data.train, templates = templates, seed = cfg.seed,
    out = cfg.out .. '/' .. m.key .. '/ti', quiet = cfg.quiet }, m.ti)
  local lora_recipe = merge({ preset = 'tiny', data = cfg.data.train, templates = templates, seed = cfg.seed,
    out = cfg.out .. '/' .. m.key .. '/lora', quiet = cfg.quiet }, m.lora)
  local r = lora_diffusion.ti_then_lora(pipe, ti_recipe, lora_recipe)
  local tokens = r.tokens or (r.ti and r.ti.tokens) or {}
  return function(class)
    local tok = tokens[class]
    if not tok then return cfg.knowledge.prompts[class] end
    local ps = {}
    for i, t in ipairs(templates) do ps[i] = t:gsub('{}', tok) end
    return ps
  end, r
end

-- the class -> prompts table of a prompt function
local function prompt_table(cfg, prompt_fn)
  local prompts = {}
  for _, c in ipairs(cfg.classes) do prompts[c] = prompt_fn(c) end
  return prompts
end

-- DPO and CRAFT fine-tune the pipeline they are given: the base model, or (m.from) the
-- generator another method adapted, with that method's prompts.
function ADAPT.dpo(pipe, m, cfg, cas, prompt_fn)
  local dpo = require 'craft.train.dpo'
  prompt_fn = prompt_fn or enriched_prompts(cfg.knowledge)
  local r = dpo.train(pipe, merge({ preset = 'tiny', prompts = prompt_table(cfg, prompt_fn), classes = cfg.classes, cas = cas,
    seed = cfg.seed, out = cfg.out .. '/' .. m.key, quiet = cfg.quiet }, m.recipe))
  return prompt_fn, r
end

function ADAPT.craft(pipe, m, cfg, cas, prompt_fn)
  local trainer = require 'craft.train.craft'
  prompt_fn = prompt_fn or enriched_prompts(cfg.knowledge)
  local r = trainer.train(pipe, merge({ preset = 'tiny', prompts = prompt_table(cfg, prompt_fn), classes = cfg.classes, cas = cas,
    seed = cfg.seed, out = cfg.out .. '/' .. m.key, quiet = cfg.quiet }, m.recipe))
  return prompt_fn, r
end

-- A fresh pipeline carrying what method `src` learnt (its textual-inversion tokens, its LoRA
-- baked into the UNet), read back from the files its trainers exported, and its prompt function.
local function adapted_start(cfg, src)
  local pipe = craft.models.load(cfg.pipeline)
  local dir = cfg.out .. '/' .. src.key
  local function exists(p) local f = io.open(p) if f then f:close() return true end return false end
  if exists(dir .. '/ti/learned_embeds/tokens.json') then require('craft.train.ti').load(pipe, dir .. '/ti/learned_embeds') end
  local lora = require 'craft.models.lora'
  for _, f in ipairs { dir .. '/lora/lora.safetensors', dir .. '/lora.safetensors' } do
    if exists(f) then lora.load(pipe.unet, f); lora.bake(pipe.unet); break end
  end
  return pipe, src.prompt_fn
end

---------------------------------------------------------------- generation
-- per_class images of every class for one seed; prompts cycle through the class's list.
local function generate(pipe, prompt_fn, cfg, seed)
  local g = cfg.generate
  local imgs, labels = {}, {}
  for ci, class in ipairs(cfg.classes) do
    local ps = prompt_fn(class)
    if not ps or #ps == 0 then argerror(('experiment: no prompt for class %q'):format(class)) end
    local done = 0
    while done < g.per_class do
      local b = math.min(g.batch, g.per_class - done)
      local batch = {}
      for k = 1, b do batch[k] = ps[(done + k - 1) % #ps + 1] end
      local x = craft.no_grad(function()
        return pipe:generate { prompt = batch, negative_prompt = cfg.knowledge.negative_prompt, steps = g.steps,
          cfg = g.cfg, seed = seed * 1000003 + ci * 10007 + done }
      end)
      -- compare like with like: generated images at the real data's resolution
      local size = cfg.data.train.images:size(3)
      if x:size(3) ~= size then x = require('craft.data').resize(x, size) end
      imgs[#imgs + 1] = x
      for _ = 1, b do labels[#labels + 1] = ci - 1 end
      done = done + b
    end
  end
  return F.cat(imgs, 1), labels
end

---------------------------------------------------------------- evaluation of one method
-- fn(images) -> features, run in batches of 64 without a graph
local function batched(enc)
  return function(x)
    return craft.no_grad(function()
      local out = {}
      for s = 1, x:size(1), 64 do out[#out + 1] = enc(x:narrow(1, s, math.min(64, x:size(1) - s + 1))) end
      return F.cat(out, 1)
    end)
  end
end

-- The downstream classifier: by default a linear head on the frozen features of the
-- out-of-family encoder (downstream.encoder = 'ood', else 'vision'); 'pixels' trains the small
-- CNN from scratch instead (at 32 px and a few hundred images it stays near chance even on real
-- images: docs/trainers.md). images == nil trains on the labelled reals alone (the reference).
local function downstream(cfg, images, labels, with_real)
  local d, train, test = cfg.downstream, cfg.data.train, cfg.data.test
  local ys = {}
  for _, y in ipairs(labels or {}) do ys[#ys + 1] = y end
  if with_real or not images then for _, y in ipairs(train.labels:flat()) do ys[#ys + 1] = y end end
  local o = merge(d, { n_classes = #cfg.classes, seed = cfg.seed })
  local r
  if d.encoder == 'pixels' then
    local x = images and (with_real and F.cat({ images, train.images }, 1) or images) or train.images
    r = metrics.evaluate_classifier(metrics.train_classifier(x, ys, o), test.images, test.labels)
  else
    local enc = cfg.encoders[d.encoder]
    if not enc then error(('experiment: downstream.encoder %q is not among the encoders'):format(tostring(d.encoder)), 0) end
    local fe = batched(enc.encode)
    cfg._down_feats = cfg._down_feats or { train = fe(train.images), test = fe(test.images) }
    local df = cfg._down_feats
    local x = images and fe(images)
    x = x and (with_real and F.cat({ x, df.train }, 1) or x) or df.train
    r = metrics.evaluate_feature_classifier(metrics.train_feature_classifier(x, ys, o), df.test, test.labels)
  end
  r.probs, r.pred = nil, nil
  return r
end

local function evaluate(cfg, cas, ood, gens)
  local all_imgs, all_labels = {}, {}
  local seed_tails = {}
  for si, gset in ipairs(gens) do
    all_imgs[#all_imgs + 1] = gset.images
    for _, l in ipairs(gset.labels) do all_labels[#all_labels + 1] = l end
    local sc = cas:score(gset.images, gset.labels)
    seed_tails[si] = sc.tail
  end
  local images = F.cat(all_imgs, 1)
  local r = cas:score(images, all_labels)
  local m = { cas = r.cas, labels = all_labels, dims = r.dims, images = images, audit = cas:audit(r),
    seed_tails = seed_tails, tail = r.tail, mean_cas = stats.mean(r.cas) }
  if ood then m.ood_cas = ood:score(images, all_labels).cas end
  if cfg.oracle then
    local audit = craft.phantoms.audit(cfg.oracle, images)
    local correct = {}
    for i, l in ipairs(audit.labels) do correct[i] = (l == all_labels[i]) and 1 or 0 end
    m.oracle_correct = correct
    m.cas_oracle_spearman = stats.spearman(r.cas, correct)
  end
  -- vision-encoder features: FID / KID against held-out reals, memorisation against the train set
  local feats = batched(cfg.encoders.vision.encode)
  local fg = feats(images)
  cfg._real_feats = cfg._real_feats or { val = feats(cfg.data.val.images), train = feats(cfg.data.train.images),
    test = feats(cfg.data.test.images) }
  local rf = cfg._real_feats
  m.fid = metrics.fid(fg, rf.val)
  local kid = metrics.kid(fg, rf.val, merge(cfg.kid, { subset_size = math.min(cfg.kid.subset_size, fg:size(1), rf.val:size(1)) }))
  m.kid = type(kid) == 'table' and kid.mean or kid
  m.memorisation = metrics.memorisation(merge(cfg.memorisation, { gen_feats = fg, train_feats = rf.train,
    test_feats = rf.test, gen_images = images, train_images = cfg.data.train.images, test_images = cfg.data.test.images }))
  -- downstream: a classifier trained on this method's images only, and on them plus the labelled
  -- reals, tested on the real test split
  if cfg.downstream then
    m.downstream = downstream(cfg, images, all_labels, false)
    m.downstream_mixed = downstream(cfg, images, all_labels, true)
  end
  return m
end

---------------------------------------------------------------- the table
local function pct(v) return v and ('%5.1f%%'):format(100 * v) or '    --' end
local function print_table(cfg, methods, real)
  local lines = {}
  local function add(s) lines[#lines + 1] = s end
  add(('%s: %d classes, %d images per class per seed x %d seeds; real held-out tail %.1f%% (q = %.2f)'):format(
    cfg.name, #cfg.classes, cfg.generate.per_class, #cfg.generate.seeds, 100 * real.tail, real.q))
  add(('%-20s %9s %18s %8s %8s %8s %8s %8s %8s %7s'):format('method', 'mean CAS', 'tail [95% CI]', 'oracle', 'OOD CAS',
    'bal.acc', '+real', 'memo', 'FID', 'min'))
  for _, m in ipairs(methods) do
    local lo, hi = stats.bootstrap(m.below, stats.mean, { n = 500, seed = 0 })
    add(('%-20s %9.3f %6s [%4.1f,%5.1f] %8s %8s %8s %8s %8s %8.2f %7.1f'):format(m.name, m.mean_cas, pct(m.tail), 100 * lo, 100 * hi,
      m.oracle_correct and pct(stats.mean(m.oracle_correct)) or '--',
      m.ood_cas and ('%8.3f'):format(stats.mean(m.ood_cas)) or '--',
      m.downstream and ('%.3f'):format(m.downstream.balanced_accuracy) or '--',
      m.downstream_mixed and ('%.3f'):format(m.downstream_mixed.balanced_accuracy) or '--',
      m.memorisation and m.memorisation.cos and pct(m.memorisation.cos.share) or '--',
      m.fid or 0 / 0, (m.seconds or 0) / 60))
  end
  if real.downstream then
    local e = cfg.downstream.encoder
    add(('downstream classifier: %s (bal.acc: trained on synthetic only; +real: synthetic and the labelled reals); on the labelled reals alone: %.3f'):format(
      e == 'pixels' and 'a small CNN on pixels' or ('a linear head on frozen %s features'):format(e), real.downstream.balanced_accuracy))
  end
  local text = table.concat(lines, '\n')
  print(text)
  return text
end

---------------------------------------------------------------- run
function M.run(cfg)
  require('craft.core').want('experiment.run', 'config', cfg, 'table')
  cfg = merge(M.DEFAULTS, cfg)
  cfg.generate = merge(M.DEFAULTS.generate, cfg.generate)
  cfg.cas = merge(M.DEFAULTS.cas, cfg.cas)
  cfg.kid = merge(M.DEFAULTS.kid, cfg.kid)
  if cfg.downstream ~= false then
    cfg.downstream = merge(M.DEFAULTS.downstream, cfg.downstream)
    cfg.downstream.encoder = cfg.downstream.encoder or (cfg.encoders and cfg.encoders.ood and 'ood') or 'vision'
  end
  cfg.memorisation = merge(M.DEFAULTS.memorisation, cfg.memorisation)
  for _, k in ipairs { 'pipeline', 'classes', 'knowledge', 'encoders', 'data', 'methods' } do
    if not cfg[k] then argerror('experiment: the recipe has no ' .. k) end
  end
  mkdir(cfg.out)
  local t0 = craft.C.craft_now()
  say('%s: fitting the CAS on %d labelled reals, calibrating on %d held-out reals', cfg.name,
    cfg.data.train.images:size(1), cfg.data.val.images:size(1))
  local cas, ood, probe = build_cas(cfg)
  local real = cas:score(cfg.data.val.images, cfg.data.val.labels)
  real.q = cas.q
  say('CAS probe accuracy: train %.3f, held-out %.3f', probe.train_accuracy or 0 / 0, probe.val_accuracy or 0 / 0)
  if cfg.downstream then
    real.downstream = downstream(cfg, nil, nil, false)
    say('downstream classifier (%s) on the %d labelled reals alone: balanced accuracy %.3f on the test split',
      cfg.downstream.encoder, cfg.data.train.images:size(1), real.downstream.balanced_accuracy)
  end

  -- the images on disk (craft.samples) and what a reader of them needs (run.json)
  local sw = require('craft.samples').writer(cfg.out .. '/samples')
  sw:add { method = 'Real', key = 'real', images = cfg.data.test.images, labels = cfg.data.test.labels:flat(),
    classes = cfg.classes }
  local run_methods = {}
  for i, spec in ipairs(cfg.methods) do
    run_methods[i] = { name = spec.name, key = spec.key or (spec.kind .. '_' .. i), kind = spec.kind }
  end
  require('craft.io').write_json(cfg.out .. '/run.json', { name = cfg.name, title = cfg.title or cfg.name,
    classes = cfg.classes, methods = run_methods,
    knowledge = { prompts = cfg.knowledge.prompts, checklists = cfg.knowledge.checklists,
      descriptions = cfg.knowledge.descriptions },
    study = cfg.study })

  local results, by_name = {}, {}
  for i, spec in ipairs(cfg.methods) do
    local m = merge(spec, { key = spec.key or (spec.kind .. '_' .. i) })
    local adapt = ADAPT[m.kind]
    if not adapt then argerror(('experiment: unknown method kind %q (base, ti_lora, dpo, craft)'):format(tostring(m.kind))) end
    local ts = craft.C.craft_now()
    say('%s: adapting (%s)', m.name, m.kind)
    local pipe, start_prompts
    if m.from then
      local src = by_name[m.from]
      if not src then error(('experiment: method %q starts from %q, which is not an earlier method'):format(m.name, m.from), 0) end
      pipe, start_prompts = adapted_start(cfg, src)
    else
      pipe = craft.models.load(cfg.pipeline)
    end
    local prompt_fn, train_result = adapt(pipe, m, cfg, cas, start_prompts)
    by_name[m.name], by_name[m.key] = { key = m.key, prompt_fn = prompt_fn }, { key = m.key, prompt_fn = prompt_fn }
    local gens = {}
    for si, seed in ipairs(cfg.generate.seeds) do
      local x, y = generate(pipe, prompt_fn, cfg, seed)
      gens[si] = { images = x, labels = y }
      sw:add { method = m.name, key = m.key, train_seed = cfg.seed, gen_seed = seed, images = x, labels = y,
        classes = cfg.classes }
    end
    say('%s: generated %d images; evaluating', m.name, #cfg.classes * cfg.generate.per_class * #cfg.generate.seeds)
    local ev = evaluate(cfg, cas, ood, gens)
    ev.name, ev.baseline, ev.kind = m.name, m.baseline or false, m.kind
    ev.below = {}
    for k, v in ipairs(ev.cas) do ev.below[k] = v < cas.thresholds[ev.labels[k] + 1] and 1 or 0 end
    ev.seconds = craft.C.craft_now() - ts
    ev.train_log = train_result and train_result.log
    results[#results + 1] = ev
    pipe = nil
    collectgarbage()
  end

  sw:close()
  local text = print_table(cfg, results, real)
  local report = require 'craft.report'
  local summary = report.write(cfg.out .. '/report', merge(cfg.report, {
    title = cfg.title or ('CRAFT: ' .. cfg.name), classes = cfg.classes, thresholds = cas.thresholds, q = cas.q,
    real = { cas = real.cas, labels = real.labels }, checklist_items = cas:checklist_items(), methods = results,
    ood_thresholds = ood and ood.thresholds or nil, notes = cfg.notes,
  }))
  local f = io.open(cfg.out .. '/table.txt', 'w')
  if f then f:write(text, '\n'); f:close() end
  say('done in %.1f min: %s/report/index.html', (craft.C.craft_now() - t0) / 60, cfg.out)
  return { methods = results, real = real, cas = cas, ood = ood, summary = summary, table = text }
end

return M
