-- craft.experiment: one CRAFT comparison, graded the way METHOD.md's "Evaluation integrity" binds:
-- the generator is adapted by each method for several training seeds, each model's images are
-- scored by a judge suite that shares no model, fitted state or real image with the reward the
-- trainers ascend (checked: craft.experiment.independence), on splits that are pairwise disjoint,
-- and every method is summarised with CIs over training seeds and images. The reward's own CAS is
-- reported too, as the optimised quantity; a method whose reward tail falls while the judges see
-- no gain is flagged as reward hacking. Prints the table, writes RUN/report/ (index.html,
-- per_image.csv, summary.csv), RUN/table.txt, RUN/samples/ and RUN/run.json.
--
--   require('craft.experiment').run{
--     name = 'quickstart', out = 'runs/quickstart', pipeline = 'models/builtin/sd-tiny',
--     classes = {...}, knowledge = {...},
--     splits = {few_shot = ds, reward_fit = ds, calibration = ds, judge_fit = ds,
--               judge_calibration = ds, test = ds},        -- craft.data sets with .provenance
--     reward = {vlm = E.clip(..), vision = E.dinov2(..), cas = {q = 0.1, k = 5}},
--     judge = {vision = E.resnet(..), cas = {q = 0.1, k = 5}, oracle = 'cxr'},
--     methods = {{name = 'TI + LoRA', kind = 'ti_lora', baseline = true, ...}, ...},  -- craft.methods
--                 (kind: a registered name, or a method module itself: kind = require 'my_method')
--     train_seeds = {0, 1, 2}, generate = {per_class = 24, steps = 10, cfg = 3},
--                        (generate.precision = 'bf16' | 'fp16': the evaluation images sampled
--                         with bf16 / f16 matrix products, craft.set_precision; default: the
--                         current setting)
--     jobs = 2,          -- worker processes (craft.experiment.jobs)
--     device = 'cl:0',   -- default: the current device (--device); workers get it too
--   }
-- docs/evaluation.md describes the splits, the suites, the table and the alarm.
local T = require 'craft.tensor'
local A = require 'craft.autograd'
local models = require 'craft.models'
local runtime = require 'craft.runtime'
local core = require 'craft.core'
local argerror = core.argerror
local F = require 'craft.functional'
local io_ = require 'craft.io'
local stats = require 'craft.stats'
local methods = require 'craft.methods'
local jobs = require 'craft.experiment.jobs'
local evaluate = require 'craft.experiment.evaluate'
local suites = require 'craft.experiment.suites'
local summary = require 'craft.experiment.summary'
local independence = require 'craft.experiment.independence'
local devices = require 'craft.device'
local dist = require 'craft.dist'

local M = {}

M.DEFAULTS = {
  out = 'runs/experiment',
  train_seeds = { 0, 1, 2 },
  jobs = 1,
  reuse = false,
  tune = false,
  generate = { per_class = 16, steps = 10, cfg = 3.0, batch = 16 },
  -- a linear head on the judge's frozen features (steps, lr, weight_decay of the head)
  downstream = {},
  memorisation = { percentile = 0.99, ssim_candidates = 16 },
  report = { bootstrap = { n = 1000, seed = 0 }, grid = { per_class = 4 } },
}

local function merge(a, b)
  local r = {}
  for k, v in pairs(a or {}) do r[k] = v end
  for k, v in pairs(b or {}) do r[k] = v end
  return r
end

local function say(fmt, ...) io.stderr:write(('[%s] '):format(os.date('%H:%M:%S')), fmt:format(...), '\n') end
local function mkdir(d) os.execute("mkdir -p '" .. d:gsub("'", "'\\''") .. "'") end
local function exists(p) local f = io.open(p) if f then f:close() return true end return false end

-- 'TI + LoRA (continued)' -> 'ti_lora_continued'
local function slug(name)
  local s = name:lower():gsub('[^%w]+', '_'):gsub('^_+', ''):gsub('_+$', '')
  return s ~= '' and s or 'method'
end

