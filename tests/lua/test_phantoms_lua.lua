-- Phantoms from Lua: the data set API, the oracle through the binding, and the `craft phantoms`
-- command's output read back through the ordinary image-folder loader.
local craft = require 'craft'
local P = craft.phantoms
local T = {}

function T.dataset_and_oracle_agree(t)
  for _, m in ipairs(P.modalities()) do
    local ds = P.dataset { modality = m, n = 64, size = 64, seed = 11 }
    t.eq(table.concat(ds.images.shape, 'x'), '64x3x64x64', m)
    local audit = P.audit(m, ds.images)
    local agree = 0
    for i, l in ipairs(audit.labels) do if l == ds.labels:get(i) then agree = agree + 1 end end
    t.ok(agree >= 58, ('%s: oracle agrees on %d/64 clean phantoms'):format(m, agree))
    t.ok(#P.items(m) >= 4, m .. ' has checklist items')
  end
  t.raises(function() P.dataset { modality = 'mri', n = 1 } end, 'mri')
  t.raises(function() P.dataset { modality = 'cxr', n = 1, size = 8 } end, 'size')
end

-- An image the oracle cannot measure (no lung fields, no lesion, no fundus disc) is reported as
-- undetermined (-1), with no checklist item satisfied, never as the first class.
function T.oracle_reports_undetermined(t)
  local craft = require 'craft'
  for _, m in ipairs { 'cxr', 'derm', 'fundus' } do
    for _, v in ipairs { 0, 0.5, 1 } do
      local a = P.audit(m, craft.full({ 2, 3, 32, 32 }, v))
      t.eq(a.labels[1], -1, m .. ' flat image ' .. v .. ' is undetermined')
      t.eq(a.labels[2], -1, m .. ' second image')
      local any = false
      for _, ok in pairs(a.items[1]) do any = any or ok end
      t.ok(not any, m .. ': no checklist item satisfied by a flat image')
    end
    -- real phantoms are measured: none undetermined
    local ds = P.dataset { modality = m, n = 24, size = 32, seed = 77 }
    local u = 0
    for _, l in ipairs(P.audit(m, ds.images).labels) do if l < 0 then u = u + 1 end end
    t.eq(u, 0, m .. ': clean phantoms are all measured')
  end
end

function T.command_output_loads_as_image_folder(t)
  local dir = os.tmpname()
  os.remove(dir)
  local rc = os.execute(('./build/craft phantoms --modality derm --n 40 --size 32 --seed 3 --out %s 2>/dev/null'):format(dir))
  t.eq(rc, 0, 'craft phantoms exit status')
  local ds = craft.data.image_folder { csv = dir .. '/labels.csv', path_col = 'path', label_col = 'class', size = 32 }
  t.eq(ds.images:size(1), 40)
  local direct = P.dataset { modality = 'derm', n = 40, size = 32, seed = 3 }
  -- PNG quantisation only: within half a grey level
  local d = (ds.images - direct.images):abs():max():item()
  t.ok(d <= 0.5 / 255 + 1e-6, 'PNG round trip max difference ' .. d)
  t.ok(ds.rows[1].asymmetry ~= nil, 'ground-truth parameters are CSV columns')
  os.execute('rm -rf ' .. dir)
end

return T
