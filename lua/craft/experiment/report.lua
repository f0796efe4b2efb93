-- craft.experiment.report: an experiment's report folder (craft.report's page and files) with the
-- judges' headline first: the headline table (summary.csv's rows), the split sizes, the alarms and
-- notes, and the oracle's confusion matrix per method; then craft.report's CAS sections in the
-- judge's eyes, with the reward's CAS alongside as the optimised quantity.
local F = require 'craft.functional'
local summary = require 'craft.experiment.summary'
local independence = require 'craft.experiment.independence'
local suites = require 'craft.experiment.suites'

local M = {}

local function esc(s) return (tostring(s):gsub('&', '&amp;'):gsub('<', '&lt;'):gsub('>', '&gt;')) end
local function f6(v)
  return (v == nil or v ~= v) and '' or (type(v) == 'number' and ('%.6g'):format(v) or tostring(v))
end
local function pct(v) return (v == nil or v ~= v) and '–' or ('%.1f%%'):format(100 * v) end
local function fmt(v, f) return (v == nil or v ~= v) and '–' or (f):format(v) end

local function headline_rows(rows)
  local out = {}
  for _, r in ipairs(rows) do
    local c = r.vs and r.vs[1] or {}
    local v = {}
    for i, col in ipairs(summary.COLUMNS) do
      local x
      if col == 'judge_tail_vs' then x = c.vs
      elseif col == 'judge_tail_rel_reduction' then x = c.rel
      elseif col == 'judge_tail_rel_reduction_lo' then x = c.rel_lo
      elseif col == 'judge_tail_rel_reduction_hi' then x = c.rel_hi
      elseif col == 'judge_tail_paired_t_p' then x = c.t_p
      elseif col == 'judge_tail_sign_flip_p' then x = c.flip_p
      elseif col == 'oracle_correct_diff' then x = c.oracle_diff
      elseif col == 'oracle_correct_diff_lo' then x = c.oracle_diff_lo
      elseif col == 'oracle_correct_diff_hi' then x = c.oracle_diff_hi
      else x = r[col] end
      v[i] = f6(x)
    end
    out[#out + 1] = v
  end
  return out
end

local function confusion(cfg, models)
  local C = #cfg.classes
  local m = {}
  for y = 1, C do m[y] = {}; for k = 0, C do m[y][k] = 0 end end
  for _, r in ipairs(models) do
    for i, y in ipairs(r.labels) do
      local o = r.oracle_label and r.oracle_label[i]
      if o then
        local col = o < 0 and 0 or o + 1
        m[y + 1][col] = m[y + 1][col] + 1
      end
    end
  end
  local h = { '<table><thead><tr><th>prompted \\ oracle</th>' }
  for _, c in ipairs(cfg.classes) do h[#h + 1] = '<th>' .. esc(c) .. '</th>' end
  h[#h + 1] = '<th>undetermined</th></tr></thead><tbody>'
  for y = 1, C do
    local row = { '<tr><td>' .. esc(cfg.classes[y]) .. '</td>' }
    for k = 1, C do row[#row + 1] = '<td>' .. m[y][k] .. '</td>' end
    row[#row + 1] = '<td>' .. m[y][0] .. '</td></tr>'
    h[#h + 1] = table.concat(row)
  end
  h[#h + 1] = '</tbody></table>'
  return table.concat(h)
end

local function headline_html(cfg, rows, real, text)
  local h = { '<h2>Headline: the judges</h2>',
    ('<p class="note">Graded by judges that share no model, fitted probe, bank, statistics, threshold or '
    .. 'real image with the reward (checked when the run starts): the judge encoder %s%s. %d training '
    .. 'seed(s) per method; CIs: bootstrap over training seeds, then images. The reward\'s CAS (%s) is the '
    .. 'quantity the trainers ascend, shown last, not a judge.%s</p>'):format(
      esc(cfg.judge.vision.name or '?'), cfg.judge.oracle
      and (' and the ' .. esc(cfg.judge.oracle) .. ' phantom oracle') or '',
      #cfg.train_seeds, esc(table.concat({ cfg.reward.vlm and cfg.reward.vlm.name or nil, cfg.reward.vision
      and cfg.reward.vision.name or nil }, ' + ')),
      cfg.tune and ' <b>Tuning run: the calibration split stands in for the test split; these numbers choose '
      .. 'recipes and are not reported.</b>' or ''),
    cfg._device_line and ('<p class="note">%s</p>'):format(esc(cfg._device_line)) or '',
    '<div class="wrap"><table><thead><tr><th>method</th><th>judge tail [95% CI]</th><th>oracle correct [95% '
    .. 'CI]</th><th>oracle undetermined</th><th>downstream bal. acc. (real only)</th><th>memorised (feature '
    .. '/ SSIM)</th><th>FID (judge)</th><th>reward CAS (optimised)</th><th>reward tail '
    .. '(optimised)</th><th>Spearman with oracle: reward / judge</th><th>training steps / '
    .. 'images</th><th>minutes per model</th></tr></thead><tbody>',
    ('<tr><td>real (test split)</td><td>%s</td><td>%s</td><td></td><td></td><td></td><td></td><td></td>'
      .. '<td>%s</td><td></td><td></td><td></td></tr>'):format(
      pct(real.judge_tail), pct(real.oracle_share), pct(real.reward_tail)) }
  for _, r in ipairs(rows) do
    h[#h + 1] = ('<tr><td>%s%s</td><td>%s <small>[%s, %s]</small></td><td>%s <small>[%s, '
      .. '%s]</small></td><td>%s</td><td>%s <small>(%s)</small></td><td>%s / '
      .. '%s</td><td>%s</td><td>%s</td><td>%s <small>[%s, %s]</small></td><td>%s / %s</td><td>%s / '
      .. '%s</td><td>%s</td></tr>'):format(
      esc(r.method), r.baseline and ' <small>(baseline)</small>'
      or (r.control and ' <small>(control)</small>' or ''),
      pct(r.judge_tail), pct(r.judge_tail_lo), pct(r.judge_tail_hi), pct(r.oracle_correct),
      pct(r.oracle_correct_lo),
      pct(r.oracle_correct_hi), pct(r.oracle_undetermined), fmt(r.downstream_bal_acc, '%.3f'),
      fmt(r.downstream_bal_acc_real_only, '%.3f'),
      pct(r.memo_feature), pct(r.memo_ssim), fmt(r.fid_judge, '%.2f'), fmt(r.reward_cas, '%.2f'),
      pct(r.reward_tail), pct(r.reward_tail_lo),
      pct(r.reward_tail_hi), fmt(r.cas_oracle_spearman, '%.2f'), fmt(r.judge_oracle_spearman, '%.2f'),
      fmt(r.train_steps, '%d'),
      fmt(r.train_images, '%d'), fmt(r.wall_minutes, '%.1f'))
  end
  h[#h + 1] = '</tbody></table></div>'
  local notes = {}
  for _, r in ipairs(rows) do
    if r.alarm then notes[#notes + 1] = ('<li><b>%s</b>: %s</li>'):format(esc(r.method), esc(r.alarm)) end
  end
  if #notes > 0 then h[#h + 1] = '<h3>Reward-hacking alarms</h3><ul>' .. table.concat(notes) .. '</ul>' end
  h[#h + 1] = '<h3>The table as printed</h3><pre style="font-size:11px;overflow-x:auto">' .. esc(text)
    .. '</pre>'
  local sz = { '<h3>Splits (pairwise disjoint)</h3><table><thead><tr><th>split</th><th>images</th><th>used '
    .. 'for</th></tr></thead><tbody>' }
  local USE = {
    few_shot = 'generator adaptation (TI, LoRA, CRAFT\'s real-image loss); memorisation reference',
    reward_fit = 'the reward\'s probe and kNN bank',
    calibration = 'the reward\'s standardisation and thresholds',
    judge_fit = 'the judge\'s probe and kNN bank',
    judge_calibration = 'the judge\'s standardisation and thresholds',
    test = 'every reported number: judge tail of real images, downstream test, FID reference' }
  for _, s in ipairs(independence.SPLITS) do
    sz[#sz + 1] = ('<tr><td>%s</td><td>%d</td><td style="text-align:left">%s</td></tr>'):format(s,
      cfg.splits[s].images:size(1), esc(USE[s]))
  end
  sz[#sz + 1] = '</tbody></table>'
  h[#h + 1] = table.concat(sz)
  return table.concat(h, '\n')
end

-- write(cfg, rows, models_of, real, text) -> craft.report.write's result
function M.write(cfg, rows, models_of, real, text)
  local judge, reward = suites.judge(cfg), suites.reward(cfg)
  local methods = {}
  local conf = {}
  for i, m in ipairs(cfg.methods) do
    local ms = models_of[m.key]
    local cas, labels, rcas, imgs, oc, seed_tails, audit = {}, {}, {}, {}, {}, {}, nil
    for k, r in ipairs(ms) do
      for j, v in ipairs(r.judge_cas) do
        cas[#cas + 1] = v; labels[#labels + 1] = r.labels[j]; rcas[#rcas + 1] = r.reward_cas[j]
      end
      for _, v in ipairs(r.oracle_correct or {}) do oc[#oc + 1] = v end
      imgs[#imgs + 1] = r.images
      seed_tails[k] = rows[i].seed_judge_tails and rows[i].seed_judge_tails[k]
      audit = audit or r.reward_audit
    end
    methods[i] = { name = m.name, baseline = m.baseline or false, cas = cas, labels = labels,
      images = F.cat(imgs, 1),
      ood_cas = rcas, oracle_correct = #oc > 0 and oc or nil, seed_tails = seed_tails, audit = audit,
      memorisation = { cos = { share = rows[i].memo_feature }, ssim = { share = rows[i].memo_ssim } },
      fid = rows[i].fid_judge, downstream = ms[1] and ms[1].downstream
      and { balanced_accuracy = rows[i].downstream_bal_acc } or nil }
    if cfg.judge.oracle then
      conf[#conf + 1] = ('<div><h3>%s</h3>%s</div>'):format(esc(m.name), confusion(cfg, ms))
    end
  end
  local pre = headline_html(cfg, rows, real, text)
  if #conf > 0 then
    pre = pre .. '<h3>The oracle\'s verdicts (rows: prompted class; columns: what the oracle '
      .. 'measured)</h3><div class="charts">'
      .. table.concat(conf) .. '</div>'
  end
  return require('craft.report').write(cfg.out .. '/report', {
    title = cfg.title or ('CRAFT: ' .. cfg.name), classes = cfg.classes, thresholds = judge.thresholds,
    q = judge.q,
    real = { cas = real.judge_cas, labels = real.labels }, checklist_items = reward:checklist_items(),
    methods = methods,
    ood_thresholds = reward.thresholds, ood_label = "the reward's CAS (optimised, not a judge)",
    cas_label = "the judge's CAS", preamble = pre, notes = cfg.notes,
    headline = { columns = summary.COLUMNS, rows = headline_rows(rows) },
    bootstrap = cfg.report.bootstrap, grid = cfg.report.grid,
    subtitle = 'Tails, histograms and grids below use the judge\'s CAS (real: the test split)',
  })
end

return M
