-- Knowledge artifacts for the retinal fundus phantoms (docs/phantoms.md, `fundus`): normal,
-- glaucoma (cup-to-disc ratio above 0.6), diabetic retinopathy (haemorrhages, micro-aneurysms,
-- hard exudates). Keyed by class name as craft.cas expects; every checklist item names the
-- oracle item of its own class that audits it (see docs/knowledge.md).
-- "microaneurysms" is spelled as in the built-in CLIP's training captions
-- (recipes/pretrain/captions.lua) so that its text tower knows the word.
return {
  modality = 'fundus',
  classes = { 'normal', 'glaucoma', 'diabetic_retinopathy' },
  generic_prompt = 'a fundus photograph',
  negative_prompt = '',
  prompts = {
    normal = {
      'a normal fundus photograph with a healthy optic disc and no lesions',
      'fundus image of a healthy retina',
      'colour fundus photograph, small optic cup, cup-to-disc ratio below 0.6, healthy neuroretinal rim',
      'a normal retina: healthy optic disc, clear macula, no haemorrhages or exudates',
      'retinal fundus image with normal vessels and a normal cup-to-disc ratio, no retinopathy',
      'a healthy posterior pole on colour fundus photography, no retinal lesions',
    },
    glaucoma = {
      'a fundus photograph with a large optic cup, cup-to-disc ratio above 0.6',
      'fundus image showing glaucomatous optic disc cupping',
      'colour fundus photograph of glaucoma: enlarged pale optic cup, thin neuroretinal rim, no retinal '
      .. 'lesions',
      'retinal fundus image with a cup-to-disc ratio of about 0.8 and an otherwise clear retina',
      'glaucomatous optic neuropathy, the pale cup occupying most of the optic disc',
      'a fundus photograph of suspected glaucoma, large cup-to-disc ratio, no haemorrhages or exudates',
    },
    diabetic_retinopathy = {
      'a fundus photograph with haemorrhages, microaneurysms and hard exudates',
      'fundus image showing diabetic retinopathy',
      'colour fundus photograph of non-proliferative diabetic retinopathy with dot-blot haemorrhages and '
      .. 'microaneurysms',
      'retina with scattered microaneurysms and yellow hard exudates around the macula',
      'diabetic retinopathy: dark red blot haemorrhages, tiny red microaneurysms, yellow exudates, healthy '
      .. 'optic disc',
      'retinal fundus image with diabetic retinal lesions: blot and flame-shaped haemorrhages and hard '
      .. 'exudates',
    },
  },
  checklists = {
    normal = {
      { pos = 'healthy optic disc with a small central cup', neg = 'enlarged optic cup',
      oracle = 'healthy_disc' },
      { pos = 'cup-to-disc ratio below 0.6', neg = 'cup-to-disc ratio above 0.6', oracle = 'healthy_disc' },
      { pos = 'healthy neuroretinal rim', neg = 'thin neuroretinal rim', oracle = 'healthy_disc' },
      { pos = 'no retinal lesions', neg = 'retinal lesions present', oracle = 'no_retinal_lesions' },
      { pos = 'clear retina without lesions', neg = 'retina with red and yellow lesions',
      oracle = 'no_retinal_lesions' },
    },
    glaucoma = {
      { pos = 'enlarged optic cup, cup-to-disc ratio above 0.6',
      neg = 'small optic cup, healthy neuroretinal rim', oracle = 'cdr_gt_0.6' },
      { pos = 'large cup-to-disc ratio', neg = 'small cup-to-disc ratio', oracle = 'cdr_gt_0.6' },
      { pos = 'optic disc cupping', neg = 'no optic disc cupping', oracle = 'cdr_gt_0.6' },
      { pos = 'thin neuroretinal rim', neg = 'healthy neuroretinal rim', oracle = 'cdr_gt_0.6' },
      { pos = 'pale cup occupying most of the disc', neg = 'small pale cup in the centre of the disc',
      oracle = 'cdr_gt_0.6' },
    },
    diabetic_retinopathy = {
      { pos = 'dot-blot haemorrhages', neg = 'no retinal haemorrhages', oracle = 'haemorrhages_present' },
      { pos = 'red blot haemorrhages', neg = 'clear retina without lesions',
      oracle = 'haemorrhages_present' },
      { pos = 'scattered microaneurysms', neg = 'no microaneurysms', oracle = 'microaneurysms_present' },
      { pos = 'small red dots of microaneurysms', neg = 'no red dots', oracle = 'microaneurysms_present' },
      { pos = 'yellow hard exudates', neg = 'no hard exudates', oracle = 'hard_exudates_present' },
      { pos = 'hard exudates near the macula', neg = 'clear macula without exudates',
      oracle = 'hard_exudates_present' },
    },
  },
  sources = 'Written (LLM-drafted) from ophthalmology definitions: a vertical cup-to-disc ratio above 0.6 '
  .. 'with a thinned '
    .. 'neuroretinal rim as suspicious for glaucoma; dot-blot haemorrhages, micro-aneurysms and hard '
    .. 'exudates as the lesions '
    .. 'of non-proliferative diabetic retinopathy. Mapped to the phantom oracle items by hand. Not yet '
    .. 'reviewed by a clinician.',
}
