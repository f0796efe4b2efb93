-- craft.stats: the statistics the CRAFT evaluation reports, on plain Lua arrays of numbers
-- (doubles): moments, quantiles, rank correlation, percentile-bootstrap confidence intervals and
-- paired tests across seeds. Pure Lua so that results do not depend on float32 tensor maths;
-- random draws come from the engine's Philox stream, so a seed gives the same resamples on
-- every machine.
--
--   local lo, hi = stats.bootstrap(values, stats.mean, {n = 1000, seed = 0})
--   local r = stats.paired_t(a, b)          -- {t=, df=, p=} two-sided
--   local p = stats.sign_flip(a, b)         -- exact for <= 16 pairs
local core = require 'craft.core'
local ffi, C, want, argerror = core.ffi, core.C, core.want, core.argerror

local S = {}

-- x must be a list of numbers (each entry checked: a string would fail deep in the arithmetic)
local function nums(fname, what, x) return core.want_items(fname, what, x, 'number') end

---------------------------------------------------------------- moments
function S.sum(x)
  nums('stats.sum', 'x', x)
  local s = 0
  for i = 1, #x do s = s + x[i] end
  return s
end
function S.mean(x)
  nums('stats.mean', 'x', x)
  if #x == 0 then return 0 / 0 end
  return S.sum(x) / #x
end
-- var(x, ddof=1): ddof 1 is the unbiased sample variance (numpy's ddof, torch's correction).
function S.var(x, ddof)
  nums('stats.var', 'x', x)
  ddof = want('stats.var', 'ddof', ddof, 'count', true) or 1
  local n = #x
  if n - ddof <= 0 then return 0 / 0 end
  local m, s = S.mean(x), 0
  for i = 1, n do local d = x[i] - m; s = s + d * d end
  return s / (n - ddof)
end
function S.std(x, ddof) return math.sqrt(S.var(x, ddof)) end

local function sorted_copy(x)
  local s = {}
  for i = 1, #x do s[i] = x[i] end
  table.sort(s)
  return s
end

-- quantile(x, q, method='linear'): numpy's default ('linear', type 7: h = (n - 1) q, then linear
-- interpolation between the order statistics around h); 'lower', 'higher', 'nearest' (ties to
-- even, as numpy) and 'midpoint' as numpy names them. q may be a number or a list.
function S.quantile(x, q, method)
  nums('stats.quantile', 'x', x)
  want('stats.quantile', 'q', q, 'number|table')
  if type(q) == 'table' then
    local s, r = sorted_copy(x), {}
    for i = 1, #q do r[i] = S.quantile_sorted(s, q[i], method) end
    return r
  end
  return S.quantile_sorted(sorted_copy(x), q, method)
end
function S.quantile_sorted(s, q, method)
  want('stats.quantile', 'x', s, 'table')
  want('stats.quantile', 'q', q, 'number')
  want('stats.quantile', 'method', method, 'string', true)
  local n = #s
  if not (q >= 0 and q <= 1) then argerror(('stats.quantile: q = %g is outside [0, 1]'):format(q)) end
  if n == 0 then return 0 / 0 end
  local h = (n - 1) * q
  local lo = math.floor(h)
  local frac = h - lo
  local a, b = s[lo + 1], s[math.min(lo + 2, n)]
  method = method or 'linear'
  if method == 'linear' then return a + (b - a) * frac
  elseif method == 'lower' then return a
  elseif method == 'higher' then return frac > 0 and b or a
  elseif method == 'midpoint' then return frac > 0 and (a + b) / 2 or a
  elseif method == 'nearest' then
    if frac < 0.5 or (frac == 0.5 and lo % 2 == 0) then return a end
    return b
  end
  argerror(('stats.quantile: unknown method %q (linear, lower, higher, midpoint, nearest)'):format(tostring(method)))
end
function S.median(x) return S.quantile(x, 0.5) end

