-- Knowledge artifacts for RetinaMNIST (MedMNIST v2, from DeepDRiD): colour fundus photographs,
-- 28x28 RGB, labelled with the diabetic retinopathy grade of the International Clinical DR
-- Severity Scale: 0 no apparent retinopathy, 1 mild NPDR (micro-aneurysms only), 2 moderate
-- NPDR (more than micro-aneurysms, less than severe), 3 severe NPDR (the 4-2-1 rule: > 20
-- intraretinal haemorrhages in each of four quadrants, venous beading in two or more, or
-- prominent IRMA in one or more; no proliferation), 4 proliferative DR (neovascularisation,
-- vitreous or preretinal haemorrhage). Keyed by the class names craft.data.medmnist gives.
-- Resolution: at 28 px the whole fundus is ~26 px across and a micro-aneurysm is far below a
-- pixel, so grades 0 and 1 look alike; only confluent haemorrhages, clusters of exudates, large
-- preretinal haemorrhages and fibrovascular tissue can change the image. The checklists still
-- state each grade's defining findings (so the text side is clinically right for larger images);
-- items with no oracle: on real data the checklist audit is the VLM's verdict only.
return {
  dataset = 'retinamnist',
  modality = 'fundus',
  classes = { 'grade 0', 'grade 1', 'grade 2', 'grade 3', 'grade 4' },
  generic_prompt = 'a fundus photograph',
  negative_prompt = '',
  prompts = {
    ['grade 0'] = {
      'a fundus photograph with no diabetic retinopathy',
      'colour fundus photograph of a healthy retina without lesions',
      'retinal fundus image, no apparent retinopathy, normal optic disc and macula',
      'a diabetic eye screening photograph with no haemorrhages, microaneurysms or exudates',
    },
    ['grade 1'] = {
      'a fundus photograph with mild non-proliferative diabetic retinopathy',
      'colour fundus photograph with a few microaneurysms only',
      'mild diabetic retinopathy: scattered tiny red dots of microaneurysms, no haemorrhages or exudates',
      'retinal fundus image with minimal diabetic changes, microaneurysms only',
    },
    ['grade 2'] = {
      'a fundus photograph with moderate non-proliferative diabetic retinopathy',
      'colour fundus photograph with dot and blot haemorrhages and yellow hard exudates',
      'moderate diabetic retinopathy: microaneurysms, intraretinal haemorrhages, hard exudates and cotton '
      .. 'wool spots',
      'retinal fundus image with red haemorrhages and yellow exudates in fewer than four quadrants',
    },
    ['grade 3'] = {
      'a fundus photograph with severe non-proliferative diabetic retinopathy',
      'colour fundus photograph with many intraretinal haemorrhages in all four quadrants',
      'severe diabetic retinopathy with venous beading and intraretinal microvascular abnormalities, no new '
      .. 'vessels',
      'retinal fundus image with extensive blot haemorrhages, cotton wool spots and beaded veins',
    },
    ['grade 4'] = {
      'a fundus photograph with proliferative diabetic retinopathy',
      'colour fundus photograph with neovascularisation of the optic disc',
      'proliferative diabetic retinopathy with new vessels and preretinal haemorrhage',
      'retinal fundus image with fibrovascular proliferation and vitreous haemorrhage',
    },
  },
  checklists = {
    ['grade 0'] = {
      { pos = 'no microaneurysms', neg = 'microaneurysms' },
      { pos = 'no retinal haemorrhages', neg = 'retinal haemorrhages' },
      { pos = 'no hard exudates', neg = 'yellow hard exudates' },
      { pos = 'normal retinal vessels', neg = 'abnormal, beaded or new vessels' },
    },
    ['grade 1'] = {
      { pos = 'a few microaneurysms', neg = 'no microaneurysms' },
      { pos = 'no blot haemorrhages', neg = 'dot and blot haemorrhages' },
      { pos = 'no hard exudates', neg = 'yellow hard exudates' },
      { pos = 'no new vessels', neg = 'new vessels' },
    },
    ['grade 2'] = {
      { pos = 'dot and blot haemorrhages', neg = 'no retinal haemorrhages' },
      { pos = 'yellow hard exudates', neg = 'no hard exudates' },
      { pos = 'cotton wool spots', neg = 'no cotton wool spots' },
      { pos = 'microaneurysms', neg = 'no microaneurysms' },
      { pos = 'no new vessels', neg = 'new vessels' },
    },
    ['grade 3'] = {
      { pos = 'many intraretinal haemorrhages in all four quadrants',
      neg = 'few or no retinal haemorrhages' },
      { pos = 'venous beading', neg = 'smooth, regular veins' },
      { pos = 'intraretinal microvascular abnormalities', neg = 'normal retinal capillaries' },
      { pos = 'cotton wool spots', neg = 'no cotton wool spots' },
      { pos = 'no new vessels', neg = 'new vessels' },
    },
    ['grade 4'] = {
      { pos = 'new vessels on the optic disc', neg = 'no new vessels on the optic disc' },
      { pos = 'new vessels elsewhere on the retina', neg = 'no new vessels elsewhere' },
      { pos = 'preretinal or vitreous haemorrhage', neg = 'clear view without vitreous haemorrhage' },
      { pos = 'fibrovascular proliferation', neg = 'no fibrous tissue on the retina' },
    },
  },
  sources = 'Written (LLM-drafted) from the International Clinical Diabetic Retinopathy Disease Severity '
  .. 'Scale '
    .. '(Wilkinson et al. 2003, including the 4-2-1 rule for severe NPDR) and from the resolution of the 28 '
    .. 'px images. '
    .. 'DeepDRiD grades. Not yet reviewed by a clinician.',
}