---------------------------------------------------------------- the configuration
local function normalise(cfg)
  core.want('experiment.run', 'config', cfg, 'table')
  cfg = merge(M.DEFAULTS, cfg)
  cfg.generate = merge(M.DEFAULTS.generate, cfg.generate)
  A.precision_code('experiment: generate', cfg.generate.precision, true)
  if cfg.downstream ~= false then cfg.downstream = merge(M.DEFAULTS.downstream, cfg.downstream) end
  cfg.memorisation = merge(M.DEFAULTS.memorisation, cfg.memorisation)
  cfg.report = merge(M.DEFAULTS.report, cfg.report)
  for _, k in ipairs { 'pipeline', 'classes', 'knowledge', 'splits', 'reward', 'judge', 'methods' } do
    if not cfg[k] then argerror('experiment: the recipe has no ' .. k) end
  end
  for _, s in ipairs(independence.SPLITS) do
    local d = cfg.splits[s]
    if not (type(d) == 'table' and d.images and d.labels) then
      argerror(('experiment: splits.%s must be a data set {images, labels} (the splits: %s)'):format(s,
        table.concat(independence.SPLITS, ', ')))
    end
  end
  if not (cfg.judge.vision and cfg.judge.vision.encode) then
    argerror('experiment: judge.vision must be an encoder (craft.encoders)')
  end
  if #cfg.train_seeds < 1 then argerror('experiment: train_seeds is empty') end
  if cfg.device ~= nil then devices.code(cfg.device) end
  local keys = {}
  local ms = {}
  for i, spec in ipairs(cfg.methods) do
    if type(spec.name) ~= 'string' then argerror(('experiment: methods[%d] has no name'):format(i)) end
    local kind = spec.kind
    -- a method module in the list itself (kind = require 'my_method'): registered under its kind
    if type(kind) == 'table' then
      if type(kind.kind) ~= 'string' then
        argerror(('experiment: methods[%d].kind is a table without a kind name'):format(i))
      end
      kind = methods.register(kind.kind, kind).kind
    end
    methods.get(kind)   -- an unknown kind is refused before anything runs
    local m = merge(spec, { key = spec.key or slug(spec.name), kind = kind })
    if keys[m.key] then
      argerror(('experiment: two methods have the key %q (give one a key)'):format(m.key))
    end
    keys[m.key] = true
    ms[i] = m
  end
  cfg.methods = ms
  return cfg
end

---------------------------------------------------------------- one job
-- The generation seed of a model: a function of its training seed alone, so the models of every
-- method for one seed start their images from the same noise (paired comparisons).
local function gen_seed(train_seed) return 7919 * (train_seed + 1) end

