-- Knowledge artifacts for the H&E histopathology phantoms (benign, ductal carcinoma, mucinous
-- carcinoma). Each checklist item names the oracle measurement that audits it.
return {
  modality = 'histo',
  classes = { 'benign', 'ductal_carcinoma', 'mucinous_carcinoma' },
  generic_prompt = 'a histopathology image',
  negative_prompt = '',
  prompts = {
    benign = {
      'a histology image of benign breast tissue with round glands',
      'H&E section of benign glands with uniform nuclei',
      'benign tissue, preserved gland architecture',
      'H&E stained breast tissue with well-formed round glands lined by small regular nuclei',
    },
    ductal_carcinoma = {
      'a histology image of invasive ductal carcinoma with densely packed pleomorphic nuclei',
      'H&E section showing ductal carcinoma',
      'solid tumour nests, loss of architecture',
      'H&E stained breast tissue with crowded sheets of irregular nuclei of varying size and no glands',
    },
    mucinous_carcinoma = {
      'a histology image of mucinous carcinoma with pools of mucin',
      'H&E section showing mucinous carcinoma',
      'tumour cell clusters floating in extracellular mucin',
      'H&E stained breast tissue with pale mucin pools containing small floating clusters of tumour cells',
    },
  },
  checklists = {
    benign = {
      { pos = 'round glands with open lumens', neg = 'no gland formation', oracle = 'round_glands', expect = true },
      { pos = 'regular, uniform nuclei', neg = 'pleomorphic nuclei', oracle = 'regular_nuclei', expect = true },
      { pos = 'low nuclear density', neg = 'high nuclear density', oracle = 'high_nuclear_density', expect = false },
      { pos = 'no mucin pools', neg = 'pools of extracellular mucin', oracle = 'mucin_pools', expect = false },
    },
    ductal_carcinoma = {
      { pos = 'high nuclear density', neg = 'low nuclear density', oracle = 'high_nuclear_density', expect = true },
      { pos = 'pleomorphic nuclei', neg = 'regular, uniform nuclei', oracle = 'pleomorphic_nuclei', expect = true },
      { pos = 'loss of normal architecture', neg = 'preserved architecture', oracle = 'lost_architecture', expect = true },
      { pos = 'no mucin pools', neg = 'pools of extracellular mucin', oracle = 'mucin_pools', expect = false },
    },
    mucinous_carcinoma = {
      { pos = 'pools of extracellular mucin', neg = 'no mucin', oracle = 'mucin_pools', expect = true },
      { pos = 'tumour cell clusters floating in mucin', neg = 'no floating clusters', oracle = 'floating_tumour_clusters', expect = true },
      { pos = 'pale mucin pools', neg = 'no mucin pools', oracle = 'mucin_pools', expect = true },
      { pos = 'no gland formation', neg = 'round glands with open lumens', oracle = 'round_glands', expect = false },
    },
  },
  sources = 'Written from breast pathology definitions (invasive ductal carcinoma: crowded pleomorphic nuclei, loss of glandular architecture; mucinous carcinoma: tumour clusters floating in extracellular mucin); not yet reviewed by a clinician.',
}
