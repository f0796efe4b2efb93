-- craft.study.score: `craft study score`: un-blinds the ratings with the key, analyses them
-- (craft.study.analysis) and writes DIR/index.html (craft.study.score_page), CSVs and
-- summary.json; links the page from the run's experiment report when there is one.
--
--   score.run{key = 'PACKET/key.json', ratings = {'a.json', ...}, out = DIR, boot = 2000,
--             boot_seed = 0, quiet = false} -> {ok, out, result, problems}
local io_ = require 'craft.io'
local ratings = require 'craft.study.ratings'
local A = require 'craft.study.analysis'
local stats = require 'craft.stats'

local M = {}

local function fail(msg) error(msg, 0) end
local function shq(s) return "'" .. s:gsub("'", "'\\''") .. "'" end
local function exists(path) local f = io.open(path); if f then f:close() end; return f ~= nil end
local function abspath(dir)
  local p = io.popen('cd ' .. shq(dir) .. ' 2>/dev/null && pwd -P')
  local s = p and p:read('*l')
  if p then p:close() end
  return s
end

-- counts that the shares of analysis.summarise are over
local function counts(blocks, key, conds)
  local pairs_, images, ticks = {}, {}, {}
  for _, b in ipairs(blocks) do
    local n = {}
    for _, it in ipairs(b.items) do
      n[it.cond] = (n[it.cond] or 0) + 1
      images[it.cond] = (images[it.cond] or 0) + 1
      local ck = b.class .. ':' .. it.cond
      local acc = ticks[ck]
      if not acc then acc = { n = 0, items = {} }; ticks[ck] = acc end
      acc.n = acc.n + 1
      for _, k in ipairs(it.ticks) do acc.items[k] = (acc.items[k] or 0) + 1 end
    end
    for i, c in ipairs(conds) do
      for j = i + 1, #conds do
        local d = conds[j]
        local k = c .. ':' .. d
        pairs_[k] = (pairs_[k] or 0) + (n[c] or 0) * (n[d] or 0)
      end
    end
  end
  return { pairs = function(c, d) return pairs_[c .. ':' .. d] or pairs_[d .. ':' .. c] or 0 end, images = images, ticks = ticks }
end

