-- CAS dimension 3, diagnostic probe: the log-probability of the image's class under a linear
-- probe on the frozen vision encoder's features (cas.probe_normalize: on L2-normalised ones),
-- fitted on training reals by cas:fit / cas:fit_probe and frozen afterwards.
local T = require 'craft.tensor'
local A = require 'craft.autograd'
local F = require 'craft.functional'
local nn = require 'craft.nn'
local optim = require 'craft.optim'
local U = require 'craft.cas.util'
local argerror = require('craft.core').argerror

-- fit_probe(cas, real_images, labels, {epochs=200, lr=1e-2, weight_decay=1e-4, val_fraction=0.2,
--   seed=0, val_images=, val_labels=}) -> {train_accuracy=, val_accuracy=, n_train=, n_val=}.
-- Softmax regression (nn.Linear, full-batch AdamW) on frozen features; the held-out accuracy
-- is measured on val_images/val_labels when given, else on a seeded val_fraction split. The
-- probe stays frozen afterwards (METHOD: "frozen during finetuning").
local function fit_probe(cas, images, labels, o)
  o = o or {}
  if not cas.vision then argerror('cas: fit_probe needs recipe.vision') end
  local ys = U.label_list(labels)
  local feats = U.features(cas, images)
  if cas.probe_normalize then feats = F.normalize(feats, 2) end
  local n, C = #ys, #cas.classes
  local tr_idx, va_idx, vf, vys = {}, {}, nil, nil
  if o.val_images then
    for i = 1, n do tr_idx[i] = i end
    vf = U.features(cas, o.val_images)
    if cas.probe_normalize then vf = F.normalize(vf, 2) end
    vys = U.label_list(o.val_labels)
  else
    local perm = require('craft.data').permutation(n, o.seed or 0, 17)
    local nv = math.floor(n * (o.val_fraction or 0.2) + 0.5)
    for i = 1, n do if i <= nv then va_idx[#va_idx + 1] = perm[i] else tr_idx[#tr_idx + 1] = perm[i] end end
  end
  local take = require('craft.data').take
  local xtr = take(feats, tr_idx)
  local ytr = {}
  for i, k in ipairs(tr_idx) do ytr[i] = ys[k] end
  if #va_idx > 0 then
    vf = take(feats, va_idx)
    vys = {}
    for i, k in ipairs(va_idx) do vys[i] = ys[k] end
  end
  -- the probe's init draws from its own seed; the caller's random stream is left where it was
  local saved_seed, saved_off = T.rng.seed, T.rng.offset
  T.manual_seed(o.seed or 0)
  local probe = nn.Linear(feats:size(2), C)
  T.rng.seed, T.rng.offset = saved_seed, saved_off
  local opt = optim.AdamW(probe, { lr = o.lr or 1e-2, weight_decay = o.weight_decay or 1e-4 })
  local yt = T.tensor(ytr, { dtype = 'i64' })
  for _ = 1, o.epochs or 200 do
    F.cross_entropy(probe(xtr), yt):backward()
    opt:step()
    opt:zero_grad()
  end
  probe:requires_grad_(false)
  probe:eval()
  cas.probe = probe
  local function acc(x, y)
    if not x or #y == 0 then return nil end
    local pred = A.no_grad(function() return probe(x):argmax(2):flat() end)
    local hit = 0
    for i = 1, #y do if pred[i] == y[i] then hit = hit + 1 end end
    return hit / #y
  end
  cas.probe_report = { train_accuracy = acc(xtr, ytr), val_accuracy = acc(vf, vys or {}), n_train = #ytr,
    n_val = vys and #vys or 0 }
  return cas.probe_report
end

return {
  name = 'probe',
  summary = 'log-probability of the class under a linear probe on vision features',
  encoder = 'vision',
  missing = function(cas)
    if cas.vision == nil then return 'missing encoder or texts in the recipe' end
    if cas.probe == nil then return 'call cas:fit_probe' end
  end,
  raw = function(cas, x, ys, Y, shared)
    local v = shared.vision()
    local lp = F.log_softmax(cas.probe(cas.probe_normalize and v.normalized or v.features), 2)
    return (lp * Y):sum(2)
  end,
  fit = function(cas, images, labels, o) return fit_probe(cas, images, labels, o) end,
  fit_probe = fit_probe,
}