---------------------------------------------------------------- ranks and correlation
-- rank(x): 1-based ranks, ties get the average of the ranks they span (scipy's 'average').
function S.rank(x)
  nums('stats.rank', 'x', x)
  local n, idx = #x, {}
  for i = 1, n do idx[i] = i end
  table.sort(idx, function(a, b) return x[a] < x[b] end)
  local r, i = {}, 1
  while i <= n do
    local j = i
    while j < n and x[idx[j + 1]] == x[idx[i]] do j = j + 1 end
    local avg = (i + j) / 2
    for k = i, j do r[idx[k]] = avg end
    i = j + 1
  end
  return r
end
function S.pearson(x, y)
  nums('stats.pearson', 'x', x)
  nums('stats.pearson', 'y', y)
  local n = #x
  if n ~= #y then argerror(('stats.pearson: %d vs %d values'):format(n, #y)) end
  local mx, my = S.mean(x), S.mean(y)
  local sxy, sxx, syy = 0, 0, 0
  for i = 1, n do
    local dx, dy = x[i] - mx, y[i] - my
    sxy, sxx, syy = sxy + dx * dy, sxx + dx * dx, syy + dy * dy
  end
  return sxy / math.sqrt(sxx * syy)
end
-- Spearman's rho: Pearson correlation of the average ranks (handles ties as scipy does).
function S.spearman(x, y) return S.pearson(S.rank(x), S.rank(y)) end

---------------------------------------------------------------- random draws
-- A seeded stream of uniform integers in [1, n] from Philox-4x32 (seed, counter): the counter
-- advances by one call per 4 words, so the sequence is fixed by the seed alone.
function S.rng(seed)
  local words = ffi.new('uint32_t[4]')
  local counter, pos = 0, 4
  local r = {}
  function r.uniform()
    if pos >= 4 then
      C.craft_philox4x32(seed or 0, counter, words)
      counter, pos = counter + 1, 0
    end
    local w = tonumber(words[pos])
    pos = pos + 1
    return w / 4294967296
  end
  function r.int(n) return math.floor(r.uniform() * n) + 1 end
  return r
end

---------------------------------------------------------------- bootstrap
local function resample(values, rng, out)
  local n = #values
  for i = 1, n do out[i] = values[rng.int(n)] end
  return out
end

-- the statistic and the options both bootstraps take: n, seed, alpha (in (0, 1))
local function boot_args(fname, statistic, o)
  want(fname, 'statistic', statistic, 'function', true)
  o = want(fname, 'options', o, 'table', true) or {}
  want(fname, 'options.n', o.n, 'positive', true)
  want(fname, 'options.seed', o.seed, 'count', true)
  want(fname, 'options.alpha', o.alpha, 'number', true)
  if o.alpha and not (o.alpha > 0 and o.alpha < 1) then argerror(('%s: alpha must be in (0, 1), got %s'):format(fname, tostring(o.alpha))) end
  return statistic or S.mean, o
end

-- bootstrap(values, statistic, {n=1000, seed=0, alpha=0.05}) -> lo, hi, estimate, draws.
-- Percentile bootstrap: resample `values` (numbers, or any per-image records the statistic
-- understands) with replacement, n times; the CI is the alpha/2 and 1 - alpha/2 linear
-- quantiles of the statistic over the resamples.
function S.bootstrap(values, statistic, o)
  want('stats.bootstrap', 'values', values, 'table')
  statistic, o = boot_args('stats.bootstrap', statistic, o)
  local B, alpha = o.n or 1000, o.alpha or 0.05
  local rng, buf, draws = S.rng(o.seed or 0), {}, {}
  for b = 1, B do draws[b] = statistic(resample(values, rng, buf)) end
  table.sort(draws)
  return S.quantile_sorted(draws, alpha / 2), S.quantile_sorted(draws, 1 - alpha / 2), statistic(values), draws
end

-- bootstrap_diff(a, b, statistic, {n, seed, alpha, paired=false}) -> lo, hi, estimate:
-- the CI of statistic(a) - statistic(b) (e.g. tail_A - tail_B). Unpaired resamples each set on
-- its own; paired (same prompts and seeds in both) resamples the same indices in both.
function S.bootstrap_diff(a, b, statistic, o)
  want('stats.bootstrap_diff', 'a', a, 'table')
  want('stats.bootstrap_diff', 'b', b, 'table')
  statistic, o = boot_args('stats.bootstrap_diff', statistic, o)
  local B, alpha = o.n or 1000, o.alpha or 0.05
  if o.paired and #a ~= #b then argerror(('stats.bootstrap_diff: paired sets differ in size (%d vs %d)'):format(#a, #b)) end
  local rng, ba, bb, draws = S.rng(o.seed or 0), {}, {}, {}
  for k = 1, B do
    if o.paired then
      for i = 1, #a do local j = rng.int(#a); ba[i], bb[i] = a[j], b[j] end
    else
      resample(a, rng, ba)
      resample(b, rng, bb)
    end
    draws[k] = statistic(ba) - statistic(bb)
  end
  table.sort(draws)
  return S.quantile_sorted(draws, alpha / 2), S.quantile_sorted(draws, 1 - alpha / 2), statistic(a) - statistic(b)
end

---------------------------------------------------------------- hierarchical bootstrap
-- One trained model's images are not independent samples of a method: a method's uncertainty has
-- a between-model part (training seeds) and a within-model part (images). groups = one list of
-- per-image values per training seed; a resample draws seeds with replacement, then, within each
-- drawn seed, its images with replacement; the statistic is the mean over the pooled resampled
-- images (each seed weighted by its image count, as the point estimate pools them).
local function groups_arg(fname, what, g)
  want(fname, what, g, 'table')
  if #g == 0 then argerror(('%s: %s has no groups'):format(fname, what)) end
  for i, v in ipairs(g) do
    nums(fname, ('%s[%d]'):format(what, i), v)
    if #v == 0 then argerror(('%s: %s[%d] is empty'):format(fname, what, i)) end
  end
end

local function pooled_mean(g)
  groups_arg('stats.pooled_mean', 'groups', g)
  local s, n = 0, 0
  for _, v in ipairs(g) do for _, x in ipairs(v) do s = s + x end; n = n + #v end
  return s / n
end
S.pooled_mean = pooled_mean

-- one two-stage resample of g: the mean of the drawn images (seeds given, or drawn here)
local function hier_draw(g, rng, seeds)
  local s, n = 0, 0
  for k = 1, #g do
    local v = g[seeds and seeds[k] or rng.int(#g)]
    local m = #v
    for _ = 1, m do s = s + v[rng.int(m)] end
    n = n + m
  end
  return s / n
end

-- hier_bootstrap(groups, {n=1000, seed=0, alpha=0.05}) -> lo, hi, estimate, draws
function S.hier_bootstrap(groups, o)
  groups_arg('stats.hier_bootstrap', 'groups', groups)
  local _, oo = boot_args('stats.hier_bootstrap', nil, o)
  local B, alpha = oo.n or 1000, oo.alpha or 0.05
  local rng, draws = S.rng(oo.seed or 0), {}
  for b = 1, B do draws[b] = hier_draw(groups, rng) end
  table.sort(draws)
  return S.quantile_sorted(draws, alpha / 2), S.quantile_sorted(draws, 1 - alpha / 2), pooled_mean(groups), draws
end

-- hier_bootstrap_diff(a, b, {n, seed, alpha, paired=true, relative=false}) -> lo, hi, estimate:
-- the CI of mean(a) - mean(b) (relative: (mean(b) - mean(a)) / mean(b), the relative reduction of
-- a against b). Paired (the default when both have the same number of groups: seed k of a was
-- trained from seed k of b's start, or shares its seed) draws the same seed indices for both,
-- then images within each method on their own.
function S.hier_bootstrap_diff(a, b, o)
  groups_arg('stats.hier_bootstrap_diff', 'a', a)
  groups_arg('stats.hier_bootstrap_diff', 'b', b)
  local _, oo = boot_args('stats.hier_bootstrap_diff', nil, o)
  local B, alpha = oo.n or 1000, oo.alpha or 0.05
  local paired = oo.paired
  if paired == nil then paired = #a == #b end
  if paired and #a ~= #b then argerror(('stats.hier_bootstrap_diff: paired methods have %d and %d seeds'):format(#a, #b)) end
  local function stat(ma, mb)
    if oo.relative then return mb ~= 0 and (mb - ma) / mb or 0 / 0 end
    return ma - mb
  end
  local rng, draws, seeds = S.rng(oo.seed or 0), {}, {}
  for k = 1, B do
    local ma, mb
    if paired then
      for i = 1, #a do seeds[i] = rng.int(#a) end
      ma, mb = hier_draw(a, rng, seeds), hier_draw(b, rng, seeds)
    else
      ma, mb = hier_draw(a, rng), hier_draw(b, rng)
    end
    draws[k] = stat(ma, mb)
  end
  local clean = {}
  for _, d in ipairs(draws) do if d == d then clean[#clean + 1] = d end end
  table.sort(clean)
  local est = stat(pooled_mean(a), pooled_mean(b))
  if #clean == 0 then return 0 / 0, 0 / 0, est end
  return S.quantile_sorted(clean, alpha / 2), S.quantile_sorted(clean, 1 - alpha / 2), est
end

---------------------------------------------------------------- special functions
-- log Gamma by the Lanczos approximation (g = 7, 9 terms; ~1e-15 relative for x > 0).
local LANCZOS = { 0.99999999999980993, 676.5203681218851, -1259.1392167224028, 771.32342877765313,
  -176.61502916214059, 12.507343278686905, -0.13857109526572012, 9.9843695780195716e-6, 1.5056327351493116e-7 }
function S.lgamma(x)
  want('stats.lgamma', 'x', x, 'number')
  if x < 0.5 then return math.log(math.pi / math.abs(math.sin(math.pi * x))) - S.lgamma(1 - x) end
  x = x - 1
  local a = LANCZOS[1]
  local t = x + 7.5
  for i = 1, 8 do a = a + LANCZOS[i + 1] / (x + i) end
  return 0.5 * math.log(2 * math.pi) + (x + 0.5) * math.log(t) - t + math.log(a)
end

-- Continued fraction of the incomplete beta (modified Lentz), valid for x < (a + 1) / (a + b + 2).
local function betacf(a, b, x)
  local tiny, eps = 1e-300, 1e-15
  local qab, qap, qam = a + b, a + 1, a - 1
  local c, d = 1, 1 - qab * x / qap
  if math.abs(d) < tiny then d = tiny end
  d = 1 / d
  local h = d
  for m = 1, 10000 do
    local m2 = 2 * m
    local aa = m * (b - m) * x / ((qam + m2) * (a + m2))
    d = 1 + aa * d; if math.abs(d) < tiny then d = tiny end
    c = 1 + aa / c; if math.abs(c) < tiny then c = tiny end
    d = 1 / d
    h = h * d * c
    aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
    d = 1 + aa * d; if math.abs(d) < tiny then d = tiny end
    c = 1 + aa / c; if math.abs(c) < tiny then c = tiny end
    d = 1 / d
    local del = d * c
    h = h * del
    if math.abs(del - 1) < eps then break end
  end
  return h
end

-- betainc(a, b, x): the regularised incomplete beta I_x(a, b).
function S.betainc(a, b, x)
  want('stats.betainc', 'a', a, 'number'); want('stats.betainc', 'b', b, 'number'); want('stats.betainc', 'x', x, 'number')
  if x <= 0 then return 0 end
  if x >= 1 then return 1 end
  local lbt = S.lgamma(a + b) - S.lgamma(a) - S.lgamma(b) + a * math.log(x) + b * math.log(1 - x)
  local bt = math.exp(lbt)
  -- use the symmetry I_x(a, b) = 1 - I_{1-x}(b, a) where the fraction converges faster
  if x < (a + 1) / (a + b + 2) then return bt * betacf(a, b, x) / a end
  return 1 - bt * betacf(b, a, 1 - x) / b
end

-- t_cdf(t, df): Student's t distribution function, via P(|T| > |t|) = I_{df/(df+t^2)}(df/2, 1/2).
function S.t_cdf(t, df)
  want('stats.t_cdf', 't', t, 'number'); want('stats.t_cdf', 'df', df, 'number')
  if t ~= t then return t end
  local tail = 0.5 * S.betainc(df / 2, 0.5, df / (df + t * t))
  return t > 0 and 1 - tail or tail
end

---------------------------------------------------------------- paired tests
local function diffs(fname, a, b)
  nums(fname, 'a', a)
  nums(fname, 'b', b)
  if #a ~= #b then argerror(('%s: %d vs %d values'):format(fname, #a, #b)) end
  local d = {}
  for i = 1, #a do d[i] = a[i] - b[i] end
  return d
end

-- paired_t(a, b) -> {t=, df=, p=, mean_diff=} (two-sided, as scipy.stats.ttest_rel).
function S.paired_t(a, b)
  local d = diffs('stats.paired_t', a, b)
  local n = #d
  if n < 2 then argerror('stats.paired_t: needs at least 2 pairs') end
  local m, sd = S.mean(d), S.std(d, 1)
  local t = m / (sd / math.sqrt(n))
  if sd == 0 then t = m == 0 and 0 / 0 or (m > 0 and math.huge or -math.huge) end
  local df = n - 1
  local p
  if t ~= t then p = 0 / 0
  elseif math.abs(t) == math.huge then p = 0
  else p = S.betainc(df / 2, 0.5, df / (df + t * t)) end
  return { t = t, df = df, p = p, mean_diff = m }
end

-- sign_flip(a, b, {n=10000, seed=0, exact_max=16}) -> p, exact: two-sided paired permutation
-- test of the mean difference. Under H0 each difference's sign is exchangeable; with at most
-- exact_max pairs all 2^n sign patterns are enumerated (exact p), otherwise n random patterns
-- give the Monte-Carlo p (count + 1) / (n + 1).
function S.sign_flip(a, b, o)
  o = want('stats.sign_flip', 'options', o, 'table', true) or {}
  want('stats.sign_flip', 'options.n', o.n, 'positive', true)
  want('stats.sign_flip', 'options.exact_max', o.exact_max, 'count', true)
  if (o.exact_max or 0) > 24 then argerror(('stats.sign_flip: exact_max %d would enumerate 2^%d patterns (at most 24)'):format(o.exact_max, o.exact_max)) end
  local d = diffs('stats.sign_flip', a, b)
  local n = #d
  local obs = math.abs(S.sum(d))
  local tol = 1e-12 * math.max(1, obs)   -- a flipped sum equal to the observed one counts
  local count, total = 0, 0
  if n <= (o.exact_max or 16) then
    for mask = 0, 2 ^ n - 1 do
      local s, m = 0, mask
      for i = 1, n do
        if m % 2 == 1 then s = s - d[i] else s = s + d[i] end
        m = math.floor(m / 2)
      end
      if math.abs(s) >= obs - tol then count = count + 1 end
    end
    return count / 2 ^ n, true
  end
  local rng = S.rng(o.seed or 0)
  local B = o.n or 10000
  for _ = 1, B do
    local s = 0
    for i = 1, n do
      if rng.uniform() < 0.5 then s = s - d[i] else s = s + d[i] end
    end
    if math.abs(s) >= obs - tol then count = count + 1 end
  end
  total = B
  return (count + 1) / (total + 1), false
end

return S
