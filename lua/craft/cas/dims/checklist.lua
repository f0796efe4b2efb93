-- CAS dimension 2, checklist satisfaction: the mean over the class's checklist items of
-- sigmoid((cos(image, item) - cos(image, negation)) / temperature), in the checklist VLM (by
-- default the prompt dimension's). The item scores stay per image for the checklist audit.
return {
  name = 'checklist',
  summary = 'the share of the class\'s checklist items the image shows, in the VLM',
  encoder = 'vlm',
  missing = function(cas)
    if cas.checklist_vlm == nil or cas.checklists == nil then
      return 'missing encoder or texts in the recipe'
    end
  end,
  raw = function(cas, x, ys, Y, shared)
    local img = shared.vlm_image(cas.checklist_vlm)
    local ct = cas:_checklist_text()
    local s = (img:matmul(ct.diff:t()) * (1 / cas.temperature.checklist)):sigmoid()   -- [n, I]
    shared.out.items = s
    return (s * Y:matmul(ct.avg)):sum(2)
  end,
}
