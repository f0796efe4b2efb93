-- CAS dimension 3, diagnostic probe: the log-probability of the image's class under a linear
-- probe on the frozen vision encoder's features (cas.probe_normalize: on L2-normalised ones),
-- fitted on training reals by cas:fit / cas:fit_probe and frozen afterwards.
return {
  name = 'probe',
  summary = 'log-probability of the class under a linear probe on vision features',
  encoder = 'vision',
  missing = function(cas)
    if cas.vision == nil then return 'missing encoder or texts in the recipe' end
    if cas.probe == nil then return 'call cas:fit_probe' end
  end,
  raw = function(cas, x, ys, Y, shared)
    local F = require 'craft.functional'
    local v = shared.vision()
    local lp = F.log_softmax(cas.probe(cas.probe_normalize and v.normalized or v.features), 2)
    return (lp * Y):sum(2)
  end,
  fit = function(cas, images, labels, o) return cas:fit_probe(images, labels, o) end,
}
