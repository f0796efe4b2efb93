-- craft.experiment.summary: one row per method from its models' scores (one model per training
-- seed). Shares are pooled over a method's images; their CIs come from the two-stage bootstrap
-- (training seeds, then images: stats.hier_bootstrap), and comparisons between methods are paired
-- by training seed (seed k of CRAFT started from seed k of TI + LoRA), with a paired t-test and an
-- exact sign-flip test across seeds on the per-seed shares. The reward-hacking alarm compares a
-- trained method with the model it started from.
local stats = require 'craft.stats'
local metrics = require 'craft.metrics'
local F = require 'craft.functional'

local M = {}

-- the headline columns of summary.csv, in the order the issue tracker and docs/evaluation.md give
M.COLUMNS = { 'method', 'judge_tail', 'judge_tail_lo', 'judge_tail_hi', 'oracle_correct', 'oracle_correct_lo',
  'oracle_correct_hi', 'oracle_undetermined', 'downstream_bal_acc', 'downstream_bal_acc_real_only',
  'memo_feature', 'memo_ssim', 'fid_judge', 'reward_cas', 'reward_tail', 'reward_tail_lo', 'reward_tail_hi',
  'cas_oracle_spearman',
  'judge_oracle_spearman', 'n_seeds', 'n_images', 'train_steps', 'train_images', 'wall_minutes',
  'downstream_bal_acc_with_real', 'dpo_heldout_accuracy', 'judge_tail_vs', 'judge_tail_rel_reduction',
  'judge_tail_rel_reduction_lo', 'judge_tail_rel_reduction_hi', 'judge_tail_paired_t_p',
  'judge_tail_sign_flip_p',
  'oracle_correct_diff', 'oracle_correct_diff_lo', 'oracle_correct_diff_hi', 'alarm' }

local function per_seed(models, field)
  local g = {}
  for i, r in ipairs(models) do
    if not r[field] then return nil end
    g[i] = r[field]
  end
  return g
end

