-- recipes/pretrain/captions.lua: the text side of the built-in models.
--   K.caption(modality, row, rand)  a clinical caption of one phantom from its ground truth
--                                   (class, generator parameters), for the CLIP reward VLM
--   K.generic(modality, rand)       a label-free caption (modality only), for the foundation UNet
--   K.prompts[m][class]             zero-shot class prompts (CAS dimension 1, the CLIP check)
--   K.checklists[m][class]          checklist items {item=, pos=, neg=} (CAS dimension 2): each
--                                   names the oracle item it mirrors (craft.phantoms.items)
--   K.truth(modality, row)          item name -> bool, from the generator's parameters
-- `rand` is a function(n) -> integer in 1..n (a seeded stream: captions are reproducible).
-- Captions mix the class finding, measured values and checklist statements; a statement is
-- written positive when the item holds and as its negation when it does not, so the VLM learns
-- both sides that dimension 2 compares.
local K = {}

local function pick(list, rand) return list[rand(#list)] end

---------------------------------------------------------------- modality names
K.modality = {
  cxr = { 'chest x-ray', 'frontal chest radiograph', 'PA chest x-ray', 'chest radiograph' },
  fundus = { 'fundus photograph', 'retinal fundus image', 'colour fundus photograph',
  'fundus image of the retina' }, derm = { 'dermoscopy image', 'dermoscopic image of a pigmented skin lesion',
  'dermatoscopy photograph of a skin lesion' },
  histo = { 'histopathology image', 'H&E stained breast tissue section', 'histology slide of breast tissue',
  'microscopy image, H&E stain' },
}

-- Label-free captions for the foundation model: modality and generic, non-diagnostic words.
K.generic_captions = {
  cxr = { 'a chest x-ray', 'a frontal chest radiograph', 'a chest radiograph',
  'an x-ray image of the chest' },
  fundus = { 'a fundus photograph', 'a retinal fundus image', 'a colour photograph of the retina',
  'a fundus image' },
  derm = { 'a dermoscopy image of a skin lesion', 'a dermoscopic photograph of a pigmented skin lesion',
    'a close-up dermoscopy image of the skin', 'a dermatoscopy image' },
  histo = { 'a histopathology image', 'an H&E stained histology slide', 'a microscopy image of breast tissue',
    'a histology image of tissue' },
}
function K.generic(m, rand) return pick(K.generic_captions[m], rand) end

---------------------------------------------------------------- checklist items
-- Per oracle item: positive statements and their negations (several wordings each).
K.items = {
  cxr = {
    normal_heart_size = { pos = { 'normal heart size', 'normal cardiac silhouette', 'heart not enlarged' },
      neg = { 'enlarged heart', 'enlarged cardiac silhouette', 'increased heart size' } },
    clear_lung_fields = { pos = { 'clear lung fields', 'lungs are clear', 'no focal airspace opacity' },
      neg = { 'airspace opacity in the lung', 'lung fields not clear', 'hazy lung opacity' } },
    ['ctr_gt_0.5'] = { pos = { 'cardiothoracic ratio above 0.5', 'cardiothoracic ratio greater than 0.5',
    'wide cardiac silhouette' },
      neg = { 'cardiothoracic ratio below 0.5', 'cardiothoracic ratio less than 0.5',
      'narrow cardiac silhouette' } },
    focal_consolidation = { pos = { 'focal consolidation', 'patchy airspace consolidation',
    'focal lung consolidation' },
      neg = { 'no consolidation', 'no focal consolidation', 'no airspace consolidation' } },
    unilateral_opacity = { pos = { 'opacity in one lung', 'unilateral lung opacity',
    'one-sided airspace opacity' },
      neg = { 'no lung opacity', 'no unilateral opacity', 'both lungs clear' } },
  },
  fundus = {
    healthy_disc = { pos = { 'healthy optic disc', 'small optic cup', 'normal cup-to-disc ratio' },
      neg = { 'unhealthy optic disc', 'large optic cup', 'enlarged cup-to-disc ratio' } },
    no_retinal_lesions = { pos = { 'no retinal lesions', 'clear retina without lesions',
    'no haemorrhages or exudates' },
      neg = { 'retinal lesions present', 'lesions on the retina', 'retina with red and yellow lesions' } },
    ['cdr_gt_0.6'] = { pos = { 'cup-to-disc ratio above 0.6', 'large cup-to-disc ratio',
    'optic disc cupping' },
      neg = { 'cup-to-disc ratio below 0.6', 'small cup-to-disc ratio', 'no optic disc cupping' } },
    haemorrhages_present = { pos = { 'retinal haemorrhages', 'dot and blot haemorrhages',
    'red haemorrhages' },
      neg = { 'no haemorrhages', 'no retinal haemorrhages', 'no blot haemorrhages' } },
    microaneurysms_present = { pos = { 'microaneurysms', 'small red dots of microaneurysms',
    'scattered microaneurysms' },
      neg = { 'no microaneurysms', 'no red dots', 'no microaneurysms seen' } },
    hard_exudates_present = { pos = { 'hard exudates', 'yellow hard exudates',
    'yellow exudates near the macula' },
      neg = { 'no hard exudates', 'no exudates', 'no yellow deposits' } },
  },
  derm = {
    symmetric_shape = { pos = { 'symmetric shape', 'symmetric lesion', 'round symmetric outline' },
      neg = { 'asymmetric shape', 'asymmetric lesion', 'lopsided outline' } },
    regular_border = { pos = { 'smooth, regular border', 'regular border', 'sharp smooth edge' },
      neg = { 'irregular, notched border', 'irregular border', 'ragged notched edge' } },
    one_or_two_colours = { pos = { 'one or two colours', 'uniform brown colour', 'evenly pigmented' },
      neg = { 'three or more colours', 'multiple colours', 'variegated colour' } },
    asymmetry = { pos = { 'asymmetry', 'asymmetric shape', 'asymmetric lesion' },
      neg = { 'no asymmetry', 'symmetric shape', 'symmetric lesion' } },
    irregular_border = { pos = { 'irregular, notched border', 'irregular border', 'ragged notched edge' },
      neg = { 'smooth, regular border', 'regular border', 'sharp smooth edge' } },
    three_or_more_colours = { pos = { 'three or more colours', 'colour variegation',
    'brown, black and blue colours' },
      neg = { 'one or two colours', 'no colour variegation', 'uniform colour' } },
    blue_white_structures = { pos = { 'blue-white veil', 'blue-white structures',
    'blue-grey veil over the lesion' },
      neg = { 'no blue-white veil', 'no blue-white structures', 'no blue areas' } },
    diameter_large = { pos = { 'diameter larger than 6 mm', 'large diameter', 'large lesion over 6 mm' },
      neg = { 'diameter smaller than 6 mm', 'small diameter', 'small lesion under 6 mm' } },
  },
  histo = {
    round_glands = { pos = { 'round glands with open lumens', 'well-formed round glands',
    'preserved gland architecture' },
      neg = { 'no glands', 'no gland formation', 'glands absent' } },
    regular_nuclei = { pos = { 'regular, uniform nuclei', 'small uniform nuclei', 'no nuclear pleomorphism' },
      neg = { 'pleomorphic nuclei', 'irregular nuclei of varying size', 'nuclear pleomorphism' } },
    high_nuclear_density = { pos = { 'high nuclear density', 'densely packed nuclei',
    'crowded sheets of nuclei' },
      neg = { 'low nuclear density', 'sparse nuclei', 'few scattered nuclei' } },
    pleomorphic_nuclei = { pos = { 'pleomorphic nuclei', 'irregular nuclei of varying size',
    'marked nuclear pleomorphism' },
      neg = { 'regular, uniform nuclei', 'no nuclear pleomorphism', 'uniform nuclei' } },
    lost_architecture = { pos = { 'loss of normal architecture', 'solid nests of tumour cells',
    'architecture lost' },
      neg = { 'preserved architecture', 'normal tissue architecture', 'architecture intact' } },
    mucin_pools = { pos = { 'pools of extracellular mucin', 'pale mucin pools', 'abundant mucin' },
      neg = { 'no mucin', 'no mucin pools', 'no extracellular mucin' } },
    floating_tumour_clusters = { pos = { 'tumour cell clusters floating in mucin',
    'small clusters floating in mucin', 'floating tumour clusters' },
      neg = { 'no floating clusters', 'no tumour clusters in mucin', 'no floating cell clusters' } },
  },
}

-- Item name -> truth, from the generator's parameters (the oracle's rules, see docs/phantoms);
-- nil where the item says nothing about the image.
function K.truth(m, r)
  if m == 'cxr' then
    local cons = r.consolidation_area > 0
    return { normal_heart_size = r.ctr < 0.5, clear_lung_fields = not cons, ['ctr_gt_0.5'] = r.ctr > 0.5,
      focal_consolidation = cons, unilateral_opacity = cons }
  elseif m == 'fundus' then
    local lesions = r.n_haemorrhages + r.n_microaneurysms + r.n_exudates > 0
    return { healthy_disc = r.cdr < 0.6, no_retinal_lesions = not lesions, ['cdr_gt_0.6'] = r.cdr > 0.6,
      haemorrhages_present = r.n_haemorrhages > 0, microaneurysms_present = r.n_microaneurysms > 0,
      hard_exudates_present = r.n_exudates > 0 }
  elseif m == 'derm' then
    local a, b, c = r.asymmetry >= 0.06, r.border_irregularity >= 0.04, r.n_colours >= 3
    return { symmetric_shape = not a, regular_border = not b, one_or_two_colours = not c, asymmetry = a,
      irregular_border = b, three_or_more_colours = c, blue_white_structures = r.blue_white > 0.5,
      diameter_large = r.diameter_frac >= 0.4 }
  elseif m == 'histo' then
    local pleo, mucin = r.nuclear_size_cv >= 0.2, r.mucin_fraction > 0.1
    return { round_glands = r.n_glands >= 2, regular_nuclei = not pleo,
      high_nuclear_density = r.nuclear_density > 0.2,
      -- "lost architecture" is the solid carcinoma's item: said of neither mucinous nor benign
      -- tissue in the negative ("preserved architecture" would be wrong for mucinous carcinoma)
      pleomorphic_nuclei = pleo, lost_architecture = (r.n_glands == 0 and not mucin) or (mucin and nil),
      mucin_pools = mucin,
      floating_tumour_clusters = mucin }
  end
  error('captions: unknown modality ' .. tostring(m))
end

---------------------------------------------------------------- class findings and measurements
K.findings = {
  cxr = {
    normal = { 'normal study', 'no acute cardiopulmonary abnormality', 'normal chest', 'unremarkable chest' },
    cardiomegaly = { 'cardiomegaly', 'enlarged cardiac silhouette', 'an enlarged heart',
    'cardiomegaly with an enlarged heart' },
    pneumonia = { 'pneumonia', 'focal consolidation consistent with pneumonia', 'lobar pneumonia',
    'airspace consolidation of pneumonia' },
  },
  fundus = {
    normal = { 'normal fundus', 'healthy retina', 'normal optic disc and retina', 'no retinopathy' },
    glaucoma = { 'glaucomatous optic disc', 'glaucoma with a large optic cup', 'suspected glaucoma',
    'optic disc cupping of glaucoma' },
    diabetic_retinopathy = { 'diabetic retinopathy', 'non-proliferative diabetic retinopathy',
    'retinopathy with red and yellow lesions', 'diabetic retinal lesions' },
  },
  derm = {
    nevus = { 'benign nevus', 'a benign melanocytic nevus', 'a common mole', 'benign pigmented nevus' },
    melanoma = { 'melanoma', 'malignant melanoma', 'a melanoma with ABCD features',
    'suspicious lesion, melanoma' },
  },
  histo = {
    benign = { 'benign breast tissue', 'benign glands', 'normal breast glandular tissue',
    'benign, no carcinoma' }, ductal_carcinoma = { 'invasive ductal carcinoma', 'ductal carcinoma',
    'carcinoma with solid tumour nests', 'high-grade ductal carcinoma' },
    mucinous_carcinoma = { 'mucinous carcinoma', 'mucinous (colloid) carcinoma',
    'carcinoma floating in mucin', 'mucinous breast carcinoma' },
  },
}

local NUM = { 'no', 'one', 'two', 'three', 'four', 'five', 'six', 'seven', 'eight' }
local ZONES = { 'right upper', 'right middle', 'right lower', 'left upper', 'left middle', 'left lower' }

-- A measured value, worded as a report would (nil when the class has none worth saying).
local function measurement(m, r, rand)
  if m == 'cxr' then
    local opts = { ('cardiothoracic ratio about %.2f'):format(r.ctr) }
    if r.consolidation_area > 0 and ZONES[r.consolidation_zone] then
      opts[#opts + 1] = ('consolidation in the %s zone'):format(ZONES[r.consolidation_zone])
      opts[#opts + 1] = ('opacity in the %s zone'):format(ZONES[r.consolidation_zone])
    end
    return pick(opts, rand)
  elseif m == 'fundus' then
    local opts = { ('cup-to-disc ratio %.1f'):format(r.cdr), ('cup-to-disc ratio about %.2f'):format(r.cdr) }
    if r.n_haemorrhages > 0 then
      opts[#opts + 1] = ('%s haemorrhages'):format(NUM[r.n_haemorrhages + 1] or 'several')
    end
    if r.n_microaneurysms > 0 then
      opts[#opts + 1] = ('%s microaneurysms'):format(NUM[r.n_microaneurysms + 1] or 'several')
    end
    if r.n_exudates > 0 then
      opts[#opts + 1] = ('%s hard exudates'):format(NUM[r.n_exudates + 1] or 'several')
    end
    return pick(opts, rand)
  elseif m == 'derm' then
    return pick({ ('diameter about %d mm'):format(math.floor(r.diameter_frac * 15 + 0.5)),
      ('%s colours'):format(NUM[r.n_colours + 1] or 'many'),
      ('%s of five ABCD criteria'):format(NUM[r.n_criteria + 1] or 'several') }, rand)
  elseif m == 'histo' then
    local opts = { ('nuclear density %s'):format(r.nuclear_density > 0.2 and 'high' or 'low') }
    if r.mucin_fraction > 0.1 then
      opts[#opts + 1] = ('mucin about %d%% of the field'):format(math.floor(r.mucin_fraction * 100 + 0.5))
    end
    if r.n_glands > 0 then opts[#opts + 1] = ('%s round glands'):format(NUM[r.n_glands + 1] or 'several') end
    return pick(opts, rand)
  end
end

-- Checklist statements true of this image: k of them, each written positive or negated.
local function statements(m, r, rand, k)
  local truth = K.truth(m, r)
  local names = {}
  for name in pairs(K.items[m]) do if truth[name] ~= nil then names[#names + 1] = name end end
  table.sort(names)   -- pairs() order is not reproducible
  local out = {}
  for _ = 1, k do
    if #names == 0 then break end
    local name = table.remove(names, rand(#names))
    local it = K.items[m][name]
    out[#out + 1] = pick(truth[name] and it.pos or it.neg, rand)
  end
  return out
end

function K.caption(m, r, rand)
  local mod, finding = pick(K.modality[m], rand), pick(K.findings[m][r.class], rand)
  local style = rand(5)
  if style == 1 then return ('%s, %s'):format(mod, finding) end
  if style == 2 then return ('%s showing %s, %s'):format(mod, finding, measurement(m, r, rand)) end
  if style == 3 then
    return ('%s: %s'):format(mod, table.concat(statements(m, r, rand, 1 + rand(3)), ', '))
  end
  if style == 4 then
    local s = statements(m, r, rand, 2)
    return ('%s with %s and %s, %s'):format(mod, s[1], s[2], measurement(m, r, rand))
  end
  local s = statements(m, r, rand, 1 + rand(2))
  return ('%s. %s, %s'):format(finding, mod, table.concat(s, ', '))
end

---------------------------------------------------------------- zero-shot prompts and checklists
K.prompts = {
  cxr = {
    normal = { 'a normal chest x-ray with normal heart size and clear lungs',
    'chest radiograph, no acute cardiopulmonary abnormality',
      'a normal frontal chest x-ray' },
    cardiomegaly = { 'a chest x-ray with an enlarged cardiac silhouette, cardiothoracic ratio above 0.5',
      'chest radiograph showing cardiomegaly', 'a chest x-ray with an enlarged heart and clear lungs' },
    pneumonia = { 'a chest x-ray with focal consolidation in one lung', 'chest radiograph showing pneumonia',
      'a chest x-ray with a patchy airspace opacity, normal heart size' },
  },
  fundus = {
    normal = { 'a normal fundus photograph with a healthy optic disc and no lesions',
    'fundus image of a healthy retina',
      'a normal retina, small optic cup' },
    glaucoma = { 'a fundus photograph with a large optic cup, cup-to-disc ratio above 0.6',
      'fundus image showing glaucomatous optic disc cupping',
      'glaucoma, large cup-to-disc ratio, no retinal lesions' },
    diabetic_retinopathy = { 'a fundus photograph with haemorrhages, microaneurysms and hard exudates',
      'fundus image showing diabetic retinopathy', 'retina with red dots and yellow exudates' },
  },
  derm = {
    nevus = { 'a dermoscopy image of a benign nevus, symmetric with a regular border',
    'dermoscopic image of a common mole',
      'a small evenly pigmented lesion with a smooth border' },
    melanoma = { 'a dermoscopy image of a melanoma, asymmetric with an irregular border and several colours',
      'dermoscopic image of a malignant melanoma',
      'a large lesion with a blue-white veil and colour variegation' },
  },
  histo = {
    benign = { 'a histology image of benign breast tissue with round glands',
    'H&E section of benign glands with uniform nuclei',
      'benign tissue, preserved gland architecture' },
    ductal_carcinoma = { 'a histology image of invasive ductal carcinoma with densely packed pleomorphic '
    .. 'nuclei',
      'H&E section showing ductal carcinoma', 'solid tumour nests, loss of architecture' },
    mucinous_carcinoma = { 'a histology image of mucinous carcinoma with pools of mucin',
    'H&E section showing mucinous carcinoma',
      'tumour cell clusters floating in extracellular mucin' },
  },
}

-- Checklists: each class's oracle items (craft.phantoms.items gives the class of each item),
-- as the first positive wording and its first negation.
K.checklists = {}
local ITEM_CLASS = {
  cxr = { normal = { 'normal_heart_size', 'clear_lung_fields' },
  cardiomegaly = { 'ctr_gt_0.5', 'clear_lung_fields' },
    pneumonia = { 'focal_consolidation', 'unilateral_opacity', 'normal_heart_size' } },
  fundus = { normal = { 'healthy_disc', 'no_retinal_lesions' },
  glaucoma = { 'cdr_gt_0.6', 'no_retinal_lesions' },
    diabetic_retinopathy = { 'haemorrhages_present', 'microaneurysms_present', 'hard_exudates_present',
    'healthy_disc' } },
  derm = { nevus = { 'symmetric_shape', 'regular_border', 'one_or_two_colours' },
    melanoma = { 'asymmetry', 'irregular_border', 'three_or_more_colours', 'blue_white_structures',
    'diameter_large' } },
  histo = { benign = { 'round_glands', 'regular_nuclei' },
    ductal_carcinoma = { 'high_nuclear_density', 'pleomorphic_nuclei', 'lost_architecture' },
    mucinous_carcinoma = { 'mucin_pools', 'floating_tumour_clusters' } },
}
for m, classes in pairs(ITEM_CLASS) do
  K.checklists[m] = {}
  for c, names in pairs(classes) do
    local list = {}
    for i, name in ipairs(names) do
      list[i] = { item = name, pos = K.items[m][name].pos[1], neg = K.items[m][name].neg[1] }
    end
    K.checklists[m][c] = list
  end
end

return K
