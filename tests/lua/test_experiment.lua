-- The main job end to end in its seconds-long smoke form: the quickstart recipe adapts the
-- built-in generator with every method for two training seeds (in worker processes), grades the
-- models with the judges, and writes the table, the report, summary.csv (the headline columns in
-- order), the samples and run.json; the same numbers come out with one worker; the PneumoniaMNIST
-- recipe does the same on real data.
local T = {}

local function run_recipe(path, extra)
  local out = os.tmpname()
  os.remove(out)
  local saved = arg
  arg = { [0] = path, '--smoke', '--out', out }
  for _, a in ipairs(extra or {}) do arg[#arg + 1] = a end
  local ok, err = pcall(dofile, path)
  arg = saved
  return ok, err, out
end

local function read(p) local f = io.open(p) if not f then return nil end local s = f:read('*a') f:close() return s end
local function lines(s) local r = {} for l in (s or ''):gmatch('[^\n]+') do r[#r + 1] = l end return r end

local METHODS = { 'Base + enriched', 'TI + LoRA', 'TI + LoRA (continued)', 'DPO', 'CRAFT (reward 0)', 'CRAFT' }

function T.quickstart_smoke_writes_table_and_report(t)
  local ok, err, out = run_recipe('recipes/quickstart.lua', { '--jobs', '2' })
  t.ok(ok, 'quickstart smoke ran: ' .. tostring(err))
  local tab = read(out .. '/table.txt') or ''
  for _, m in ipairs(METHODS) do t.ok(tab:find('\n' .. m .. ' ', 1, true), 'table has ' .. m) end
  t.ok(tab:find('judge tail', 1, true) and tab:find('rew.tail', 1, true), 'judge and reward columns')
  t.ok(tab:find('few_shot 48, reward_fit 48, calibration 48, judge_fit 48, judge_calibration 48, test 48', 1, true),
    'split sizes in the header')
  t.ok(tab:find('held-out preference accuracy', 1, true), 'DPO held-out accuracy reported')
  local html = read(out .. '/report/index.html') or ''
  t.ok(#html > 10000 and html:find('Headline: the judges', 1, true), 'report written with the headline')
  t.ok(html:find("The oracle's verdicts", 1, true), 'oracle confusion matrices')
  local sum = lines(read(out .. '/report/summary.csv'))
  local head = sum[1] or ''
  t.ok(head:find('^method,judge_tail,judge_tail_lo,judge_tail_hi,oracle_correct,oracle_correct_lo,oracle_correct_hi,oracle_undetermined,downstream_bal_acc,downstream_bal_acc_real_only,memo_feature,memo_ssim,fid_judge,reward_cas,reward_tail'),
    'summary.csv headline columns in order: ' .. head)
  t.ok(head:find('cas_oracle_spearman,judge_oracle_spearman', 1, true), 'Spearman columns')
  t.eq(#sum, 1 + #METHODS, 'one summary row per method')
  -- per-image rows: header + the test reals (3 x 16) + 6 methods x 3 classes x 4 images x 2 seeds
  t.eq(#lines(read(out .. '/report/per_image.csv')), 1 + 48 + 6 * 3 * 4 * 2, 'per-image rows')
  t.eq(#lines(read(out .. '/samples/index.csv')), 1 + 48 + 6 * 3 * 4 * 2, 'sample index rows')
  t.ok(read(out .. '/run.json'), 'run.json written')
  for _, k in ipairs { 'ti_lora/s0', 'craft/s1', 'dpo/s0' } do t.ok(read(out .. '/' .. k .. '/done.json'), k .. ' finished') end
  -- one worker gives the same numbers (every job runs on one thread either way)
  local ok1, err1, out1 = run_recipe('recipes/quickstart.lua', { '--jobs', '1' })
  t.ok(ok1, 'one-worker run: ' .. tostring(err1))
  -- every column but the wall time
  local function without_time(text)
    local ls = lines(text)
    local col
    local k = 0
    for name in (ls[1] or ''):gmatch('[^,]+') do k = k + 1; if name == 'wall_minutes' then col = k end end
    local r = {}
    for i, l in ipairs(ls) do
      local cells, j = {}, 0
      for c in (l .. ','):gmatch('([^,]*),') do j = j + 1; if j ~= col then cells[#cells + 1] = c end end
      r[i] = table.concat(cells, ',')
    end
    return table.concat(r, '\n'), col
  end
  local a, col = without_time(read(out .. '/report/summary.csv'))
  local b = without_time(read(out1 .. '/report/summary.csv'))
  t.ok(col ~= nil, 'summary.csv has wall_minutes')
  t.ok(#a > 100 and a == b, 'summary.csv identical with 1 and 2 workers (but the wall time)')
  os.execute("rm -rf '" .. out .. "' '" .. out1 .. "'")
end

function T.pneumoniamnist_smoke(t)
  local npz = (os.getenv('CRAFT_SHARED_DATA') or '../shared/data') .. '/pneumoniamnist/pneumoniamnist.npz'
  local f = io.open(npz)
  if not f then return t.skip('no ' .. npz) end
  f:close()
  local ok, err, out = run_recipe('recipes/pneumoniamnist.lua', { '--data', npz, '--jobs', '2' })
  t.ok(ok, 'pneumoniamnist smoke ran: ' .. tostring(err))
  local tab = read(out .. '/table.txt') or ''
  t.ok(tab:find('CRAFT', 1, true) and tab:find('resnet:models/pneumoniamnist/resnet', 1, true), 'table written, the set\'s judge')
  os.execute("rm -rf '" .. out .. "'")
end

-- A real set whose stand-in models have not been made is refused before any data is read, with
-- one line saying how to make them
function T.missing_standins_are_one_clear_line(t)
  local ok, err = run_recipe('recipes/ham10000.lua', { '--models', '/nonexistent-craft-models' })
  t.ok(not ok, 'refused')
  t.ok(tostring(err):find('no model at /nonexistent-craft-models/clip', 1, true)
    and tostring(err):find('recipes/pretrain/real_standins.lua set=ham10000', 1, true), 'the message says how: ' .. tostring(err))
end

-- One experiment per run folder: a second is refused while the first runs; a stale lock (its
-- process gone) is taken over, and the lock goes when the experiment ends
function T.one_experiment_per_folder(t)
  local jobs = require 'craft.experiment.jobs'
  local dir = os.tmpname()
  os.remove(dir)
  os.execute("mkdir -p '" .. dir .. "'")
  local f = io.open(dir .. '/.experiment.lock', 'w'); f:write('1\n'); f:close()   -- pid 1 is always alive
  t.raises(function() jobs.lock(dir) end, 'is in use by another experiment (pid 1)')
  f = io.open(dir .. '/.experiment.lock', 'w'); f:write('999999999\n'); f:close()  -- no such process
  local release = jobs.lock(dir)
  t.ok(io.open(dir .. '/.experiment.lock') ~= nil, 'stale lock taken over')
  release()
  t.ok(io.open(dir .. '/.experiment.lock') == nil, 'released')
  os.execute("rm -rf '" .. dir .. "'")
end

return T
