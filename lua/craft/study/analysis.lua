-- craft.study.analysis: the statistics of a ranking study, on plain Lua tables.
--
-- A block is one reader's ranking of one trial:
--   { rater = 'name', trial = 'T03', class = 0, items = {
--       { cond = 'craft_4', rank = 1, ticked = 2, n_items = 5, flag = false, position = 3 }, ... } }
-- rank 1 is the most plausible; cond is the condition (method key, or 'real'); ticked is how
-- many of the class's n_items checklist items the reader ticked for the image; position is
-- where the page showed the image (1 = first), nil when unknown.
--
--   chi2_sf(x, df)              P(X > x) for X ~ chi-square(df) (regularised upper gamma)
--   friedman(rows)              rows = n blocks x k conditions of within-block ranks
--   kendall_w(rows)             rows = m raters x k objects of ranks (ties averaged)
--   summarise(blocks, conds)    mean ranks, win rates, per-class mean ranks, first places, flag
--                               and tick rates, real-below-synthetic rates: {name = value}
--   bootstrap(blocks, fn, o)    hierarchical percentile bootstrap: raters with replacement,
--                               then each drawn rater's blocks with replacement
local stats = require 'craft.stats'

local M = {}

---------------------------------------------------------------- chi-square
-- Q(a, x) = Gamma(a, x) / Gamma(a): the series of P(a, x) below x < a + 1, else the continued
-- fraction of Q (modified Lentz), as in the usual treatment of the incomplete gamma function.
function M.gammaincc(a, x)
  if x ~= x or a ~= a then return 0 / 0 end
  if x <= 0 then return 1 end
  if x == math.huge then return 0 end
  local lpre = -x + a * math.log(x) - stats.lgamma(a)
  if x < a + 1 then
    local term, sum, n = 1 / a, 1 / a, 0
    repeat
      n = n + 1
      term = term * x / (a + n)
      sum = sum + term
    until math.abs(term) < math.abs(sum) * 1e-16 or n > 100000
    return 1 - sum * math.exp(lpre)
  end
  local tiny = 1e-300
  local b = x + 1 - a
  local c, d = 1 / tiny, 1 / b
  local h = d
  for i = 1, 100000 do
    local an = -i * (i - a)
    b = b + 2
    d = an * d + b; if math.abs(d) < tiny then d = tiny end
    c = b + an / c; if math.abs(c) < tiny then c = tiny end
    d = 1 / d
    local del = d * c
    h = h * del
    if math.abs(del - 1) < 1e-16 then break end
  end
  return math.exp(lpre) * h
end

function M.chi2_sf(x, df)
  if not (df > 0) then return 0 / 0 end
  if x <= 0 then return 1 end
  return M.gammaincc(df / 2, x / 2)
end

---------------------------------------------------------------- rank tests
local function tie_sum(row)
  local count = {}
  for _, r in ipairs(row) do count[r] = (count[r] or 0) + 1 end
  local s = 0
  for _, t in pairs(count) do s = s + t * t * t - t end
  return s
end

-- friedman(rows) -> {statistic, df, p, n, k}; the tie-corrected statistic
-- (12 / (n k (k+1)) sum_j R_j^2 - 3 n (k+1)) / (1 - sum of (t^3 - t) / (n k (k^2 - 1))).
function M.friedman(rows)
  local n, k = #rows, rows[1] and #rows[1] or 0
  if n < 1 or k < 2 then return { statistic = 0 / 0, df = k - 1, p = 0 / 0, n = n, k = k } end
  local R, ties = {}, 0
  for j = 1, k do R[j] = 0 end
  for _, row in ipairs(rows) do
    for j = 1, k do R[j] = R[j] + row[j] end
    ties = ties + tie_sum(row)
  end
  local ss = 0
  for j = 1, k do ss = ss + R[j] * R[j] end
  local q = 12 / (n * k * (k + 1)) * ss - 3 * n * (k + 1)
  local c = 1 - ties / (n * k * (k * k - 1))
  local stat = c > 0 and q / c or 0 / 0
  return { statistic = stat, df = k - 1, p = M.chi2_sf(stat, k - 1), n = n, k = k, rank_sums = R }
end

