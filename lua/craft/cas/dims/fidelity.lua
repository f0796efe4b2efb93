-- CAS dimension 4, real-image fidelity: the mean cosine, in the vision encoder's features, to the
-- k nearest real images of the image's class (a bank of training reals: cas:fit / cas:fit_bank).
local T = require 'craft.tensor'
local A = require 'craft.autograd'
local F = require 'craft.functional'
local U = require 'craft.cas.util'
local argerror = require('craft.core').argerror

local NEG = -1e4   -- masks a similarity out of a max (cosines live in [-1, 1])

-- Mean cosine to the k nearest bank features of the row's class. The neighbours are chosen by
-- k rounds of max with the chosen (and other-class) entries masked out, under no_grad; the
-- mean is then a weighted sum of the similarity matrix, so the gradient reaches exactly the
-- chosen similarities (as a top-k would).
local function knn(cas, fn, Y)
  local b = cas.bank
  local S = fn:matmul(b.features:t())                        -- [n, B]
  local W = A.no_grad(function()
    local same = Y:matmul(b.onehot:t())                       -- [n, B] 1 where the bank class is y
    local keff = Y:matmul(b.counts):minimum(cas.k)           -- [n, 1]
    if keff:min():item() < 1 then argerror('cas: the feature bank has no real image of a scored class') end
    local Sm = F.where(same, S:detach(), T.full({}, NEG))
    local cols = T.arange(S:size(2))
    local acc = T.zeros(S.shape)
    for i = 1, cas.k do
      local _, idx = Sm:max(2, true)
      local pick = cols:eq(idx:float()) * keff:ge(i)           -- [n, B], rows with < i neighbours drop out
      acc = acc + pick
      Sm = F.where(pick, T.full({}, 2 * NEG), Sm)
    end
    return acc / keff
  end)
  return (S * W):sum(2)
end

-- fit_bank(cas, real_images, labels): the real-feature bank of dimension 4 (use training reals, not
-- the held-out reals given to calibrate, or those would find themselves at cosine 1).
local function fit_bank(cas, images, labels)
  if not cas.vision then argerror('cas: fit_bank needs recipe.vision') end
  local ys = U.label_list(labels)
  local f = A.no_grad(function() return F.normalize(U.features(cas, images), 2) end)
  local C = #cas.classes
  local counts = {}
  for c = 1, C do counts[c] = { 0 } end
  for _, y in ipairs(ys) do counts[y + 1][1] = counts[y + 1][1] + 1 end
  cas.bank = { features = f, onehot = U.one_hot(ys, C), counts = T.tensor(counts), labels = ys }
  return cas
end

return {
  name = 'fidelity',
  summary = 'mean cosine to the k nearest real images of the class (vision features)',
  encoder = 'vision',
  missing = function(cas)
    if cas.vision == nil then return 'missing encoder or texts in the recipe' end
    if cas.bank == nil then return 'call cas:fit_bank' end
  end,
  raw = function(cas, x, ys, Y, shared) return knn(cas, shared.vision().normalized, Y) end,
  fit = function(cas, images, labels) fit_bank(cas, images, labels) end,
  fit_bank = fit_bank,
}
