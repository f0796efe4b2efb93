-- craft.report from synthetic results: the files exist, the page is self-contained (no
-- script, images inline) and carries the expected numbers; CSVs read back. With
-- CRAFT_REPORT_DIR set (tests/report_render.sh) the report is left there for rendering.
local craft = require 'craft'
local report = require 'craft.report'
local ffi, C = craft.ffi, craft.C
local T = {}

local function read(path)
  local f = io.open(path, 'rb')
  if not f then return nil end
  local s = f:read('*a')
  f:close()
  return s
end

local function read_csv(path)
  local p = ffi.new('craft_csv*[1]')
  assert(C.craft_csv_read_file(path, 1, p) == 0, ffi.string(C.craft_last_error()))
  local csv = ffi.gc(p[0], C.craft_csv_free)
  local rows, header = {}, {}
  for c = 0, C.craft_csv_cols(csv) - 1 do header[c + 1] = ffi.string(C.craft_csv_header(csv, c)) end
  for r = 0, C.craft_csv_rows(csv) - 1 do
    local row = {}
    for c = 0, #header - 1 do row[header[c + 1]] = ffi.string(C.craft_csv_cell(csv, r, c)) end
    rows[#rows + 1] = row
  end
  return rows, header
end

-- Two classes, thresholds 0 and -0.5; 40 images per method with known shares below.
local function synthetic()
  craft.manual_seed(4)
  local classes = { 'normal', 'cardiomegaly' }
  local function method(name, n_below, o)
    local cas, labels = {}, {}
    for i = 1, 40 do
      labels[i] = (i - 1) % 2
      local thr = labels[i] == 0 and 0 or -0.5
      -- the first n_below images fall below their class threshold
      cas[i] = i <= n_below and thr - 0.1 - 0.05 * (i % 7) or thr + 0.1 + 0.07 * (i % 9)
    end
    local m = { name = name, cas = cas, labels = labels, images = craft.rand({ 40, 3, 16, 16 }),
      dims = { prompt = cas, checklist = cas, probe = cas, fidelity = cas },
      audit = { { 0.9, 0.5 }, { 0.25, 0.75, 0.6 } } }
    for k, v in pairs(o or {}) do m[k] = v end
    return m
  end
  local real = { cas = {}, labels = {}, audit = { { 0.95, 0.9 }, { 0.85, 0.9, 0.8 } } }
  for i = 1, 60 do real.labels[i] = (i - 1) % 2; real.cas[i] = math.sin(i) * 1.2 end
  return {
    title = 'CRAFT report (synthetic)', subtitle = 'test data', classes = classes, thresholds = { 0, -0.5 }, q = 0.10,
    real = real,
    checklist_items = { { class = 1, name = 'normal cardiothoracic ratio' }, { class = 1, name = 'clear costophrenic angles' },
      { class = 2, name = 'enlarged cardiac silhouette' }, { class = 2, name = 'cardiothoracic ratio above 0.5' },
      { class = 2, name = 'widened mediastinum <b>' } },
    methods = {
      method('Base + enriched prompts', 20, { baseline = true, seed_tails = { 0.5, 0.48, 0.55, 0.47 }, fid = 41.5, kid = 0.0312 }),
      method('TI + LoRA', 16, { baseline = true, seed_tails = { 0.42, 0.4, 0.39, 0.41 }, fid = 35.25, kid = 0.0251 }),
      method('CRAFT', 10, { seed_tails = { 0.26, 0.24, 0.25, 0.27 }, fid = 30.125, kid = 0.0199,
        oracle_correct = (function() local r = {}; for i = 1, 40 do r[i] = i % 4 ~= 0 end; return r end)(),
        downstream = { accuracy = 0.8125, balanced_accuracy = 0.79, macro_f1 = 0.7777, auroc = 0.9031 },
        memorisation = { cos = { share = 0.025 }, ssim = { share = 0 } }, ood_cas = (function()
          local r = {}; for i = 1, 40 do r[i] = 0.1 * (i % 5) - 0.1 end; return r end)() }),
    },
    bootstrap = { n = 300, seed = 1 },
    grid = { per_class = 3 },
  }
end

function T.base64_vectors(t)
  t.eq(report.base64(''), '')
  t.eq(report.base64('f'), 'Zg==')
  t.eq(report.base64('fo'), 'Zm8=')
  t.eq(report.base64('foo'), 'Zm9v')
  t.eq(report.base64('foobar'), 'Zm9vYmFy')
  t.eq(report.base64('\0\255\128'), 'AP+A')
  local png = report.png_bytes(craft.rand({ 3, 4, 5 }))
  t.eq(png:sub(1, 8), '\137PNG\r\n\26\n', 'PNG signature')
end

function T.report_files_and_numbers(t)
  local tmp = os.tmpname()
  os.remove(tmp)
  local dir = os.getenv('CRAFT_REPORT_DIR') or (tmp .. '_report')
  local res = synthetic()
  local out = report.write(dir, res)
  local html = read(dir .. '/index.html')
  t.ok(html and #html > 10000, 'index.html written')
  t.ok(not html:find('<script', 1, true), 'no JavaScript')
  t.ok(not html:find('src="http', 1, true) and not html:find('href="http', 1, true), 'no external resources')
  local _, nimg = html:gsub('data:image/png;base64,', '')
  t.eq(nimg, 3 * 2 * 2 * 3, 'best and worst 3 per class per method, inline')
  local _, nsvg = html:gsub('<svg ', '')
  t.eq(nsvg, 1 + 2 + 1, 'tail bars, one histogram per class, heat map')
  -- tails 50 %, 40 %, 25 %; the strongest baseline is TI + LoRA (40 %): CRAFT is 15 points,
  -- 37.5 % relative, better
  t.near(out.methods[1].tail, 0.5, 1e-12); t.near(out.methods[3].tail, 0.25, 1e-12)
  t.eq(out.best_baseline, 2)
  t.near(out.methods[3].red_pts, 15, 1e-9)
  t.near(out.methods[3].red_rel, 0.375, 1e-12)
  t.ok(html:find('25.0%', 1, true) and html:find('+15.0', 1, true) and html:find('37.5%', 1, true), 'tail and reduction on the page')
  t.ok(html:find('reduction vs TI + LoRA', 1, true), 'names the strongest baseline')
  t.ok(html:find('75.0%', 1, true), 'oracle correctness (30 of 40)')
  t.ok(html:find('<td>0.778</td>', 1, true), 'downstream macro-F1')
  t.ok(html:find('30.125', 1, true) or html:find('30.12', 1, true), 'FID')
  t.ok(html:find('widened mediastinum &lt;b&gt;', 1, true), 'item names are escaped')
  t.ok(html:find('threshold -0.50', 1, true), 'threshold drawn on the histogram')
  -- the paired tests across seeds ran: 4 seeds, CRAFT always lower -> exact sign-flip p = 2/16
  t.near(out.methods[3].flip_p, 0.125, 1e-12)
  t.ok(out.methods[3].t_p < 0.001, 'paired t p')
  -- CSVs
  local rows = read_csv(dir .. '/per_image.csv')
  t.eq(#rows, 60 + 3 * 40, 'per_image rows: reals and every method')
  t.eq(rows[61].method, 'Base + enriched prompts')
  t.eq(rows[61].below_threshold, '1')
  t.eq(rows[61].class, 'normal')
  local s = read_csv(dir .. '/summary.csv')
  t.eq(#s, 3 * 3, 'summary: per method, all + each class')
  local crafts
  for _, r in ipairs(s) do if r.method == 'CRAFT' and r.class == 'all' then crafts = r end end
  t.near(tonumber(crafts.tail), 0.25, 1e-9)
  t.near(tonumber(crafts.reduction_pts), 15, 1e-6)
  t.near(tonumber(crafts.fid), 30.125, 1e-9)
  t.near(tonumber(crafts.memorised_cos), 0.025, 1e-9)
  t.ok(tonumber(crafts.tail_lo) < 0.25 and tonumber(crafts.tail_hi) > 0.25, 'tail CI brackets the tail')
  for _, r in ipairs(s) do
    if r.method == 'CRAFT' and r.class == 'cardiomegaly' then t.near(tonumber(r.threshold), -0.5, 1e-12) end
  end
  if not os.getenv('CRAFT_REPORT_DIR') then os.execute(('rm -rf %q'):format(dir)) end
end

function T.report_rejects_bad_input(t)
  local res = synthetic()
  res.methods[1].labels = { 0, 1 }
  local tmp = os.tmpname()
  os.remove(tmp)
  t.raises(function() report.write(tmp .. '_bad', res) end, 'has 40 CAS values but 2 labels')
  t.eq(io.open(tmp .. '_bad/index.html'), nil, 'nothing written')
end

return T