-- kendall_w(rows) -> {w, chi2, df, p, m, k}: W = 12 S / (m^2 (k^3 - k) - m sum T), S the sum
-- of squared deviations of the rank sums from their mean, T = sum of (t^3 - t) over each
-- rater's ties (Kendall's tie correction); chi2 = m (k - 1) W on k - 1 degrees of freedom.
function M.kendall_w(rows)
  local m, k = #rows, rows[1] and #rows[1] or 0
  if m < 2 or k < 2 then return { w = 0 / 0, chi2 = 0 / 0, df = k - 1, p = 0 / 0, m = m, k = k } end
  local R, ties = {}, 0
  for j = 1, k do R[j] = 0 end
  for _, row in ipairs(rows) do
    for j = 1, k do R[j] = R[j] + row[j] end
    ties = ties + tie_sum(row)
  end
  local mean, S = m * (k + 1) / 2, 0
  for j = 1, k do S = S + (R[j] - mean) ^ 2 end
  local den = m * m * (k ^ 3 - k) - m * ties
  local w = den > 0 and 12 * S / den or 0 / 0
  local chi2 = m * (k - 1) * w
  return { w = w, chi2 = chi2, df = k - 1, p = M.chi2_sf(chi2, k - 1), m = m, k = k }
end

---------------------------------------------------------------- block statistics
-- Each condition's ranks in a block, averaged when a condition has several images there.
local function cond_ranks(block, conds)
  local sum, n = {}, {}
  for _, it in ipairs(block.items) do
    sum[it.cond] = (sum[it.cond] or 0) + it.rank
    n[it.cond] = (n[it.cond] or 0) + 1
  end
  local row = {}
  for j, c in ipairs(conds) do row[j] = n[c] and sum[c] / n[c] or 0 / 0 end
  return row
end

