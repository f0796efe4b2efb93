-- craft.metrics against scikit-learn / scipy / scikit-image values
-- (tests/fixtures/make_metrics_fixtures.py), closed forms and hand-computed cases.
local craft = require 'craft'
local metrics = require 'craft.metrics'
local ffi = require 'ffi'
local ref = dofile('tests/fixtures/metrics/metrics_ref.lua')
local T = {}

function T.classification_matches_sklearn(t)
  local c = ref.classification
  t.near(metrics.accuracy(c.y_true, c.y_pred), c.accuracy, 1e-12)
  t.near(metrics.balanced_accuracy(c.y_true, c.y_pred), c.balanced_accuracy, 1e-12)
  t.near(metrics.macro_f1(c.y_true, c.y_pred), c.macro_f1, 1e-12)
  t.near(metrics.auroc(c.probs, c.y_true), c.auroc_ovr, 1e-12, 'one-vs-rest AUROC')
  t.near(metrics.auroc_binary(ref.binary.scores, ref.binary.y), ref.binary.auroc, 1e-12, 'binary AUROC with ties')
  local e = ref.f1_edge
  t.near(metrics.macro_f1(e.y_true, e.y_pred), e.macro_f1, 1e-12, 'zero-division classes')
  t.near(metrics.balanced_accuracy(e.y_true, e.y_pred), e.balanced_accuracy, 1e-12)
  -- by hand: perfect ranking, reversed ranking, all tied
  t.near(metrics.auroc_binary({ 0.1, 0.2, 0.8, 0.9 }, { 0, 0, 1, 1 }), 1, 0)
  t.near(metrics.auroc_binary({ 0.9, 0.8, 0.2, 0.1 }, { 0, 0, 1, 1 }), 0, 0)
  t.near(metrics.auroc_binary({ 0.5, 0.5, 0.5 }, { 0, 1, 1 }), 0.5, 0)
  -- two classes: the AUROC of the positive column; tensors are accepted
  local r = metrics.classification(craft.tensor({ { 0.9, 0.1 }, { 0.4, 0.6 }, { 0.3, 0.7 }, { 0.6, 0.4 } }), { 0, 1, 1, 1 })
  t.near(r.accuracy, 0.75, 1e-12)
  t.near(r.auroc, 1, 1e-7)
  t.eq(table.concat(r.pred, ','), '0,1,1,0')
end

local function dmat(rows)
  local n = #rows
  local a = ffi.new('double[?]', n * n)
  for i = 1, n do for j = 1, n do a[(i - 1) * n + j - 1] = rows[i][j] end end
  return a
end

function T.jacobi_eigenvalues(t)
  -- [[2, 1], [1, 2]] has eigenvalues 1 and 3
  local ev, v = metrics.eigh(dmat { { 2, 1 }, { 1, 2 } }, 2, true)
  local a, b = math.min(ev[0], ev[1]), math.max(ev[0], ev[1])
  t.near(a, 1, 1e-14); t.near(b, 3, 1e-14)
  t.near(math.abs(v[0]), math.sqrt(0.5), 1e-14, 'unit eigenvectors')
  -- trace of the square root of a product of commuting matrices: sum sqrt(a_i b_i)
  local A = dmat { { 4, 0, 0 }, { 0, 9, 0 }, { 0, 0, 1 } }
  local B = dmat { { 1, 0, 0 }, { 0, 4, 0 }, { 0, 0, 16 } }
  t.near(metrics.trace_sqrt_product(A, B, 3), 2 + 6 + 4, 1e-12)
end

