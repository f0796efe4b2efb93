-- craft.data: data sets as tensors, and a seeded batch loader. Parsing is done in C (npz, CSV,
-- PNG/JPEG); this file holds the data-set logic a recipe configures: which columns, which split,
-- which size, what to do with a bad row.
--
--   local ds = craft.data.medmnist('../shared/data/pneumoniamnist/pneumoniamnist.npz', {split = 'train'})
--   local ds = craft.data.image_folder{csv = 'labels.csv', path_col = 'path', label_col = 'label',
--                                      split_col = 'split', split = 'train', size = 64, skip_bad = true}
--   for x, y in craft.data.loader(ds, {batch_size = 32, seed = 1}):epoch(1) do ... end
--
-- A data set is { images = f32 [N, C, H, W] in [0, 1], labels = i64 [N], classes = {names},
-- rows = {per-image metadata tables}, name = ... }.
local core = require 'craft.core'
local T = require 'craft.tensor'
local F = require 'craft.functional'
local ffi, C, check, want, argerror = core.ffi, core.C, core.check, core.want, core.argerror

local data = {}

-- a data set as this module makes them: images [N, C, H, W] and labels [N] tensors
local function dataset(fname, ds)
  want(fname, 'data set', ds, 'table')
  want(fname, 'data set images', ds.images, 'tensor')
  want(fname, 'data set labels', ds.labels, 'tensor')
  if ds.images:dim() ~= 4 or ds.labels:dim() ~= 1 or ds.labels:size(1) ~= ds.images:size(1) then
    argerror(('%s: the data set needs images [N, C, H, W] and labels [N], got %s and %s'):format(fname,
      core.describe(ds.images), core.describe(ds.labels)))
  end
  return ds
end

local function array_to_tensor(arr)
  local out = ffi.new('craft_tensor*[1]')
  check(C.craft_array_to_tensor(arr, out), 3)
  return T.wrap(out[0])
end

