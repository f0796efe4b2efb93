-- craft.metrics_learned: the metrics that search or train (METHOD.md, "Evaluation"): memorisation
-- (nearest real training image by cosine or SSIM, the share above a duplicate threshold calibrated
-- on real train/test pairs) and the downstream classifier. Installed into craft.metrics, whose
-- SSIM they use; call them as craft.metrics.memorisation, craft.metrics.train_classifier, ...
local core = require 'craft.core'
local T = require 'craft.tensor'
local F = require 'craft.functional'
local A = require 'craft.autograd'
local nn = require 'craft.nn'
local optim = require 'craft.optim'
local stats = require 'craft.stats'
local arg = require 'craft.metrics_args'
local list, labels, mat, rows = arg.list, arg.labels, arg.mat, arg.rows
local want, argerror = core.want, core.argerror

return function(M)
---------------------------------------------------------------- memorisation
local function chunks(n, size)
  local s = 1 - size
  return function()
    s = s + size
    if s <= n then return s, math.min(size, n - s + 1) end
  end
end

-- The top-m reference rows by cosine for each query: sims and 1-based indices, lists of lists.
local function top_cosine(q, r, m, chunk, fname)
  fname = fname or 'metrics.nearest_cosine'
  q, r = mat(q, fname, 'query features'), mat(r, fname, 'reference features')
  if q:size(2) ~= r:size(2) then
    argerror(('%s: feature sizes differ (%d vs %d)'):format(fname, q:size(2), r:size(2)))
  end
  q, r = F.normalize(q, 2), F.normalize(r, 2)
  local sims, idx = {}, {}
  A.no_grad(function()
    local cols = T.arange(r:size(1))
    for s, len in chunks(q:size(1), chunk or 256) do
      local S = q:narrow(1, s, len):matmul(r:t())
      local rows_s, rows_i = {}, {}
      for i = 1, len do rows_s[i], rows_i[i] = {}, {} end
      for _ = 1, math.min(m, r:size(1)) do
        local v, ix = S:max(2, true)
        local vf, ixf = v:flat(), ix:flat()
        for i = 1, len do
          rows_s[i][#rows_s[i] + 1] = vf[i]
          rows_i[i][#rows_i[i] + 1] = ixf[i] + 1
        end
        S = F.where(cols:eq(ix:float()), T.full({}, -1e4), S)
      end
      for i = 1, len do sims[s + i - 1], idx[s + i - 1] = rows_s[i], rows_i[i] end
    end
  end)
  return sims, idx
end

-- nearest_cosine(query_feats, ref_feats) -> sims, indices (1-based) of each query's nearest ref
function M.nearest_cosine(q, r)
  local s, i = top_cosine(q, r, 1)
  local sims, idx = {}, {}
  for k = 1, #s do sims[k], idx[k] = s[k][1], i[k][1] end
  return sims, idx
end

-- nearest_ssim(query_images, ref_images, {candidates=nil, query_feats=, ref_feats=, batch=64})
-- -> ssims, indices. Exhaustive by default; with `candidates` = m (and features) only the m
-- nearest refs by feature cosine are compared, since exhaustive SSIM costs N_query * N_ref
-- windowed passes over the pixels.
function M.nearest_ssim(q, r, o)
  want('metrics.nearest_ssim', 'query images', q, 'tensor')
  want('metrics.nearest_ssim', 'reference images', r, 'tensor')
  o = want('metrics.nearest_ssim', 'options', o, 'table', true) or {}
  local nq, nr = q:size(1), r:size(1)
  local cand
  if o.candidates and o.candidates < nr then
    if not (o.query_feats and o.ref_feats) then
      argerror('metrics.nearest_ssim: candidates needs query_feats and ref_feats')
    end
    local _
    _, cand = top_cosine(o.query_feats, o.ref_feats, o.candidates, nil, 'metrics.nearest_ssim')
  end
  local take = require('craft.data').take
  local best, arg = {}, {}
  for i = 1, nq do
    local qi = q:narrow(1, i, 1)
    local b, bi = -math.huge, 0
    if cand then
      local v = M.ssim(take(r, cand[i]), qi, o)
      for j = 1, #v do if v[j] > b then b, bi = v[j], cand[i][j] end end
    else
      for s, len in chunks(nr, o.batch or 64) do
        local v = M.ssim(r:narrow(1, s, len), qi, o)
        for j = 1, len do if v[j] > b then b, bi = v[j], s + j - 1 end end
      end
    end
    best[i], arg[i] = b, bi
  end
  return best, arg
end

-- memorisation{gen_feats=, train_feats=, test_feats=, gen_images=, train_images=,
--   test_images=, percentile=0.99, ssim_candidates=32}
-- -> { cos = {nn=, index=, threshold=, share=}, ssim = {...} (when images are given) }
-- The duplicate threshold is the `percentile` quantile (linear) of the nearest-train similarity
-- of real test images: a real unseen image is that close to the training set only 1 % of the
-- time. The share is the fraction of generated images strictly above it.
function M.memorisation(o)
  want('metrics.memorisation', 'options', o, 'table')
  local pct = o.percentile or 0.99
  local function summarise(nn_gen, idx, nn_test)
    local thr = stats.quantile(nn_test, pct)
    local above = 0
    for _, v in ipairs(nn_gen) do if v > thr then above = above + 1 end end
    return { nn = nn_gen, index = idx, threshold = thr, share = above / #nn_gen, test_nn = nn_test }
  end
  local r = {}
  if o.gen_feats then
    local g, gi = M.nearest_cosine(o.gen_feats, o.train_feats)
    local t = M.nearest_cosine(o.test_feats, o.train_feats)
    r.cos = summarise(g, gi, t)
  end
  if o.gen_images then
    local m = o.ssim_candidates
    if m == nil then m = 32 end
    local so = { candidates = (m and m > 0 and o.gen_feats) and m or nil, ref_feats = o.train_feats }
    so.query_feats = o.gen_feats
    local g, gi = M.nearest_ssim(o.gen_images, o.train_images, so)
    so.query_feats = o.test_feats
    local t = M.nearest_ssim(o.test_images, o.train_images, so)
    r.ssim = summarise(g, gi, t)
  end
  return r
end

---------------------------------------------------------------- downstream classifier
local GlobalAvgPool = nn.class('GlobalAvgPool')
function GlobalAvgPool:forward(x) return x:mean({ 3, 4 }) end
local AvgPool = nn.class('AvgPool2d')
function AvgPool:init(k) self.k = k end
function AvgPool:forward(x) return F.avg_pool2d(x, self.k) end

-- small_cnn(in_channels, n_classes, width=16): three 3x3 conv + ReLU stages (two 2x average
-- pools between them), global average pooling and a linear head.
function M.small_cnn(cin, n_classes, width)
  local w = width or 16
  return nn.Sequential(
    nn.Conv2d(cin, w, 3, { padding = 1 }), nn.ReLU(), AvgPool(2),
    nn.Conv2d(w, 2 * w, 3, { padding = 1 }), nn.ReLU(), AvgPool(2),
    nn.Conv2d(2 * w, 4 * w, 3, { padding = 1 }), nn.ReLU(),
    GlobalAvgPool(), nn.Linear(4 * w, n_classes))
end

-- train_classifier(images, labels, {arch='small_cnn' or fn(in_ch, n_classes) -> module,
--   n_classes=(max label + 1), width=16, epochs=10, lr=1e-3, weight_decay=1e-4, batch_size=32,
--   seed=0, augment=true (random horizontal flips)}) -> model (in eval mode)
function M.train_classifier(images, labels, o)
  want('metrics.train_classifier', 'images', images, 'tensor')
  o = want('metrics.train_classifier', 'options', o, 'table', true) or {}
  local ys = list(labels, 'metrics.train_classifier', 'labels')
  local nc = o.n_classes
  if not nc then nc = 0; for _, y in ipairs(ys) do nc = math.max(nc, y + 1) end end
  local arch = o.arch or 'small_cnn'
  if type(arch) ~= 'function' and arch ~= 'small_cnn' then
    argerror(('metrics.train_classifier: unknown arch %q (small_cnn or a function)'):format(tostring(arch)))
  end
  -- initialise from the classifier's own seed, then give the caller's random stream back
  local saved_seed, saved_off = T.rng.seed, T.rng.offset
  T.manual_seed(o.seed or 0)
  local model = type(arch) == 'function' and arch(images:size(2), nc) or M.small_cnn(images:size(2), nc,
    o.width)
  T.rng.seed, T.rng.offset = saved_seed, saved_off
  local opt = optim.AdamW(model, { lr = o.lr or 1e-3, weight_decay = o.weight_decay or 1e-4 })
  local ds = { images = images:detach():float():contiguous(), labels = T.tensor(ys, { dtype = 'i64' }) }
  local loader = require('craft.data').loader(ds, { batch_size = o.batch_size or 32, seed = o.seed or 0,
    hflip = o.augment ~= false })
  model:train()
  for e = 1, o.epochs or 10 do
    for x, y in loader:epoch(e) do
      F.cross_entropy(model(x), y):backward()
      opt:step()
      opt:zero_grad()
    end
  end
  model:eval()
  return model
end

-- train_feature_classifier(feats [N, D], labels, {n_classes, steps=300, lr=1e-2, weight_decay=1e-3,
--   seed=0}) -> model: a linear softmax head on L2-normalised frozen features (linear
--   evaluation), trained full-batch with AdamW and class-balanced cross-entropy so that a
--   skewed synthetic set does not turn into a prior. model(feats) gives logits.
function M.train_feature_classifier(feats, labels, o)
  want('metrics.train_feature_classifier', 'labels', labels, 'list')
  o = want('metrics.train_feature_classifier', 'options', o, 'table', true) or {}
  local ys = list(labels, 'metrics.train_feature_classifier', 'labels')
  local nc = o.n_classes
  if not nc then nc = 0; for _, y in ipairs(ys) do nc = math.max(nc, y + 1) end end
  local X = F.normalize(mat(feats, 'metrics.train_feature_classifier', 'feats'), 2)
  if X:size(1) ~= #ys then
    argerror(('metrics.train_feature_classifier: %d feature rows but %d labels'):format(X:size(1), #ys))
  end
  local count = {}
  for c = 1, nc do count[c] = 0 end
  for _, y in ipairs(ys) do count[y + 1] = count[y + 1] + 1 end
  local w = {}
  for i, y in ipairs(ys) do w[i] = #ys / (nc * count[y + 1]) end
  local saved_seed, saved_off = T.rng.seed, T.rng.offset
  T.manual_seed(o.seed or 0)
  local head = nn.Linear(X:size(2), nc)
  T.rng.seed, T.rng.offset = saved_seed, saved_off
  local opt = optim.AdamW(head, { lr = o.lr or 1e-2, weight_decay = o.weight_decay or 1e-3 })
  local Y, W = T.tensor(ys, { dtype = 'i64' }), T.tensor(w)
  for _ = 1, o.steps or 300 do
    F.cross_entropy(head(X), Y, { reduction = 'none' }):mul(W):mean():backward()
    opt:step()
    opt:zero_grad()
  end
  return function(f) return head(F.normalize(mat(f, 'feature classifier', 'features'), 2)) end
end

-- evaluate_feature_classifier(model, feats, labels) -> {accuracy, balanced_accuracy, macro_f1, auroc}
function M.evaluate_feature_classifier(model, feats, labels)
  if type(model) ~= 'function' and not (type(model) == 'table' and getmetatable(model)
    and getmetatable(model).__call) then
    argerror(('metrics.evaluate_feature_classifier: model must be a function or a module, got %s')
      :format(core.describe(model)))
  end
  want('metrics.evaluate_feature_classifier', 'features', feats, 'tensor')
  local probs = A.no_grad(function() return F.softmax(model(feats), 2):tolist() end)
  return M.classification(probs, labels)
end

-- evaluate_classifier(model, images, labels, {batch_size=64}) -> {accuracy, balanced_accuracy,
-- macro_f1, auroc, probs, pred}
function M.evaluate_classifier(model, images, labels, o)
  if type(model) ~= 'function' and not (type(model) == 'table' and getmetatable(model)
    and getmetatable(model).__call) then
    argerror(('metrics.evaluate_classifier: model must be a function or a module, got %s')
      :format(core.describe(model)))
  end
  want('metrics.evaluate_classifier', 'images', images, 'tensor')
  o = want('metrics.evaluate_classifier', 'options', o, 'table', true) or {}
  local probs = {}
  A.no_grad(function()
    for s, len in chunks(images:size(1), o.batch_size or 64) do
      for _, row in ipairs(F.softmax(model(images:narrow(1, s, len)), 2):tolist()) do
        probs[#probs + 1] = row
      end
    end
  end)
  local r = M.classification(probs, labels)
  r.probs = probs
  return r
end
end
