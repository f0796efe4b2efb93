-- Knowledge artifacts for PneumoniaMNIST (paediatric chest radiographs, 28x28 grey; 0 normal,
-- 1 pneumonia). At 28 px only coarse findings are visible: lung-field opacity and its
-- distribution, not air bronchograms or pleural detail.
return {
  dataset = 'pneumoniamnist',
  classes = { 'normal', 'pneumonia' },
  generic_prompt = 'a paediatric chest x-ray',
  negative_prompt = '',
  prompts = {
    normal = {
      'a normal paediatric chest x-ray with clear lungs',
      'frontal chest radiograph of a child, no consolidation, normal heart size',
      'a normal chest x-ray of a child, well-aerated lungs',
      'paediatric chest radiograph without airspace opacity',
    },
    pneumonia = {
      'a paediatric chest x-ray with pneumonia',
      'frontal chest radiograph of a child with patchy airspace consolidation',
      'a chest x-ray of a child with focal lung opacity consistent with pneumonia',
      'paediatric chest radiograph with hazy opacities in the lower lungs',
    },
  },
  checklists = {
    normal = {
      { pos = 'clear lung fields', neg = 'airspace opacity in the lung' },
      { pos = 'well-aerated lungs', neg = 'poorly aerated lungs' },
      { pos = 'sharp heart borders', neg = 'obscured heart borders' },
      { pos = 'no focal consolidation', neg = 'focal consolidation' },
    },
    pneumonia = {
      { pos = 'focal consolidation', neg = 'no focal consolidation' },
      { pos = 'patchy airspace opacity', neg = 'clear lung fields' },
      { pos = 'obscured heart or diaphragm borders', neg = 'sharp heart and diaphragm borders' },
      { pos = 'opacity in the lower lung zones', neg = 'clear lower lung zones' },
    },
  },
  sources = 'Written from paediatric radiology descriptions of pneumonia (Kermany et al. 2018 labels); no clinician review yet.',
}
