-- craft.report: the evaluation report (METHOD.md, "A report"): report/index.html, one
-- self-contained page that opens offline (inline CSS, charts as inline SVG, images as base64
-- PNG data URIs, no JavaScript), plus per_image.csv and summary.csv.
--
--   local summary = require('craft.report').write('report', {
--     title = 'CRAFT on phantoms:derm', classes = {'nevus', 'melanoma'},
--     thresholds = cas.thresholds, q = cas.q,               -- per class (1-based)
--     real = {cas = heldout_cas, labels = heldout_labels},
--     checklist_items = cas:checklist_items(),              -- {{class = c, name = ...}, ...}
--     methods = {
--       {name = 'Base', baseline = true, cas = r.cas, labels = r.labels, dims = r.dims,
--        images = x, audit = cas:audit(r), seed_tails = {...}, oracle_correct = {...},
--        downstream = {accuracy = ..., balanced_accuracy = ..., macro_f1 = ..., auroc = ...},
--        memorisation = metrics.memorisation{...}, fid = ..., kid = ..., ood_cas = {...}},
--       {name = 'CRAFT', ...},
--     },
--     bootstrap = {n = 1000, seed = 0}, grid = {per_class = 4}, bins = 30,
--   })
-- Every method field but name, cas and labels is optional; the page shows what it is given.
-- Optional page-level fields: preamble (HTML placed before the CAS sections: an experiment's
-- headline table), headline = {columns = {...}, rows = {{...}}} (then summary.csv holds these rows
-- instead of the per-method CAS summary), cas_label (what the CAS is, e.g. "the judge's CAS"),
-- ood_label (what the second CAS, ood_cas, is).
-- Tails are shares of a method's images whose CAS is below their class's threshold; CIs are
-- percentile bootstraps over images; the reduction is against the baseline (baseline = true)
-- with the lowest tail, in percentage points and relative, with a bootstrap CI of the
-- difference; the paired test across seeds uses seed_tails of the method and that baseline.
local core = require 'craft.core'
local argerror = require('craft.core').argerror
local stats = require 'craft.stats'

local M = {}
local DOWNSTREAM = { 'accuracy', 'balanced_accuracy', 'macro_f1', 'auroc' }

---------------------------------------------------------------- small helpers
local charts = require 'craft.report_charts'
local esc, pct, subset, share = charts.esc, charts.pct, charts.subset, charts.share
-- base64(s): RFC 4648 with '=' padding
M.base64 = charts.base64

local function num(v, fmt)
  if v == nil or v ~= v then return '' end
  return (fmt or '%.4g'):format(v)
end
local function ci(lo, hi, f) if lo == nil then return '' end; return ('[%s, %s]'):format(f(lo), f(hi)) end

-- PNG bytes of one image [C, H, W] in [0, 1] (craft.io.png_bytes; kept here for callers)
M.png_bytes = function(img) return require('craft.io').png_bytes(img) end

local function write_csv(path, rows) return require('craft.io').write_csv(path, rows) end

---------------------------------------------------------------- statistics per method
local function below_flags(cas, labels, thr)
  local b = {}
  for i, y in ipairs(labels) do b[i] = cas[i] < thr[y + 1] and 1 or 0 end
  return b
