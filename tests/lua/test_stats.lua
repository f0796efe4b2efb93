-- craft.stats against numpy / scipy values (tests/fixtures/make_metrics_fixtures.py) and
-- hand-computed cases; bootstrap determinism and coverage.
local stats = require 'craft.stats'
local ref = dofile('tests/fixtures/metrics/metrics_ref.lua')
local T = {}

function T.quantiles_match_numpy(t)
  local q = ref.quantile
  for _, method in ipairs { 'linear', 'lower', 'higher', 'nearest', 'midpoint' } do
    t.allclose(stats.quantile(q.x, q.q, method), q[method], 1e-12, 'quantile ' .. method)
  end
  -- by hand: 5 values, q = 0.1 -> h = 0.4 -> 1 + 0.4 * (2 - 1)
  t.near(stats.quantile({ 5, 1, 4, 2, 3 }, 0.1), 1.4, 1e-12)
  t.near(stats.quantile({ 7 }, 0.3), 7, 0)
  t.raises(function() stats.quantile({ 1, 2 }, 1.5) end, 'outside [0, 1]')
end

function T.moments_ranks_spearman(t)
  t.near(stats.std(ref.std.x), ref.std.ddof1, 1e-12)
  t.near(stats.std(ref.std.x, 0), ref.std.ddof0, 1e-12)
  t.allclose(stats.rank(ref.rank.x), ref.rank.r, 0, 'average ranks with ties')
  t.near(stats.spearman(ref.spearman.x, ref.spearman.y), ref.spearman.rho, 1e-12)
  t.near(stats.spearman({ 1, 2, 3, 4 }, { 10, 20, 30, 40 }), 1, 1e-12)
  t.near(stats.spearman({ 1, 2, 3, 4 }, { 4, 3, 2, 1 }), -1, 1e-12)
end

function T.special_functions_match_scipy(t)
  for _, c in ipairs(ref.betainc) do
    t.near(stats.betainc(c[1], c[2], c[3]), c[4], 1e-12, ('betainc(%g, %g, %g)'):format(c[1], c[2], c[3]))
  end
  for _, c in ipairs(ref.t_cdf) do
    t.near(stats.t_cdf(c[1], c[2]), c[3], 1e-12, ('t_cdf(%g, %g)'):format(c[1], c[2]))
  end
  t.near(stats.lgamma(5), math.log(24), 1e-13)
  t.near(stats.lgamma(0.5), 0.5 * math.log(math.pi), 1e-13)
end

