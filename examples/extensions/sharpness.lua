-- examples/extensions/sharpness.lua: a CAS dimension in one file (craft.cas.dims describes the
-- fields). Sharpness: how close an image's edge energy (the mean squared difference of
-- neighbouring grey pixels, on a log scale) is to that of its class's real images. A blurred or
-- speckled image scores low; the CAS standardises the score per class on held-out reals like the
-- built-in dimensions. It reads pixels only (no encoder), has a fitted part (each class's real
-- level, from cas:fit's training reals) and is differentiable, so CRAFT can ascend it.
local A = require 'craft.autograd'
local T = require 'craft.tensor'

-- log edge energy of images [n, C, H, W] -> [n]
local function log_energy(x)
  local g = x:mean(2)                                    -- grey [n, H, W]
  local H, W = g:size(2), g:size(3)
  local dx = g:narrow(3, 2, W - 1) - g:narrow(3, 1, W - 1)
  local dy = g:narrow(2, 2, H - 1) - g:narrow(2, 1, H - 1)
  return (dx:square():mean({ 2, 3 }) + dy:square():mean({ 2, 3 }) + 1e-8):log()
end

return {
  name = 'sharpness',
  summary = 'closeness of the image\'s edge energy to its class\'s real images',
  encoder = nil,                                          -- pixels only
  missing = function(cas) if not cas.sharpness_ref then return 'call cas:fit (the class levels)' end end,
  -- each class's mean log edge energy on the training reals: a [C, 1] column
  fit = function(cas, images, labels)
    local ys = T.is_tensor(labels) and labels:flat() or labels
    local e = A.no_grad(function() return log_energy(images):flat() end)
    local sum, n = {}, {}
    for c = 1, #cas.classes do sum[c], n[c] = 0, 0 end
    for i, y in ipairs(ys) do sum[y + 1], n[y + 1] = sum[y + 1] + e[i], n[y + 1] + 1 end
    local ref = {}
    for c = 1, #cas.classes do
      if n[c] == 0 then error(('sharpness: no training real of class %q'):format(cas.classes[c]), 0) end
      ref[c] = { sum[c] / n[c] }
    end
    cas.sharpness_ref = T.tensor(ref)
  end,
  -- minus the squared distance to the class's level
  raw = function(cas, x, ys, Y)
    local d = log_energy(x) - Y:matmul(cas.sharpness_ref):reshape(x:size(1))
    return -(d * d)
  end,
}
