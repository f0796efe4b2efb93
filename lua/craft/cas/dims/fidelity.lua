-- CAS dimension 4, real-image fidelity: the mean cosine, in the vision encoder's features, to the
-- k nearest real images of the image's class (a bank of training reals: cas:fit / cas:fit_bank).
return {
  name = 'fidelity',
  summary = 'mean cosine to the k nearest real images of the class (vision features)',
  encoder = 'vision',
  missing = function(cas)
    if cas.vision == nil then return 'missing encoder or texts in the recipe' end
    if cas.bank == nil then return 'call cas:fit_bank' end
  end,
  raw = function(cas, x, ys, Y, shared) return cas:_knn(shared.vision().normalized, Y) end,
  fit = function(cas, images, labels) cas:fit_bank(images, labels) end,
}
