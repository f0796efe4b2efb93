-- Knowledge artifacts for the dermoscopy phantoms (nevus, melanoma): the ABCD criteria.
-- Each checklist item names the oracle measurement that audits it (see docs/knowledge.md).
return {
  modality = 'derm',
  classes = { 'nevus', 'melanoma' },
  generic_prompt = 'a dermoscopy image of a skin lesion',
  negative_prompt = '',
  prompts = {
    nevus = {
      'a dermoscopy image of a benign nevus, symmetric with a regular border',
      'dermoscopic image of a common mole',
      'a small evenly pigmented lesion with a smooth border',
      'dermoscopy of a benign melanocytic nevus, uniform brown colour, diameter smaller than 6 mm',
    },
    melanoma = {
      'a dermoscopy image of a melanoma, asymmetric with an irregular border and several colours',
      'dermoscopic image of a malignant melanoma',
      'a large lesion with a blue-white veil and colour variegation',
      'dermoscopy of a melanoma with an irregular, notched border, three or more colours and a diameter larger than 6 mm',
    },
  },
  checklists = {
    nevus = {
      { pos = 'symmetric shape', neg = 'asymmetric shape', oracle = 'symmetric_shape', expect = true },
      { pos = 'smooth, regular border', neg = 'irregular, notched border', oracle = 'regular_border', expect = true },
      { pos = 'one or two colours', neg = 'three or more colours', oracle = 'one_or_two_colours', expect = true },
      { pos = 'no blue-white veil', neg = 'blue-white veil', oracle = 'blue_white_structures', expect = false },
      { pos = 'diameter smaller than 6 mm', neg = 'diameter larger than 6 mm', oracle = 'diameter_large', expect = false },
    },
    melanoma = {
      { pos = 'asymmetric shape', neg = 'symmetric shape', oracle = 'asymmetry', expect = true },
      { pos = 'irregular, notched border', neg = 'smooth, regular border', oracle = 'irregular_border', expect = true },
      { pos = 'three or more colours', neg = 'one or two colours', oracle = 'three_or_more_colours', expect = true },
      { pos = 'blue-white veil', neg = 'no blue-white veil', oracle = 'blue_white_structures', expect = true },
      { pos = 'diameter larger than 6 mm', neg = 'diameter smaller than 6 mm', oracle = 'diameter_large', expect = true },
    },
  },
  sources = 'Written from the ABCD rule of dermoscopy (asymmetry, border, colour, diameter > 6 mm) and the blue-white veil; not yet reviewed by a clinician.',
}
