-- craft.study.score_page: the reader study's results page (DIR/index.html), in the style of the
-- experiment report: one self-contained page, inline CSS, an inline SVG chart, no JavaScript.
local M = {}

local CSS = [[
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#222;margin:0;background:#fafafa}
main{max-width:1180px;margin:0 auto;padding:24px 28px;background:#fff}
h1{font-size:24px;margin:0 0 4px}h2{font-size:18px;margin:28px 0 8px;border-bottom:1px solid #ddd;padding-bottom:4px}
h3{font-size:15px;margin:16px 0 6px}p.meta{color:#666;margin:0 0 12px}
table{border-collapse:collapse;font-size:13px;margin:6px 0}th,td{padding:4px 8px;border-bottom:1px solid #e5e5e5;text-align:right;white-space:nowrap}th{white-space:normal;vertical-align:bottom;max-width:160px}
th:first-child,td:first-child{text-align:left}thead th{background:#f2f4f7;font-weight:600}tbody tr:nth-child(even){background:#fafbfc}
td.text{text-align:left;white-space:normal;max-width:420px}
.wrap{overflow-x:auto}svg{background:#fff}svg .s{font-size:11px;fill:#333}svg .ax{stroke:#555}svg .grid{stroke:#eee}
small{color:#777}.note{color:#555;font-size:13px}.problems li{color:#8a2a1f}
]]
local PALETTE = { '#4e79a7', '#f28e2b', '#59a14f', '#e15759', '#76b7b2', '#edc948', '#b07aa1', '#9c755f' }
local REAL_COLOR = '#9aa0a6'

local function esc(s)
  return (tostring(s):gsub('[&<>"]', { ['&'] = '&amp;', ['<'] = '&lt;', ['>'] = '&gt;', ['"'] = '&quot;' }))
end
local function num(v, fmt) if v == nil or v ~= v then return '–' end; return (fmt or '%.2f'):format(v) end
local function pct(v) if v == nil or v ~= v then return '–' end; return ('%.1f%%'):format(100 * v) end
local function pval(p)
  if p == nil or p ~= p then return '–' end
  if p < 1e-4 then return ('%.1e'):format(p) end
  return ('%.4f'):format(p)
end

local function table_html(head, rows, text_cols)
  local h = { '<div class="wrap"><table><thead><tr>' }
  for _, x in ipairs(head) do h[#h + 1] = '<th>' .. esc(x) .. '</th>' end
  h[#h + 1] = '</tr></thead><tbody>'
  for _, r in ipairs(rows) do
    h[#h + 1] = '<tr>'
    for k, x in ipairs(r) do
      h[#h + 1] = ((text_cols or {})[k] and '<td class="text">' or '<td>') .. esc(x) .. '</td>'
    end
    h[#h + 1] = '</tr>'
  end
  h[#h + 1] = '</tbody></table></div>'
  return table.concat(h)
end

-- mean rank with its CI as horizontal bars from rank 1 (best, left) to K
local function chart(res, K)
  local conds, est, ci = res.conds, res.est, res.ci
  local W, left, right, row = 640, 150, 30, 26
  local H = 40 + row * #conds
  local function x(r) return left + (r - 1) / math.max(K - 1, 1) * (W - left - right) end
  local s = { ('<svg width="%d" height="%d" viewBox="0 0 %d %d" role="img" aria-label="mean rank per method">'):format(W, H, W, H) }
  for r = 1, K do
    s[#s + 1] = ('<line class="grid" x1="%.1f" y1="10" x2="%.1f" y2="%d"/><text class="s" x="%.1f" y="%d" text-anchor="middle">%d</text>')
      :format(x(r), x(r), H - 24, x(r), H - 8, r)
  end
  for i, c in ipairs(conds) do
    local y = 14 + (i - 1) * row
    local m = est['mean_rank:' .. c]
    local color = c == 'real' and REAL_COLOR or PALETTE[(i - 1) % #PALETTE + 1]
    s[#s + 1] = ('<text class="s" x="%d" y="%d" text-anchor="end">%s</text>'):format(left - 8, y + 12, esc(res.names[c]))
    if m == m then
      s[#s + 1] = ('<rect x="%.1f" y="%d" width="%.1f" height="14" fill="%s" opacity="0.85"/>'):format(x(1), y + 2, math.max(x(m) - x(1), 1), color)
      local b = ci['mean_rank:' .. c]
      if b then
        s[#s + 1] = ('<line class="ax" x1="%.1f" y1="%d" x2="%.1f" y2="%d"/><line class="ax" x1="%.1f" y1="%d" x2="%.1f" y2="%d"/><line class="ax" x1="%.1f" y1="%d" x2="%.1f" y2="%d"/>')
          :format(x(b[1]), y + 9, x(b[2]), y + 9, x(b[1]), y + 4, x(b[1]), y + 14, x(b[2]), y + 4, x(b[2]), y + 14)
      end
    end
  end
  s[#s + 1] = ('<text class="s" x="%.1f" y="%d" text-anchor="middle">mean rank (1 = most plausible)</text></svg>'):format((left + W - right) / 2, H)
  return table.concat(s)
end

function M.render(key, loaded, res)
  local conds, names, est, ci = res.conds, res.names, res.est, res.ci
  local function with_ci(name, f)
    local b = ci[name]
    local v = (f or num)(est[name])
    if b then v = v .. (' [%s, %s]'):format((f or num)(b[1]), (f or num)(b[2])) end
    return v
  end
  local K = 0
  for _, t in ipairs(key.trials) do K = math.max(K, #t.images) end
  local title = 'Blinded reader study' .. (type(key.run) == 'table' and type(key.run.title) == 'string' and (': ' .. key.run.title) or '')
  local h = { '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">',
    '<meta name="viewport" content="width=device-width, initial-scale=1">',
    ('<title>%s</title><style>%s</style></head><body><main>'):format(esc(title), CSS),
    ('<h1>%s</h1><p class="meta">Packet %s · %d readers · %d rankings of %d trials (%d images each) · 95%% CIs: hierarchical percentile bootstrap (readers, then their trials; %d resamples, seed %d).</p>')
      :format(esc(title), esc(key.packet), #loaded.raters, res.blocks, #key.trials, K, res.boot.n, res.boot.seed) }
  local function add(s) h[#h + 1] = s end
  if #loaded.problems > 0 then
    add('<h2>Input problems</h2><ul class="problems">')
    for _, p in ipairs(loaded.problems) do add('<li>' .. esc(p) .. '</li>') end
    add('</ul>')
  end

  add('<h2>Ranking by clinical plausibility</h2>')
  add(chart(res, K))
  local rows = {}
  for _, c in ipairs(conds) do
    rows[#rows + 1] = { names[c], res.counts.images[c] or 0, with_ci('mean_rank:' .. c), with_ci('first:' .. c, pct),
      with_ci('flag:' .. c, pct), with_ci('tick:' .. c, pct) }
  end
  add(table_html({ 'method', 'images ranked', 'mean rank [95% CI]', 'ranked first', 'not diagnostic', 'checklist items ticked' }, rows))
  local fr, ag = res.friedman, res.agreement
  add(('<p>Friedman test (blocks: one reader\'s ranking of one trial, n = %d; %d conditions): χ² = %s, df = %d, p = %s.</p>')
    :format(fr.n, fr.k, num(fr.statistic, '%.3f'), fr.df, pval(fr.p)))
  add(('<p>Agreement between readers (Kendall\'s W, 0 = none, 1 = identical rankings): per trial, mean W = %s over %d trials ranked by two or more readers%s; on the methods\' mean ranks per reader, W = %s (m = %d readers, χ² = %s, df = %d, p = %s).</p>')
    :format(num(ag.per_trial.w, '%.3f'), ag.per_trial.n, ag.per_trial.n > 0 and (' (range %s to %s)'):format(num(ag.per_trial.min, '%.3f'), num(ag.per_trial.max, '%.3f')) or '',
      num(ag.methods.w, '%.3f'), ag.methods.m, num(ag.methods.chi2, '%.3f'), ag.methods.df, pval(ag.methods.p)))

  local has_real = false
  for _, c in ipairs(conds) do if c == 'real' then has_real = true end end
  if has_real then
    add('<h2>Real images against synthetic ones</h2>')
    add(('<p>In %s of the rankings with a real image [95%% CI], a synthetic image was ranked above a real one.</p>'):format(with_ci('real_below', pct)))
    rows = {}
    for _, c in ipairs(conds) do
      if c ~= 'real' then rows[#rows + 1] = { names[c], res.counts.pairs(c, 'real'), with_ci('win:' .. c .. ':real', pct) } end
    end
    add(table_html({ 'method', 'pairs with a real image', 'ranked above the real image [95% CI]' }, rows))
  end

  add('<h2>Pairwise</h2><p class="note">Share of rankings in which the row\'s image was ranked above the column\'s [95% CI].</p>')
  local head = { 'row above column' }
  for _, c in ipairs(conds) do head[#head + 1] = names[c] end
  rows = {}
  for _, a in ipairs(conds) do
    local r = { names[a] }
    for _, b in ipairs(conds) do r[#r + 1] = a == b and '' or with_ci('win:' .. a .. ':' .. b, pct) end
    rows[#rows + 1] = r
  end
  add(table_html(head, rows))

  add('<h2>Per class</h2><p class="note">Mean rank [95% CI].</p>')
  head = { 'class' }
  for _, c in ipairs(conds) do head[#head + 1] = names[c] end
  rows = {}
  for ci_, cname in ipairs(key.classes) do
    local r = { cname }
    for _, c in ipairs(conds) do r[#r + 1] = with_ci('class_rank:' .. (ci_ - 1) .. ':' .. c) end
    rows[#rows + 1] = r
  end
  add(table_html(head, rows))

  local any_items = false
  for _, items in ipairs(key.checklists or {}) do if #items > 0 then any_items = true end end
  if any_items then
    add('<h2>Checklist</h2><p class="note">Share of each method\'s images of the class on which the readers ticked the item.</p>')
    for ci_, cname in ipairs(key.classes) do
      local items = (key.checklists or {})[ci_] or {}
      if #items > 0 then
        add('<h3>' .. esc(cname) .. '</h3>')
        head = { 'item' }
        for _, c in ipairs(conds) do head[#head + 1] = names[c] end
        rows = {}
        for k, text in ipairs(items) do
          local r = { text }
          for _, c in ipairs(conds) do
            local t = res.counts.ticks[(ci_ - 1) .. ':' .. c]
            r[#r + 1] = t and t.n > 0 and pct((t.items[k - 1] or 0) / t.n) or '–'
          end
          rows[#rows + 1] = r
        end
        add(table_html(head, rows, { true }))
      end
    end
  end

  add('<h2>Readers</h2>')
  head = { 'reader', 'file', 'trials', 'median seconds per trial' }
  for _, c in ipairs(conds) do head[#head + 1] = 'mean rank: ' .. names[c] end
  rows = {}
  for _, r in ipairs(res.per_rater) do
    local row = { r.name, r.file, r.trials, num(r.median_seconds, '%.1f') }
    for _, c in ipairs(conds) do row[#row + 1] = num(r.est['mean_rank:' .. c]) end
    rows[#rows + 1] = row
  end
  add(table_html(head, rows))

  if #res.position > 0 then
    add('<h2>Position check</h2><p class="note">Mean rank by where the page showed the image (1 = first). The order is random, so these should all be near the middle rank unless readers favoured a position.</p>')
    head, rows = { 'shown at' }, { { 'mean rank' }, { 'images' } }
    for p, v in ipairs(res.position) do
      head[#head + 1] = tostring(p)
      rows[1][#rows[1] + 1] = num(v.mean)
      rows[2][#rows[2] + 1] = tostring(v.n)
    end
    add(table_html(head, rows))
  end

  add('<h2>Input files</h2>')
  rows = {}
  for _, e in ipairs(loaded.files) do rows[#rows + 1] = { e.path, e.status, e.rater or '', e.trials or '', e.note or '' } end
  add(table_html({ 'file', 'status', 'reader', 'trials', 'note' }, rows, { [5] = true }))
  add('<p class="note">Files: methods.csv, pairwise.csv, per_class.csv, checklist.csv, raters.csv, ratings_long.csv, tests.csv, files.csv, summary.json. How the numbers are computed: docs/reader_study.md.</p>')
  add('</main></body></html>\n')
  return table.concat(h, '\n')
end

return M