function M.analyse(key, loaded, o)
  local conds, names = {}, {}
  for i, c in ipairs(key.conditions) do conds[i] = c.key; names[c.key] = c.name end
  local blocks = loaded.blocks
  local function fn(bl) return A.summarise(bl, conds) end
  local res = {
    conds = conds, names = names, est = fn(blocks),
    ci = A.bootstrap(blocks, fn, { n = o.boot or 2000, seed = o.boot_seed or 0 }),
    friedman = A.friedman_blocks(blocks, conds), agreement = A.agreement(blocks, conds),
    position = A.position(blocks), counts = counts(blocks, key, conds), per_rater = {},
    boot = { n = o.boot or 2000, seed = o.boot_seed or 0 }, blocks = #blocks,
  }
  local by = {}
  for _, b in ipairs(blocks) do
    by[b.rater] = by[b.rater] or {}
    table.insert(by[b.rater], b)
  end
  for _, r in ipairs(loaded.raters) do
    res.per_rater[#res.per_rater + 1] = { name = r.name, file = r.file, trials = r.trials,
      median_seconds = #r.seconds > 0 and stats.median(r.seconds) or 0 / 0, est = A.summarise(by[r.name] or {}, conds) }
  end
  return res
end

local function f6(v) if v == nil or v ~= v then return '' end; return ('%.6g'):format(v) end

local function write_csvs(dir, key, loaded, res)
  local conds, names, est, ci = res.conds, res.names, res.est, res.ci
  local function lohi(name) local c = ci[name]; return c and f6(c[1]) or '', c and f6(c[2]) or '' end
  local rows = { { 'condition', 'name', 'images', 'mean_rank', 'mean_rank_lo', 'mean_rank_hi', 'first_share', 'first_lo',
    'first_hi', 'not_diagnostic_share', 'not_diagnostic_lo', 'not_diagnostic_hi', 'tick_rate', 'tick_lo', 'tick_hi' } }
  for _, c in ipairs(conds) do
    local r = { c, names[c], res.counts.images[c] or 0 }
    for _, s in ipairs { 'mean_rank', 'first', 'flag', 'tick' } do
      local lo, hi = lohi(s .. ':' .. c)
      r[#r + 1], r[#r + 2], r[#r + 3] = f6(est[s .. ':' .. c]), lo, hi
    end
    rows[#rows + 1] = r
  end
  io_.write_csv(dir .. '/methods.csv', rows)
  rows = { { 'a', 'b', 'a_name', 'b_name', 'pairs', 'a_above_b', 'lo', 'hi' } }
  for _, a in ipairs(conds) do
    for _, b in ipairs(conds) do
      if a ~= b then
        local lo, hi = lohi('win:' .. a .. ':' .. b)
        rows[#rows + 1] = { a, b, names[a], names[b], res.counts.pairs(a, b), f6(est['win:' .. a .. ':' .. b]), lo, hi }
      end
    end
  end
  io_.write_csv(dir .. '/pairwise.csv', rows)
  rows = { { 'class', 'condition', 'name', 'images', 'mean_rank', 'lo', 'hi' } }
  for ci_, cname in ipairs(key.classes) do
    for _, c in ipairs(conds) do
      local k = (ci_ - 1) .. ':' .. c
      local lo, hi = lohi('class_rank:' .. k)
      local t = res.counts.ticks[k]
      rows[#rows + 1] = { cname, c, names[c], t and t.n or 0, f6(est['class_rank:' .. k]), lo, hi }
    end
  end
  io_.write_csv(dir .. '/per_class.csv', rows)
  rows = { { 'class', 'item', 'text', 'condition', 'name', 'images', 'ticked', 'rate' } }
  for ci_, cname in ipairs(key.classes) do
    for k, text in ipairs((key.checklists or {})[ci_] or {}) do
      for _, c in ipairs(conds) do
        local t = res.counts.ticks[(ci_ - 1) .. ':' .. c]
        local n, ticked = t and t.n or 0, t and t.items[k - 1] or 0
        rows[#rows + 1] = { cname, k - 1, text, c, names[c], n, ticked, n > 0 and f6(ticked / n) or '' }
      end
    end
  end
  io_.write_csv(dir .. '/checklist.csv', rows)
  local head = { 'rater', 'file', 'trials', 'median_seconds' }
  for _, c in ipairs(conds) do head[#head + 1] = 'mean_rank_' .. c end
  rows = { head }
  for _, r in ipairs(res.per_rater) do
    local row = { r.name, r.file, r.trials, f6(r.median_seconds) }
    for _, c in ipairs(conds) do row[#row + 1] = f6(r.est['mean_rank:' .. c]) end
    rows[#rows + 1] = row
  end
  io_.write_csv(dir .. '/raters.csv', rows)
  rows = { { 'rater', 'trial', 'class', 'image', 'condition', 'name', 'file', 'rank', 'position', 'ticked_items', 'not_diagnostic', 'seconds' } }
  for _, b in ipairs(loaded.blocks) do
    for _, it in ipairs(b.items) do
      local ticks = {}
      for i, k in ipairs(it.ticks) do ticks[i] = ('%d'):format(k) end
      table.sort(ticks)
      rows[#rows + 1] = { b.rater, b.trial, key.classes[b.class + 1], it.id, it.cond, names[it.cond], key.by_image[it.id].file,
        it.rank, it.position or '', table.concat(ticks, ';'), it.flag and 1 or 0, f6(b.ms / 1000) }
    end
  end
  io_.write_csv(dir .. '/ratings_long.csv', rows)
  local fr, ag = res.friedman, res.agreement
  io_.write_csv(dir .. '/tests.csv', {
    { 'test', 'statistic', 'df', 'p', 'n', 'k', 'w' },
    { 'friedman', f6(fr.statistic), fr.df, f6(fr.p), fr.n, fr.k, '' },
    { 'kendall_w_per_trial_mean', '', '', '', ag.per_trial.n, '', f6(ag.per_trial.w) },
    { 'kendall_w_methods', f6(ag.methods.chi2), ag.methods.df, f6(ag.methods.p), ag.methods.m, ag.methods.k, f6(ag.methods.w) },
    { 'real_below_synthetic', '', '', '', '', '', f6(est.real_below) },
  })
  rows = { { 'file', 'status', 'rater', 'trials', 'note' } }
  for _, e in ipairs(loaded.files) do rows[#rows + 1] = { e.path, e.status, e.rater or '', e.trials or '', e.note or '' } end
  io_.write_csv(dir .. '/files.csv', rows)
end

local function nan_free(v)
  if type(v) == 'number' then return v == v and v or io_.null end
  if type(v) ~= 'table' then return v end
  local t = {}
  for k, x in pairs(v) do t[k] = nan_free(x) end
  return setmetatable(t, getmetatable(v))
end

local LINK_MARK = '<!-- craft:study-link -->'
-- link(report_html, href, text) -> ok, why: puts (or refreshes) the study link at the marker.
function M.link(path, href, text)
  local f = io.open(path, 'rb')
  if not f then return false, 'no report' end
  local html = f:read('*a')
  f:close()
  local p = ('<p class="note study-link">Blinded reader study: <a href="%s">%s</a></p>'):format(href, text)
  local n
  html, n = html:gsub('<p class="note study%-link">.-</p>', function() return p end)
  if n == 0 then
    local i, j = html:find(LINK_MARK, 1, true)
    if not i then return false, path .. ' has no ' .. LINK_MARK .. ' marker (a report from an older craft); not linked' end
    html = html:sub(1, i - 1) .. p .. '\n' .. html:sub(i)
  end
  local w = assert(io.open(path .. '.tmp', 'wb'))
  w:write(html)
  w:close()
  assert(os.rename(path .. '.tmp', path))
  return true
end

function M.run(o)
  local key = ratings.read_key(o.key)
  local run_dir = type(key.run) == 'table' and type(key.run.dir) == 'string' and key.run.dir or nil
  local out = o.out
  if not out then
    if not (run_dir and exists(run_dir .. '/run.json')) then
      fail('study score: --out DIR is needed (the key\'s run directory is not here)')
    end
    out = run_dir .. '/study'
  end
  local loaded = ratings.load(key, o.ratings)
  local say = o.quiet and function() end or function(s) io.stderr:write(s, '\n') end
  for _, p in ipairs(loaded.problems) do say('craft study score: ' .. p) end
  if #loaded.blocks == 0 then
    fail(('study score: no usable ratings in %d file(s)'):format(#o.ratings))
  end
  local res = M.analyse(key, loaded, o)
  os.execute('mkdir -p ' .. shq(out))
  write_csvs(out, key, loaded, res)
  local page = require('craft.study.score_page')
  local html = page.render(key, loaded, res)
  local f = assert(io.open(out .. '/index.html.tmp', 'wb'))
  f:write(html)
  f:close()
  assert(os.rename(out .. '/index.html.tmp', out .. '/index.html'))
  io_.write_json(out .. '/summary.json', nan_free {
    packet = key.packet, raters = #loaded.raters, rankings = #loaded.blocks, conditions = key.conditions,
    estimates = res.est, ci = res.ci, friedman = { statistic = res.friedman.statistic, df = res.friedman.df, p = res.friedman.p,
      n = res.friedman.n, k = res.friedman.k }, kendall_w = res.agreement, bootstrap = res.boot,
    problems = io_.array(loaded.problems),
  })
  -- the experiment report's link
  local linked
  if run_dir and exists(run_dir .. '/report/index.html') then
    local abs_out, abs_run = abspath(out), abspath(run_dir)
    local href
    if abs_out and abs_run and abs_out:sub(1, #abs_run + 1) == abs_run .. '/' then
      href = '../' .. abs_out:sub(#abs_run + 2) .. '/index.html'
    else
      href = 'file://' .. (abs_out or out) .. '/index.html'
    end
    local ok, why = M.link(run_dir .. '/report/index.html', href,
      ('%d readers, %d rankings'):format(#loaded.raters, #loaded.blocks))
    if ok then linked = run_dir .. '/report/index.html' else say('craft study score: ' .. why) end
  end
  if not o.quiet then
    print(('%d readers, %d rankings of %d trials; Friedman chi2 = %.3f (df %d), p = %.3g; written to %s/index.html%s'):format(
      #loaded.raters, #loaded.blocks, #key.trials, res.friedman.statistic, res.friedman.df, res.friedman.p, out,
      linked and (' (linked from ' .. linked .. ')') or ''))
  end
  return { ok = true, out = out, result = res, problems = loaded.problems, loaded = loaded, key = key }
end

return M
