-- Knowledge artifacts for RetinaMNIST (fundus photographs, 28x28 RGB; diabetic retinopathy
-- grades 0-4 on the international clinical DR severity scale). At 28 px single
-- micro-aneurysms are not resolvable; the prompts describe what each grade shows.
return {
  dataset = 'retinamnist',
  classes = { 'grade 0', 'grade 1', 'grade 2', 'grade 3', 'grade 4' },
  generic_prompt = 'a fundus photograph',
  negative_prompt = '',
  prompts = {
    ['grade 0'] = { 'a fundus photograph with no diabetic retinopathy', 'a healthy retina without lesions',
      'colour fundus image, no apparent retinopathy', 'normal fundus, clear retina' },
    ['grade 1'] = { 'a fundus photograph with mild non-proliferative diabetic retinopathy',
      'retina with a few micro-aneurysms only', 'mild diabetic retinopathy, scattered micro-aneurysms',
      'fundus image with minimal red dots' },
    ['grade 2'] = { 'a fundus photograph with moderate non-proliferative diabetic retinopathy',
      'retina with haemorrhages and hard exudates', 'moderate diabetic retinopathy with dot and blot haemorrhages',
      'fundus image with yellow exudates and red lesions' },
    ['grade 3'] = { 'a fundus photograph with severe non-proliferative diabetic retinopathy',
      'retina with many haemorrhages in all quadrants', 'severe diabetic retinopathy with venous beading',
      'fundus image with extensive intraretinal haemorrhages' },
    ['grade 4'] = { 'a fundus photograph with proliferative diabetic retinopathy',
      'retina with neovascularisation and vitreous haemorrhage', 'proliferative diabetic retinopathy with new vessels',
      'fundus image with preretinal haemorrhage' },
  },
  checklists = {
    ['grade 0'] = {
      { pos = 'no retinal haemorrhages', neg = 'retinal haemorrhages' },
      { pos = 'no hard exudates', neg = 'hard exudates' },
      { pos = 'no micro-aneurysms', neg = 'micro-aneurysms' },
      { pos = 'healthy optic disc', neg = 'abnormal optic disc' },
    },
    ['grade 1'] = {
      { pos = 'a few micro-aneurysms', neg = 'no micro-aneurysms' },
      { pos = 'no hard exudates', neg = 'hard exudates' },
      { pos = 'no large haemorrhages', neg = 'large haemorrhages' },
      { pos = 'no new vessels', neg = 'new vessels on the disc' },
    },
    ['grade 2'] = {
      { pos = 'dot and blot haemorrhages', neg = 'no haemorrhages' },
      { pos = 'hard exudates', neg = 'no hard exudates' },
      { pos = 'micro-aneurysms', neg = 'no micro-aneurysms' },
      { pos = 'no new vessels', neg = 'new vessels on the disc' },
    },
    ['grade 3'] = {
      { pos = 'many haemorrhages in all four quadrants', neg = 'few or no haemorrhages' },
      { pos = 'venous beading', neg = 'smooth regular veins' },
      { pos = 'hard exudates', neg = 'no hard exudates' },
      { pos = 'no new vessels', neg = 'new vessels on the disc' },
    },
    ['grade 4'] = {
      { pos = 'new vessels on the disc or elsewhere', neg = 'no new vessels' },
      { pos = 'preretinal or vitreous haemorrhage', neg = 'no vitreous haemorrhage' },
      { pos = 'extensive haemorrhages', neg = 'few haemorrhages' },
      { pos = 'fibrovascular proliferation', neg = 'no fibrous tissue' },
    },
  },
  sources = 'Written from the International Clinical Diabetic Retinopathy Disease Severity Scale; no clinician review yet.',
}