-- FID of two Gaussians in closed form: rotate diagonal covariances by the same orthogonal Q
-- (so they commute): FID = |mu1 - mu2|^2 + sum (s1 + s2 - 2 sqrt(s1 s2)).
function T.fid_closed_form(t)
  local d = 4
  local s1, s2 = { 1, 2, 0.5, 3 }, { 2, 2, 4, 0.25 }
  local mu1, mu2 = { 0, 1, 0, -1 }, { 1, 1, 0.5, 0 }
  local c, s = math.cos(0.7), math.sin(0.7)
  local Q = { { c, -s, 0, 0 }, { s, c, 0, 0 }, { 0, 0, c, s }, { 0, 0, -s, c } }
  local function rotated(diag)
    local r = ffi.new('double[?]', d * d)
    for i = 1, d do for j = 1, d do
      local x = 0
      for k = 1, d do x = x + Q[i][k] * diag[k] * Q[j][k] end
      r[(i - 1) * d + j - 1] = x
    end end
    return r
  end
  local function mu(m) local r = ffi.new('double[?]', d); for i = 1, d do r[i - 1] = m[i] end; return r end
  local want = 0
  for i = 1, d do want = want + (mu1[i] - mu2[i]) ^ 2 + s1[i] + s2[i] - 2 * math.sqrt(s1[i] * s2[i]) end
  local got = metrics.fid_from_stats({ mu = mu(mu1), cov = rotated(s1), d = d }, { mu = mu(mu2), cov = rotated(s2), d = d })
  t.near(got, want, 1e-10, 'closed-form FID')
end

function T.fid_matches_scipy_and_identical_sets(t)
  t.near(metrics.fid(ref.fid.a, ref.fid.b), ref.fid.fid, 1e-8 * (1 + ref.fid.fid), 'FID vs scipy sqrtm')
  t.near(metrics.fid(ref.fid.a, ref.fid.a), 0, 1e-9, 'FID of identical sets')
  -- a larger feature space (D = 64) stays accurate: identical sets -> 0
  craft.manual_seed(5)
  local f = craft.randn({ 200, 64 })
  t.near(metrics.fid(f, f), 0, 1e-7, 'FID D=64 identical')
  t.raises(function() metrics.fid(craft.randn({ 5, 3 }), craft.randn({ 5, 4 })) end, 'feature sizes differ')
end

function T.kid_matches_numpy(t)
  local m, s = metrics.kid(ref.kid.a, ref.kid.b, { n_subsets = 1, subset_size = 30 })
  t.near(m, ref.kid.kid, 1e-5, 'KID, one subset = the whole sets')
  t.near(s, 0, 0)
  -- subsets: seeded, and about 0 for two samples of one distribution
  craft.manual_seed(9)
  local a, b = craft.randn({ 120, 8 }), craft.randn({ 120, 8 })
  local m1, s1 = metrics.kid(a, b, { n_subsets = 20, subset_size = 50, seed = 2 })
  local m2 = metrics.kid(a, b, { n_subsets = 20, subset_size = 50, seed = 2 })
  t.eq(m1, m2, 'seeded')
  t.ok(math.abs(m1) < 3 * s1 + 0.05, ('same distribution: KID %.4f +- %.4f'):format(m1, s1))
  local m3 = metrics.kid(a, b + 1, { n_subsets = 20, subset_size = 50, seed = 2 })
  t.ok(m3 > m1 + 0.5, 'shifted distribution: larger KID ' .. m3)
end

local function u8_image(c, shape)
  local v = {}
  for i, x in ipairs(c) do v[i] = x / 255 end
  return craft.tensor(v):reshape(shape)
end

function T.ssim_matches_skimage(t)
  for i, c in ipairs(ref.ssim) do
    local a, b = u8_image(c.a, c.shape), u8_image(c.b, c.shape)
    t.near(metrics.ssim(a, b)[1], c.ssim, 5e-6, 'SSIM vs skimage, case ' .. i)
    t.near(metrics.ssim(a, a)[1], 1, 1e-6, 'SSIM(x, x) = 1')
  end
  -- batched: one image against a batch (broadcast)
  local c = ref.ssim[2]
  local a, b = u8_image(c.a, c.shape), u8_image(c.b, c.shape)
  local v = metrics.ssim(craft.stack({ a, b }, 1), b)
  t.near(v[1], c.ssim, 5e-6); t.near(v[2], 1, 1e-6)
  t.raises(function() metrics.ssim(craft.rand({ 1, 8, 8 }), craft.rand({ 1, 8, 8 })) end, 'smaller than the 11-pixel window')
end