end
local function summarise(res, m, bo)
  local thr = res.thresholds
  local s = { name = m.name, n = #m.cas, classes = {} }
  s.below = below_flags(m.cas, m.labels, thr)
  s.mean = stats.mean(m.cas)
  s.mean_lo, s.mean_hi = stats.bootstrap(m.cas, stats.mean, bo)
  s.tail = stats.mean(s.below)
  s.tail_lo, s.tail_hi = stats.bootstrap(s.below, stats.mean, bo)
  for c = 1, #res.classes do
    local v, b = subset(m.cas, m.labels, c), subset(s.below, m.labels, c)
    local k = { n = #v }
    if #v > 0 then
      k.mean, k.tail = stats.mean(v), stats.mean(b)
      k.mean_lo, k.mean_hi = stats.bootstrap(v, stats.mean, bo)
      k.tail_lo, k.tail_hi = stats.bootstrap(b, stats.mean, bo)
    end
    s.classes[c] = k
  end
  s.oracle = m.oracle_accuracy or share(m.oracle_correct)
  if m.ood_cas then
    s.ood_mean = stats.mean(m.ood_cas)
    s.ood_lo, s.ood_hi = stats.bootstrap(m.ood_cas, stats.mean, bo)
    if res.ood_thresholds then
      s.ood_tail = stats.mean(below_flags(m.ood_cas, m.labels, res.ood_thresholds))
    end
  end
  local mem = m.memorisation or {}
  s.mem_cos = mem.cos and mem.cos.share or mem.share_cos
  s.mem_ssim = mem.ssim and mem.ssim.share or mem.share_ssim
  return s
end

-- reductions against the strongest (lowest-tail) baseline
local function compare(res, sums, bo)
  local best
  for i, m in ipairs(res.methods) do
    if m.baseline and (not best or sums[i].tail < sums[best].tail) then best = i end
  end
  if not best then return nil end
  local b = sums[best]
  for i, m in ipairs(res.methods) do
    local s = sums[i]
    if not m.baseline then
      s.red_pts = 100 * (b.tail - s.tail)
      s.red_rel = b.tail > 0 and (b.tail - s.tail) / b.tail or nil
      local paired = bo.paired and #s.below == #b.below
      local lo, hi = stats.bootstrap_diff(b.below, s.below, stats.mean,
        { n = bo.n, seed = bo.seed, paired = paired })
      s.red_lo, s.red_hi = 100 * lo, 100 * hi
      local st, bt = m.seed_tails, res.methods[best].seed_tails
      if st and bt and #st == #bt and #st >= 2 then
        s.t_p = stats.paired_t(bt, st).p
        s.flip_p = stats.sign_flip(bt, st)
      end
    end
  end
  return best
end

---------------------------------------------------------------- tables
-- A table from column specs { {header, fn(m, s) -> cell html}, ... }, one row per method.
local function table_of(res, sums, cols)
  local h = { '<table><thead><tr>' }
  for _, c in ipairs(cols) do h[#h + 1] = '<th>' .. c[1] .. '</th>' end
  h[#h + 1] = '</tr></thead><tbody>'
  for i, m in ipairs(res.methods) do
    local r = { '<tr>' }
    for _, c in ipairs(cols) do r[#r + 1] = '<td>' .. c[2](m, sums[i]) .. '</td>' end
    h[#h + 1] = table.concat(r) .. '</tr>'
  end
  h[#h + 1] = '</tbody></table>'
  return table.concat(h)
end

local function f3(v) return ('%.3f'):format(v) end

-- Two tables: clinical alignment (CAS, tail, reduction, tests, oracle, out-of-family CAS) and
-- the other quality measures (downstream classifier, memorisation, FID / KID); columns that no
-- method has are left out.
local function method_tables(res, sums, best)
  local has = {}
  for i, m in ipairs(res.methods) do
    local s = sums[i]
    has.oracle = has.oracle or s.oracle ~= nil
    has.down = has.down or m.downstream ~= nil
    has.mem = has.mem or s.mem_cos ~= nil or s.mem_ssim ~= nil
    has.fidkid = has.fidkid or m.fid ~= nil or m.kid ~= nil
    has.ood = has.ood or s.ood_mean ~= nil
    has.p = has.p or s.t_p ~= nil
  end
  local function name(m) return esc(m.name) .. (m.baseline and ' <small>(baseline)</small>' or '') end
  local a = {
    { 'method', name }, { 'n', function(_, s) return tostring(s.n) end },
    { 'mean CAS [95% CI]', function(_, s) return f3(s.mean) .. ' ' .. ci(s.mean_lo, s.mean_hi, f3) end },
    { 'tail [95% CI]', function(_, s) return pct(s.tail) .. ' ' .. ci(s.tail_lo, s.tail_hi, pct) end },
  }
  if best then
    a[#a + 1] = { ('reduction vs %s: points [CI], relative'):format(esc(res.methods[best].name)),
      function(_, s)
      if not s.red_pts then return '–' end
      return ('%+.1f %s, %s'):format(s.red_pts,
      ci(s.red_lo, s.red_hi, function(v) return ('%+.1f'):format(v) end),
        s.red_rel and pct(s.red_rel) or '–')
    end }
  end
  if has.p then
    a[#a + 1] = { 'paired t / sign-flip p (seeds)', function(_, s)
      return s.t_p and (num(s.t_p, '%.3g') .. ' / ' .. num(s.flip_p, '%.3g')) or '–'
    end }
  end
  if has.oracle then a[#a + 1] = { 'oracle correct', function(_, s) return pct(s.oracle) end } end
  if has.ood then
    a[#a + 1] = { esc(res.ood_label or 'out-of-family CAS') .. ' [95% CI]', function(_, s)
      if not s.ood_mean then return '–' end
      return f3(s.ood_mean) .. ' ' .. ci(s.ood_lo, s.ood_hi, f3)
      .. (s.ood_tail and (', tail ' .. pct(s.ood_tail)) or '')
    end }
  end
  local b = { { 'method', name } }
  if has.down then
    for _, k in ipairs(DOWNSTREAM) do
      b[#b + 1] = { 'downstream ' .. k:gsub('_', ' '),
        function(m) return num(m.downstream and m.downstream[k], '%.3f') end }
    end
  end
  if has.mem then
    b[#b + 1] = { 'memorised (cosine / SSIM)', function(_, s) return pct(s.mem_cos) .. ' / '
      .. pct(s.mem_ssim) end }
  end
  if has.fidkid then
    b[#b + 1] = { 'FID', function(m) return num(m.fid, '%.3f') end }
    b[#b + 1] = { 'KID', function(m) return num(m.kid, '%.4f') end }
  end
  return table_of(res, sums, a), #b > 1 and table_of(res, sums, b) or nil
end

local function class_table(res, sums)
  local h = { '<table><thead><tr><th>method</th>' }
  for _, c in ipairs(res.classes) do h[#h + 1] = ('<th>%s: mean CAS</th><th>tail</th>'):format(esc(c)) end
  h[#h + 1] = '</tr></thead><tbody>'
  for i, m in ipairs(res.methods) do
    local r = { '<tr><td>' .. esc(m.name) .. '</td>' }
    for c = 1, #res.classes do
      local k = sums[i].classes[c]
      r[#r + 1] = ('<td>%s</td><td>%s <small>%s</small></td>'):format(num(k.mean, '%.3f'), pct(k.tail),
        ci(k.tail_lo, k.tail_hi, pct))
    end
    h[#h + 1] = table.concat(r) .. '</tr>'
  end
  h[#h + 1] = '</tbody></table>'
  return table.concat(h)
end

---------------------------------------------------------------- CSV files
local function f6(v) return (v == nil or v ~= v) and '' or ('%.6g'):format(v) end

-- the z-score columns: the built-in dimensions (craft.cas.dims), then any other a method has
local function dim_columns(res)
  local list, seen = {}, {}
  for _, d in ipairs(require('craft.cas.dims').BUILTIN) do list[#list + 1], seen[d] = d, true end
  local extra = {}
  for _, m in ipairs(res.methods) do
    for d in pairs(m.dims or {}) do if not seen[d] then seen[d] = true; extra[#extra + 1] = d end end
  end
  table.sort(extra)
  for _, d in ipairs(extra) do list[#list + 1] = d end
  return list
end

local function per_image_rows(res, sums)
  local dims = dim_columns(res)
  local head = { 'method', 'index', 'label', 'class', 'cas', 'below_threshold' }
  for _, d in ipairs(dims) do head[#head + 1] = 'z_' .. d end
  head[#head + 1], head[#head + 2] = 'oracle_correct', 'ood_cas'
  local rows = { head }
  local function add(name, m, below)
    for i, y in ipairs(m.labels) do
      local d = m.dims or {}
      local oc = m.oracle_correct and m.oracle_correct[i]
      local row = { name, i, y, res.classes[y + 1], f6(m.cas[i]), below[i] }
      for _, k in ipairs(dims) do row[#row + 1] = f6(d[k] and d[k][i]) end
      row[#row + 1] = oc == nil and '' or ((oc == true or oc == 1) and 1 or 0)
      row[#row + 1] = f6(m.ood_cas and m.ood_cas[i])
      rows[#rows + 1] = row
    end
  end
  add('real', res.real, below_flags(res.real.cas, res.real.labels, res.thresholds))
  for i, m in ipairs(res.methods) do add(m.name, m, sums[i].below) end
  return rows
end

local function summary_rows(res, sums)
  local rows = { { 'method', 'class', 'n', 'threshold', 'mean_cas', 'mean_cas_lo', 'mean_cas_hi', 'tail',
    'tail_lo', 'tail_hi',
    'reduction_pts', 'reduction_pts_lo', 'reduction_pts_hi', 'reduction_rel', 'paired_t_p', 'sign_flip_p',
    'oracle_correct',
    'accuracy', 'balanced_accuracy', 'macro_f1', 'auroc', 'memorised_cos', 'memorised_ssim', 'fid', 'kid',
    'ood_mean_cas', 'ood_tail' } }
  for i, m in ipairs(res.methods) do
    local s, d = sums[i], m.downstream or {}
    rows[#rows + 1] = { m.name, 'all', s.n, '', f6(s.mean), f6(s.mean_lo), f6(s.mean_hi), f6(s.tail),
      f6(s.tail_lo), f6(s.tail_hi),
      f6(s.red_pts), f6(s.red_lo), f6(s.red_hi), f6(s.red_rel), f6(s.t_p), f6(s.flip_p), f6(s.oracle),
      f6(d.accuracy), f6(d.balanced_accuracy), f6(d.macro_f1), f6(d.auroc), f6(s.mem_cos), f6(s.mem_ssim),
      f6(m.fid), f6(m.kid),
      f6(s.ood_mean), f6(s.ood_tail) }
    for c, name in ipairs(res.classes) do
      local k = s.classes[c]
      local r = { m.name, name, k.n, f6(res.thresholds[c]), f6(k.mean), f6(k.mean_lo), f6(k.mean_hi),
        f6(k.tail), f6(k.tail_lo), f6(k.tail_hi) }
      for j = #r + 1, #rows[1] do r[j] = '' end
      rows[#rows + 1] = r
    end
  end
  return rows
end

---------------------------------------------------------------- the page
local CSS = [[
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#222;margin:0;
background:#fafafa}
main{max-width:1180px;margin:0 auto;padding:24px 28px;background:#fff}
h1{font-size:24px;margin:0 0 4px}
h2{font-size:18px;margin:28px 0 8px;border-bottom:1px solid #ddd;padding-bottom:4px}
h3{font-size:15px;margin:16px 0 6px}p.meta{color:#666;margin:0 0 12px}
table{border-collapse:collapse;font-size:13px;margin:6px 0}
th,td{padding:4px 8px;border-bottom:1px solid #e5e5e5;text-align:right;white-space:nowrap}
th{white-space:normal;vertical-align:bottom;max-width:150px}
th:first-child,td:first-child{text-align:left}thead th{background:#f2f4f7;font-weight:600}
tbody tr:nth-child(even){background:#fafbfc}
.wrap{overflow-x:auto}.charts{display:flex;flex-wrap:wrap;gap:12px}svg{background:#fff}
svg .s{font-size:11px;fill:#333}svg .ax{stroke:#555}svg .grid{stroke:#eee}
.grids{display:flex;flex-wrap:wrap;gap:8px 36px}.grid{margin:4px 0 10px}.cls{font-weight:600;margin:6px 0 2px}
.row{display:flex;align-items:center;gap:6px;flex-wrap:wrap}
.row span{width:44px;color:#666;font-size:12px}figure{margin:0;text-align:center}
figure img{width:80px;height:80px;image-rendering:pixelated;border:2px solid #fff;display:block}
figure.bad img{border-color:#c0392b}figcaption{font-size:11px;color:#555}
small{color:#777}.note{color:#555;font-size:13px}
]]

-- write(dir, results) -> { methods = {per-method summaries}, best_baseline = index, files = {...} }
function M.write(dir, res)
  require('craft.core').want('report.write', 'dir', dir, 'string')
  require('craft.core').want('report.write', 'results', res, 'table')
  if not (res.classes and res.thresholds and res.real and res.methods) then
    argerror('report.write: results need classes, thresholds, real and methods')
  end
  for _, m in ipairs(res.methods) do
    if #m.cas ~= #m.labels then
      argerror(('report: method %s has %d CAS values but %d labels'):format(m.name, #m.cas, #m.labels))
    end
  end
  local bo = { n = (res.bootstrap or {}).n or 1000, seed = (res.bootstrap or {}).seed or 0,
    paired = (res.bootstrap or {}).paired }
  local sums = {}
  for i, m in ipairs(res.methods) do sums[i] = summarise(res, m, bo) end
  os.execute("mkdir -p '" .. dir:gsub("'", "'\\''") .. "'")
  local best = compare(res, sums, bo)
  local t_align, t_quality = method_tables(res, sums, best)
  local html = { '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">',
    '<meta name="viewport" content="width=device-width, initial-scale=1">',
    ('<title>%s</title><style>%s</style></head><body><main>'):format(esc(res.title or 'CRAFT report'), CSS),
    ('<h1>%s</h1><p class="meta">%s%d held-out real images; thresholds: q = %s quantile of real CAS per '
    .. 'class; CIs: percentile bootstrap over images (%d resamples, seed %d).</p>')
      :format(esc(res.title or 'CRAFT report'), res.subtitle and (esc(res.subtitle) .. ' · ') or '',
      #res.real.cas,
        res.q and num(res.q, '%.2f') or '?', bo.n, bo.seed),
    res.preamble or '',
    ('<h2>Clinical alignment%s</h2><div class="wrap">'):format(res.cas_label and (': ' .. esc(res.cas_label))
    or ''), t_align, '</div>',
    t_quality and ('<h2>Downstream use, memorisation, fidelity</h2><div class="wrap">' .. t_quality
    .. '</div>') or '',
    '<h2>Low-alignment tail</h2>', charts.tail_bars(res, sums),
    '<h2>Per class</h2><div class="wrap">', class_table(res, sums), '</div>',
    '<h2>CAS distributions</h2><div class="charts">' }
  for c = 1, #res.classes do
    html[#html + 1] = ('<div><h3>%s</h3>%s</div>'):format(esc(res.classes[c]),
      charts.histogram(res, c, res.bins or 30))
  end
  html[#html + 1] = '</div>'
  local hm = charts.heatmap(res)
  if hm then
    html[#html + 1] = '<h2>Checklist audit</h2><p class="note">Share of each class\'s images that satisfy '
      .. 'the item.</p><div class="wrap">' .. hm .. '</div>'
  end
  local g = charts.grids(res, (res.grid or {}).per_class or 4)
  if g ~= '' then
    html[#html + 1] = '<h2>Best and worst images by CAS</h2><p class="note">Red frame: below the class '
      .. 'threshold.</p>' .. g
  end
  local study = io.open(dir .. '/../study/index.html')   -- craft study score's page (docs/reader_study.md)
  if study then
    study:close(); html[#html + 1] = '<p class="note study-link">Blinded reader study: <a '
      .. 'href="../study/index.html">results</a></p>'
  end
  html[#html + 1] = '<!-- craft:study-link -->'
  html[#html + 1] = '<p class="note">Files: per_image.csv, summary.csv.</p></main></body></html>\n'
  local files = { html = dir .. '/index.html', per_image = dir .. '/per_image.csv',
    summary = dir .. '/summary.csv' }
  local f = assert(io.open(files.html, 'wb'))
  f:write(table.concat(html, '\n'))
  f:close()
  write_csv(files.per_image, per_image_rows(res, sums))
  write_csv(files.summary, res.headline and (function()
    local rows = { res.headline.columns }
    for _, r in ipairs(res.headline.rows) do rows[#rows + 1] = r end
    return rows
  end)() or summary_rows(res, sums))
  return { methods = sums, best_baseline = best, files = files }
end

return M