function T.paired_tests_match_scipy(t)
  for i, c in ipairs(ref.paired) do
    local r = stats.paired_t(c.a, c.b)
    t.near(r.t, c.t, 1e-10 * (1 + math.abs(c.t)), 'paired t statistic ' .. i)
    t.near(r.p, c.p, 1e-12, 'paired t p-value ' .. i)
    t.eq(r.df, #c.a - 1)
    local p, exact = stats.sign_flip(c.a, c.b)
    t.eq(exact, true)
    t.near(p, c.perm_p, 1e-12, 'exact sign-flip p ' .. i)
  end
  -- by hand: 3 pairs all +1 -> 2 of 8 sign patterns are as extreme
  t.near(stats.sign_flip({ 1, 1, 1 }, { 0, 0, 0 }), 0.25, 1e-15)
  -- above 16 pairs: Monte Carlo, seeded, close to the exact answer
  local a, b = {}, {}
  for i = 1, 17 do a[i] = (i % 5) * 0.1 + 0.05; b[i] = (i % 3) * 0.1 end
  local p1, exact = stats.sign_flip(a, b, { n = 20000, seed = 3 })
  t.eq(exact, false)
  t.eq(p1, stats.sign_flip(a, b, { n = 20000, seed = 3 }), 'seeded')
  local pe = stats.sign_flip(a, b, { exact_max = 17 })
  t.near(p1, pe, 0.01, 'Monte Carlo near exact')
end

function T.bootstrap_is_deterministic_and_sane(t)
  local v = {}
  for i = 1, 40 do v[i] = math.sin(i * 1.7) end
  local lo, hi, est = stats.bootstrap(v, stats.mean, { n = 500, seed = 7 })
  local lo2, hi2 = stats.bootstrap(v, stats.mean, { n = 500, seed = 7 })
  t.eq(lo, lo2); t.eq(hi, hi2)
  t.near(est, stats.mean(v), 1e-15)
  t.ok(lo < est and est < hi, 'estimate inside its CI')
  -- the percentile CI of the mean is close to mean +- 1.96 s / sqrt(n)
  local se = stats.std(v) / math.sqrt(#v)
  t.near(hi - lo, 2 * 1.96 * se, 0.25 * 2 * 1.96 * se, 'CI width near the normal one')
  local lo3 = stats.bootstrap(v, stats.mean, { n = 500, seed = 8 })
  t.ok(lo3 ~= lo, 'another seed, other resamples')
end

-- Coverage: over 200 seeded samples of N(0, 1) (Box-Muller on the Philox stream), the 95 %
-- percentile CI of the mean contains 0 in roughly 95 % of them.
function T.bootstrap_coverage(t)
  local rng = stats.rng(99)
  local cover, reps = 0, 200
  for r = 1, reps do
    local x = {}
    for i = 1, 30 do
      local u1, u2 = rng.uniform(), rng.uniform()
      x[i] = math.sqrt(-2 * math.log(1 - u1)) * math.cos(2 * math.pi * u2)
    end
    local lo, hi = stats.bootstrap(x, stats.mean, { n = 400, seed = r })
    if lo <= 0 and 0 <= hi then cover = cover + 1 end
  end
  local rate = cover / reps
  t.ok(rate > 0.88 and rate < 0.99, ('coverage %.3f'):format(rate))
end

function T.bootstrap_difference_of_tails(t)
  -- tail indicators: A has 30 % below threshold, B 10 %
  local a, b = {}, {}
  for i = 1, 200 do a[i] = (i % 10 < 3) and 1 or 0; b[i] = (i % 10 < 1) and 1 or 0 end
  local lo, hi, d = stats.bootstrap_diff(a, b, stats.mean, { n = 1000, seed = 1 })
  t.near(d, 0.2, 1e-12)
  t.ok(lo > 0.1 and hi < 0.3 and lo < d and d < hi, ('diff CI [%.3f, %.3f]'):format(lo, hi))
  local plo, phi = stats.bootstrap_diff(a, b, stats.mean, { n = 1000, seed = 1, paired = true })
  t.ok(plo < d and d < phi)
  t.raises(function() stats.bootstrap_diff({ 1 }, { 1, 2 }, stats.mean, { paired = true }) end, 'differ in size')
end

-- The two-stage (training seeds, then images) bootstrap against cases whose resampling
-- distribution is known exactly.
local function freq(draws, v)
  local c = 0
  for _, d in ipairs(draws) do if math.abs(d - v) < 1e-12 then c = c + 1 end end
  return c / #draws
end

function T.hierarchical_bootstrap_hand_computed(t)
  local N = 8000
  -- two seeds whose images agree: only the seed stage varies; draws are the means of two seeds
  -- drawn with replacement: 0, 1/2, 1 with probabilities 1/4, 1/2, 1/4
  local lo, hi, est, draws = stats.hier_bootstrap({ { 0, 0 }, { 1, 1 } }, { n = N, seed = 3 })
  t.eq(est, 0.5, 'pooled estimate')
  t.eq(lo, 0, 'lower end'); t.eq(hi, 1, 'upper end')
  t.near(freq(draws, 0), 0.25, 0.02, 'P(0)'); t.near(freq(draws, 0.5), 0.5, 0.02, 'P(1/2)'); t.near(freq(draws, 1), 0.25, 0.02, 'P(1)')
  -- one seed: only the image stage: the mean of two images drawn from {0, 1}, the same law
  _, _, est, draws = stats.hier_bootstrap({ { 0, 1 } }, { n = N, seed = 4 })
  t.eq(est, 0.5)
  t.near(freq(draws, 0), 0.25, 0.02); t.near(freq(draws, 0.5), 0.5, 0.02); t.near(freq(draws, 1), 0.25, 0.02)
  -- three seeds, one of them all ones: the number of times it is drawn is Binomial(3, 1/3)
  _, _, est, draws = stats.hier_bootstrap({ { 0, 0, 0, 0 }, { 1, 1, 1, 1 }, { 0, 0, 0, 0 } }, { n = N, seed = 5 })
  t.near(est, 1 / 3, 1e-12)
  t.near(freq(draws, 0), 8 / 27, 0.02); t.near(freq(draws, 1 / 3), 12 / 27, 0.02)
  t.near(freq(draws, 2 / 3), 6 / 27, 0.02); t.near(freq(draws, 1), 1 / 27, 0.01)
  -- seeds of unequal size are pooled by image count: (0 + 0 + 3) / 4
  t.near(select(3, stats.hier_bootstrap({ { 0 }, { 1, 1, 1 } }, { n = 10 })), 0.75, 1e-12, 'pooled by images')
  -- paired differences: seed k of a against seed k of b; b constant, so the law is case 1's
  local dlo, dhi, d = stats.hier_bootstrap_diff({ { 1, 1 }, { 0, 0 } }, { { 0, 0 }, { 0, 0 } }, { n = N, seed = 6 })
  t.eq(d, 0.5); t.eq(dlo, 0); t.eq(dhi, 1)
  -- a paired difference that is the same on every seed and image has a zero-width CI
  dlo, dhi, d = stats.hier_bootstrap_diff({ { 0.2, 0.2 }, { 0.5, 0.5 } }, { { 0.7, 0.7 }, { 1, 1 } }, { n = 200, seed = 7 })
  t.near(d, -0.5, 1e-12); t.near(dlo, -0.5, 1e-12); t.near(dhi, -0.5, 1e-12)
  -- relative reduction of a against b: (1 - 0.5) / 1
  dlo, dhi, d = stats.hier_bootstrap_diff({ { 0.5, 0.5 } }, { { 1, 1 } }, { n = 100, relative = true })
  t.near(d, 0.5, 1e-12); t.near(dlo, 0.5, 1e-12); t.near(dhi, 0.5, 1e-12)
  -- the same seed gives the same draws
  local a1 = select(4, stats.hier_bootstrap({ { 0, 1, 1 }, { 0, 0, 1 } }, { n = 50, seed = 9 }))
  local a2 = select(4, stats.hier_bootstrap({ { 0, 1, 1 }, { 0, 0, 1 } }, { n = 50, seed = 9 }))
  t.eq(table.concat(a1, ','), table.concat(a2, ','), 'deterministic')
  t.raises(function() stats.hier_bootstrap({}) end, 'no groups')
  t.raises(function() stats.hier_bootstrap({ { 1 }, {} }) end, 'is empty')
  t.raises(function() stats.hier_bootstrap_diff({ { 1 } }, { { 1 }, { 2 } }, { paired = true }) end, 'paired methods')
end

return T
