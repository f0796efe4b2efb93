-- Knowledge artifacts for PneumoniaMNIST (MedMNIST v2, from Kermany et al. 2018): paediatric
-- anteroposterior chest radiographs of children aged one to five, labels 0 normal, 1 pneumonia
-- (bacterial and viral together), images 28x28 grey. Keyed by class name in label order, as
-- craft.cas expects (craft.data.medmnist gives the same names).
-- Resolution: at 28 px a lung is ~8 px wide, so only coarse findings survive: overall lung
-- density, a focal or asymmetric opacity, and whether the heart and diaphragm outlines stay
-- sharp (the silhouette sign). Air bronchograms, interstitial lines, small effusions and the
-- costophrenic angles are not resolvable and are left out of the checklists. The items have
-- no oracle: on real data the checklist audit is the VLM's verdict only.
return {
  dataset = 'pneumoniamnist',
  modality = 'cxr',
  classes = { 'normal', 'pneumonia' },
  generic_prompt = 'a paediatric chest x-ray',
  negative_prompt = '',
  prompts = {
    normal = {
      'a normal paediatric chest x-ray with clear lungs',
      'AP chest radiograph of a young child, well-aerated clear lungs, normal heart size',
      'a low-resolution paediatric chest x-ray, no consolidation, sharp heart and diaphragm outlines',
      'frontal chest radiograph of a toddler without airspace opacity',
      'a normal chest x-ray of a child, both lungs equally dark and clear',
      'paediatric AP chest radiograph, no acute cardiopulmonary abnormality',
    },
    pneumonia = {
      'a paediatric chest x-ray with pneumonia',
      'AP chest radiograph of a young child with focal airspace consolidation',
      'a low-resolution paediatric chest x-ray with hazy, increased lung density obscuring the heart border',
      'chest radiograph of a child with lobar consolidation of bacterial pneumonia',
      'a paediatric chest x-ray with patchy bilateral perihilar opacities of viral pneumonia',
      'frontal chest radiograph of a toddler with asymmetric patchy opacity in one lung',
    },
  },
  checklists = {
    normal = {
      { pos = 'clear lung fields', neg = 'patchy airspace opacities' },
      { pos = 'well-aerated lungs of even lucency', neg = 'hazy, increased lung density' },
      { pos = 'sharp heart borders', neg = 'heart border obscured by opacity' },
      { pos = 'sharp diaphragm outlines', neg = 'diaphragm outline obscured by opacity' },
      { pos = 'both lungs equally lucent', neg = 'one lung denser than the other' },
    },
    pneumonia = {
      { pos = 'focal airspace consolidation', neg = 'clear lung fields' },
      { pos = 'patchy airspace opacities', neg = 'well-aerated lungs of even lucency' },
      { pos = 'perihilar opacities', neg = 'clear perihilar regions' },
      { pos = 'heart or diaphragm outline obscured by opacity', neg = 'sharp heart and diaphragm outlines' },
      { pos = 'one lung denser than the other', neg = 'both lungs equally lucent' },
    },
  },
  sources = 'Written (LLM-drafted) from paediatric radiology descriptions of community-acquired pneumonia '
  .. '(focal lobar '
    .. 'consolidation, more typical of bacterial infection; bilateral perihilar or patchy opacities, more '
    .. 'typical of viral '
    .. 'infection; the silhouette sign) and from the resolution of the 28 px images. Kermany et al. 2018 '
    .. 'labels. '
    .. 'Not yet reviewed by a clinician.',
}
