-- craft tests/study/check_scores.lua KEY_JSON SCORE_DIR: compares `craft study score`'s results
-- for the readers "Dr A" and "Dr B" of tests/study/drive_page.lua with the values derived by
-- hand from their plans. Prints each failed check and, last, "P passed, F failed".
--
-- C classes, 2 draws each: each reader ranks 2C trials, so n = 4C rankings; the special class
-- (2 trials) is where B's plan differs; N = 2 (C - 1) is B's other trials. Ranks per ranking:
--   A (2C):          R 1, M4 2, M3 3, M2 4, M1 5
--   B other (N):     M4 1, R 2, M3 3, M1 4, M2 5
--   B special (2):   R 1, M3 2, M4 3, M2 4, M1 5
-- Rank sums: R 2C + 2N + 2, M4 4C + N + 6, M3 6C + 3N + 4, M2 8C + 5N + 8, M1 10C + 4N + 10;
-- mean rank = sum / 4C. With C = 3 (N = 4): 16, 22, 34, 52, 56 -> 1.333, 1.833, 2.833, 4.333,
-- 4.667; Friedman Q = 12 / (12 * 5 * 6) * 7736 - 3 * 12 * 6 = 41.8667, df 4, p = e^(-Q/2) (1 + Q/2)
-- = 1.78e-8. Win rates: M4 above M3 (2C + N) / 4C (A always, B in the other classes); R above M4
-- (2C + 2) / 4C; M1 above M2 N / 4C. A synthetic image above the real one: N / 4C (B's others).
-- Kendall's W per trial (m = 2, k = 5, W = S / 40): other trials rank sums R 3, M4 3, M3 6,
-- M2 9, M1 9 -> S = 36, W = 0.9; special trials R 2, M4 5, M3 5, M2 8, M1 10 -> S = 38, W = 0.95.
-- Method-level W: A's mean ranks 1..5; B's are the sums above over 2C, ranked (ties averaged).
-- Ticks: A ticks item 0 on R and M4 in classes with items, B every item on R: with n_c items in
-- class c, offered per condition 4 sum n_c; R ticked 2 #{c: n_c > 0} + 2 sum n_c; M4 2 #{c: n_c > 0}.
-- Not diagnostic: B flags M1 in the 2 special trials: 2 / 4C.
local io_ = require 'craft.io'
local key = io_.read_json(arg[1])
local dir = arg[2]
local s = io_.read_json(dir .. '/summary.json')
local e = s.estimates
local passed, failed = 0, 0
local function near(got, want, what, tol)
  if type(got) == 'number' and math.abs(got - want) <= (tol or 1e-9) * math.max(1, math.abs(want)) then passed = passed + 1
  else failed = failed + 1; print(('FAIL %s: got %s, hand-computed %.10g'):format(what, tostring(got), want)) end
end

local K = {}
for i = 1, 4 do K[i] = key.conditions[i].key end
local C = #key.classes
local N, n = 2 * (C - 1), 4 * C
local sums = { real = 2 * C + 2 * N + 2, [K[4]] = 4 * C + N + 6, [K[3]] = 6 * C + 3 * N + 4, [K[2]] = 8 * C + 5 * N + 8, [K[1]] = 10 * C + 4 * N + 10 }
for k, v in pairs(sums) do near(e['mean_rank:' .. k], v / n, 'mean rank ' .. k) end
if C == 3 then   -- the case written out above
  near(e['mean_rank:real'], 16 / 12, 'mean rank R, C = 3')
  near(e['mean_rank:' .. K[1]], 56 / 12, 'mean rank M1, C = 3')
end
local ss = 0
for _, v in pairs(sums) do ss = ss + v * v end
local Q = 12 / (n * 5 * 6) * ss - 3 * n * 6
near(s.friedman.statistic, Q, 'Friedman statistic')
near(s.friedman.p, math.exp(-Q / 2) * (1 + Q / 2), 'Friedman p (df 4 closed form)', 1e-9)
near(s.friedman.df, 4, 'Friedman df')
near(s.friedman.n, n, 'Friedman blocks')
near(e['win:' .. K[4] .. ':' .. K[3]], (2 * C + N) / n, 'M4 above M3')
near(e['win:real:' .. K[4]], (2 * C + 2) / n, 'R above M4')
near(e['win:' .. K[1] .. ':' .. K[2]], N / n, 'M1 above M2')
near(e['win:' .. K[2] .. ':' .. K[1]], 1 - N / n, 'M2 above M1')
near(e.real_below, N / n, 'a synthetic image above the real one')
near(e['first:real'], (2 * C + 2) / n, 'R ranked first')
near(e['class_rank:' .. (C - 1) .. ':' .. K[4]], 2.5, 'M4 in the special class (2, 2, 3, 3)')
near(e['class_rank:0:' .. K[4]], 1.5, 'M4 in class 0 (2, 2, 1, 1)')
near(e['class_rank:' .. (C - 1) .. ':real'], 1, 'R in the special class')
near(s.kendall_w.per_trial.w, (N * 0.9 + 2 * 0.95) / (2 * C), 'mean per-trial W')
near(s.kendall_w.per_trial.n, 2 * C, 'trials with two readers')
-- method level
local function rank(x)
  local r = {}
  for i = 1, #x do
    local less, same = 0, 0
    for j = 1, #x do if x[j] < x[i] then less = less + 1 elseif x[j] == x[i] then same = same + 1 end end
    r[i] = less + (same + 1) / 2
  end
  return r
end
local order = { 'real', K[4], K[3], K[2], K[1] }
local b_mean = {}
for i, k in ipairs(order) do
  local a_part = i * 2 * C                                   -- A's rank i in 2C trials
  b_mean[i] = (sums[k] - a_part) / (2 * C)
end
local rb = rank(b_mean)
local S, T = 0, 0
for i = 1, 5 do S = S + ((i + rb[i]) - 6) ^ 2 end
local count = {}
for _, r in ipairs(rb) do count[r] = (count[r] or 0) + 1 end
for _, t in pairs(count) do T = T + t ^ 3 - t end
local W = 12 * S / (4 * 120 - 2 * T)
near(s.kendall_w.methods.w, W, 'method-level W')
if C == 3 then near(s.kendall_w.methods.w, 438 / 468, 'method-level W, C = 3 (B ties R and M4)') end
-- ticks and flags
local sum_items, with_items = 0, 0
for _, items in ipairs(key.checklists) do
  sum_items = sum_items + #items
  if #items > 0 then with_items = with_items + 1 end
end
if sum_items > 0 then
  near(e['tick:real'], (2 * with_items + 2 * sum_items) / (4 * sum_items), 'ticks on R')
  near(e['tick:' .. K[4]], 2 * with_items / (4 * sum_items), 'ticks on M4')
  near(e['tick:' .. K[1]], 0, 'no ticks on M1')
end
near(e['flag:' .. K[1]], 2 / n, 'M1 not diagnostic')
near(e['flag:real'], 0, 'R never flagged')
-- the CSV says the same
local f = assert(io.open(dir .. '/methods.csv'))
local csv = f:read('*a')
f:close()
local row = csv:match('\nreal,Real,(%d+),([%d.]+),')
near(tonumber(row), n, 'methods.csv: images ranked of R')
near(tonumber(csv:match('\nreal,Real,%d+,([%d.e-]+),')), sums.real / n, 'methods.csv: mean rank of R', 1e-5)
print(('%d passed, %d failed'):format(passed, failed))
return failed == 0 and 0 or 1
