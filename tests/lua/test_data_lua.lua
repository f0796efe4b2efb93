-- Data sets from Lua on the real data in ../shared/data: counts per split and class as their
-- READMEs give them, the loader's determinism, and clear errors for bad rows.
local craft = require 'craft'
local data = craft.data
local T = {}

local root = os.getenv('CRAFT_SHARED_DATA') or '../shared/data'
local function have(p) local f = io.open(p) if f then f:close() return true end return false end

function T.pneumoniamnist_counts(t)
  local path = root .. '/pneumoniamnist/pneumoniamnist.npz'
  if not have(path) then return t.skip('no ' .. path) end
  local want = { train = { 1214, 3494 }, val = { 135, 389 }, test = { 234, 390 } }
  for split, w in pairs(want) do
    local ds = data.medmnist(path, { split = split })
    local c = data.class_counts(ds)
    t.eq(c.normal, w[1], split .. ' normal')
    t.eq(c.pneumonia, w[2], split .. ' pneumonia')
    t.eq(ds.images:size(2), 1)
    t.eq(ds.images:size(3), 28)
  end
  local ds = data.medmnist(path, { split = 'val', size = 64, channels = 3 })
  t.eq(table.concat(ds.images.shape, 'x'), '524x3x64x64')
  local mx = ds.images:max():item()
  t.ok(mx <= 1 and mx > 0.5, 'images scaled to [0, 1]')
end

function T.ham10000_image_folder(t)
  local csv = root .. '/ham10000-mel-nv/labels.csv'
  if not have(csv) then return t.skip('no ' .. csv) end
  local ds = data.image_folder { csv = csv, path_col = 'file', label_col = 'label', split_col = 'split',
    split = 'val', size = 32, classes = { '0', '1' } }
  local c = data.class_counts(ds)
  -- SOURCE.md: val 113 melanoma, 139 nevus
  t.eq(c['1'], 113, 'val melanoma')
  t.eq(c['0'], 139, 'val nevus')
  t.eq(table.concat(ds.images.shape, 'x'), '252x3x32x32')
  t.eq(ds.rows[1].image_id, 'ISIC_0024313')
end

function T.bad_rows_are_named_or_skipped(t)
  local dir = os.tmpname()
  os.remove(dir)
  os.execute('mkdir -p ' .. dir)
  local f = io.open(dir .. '/labels.csv', 'w')
  f:write('path,label\nmissing.png,0\nbad.png,1\n')
  f:close()
  f = io.open(dir .. '/bad.png', 'w'); f:write('not an image'); f:close()
  t.raises(function() data.image_folder { csv = dir .. '/labels.csv' } end, 'labels.csv line 2: ')
  t.raises(function() data.image_folder { csv = dir .. '/labels.csv', skip_bad = true } end, 'no usable rows')
  t.raises(function() data.image_folder { csv = dir .. '/labels.csv', label_col = 'nope' } end, 'nope')
  os.execute('rm -rf ' .. dir)
end

function T.loader_is_deterministic(t)
  local ds = { images = craft.arange(40):reshape(10, 1, 2, 2), labels = craft.arange(10, nil, nil, { dtype = 'i64' }) }
  local function order(seed, e)
    local r = {}
    for _, y in data.loader(ds, { batch_size = 4, seed = seed }):epoch(e) do
      for _, v in ipairs(y:flat()) do r[#r + 1] = v end
    end
    return table.concat(r, ',')
  end
  t.eq(order(3, 1), order(3, 1))
  t.ok(order(3, 1) ~= order(3, 2), 'epochs differ')
  t.ok(order(3, 1) ~= order(4, 1), 'seeds differ')
  local seen = {}
  for v in order(3, 1):gmatch('%d+') do seen[v] = true end
  local n = 0
  for _ in pairs(seen) do n = n + 1 end
  t.eq(n, 10, 'a permutation')
  -- images follow their labels
  for x, y in data.loader(ds, { batch_size = 3, seed = 1 }):epoch(1) do
    t.eq(x:get(1, 1, 1, 1), y:get(1) * 4)
  end
  -- normalisation and flips: a flipped image holds the same values in mirrored columns
  for x, y in data.loader(ds, { batch_size = 10, seed = 1, mean = { 1 }, std = { 2 }, hflip = true }):epoch(1) do
    for k = 1, 10 do
      local base = y:get(k) * 4
      local a, b = x:get(k, 1, 1, 1), x:get(k, 1, 1, 2)
      local plain = (a == (base - 1) / 2 and b == (base + 1 - 1) / 2)
      local flipped = (a == (base + 1 - 1) / 2 and b == (base - 1) / 2)
      t.ok(plain or flipped, 'normalised, possibly mirrored row')
    end
  end
end

return T
