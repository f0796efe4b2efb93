-- Knowledge artifacts for the chest X-ray phantoms (docs/phantoms.md, `cxr`): enriched prompts
-- (the diffusion prompts and CAS dimension 1) and the clinical checklist (CAS dimension 2 and the
-- checklist audit). Tables are keyed by class name, in craft.phantoms.classes('cxr') order, as
-- craft.cas expects. Every checklist item names the oracle item (craft.phantoms.items('cxr'))
-- of its own class that audits it; see docs/knowledge.md for the item -> oracle table.
-- The phantom is a PA radiograph: the patient's right lung is on the image left.
return {
  modality = 'cxr',
  classes = { 'normal', 'cardiomegaly', 'pneumonia' },
  generic_prompt = 'a chest x-ray',
  negative_prompt = '',
  prompts = {
    normal = {
      'a normal chest x-ray with normal heart size and clear lungs',
      'chest radiograph, no acute cardiopulmonary abnormality',
      'a normal PA chest radiograph, cardiothoracic ratio below 0.5, clear lung fields',
      'frontal chest x-ray with a normal cardiac silhouette and no focal consolidation',
      'PA chest x-ray with clear, well-aerated lungs and a heart not enlarged',
      'an unremarkable frontal chest radiograph: normal heart, clear lungs, sharp diaphragm outlines',
    },
    cardiomegaly = {
      'a chest x-ray with an enlarged cardiac silhouette, cardiothoracic ratio above 0.5',
      'chest radiograph showing cardiomegaly',
      'a PA chest x-ray with an enlarged heart and clear lungs',
      'frontal chest radiograph of cardiomegaly, the heart wider than half the thoracic width',
      'PA chest radiograph with an enlarged cardiac silhouette, lungs are clear',
      'a chest x-ray with increased heart size, cardiothoracic ratio about 0.55, lungs are clear',
    },
    pneumonia = {
      'a chest x-ray with focal consolidation in one lung',
      'chest radiograph showing pneumonia',
      'a PA chest x-ray with patchy airspace consolidation in one lung zone, normal heart size',
      'frontal chest radiograph with unilateral focal consolidation consistent with pneumonia',
      'PA chest x-ray of pneumonia: a hazy patch of airspace consolidation in one lung',
      'chest radiograph with a focal area of hazy lung opacity in one lung, normal cardiac size',
    },
  },
  -- pos: the finding as it appears in this class; neg: the contrasting finding.
  -- oracle: the oracle item of this class that measures the finding from pixels.
  checklists = {
    normal = {
      { pos = 'normal cardiac size, cardiothoracic ratio below 0.5',
      neg = 'enlarged cardiac silhouette, cardiothoracic ratio above 0.5',
        oracle = 'normal_heart_size' },
      { pos = 'normal heart size', neg = 'enlarged heart', oracle = 'normal_heart_size' },
      { pos = 'clear lung fields', neg = 'focal airspace consolidation in one lung zone',
      oracle = 'clear_lung_fields' },
      { pos = 'no focal airspace opacity', neg = 'lung fields not clear', oracle = 'clear_lung_fields' },
      { pos = 'lungs are clear', neg = 'hazy lung opacity', oracle = 'clear_lung_fields' },
    },
    cardiomegaly = {
      { pos = 'enlarged cardiac silhouette, cardiothoracic ratio above 0.5',
      neg = 'normal cardiac size, cardiothoracic ratio below 0.5',
        oracle = 'ctr_gt_0.5' },
      { pos = 'cardiothoracic ratio above 0.5', neg = 'cardiothoracic ratio below 0.5',
      oracle = 'ctr_gt_0.5' },
      { pos = 'enlarged heart', neg = 'normal heart size', oracle = 'ctr_gt_0.5' },
      { pos = 'heart wider than half the thoracic width',
      neg = 'heart narrower than half the thoracic width', oracle = 'ctr_gt_0.5' },
    },
    pneumonia = {
      { pos = 'focal airspace consolidation in one lung zone', neg = 'clear lung fields',
      oracle = 'focal_consolidation' },
      { pos = 'patchy airspace consolidation', neg = 'no airspace consolidation',
      oracle = 'focal_consolidation' },
      { pos = 'hazy lung opacity', neg = 'lungs are clear', oracle = 'focal_consolidation' },
      { pos = 'unilateral airspace opacity', neg = 'clear lung fields', oracle = 'unilateral_opacity' },
      { pos = 'opacity in one lung', neg = 'lungs are clear', oracle = 'unilateral_opacity' },
    },
  },
  sources = 'Written (LLM-drafted) from radiology definitions: cardiomegaly as a cardiothoracic ratio above '
  .. '0.5 on a PA film; '
    .. 'bacterial pneumonia as focal airspace consolidation confined to one lung zone. Mapped to the phantom '
    .. 'oracle items '
    .. 'by hand. Not yet reviewed by a clinician.',
}
