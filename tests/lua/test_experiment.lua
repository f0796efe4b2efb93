-- The main job end to end in its seconds-long smoke form: the quickstart recipe adapts the
-- built-in generator with the four methods, evaluates them and writes the table and the report;
-- the PneumoniaMNIST recipe does the same on real data.
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

function T.quickstart_smoke_writes_table_and_report(t)
  local ok, err, out = run_recipe('recipes/quickstart.lua')
  t.ok(ok, 'quickstart smoke ran: ' .. tostring(err))
  local tab = read(out .. '/table.txt') or ''
  for _, m in ipairs { 'Base + enriched', 'TI + LoRA', 'DPO', 'CRAFT' } do
    t.ok(tab:find(m, 1, true), 'table has ' .. m)
  end
  local html = read(out .. '/report/index.html') or ''
  t.ok(#html > 10000 and html:find('Clinical alignment', 1, true), 'report written')
  local csv = read(out .. '/report/per_image.csv') or ''
  local rows = 0
  for _ in csv:gmatch('\n') do rows = rows + 1 end
  -- header + 4 methods x 3 classes x 4 images x 2 seeds + the 3 x 16 held-out reals
  t.eq(rows, 1 + 4 * 3 * 4 * 2 + 3 * 16, 'per-image rows')
  os.execute("rm -rf '" .. out .. "'")
end

function T.pneumoniamnist_smoke(t)
  local npz = (os.getenv('CRAFT_SHARED_DATA') or '../shared/data') .. '/pneumoniamnist/pneumoniamnist.npz'
  local f = io.open(npz)
  if not f then return t.skip('no ' .. npz) end
  f:close()
  local ok, err, out = run_recipe('recipes/pneumoniamnist.lua', { '--data', npz })
  t.ok(ok, 'pneumoniamnist smoke ran: ' .. tostring(err))
  t.ok((read(out .. '/table.txt') or ''):find('CRAFT', 1, true), 'table written')
  os.execute("rm -rf '" .. out .. "'")
end

return T