-- per_class images of every class; prompts cycle through the class's list. With several ranks
-- (craft.dist) each generates its contiguous block of the list (dist.shard) with the noise those
-- images get when generated whole: a batch it has only part of starts at that part's offset in
-- the batch's noise. -> this rank's images (nil for none), their labels, every image's labels.
local function generate(pipe, prompts, cfg, seed)
  local g = cfg.generate
  local first, count = dist.shard(#cfg.classes * g.per_class)
  local last = first + count - 1
  local imgs, labels, all = {}, {}, {}
  local before = 0   -- images of the whole list before this batch
  for ci, class in ipairs(cfg.classes) do
    local ps = prompts[class]
    if not ps or #ps == 0 then argerror(('experiment: no prompt for class %q'):format(class)) end
    local done = 0
    while done < g.per_class do
      local b = math.min(g.batch, g.per_class - done)
      for _ = 1, b do all[#all + 1] = ci - 1 end
      local lo, hi = math.max(first, before + 1) - before, math.min(last, before + b) - before
      if lo <= hi then
        local batch = {}
        for k = lo, hi do batch[#batch + 1] = ps[(done + k - 1) % #ps + 1] end
        local o = { prompt = batch, negative_prompt = cfg.knowledge.negative_prompt, steps = g.steps,
          cfg = g.cfg, seed = seed * 1000003 + ci * 10007 + done, precision = g.precision }
        if hi - lo + 1 < b then
          local shape = require('craft.train.common').latent_shape(pipe, b, {})
          local per = shape[2] * shape[3] * shape[4]
          shape[1] = hi - lo + 1
          o.noise_offset = (lo - 1) * per
          o.latents = T.randn(shape, { seed = o.seed, offset = o.noise_offset })
        end
        local x = A.no_grad(function() return pipe:generate(o) end)
        -- like with like: generated images at the real data's resolution
        local size = cfg.splits.few_shot.images:size(3)
        if x:size(3) ~= size then x = require('craft.data').resize(x, size) end
        imgs[#imgs + 1] = x
        for _ = lo, hi do labels[#labels + 1] = ci - 1 end
      end
      before = before + b
      done = done + b
    end
  end
  return #imgs > 0 and F.cat(imgs, 1) or nil, labels, all
end

-- a fresh pipeline with an adapter chain applied (textual-inversion tokens installed, LoRAs baked)
local function start_pipeline(cfg, chain)
  local pipe = models.load(cfg.pipeline)
  local lora = require 'craft.models.lora'
  for _, a in ipairs(chain or {}) do
    if a.kind == 'ti' then
      if exists(a.path .. '/tokens.json') then require('craft.train.ti').load(pipe, a.path) end
    elseif a.kind == 'lora' then
      if exists(a.path) then lora.load(pipe.unet, a.path); lora.bake(pipe.unet) end
    else
      argerror(('experiment: unknown adapter kind %q in a start chain'):format(tostring(a.kind)))
    end
  end
  return pipe
end

-- where a job's tensors ended up: { models = {device = count}, optimiser = ..., losses = ...,
-- images = device } (result.json; tests/device_quickstart.sh checks that all is on the device)
local function census(pipe, a, images)
  local lora = require 'craft.models.lora'
  local c = { models = devices.census(pipe.unet, pipe.vae, pipe.text_encoder, pipe.ti and pipe.ti.vectors,
    lora.parameters(pipe.unet)), images = images.device }
  local res = a.result
  if res and res.optimizer then c.optimiser = devices.census(res.optimizer.state) end
  if res and res.loss_devices then c.losses = res.loss_devices end
  return c
end

local function exec_job(cfg, all, job)
  local t0 = runtime.now()
  local launches0 = devices.launches()
  mkdir(job.dir)
  local m = job.method
  local chain, start_prompts = {}, nil
  if #job.deps > 0 then
    local dep = jobs.find(all, job.deps[1])
    local d = io_.read_json(dep.dir .. '/done.json')
    chain, start_prompts = d.chain or {}, d.prompts
  end
  local pipe = start_pipeline(cfg, chain)
  T.manual_seed(1000 * job.seed + 17)
  local root = dist.is_root()
  local ctx = { seed = job.seed, dir = job.dir, classes = cfg.classes, knowledge = cfg.knowledge,
    few_shot = cfg.splits.few_shot, start_prompts = start_prompts, quiet = cfg.quiet or not root,
    reward = function() return suites.reward(cfg) end }
  local a = methods.get(m.kind).adapt(pipe, m, ctx)
  local t_train = runtime.now() - t0
  local full_chain = {}
  for _, c in ipairs(chain) do full_chain[#full_chain + 1] = c end
  for _, c in ipairs(a.adapters or {}) do full_chain[#full_chain + 1] = c end
  -- every rank generates and scores its share of the images; rank 0 gathers them, finishes the
  -- evaluation (the downstream classifier and memorisation need the whole set) and writes
  local mine, my_labels, labels = generate(pipe, a.prompts, cfg, gen_seed(job.seed))
  local where = census(pipe, a, mine)
  pipe = nil
  collectgarbage()
  local part, my_feats = evaluate.per_image(cfg, mine, my_labels)
  local parts = dist.gather(part)
  local images, feats = dist.gather_rows(mine), dist.gather_rows(my_feats)
  if not root then
    dist.barrier()   -- the jobs that start from this one read its files
    return
  end
  local r = evaluate.finish(cfg, images, labels, evaluate.join(parts), feats)
  r.budget = a.budget or { steps = 0, images = 0 }
  r.heldout = a.heldout
  r.train_seconds = t_train
  r.seconds = runtime.now() - t0
  r.train_seed, r.gen_seed = job.seed, gen_seed(job.seed)
  r.device, r.devices = devices.default(), where
  r.kernels_launched = devices.launches() - launches0
  r.in_worker = os.getenv(jobs.ENV) ~= nil
  if a.result and a.result.log then
    local last = a.result.log[#a.result.log]
    r.train_last = last and jobs.plain(last)
  end
  io_.save_safetensors(job.dir .. '/images.safetensors',
    { images = images:contiguous(), judge_features = feats:contiguous(), labels = T.tensor(labels) })
  io_.write_json(job.dir .. '/result.json', jobs.plain(r))
  io_.write_json(job.dir .. '/done.json', { spec = job.spec, chain = full_chain, prompts = a.prompts,
    seconds = r.seconds })
  dist.barrier()
end

---------------------------------------------------------------- the table
local function pct(v) return (v and v == v) and ('%5.1f%%'):format(100 * v) or '    --' end
local function ci(lo, hi) return (lo and lo == lo) and ('[%4.1f,%5.1f]'):format(100 * lo, 100 * hi) or '' end
local function f3(v) return (v and v == v) and ('%.3f'):format(v) or '--' end

local function table_text(cfg, rows, real, notes)
  local lines = {}
  local function add(s) lines[#lines + 1] = s end
  local sz = {}
  for _, s in ipairs(independence.SPLITS) do
    sz[#sz + 1] = ('%s %d'):format(s, cfg.splits[s].images:size(1))
  end
  add(('%s: %d classes; %d training seed(s) x %d images per class per model; splits: %s%s'):format(cfg.name,
    #cfg.classes, #cfg.train_seeds, cfg.generate.per_class, table.concat(sz, ', '),
    cfg.tune and ' (TUNING RUN: the calibration split stands in for the test split)' or ''))
  add(('judges: %s%s; reward: %s (the optimised quantity)'):format(cfg.judge.vision.name or '?',
    cfg.judge.oracle and (' + the ' .. cfg.judge.oracle .. ' oracle') or '',
    table.concat({ cfg.reward.vlm and cfg.reward.vlm.name or nil, cfg.reward.vision
    and cfg.reward.vision.name or nil }, ' + ')))
  add(('%-28s %18s %19s %6s %13s %11s %6s | %8s %7s | %5s %5s | %5s %6s %5s'):format('method',
    'judge tail [95% CI]',
    'oracle ok [95% CI]', 'undet', 'bal.acc(real)', 'memo f/ssim', 'FID_j', 'rew.CAS', 'rew.tail', 'rhoR',
    'rhoJ',
    'steps', 'images', 'min'))
  local function line(r)
    add(('%-28s %6s %11s %6s %12s %6s %6s (%s) %5s/%5s %6.2f | %8.3f %7s | %5s %5s | %5d %6d %5.1f')
      :format(r.method:sub(1, 28),
      pct(r.judge_tail), ci(r.judge_tail_lo, r.judge_tail_hi), pct(r.oracle_correct),
      ci(r.oracle_correct_lo, r.oracle_correct_hi),
      pct(r.oracle_undetermined), f3(r.downstream_bal_acc), f3(r.downstream_bal_acc_real_only),
      pct(r.memo_feature):gsub(' ', ''),
      pct(r.memo_ssim):gsub(' ', ''), r.fid_judge or 0 / 0, r.reward_cas or 0 / 0, pct(r.reward_tail),
      r.cas_oracle_spearman and ('%.2f'):format(r.cas_oracle_spearman) or '--',
      r.judge_oracle_spearman and ('%.2f'):format(r.judge_oracle_spearman) or '--',
      r.train_steps or 0, r.train_images or 0, r.wall_minutes or 0))
  end
  add(('%-28s %6s %11s %6s %12s %6s %25s | %8s %7s |'):format('real (test split)', pct(real.judge_tail), '',
    pct(real.oracle_share), '', '', '', '', pct(real.reward_tail)))
  for _, r in ipairs(rows) do line(r) end
  for _, n in ipairs(notes) do add(n) end
  add(cfg._device_line)
  local text = table.concat(lines, '\n')
  print(text)
  return text
end

---------------------------------------------------------------- run
local function load_model(job)
  local r = io_.read_json(job.dir .. '/result.json')
  local t = io_.load_safetensors(job.dir .. '/images.safetensors')
  r.images, r.judge_features = t.images, t.judge_features
  return r
end

-- cfg.device: the current device of the whole experiment (this process and its workers); the
-- recipe's encoders are moved there
local function use_device(cfg)
  if cfg.device == nil then return end
  devices.set_default(cfg.device)
  local dev = devices.default()
  for _, suite in ipairs { cfg.reward, cfg.judge } do
    for _, k in ipairs { 'vlm', 'checklist_vlm', 'vision' } do
      local enc = suite[k]
      if type(enc) == 'table' and type(enc.model) == 'table' and enc.model.to then enc.model:to(dev) end
    end
  end
end

M._use_device = use_device   -- for tests

function M.run(cfg)
  cfg = normalise(cfg)
  use_device(cfg)
  local plan = jobs.plan(cfg)
  local worker = os.getenv(jobs.ENV)
  if worker then
    local job = jobs.find(plan, worker)
    if not job then argerror(('experiment worker: no job %q in this recipe'):format(worker)) end
    jobs.watch_parent()
    exec_job(cfg, plan, job)
    io.stdout:flush(); io.stderr:flush()
    os.exit(0, true)   -- close the Lua state: its tensors are freed (LeakSanitizer checks workers too)
  end
  mkdir(cfg.out)
  -- several ranks (craft.dist): every rank runs every job, each on its share of the batches and
  -- images; rank 0 alone locks the folder, writes and prints
  local unlock = dist.is_root() and jobs.lock(cfg.out) or function() end
  local ok, res = xpcall(M._run_parent, function(e) return e end, cfg, plan)
  unlock()
  if not ok then error(res, 0) end
  return res
end

-- the experiment's own process: the checks, the jobs, the table and the report
function M._run_parent(cfg, plan)
  local t0 = runtime.now()
  local root = dist.is_root()
  local say = root and say or function() end
  if root then print(('ranks: %d'):format(dist.size())) end
  independence.check { splits = cfg.splits, reward = cfg.reward, judge = cfg.judge,
    generator = cfg.generator }
  say('%s: %d methods x %d training seeds; judge and reward checked apart', cfg.name, #cfg.methods,
    #cfg.train_seeds)
  local reward, judge = suites.reward(cfg), suites.judge(cfg)
  say('reward probe accuracy on the calibration split %.3f; judge probe accuracy on its calibration split '
    .. '%.3f',
    reward.probe_report.val_accuracy or 0 / 0, judge.probe_report.val_accuracy or 0 / 0)

  local in_workers = jobs.run(cfg, plan, function(job) return exec_job(cfg, plan, job) end)
  if not root then return { rank = dist.rank() } end

  -- collect: per method, its models in training-seed order
  local real = evaluate.reference(cfg)
  real.judge_features = evaluate.real_features(cfg).test
  local bo = { n = cfg.report.bootstrap.n, seed = cfg.report.bootstrap.seed }
  local rows, models_of, by_name = {}, {}, {}
  local worker_launches = 0
  for _, m in ipairs(cfg.methods) do
    local ms = {}
    for _, j in ipairs(plan) do
      if j.method.key == m.key then
        local r = load_model(j)
        -- a worker's device work is counted in its own process: added here
        if in_workers[j.key] then worker_launches = worker_launches + (r.kernels_launched or 0) end
        ms[#ms + 1] = r
      end
    end
    models_of[m.key] = ms
    local row = summary.method(m, ms, real, bo)
    rows[#rows + 1] = row
    by_name[m.name] = row
  end
  -- comparisons: every non-baseline method against the strongest baseline (lowest judge tail) and
  -- against each control; every trained method against its start for the alarm
  local best
  for _, r in ipairs(rows) do
    if r.baseline and r.judge_tail and (not best or r.judge_tail < best.judge_tail) then best = r end
  end
  local notes = {}
  local base_row
  for _, r in ipairs(rows) do if r.kind == 'base' then base_row = r; break end end
  for k, r in ipairs(rows) do
    if not r.baseline and not r.control and best then
      r.vs = { summary.compare(r, best, bo) }
      for _, c in ipairs(rows) do if c.control then r.vs[#r.vs + 1] = summary.compare(r, c, bo) end end
      for _, c in ipairs(r.vs) do
        notes[#notes + 1] = ('%s vs %s: judge tail %s -> %s, relative reduction %.1f%% [%.1f, %.1f] (seeds, '
          .. 'then images), paired t p = %s, sign-flip p = %s%s'):format(
          r.method, c.vs, pct(by_name[c.vs].judge_tail), pct(r.judge_tail), 100 * (c.rel or 0 / 0),
          100 * (c.rel_lo or 0 / 0), 100 * (c.rel_hi or 0 / 0), c.t_p and ('%.3g'):format(c.t_p) or '--',
          c.flip_p and ('%.3g'):format(c.flip_p) or '--',
          c.oracle_diff and (('; oracle %+.1f points [%+.1f, %+.1f]'):format(100 * c.oracle_diff,
          100 * c.oracle_diff_lo,
            100 * c.oracle_diff_hi)) or '')
      end
    end
    -- the alarm is for methods that ascend the reward (a method that never sees it cannot hack it)
    local m = cfg.methods[k]
    local ascends = methods.get(m.kind).needs_reward and not (m.recipe and m.recipe.reward_weight == 0)
    local start = (r.from and by_name[r.from]) or (r.kind ~= 'base' and base_row) or nil
    if ascends and start and start ~= r then
      r.alarm = summary.alarm(r, start, summary.compare(r, start, bo))
      if r.alarm then notes[#notes + 1] = r.method .. ': ' .. r.alarm end
    end
    if r.dpo_heldout_accuracy then
      notes[#notes + 1] = ('%s: held-out preference accuracy %.3f (chance 0.5)%s'):format(r.method,
        r.dpo_heldout_accuracy,
        r.dpo_heldout_accuracy <= 0.55 and ': it did not learn the preference beyond chance' or '')
    end
  end
  notes[#notes + 1] = ('columns: judge tail = share below the judge\'s real-image threshold (q = %.2f of its '
    .. 'calibration reals); oracle ok = oracle confirms the prompted class (undet: could not measure); '
    .. 'bal.acc = linear head on judge features trained on the images, tested on the test split (real: on '
    .. 'the few-shot reals alone); memo = share closer to a few-shot real than real test images are (judge '
    .. 'features / SSIM); FID_j in judge features; rew.CAS / rew.tail = the reward\'s CAS (optimised, not a '
    .. 'judge); rhoR / rhoJ = Spearman of reward / judge CAS with the oracle\'s verdict; steps / images = '
    .. 'training budget per model; min = wall minutes per model.'):format(judge.q)
  -- the device line ends the table and the report's header: where this run computed
  local dev = devices.default()
  cfg._device_line = dev == 'cpu' and 'device: cpu (no OpenCL kernels launched)'
    or ('device: %s, kernels launched: %d'):format(devices.describe(dev),
      devices.launches(dev) + worker_launches)
  local text = table_text(cfg, rows, real, notes)
  local f = io.open(cfg.out .. '/table.txt', 'w')
  if f then f:write(text, '\n'); f:close() end

  -- samples and run.json, the report
  local sw = require('craft.samples').writer(cfg.out .. '/samples')
  sw:add { method = 'Real', key = 'real', images = cfg.splits.test.images,
    labels = cfg.splits.test.labels:flat(), classes = cfg.classes }
  for _, m in ipairs(cfg.methods) do
    for _, r in ipairs(models_of[m.key]) do
      sw:add { method = m.name, key = m.key, train_seed = r.train_seed, gen_seed = r.gen_seed,
        images = r.images,
        labels = r.labels, classes = cfg.classes }
    end
  end
  sw:close()
  local run_methods = {}
  for i, m in ipairs(cfg.methods) do run_methods[i] = { name = m.name, key = m.key, kind = m.kind } end
  io_.write_json(cfg.out .. '/run.json',
    { name = cfg.name, title = cfg.title or cfg.name, classes = cfg.classes,
    methods = run_methods, train_seeds = cfg.train_seeds, tune = cfg.tune or false,
    knowledge = { prompts = cfg.knowledge.prompts, checklists = cfg.knowledge.checklists,
    descriptions = cfg.knowledge.descriptions },
    study = cfg.study })
  local report_summary = require('craft.experiment.report').write(cfg, rows, models_of, real, text)
  say('done in %.1f min: %s/report/index.html', (runtime.now() - t0) / 60, cfg.out)
  return { rows = rows, real = real, table = text, reward = reward, judge = judge, summary = report_summary }
end

return M
