-- Knowledge artifacts for the dermoscopy phantoms (docs/phantoms.md, `derm`): nevus vs melanoma
-- by the ABCD rule (asymmetry, border, colours, diameter over 6 mm) plus the blue-white veil.
-- Keyed by class name as craft.cas expects; every checklist item names the oracle item of its
-- own class that audits it (see docs/knowledge.md). A phantom image is 15 mm wide.
return {
  modality = 'derm',
  classes = { 'nevus', 'melanoma' },
  generic_prompt = 'a dermoscopy image of a skin lesion',
  negative_prompt = '',
  prompts = {
    nevus = {
      'a dermoscopy image of a benign nevus, symmetric with a regular border',
      'dermoscopic image of a common mole',
      'dermoscopy of a benign melanocytic nevus: symmetric, smooth regular border, uniform brown colour',
      'a small, round, evenly pigmented nevus with one or two shades of brown',
      'dermatoscopy photograph of a benign pigmented nevus, diameter smaller than 6 mm, no blue-white veil',
      'a symmetric oval mole with a sharp smooth edge and a faint regular pigment network',
    },
    melanoma = {
      'a dermoscopy image of a melanoma, asymmetric with an irregular border and several colours',
      'dermoscopic image of a malignant melanoma',
      'dermoscopy of a melanoma with an irregular, notched border, three or more colours and a diameter '
      .. 'larger than 6 mm',
      'an asymmetric pigmented lesion with light brown, dark brown and black areas and a blue-white veil',
      'malignant melanoma on dermoscopy: asymmetry, ragged notched edge, colour variegation, blue-white '
      .. 'structures',
      'a large irregular melanoma over 6 mm across with blue-grey and white areas',
    },
  },
  checklists = {
    nevus = {
      { pos = 'symmetric shape', neg = 'asymmetric shape', oracle = 'symmetric_shape' },
      { pos = 'round or oval outline, symmetric about both axes',
      neg = 'lopsided outline, asymmetric about both axes',
        oracle = 'symmetric_shape' },
      { pos = 'smooth, regular border', neg = 'irregular, notched border', oracle = 'regular_border' },
      { pos = 'sharply demarcated, even edge', neg = 'ragged edge with notches', oracle = 'regular_border' },
      { pos = 'one or two colours', neg = 'three or more colours', oracle = 'one_or_two_colours' },
      { pos = 'uniform brown colour', neg = 'variegated colour', oracle = 'one_or_two_colours' },
    },
    melanoma = {
      { pos = 'asymmetric shape', neg = 'symmetric shape', oracle = 'asymmetry' },
      { pos = 'irregular, notched border', neg = 'smooth, regular border', oracle = 'irregular_border' },
      { pos = 'three or more colours', neg = 'one or two colours', oracle = 'three_or_more_colours' },
      { pos = 'colour variegation: light brown, dark brown, black and blue-grey',
      neg = 'uniform brown colour',
        oracle = 'three_or_more_colours' },
      { pos = 'blue-white veil', neg = 'no blue-white veil', oracle = 'blue_white_structures' },
      { pos = 'diameter larger than 6 mm', neg = 'diameter smaller than 6 mm', oracle = 'diameter_large' },
    },
  },
  sources = 'Written (LLM-drafted) from the ABCD rule of dermoscopy (asymmetry, border irregularity, three '
  .. 'or more colours, '
    .. 'diameter over 6 mm) and the blue-white veil as a melanoma-specific structure. Mapped to the phantom '
    .. 'oracle items by '
    .. 'hand. Not yet reviewed by a clinician.',
}
