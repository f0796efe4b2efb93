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

local bit = require 'bit'

local M = {}
local PALETTE = { '#4e79a7', '#f28e2b', '#59a14f', '#e15759', '#76b7b2', '#edc948', '#b07aa1', '#9c755f' }
local REAL_COLOR = '#9aa0a6'
local DIMS = { 'prompt', 'checklist', 'probe', 'fidelity' }
local DOWNSTREAM = { 'accuracy', 'balanced_accuracy', 'macro_f1', 'auroc' }

---------------------------------------------------------------- small helpers
local B64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/'
-- base64(s): RFC 4648 with '=' padding
function M.base64(s)
  require('craft.core').want('report.base64', 's', s, 'string')
  local out, n = {}, #s
  for i = 1, n, 3 do
    local a, b, c = s:byte(i, i + 2)
    local v = bit.bor(bit.lshift(a, 16), bit.lshift(b or 0, 8), c or 0)
    local q = {}
    for k = 1, 4 do
      local idx = bit.band(bit.rshift(v, 6 * (4 - k)), 63)
      q[k] = B64:sub(idx + 1, idx + 1)
    end
    if not b then q[3] = '=' end
    if not c then q[4] = '=' end
    out[#out + 1] = table.concat(q)
  end
  return table.concat(out)
end

local function esc(s)
  return (tostring(s):gsub('[&<>"]', { ['&'] = '&amp;', ['<'] = '&lt;', ['>'] = '&gt;', ['"'] = '&quot;' }))
end
local function num(v, fmt)
  if v == nil or v ~= v then return '' end
  return (fmt or '%.4g'):format(v)
end
local function pct(v) return (v == nil or v ~= v) and '–' or ('%.1f%%'):format(100 * v) end
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
local function subset(values, labels, c)
  local r = {}
  for i, y in ipairs(labels) do if y + 1 == c then r[#r + 1] = values[i] end end
  return r
end
local function share(flags)
  if flags == nil or #flags == 0 then return nil end
  local s = 0
  for _, v in ipairs(flags) do if v == true or v == 1 then s = s + 1 end end
  return s / #flags
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
    if res.ood_thresholds then s.ood_tail = stats.mean(below_flags(m.ood_cas, m.labels, res.ood_thresholds)) end
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

---------------------------------------------------------------- SVG charts
local function svg_open(w, h, label)
  return ('<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" role="img" aria-label="%s">')
    :format(w, h, w, h, esc(label))
end
local function legend(items, x, y)
  local p = {}
  for i, it in ipairs(items) do
    local yy = y + (i - 1) * 16
    p[#p + 1] = ('<rect x="%d" y="%d" width="10" height="10" fill="%s"/><text x="%d" y="%d" class="s">%s</text>')
      :format(x, yy, it[2], x + 14, yy + 9, esc(it[1]))
  end
  return table.concat(p)
end

-- CAS histogram of one class: reals filled grey, each method a step line, threshold dashed.
local function histogram(res, c, bins)
  local sets = { { 'real (held-out)', REAL_COLOR, subset(res.real.cas, res.real.labels, c) } }
  for i, m in ipairs(res.methods) do sets[#sets + 1] = { m.name, PALETTE[(i - 1) % #PALETTE + 1], subset(m.cas, m.labels, c) } end
  local all = {}
  for _, s in ipairs(sets) do for _, v in ipairs(s[3]) do all[#all + 1] = v end end
  if #all == 0 then return '' end
  -- the 0.5 % and 99.5 % quantiles bound the axis, so one outlier does not squash the rest
  local lo, hi = stats.quantile(all, 0.005), stats.quantile(all, 0.995)
  local thr = res.thresholds[c]
  lo, hi = math.min(lo, thr), math.max(hi, thr)
  if hi - lo < 1e-9 then lo, hi = lo - 1, hi + 1 end
  local W, H, L, R, Tp, B = 580, 230, 44, 200, 12, 34
  local pw, ph = W - L - R, H - Tp - B
  local width = (hi - lo) / bins
  local dens, ymax = {}, 0
  for k, s in ipairs(sets) do
    local h = {}
    for b = 1, bins do h[b] = 0 end
    for _, v in ipairs(s[3]) do
      local b = math.floor((v - lo) / width) + 1
      b = math.max(1, math.min(bins, b))
      h[b] = h[b] + 1 / #s[3]
    end
    for b = 1, bins do ymax = math.max(ymax, h[b]) end
    dens[k] = h
  end
  local function X(v) return L + (v - lo) / (hi - lo) * pw end
  local function Y(v) return Tp + ph - v / ymax * ph end
  local p = { svg_open(W, H, 'CAS histogram, class ' .. res.classes[c]) }
  p[#p + 1] = ('<line x1="%d" y1="%d" x2="%d" y2="%d" class="ax"/>'):format(L, Tp + ph, L + pw, Tp + ph)
  for k = 0, 4 do
    local v = lo + (hi - lo) * k / 4
    p[#p + 1] = ('<text x="%.1f" y="%d" class="s" text-anchor="middle">%.2f</text>'):format(X(v), H - B + 16, v)
  end
  p[#p + 1] = ('<text x="%d" y="%d" class="s" text-anchor="middle">CAS</text>'):format(L + pw / 2, H - 4)
  p[#p + 1] = ('<text x="10" y="%d" class="s" transform="rotate(-90 10 %d)" text-anchor="middle">share of images</text>')
    :format(Tp + ph / 2, Tp + ph / 2)
  for b = 1, bins do   -- reals: filled bars
    local v = dens[1][b]
    if v > 0 then
      p[#p + 1] = ('<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s" opacity="0.55"/>')
        :format(X(lo + (b - 1) * width), Y(v), pw / bins, Tp + ph - Y(v), REAL_COLOR)
    end
  end
  for k = 2, #sets do  -- methods: step outlines
    local pts = { ('%.1f,%.1f'):format(X(lo), Y(0)) }
    for b = 1, bins do
      local x0, x1, y = X(lo + (b - 1) * width), X(lo + b * width), Y(dens[k][b])
      pts[#pts + 1] = ('%.1f,%.1f %.1f,%.1f'):format(x0, y, x1, y)
    end
    pts[#pts + 1] = ('%.1f,%.1f'):format(X(hi), Y(0))
    p[#p + 1] = ('<polyline points="%s" fill="none" stroke="%s" stroke-width="1.8"/>'):format(table.concat(pts, ' '), sets[k][2])
  end
  p[#p + 1] = ('<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#c0392b" stroke-width="1.5" stroke-dasharray="5,3"/>')
    :format(X(thr), Tp, X(thr), Tp + ph)
  p[#p + 1] = ('<text x="%.1f" y="%d" class="s" fill="#c0392b">threshold %.2f</text>'):format(X(thr) + 3, Tp + 10, thr)
  local items = {}
  for k, s in ipairs(sets) do
    local name = #s[1] > 20 and (s[1]:sub(1, 19) .. '…') or s[1]
    items[k] = { ('%s (n=%d)'):format(name, #s[3]), s[2] }
  end
  p[#p + 1] = legend(items, W - R + 12, Tp + 4)
  p[#p + 1] = '</svg>'
  return table.concat(p)
end

-- words of s in lines of at most `width` characters (at most 3 lines), as SVG tspans
local function wrap_label(s, x, width)
  local lines, cur = {}, ''
  for w in tostring(s):gmatch('%S+') do
    if cur ~= '' and #cur + 1 + #w > width then lines[#lines + 1] = cur; cur = w
    else cur = cur == '' and w or (cur .. ' ' .. w) end
  end
  lines[#lines + 1] = cur
  local r = {}
  for i = 1, math.min(3, #lines) do
    r[i] = ('<tspan x="%.1f" dy="%s">%s</tspan>'):format(x, i == 1 and '0' or '1.15em', esc(lines[i]))
  end
  return table.concat(r)
end

-- Tail bars with bootstrap CI whiskers, and the reals' expected tail q as a reference line.
local function tail_bars(res, sums)
  local n = #sums
  local W, H, L, B, Tp = 640, 260, 46, 56, 14
  local pw, ph = W - L - 110, H - Tp - B
  local top = res.q or 0
  for _, s in ipairs(sums) do top = math.max(top, s.tail_hi or s.tail) end
  -- a round axis: the smallest step of 5, 10, 20 or 25 points giving at most 6 intervals
  local step = 0.25
  for _, st in ipairs { 0.05, 0.1, 0.2, 0.25 } do if top / st <= 6 then step = st; break end end
  local ymax = math.max(step, math.ceil(top / step - 1e-9) * step)
  local function Y(v) return Tp + ph - v / ymax * ph end
  local p = { svg_open(W, H, 'low-alignment tail per method') }
  for k = 0, math.floor(ymax / step + 0.5) do
    local v = k * step
    p[#p + 1] = ('<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" class="grid"/><text x="%d" y="%.1f" class="s" text-anchor="end">%d%%</text>')
      :format(L, Y(v), L + pw, Y(v), L - 4, Y(v) + 4, math.floor(100 * v + 0.5))
  end
  local slot = pw / math.max(n, 1)
  for i, s in ipairs(sums) do
    local x = L + (i - 1) * slot + slot * 0.2
    local bw = slot * 0.6
    p[#p + 1] = ('<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"/>')
      :format(x, Y(s.tail), bw, Tp + ph - Y(s.tail), PALETTE[(i - 1) % #PALETTE + 1])
    local cx = x + bw / 2
    p[#p + 1] = ('<path d="M%.1f %.1fV%.1fM%.1f %.1fH%.1fM%.1f %.1fH%.1f" stroke="#222" stroke-width="1.3" fill="none"/>')
      :format(cx, Y(s.tail_lo), Y(s.tail_hi), cx - 6, Y(s.tail_lo), cx + 6, cx - 6, Y(s.tail_hi), cx + 6)
    p[#p + 1] = ('<text x="%.1f" y="%.1f" class="s" text-anchor="middle">%s</text>'):format(cx, Y(s.tail_hi) - 4, pct(s.tail))
    p[#p + 1] = ('<text x="%.1f" y="%d" class="s" text-anchor="middle">%s</text>')
      :format(cx, Tp + ph + 14, wrap_label(s.name, cx, math.max(8, math.floor(slot / 6.5))))
  end
  if res.q then
    p[#p + 1] = ('<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#c0392b" stroke-dasharray="5,3"/><text x="%d" y="%.1f" class="s" fill="#c0392b">reals: q = %s</text>')
      :format(L, Y(res.q), L + pw, Y(res.q), L + pw + 6, Y(res.q) + 4, pct(res.q))
  end
  p[#p + 1] = '</svg>'
  return table.concat(p)
end

-- Checklist heat map: items (rows) x methods (columns), share of a class's images satisfying
-- the item (methods[i].audit[class][item], as cas:audit returns).
local function heatmap(res)
  local items = res.checklist_items
  local cols = {}
  if res.real.audit then cols[1] = { 'real', res.real.audit } end
  for _, m in ipairs(res.methods) do if m.audit then cols[#cols + 1] = { m.name, m.audit } end end
  if not items or #items == 0 or #cols == 0 then return nil end
  local rowh, colw, L, Tp = 22, 86, 300, 90
  local W, H = L + colw * #cols + 10, Tp + rowh * #items + 10
  local p = { svg_open(W, H, 'checklist audit heat map') }
  for j, col in ipairs(cols) do
    local x = L + (j - 1) * colw + colw / 2
    p[#p + 1] = ('<text x="%.1f" y="%d" class="s" text-anchor="start" transform="rotate(-25 %.1f %d)">%s</text>')
      :format(x, Tp - 8, x, Tp - 8, esc(col[1]))
  end
  local pos = {}
  for i, it in ipairs(items) do
    pos[it.class] = (pos[it.class] or 0) + 1
    local y = Tp + (i - 1) * rowh
    local label = ('%s: %s'):format(res.classes[it.class] or '?', it.name)
    if #label > 46 then label = label:sub(1, 44) .. '…' end
    p[#p + 1] = ('<text x="%d" y="%.1f" class="s" text-anchor="end">%s</text>'):format(L - 6, y + rowh / 2 + 4, esc(label))
    for j, col in ipairs(cols) do
      local v = col[2][it.class] and col[2][it.class][pos[it.class]]
      local fill, txt = '#eeeeee', '–'
      if v and v == v then
        -- white -> teal, linear in the share
        local r, g, b = math.floor(255 - v * (255 - 0)), math.floor(255 - v * (255 - 121)), math.floor(255 - v * (255 - 107))
        fill, txt = ('#%02x%02x%02x'):format(r, g, b), ('%.0f%%'):format(100 * v)
      end
      local x = L + (j - 1) * colw
      p[#p + 1] = ('<rect x="%d" y="%d" width="%d" height="%d" fill="%s" stroke="#fff"/><text x="%.1f" y="%.1f" class="s" text-anchor="middle" fill="%s">%s</text>')
        :format(x, y, colw, rowh, fill, x + colw / 2, y + rowh / 2 + 4, (v and v > 0.6) and '#fff' or '#222', txt)
    end
  end
  p[#p + 1] = '</svg>'
  return table.concat(p)
end

-- Best and worst images by CAS, per class, for each method that has images.
local function grids(res, per_class)
  local out = {}
  for _, m in ipairs(res.methods) do
    if m.images then
      out[#out + 1] = ('<h3>%s</h3><div class="grids">'):format(esc(m.name))
      for c = 1, #res.classes do
        local idx = {}
        for i, y in ipairs(m.labels) do if y + 1 == c then idx[#idx + 1] = i end end
        table.sort(idx, function(a, b) return m.cas[a] > m.cas[b] end)
        if #idx > 0 then
          local k = math.min(per_class, math.ceil(#idx / 2))
          local function cells(list)
            local r = {}
            for _, i in ipairs(list) do
              local uri = 'data:image/png;base64,' .. M.base64(M.png_bytes(m.images:select(1, i)))
              local bad = m.cas[i] < res.thresholds[c]
              r[#r + 1] = ('<figure%s><img src="%s" alt="image %d"><figcaption>#%d CAS %.2f</figcaption></figure>')
                :format(bad and ' class="bad"' or '', uri, i, i, m.cas[i])
            end
            return table.concat(r)
          end
          local best, worst = {}, {}
          for j = 1, k do best[j] = idx[j]; worst[j] = idx[#idx - j + 1] end
          out[#out + 1] = ('<div class="grid"><div class="cls">%s</div><div class="row"><span>best</span>%s</div><div class="row"><span>worst</span>%s</div></div>')
            :format(esc(res.classes[c]), cells(best), cells(worst))
        end
      end
      out[#out + 1] = '</div>'
    end
  end
  return table.concat(out, '\n')
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
    a[#a + 1] = { ('reduction vs %s: points [CI], relative'):format(esc(res.methods[best].name)), function(_, s)
      if not s.red_pts then return '–' end
      return ('%+.1f %s, %s'):format(s.red_pts, ci(s.red_lo, s.red_hi, function(v) return ('%+.1f'):format(v) end),
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
      return f3(s.ood_mean) .. ' ' .. ci(s.ood_lo, s.ood_hi, f3) .. (s.ood_tail and (', tail ' .. pct(s.ood_tail)) or '')
    end }
  end
  local b = { { 'method', name } }
  if has.down then
    for _, k in ipairs(DOWNSTREAM) do
      b[#b + 1] = { 'downstream ' .. k:gsub('_', ' '), function(m) return num(m.downstream and m.downstream[k], '%.3f') end }
    end
  end
  if has.mem then b[#b + 1] = { 'memorised (cosine / SSIM)', function(_, s) return pct(s.mem_cos) .. ' / ' .. pct(s.mem_ssim) end } end
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
      r[#r + 1] = ('<td>%s</td><td>%s <small>%s</small></td>'):format(num(k.mean, '%.3f'), pct(k.tail), ci(k.tail_lo, k.tail_hi, pct))
    end
    h[#h + 1] = table.concat(r) .. '</tr>'
  end
  h[#h + 1] = '</tbody></table>'
  return table.concat(h)
end

---------------------------------------------------------------- CSV files
local function f6(v) return (v == nil or v ~= v) and '' or ('%.6g'):format(v) end

local function per_image_rows(res, sums)
  local rows = { { 'method', 'index', 'label', 'class', 'cas', 'below_threshold', 'z_prompt', 'z_checklist', 'z_probe',
    'z_fidelity', 'oracle_correct', 'ood_cas' } }
  local function add(name, m, below)
    for i, y in ipairs(m.labels) do
      local d = m.dims or {}
      local oc = m.oracle_correct and m.oracle_correct[i]
      rows[#rows + 1] = { name, i, y, res.classes[y + 1], f6(m.cas[i]), below[i], f6(d.prompt and d.prompt[i]),
        f6(d.checklist and d.checklist[i]), f6(d.probe and d.probe[i]), f6(d.fidelity and d.fidelity[i]),
        oc == nil and '' or ((oc == true or oc == 1) and 1 or 0), f6(m.ood_cas and m.ood_cas[i]) }
    end
  end
  add('real', res.real, below_flags(res.real.cas, res.real.labels, res.thresholds))
  for i, m in ipairs(res.methods) do add(m.name, m, sums[i].below) end
  return rows
end

local function summary_rows(res, sums)
  local rows = { { 'method', 'class', 'n', 'threshold', 'mean_cas', 'mean_cas_lo', 'mean_cas_hi', 'tail', 'tail_lo', 'tail_hi',
    'reduction_pts', 'reduction_pts_lo', 'reduction_pts_hi', 'reduction_rel', 'paired_t_p', 'sign_flip_p', 'oracle_correct',
    'accuracy', 'balanced_accuracy', 'macro_f1', 'auroc', 'memorised_cos', 'memorised_ssim', 'fid', 'kid', 'ood_mean_cas', 'ood_tail' } }
  for i, m in ipairs(res.methods) do
    local s, d = sums[i], m.downstream or {}
    rows[#rows + 1] = { m.name, 'all', s.n, '', f6(s.mean), f6(s.mean_lo), f6(s.mean_hi), f6(s.tail), f6(s.tail_lo), f6(s.tail_hi),
      f6(s.red_pts), f6(s.red_lo), f6(s.red_hi), f6(s.red_rel), f6(s.t_p), f6(s.flip_p), f6(s.oracle),
      f6(d.accuracy), f6(d.balanced_accuracy), f6(d.macro_f1), f6(d.auroc), f6(s.mem_cos), f6(s.mem_ssim), f6(m.fid), f6(m.kid),
      f6(s.ood_mean), f6(s.ood_tail) }
    for c, name in ipairs(res.classes) do
      local k = s.classes[c]
      local r = { m.name, name, k.n, f6(res.thresholds[c]), f6(k.mean), f6(k.mean_lo), f6(k.mean_hi), f6(k.tail), f6(k.tail_lo), f6(k.tail_hi) }
      for j = #r + 1, #rows[1] do r[j] = '' end
      rows[#rows + 1] = r
    end
  end
  return rows
end

---------------------------------------------------------------- the page
local CSS = [[
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#222;margin:0;background:#fafafa}
main{max-width:1180px;margin:0 auto;padding:24px 28px;background:#fff}
h1{font-size:24px;margin:0 0 4px}h2{font-size:18px;margin:28px 0 8px;border-bottom:1px solid #ddd;padding-bottom:4px}
h3{font-size:15px;margin:16px 0 6px}p.meta{color:#666;margin:0 0 12px}
table{border-collapse:collapse;font-size:13px;margin:6px 0}th,td{padding:4px 8px;border-bottom:1px solid #e5e5e5;text-align:right;white-space:nowrap}th{white-space:normal;vertical-align:bottom;max-width:150px}
th:first-child,td:first-child{text-align:left}thead th{background:#f2f4f7;font-weight:600}tbody tr:nth-child(even){background:#fafbfc}
.wrap{overflow-x:auto}.charts{display:flex;flex-wrap:wrap;gap:12px}svg{background:#fff}
svg .s{font-size:11px;fill:#333}svg .ax{stroke:#555}svg .grid{stroke:#eee}
.grids{display:flex;flex-wrap:wrap;gap:8px 36px}.grid{margin:4px 0 10px}.cls{font-weight:600;margin:6px 0 2px}.row{display:flex;align-items:center;gap:6px;flex-wrap:wrap}
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
    if #m.cas ~= #m.labels then argerror(('report: method %s has %d CAS values but %d labels'):format(m.name, #m.cas, #m.labels)) end
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
    ('<h1>%s</h1><p class="meta">%s%d held-out real images; thresholds: q = %s quantile of real CAS per class; CIs: percentile bootstrap over images (%d resamples, seed %d).</p>')
      :format(esc(res.title or 'CRAFT report'), res.subtitle and (esc(res.subtitle) .. ' · ') or '', #res.real.cas,
        res.q and num(res.q, '%.2f') or '?', bo.n, bo.seed),
    res.preamble or '',
    ('<h2>Clinical alignment%s</h2><div class="wrap">'):format(res.cas_label and (': ' .. esc(res.cas_label)) or ''), t_align, '</div>',
    t_quality and ('<h2>Downstream use, memorisation, fidelity</h2><div class="wrap">' .. t_quality .. '</div>') or '',
    '<h2>Low-alignment tail</h2>', tail_bars(res, sums),
    '<h2>Per class</h2><div class="wrap">', class_table(res, sums), '</div>',
    '<h2>CAS distributions</h2><div class="charts">' }
  for c = 1, #res.classes do
    html[#html + 1] = ('<div><h3>%s</h3>%s</div>'):format(esc(res.classes[c]), histogram(res, c, res.bins or 30))
  end
  html[#html + 1] = '</div>'
  local hm = heatmap(res)
  if hm then
    html[#html + 1] = '<h2>Checklist audit</h2><p class="note">Share of each class\'s images that satisfy the item.</p><div class="wrap">' .. hm .. '</div>'
  end
  local g = grids(res, (res.grid or {}).per_class or 4)
  if g ~= '' then
    html[#html + 1] = '<h2>Best and worst images by CAS</h2><p class="note">Red frame: below the class threshold.</p>' .. g
  end
  local study = io.open(dir .. '/../study/index.html')   -- craft study score's page (docs/reader_study.md)
  if study then study:close(); html[#html + 1] = '<p class="note study-link">Blinded reader study: <a href="../study/index.html">results</a></p>' end
  html[#html + 1] = '<!-- craft:study-link -->'
  html[#html + 1] = '<p class="note">Files: per_image.csv, summary.csv.</p></main></body></html>\n'
  local files = { html = dir .. '/index.html', per_image = dir .. '/per_image.csv', summary = dir .. '/summary.csv' }
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
