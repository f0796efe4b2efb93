-- craft.cas: the Clinical Alignment Score (METHOD.md, "The Clinical Alignment Score") with
-- pluggable encoders. A CAS object is built from a recipe table:
--
--   local cas = require('craft.cas').new{
--     classes = {'normal', 'melanoma'},                       -- label y (0-based) names classes[y + 1]
--     vlm = {encode_image = fn(images) -> [N, D], encode_text = fn({strings}) -> [M, D]},
--     checklist_vlm = nil,                                    -- dimension 2's VLM (default: vlm)
--     vision = {encode = fn(images) -> [N, E]},               -- dimensions 3 and 4
--     prompts = {melanoma = {'dermoscopy of a melanoma with ...', ...}, ...},
--     checklists = {melanoma = {{pos = 'irregular, notched border', neg = 'smooth, regular border'}, ...}},
--   }
--   cas:fit(train_real_images, train_labels)   -- linear probe (dim 3) + real-feature bank (dim 4)
--   cas:calibrate(heldout_real_images, heldout_labels)   -- z-scores and per-class thresholds
--   local r = cas:score(images, labels)         -- metric mode (no_grad, batched)
--   local R = cas:reward(images, labels)        -- differentiable reward, tensor [N]
--   cas:set_weights{prompt = 1, checklist = 0}  -- ablation: thresholds recomputed, no re-encoding
--   cas:tail(cas_values, labels), cas:audit(r), cas:checklist_items(), cas:raw(images, labels, dims)
--
-- Recipe fields and their defaults (choices METHOD.md leaves open are marked "default"):
--   temperature = {prompt = 0.01, checklist = 0.01}
--   weights = {prompt = 1, checklist = 1, probe = 1, fidelity = 1}; a 0 weight removes the
--     dimension (it is not even computed), which is the ablation. reward_weights (default:
--     weights) are the weights cas:reward uses when the caller gives none.
--   reward_cap = false: a number (or {dim -> number}) caps each standardised dimension in
--     cas:reward at that z (times |w_d|), so an image earns nothing for exceeding real images
--     on one dimension (the metric is unchanged; a recipe choice, not in METHOD.md's default).
--   k = 5 (dimension 4's nearest real neighbours), q = 0.10 (threshold quantile)
--   prompt_average = 'logprob' (default): dimension 1 is the mean over prompt sets of the
--     class log-probability. Prompt set j takes the j-th prompt of every class (cycling through
--     a class's prompts when it has fewer), so each set is one zero-shot classifier; this is
--     "averaged over prompts" applied to the log-probability. 'embedding': average each class's
--     normalised prompt embeddings (renormalised) and take one softmax (CLIP's prompt ensembling).
--   negate = function(pos) return 'no ' .. pos end: the negation used for a checklist item
--     without `neg` (default).
--   probe_normalize = true: L2-normalise vision features before the linear probe (default; the
--     fidelity dimension always uses cosine).
--   std_ddof = 1 (sample standard deviation, default), std_floor = 1e-6 (a class whose raw
--     dimension is constant on the held-out reals gets z = (x - mu) / 1e-6 rather than inf).
--   quantile_method = 'linear' (numpy's default) for the per-class thresholds.
--   batch_size = 32 for metric mode.
-- Per-class tables (mu, sd, thresholds, tail) are indexed by the 1-based class index.
-- The encoders' own parameters should be frozen (requires_grad false): reward mode keeps the
-- graph to the images only.
local T = require 'craft.tensor'
local argerror = require('craft.core').argerror
local F = require 'craft.functional'
local A = require 'craft.autograd'
local nn = require 'craft.nn'
local optim = require 'craft.optim'
local stats = require 'craft.stats'

local M = {}
M.DIMS = { 'prompt', 'checklist', 'probe', 'fidelity' }
local CAS = {}
CAS.__index = CAS
M.CAS = CAS

local NEG = -1e4   -- masks a similarity out of a max (cosines live in [-1, 1])

local function merge(defaults, given)
  local r = {}
  for k, v in pairs(defaults) do r[k] = v end
  for k, v in pairs(given or {}) do r[k] = v end
  return r
end

-- labels: an i64 tensor or a Lua list of 0-based class indices -> Lua list
local function label_list(labels)
  if T.is_tensor(labels) then return labels:flat() end
  return labels
end

function M.new(recipe)
  local want = require('craft.core').want
  local r = want('cas.new', 'recipe', recipe, 'table', true) or {}
  for _, k in ipairs { 'classes', 'prompts', 'checklists', 'temperature', 'weights', 'reward_weights' } do
    want('cas.new', 'recipe.' .. k, r[k], 'table', true)
  end
  want('cas.new', 'recipe.k', r.k, 'positive', true)
  want('cas.new', 'recipe.q', r.q, 'number', true)
  want('cas.new', 'recipe.reward_cap', r.reward_cap, 'number|table|boolean', true)
  want('cas.new', 'recipe.negate', r.negate, 'function', true)
  local self = setmetatable({}, CAS)
  self.classes = r.classes
  if not self.classes then
    -- without an explicit order, the sorted class names of the prompts or checklists
    self.classes = {}
    for name in pairs(r.prompts or r.checklists or {}) do self.classes[#self.classes + 1] = name end
    table.sort(self.classes)
  end
  if #self.classes < 2 then argerror('cas: give at least two classes (recipe.classes)') end
  self.vlm, self.checklist_vlm, self.vision = r.vlm, r.checklist_vlm or r.vlm, r.vision
  self.prompts, self.checklists = r.prompts, r.checklists
  self.temperature = merge({ prompt = 0.01, checklist = 0.01 }, r.temperature)
  self.weights = merge({ prompt = 1, checklist = 1, probe = 1, fidelity = 1 }, r.weights)
  self.reward_weights = r.reward_weights and merge(self.weights, r.reward_weights) or self.weights
  self.reward_cap = r.reward_cap or false   -- number or {dim -> number}: z above it earns no reward
  self.k, self.q = r.k or 5, r.q or 0.10
  self.prompt_average = r.prompt_average or 'logprob'
  if self.prompt_average ~= 'logprob' and self.prompt_average ~= 'embedding' then
    argerror(('cas: prompt_average is %q (logprob or embedding)'):format(tostring(self.prompt_average)))
  end
  self.negate = r.negate or function(pos) return 'no ' .. pos end
  self.probe_normalize = r.probe_normalize ~= false
  self.std_ddof, self.std_floor = r.std_ddof or 1, r.std_floor or 1e-6
  self.quantile_method = r.quantile_method or 'linear'
  self.batch_size = r.batch_size or 32
  return self
end

---------------------------------------------------------------- availability
-- Whether dimension d can be computed: its encoders, texts and fitted parts exist.
function CAS:available(d)
  if d == 'prompt' then return self.vlm ~= nil and self.prompts ~= nil
  elseif d == 'checklist' then return self.checklist_vlm ~= nil and self.checklists ~= nil
  elseif d == 'probe' then return self.vision ~= nil and self.probe ~= nil
  elseif d == 'fidelity' then return self.vision ~= nil and self.bank ~= nil end
  argerror('cas: unknown dimension ' .. tostring(d))
end

local function active(self, weights)
  local r = {}
  for _, d in ipairs(M.DIMS) do
    local w = weights[d] or 0
    if w ~= 0 then
      if not self:available(d) then
        argerror(('cas: dimension %s has weight %g but is not available (%s)'):format(d, w,
          (d == 'probe' and 'call cas:fit_probe') or (d == 'fidelity' and 'call cas:fit_bank')
          or 'missing encoder or texts in the recipe'))
      end
      r[#r + 1] = d
    end
  end
  return r
end

---------------------------------------------------------------- text features (cached)
local function encode_texts(enc, strings)
  return A.no_grad(function() return F.normalize(enc(strings):detach():float(), 2) end)
end

function CAS:_prompt_text()
  if self._ptext then return self._ptext end
  local all, start, count = {}, {}, {}
  for c, name in ipairs(self.classes) do
    local ps = self.prompts[name]
    if type(ps) ~= 'table' or #ps == 0 then argerror(('cas: no prompts for class %q'):format(name)) end
    start[c], count[c] = #all + 1, #ps
    for _, p in ipairs(ps) do all[#all + 1] = p end
  end
  local E = encode_texts(self.vlm.encode_text, all)
  local sets = {}
  A.no_grad(function()
    if self.prompt_average == 'embedding' then
      local rows = {}
      for c = 1, #self.classes do rows[c] = E:narrow(1, start[c], count[c]):mean(1) end
      sets[1] = F.normalize(F.stack(rows, 1), 2)
    else
      local J = 0
      for c = 1, #self.classes do J = math.max(J, count[c]) end
      for j = 1, J do
        local rows = {}
        for c = 1, #self.classes do rows[c] = E:select(1, start[c] + (j - 1) % count[c]) end
        sets[j] = F.stack(rows, 1)     -- [C, D]: one zero-shot classifier
      end
    end
  end)
  self._ptext = sets
  return sets
end

function CAS:_checklist_text()
  if self._ctext then return self._ctext end
  local pos, neg, owner, names, per_class = {}, {}, {}, {}, {}
  for c, name in ipairs(self.classes) do
    local items = self.checklists[name]
    if type(items) ~= 'table' or #items == 0 then argerror(('cas: no checklist items for class %q'):format(name)) end
    per_class[c] = {}
    for _, it in ipairs(items) do
      local p = type(it) == 'string' and it or it.pos
      pos[#pos + 1] = p
      neg[#neg + 1] = (type(it) == 'table' and it.neg) or self.negate(p)
      owner[#owner + 1] = c
      names[#names + 1] = (type(it) == 'table' and it.name) or p
      per_class[c][#per_class[c] + 1] = #pos
    end
  end
  local enc = self.checklist_vlm.encode_text
  local Ep, En = encode_texts(enc, pos), encode_texts(enc, neg)
  -- cos(x, pos) - cos(x, neg) = x_n . (pos_n - neg_n): one matmul against the differences
  local diff = A.no_grad(function() return Ep - En end)
  -- W [C, I]: row c averages the items of class c
  local w = {}
  for c = 1, #self.classes do
    local row = {}
    for i = 1, #owner do row[i] = owner[i] == c and 1 / #per_class[c] or 0 end
    w[c] = row
  end
  self._ctext = { diff = diff, avg = T.tensor(w), owner = owner, names = names, per_class = per_class }
  return self._ctext
end

-- The checklist item list: { {class = index, name = ...}, ... } (in the order items are stored).
function CAS:checklist_items()
  local ct = self:_checklist_text()
  local r = {}
  for i = 1, #ct.owner do r[i] = { class = ct.owner[i], name = ct.names[i] } end
  return r
end

---------------------------------------------------------------- raw dimensions
local function one_hot(ys, C)
  return T.arange(C):eq(T.tensor(ys):reshape(#ys, 1))   -- [n, C] of 0/1 (f32)
end

-- Raw (unstandardised) dimensions of a batch x with labels ys (Lua list): { d = tensor [n] },
-- plus the checklist item scores [n, I] when the checklist dimension is computed. Differentiable
-- in x whenever grad mode is on.
function CAS:_raw(x, ys, dims)
  local want = {}
  for _, d in ipairs(dims) do want[d] = true end
  local C = #self.classes
  local Y = one_hot(ys, C)
  local out = {}
  local img
  if want.prompt then
    img = F.normalize(self.vlm.encode_image(x), 2)
    local sets, acc = self:_prompt_text(), nil
    for _, S in ipairs(sets) do
      local lp = F.log_softmax(img:matmul(S:t()) * (1 / self.temperature.prompt), 2)
      acc = acc and acc + lp or lp
    end
    out.prompt = (acc * Y):sum(2) * (1 / #sets)
  end
  if want.checklist then
    -- the same image features when dimension 2 uses dimension 1's VLM
    local cimg = (img and self.checklist_vlm == self.vlm) and img
      or F.normalize(self.checklist_vlm.encode_image(x), 2)
    local ct = self:_checklist_text()
    local s = (cimg:matmul(ct.diff:t()) * (1 / self.temperature.checklist)):sigmoid()   -- [n, I]
    out.checklist = (s * Y:matmul(ct.avg)):sum(2)
    out.items = s
  end
  if want.probe or want.fidelity then
    local f = self.vision.encode(x)
    local fn = F.normalize(f, 2)
    if want.probe then
      local lp = F.log_softmax(self.probe(self.probe_normalize and fn or f), 2)
      out.probe = (lp * Y):sum(2)
    end
    if want.fidelity then out.fidelity = self:_knn(fn, Y) end
  end
  return out
end

-- Mean cosine to the k nearest bank features of the row's class. The neighbours are chosen by
-- k rounds of max with the chosen (and other-class) entries masked out, under no_grad; the
-- mean is then a weighted sum of the similarity matrix, so the gradient reaches exactly the
-- chosen similarities (as a top-k would).
function CAS:_knn(fn, Y)
  local b = self.bank
  local S = fn:matmul(b.features:t())                        -- [n, B]
  local W = A.no_grad(function()
    local same = Y:matmul(b.onehot:t())                       -- [n, B] 1 where the bank class is y
    local keff = Y:matmul(b.counts):minimum(self.k)           -- [n, 1]
    if keff:min():item() < 1 then argerror('cas: the feature bank has no real image of a scored class') end
    local Sm = F.where(same, S:detach(), T.full({}, NEG))
    local cols = T.arange(S:size(2))
    local acc = T.zeros(S.shape)
    for i = 1, self.k do
      local _, idx = Sm:max(2, true)
      local pick = cols:eq(idx:float()) * keff:ge(i)           -- [n, B], rows with < i neighbours drop out
      acc = acc + pick
      Sm = F.where(pick, T.full({}, 2 * NEG), Sm)
    end
    return acc / keff
  end)
  return (S * W):sum(2)
end

---------------------------------------------------------------- fitting the probe and the bank
local function features(self, images)
  local n, parts = images:size(1), {}
  A.no_grad(function()
    for s = 1, n, self.batch_size do
      parts[#parts + 1] = self.vision.encode(images:narrow(1, s, math.min(self.batch_size, n - s + 1))):detach():float()
    end
  end)
  if #parts == 0 then argerror('cas: no images') end
  return F.cat(parts, 1)
end

-- fit_bank(real_images, labels): the real-feature bank of dimension 4 (use training reals, not
-- the held-out reals given to calibrate, or those would find themselves at cosine 1).
function CAS:fit_bank(images, labels)
  if not self.vision then argerror('cas: fit_bank needs recipe.vision') end
  local ys = label_list(labels)
  local f = A.no_grad(function() return F.normalize(features(self, images), 2) end)
  local C = #self.classes
  local counts = {}
  for c = 1, C do counts[c] = { 0 } end
  for _, y in ipairs(ys) do counts[y + 1][1] = counts[y + 1][1] + 1 end
  self.bank = { features = f, onehot = one_hot(ys, C), counts = T.tensor(counts), labels = ys }
  return self
end

-- fit_probe(real_images, labels, {epochs=200, lr=1e-2, weight_decay=1e-4, val_fraction=0.2,
--   seed=0, val_images=, val_labels=}) -> {train_accuracy=, val_accuracy=, n_train=, n_val=}.
-- Softmax regression (nn.Linear, full-batch AdamW) on frozen features; the held-out accuracy
-- is measured on val_images/val_labels when given, else on a seeded val_fraction split. The
-- probe stays frozen afterwards (METHOD: "frozen during finetuning").
function CAS:fit_probe(images, labels, o)
  o = o or {}
  if not self.vision then argerror('cas: fit_probe needs recipe.vision') end
  local ys = label_list(labels)
  local feats = features(self, images)
  if self.probe_normalize then feats = F.normalize(feats, 2) end
  local n, C = #ys, #self.classes
  local tr_idx, va_idx, vf, vys = {}, {}, nil, nil
  if o.val_images then
    for i = 1, n do tr_idx[i] = i end
    vf = features(self, o.val_images)
    if self.probe_normalize then vf = F.normalize(vf, 2) end
    vys = label_list(o.val_labels)
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
  self.probe = probe
  local function acc(x, y)
    if not x or #y == 0 then return nil end
    local pred = A.no_grad(function() return probe(x):argmax(2):flat() end)
    local hit = 0
    for i = 1, #y do if pred[i] == y[i] then hit = hit + 1 end end
    return hit / #y
  end
  self.probe_report = { train_accuracy = acc(xtr, ytr), val_accuracy = acc(vf, vys or {}), n_train = #ytr,
    n_val = vys and #vys or 0 }
  return self.probe_report
end

-- fit(train_real_images, labels, probe_opts): both the probe and the bank.
function CAS:fit(images, labels, o)
  self:fit_bank(images, labels)
  return self:fit_probe(images, labels, o)
end

---------------------------------------------------------------- metric mode
-- Raw dimensions of many images, batched under no_grad: { d = {numbers} }, items = {{...}}
-- (per image, the scores of its own class's checklist items, in checklist order).
function CAS:raw(images, labels, dims)
  local ys = label_list(labels)
  local n = images:size(1)
  if #ys ~= n then argerror(('cas: %d images but %d labels'):format(n, #ys)) end
  local out = { items = {} }
  for _, d in ipairs(dims) do out[d] = {} end
  local ct
  A.no_grad(function()
    for s = 1, n, self.batch_size do
      local len = math.min(self.batch_size, n - s + 1)
      local yb = {}
      for i = 1, len do yb[i] = ys[s + i - 1] end
      local r = self:_raw(images:narrow(1, s, len), yb, dims)
      for _, d in ipairs(dims) do
        local v = r[d]:flat()
        for i = 1, len do out[d][s + i - 1] = v[i] end
      end
      if r.items then
        ct = ct or self:_checklist_text()
        local I = #ct.owner
        local v = r.items:flat()
        for i = 1, len do
          local own = {}
          for j, it in ipairs(ct.per_class[yb[i] + 1]) do own[j] = v[(i - 1) * I + it] end
          out.items[s + i - 1] = own
        end
      end
    end
  end)
  return out
end

-- calibrate(heldout_real_images, labels): per-class mean and standard deviation of every
-- available raw dimension, then the per-class q-quantile thresholds of CAS on the same images.
function CAS:calibrate(images, labels)
  local dims = {}
  for _, d in ipairs(M.DIMS) do if self:available(d) then dims[#dims + 1] = d end end
  local ys = label_list(labels)
  local raw = self:raw(images, ys, dims)
  local C = #self.classes
  local mu, sd = {}, {}
  for _, d in ipairs(dims) do
    mu[d], sd[d] = {}, {}
    for c = 1, C do
      local v = {}
      for i, y in ipairs(ys) do if y + 1 == c then v[#v + 1] = raw[d][i] end end
      if #v < 2 then argerror(('cas: calibrate needs at least 2 held-out real images of class %q'):format(self.classes[c])) end
      mu[d][c] = stats.mean(v)
      local s = stats.std(v, self.std_ddof)
      if not (s >= self.std_floor) then
        -- a saturated dimension (e.g. a temperature too low for the encoder): z-scores of this
        -- class and dimension will be huge; say so rather than hide it
        io.stderr:write(('cas: %s of class %q has std %g on the held-out reals (floored at %g)\n'):format(
          d, self.classes[c], s, self.std_floor))
        s = self.std_floor
      end
      sd[d][c] = s
    end
  end
  self.calib = { dims = dims, mu = mu, sd = sd, raw = raw, labels = ys }
  self:set_weights(self.weights)
  return self.calib
end

-- set_weights(w): evaluation weights (missing entries 0); recomputes the thresholds from the
-- stored held-out reals, so an ablation needs no second pass over the encoders.
function CAS:set_weights(w)
  local full = {}
  for _, d in ipairs(M.DIMS) do full[d] = w[d] or 0 end
  self.weights = full
  if not self.calib then return end
  local c = self.calib
  for _, d in ipairs(M.DIMS) do
    if full[d] ~= 0 and not c.mu[d] then argerror(('cas: dimension %s was not calibrated'):format(d)) end
  end
  local cas = self:_combine(c.raw, c.labels, full)
  self.thresholds = {}
  for k = 1, #self.classes do
    local v = {}
    for i, y in ipairs(c.labels) do if y + 1 == k then v[#v + 1] = cas[i] end end
    self.thresholds[k] = stats.quantile(v, self.q, self.quantile_method)
  end
  self.heldout_cas = cas
end

-- z-scores and their weighted sum from raw values: cas (list), z = {d = list}
function CAS:_combine(raw, ys, w)
  local c = self.calib
  local cas, z = {}, {}
  for i = 1, #ys do cas[i] = 0 end
  for _, d in ipairs(M.DIMS) do
    if (w[d] or 0) ~= 0 then
      z[d] = {}
      local mu, sd = c.mu[d], c.sd[d]
      for i, y in ipairs(ys) do
        local v = (raw[d][i] - mu[y + 1]) / sd[y + 1]
        z[d][i] = v
        cas[i] = cas[i] + w[d] * v
      end
    end
  end
  return cas, z
end

-- score(images, labels) -> { cas = {...}, dims = {d = {z-scores}}, raw = {d = {...}},
--   items = {{own checklist item scores}}, below = {bool: cas < threshold of its class},
--   tail = share below, labels = {...} }
function CAS:score(images, labels)
  if not self.calib then argerror('cas: call cas:calibrate(heldout_real_images, labels) before score') end
  local ys = label_list(labels)
  local dims = active(self, self.weights)
  local raw = self:raw(images, ys, dims)
  local cas, z = self:_combine(raw, ys, self.weights)
  local tail, per_class, below = self:tail(cas, ys)
  return { cas = cas, dims = z, raw = raw, items = raw.items, below = below, tail = tail,
    tail_per_class = per_class, labels = ys }
end

-- tail(cas_values, labels) -> share below threshold, per-class shares, per-image flags
function CAS:tail(cas, labels)
  local ys = label_list(labels)
  local below, nb, per_n, per_b = {}, 0, {}, {}
  for k = 1, #self.classes do per_n[k], per_b[k] = 0, 0 end
  for i, y in ipairs(ys) do
    local b = cas[i] < self.thresholds[y + 1]
    below[i] = b
    per_n[y + 1] = per_n[y + 1] + 1
    if b then nb = nb + 1; per_b[y + 1] = per_b[y + 1] + 1 end
  end
  local per = {}
  for k = 1, #self.classes do per[k] = per_n[k] > 0 and per_b[k] / per_n[k] or 0 / 0 end
  return #ys > 0 and nb / #ys or 0 / 0, per, below
end

---------------------------------------------------------------- reward mode
-- reward(images, labels, weights, cap, {scales=, transform=}) -> tensor [N] = sum_d w_d z_d,
-- differentiable in images (every step is a craft op). weights default to the recipe's
-- reward_weights; a dimension missing from `weights` has weight 0. cap (nil: the recipe's
-- reward_cap; false: none) caps each weighted dimension (see reward_cap above); transform = 'log'
-- compresses each term below -1 logarithmically; scales = {dim -> positive number} divides each
-- dimension's term.
function CAS:reward(images, labels, weights, cap, o)
  if not self.calib then argerror('cas: call cas:calibrate before reward') end
  o = require('craft.core').want('cas.reward', 'options', o, 'table', true) or {}
  require('craft.core').want('cas.reward', 'options.scales', o.scales, 'table', true)
  if o.transform and o.transform ~= 'log' then argerror(('cas.reward: transform %q (false or log)'):format(tostring(o.transform))) end
  local scales = o.scales
  weights = weights or self.reward_weights
  local ys = label_list(labels)
  local dims = active(self, weights)
  local raw = self:_raw(images, ys, dims)
  local R
  for _, d in ipairs(dims) do
    if not self.calib.mu[d] then argerror(('cas: dimension %s was not calibrated'):format(d)) end
    local mu, inv = {}, {}
    for i, y in ipairs(ys) do
      mu[i] = self.calib.mu[d][y + 1]
      inv[i] = weights[d] / self.calib.sd[d][y + 1]
    end
    local term = (raw[d] - T.tensor(mu)) * T.tensor(inv)
    -- reward_cap: no reward for pushing a dimension past the real images' level (w_d * cap),
    -- so the ascent cannot trade a failing dimension for an over-satisfied one
    local c = cap
    if c == nil then c = self.reward_cap end
    if type(c) == 'table' then c = c[d] end
    if c then term = term:clamp(nil, c * math.abs(weights[d])) end
    -- transform 'log': below -1 a term counts as -1 - log(-term), so an image far out on one
    -- dimension (z of -800 where the real images agree closely) weighs like one at -e^k, not
    -- 800 times one at -1, and the batch's gradient is not owned by its few worst images
    if o.transform == 'log' then
      term = F.where(term:ge(-1), term, (term:neg():clamp(1, nil)):log():neg() - 1)
    end
    -- scales: each weighted dimension divided by its spread on the generator's own images, so
    -- that a dimension whose real images agree closely (a tiny standard deviation, huge z) does not
    -- own the whole gradient
    if scales and scales[d] then term = term * (1 / scales[d]) end
    R = R and R + term or term
  end
  return R
end

-- audit(result, {threshold=0.5}) -> { [class index] = { [item index in the class's list] = share } }:
-- the structured checklist audit, the share of a class's images whose item score exceeds the
-- threshold (0.5: the image is closer to the item than to its negation).
function CAS:audit(result, o)
  local thr = (o and o.threshold) or 0.5
  local ct = self:_checklist_text()
  local r = {}
  for c = 1, #self.classes do
    local n, hits = 0, {}
    for j = 1, #ct.per_class[c] do hits[j] = 0 end
    for i, y in ipairs(result.labels) do
      if y + 1 == c and result.items[i] then
        n = n + 1
        for j, v in ipairs(result.items[i]) do if v > thr then hits[j] = hits[j] + 1 end end
      end
    end
    r[c] = {}
    for j = 1, #hits do r[c][j] = n > 0 and hits[j] / n or 0 / 0 end
  end
  return r
end

return M