-- npz(path): { names = {...}, read = function(name) -> tensor }
function data.npz(path)
  want('data.npz', 'path', path, 'string')
  local zp = ffi.new('craft_npz*[1]')
  check(C.craft_npz_open(path, zp), 2)
  local z = ffi.gc(zp[0], C.craft_npz_close)
  local names = {}
  for i = 0, C.craft_npz_count(z) - 1 do names[#names + 1] = ffi.string(C.craft_npz_name(z, i)) end
  return {
    names = names,
    read = function(name)
      want('npz.read', 'name', name, 'string')
      local arr = ffi.new('craft_array')
      check(C.craft_npz_read(z, name, arr), 2)
      return array_to_tensor(arr)
    end,
  }
end

function data.npy(path)
  want('data.npy', 'path', path, 'string')
  local arr = ffi.new('craft_array')
  check(C.craft_npy_read_file(path, arr), 2)
  return array_to_tensor(arr)
end

-- u8 images [N, H, W] or [N, H, W, C] -> f32 [N, C, H, W] in [0, 1]
local function u8_images_to_nchw(u8)
  local x = u8:float() * (1 / 255)
  if x:dim() == 3 then return x:unsqueeze(2) end
  return x:permute(1, 4, 2, 3):contiguous()
end

-- Resizes a float [N, C, H, W] batch to size x size: area when shrinking, bilinear otherwise.
function data.resize(x, size)
  want('data.resize', 'images', x, 'tensor')
  want('data.resize', 'size', size, 'positive')
  if x:dim() ~= 4 then
    argerror(('data.resize: images must be [N, C, H, W], got %s'):format(core.describe(x)))
  end
  if x:size(3) == size and x:size(4) == size then return x end
  local n, c, h, w = x:size(1), x:size(2), x:size(3), x:size(4)
  -- resampled on the host (C loops over host memory); the result goes back to x's device
  local dev = x.device
  local out = T.empty({ n, c, size, size }, { device = 'cpu' })
  local src, dst = ffi.cast('float*', x:to('cpu'):contiguous():data_ptr()), ffi.cast('float*', out:data_ptr())
  local fn = (size <= h and size <= w) and C.craft_resize_area or C.craft_resize_bilinear
  for i = 0, n - 1 do
    check(fn(src + i * c * h * w, c, h, w, dst + i * c * size * size, size, size), 2)
  end
  return dev ~= 'cpu' and out:to(dev) or out
end

local MEDMNIST_CLASSES = {
  pneumoniamnist = { 'normal', 'pneumonia' },
  retinamnist = { 'grade 0', 'grade 1', 'grade 2', 'grade 3', 'grade 4' },
  breastmnist = { 'malignant', 'normal or benign' },
  ham = { 'nevus', 'melanoma' },            -- ham10000_mel_nv_28.npz (../shared/data)
}

-- medmnist(path, {split='train', size=nil, channels=nil, classes=nil})
function data.medmnist(path, o)
  want('data.medmnist', 'path', path, 'string')
  o = want('data.medmnist', 'options', o, 'table', true) or {}
  want('data.medmnist', 'options.split', o.split, 'string', true)
  want('data.medmnist', 'options.size', o.size, 'positive', true)
  want('data.medmnist', 'options.classes', o.classes, 'table', true)
  local split = o.split or 'train'
  local z = data.npz(path)
  local imgs = z.read(split .. '_images')
  local labels = z.read(split .. '_labels')
  local x = u8_images_to_nchw(imgs)
  if o.channels == 3 and x:size(2) == 1 then x = x:expand(x:size(1), 3, x:size(3), x:size(4)):contiguous() end
  if o.size then x = data.resize(x, o.size) end
  local y = labels:reshape(labels:size(1)):to('i64')
  local base = path:match('([^/]+)%.npz$') or path
  local classes = o.classes or MEDMNIST_CLASSES[base:match('^(%a+)')]
  if not classes then
    classes = {}
    local mx = y:float():max():item()
    for k = 0, mx do classes[k + 1] = 'class ' .. k end
  end
  return { images = x, labels = y, classes = classes, name = base .. ':' .. split }
end

-- image_folder{csv=, root=(csv's folder), path_col='path', label_col='label', split_col=nil,
--   split=nil, classes=nil (sorted unique labels), size=64, channels=3, skip_bad=false}
-- Rows whose image is missing or undecodable raise an error naming the file and CSV line, or,
-- with skip_bad, are skipped and counted (ds.skipped, ds.skipped_rows).
function data.image_folder(o)
  want('data.image_folder', 'options', o, 'table')
  want('data.image_folder', 'options.csv', o.csv, 'string')
  for _, k in ipairs { 'root', 'path_col', 'label_col', 'split_col', 'split' } do
    want('data.image_folder', 'options.' .. k, o[k], 'string', true)
  end
  want('data.image_folder', 'options.size', o.size, 'positive', true)
  want('data.image_folder', 'options.channels', o.channels, 'positive', true)
  want('data.image_folder', 'options.classes', o.classes, 'table', true)
  local cp = ffi.new('craft_csv*[1]')
  check(C.craft_csv_read_file(o.csv, 1, cp), 2)
  local csv = ffi.gc(cp[0], C.craft_csv_free)
  local function col(name, required)
    if not name then return nil end
    local c = ffi.new('int[1]')
    local rc = C.craft_csv_column_index(csv, name, c)
    if rc ~= 0 then
      if required then check(rc, 3) end
      return nil
    end
    return c[0]
  end
  local root = o.root or (o.csv:match('^(.*)/[^/]*$') or '.')
  local pc, lc = col(o.path_col or 'path', true), col(o.label_col or 'label', true)
  local sc = col(o.split_col, o.split_col ~= nil)
  local size, channels = o.size or 64, o.channels or 3
  local rows, paths, labels_s = {}, {}, {}
  local ncols = C.craft_csv_cols(csv)
  for r = 0, C.craft_csv_rows(csv) - 1 do
    local split_ok = true
    if sc and o.split then split_ok = ffi.string(C.craft_csv_cell(csv, r, sc)) == o.split end
    if split_ok then
      local meta = { _line = C.craft_csv_row_line(csv, r) }
      for k = 0, ncols - 1 do
        meta[ffi.string(C.craft_csv_header(csv, k))] = ffi.string(C.craft_csv_cell(csv, r, k))
      end
      rows[#rows + 1] = meta
      paths[#paths + 1] = ffi.string(C.craft_csv_cell(csv, r, pc))
      labels_s[#labels_s + 1] = ffi.string(C.craft_csv_cell(csv, r, lc))
    end
  end
  local classes = o.classes
  if not classes then
    local seen = {}
    classes = {}
    for _, l in ipairs(labels_s) do if not seen[l] then seen[l] = true; classes[#classes + 1] = l end end
    table.sort(classes, function(a, b)
      local na, nb = tonumber(a), tonumber(b)
      if na and nb then return na < nb end
      return a < b
    end)
  end
  local index = {}
  for i, c in ipairs(classes) do index[c] = i - 1 end
  local n = #paths
  local images = T.empty({ n, channels, size, size }, { device = 'cpu' })   -- decoded into host memory
  local dst = ffi.cast('float*', images:data_ptr())
  local keep, y, kept_rows, skipped_rows = {}, {}, {}, {}
  local arr = ffi.new('craft_array')
  for i = 1, n do
    local p = paths[i]
    local full = p:sub(1, 1) == '/' and p or (root .. '/' .. p)
    local li = index[labels_s[i]]
    local rc = C.craft_image_read(full, channels, arr)
    local err
    if rc ~= 0 then err = ffi.string(C.craft_last_error())
    elseif li == nil then err = ('label %q is not one of the classes'):format(labels_s[i]) end
    if err then
      C.craft_array_free(arr)
      local msg = ('%s line %d: %s'):format(o.csv, rows[i]._line, err)
      if not o.skip_bad then argerror(msg) end
      skipped_rows[#skipped_rows + 1] = msg
    else
      local h, w = tonumber(arr.shape[0]), tonumber(arr.shape[1])
      local chw = ffi.new('float[?]', channels * h * w)
      check(C.craft_u8_hwc_to_f32_chw(ffi.cast('uint8_t*', arr.data), h, w, channels, nil, nil, chw), 2)
      C.craft_array_free(arr)
      local s = math.min(h, w)
      local crop = ffi.new('float[?]', channels * s * s)
      check(C.craft_center_crop(chw, channels, h, w, crop, s, s), 2)
      local fn = size <= s and C.craft_resize_area or C.craft_resize_bilinear
      check(fn(crop, channels, s, s, dst + #keep * channels * size * size, size, size), 2)
      keep[#keep + 1] = i
      y[#y + 1] = li
      kept_rows[#kept_rows + 1] = rows[i]
    end
  end
  if #skipped_rows > 0 then
    io.stderr:write(('image_folder %s: skipped %d bad row(s); first: %s\n'):format(o.csv, #skipped_rows,
      skipped_rows[1]))
  end
  local m = #keep
  if m < n then images = images:narrow(1, 1, math.max(m, 1)):contiguous() end
  if m == 0 then
    argerror(('image_folder %s: no usable rows%s'):format(o.csv, o.split and (' in split ' .. o.split) or ''))
  end
  return { images = images, labels = T.tensor(y, { dtype = 'i64', device = 'cpu' }), classes = classes,
    rows = kept_rows,
    skipped = #skipped_rows, skipped_rows = skipped_rows,
    name = o.csv .. (o.split and (':' .. o.split) or '') }
end

-- Per-class counts of a data set: { [class name] = n }
function data.class_counts(ds)
  dataset('data.class_counts', ds)
  want('data.class_counts', 'data set classes', ds.classes, 'table')
  local counts = {}
  for _, l in ipairs(ds.labels:flat()) do
    local name = ds.classes[l + 1] or tostring(l)
    counts[name] = (counts[name] or 0) + 1
  end
  return counts
end

-- Rows idx (1-based Lua list) of a [N, ...] tensor, through the embedding gather.
function data.take(x, idx)
  want('data.take', 'x', x, 'tensor')
  want('data.take', 'indices', idx, 'table')
  require('craft.core').want_items('data.take', 'indices', idx, 'number')
  if x:dim() == 0 then argerror('data.take: x must have a first dim to take rows of, got a 0-d tensor') end
  local n = x:size(1)
  local flat = x:reshape(n, -1)
  local it = {}
  for i, k in ipairs(idx) do it[i] = k - 1 end
  -- host indices: the gather runs on x's device, whichever it is
  local g = F.embedding(T.tensor(it, { dtype = 'i64', device = 'cpu' }), flat)
  local shape = x.shape
  shape[1] = #idx
  return g:reshape(shape)
end

-- A seeded permutation of 1..n (Fisher-Yates on Philox words: the same on every machine).
function data.permutation(n, seed, stream)
  want('data.permutation', 'n', n, 'count')
  want('data.permutation', 'seed', seed, 'count')
  want('data.permutation', 'stream', stream, 'count', true)
  if n > 2 ^ 31 then argerror(('data.permutation: n = %g is too large (at most 2^31)'):format(n)) end
  local p = {}
  for i = 1, n do p[i] = i end
  local w = ffi.new('uint32_t[4]')
  for i = n, 2, -1 do
    C.craft_philox4x32(seed, (stream or 0) * 2 ^ 32 + i, w)
    local j = tonumber(w[0]) % i + 1
    p[i], p[j] = p[j], p[i]
  end
  return p
end

-- loader(ds, {batch_size=32, shuffle=true, seed=0, drop_last=false, hflip=false, vflip=false,
--   mean=nil, std=nil (per-channel normalisation of the batch), device=nil (where batches go:
--   'cl:0', ...; default the current device, craft.device.default())})
-- loader:epoch(e) iterates (images, labels, indices) batches; the order depends only on
-- (seed, e), so a resumed run sees the same batches.
function data.loader(ds, o)
  dataset('data.loader', ds)
  o = want('data.loader', 'options', o, 'table', true) or {}
  want('data.loader', 'options.batch_size', o.batch_size, 'positive', true)
  want('data.loader', 'options.seed', o.seed, 'count', true)
  want('data.loader', 'options.mean', o.mean, 'table', true)
  want('data.loader', 'options.std', o.std, 'table', true)
  local L = { ds = ds, batch_size = o.batch_size or 32, shuffle = o.shuffle ~= false, seed = o.seed or 0,
    drop_last = o.drop_last or false, hflip = o.hflip or false, vflip = o.vflip or false,
    device = require('craft.device').name(require('craft.tensor').device_of(o)) }
  local norm_mean, norm_std
  if o.mean or o.std then
    local c = ds.images:size(2)
    local m, sd = o.mean or {}, o.std or {}
    local mv, sv = {}, {}
    for k = 1, c do mv[k] = m[k] or m[1] or 0; sv[k] = sd[k] or sd[1] or 1 end
    norm_mean, norm_std = T.tensor(mv):reshape(1, c, 1, 1), T.tensor(sv):reshape(1, c, 1, 1)
  end
  local n = ds.images:size(1)
  local labels = ds.labels:flat()
  function L:num_batches()
    return self.drop_last and math.floor(n / self.batch_size) or math.ceil(n / self.batch_size)
  end
  function L:epoch(e)
    local order = self.shuffle and data.permutation(n, self.seed, e or 1) or nil
    local b = 0
    return function()
      local lo = b * self.batch_size + 1
      local hi = math.min(lo + self.batch_size - 1, n)
      if lo > n or (self.drop_last and hi - lo + 1 < self.batch_size) then return nil end
      b = b + 1
      local idx = {}
      for i = lo, hi do idx[#idx + 1] = order and order[i] or i end
      local x = data.take(ds.images, idx)
      if self.hflip or self.vflip then
        local c, h, w = x:size(2), x:size(3), x:size(4)
        x = x:to('cpu')   -- flipped in host memory (a device data set's rows come over first)
        local p = ffi.cast('float*', x:data_ptr())
        local words = ffi.new('uint32_t[4]')
        for k = 1, #idx do
          -- one Philox draw per image and epoch: flips are the same on every machine and resume
          C.craft_philox4x32(self.seed + 7919, (e or 1) * 2 ^ 32 + lo + k, words)
          local img = p + (k - 1) * c * h * w
          if self.hflip and words[0] % 2 == 1 then check(C.craft_flip_horizontal(img, c, h, w, img), 2) end
          if self.vflip and words[1] % 2 == 1 then check(C.craft_flip_vertical(img, c, h, w, img), 2) end
        end
      end
      if norm_mean then x = (x - norm_mean) / norm_std end
      local ys = {}
      for k, i in ipairs(idx) do ys[k] = labels[i] end
      local yt = T.tensor(ys, { dtype = 'i64' })
      if self.device and self.device ~= 'cpu' then x, yt = x:to(self.device), yt:to(self.device) end
      return x, yt, idx
    end
  end
  return L
end

return data
