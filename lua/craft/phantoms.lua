-- craft.phantoms: the built-in clinical phantom data sets and the oracle auditor, from Lua.
--   local ds = craft.phantoms.dataset{modality = 'cxr', n = 512, size = 64, seed = 1}
--   local audit = craft.phantoms.audit('cxr', images)   -- labels, measures, checklist verdicts
-- A phantom data set has the same shape as craft.data's: images f32 [N, 3, S, S] in [0, 1],
-- labels i64 [N], classes, and rows (each with every ground-truth parameter).
local core = require 'craft.core'
local T = require 'craft.tensor'
local ffi, C, check, want, argerror = core.ffi, core.C, core.check, core.want, core.argerror

local P = {}

-- a modality by name ('cxr', ...) or index (0-based)
local function modality_index(m)
  want('phantoms', 'modality', m, 'string|count')
  if type(m) == 'number' then
    local n = C.craft_phantom_modality_count()
    if m >= n then argerror(('phantoms: modality index %d out of range (%d modalities)'):format(m, n)) end
    return m
  end
  local out = ffi.new('int[1]')
  check(C.craft_phantom_modality_from_name(m, out))
  return out[0]
end
P.modality_index = modality_index

local function names(count, getter, m)
  local r = {}
  for i = 0, count - 1 do r[i + 1] = ffi.string(getter(m, i)) end
  return r
end

function P.modalities()
  local r = {}
  for i = 0, C.craft_phantom_modality_count() - 1 do
    r[i + 1] = ffi.string(C.craft_phantom_modality_name(i))
  end
  return r
end
function P.classes(m)
  local mi = modality_index(m)
  return names(C.craft_phantom_class_count(mi), C.craft_phantom_class_name, mi)
end
function P.param_names(m)
  local mi = modality_index(m)
  return names(C.craft_phantom_param_count(mi), C.craft_phantom_param_name, mi)
end
function P.measure_names(m)
  local mi = modality_index(m)
  return names(C.craft_oracle_measure_count(mi), C.craft_oracle_measure_name, mi)
end
-- Checklist items the oracle audits: { {name=, class=} ... } (class: 0-based class index)
function P.items(m)
  local mi = modality_index(m)
  local r = {}
  for i = 0, C.craft_oracle_item_count(mi) - 1 do
    r[i + 1] = { name = ffi.string(C.craft_oracle_item_name(mi, i)),
      class = C.craft_oracle_item_class(mi, i) }
  end
  return r
end

-- dataset{modality=, n=, size=64, seed=0, first_index=0, class=nil (uniform), blur=0, noise=0}
function P.dataset(o)
  want('phantoms.dataset', 'options', o, 'table')
  local mi = modality_index(o.modality)
  want('phantoms.dataset', 'options.n', o.n, 'count', true)
  want('phantoms.dataset', 'options.size', o.size, 'positive', true)
  want('phantoms.dataset', 'options.seed', o.seed, 'count', true)
  want('phantoms.dataset', 'options.first_index', o.first_index, 'count', true)
  want('phantoms.dataset', 'options.class', o.class, 'string|count', true)
  want('phantoms.dataset', 'options.blur', o.blur, 'number', true)
  want('phantoms.dataset', 'options.noise', o.noise, 'number', true)
  local n, size = o.n or 256, o.size or 64
  local np = C.craft_phantom_param_count(mi)
  local images = T.empty({ n, 3, size, size }, { device = 'cpu' })   -- filled by C in host memory
  local labels = ffi.new('int32_t[?]', n)
  local params = ffi.new('float[?]', math.max(1, n * np))
  local cls = o.class
  if type(cls) == 'string' then
    for i, c in ipairs(P.classes(mi)) do if c == cls then cls = i - 1 end end
    if type(cls) == 'string' then
      argerror(('phantoms: unknown class %q for %s'):format(o.class, tostring(o.modality)))
    end
  end
  local ptr = ffi.cast('float*', images:data_ptr())
  check(C.craft_phantom_generate(mi, n, size, o.seed or 0, o.first_index or 0, cls or -1, ptr, labels,
    params), 2)
  if (o.blur or 0) > 0 or (o.noise or 0) > 0 then
    check(C.craft_phantom_degrade(n, size, ptr, o.blur or 0, o.noise or 0, (o.seed or 0) + 1), 2)
  end
  local pn = P.param_names(mi)
  local classes = P.classes(mi)
  local rows, ys = {}, {}
  for k = 0, n - 1 do
    local row = { class = classes[labels[k] + 1], index = (o.first_index or 0) + k }
    for j = 0, np - 1 do row[pn[j + 1]] = tonumber(params[k * np + j]) end
    rows[k + 1] = row
    ys[k + 1] = labels[k]
  end
  return { images = images, labels = T.tensor(ys, { dtype = 'i64', device = 'cpu' }), classes = classes,
    rows = rows,
    params = pn, modality = ffi.string(C.craft_phantom_modality_name(mi)),
    name = ('phantoms:%s:seed%d'):format(ffi.string(C.craft_phantom_modality_name(mi)), o.seed or 0) }
end

-- audit(modality, images [N, 3, S, S] in [0, 1]) -> { labels = {...} (0-based), measures = {{name=value}},
-- items = {{name=bool}} }
function P.audit(m, images)
  local mi = modality_index(m)
  want('phantoms.audit', 'images', images, 'tensor')
  local x = images:detach():to('cpu'):float():contiguous()   -- the oracle measures host pixels
  if x:dim() ~= 4 or x:size(2) ~= 3 or x:size(4) ~= x:size(3) then
    argerror(('phantoms.audit: images must be [N, 3, S, S], got %s'):format(core.describe(x)))
  end
  local n, size = x:size(1), x:size(3)
  local nm, ni = C.craft_oracle_measure_count(mi), C.craft_oracle_item_count(mi)
  local meas = ffi.new('float[?]', math.max(1, n * nm))
  local labels = ffi.new('int32_t[?]', n)
  local items = ffi.new('uint8_t[?]', math.max(1, n * ni))
  check(C.craft_oracle_audit(mi, n, size, ffi.cast('float*', x:data_ptr()), meas, labels, items), 2)
  local mn, itn = P.measure_names(mi), P.items(mi)
  local r = { labels = {}, measures = {}, items = {} }
  for k = 0, n - 1 do
    r.labels[k + 1] = labels[k]
    local mt, it = {}, {}
    for j = 0, nm - 1 do mt[mn[j + 1]] = tonumber(meas[k * nm + j]) end
    for j = 0, ni - 1 do it[itn[j + 1].name] = items[k * ni + j] ~= 0 end
    r.measures[k + 1], r.items[k + 1] = mt, it
  end
  return r
end

-- Writes an image [C, H, W] in [0, 1] as a PNG file.
function P.write_png(path, img)
  want('phantoms.write_png', 'path', path, 'string')
  want('phantoms.write_png', 'image', img, 'tensor')
  if img:dim() ~= 3 then
    argerror(('phantoms.write_png: the image must be [C, H, W], got %s'):format(core.describe(img)))
  end
  require('craft.io').write_png(path, img)
end

return P
