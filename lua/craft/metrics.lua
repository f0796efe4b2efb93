-- craft.metrics: the evaluation metrics beside CAS (METHOD.md, "Evaluation"): classification
-- metrics of the downstream classifier, FID and KID in a given feature space, SSIM, and
-- memorisation (nearest real training image and the share above a duplicate threshold
-- calibrated on real train/test pairs), plus the downstream classifier itself.
-- Labels are 0-based class indices (Lua lists or i64 tensors); features are tensors [N, D] or
-- Lua lists of rows. Choices the method leaves open are options with documented defaults.
local core = require 'craft.core'
local T = require 'craft.tensor'
local F = require 'craft.functional'
local A = require 'craft.autograd'
local nn = require 'craft.nn'
local optim = require 'craft.optim'
local stats = require 'craft.stats'
local ffi, want, argerror = core.ffi, core.want, core.argerror

local M = {}

local arg = require 'craft.metrics_args'
local list, labels, label_pair, mat, rows = arg.list, arg.labels, arg.label_pair, arg.mat, arg.rows

---------------------------------------------------------------- classification
function M.accuracy(y, p)
  y, p = label_pair('metrics.accuracy', y, p)
  local hit = 0
  for i = 1, #y do if y[i] == p[i] then hit = hit + 1 end end
  return hit / #y
end

