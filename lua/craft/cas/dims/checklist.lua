-- CAS dimension 2, checklist satisfaction: the mean over the class's checklist items of
-- sigmoid((cos(image, item) - cos(image, negation)) / temperature), in the checklist VLM (by
-- default the prompt dimension's). The item scores stay per image for the checklist audit.
local T = require 'craft.tensor'
local A = require 'craft.autograd'
local U = require 'craft.cas.util'
local argerror = require('craft.core').argerror

-- the items' text features, computed once per CAS: {diff = [I, D] (item - negation), avg = [C, I]
-- (row c averages class c's items), owner, names, per_class}
local function text(cas)
  if cas._ctext then return cas._ctext end
  local pos, neg, owner, names, per_class = {}, {}, {}, {}, {}
  for c, name in ipairs(cas.classes) do
    local items = cas.checklists[name]
    if type(items) ~= 'table' or #items == 0 then
      argerror(('cas: no checklist items for class %q'):format(name))
    end
    per_class[c] = {}
    for _, it in ipairs(items) do
      local p = type(it) == 'string' and it or it.pos
      pos[#pos + 1] = p
      neg[#neg + 1] = (type(it) == 'table' and it.neg) or cas.negate(p)
      owner[#owner + 1] = c
      names[#names + 1] = (type(it) == 'table' and it.name) or p
      per_class[c][#per_class[c] + 1] = #pos
    end
  end
  local enc = cas.checklist_vlm.encode_text
  local Ep, En = U.encode_texts(enc, pos), U.encode_texts(enc, neg)
  -- cos(x, pos) - cos(x, neg) = x_n . (pos_n - neg_n): one matmul against the differences
  local diff = A.no_grad(function() return Ep - En end)
  -- W [C, I]: row c averages the items of class c
  local w = {}
  for c = 1, #cas.classes do
    local row = {}
    for i = 1, #owner do row[i] = owner[i] == c and 1 / #per_class[c] or 0 end
    w[c] = row
  end
  cas._ctext = { diff = diff, avg = T.tensor(w), owner = owner, names = names, per_class = per_class }
  return cas._ctext
end

return {
  name = 'checklist',
  summary = 'the share of the class\'s checklist items the image shows, in the VLM',
  encoder = 'vlm',
  text = text,
  missing = function(cas)
    if cas.checklist_vlm == nil or cas.checklists == nil then
      return 'missing encoder or texts in the recipe'
    end
  end,
  raw = function(cas, x, ys, Y, shared)
    local img = shared.vlm_image(cas.checklist_vlm)
    local ct = text(cas)
    local s = (img:matmul(ct.diff:t()) * (1 / cas.temperature.checklist)):sigmoid()   -- [n, I]
    shared.out.items = s
    return (s * Y:matmul(ct.avg)):sum(2)
  end,
}
