-- craft phantoms --modality cxr --n 2000 --size 64 --out DIR [--seed S] [--class NAME]
-- Writes DIR/images/<class>/<index>.png and DIR/labels.csv (path, label, class, split and every
-- ground-truth parameter), so phantoms go through the same loader as real data.
local M = {}

local USAGE = 'usage: craft phantoms --modality cxr|fundus|derm|histo --n N --out DIR [--size 64] [--seed 0] '
  .. '[--class NAME] [--val 0.1] [--test 0.2]'

function M.main(args)
  local o = { size = 64, seed = 0, val = 0.1, test = 0.2 }
  local i = 1
  while args[i] do
    local k, v = args[i], args[i + 1]
    if k == '-h' or k == '--help' then print(USAGE); return 0 end
    if not k:match('^%-%-') or v == nil then error(USAGE, 0) end
    k = k:sub(3)
    o[k] = tonumber(v) or v
    i = i + 2
  end
  if not o.modality or not o.n or not o.out then error(USAGE, 0) end
  local P = require 'craft.phantoms'
  local classes = P.classes(o.modality)
  os.execute(('mkdir -p %q'):format(o.out .. '/images'))
  for _, c in ipairs(classes) do
    os.execute(('mkdir -p %q'):format(o.out .. '/images/' .. c:gsub('%s', '_')))
  end
  local params = P.param_names(o.modality)
  local header = { 'path', 'label', 'class', 'split', 'index' }
  for _, p in ipairs(params) do header[#header + 1] = p end
  local csv = require('craft.io').csv_writer(o.out .. '/labels.csv')
  local function row(cells) csv:row(cells) end
  row(header)
  local chunk, done = 256, 0
  local bar = require('craft.progress')(o.n, 'phantoms ' .. o.modality)
  while done < o.n do
    local n = math.min(chunk, o.n - done)
    local ds = P.dataset { modality = o.modality, n = n, size = o.size, seed = o.seed, first_index = done,
      class = o.class }
    for k = 1, n do
      local r = ds.rows[k]
      local idx = done + k - 1
      local u = (idx * 0.6180339887498949) % 1   -- a fixed low-discrepancy split assignment
      local split = u < o.test and 'test' or (u < o.test + o.val and 'val' or 'train')
      local rel = ('images/%s/%06d.png'):format(r.class:gsub('%s', '_'), idx)
      P.write_png(o.out .. '/' .. rel, ds.images:select(1, k))
      local cells = { rel, ds.labels:get(k), r.class, split, idx }
      for _, p in ipairs(params) do cells[#cells + 1] = ('%.6g'):format(r[p]) end
      row(cells)
    end
    done = done + n
    bar:update(done)
  end
  csv:close()
  bar:done('written to ' .. o.out)
  return 0
end

return M