local function class_set(...)
  local seen, r = {}, {}
  for _, l in ipairs { ... } do
    for _, v in ipairs(l) do if not seen[v] then seen[v] = true; r[#r + 1] = v end end
  end
  table.sort(r)
  return r
end

-- Mean recall over the classes present in y (sklearn's balanced_accuracy_score).
function M.balanced_accuracy(y, p)
  y, p = label_pair('metrics.balanced_accuracy', y, p)
  local rec = {}
  for _, c in ipairs(class_set(y)) do
    local n, tp = 0, 0
    for i = 1, #y do if y[i] == c then n = n + 1; if p[i] == c then tp = tp + 1 end end end
    rec[#rec + 1] = tp / n
  end
  return stats.mean(rec)
end

-- Unweighted mean F1 over the classes in y or p; a class with no true or predicted
-- member has F1 0 (sklearn's f1_score(average='macro', zero_division=0)).
function M.macro_f1(y, p)
  y, p = label_pair('metrics.macro_f1', y, p)
  local f1 = {}
  for _, c in ipairs(class_set(y, p)) do
    local tp, fp, fn = 0, 0, 0
    for i = 1, #y do
      if p[i] == c and y[i] == c then tp = tp + 1
      elseif p[i] == c then fp = fp + 1
      elseif y[i] == c then fn = fn + 1 end
    end
    f1[#f1 + 1] = (2 * tp + fp + fn) > 0 and 2 * tp / (2 * tp + fp + fn) or 0
  end
  return stats.mean(f1)
end

-- Binary AUROC as the Mann-Whitney U statistic with average ranks: P(score of a positive >
-- score of a negative) + 0.5 P(tie). positive: list of booleans or 0/1.
function M.auroc_binary(scores, positive)
  scores, positive = list(scores, 'metrics.auroc_binary', 'scores'), list(positive, 'metrics.auroc_binary',
    'positive')
  if #scores ~= #positive then
    argerror(('metrics.auroc_binary: %d scores but %d positive flags'):format(#scores, #positive))
  end
  local r = stats.rank(scores)
  local npos, sum = 0, 0
  for i = 1, #scores do
    if positive[i] == true or positive[i] == 1 then npos = npos + 1; sum = sum + r[i] end
  end
  local nneg = #scores - npos
  if npos == 0 or nneg == 0 then return 0 / 0 end
  return (sum - npos * (npos + 1) / 2) / (npos * nneg)
end

-- AUROC of class probabilities [N, C]: two classes -> the binary AUROC of column 2; more ->
-- one-vs-rest AUROC averaged over the classes present in y (macro, as sklearn's
-- roc_auc_score(multi_class='ovr') when every class is present).
function M.auroc(probs, y)
  local P = rows(probs, 'metrics.auroc', 'probs')
  y = labels(y, 'metrics.auroc', 'y')
  if #P ~= #y then argerror(('metrics.auroc: %d probability rows but %d labels'):format(#P, #y)) end
  if #P == 0 then return 0 / 0 end
  local C = #P[1]
  local function column(c)
    local s, pos = {}, {}
    for i = 1, #y do s[i], pos[i] = P[i][c + 1], y[i] == c end
    return s, pos
  end
  if C == 2 then return M.auroc_binary(column(1)) end
  local r = {}
  for _, c in ipairs(class_set(y)) do
    local v = M.auroc_binary(column(c))
    if v == v then r[#r + 1] = v end
  end
  return stats.mean(r)
end

-- The four downstream metrics from probabilities [N, C] (tensor or rows) and labels.
function M.classification(probs, y)
  local P = rows(probs, 'metrics.classification', 'probs')
  y = labels(y, 'metrics.classification', 'y')
  if #P ~= #y then argerror(('metrics.classification: %d probability rows but %d labels'):format(#P, #y)) end
  local pred = {}
  for i, row in ipairs(P) do
    local best = 1
    for c = 2, #row do if row[c] > row[best] then best = c end end
    pred[i] = best - 1
  end
  return { accuracy = M.accuracy(y, pred), balanced_accuracy = M.balanced_accuracy(y, pred),
    macro_f1 = M.macro_f1(y, pred), auroc = M.auroc(P, y), pred = pred }
end

---------------------------------------------------------------- FID and KID
-- eigh(a, n, want_vectors) -> eigenvalues (double[n]), eigenvectors (columns of a row-major
-- double[n * n]) of the symmetric row-major double[n * n] matrix a (not modified), by cyclic
-- Jacobi rotations: slow (O(n^3) per sweep) but accurate to rounding, and plain doubles.
function M.eigh(a0, n, want_vectors)
  want('metrics.eigh', 'matrix', a0, 'cdata')
  want('metrics.eigh', 'n', n, 'count')
  if n > 2 ^ 16 then argerror(('metrics.eigh: n = %g is too large (at most 65536)'):format(n)) end
  local a = ffi.new('double[?]', n * n)
  ffi.copy(a, a0, 8 * n * n)
  local v = want_vectors and ffi.new('double[?]', n * n) or nil
  if v then for i = 0, n - 1 do v[i * n + i] = 1 end end
  for _ = 1, 100 do
    local off, total = 0, 0
    for p = 0, n - 1 do
      for q = 0, n - 1 do
        local x = a[p * n + q] * a[p * n + q]
        total = total + x
        if p ~= q then off = off + x end
      end
    end
    if off <= 1e-26 * total then break end
    for p = 0, n - 2 do
      for q = p + 1, n - 1 do
        local apq = a[p * n + q]
        if apq ~= 0 then
          -- the rotation J (c at pp and qq, s at pq, -s at qp) with t = s / c the smaller root
          -- of t^2 + 2 theta t - 1 = 0 zeroes a[p][q] in J^T A J
          local theta = (a[q * n + q] - a[p * n + p]) / (2 * apq)
          local t = 1 / (math.abs(theta) + math.sqrt(theta * theta + 1))
          if theta < 0 then t = -t end
          local c = 1 / math.sqrt(t * t + 1)
          local s = t * c
          for k = 0, n - 1 do
            local akp, akq = a[k * n + p], a[k * n + q]
            a[k * n + p], a[k * n + q] = c * akp - s * akq, s * akp + c * akq
          end
          for k = 0, n - 1 do
            local apk, aqk = a[p * n + k], a[q * n + k]
            a[p * n + k], a[q * n + k] = c * apk - s * aqk, s * apk + c * aqk
          end
          a[p * n + q], a[q * n + p] = 0, 0
          if v then
            for k = 0, n - 1 do
              local vkp, vkq = v[k * n + p], v[k * n + q]
              v[k * n + p], v[k * n + q] = c * vkp - s * vkq, s * vkp + c * vkq
            end
          end
        end
      end
    end
  end
  local ev = ffi.new('double[?]', n)
  for i = 0, n - 1 do ev[i] = a[i * n + i] end
  return ev, v
end

local function matmul_d(a, b, n)
  local c = ffi.new('double[?]', n * n)
  for i = 0, n - 1 do
    for k = 0, n - 1 do
      local aik = a[i * n + k]
      if aik ~= 0 then for j = 0, n - 1 do c[i * n + j] = c[i * n + j] + aik * b[k * n + j] end end
    end
  end
  return c
end

-- tr((A B)^1/2) for symmetric PSD A, B (row-major double[n * n]): the sum of the square roots
-- of the eigenvalues of A^1/2 B A^1/2, which has the spectrum of A B but is symmetric. Negative
-- eigenvalues (rounding) count as 0.
function M.trace_sqrt_product(a, b, n)
  want('metrics.trace_sqrt_product', 'a', a, 'cdata')
  want('metrics.trace_sqrt_product', 'b', b, 'cdata')
  want('metrics.trace_sqrt_product', 'n', n, 'count')
  if n > 2 ^ 16 then
    argerror(('metrics.trace_sqrt_product: n = %g is too large (at most 65536)'):format(n))
  end
  local ev, v = M.eigh(a, n, true)
  local vs = ffi.new('double[?]', n * n)            -- V diag(sqrt(ev))
  for i = 0, n - 1 do
    for j = 0, n - 1 do vs[i * n + j] = v[i * n + j] * math.sqrt(math.max(ev[j], 0)) end
  end
  local vt = ffi.new('double[?]', n * n)
  for i = 0, n - 1 do for j = 0, n - 1 do vt[i * n + j] = v[j * n + i] end end
  local ra = matmul_d(vs, vt, n)                      -- A^1/2
  local m = matmul_d(matmul_d(ra, b, n), ra, n)
  for i = 0, n - 1 do
    for j = i + 1, n - 1 do
      local x = (m[i * n + j] + m[j * n + i]) / 2
      m[i * n + j], m[j * n + i] = x, x
    end
  end
  local ev2 = M.eigh(m, n, false)
  local tr = 0
  for i = 0, n - 1 do tr = tr + math.sqrt(math.max(ev2[i], 0)) end
  return tr
end

-- mean and covariance (ddof 1, as numpy.cov) of features, in doubles
function M.feature_stats(feats)
  local x = mat(feats, 'metrics.feature_stats', 'feats'):to('cpu')   -- read in Lua, on the host
  local n, d = x:size(1), x:size(2)
  if n < 2 then argerror('metrics.feature_stats: needs at least 2 feature vectors') end
  local src = ffi.cast('float*', x:data_ptr())
  local mu = ffi.new('double[?]', d)
  for i = 0, n - 1 do for j = 0, d - 1 do mu[j] = mu[j] + src[i * d + j] end end
  for j = 0, d - 1 do mu[j] = mu[j] / n end
  local cen = ffi.new('double[?]', n * d)
  for i = 0, n - 1 do for j = 0, d - 1 do cen[i * d + j] = src[i * d + j] - mu[j] end end
  local cov = ffi.new('double[?]', d * d)
  for a = 0, d - 1 do
    for b = a, d - 1 do
      local s = 0
      for i = 0, n - 1 do s = s + cen[i * d + a] * cen[i * d + b] end
      s = s / (n - 1)
      cov[a * d + b], cov[b * d + a] = s, s
    end
  end
  return { mu = mu, cov = cov, d = d, n = n }
end

-- FID = |mu1 - mu2|^2 + tr(S1) + tr(S2) - 2 tr((S1 S2)^1/2), where tr((S1 S2)^1/2) is computed as
-- the sum of the square roots of the eigenvalues of S1^1/2 S2 S1^1/2 (symmetric PSD, same
-- spectrum as S1 S2), both by Jacobi eigen-decompositions in doubles.
function M.fid_from_stats(a, b)
  want('metrics.fid_from_stats', 'a', a, 'table')
  want('metrics.fid_from_stats', 'b', b, 'table')
  local d = want('metrics.fid_from_stats', 'a.d', a.d, 'count')
  if b.d ~= d then argerror(('metrics.fid: feature sizes differ (%d vs %s)'):format(d, tostring(b.d))) end
  local dm, tr = 0, 0
  for j = 0, d - 1 do
    dm = dm + (a.mu[j] - b.mu[j]) ^ 2
    tr = tr + a.cov[j * d + j] + b.cov[j * d + j]
  end
  return dm + tr - 2 * M.trace_sqrt_product(a.cov, b.cov, d)
end

function M.fid(feats_a, feats_b)
  return M.fid_from_stats(M.feature_stats(feats_a), M.feature_stats(feats_b))
end

-- A seeded subset of size m of 1..n, without replacement (partial Fisher-Yates).
local function subset(rng, n, m)
  local p = {}
  for i = 1, n do p[i] = i end
  for i = 1, m do
    local j = i + rng.int(n - i + 1) - 1
    p[i], p[j] = p[j], p[i]
  end
  local r = {}
  for i = 1, m do r[i] = p[i] end
  return r
end

-- Unbiased MMD^2 between x [m, D] and y [m, D] with the polynomial kernel (x.y / D + 1)^3:
-- Gram matrices by craft matmul, kernel sums in doubles.
local function mmd2_poly(x, y)
  local m, d = x:size(1), x:size(2)
  local function ksum(g, skip_diag)
    g = g:to('cpu'):contiguous()
    local p = ffi.cast('float*', g:data_ptr())
    local s = 0
    for i = 0, m - 1 do
      for j = 0, m - 1 do
        if not (skip_diag and i == j) then s = s + (p[i * m + j] / d + 1) ^ 3 end
      end
    end
    return s
  end
  local kxx = ksum(x:matmul(x:t()), true)
  local kyy = ksum(y:matmul(y:t()), true)
  local kxy = ksum(x:matmul(y:t()), false)
  return (kxx + kyy) / (m * (m - 1)) - 2 * kxy / (m * m)
end

-- kid(a, b, {n_subsets=100, subset_size=1000, seed=0}) -> mean, std (std over subsets, ddof 0)
-- KID as Binkowski et al. and torch-fidelity: the unbiased MMD^2 with a cubic polynomial
-- kernel averaged over random subsets (drawn without replacement; size capped at both set
-- sizes).
function M.kid(feats_a, feats_b, o)
  o = want('metrics.kid', 'options', o, 'table', true) or {}
  want('metrics.kid', 'options.subset_size', o.subset_size, 'positive', true)
  want('metrics.kid', 'options.n_subsets', o.n_subsets, 'positive', true)
  local x, y = mat(feats_a, 'metrics.kid', 'feats_a'), mat(feats_b, 'metrics.kid', 'feats_b')
  if x:size(2) ~= y:size(2) then
    argerror(('metrics.kid: feature sizes differ (%d vs %d)'):format(x:size(2), y:size(2)))
  end
  local m = math.min(o.subset_size or 1000, x:size(1), y:size(1))
  if m < 2 then argerror('metrics.kid: needs at least 2 feature vectors per set') end
  local rng = stats.rng(o.seed or 0)
  local take = require('craft.data').take
  local v = {}
  for s = 1, o.n_subsets or 100 do
    local xs = take(x, subset(rng, x:size(1), m))
    local ys = take(y, subset(rng, y:size(1), m))
    v[s] = mmd2_poly(xs, ys)
  end
  return stats.mean(v), stats.std(v, 0)
end

---------------------------------------------------------------- SSIM
-- The Gaussian window (as skimage's gaussian_weights and pytorch-msssim): size taps of
-- exp(-x^2 / (2 sigma^2)), normalised, as a depthwise [C, 1, size, size] kernel.
local function gauss_kernel(c, size, sigma)
  local g, s = {}, 0
  for i = 1, size do
    local x = i - (size + 1) / 2
    g[i] = math.exp(-x * x / (2 * sigma * sigma))
    s = s + g[i]
  end
  local k = {}
  for ch = 1, c do
    local plane = {}
    for i = 1, size do
      plane[i] = {}
      for j = 1, size do plane[i][j] = g[i] * g[j] / (s * s) end
    end
    k[ch] = { plane }
  end
  return T.tensor(k)
end

-- ssim(a, b, {window=11, sigma=1.5, k1=0.01, k2=0.03, data_range=1}) -> list of per-image SSIM.
-- a, b: [N, C, H, W] (or [C, H, W]) in [0, data_range]. The mean of the SSIM map over the
-- valid window positions (no padding) and the channels, with population (co)variances: the
-- definition of Wang et al. 2004 as pytorch-msssim and skimage (gaussian_weights=True,
-- use_sample_covariance=False) compute it. Batched craft ops; b may broadcast over a's batch.
function M.ssim(a, b, o)
  want('metrics.ssim', 'a', a, 'tensor')
  want('metrics.ssim', 'b', b, 'tensor')
  o = want('metrics.ssim', 'options', o, 'table', true) or {}
  want('metrics.ssim', 'options.window', o.window, 'positive', true)
  for _, t in ipairs { { 'a', a }, { 'b', b } } do
    if t[2]:dim() ~= 3 and t[2]:dim() ~= 4 then
      argerror(('metrics.ssim: %s must be images [N, C, H, W] or [C, H, W], got %s'):format(t[1],
        core.describe(t[2])))
    end
  end
  if a:dim() == 3 then a = a:unsqueeze(1) end
  if b:dim() == 3 then b = b:unsqueeze(1) end
  a, b = a:detach():float(), b:detach():float()
  if b:size(1) ~= a:size(1) then b = b:expand(a.shape):contiguous() end
  local c = a:size(2)
  local size = o.window or 11
  if a:size(3) < size or a:size(4) < size then
    argerror(('metrics.ssim: images of %dx%d are smaller than the %d-pixel window'):format(a:size(3),
      a:size(4), size))
  end
  local L = o.data_range or 1
  local C1, C2 = ((o.k1 or 0.01) * L) ^ 2, ((o.k2 or 0.03) * L) ^ 2
  -- on a's device (b and the window are brought there: the convolution takes one device)
  if b.device ~= a.device then b = b:to(a.device) end
  local k = gauss_kernel(c, size, o.sigma or 1.5):to(a.device)
  return A.no_grad(function()
    local function filt(x) return F.conv2d(x, k, nil, { groups = c }) end
    local ma, mb = filt(a), filt(b)
    local saa = filt(a * a) - ma * ma
    local sbb = filt(b * b) - mb * mb
    local sab = filt(a * b) - ma * mb
    local map = ((ma * mb * 2 + C1) * (sab * 2 + C2)) / ((ma * ma + mb * mb + C1) * (saa + sbb + C2))
    return map:mean({ 2, 3, 4 }):flat()
  end)
end

-- memorisation and the downstream classifier: craft.metrics_learned adds them to this table
require('craft.metrics_learned')(M)

return M