-- friedman_blocks(blocks, conds): the Friedman test with blocks = (reader, trial) rankings and
-- treatments = conditions; a condition's value in a block is its (average) rank there, re-ranked
-- among the conditions (so several real images in one trial count as one condition).
function M.friedman_blocks(blocks, conds)
  local rows = {}
  for _, b in ipairs(blocks) do rows[#rows + 1] = stats.rank(cond_ranks(b, conds)) end
  return M.friedman(rows)
end

-- agreement(blocks, conds) -> {per_trial = {w = mean W, n = trials with >= 2 readers, min, max},
-- methods = kendall_w over readers of their conditions' mean ranks (ranked per reader)}
function M.agreement(blocks, conds)
  local by_trial, order = {}, {}
  for _, b in ipairs(blocks) do
    if not by_trial[b.trial] then by_trial[b.trial] = {}; order[#order + 1] = b.trial end
    table.insert(by_trial[b.trial], b)
  end
  local ws = {}
  for _, t in ipairs(order) do
    local list = by_trial[t]
    if #list >= 2 then
      local ids = {}
      for _, it in ipairs(list[1].items) do ids[#ids + 1] = it.id end
      table.sort(ids)
      local rows = {}
      for i, b in ipairs(list) do
        local r = {}
        for _, it in ipairs(b.items) do r[it.id] = it.rank end
        rows[i] = {}
        for j, id in ipairs(ids) do rows[i][j] = r[id] end
      end
      ws[#ws + 1] = M.kendall_w(rows).w
    end
  end
  local per_trial = { n = #ws, w = #ws > 0 and stats.mean(ws) or 0 / 0 }
  if #ws > 0 then
    table.sort(ws)
    per_trial.min, per_trial.max = ws[1], ws[#ws]
  end
  -- method level: each reader's mean rank per condition
  local raters, sums = {}, {}
  for _, b in ipairs(blocks) do
    if not sums[b.rater] then sums[b.rater] = { s = {}, n = {} }; raters[#raters + 1] = b.rater end
    local acc = sums[b.rater]
    for _, it in ipairs(b.items) do
      acc.s[it.cond] = (acc.s[it.cond] or 0) + it.rank
      acc.n[it.cond] = (acc.n[it.cond] or 0) + 1
    end
  end
  local rows = {}
  for _, r in ipairs(raters) do
    local mean = {}
    for j, c in ipairs(conds) do mean[j] = sums[r].n[c] and sums[r].s[c] / sums[r].n[c] or 0 end
    rows[#rows + 1] = stats.rank(mean)
  end
  return { per_trial = per_trial, methods = M.kendall_w(rows) }
end

-- summarise(blocks, conds) -> {name = value}: mean_rank:C, first:C (share of C's images ranked
-- first), flag:C, tick:C (ticked items / items offered), win:A:B (share of (A, B) image pairs
-- in a block where A is ranked above B), class_rank:c:C, and, when there are real images,
-- real_below (share of blocks where some synthetic image is ranked above a real one).
function M.summarise(blocks, conds)
  local s, n, first, flag, tick, tick_den = {}, {}, {}, {}, {}, {}
  local win, pairs_ = {}, {}
  local cs, cn = {}, {}
  local real_blocks, real_below = 0, 0
  for _, b in ipairs(blocks) do
    local items = b.items
    local worst_real, best_synth = nil, nil
    for i = 1, #items do
      local it = items[i]
      local c = it.cond
      s[c] = (s[c] or 0) + it.rank
      n[c] = (n[c] or 0) + 1
      if it.rank == 1 then first[c] = (first[c] or 0) + 1 end
      if it.flag then flag[c] = (flag[c] or 0) + 1 end
      if it.n_items > 0 then
        tick[c] = (tick[c] or 0) + it.ticked
        tick_den[c] = (tick_den[c] or 0) + it.n_items
      end
      local ck = b.class .. ':' .. c
      cs[ck] = (cs[ck] or 0) + it.rank
      cn[ck] = (cn[ck] or 0) + 1
      if c == 'real' then
        if not worst_real or it.rank > worst_real then worst_real = it.rank end
      elseif not best_synth or it.rank < best_synth then best_synth = it.rank end
      for j = i + 1, #items do
        local jt = items[j]
        if jt.cond ~= c then
          local a, z = c, jt.cond
          if jt.rank < it.rank then a, z = z, a end
          local key = a .. '\0' .. z
          win[key] = (win[key] or 0) + 1
          local pk = c < jt.cond and c .. '\0' .. jt.cond or jt.cond .. '\0' .. c
          pairs_[pk] = (pairs_[pk] or 0) + 1
        end
      end
    end
    if worst_real then
      real_blocks = real_blocks + 1
      if best_synth and best_synth < worst_real then real_below = real_below + 1 end
    end
  end
  local out = {}
  local nan = 0 / 0
  for _, c in ipairs(conds) do
    local k = n[c] or 0
    out['mean_rank:' .. c] = k > 0 and s[c] / k or nan
    out['first:' .. c] = k > 0 and (first[c] or 0) / k or nan
    out['flag:' .. c] = k > 0 and (flag[c] or 0) / k or nan
    out['tick:' .. c] = (tick_den[c] or 0) > 0 and tick[c] / tick_den[c] or nan
    for _, d in ipairs(conds) do
      if d ~= c then
        local pk = c < d and c .. '\0' .. d or d .. '\0' .. c
        local tot = pairs_[pk] or 0
        out['win:' .. c .. ':' .. d] = tot > 0 and (win[c .. '\0' .. d] or 0) / tot or nan
      end
    end
  end
  for ck, v in pairs(cs) do out['class_rank:' .. ck] = v / cn[ck] end
  if real_blocks > 0 then out.real_below = real_below / real_blocks end
  return out
end

-- bootstrap(blocks, fn, {n = 2000, seed = 0, alpha = 0.05}) -> {name = {lo, hi}} for every
-- name fn(blocks) returns. Readers are drawn with replacement, then each drawn reader's blocks
-- with replacement (a reader drawn twice contributes two independent resamples). A statistic
-- that is undefined (NaN) in a resample is left out of that resample's draws; a CI needs at
-- least half of the resamples.
function M.bootstrap(blocks, fn, o)
  o = o or {}
  local B, alpha = o.n or 2000, o.alpha or 0.05
  local raters, by = {}, {}
  for _, b in ipairs(blocks) do
    if not by[b.rater] then by[b.rater] = {}; raters[#raters + 1] = b.rater end
    table.insert(by[b.rater], b)
  end
  local rng = stats.rng(o.seed or 0)
  local draws = {}
  local sample = {}
  for _ = 1, B do
    local m = 0
    for _ = 1, #raters do
      local list = by[raters[rng.int(#raters)]]
      for _ = 1, #list do
        m = m + 1
        sample[m] = list[rng.int(#list)]
      end
    end
    for i = m + 1, #sample do sample[i] = nil end
    for name, v in pairs(fn(sample)) do
      if v == v then
        local d = draws[name]
        if not d then d = {}; draws[name] = d end
        d[#d + 1] = v
      end
    end
  end
  local ci = {}
  for name, d in pairs(draws) do
    if #d >= B / 2 then
      table.sort(d)
      ci[name] = { stats.quantile_sorted(d, alpha / 2), stats.quantile_sorted(d, 1 - alpha / 2) }
    end
  end
  return ci
end

-- position(blocks) -> {mean rank, count} per display position (1 = shown first): a check that
-- readers did not simply rank in the order shown.
function M.position(blocks)
  local s, n = {}, {}
  for _, b in ipairs(blocks) do
    for _, it in ipairs(b.items) do
      if it.position then
        s[it.position] = (s[it.position] or 0) + it.rank
        n[it.position] = (n[it.position] or 0) + 1
      end
    end
  end
  local out = {}
  for p = 1, #s do out[p] = { mean = n[p] and s[p] / n[p] or 0 / 0, n = n[p] or 0 } end
  return out
end

return M
