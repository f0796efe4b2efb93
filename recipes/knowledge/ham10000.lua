-- Knowledge artifacts for HAM10000 nevus vs melanoma (../shared/data/ham10000-mel-nv: dermoscopy,
-- 200x150 RGB JPEGs and a 28x28 npz; label 0 nevus, 1 melanoma). Keyed by class name in label
-- order, as craft.cas expects (craft.data.medmnist gives the same names).
-- The checklists are the ABC of the ABCD rule plus the dermoscopic melanoma-specific structures
-- (atypical network, irregular dots/globules and blotches, streaks, blue-white veil, regression).
-- Diameter is left out: the photographs carry no scale and come from several dermoscopes, so
-- 6 mm cannot be read off the image. Resolution: at 200x150 the network, dots and streaks are
-- a few pixels wide; at 28 px only shape, border and colours remain, and the network, dot and
-- streak items mostly measure texture. Items have no oracle: on real data the checklist audit
-- is the VLM's verdict only.
return {
  dataset = 'ham10000',
  modality = 'derm',
  classes = { 'nevus', 'melanoma' },
  generic_prompt = 'a dermoscopy image of a skin lesion',
  negative_prompt = '',
  prompts = {
    nevus = {
      'a dermoscopy image of a benign melanocytic nevus with a regular pigment network',
      'dermoscopic image of a common mole, symmetric with a smooth regular border',
      'dermoscopy of a benign nevus with a uniform brown reticular pattern fading at the periphery',
      'a symmetric, evenly pigmented benign nevus with one or two shades of brown',
      'dermatoscopy photograph of a benign nevus with regular brown globules',
      'dermoscopy of a homogeneous light brown benign nevus without melanoma-specific structures',
    },
    melanoma = {
      'a dermoscopy image of a melanoma with an atypical pigment network',
      'dermoscopic image of a malignant melanoma, asymmetric with an irregular border',
      'dermoscopy of a melanoma with three or more colours and a blue-white veil',
      'a melanoma with irregular dots, globules and streaks at the periphery',
      'dermatoscopy photograph of a melanoma with regression structures: white scar-like areas and grey '
      .. 'peppering',
      'an asymmetric pigmented lesion with irregular black blotches and colour variegation, malignant '
      .. 'melanoma',
    },
  },
  checklists = {
    nevus = {
      { pos = 'symmetric shape', neg = 'asymmetric shape' },
      { pos = 'smooth, regular border', neg = 'irregular, notched border' },
      { pos = 'one or two colours', neg = 'three or more colours' },
      { pos = 'regular pigment network fading at the periphery',
      neg = 'atypical pigment network with thick irregular lines' },
      { pos = 'regular, evenly distributed dots and globules', neg = 'irregular dots and globules' },
      { pos = 'no blue-white veil', neg = 'blue-white veil' },
    },
    melanoma = {
      { pos = 'asymmetric shape', neg = 'symmetric shape' },
      { pos = 'irregular, notched border', neg = 'smooth, regular border' },
      { pos = 'three or more colours', neg = 'one or two colours' },
      { pos = 'atypical pigment network', neg = 'regular pigment network' },
      { pos = 'irregular dots, globules and blotches',
      neg = 'regular, evenly distributed dots and globules' },
      { pos = 'irregular streaks at the periphery', neg = 'no peripheral streaks' },
      { pos = 'blue-white veil', neg = 'no blue-white veil' },
      { pos = 'regression structures: white scar-like areas and peppering',
      neg = 'no regression structures' },
    },
  },
  sources = 'Written (LLM-drafted) from the ABCD rule of dermoscopy and the dermoscopic melanoma-specific '
  .. 'structures '
    .. '(atypical pigment network, irregular dots/globules and blotches, irregular streaks, blue-white veil, '
    .. 'regression '
    .. 'structures; cf. the 7-point checklist) and from the images\' resolution. HAM10000 labels. '
    .. 'Not yet reviewed by a clinician.',
}
