-- Knowledge artifacts for HAM10000 nevus vs melanoma (dermoscopy; label 0 nevus, 1 melanoma in
-- ../shared/data/ham10000-mel-nv): the ABCD criteria and melanoma-specific structures.
return {
  dataset = 'ham10000',
  classes = { 'nevus', 'melanoma' },
  generic_prompt = 'a dermoscopy image of a skin lesion',
  negative_prompt = '',
  prompts = {
    nevus = {
      'a dermoscopy image of a benign melanocytic nevus with a regular pigment network',
      'dermoscopic image of a common mole, symmetric with a smooth border',
      'a small evenly pigmented benign nevus',
      'dermoscopy of a benign nevus with uniform brown colour',
    },
    melanoma = {
      'a dermoscopy image of a melanoma with an atypical pigment network',
      'dermoscopic image of a malignant melanoma, asymmetric with an irregular border',
      'a melanoma with several colours and a blue-white veil',
      'dermoscopy of a melanoma with irregular dots, streaks and regression structures',
    },
  },
  checklists = {
    nevus = {
      { pos = 'symmetric shape', neg = 'asymmetric shape' },
      { pos = 'smooth, regular border', neg = 'irregular, notched border' },
      { pos = 'one or two colours', neg = 'three or more colours' },
      { pos = 'regular pigment network', neg = 'atypical pigment network' },
      { pos = 'no blue-white veil', neg = 'blue-white veil' },
    },
    melanoma = {
      { pos = 'asymmetric shape', neg = 'symmetric shape' },
      { pos = 'irregular, notched border', neg = 'smooth, regular border' },
      { pos = 'three or more colours', neg = 'one or two colours' },
      { pos = 'blue-white veil', neg = 'no blue-white veil' },
      { pos = 'atypical pigment network', neg = 'regular pigment network' },
      { pos = 'irregular streaks at the periphery', neg = 'no streaks' },
    },
  },
  sources = 'Written from the ABCD rule and the dermoscopic melanoma-specific structures (atypical network, blue-white veil, irregular streaks); no clinician review yet.',
}
