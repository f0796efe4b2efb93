-- craft.experiment.evaluate: the scores of one trained model's images (one job), and of the real
-- test images (the reference). Per image: the judge's CAS and tail flag (the headline), the oracle's
-- verdict on phantoms (correct, wrong or undetermined), the reward's CAS, dimensions and tail flag
-- (the optimised quantity). Per model: a downstream classifier (a linear head on the judge's frozen
-- features, trained on the model's images only, and on them plus the few-shot reals, tested on
-- the test split) and memorisation against the few-shot reals (judge-feature cosine and pixel
-- SSIM, thresholds from real test/few-shot pairs). The judge's features are returned too: the
-- experiment pools them per method for FID in the judge's feature space.
local A = require 'craft.autograd'
local phantoms = require 'craft.phantoms'
local F = require 'craft.functional'
local stats = require 'craft.stats'
local metrics = require 'craft.metrics'
local suites = require 'craft.experiment.suites'

local M = {}

local function merge(a, b)
  local r = {}
  for k, v in pairs(a or {}) do r[k] = v end
  for k, v in pairs(b or {}) do r[k] = v end
  return r
end

-- fn(images) -> features, in batches of 64 without a graph
local function batched(encode)
  return function(x)
    return A.no_grad(function()
      local out = {}
      for s = 1, x:size(1), 64 do
        out[#out + 1] = encode(x:narrow(1, s, math.min(64, x:size(1) - s + 1))):detach():float()
      end
      return F.cat(out, 1)
    end)
  end
end

-- the judge's features of the real splits this process needs, computed once
local function real_features(cfg)
  if cfg._judge_feats then return cfg._judge_feats end
  local fe = batched(cfg.judge.vision.encode)
  cfg._judge_feats = { few_shot = fe(cfg.splits.few_shot.images), test = fe(cfg.splits.test.images) }
  return cfg._judge_feats
end
M.real_features = real_features

-- downstream(cfg, feats or nil, labels or nil, with_real) -> {accuracy, balanced_accuracy, ...}
function M.downstream(cfg, feats, labels, with_real)
  local rf, s = real_features(cfg), cfg.splits
  local ys = {}
  for _, y in ipairs(labels or {}) do ys[#ys + 1] = y end
  local x = feats
  if with_real or not feats then
    for _, y in ipairs(s.few_shot.labels:flat()) do ys[#ys + 1] = y end
    x = feats and F.cat({ feats, rf.few_shot }, 1) or rf.few_shot
  end
  local o = merge(cfg.downstream, { n_classes = #cfg.classes, seed = 0 })
  local r = metrics.evaluate_feature_classifier(metrics.train_feature_classifier(x, ys, o), rf.test,
    s.test.labels)
  r.probs, r.pred = nil, nil
  return r
end

local function flags(list) local r = {} for i, b in ipairs(list) do r[i] = b and 1 or 0 end return r end

-- oracle verdicts: labels (0-based, -1 undetermined), correct (0/1), undetermined (0/1)
function M.oracle(cfg, images, labels)
  if not cfg.judge.oracle then return nil end
  local a = phantoms.audit(cfg.judge.oracle, images)
  local correct, undet = {}, {}
  for i, l in ipairs(a.labels) do
    correct[i] = (l == labels[i]) and 1 or 0
    undet[i] = (l < 0) and 1 or 0
  end
  return { labels = a.labels, correct = correct, undetermined = undet }
end

-- per_image(cfg, images or nil, labels) -> the scores of each image on its own (plain Lua data:
-- reward and judge CAS, the oracle's verdicts) and the judge's features (a tensor, nil for no
-- images): what a rank computes for its share of a model's images (craft.dist)
function M.per_image(cfg, images, labels)
  local p = { labels = labels, reward = { cas = {}, below = {}, dims = {}, items = {} },
    judge = { cas = {}, below = {} } }
  if not images or #labels == 0 then return p, nil end
  local reward, judge = suites.reward(cfg), suites.judge(cfg)
  local rs = reward:score(images, labels)
  p.reward = { cas = rs.cas, below = rs.below, dims = rs.dims, items = rs.items }
  local js = judge:score(images, labels)
  p.judge = { cas = js.cas, below = js.below }
  p.oracle = M.oracle(cfg, images, labels)
  return p, batched(cfg.judge.vision.encode)(images)
end

-- join(parts) -> one per_image result from the ranks' results, in rank order
function M.join(parts)
  if #parts == 1 then return parts[1] end
  local function cat(dst, src) for _, v in ipairs(src or {}) do dst[#dst + 1] = v end end
  local r = { labels = {}, reward = { cas = {}, below = {}, dims = {}, items = {} },
    judge = { cas = {}, below = {} } }
  for _, p in ipairs(parts) do
    cat(r.labels, p.labels)
    for _, k in ipairs { 'cas', 'below', 'items' } do cat(r.reward[k], p.reward[k]) end
    for d, v in pairs(p.reward.dims) do
      r.reward.dims[d] = r.reward.dims[d] or {}
      cat(r.reward.dims[d], v)
    end
    cat(r.judge.cas, p.judge.cas)
    cat(r.judge.below, p.judge.below)
    if p.oracle then
      r.oracle = r.oracle or { labels = {}, correct = {}, undetermined = {} }
      for _, k in ipairs { 'labels', 'correct', 'undetermined' } do cat(r.oracle[k], p.oracle[k]) end
    end
  end
  return r
end

-- finish(cfg, images, labels, p, feats) -> the per-image and per-model scores (plain Lua data) of
-- a model from every image's per_image scores and the judge's features: the downstream
-- classifier and memorisation need the whole set
function M.finish(cfg, images, labels, p, feats)
  local reward = suites.reward(cfg)
  local r = {}
  r.reward_cas, r.reward_below, r.reward_dims = p.reward.cas, flags(p.reward.below), p.reward.dims
  r.reward_audit = reward:audit { labels = p.labels, items = p.reward.items }
  r.judge_cas, r.judge_below = p.judge.cas, flags(p.judge.below)
  local o = p.oracle
  if o then r.oracle_label, r.oracle_correct, r.oracle_undetermined = o.labels, o.correct, o.undetermined end
  if cfg.downstream then
    r.downstream = M.downstream(cfg, feats, labels, false)
    r.downstream_mixed = M.downstream(cfg, feats, labels, true)
  end
  local rf, s = real_features(cfg), cfg.splits
  local mem = metrics.memorisation(merge(cfg.memorisation, { gen_feats = feats, train_feats = rf.few_shot,
    test_feats = rf.test, gen_images = images, train_images = s.few_shot.images,
    test_images = s.test.images }))
  r.memo_feature = mem.cos and mem.cos.share
  r.memo_ssim = mem.ssim and mem.ssim.share
  r.memo_feature_flags, r.memo_ssim_flags = {}, {}
  for i, v in ipairs(mem.cos and mem.cos.nn or {}) do
    r.memo_feature_flags[i] = v > mem.cos.threshold and 1 or 0
  end
  for i, v in ipairs(mem.ssim and mem.ssim.nn or {}) do
    r.memo_ssim_flags[i] = v > mem.ssim.threshold and 1 or 0
  end
  r.labels = labels
  return r
end

-- model(cfg, images, labels) -> per-image and per-model scores (plain Lua data) and the judge's
-- features (a tensor)
function M.model(cfg, images, labels)
  local p, feats = M.per_image(cfg, images, labels)
  return M.finish(cfg, images, labels, p, feats), feats
end

-- reference(cfg) -> the same per-image scores for the real test images, and the downstream
-- classifier trained on the few-shot reals alone
function M.reference(cfg)
  local s = cfg.splits
  local labels = s.test.labels:flat()
  local reward, judge = suites.reward(cfg), suites.judge(cfg)
  local r = { labels = labels }
  local rs = reward:score(s.test.images, labels)
  r.reward_cas, r.reward_below = rs.cas, flags(rs.below)
  local js = judge:score(s.test.images, labels)
  r.judge_cas, r.judge_below = js.cas, flags(js.below)
  local o = M.oracle(cfg, s.test.images, labels)
  if o then r.oracle_correct, r.oracle_undetermined, r.oracle_label = o.correct, o.undetermined, o.labels end
  if cfg.downstream then r.downstream = M.downstream(cfg, nil, nil, false) end
  r.judge_tail, r.reward_tail = stats.mean(r.judge_below), stats.mean(r.reward_below)
  r.oracle_share = r.oracle_correct and stats.mean(r.oracle_correct)
  return r
end

return M
