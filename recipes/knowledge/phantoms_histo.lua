-- Knowledge artifacts for the H&E histopathology phantoms (docs/phantoms.md, `histo`): benign
-- breast tissue, invasive ductal carcinoma, mucinous carcinoma. Keyed by class name as craft.cas
-- expects; every checklist item names the oracle item of its own class that audits it, except
-- one marked oracle = false with its reason (see docs/knowledge.md).
return {
  modality = 'histo',
  classes = { 'benign', 'ductal_carcinoma', 'mucinous_carcinoma' },
  generic_prompt = 'a histopathology image',
  negative_prompt = '',
  prompts = {
    benign = {
      'a histology image of benign breast tissue with round glands',
      'H&E section of benign glands with uniform nuclei',
      'H&E stained breast tissue: regular round glands lined by uniform nuclei in pink fibrous stroma',
      'benign breast tissue, preserved glandular architecture, open white lumens, low nuclear density',
      'histopathology of benign breast glands with small regular nuclei evenly spaced around each lumen',
      'microscopy image, H&E stain, well-formed round glands and sparse stromal nuclei, no atypia',
    },
    ductal_carcinoma = {
      'a histology image of invasive ductal carcinoma with densely packed pleomorphic nuclei',
      'H&E section showing ductal carcinoma',
      'H&E stained breast tissue: crowded pleomorphic nuclei with loss of glandular architecture',
      'invasive ductal carcinoma, solid nests of tumour cells with hyperchromatic nuclei of varying size, no '
      .. 'glands',
      'histopathology of high-grade ductal carcinoma: high nuclear density, marked nuclear pleomorphism, no '
      .. 'lumens',
      'microscopy image, H&E stain, solid tumour nests filling the field, architecture lost',
    },
    mucinous_carcinoma = {
      'a histology image of mucinous carcinoma with pools of mucin',
      'H&E section showing mucinous carcinoma',
      'H&E stained breast tissue: clusters of tumour cells floating in pools of pale extracellular mucin',
      'mucinous (colloid) carcinoma of the breast, abundant pale blue-grey mucin with small floating tumour '
      .. 'clusters',
      'histopathology of mucinous carcinoma: lakes of extracellular mucin containing islands of tumour cells',
      'microscopy image, H&E stain, pale mucin pools over much of the field with floating tumour cell '
      .. 'clusters',
    },
  },
  checklists = {
    benign = {
      { pos = 'round glands with open lumens', neg = 'no gland formation', oracle = 'round_glands' },
      { pos = 'preserved glandular architecture', neg = 'loss of glandular architecture',
      oracle = 'round_glands' },
      { pos = 'regular, uniform nuclei', neg = 'pleomorphic nuclei', oracle = 'regular_nuclei' },
      { pos = 'small nuclei of even size, evenly spaced', neg = 'nuclei of varying size and shape',
      oracle = 'regular_nuclei' },
    },
    ductal_carcinoma = {
      { pos = 'high nuclear density', neg = 'low nuclear density', oracle = 'high_nuclear_density' },
      { pos = 'crowded, densely packed nuclei', neg = 'sparse, evenly spaced nuclei',
      oracle = 'high_nuclear_density' },
      { pos = 'pleomorphic nuclei', neg = 'regular, uniform nuclei', oracle = 'pleomorphic_nuclei' },
      { pos = 'nuclei of varying size and shape', neg = 'nuclei of uniform size',
      oracle = 'pleomorphic_nuclei' }, { pos = 'loss of glandular architecture, solid nests of tumour cells',
      neg = 'preserved glandular architecture',
        oracle = 'lost_architecture' },
      { pos = 'hyperchromatic, darkly stained nuclei', neg = 'pale, normally stained nuclei', oracle = false,
        reason = 'the oracle measures nuclear area, count and size variation, not haematoxylin intensity per '
        .. 'nucleus' },
    },
    mucinous_carcinoma = {
      { pos = 'pools of pale extracellular mucin', neg = 'no extracellular mucin', oracle = 'mucin_pools' },
      { pos = 'pale blue-grey mucin over much of the field', neg = 'pink stroma without mucin',
      oracle = 'mucin_pools' },
      { pos = 'clusters of tumour cells floating in pools of pale extracellular mucin',
      neg = 'no floating tumour clusters',
        oracle = 'floating_tumour_clusters' }, { pos = 'small islands of tumour cells surrounded by mucin',
      neg = 'tumour cells in solid sheets without mucin',
        oracle = 'floating_tumour_clusters' },
    },
  },
  sources = 'Written (LLM-drafted) from breast pathology definitions: invasive ductal carcinoma as crowded, '
  .. 'pleomorphic, '
    .. 'hyperchromatic nuclei with loss of glandular architecture; mucinous (colloid) carcinoma as clusters '
    .. 'of tumour cells '
    .. 'floating in pools of extracellular mucin; benign tissue as round glands lined by uniform nuclei. '
    .. 'Mapped to the '
    .. 'phantom oracle items by hand. Not yet reviewed by a clinician.',
}
