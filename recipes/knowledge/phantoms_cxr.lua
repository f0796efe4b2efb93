-- Knowledge artifacts for the chest X-ray phantoms (normal, cardiomegaly, pneumonia): enriched
-- prompts (diffusion prompts and CAS dimension 1) and clinical checklists (CAS dimension 2 and
-- the checklist audit). Each checklist item names the oracle measurement that audits it and the
-- verdict the class expects (oracle = item name, expect = true/false). See docs/knowledge.md.
return {
  modality = 'cxr',
  classes = { 'normal', 'cardiomegaly', 'pneumonia' },
  generic_prompt = 'a chest x-ray',
  negative_prompt = '',
  prompts = {
    normal = {
      'a normal chest x-ray with normal heart size and clear lungs',
      'chest radiograph, no acute cardiopulmonary abnormality',
      'a normal frontal chest x-ray, cardiothoracic ratio below 0.5, lungs are clear',
      'PA chest radiograph with a normal cardiac silhouette and no focal consolidation',
    },
    cardiomegaly = {
      'a chest x-ray with an enlarged cardiac silhouette, cardiothoracic ratio above 0.5',
      'chest radiograph showing cardiomegaly',
      'a chest x-ray with an enlarged heart and clear lungs',
      'frontal chest radiograph, wide cardiac silhouette, no airspace consolidation',
    },
    pneumonia = {
      'a chest x-ray with focal consolidation in one lung',
      'chest radiograph showing pneumonia',
      'a chest x-ray with a patchy airspace opacity, normal heart size',
      'frontal chest radiograph with unilateral lung opacity consistent with pneumonia',
    },
  },
  checklists = {
    normal = {
      { pos = 'normal heart size', neg = 'enlarged heart', oracle = 'normal_heart_size', expect = true },
      { pos = 'clear lung fields', neg = 'airspace opacity in the lung', oracle = 'clear_lung_fields', expect = true },
      { pos = 'cardiothoracic ratio below 0.5', neg = 'cardiothoracic ratio above 0.5', oracle = 'ctr_gt_0.5', expect = false },
      { pos = 'no focal consolidation', neg = 'focal consolidation', oracle = 'focal_consolidation', expect = false },
    },
    cardiomegaly = {
      { pos = 'enlarged cardiac silhouette', neg = 'normal cardiac silhouette', oracle = 'normal_heart_size', expect = false },
      { pos = 'cardiothoracic ratio above 0.5', neg = 'cardiothoracic ratio below 0.5', oracle = 'ctr_gt_0.5', expect = true },
      { pos = 'wide cardiac silhouette', neg = 'narrow cardiac silhouette', oracle = 'ctr_gt_0.5', expect = true },
      { pos = 'lungs are clear', neg = 'hazy lung opacity', oracle = 'clear_lung_fields', expect = true },
    },
    pneumonia = {
      { pos = 'focal consolidation', neg = 'no focal consolidation', oracle = 'focal_consolidation', expect = true },
      { pos = 'opacity in one lung', neg = 'no lung opacity', oracle = 'unilateral_opacity', expect = true },
      { pos = 'patchy airspace consolidation', neg = 'no airspace consolidation', oracle = 'focal_consolidation', expect = true },
      { pos = 'normal heart size', neg = 'enlarged heart', oracle = 'normal_heart_size', expect = true },
    },
  },
  sources = 'Written from radiology definitions (cardiothoracic ratio > 0.5 for cardiomegaly; focal airspace consolidation for pneumonia); not yet reviewed by a clinician.',
}
