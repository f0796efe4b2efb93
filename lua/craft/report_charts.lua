-- craft.report_charts: the evaluation report's inline SVG charts (CAS histograms per class
-- against the real images' threshold, tail bars with CIs, the checklist heat map, image grids as
-- base64 PNG data URIs) and the small HTML helpers craft.report shares with them.
local stats = require 'craft.stats'
local bit = require 'bit'

local M = {}
M.PALETTE = { '#4e79a7', '#f28e2b', '#59a14f', '#e15759', '#76b7b2', '#edc948', '#b07aa1', '#9c755f' }
M.REAL_COLOR = '#9aa0a6'
local PALETTE, REAL_COLOR = M.PALETTE, M.REAL_COLOR

---------------------------------------------------------------- small helpers
local B64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/'
-- base64(s): RFC 4648 with '=' padding (craft.report.base64)
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

function M.esc(s)
  return (tostring(s):gsub('[&<>"]', { ['&'] = '&amp;', ['<'] = '&lt;', ['>'] = '&gt;', ['"'] = '&quot;' }))
end
local esc = M.esc
function M.pct(v) return (v == nil or v ~= v) and '–' or ('%.1f%%'):format(100 * v) end
local pct = M.pct
function M.subset(values, labels, c)
  local r = {}
  for i, y in ipairs(labels) do if y + 1 == c then r[#r + 1] = values[i] end end
  return r
end
function M.share(flags)
  if flags == nil or #flags == 0 then return nil end
  local s = 0
  for _, v in ipairs(flags) do if v == true or v == 1 then s = s + 1 end end
  return s / #flags
end

local subset, share = M.subset, M.share

---------------------------------------------------------------- charts
local function svg_open(w, h, label)
  return ('<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" role="img" '
    .. 'aria-label="%s">')
    :format(w, h, w, h, esc(label))
end
local function legend(items, x, y)
  local p = {}
  for i, it in ipairs(items) do
    local yy = y + (i - 1) * 16
    p[#p + 1] = ('<rect x="%d" y="%d" width="10" height="10" fill="%s"/><text x="%d" y="%d" '
      .. 'class="s">%s</text>')
      :format(x, yy, it[2], x + 14, yy + 9, esc(it[1]))
  end
  return table.concat(p)
end

-- CAS histogram of one class: reals filled grey, each method a step line, threshold dashed.
function M.histogram(res, c, bins)
  local sets = { { 'real (held-out)', REAL_COLOR, subset(res.real.cas, res.real.labels, c) } }
  for i, m in ipairs(res.methods) do
    sets[#sets + 1] = { m.name, PALETTE[(i - 1) % #PALETTE + 1], subset(m.cas, m.labels, c) }
  end
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
    p[#p + 1] = ('<text x="%.1f" y="%d" class="s" text-anchor="middle">%.2f</text>'):format(X(v), H - B + 16,
      v)
  end
  p[#p + 1] = ('<text x="%d" y="%d" class="s" text-anchor="middle">CAS</text>'):format(L + pw / 2, H - 4)
  p[#p + 1] = ('<text x="10" y="%d" class="s" transform="rotate(-90 10 %d)" text-anchor="middle">share of '
    .. 'images</text>')
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
    p[#p + 1] = ('<polyline points="%s" fill="none" stroke="%s" stroke-width="1.8"/>')
      :format(table.concat(pts, ' '), sets[k][2])
  end
  p[#p + 1] = ('<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#c0392b" stroke-width="1.5" '
    .. 'stroke-dasharray="5,3"/>')
    :format(X(thr), Tp, X(thr), Tp + ph)
  p[#p + 1] = ('<text x="%.1f" y="%d" class="s" fill="#c0392b">threshold %.2f</text>'):format(X(thr) + 3,
    Tp + 10, thr)
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
function M.tail_bars(res, sums)
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
    p[#p + 1] = ('<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" class="grid"/><text x="%d" y="%.1f" class="s" '
      .. 'text-anchor="end">%d%%</text>')
      :format(L, Y(v), L + pw, Y(v), L - 4, Y(v) + 4, math.floor(100 * v + 0.5))
  end
  local slot = pw / math.max(n, 1)
  for i, s in ipairs(sums) do
    local x = L + (i - 1) * slot + slot * 0.2
    local bw = slot * 0.6
    p[#p + 1] = ('<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"/>')
      :format(x, Y(s.tail), bw, Tp + ph - Y(s.tail), PALETTE[(i - 1) % #PALETTE + 1])
    local cx = x + bw / 2
    p[#p + 1] = ('<path d="M%.1f %.1fV%.1fM%.1f %.1fH%.1fM%.1f %.1fH%.1f" stroke="#222" stroke-width="1.3" '
      .. 'fill="none"/>')
      :format(cx, Y(s.tail_lo), Y(s.tail_hi), cx - 6, Y(s.tail_lo), cx + 6, cx - 6, Y(s.tail_hi), cx + 6)
    p[#p + 1] = ('<text x="%.1f" y="%.1f" class="s" text-anchor="middle">%s</text>'):format(cx,
      Y(s.tail_hi) - 4, pct(s.tail))
    p[#p + 1] = ('<text x="%.1f" y="%d" class="s" text-anchor="middle">%s</text>')
      :format(cx, Tp + ph + 14, wrap_label(s.name, cx, math.max(8, math.floor(slot / 6.5))))
  end
  if res.q then
    p[#p + 1] = ('<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#c0392b" stroke-dasharray="5,3"/><text '
      .. 'x="%d" y="%.1f" class="s" fill="#c0392b">reals: q = %s</text>')
      :format(L, Y(res.q), L + pw, Y(res.q), L + pw + 6, Y(res.q) + 4, pct(res.q))
  end
  p[#p + 1] = '</svg>'
  return table.concat(p)
end

-- Checklist heat map: items (rows) x methods (columns), share of a class's images satisfying
-- the item (methods[i].audit[class][item], as cas:audit returns).
function M.heatmap(res)
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
    p[#p + 1] = ('<text x="%.1f" y="%d" class="s" text-anchor="start" transform="rotate(-25 %.1f '
      .. '%d)">%s</text>')
      :format(x, Tp - 8, x, Tp - 8, esc(col[1]))
  end
  local pos = {}
  for i, it in ipairs(items) do
    pos[it.class] = (pos[it.class] or 0) + 1
    local y = Tp + (i - 1) * rowh
    local label = ('%s: %s'):format(res.classes[it.class] or '?', it.name)
    if #label > 46 then label = label:sub(1, 44) .. '…' end
    p[#p + 1] = ('<text x="%d" y="%.1f" class="s" text-anchor="end">%s</text>'):format(L - 6,
      y + rowh / 2 + 4, esc(label))
    for j, col in ipairs(cols) do
      local v = col[2][it.class] and col[2][it.class][pos[it.class]]
      local fill, txt = '#eeeeee', '–'
      if v and v == v then
        -- white -> teal, linear in the share
        local r, g, b = math.floor(255 - v * (255 - 0)), math.floor(255 - v * (255 - 121)),
          math.floor(255 - v * (255 - 107))
        fill, txt = ('#%02x%02x%02x'):format(r, g, b), ('%.0f%%'):format(100 * v)
      end
      local x = L + (j - 1) * colw
      p[#p + 1] = ('<rect x="%d" y="%d" width="%d" height="%d" fill="%s" stroke="#fff"/><text x="%.1f" '
        .. 'y="%.1f" class="s" text-anchor="middle" fill="%s">%s</text>')
        :format(x, y, colw, rowh, fill, x + colw / 2, y + rowh / 2 + 4, (v and v > 0.6) and '#fff' or '#222',
          txt)
    end
  end
  p[#p + 1] = '</svg>'
  return table.concat(p)
end

-- Best and worst images by CAS, per class, for each method that has images.
function M.grids(res, per_class)
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
              local png = require('craft.io').png_bytes(m.images:select(1, i))
              local uri = 'data:image/png;base64,' .. M.base64(png)
              local bad = m.cas[i] < res.thresholds[c]
              r[#r + 1] = ('<figure%s><img src="%s" alt="image %d"><figcaption>#%d CAS '
                .. '%.2f</figcaption></figure>')
                :format(bad and ' class="bad"' or '', uri, i, i, m.cas[i])
            end
            return table.concat(r)
          end
          local best, worst = {}, {}
          for j = 1, k do best[j] = idx[j]; worst[j] = idx[#idx - j + 1] end
          out[#out + 1] = ('<div class="grid"><div class="cls">%s</div><div '
            .. 'class="row"><span>best</span>%s</div><div class="row"><span>worst</span>%s</div></div>')
            :format(esc(res.classes[c]), cells(best), cells(worst))
        end
      end
      out[#out + 1] = '</div>'
    end
  end
  return table.concat(out, '\n')
end

return M
