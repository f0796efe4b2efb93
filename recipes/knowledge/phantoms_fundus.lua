-- Knowledge artifacts for the retinal fundus phantoms (normal, glaucoma, diabetic retinopathy).
-- Each checklist item names the oracle measurement that audits it (see docs/knowledge.md).
return {
  modality = 'fundus',
  classes = { 'normal', 'glaucoma', 'diabetic_retinopathy' },
  generic_prompt = 'a fundus photograph',
  negative_prompt = '',
  prompts = {
    normal = {
      'a normal fundus photograph with a healthy optic disc and no lesions',
      'fundus image of a healthy retina',
      'a normal retina, small optic cup',
      'colour fundus photograph, normal cup-to-disc ratio, no haemorrhages or exudates',
    },
    glaucoma = {
      'a fundus photograph with a large optic cup, cup-to-disc ratio above 0.6',
      'fundus image showing glaucomatous optic disc cupping',
      'glaucoma, large cup-to-disc ratio, no retinal lesions',
      'retinal fundus image with an enlarged optic cup and a thin neuroretinal rim',
    },
    diabetic_retinopathy = {
      'a fundus photograph with haemorrhages, microaneurysms and hard exudates',
      'fundus image showing diabetic retinopathy',
      'retina with red dots and yellow exudates',
      'colour fundus photograph with dot and blot haemorrhages and yellow hard exudates',
    },
  },
  checklists = {
    normal = {
      { pos = 'healthy optic disc', neg = 'unhealthy optic disc', oracle = 'healthy_disc', expect = true },
      { pos = 'no retinal lesions', neg = 'retinal lesions present', oracle = 'no_retinal_lesions', expect = true },
      { pos = 'cup-to-disc ratio below 0.6', neg = 'cup-to-disc ratio above 0.6', oracle = 'cdr_gt_0.6', expect = false },
      { pos = 'no haemorrhages', neg = 'retinal haemorrhages', oracle = 'haemorrhages_present', expect = false },
    },
    glaucoma = {
      { pos = 'cup-to-disc ratio above 0.6', neg = 'cup-to-disc ratio below 0.6', oracle = 'cdr_gt_0.6', expect = true },
      { pos = 'large optic cup', neg = 'small optic cup', oracle = 'healthy_disc', expect = false },
      { pos = 'optic disc cupping', neg = 'no optic disc cupping', oracle = 'cdr_gt_0.6', expect = true },
      { pos = 'no retinal lesions', neg = 'lesions on the retina', oracle = 'no_retinal_lesions', expect = true },
    },
    diabetic_retinopathy = {
      { pos = 'retinal haemorrhages', neg = 'no haemorrhages', oracle = 'haemorrhages_present', expect = true },
      { pos = 'microaneurysms', neg = 'no microaneurysms', oracle = 'microaneurysms_present', expect = true },
      { pos = 'yellow hard exudates', neg = 'no hard exudates', oracle = 'hard_exudates_present', expect = true },
      { pos = 'healthy optic disc', neg = 'unhealthy optic disc', oracle = 'healthy_disc', expect = true },
    },
  },
  sources = 'Written from ophthalmology definitions (vertical cup-to-disc ratio > 0.6 suspicious for glaucoma; haemorrhages, micro-aneurysms and hard exudates for non-proliferative DR); not yet reviewed by a clinician.',
}