function T.memorisation_finds_copies(t)
  craft.manual_seed(3)
  local train = craft.rand({ 20, 3, 16, 16 })
  local test = craft.rand({ 15, 3, 16, 16 })
  local take = craft.data.take
  -- generated: 2 near-copies of train images 4 and 9, 3 fresh images
  local gen = craft.cat({ take(train, { 4, 9 }) + craft.randn({ 2, 3, 16, 16 }) * 0.01, craft.rand({ 3, 3, 16, 16 }) }, 1)
  local feat = function(x) return (x - 0.5):reshape(x:size(1), -1) end
  local r = metrics.memorisation { gen_feats = feat(gen), train_feats = feat(train), test_feats = feat(test),
    gen_images = gen, train_images = train, test_images = test, ssim_candidates = 5 }
  t.eq(r.cos.index[1], 4); t.eq(r.cos.index[2], 9)
  t.eq(r.ssim.index[1], 4); t.eq(r.ssim.index[2], 9)
  t.near(r.cos.share, 2 / 5, 1e-12, 'share above the cosine threshold')
  t.near(r.ssim.share, 2 / 5, 1e-12, 'share above the SSIM threshold')
  t.ok(r.ssim.nn[1] > 0.95)
  -- the threshold is the 99th percentile of test -> train nearest similarities
  t.near(r.cos.threshold, require('craft.stats').quantile(r.cos.test_nn, 0.99), 1e-12)
  -- exhaustive SSIM search agrees with the candidate search on the copies
  local s, i = metrics.nearest_ssim(gen, train)
  t.eq(i[1], 4); t.near(s[2], r.ssim.nn[2], 1e-6)
end

-- Downstream classifier on an easy two-class problem (bright vs dark left half).
function T.classifier_learns_easy_task(t)
  craft.manual_seed(1)
  local function make(n)
    local x = craft.rand({ n, 3, 12, 12 }) * 0.5
    local ys = {}
    for i = 1, n do
      ys[i] = (i - 1) % 2
      if ys[i] == 1 then x:narrow(1, i, 1):narrow(4, 1, 6):add_(0.5) end
    end
    return x, ys
  end
  local xtr, ytr = make(64)
  local xte, yte = make(40)
  local model = metrics.train_classifier(xtr, ytr, { epochs = 15, lr = 1e-2, seed = 0, batch_size = 16, width = 8 })
  local r = metrics.evaluate_classifier(model, xte, yte)
  t.ok(r.accuracy >= 0.9, 'accuracy ' .. r.accuracy)
  t.ok(r.auroc >= 0.95, 'auroc ' .. r.auroc)
  t.ok(r.macro_f1 > 0.85 and r.balanced_accuracy > 0.85)
  t.eq(#r.probs, 40)
  -- seeded: the same run gives the same model
  local m2 = metrics.train_classifier(xtr, ytr, { epochs = 15, lr = 1e-2, seed = 0, batch_size = 16, width = 8 })
  t.allclose(metrics.evaluate_classifier(m2, xte, yte).probs[3], r.probs[3], 1e-6, 'deterministic')
end

-- The linear head on frozen features: separable classes are learnt, a skewed training set does
-- not become a prior (class-balanced loss), and mismatched rows are an error.
function T.feature_classifier(t)
  craft.manual_seed(3)
  local function make(n, skew)
    local rows, ys = {}, {}
    for i = 1, n do
      local y = (skew and i % 5 ~= 0) and 0 or (i - 1) % 3
      local r = {}
      for d = 1, 6 do r[d] = (d == y + 1 and 1 or 0) + 0.6 * (craft.rand({ 1 }):item() - 0.5) end
      rows[i], ys[i] = r, y
    end
    return craft.tensor(rows), ys
  end
  local xtr, ytr = make(90, true)
  local xte, yte = make(60)
  local m = metrics.train_feature_classifier(xtr, ytr, { n_classes = 3, seed = 0 })
  local r = metrics.evaluate_feature_classifier(m, xte, yte)
  t.ok(r.balanced_accuracy > 0.9, 'balanced accuracy ' .. r.balanced_accuracy)
  -- a constant prediction would score 1/3: the skew did not swamp the rare classes
  local chance = metrics.evaluate_feature_classifier(function(f) return craft.zeros({ f:size(1), 3 }) end, xte, yte)
  t.ok(chance.balanced_accuracy < 0.4, 'the metric can fail: ' .. chance.balanced_accuracy)
  local m2 = metrics.train_feature_classifier(xtr, ytr, { n_classes = 3, seed = 0 })
  t.allclose(m2(xte), m(xte), 1e-6, 'deterministic')
  t.raises(function() metrics.train_feature_classifier(xtr, { 0, 1 }) end, '90 feature rows but 2 labels')
end

return T