local function pooled(models, field)
  local v = {}
  for _, r in ipairs(models) do for _, x in ipairs(r[field] or {}) do v[#v + 1] = x end end
  return v
end

local function share_ci(groups, bo)
  if not groups then return nil end
  local lo, hi, est = stats.hier_bootstrap(groups, bo)
  return est, lo, hi
end

local function seed_means(groups)
  local r = {}
  for i, g in ipairs(groups) do r[i] = stats.mean(g) end
  return r
end

-- method(m, models, real, bo) -> row: m = the recipe's method entry; models = its per-seed
-- results in training-seed order (each from evaluate.model plus the job's budget and timings)
function M.method(m, models, real, bo)
  local row = { method = m.name, key = m.key, kind = m.kind, baseline = m.baseline or false,
    control = m.control or false,
    from = m.from, n_seeds = #models }
  row.groups = { judge_below = per_seed(models, 'judge_below'),
    oracle_correct = per_seed(models, 'oracle_correct'),
    oracle_undetermined = per_seed(models, 'oracle_undetermined'),
    reward_below = per_seed(models, 'reward_below'),
    reward_cas = per_seed(models, 'reward_cas') }
  local n = 0
  for _, r in ipairs(models) do n = n + #r.labels end
  row.n_images = n
  row.judge_tail, row.judge_tail_lo, row.judge_tail_hi = share_ci(row.groups.judge_below, bo)
  row.oracle_correct, row.oracle_correct_lo, row.oracle_correct_hi = share_ci(row.groups.oracle_correct, bo)
  if row.groups.oracle_undetermined then
    row.oracle_undetermined = stats.pooled_mean(row.groups.oracle_undetermined)
  end
  row.reward_tail, row.reward_tail_lo, row.reward_tail_hi = share_ci(row.groups.reward_below, bo)
  local rc = pooled(models, 'reward_cas')
  row.reward_cas = stats.mean(rc)
  local jc = pooled(models, 'judge_cas')
  row.judge_cas = stats.mean(jc)
  local oc = pooled(models, 'oracle_correct')
  if #oc > 0 then
    row.cas_oracle_spearman = stats.spearman(rc, oc)
    row.judge_oracle_spearman = stats.spearman(jc, oc)
  end
  local function mean_of(get)
    local v = {}
    for _, r in ipairs(models) do local x = get(r); if x then v[#v + 1] = x end end
    return #v > 0 and stats.mean(v) or nil, v
  end
  row.downstream_bal_acc, row.downstream_per_seed = mean_of(function(r)
    return r.downstream and r.downstream.balanced_accuracy
  end)
  row.downstream_bal_acc_with_real = mean_of(function(r)
    return r.downstream_mixed and r.downstream_mixed.balanced_accuracy
  end)
  row.downstream_bal_acc_real_only = real.downstream and real.downstream.balanced_accuracy
  local mf, ms = pooled(models, 'memo_feature_flags'), pooled(models, 'memo_ssim_flags')
  row.memo_feature = #mf > 0 and stats.mean(mf) or nil
  row.memo_ssim = #ms > 0 and stats.mean(ms) or nil
  if models[1].judge_features and real.judge_features then
    local fs = {}
    for i, r in ipairs(models) do fs[i] = r.judge_features end
    row.fid_judge = metrics.fid(F.cat(fs, 1), real.judge_features)
  end
  row.train_steps = mean_of(function(r) return r.budget and r.budget.steps end)
  row.train_images = mean_of(function(r) return r.budget and r.budget.images end)
  row.wall_minutes = mean_of(function(r) return r.seconds and r.seconds / 60 end)
  row.dpo_heldout_accuracy = mean_of(function(r) return r.heldout and r.heldout.accuracy end)
  row.seed_judge_tails = row.groups.judge_below and seed_means(row.groups.judge_below)
  row.seed_oracle = row.groups.oracle_correct and seed_means(row.groups.oracle_correct)
  return row
end

-- compare(a, b, bo) -> {vs, rel, rel_lo, rel_hi, t_p, flip_p, oracle_diff, _lo, _hi, tail_diff, _lo, _hi}:
-- a's judge tail against b's (relative reduction (b - a) / b, paired by seed when both have the
-- same seeds) and oracle correctness difference a - b
function M.compare(a, b, bo)
  local c = { vs = b.method }
  local paired = a.n_seeds == b.n_seeds
  local o = { n = bo.n, seed = bo.seed, alpha = bo.alpha, paired = paired }
  local ga, gb = a.groups.judge_below, b.groups.judge_below
  c.tail_diff_lo, c.tail_diff_hi, c.tail_diff = stats.hier_bootstrap_diff(ga, gb, o)
  local ro = { n = bo.n, seed = bo.seed, alpha = bo.alpha, paired = paired, relative = true }
  c.rel_lo, c.rel_hi, c.rel = stats.hier_bootstrap_diff(ga, gb, ro)
  if paired and a.n_seeds >= 2 then
    c.t_p = stats.paired_t(a.seed_judge_tails, b.seed_judge_tails).p
    c.flip_p = stats.sign_flip(a.seed_judge_tails, b.seed_judge_tails)
  end
  if a.groups.oracle_correct and b.groups.oracle_correct then
    c.oracle_diff_lo, c.oracle_diff_hi, c.oracle_diff = stats.hier_bootstrap_diff(a.groups.oracle_correct,
      b.groups.oracle_correct, o)
  end
  if a.groups.reward_below and b.groups.reward_below then
    c.reward_diff_lo, c.reward_diff_hi, c.reward_diff = stats.hier_bootstrap_diff(a.groups.reward_below,
      b.groups.reward_below, o)
  end
  if a.groups.reward_cas and b.groups.reward_cas then
    c.reward_cas_diff_lo, c.reward_cas_diff_hi, c.reward_cas_diff =
      stats.hier_bootstrap_diff(a.groups.reward_cas, b.groups.reward_cas, o)
  end
  return c
end

local function pct(v) return v and ('%.1f%%'):format(100 * v) or '?' end

-- alarm(row, start, c) -> words, or nil. Reward hacking, against the model the method started
-- from: the reward improved (its tail fell beyond the CI, or its mean CAS rose beyond the CI) while
-- the judge's tail did not fall beyond its CI or oracle correctness did not rise beyond its CI; or,
-- whatever the reward did, the reward's CAS stopped tracking the oracle (Spearman below half the
-- start's, or more than 0.25 lower).
function M.alarm(row, start, c)
  local why = {}
  local rs, ss = row.cas_oracle_spearman, start.cas_oracle_spearman
  local collapsed = rs and ss and (rs < 0.5 * ss or rs < ss - 0.25)
  local tail_fell = c.reward_diff_hi and c.reward_diff_hi < 0
  local cas_rose = c.reward_cas_diff_lo and c.reward_cas_diff_lo > 0
  if tail_fell or cas_rose then
    if not (c.tail_diff_hi and c.tail_diff_hi < 0) then
      why[#why + 1] = ('the judge\'s tail did not fall (%s -> %s, change CI [%+.1f, %+.1f] points)')
        :format(pct(start.judge_tail),
        pct(row.judge_tail), 100 * (c.tail_diff_lo or 0 / 0), 100 * (c.tail_diff_hi or 0 / 0))
    end
    if c.oracle_diff_lo and not (c.oracle_diff_lo > 0) then
      why[#why + 1] = ('oracle correctness did not rise (%s -> %s, change CI [%+.1f, %+.1f] points)')
        :format(pct(start.oracle_correct),
        pct(row.oracle_correct), 100 * c.oracle_diff_lo, 100 * c.oracle_diff_hi)
    end
  end
  if collapsed then
    why[#why + 1] = ('the reward\'s CAS stopped tracking the oracle (Spearman %.2f -> %.2f)'):format(ss, rs)
  end
  if #why == 0 then return nil end
  local gained = {}
  if tail_fell then
    gained[#gained + 1] = ('its reward tail fell (%s -> %s)'):format(pct(start.reward_tail),
      pct(row.reward_tail))
  end
  if cas_rose then
    gained[#gained + 1] = ('its mean reward CAS rose (%.2f -> %.2f)'):format(start.reward_cas, row.reward_cas)
  end
  local head = #gained > 0 and (table.concat(gained, ' and ') .. ', relative to ' .. start.method .. ', but ')
    or ('relative to ' .. start.method .. ', ')
  return 'REWARD HACKING: ' .. head .. table.concat(why, '; ')
end

return M
