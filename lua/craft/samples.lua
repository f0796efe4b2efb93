-- craft.samples: a run's images on disk, for people and tools that come after the run (the
-- blinded reader study, `craft study make`; external scorers). Layout, under RUN/samples:
--
--   <method_key>/t<train_seed>_g<gen_seed>_c<class_index>_<n>.png   generated images
--   real/c<class_index>_<n>.png                                      real test-split images
--   index.csv   file,method,method_key,train_seed,gen_seed,class_index,class
--
-- `file` is relative to RUN/samples; class_index is 0-based (the run's label); train_seed and
-- gen_seed are empty for real images (method "Real", key "real"). Every image of a run has the
-- same size (generated images are resized to the real data's resolution before scoring).
--
--   local w = samples.writer('runs/x/samples')
--   w:add{method = 'CRAFT', key = 'craft_4', train_seed = 0, gen_seed = 1, images = x,
--         labels = {0, 0, 1, ...}, classes = {'normal', ...}}
--   w:close()                                  -- writes index.csv (atomically)
--   local rows = samples.read('runs/x/samples')  -- the index rows, with .path (absolute)
local core = require 'craft.core'
local io_ = require 'craft.io'
local want, argerror = core.want, core.argerror

local M = {}
M.HEADER = { 'file', 'method', 'method_key', 'train_seed', 'gen_seed', 'class_index', 'class' }

local function mkdir(d) os.execute("mkdir -p '" .. d:gsub("'", "'\\''") .. "'") end

local Writer = {}
Writer.__index = Writer

function M.writer(dir)
  want('samples.writer', 'dir', dir, 'string')
  mkdir(dir)
  return setmetatable({ dir = dir, rows = { M.HEADER }, count = {} }, Writer)
end

-- add{method=, key=, train_seed=, gen_seed=, images = [N, C, H, W], labels = {0-based}, classes =}
function Writer:add(o)
  want('samples.add', 'options', o, 'table')
  want('samples.add', 'options.method', o.method, 'string')
  want('samples.add', 'options.key', o.key, 'string')
  want('samples.add', 'options.images', o.images, 'tensor')
  want('samples.add', 'options.labels', o.labels, 'table')
  want('samples.add', 'options.classes', o.classes, 'table')
  if not o.key:match('^[%w_%-]+$') then
    argerror(('samples.add: key %q must be letters, digits, _ or -'):format(o.key))
  end
  local n = o.images:size(1)
  if #o.labels ~= n then argerror(('samples.add: %d images but %d labels'):format(n, #o.labels)) end
  local real = o.train_seed == nil
  local sub = real and 'real' or o.key
  mkdir(self.dir .. '/' .. sub)
  for i = 1, n do
    local c = o.labels[i]
    local k = (self.count[sub .. '/' .. c] or 0) + 1
    self.count[sub .. '/' .. c] = k
    local name = real and ('%s/c%d_%d.png'):format(sub, c, k)
      or ('%s/t%d_g%d_c%d_%d.png'):format(sub, o.train_seed, o.gen_seed or 0, c, k)
    io_.write_png(self.dir .. '/' .. name, o.images:select(1, i))
    self.rows[#self.rows + 1] = { name, o.method, o.key, real and '' or o.train_seed,
      real and '' or (o.gen_seed or 0),
      c, o.classes[c + 1] or '' }
  end
end

function Writer:close()
  local tmp = self.dir .. '/index.csv.tmp'
  io_.write_csv(tmp, self.rows)
  assert(os.rename(tmp, self.dir .. '/index.csv'))
  return self.dir .. '/index.csv'
end

-- read(dir) -> rows {file, path, method, method_key, train_seed (number or nil), gen_seed,
-- class_index (number), class}; a missing or malformed index is one error naming the file.
function M.read(dir)
  want('samples.read', 'dir', dir, 'string')
  local path = dir .. '/index.csv'
  local header, rows = io_.read_csv(path)
  local have = {}
  for _, h in ipairs(header) do have[h] = true end
  for _, h in ipairs(M.HEADER) do
    if not have[h] then argerror(('samples.read: %s has no column %q'):format(path, h)) end
  end
  for _, r in ipairs(rows) do
    r.path = dir .. '/' .. r.file
    r.class_index = tonumber(r.class_index)
    r.train_seed = tonumber(r.train_seed)
    r.gen_seed = tonumber(r.gen_seed)
    if not r.class_index or r.file == '' or r.file:find('..', 1, true) or r.file:sub(1, 1) == '/' then
      argerror(('samples.read: %s line %d: bad row (file %q, class_index %q)'):format(path, r._line, r.file,
        tostring(r.class_index)))
    end
  end
  return rows
end

return M
