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
--   cas:reward(images, labels, craft.cas.reward_spec{cap = 0.5, transform = 'log'})  -- a reward spec
--
-- The dimensions are modules of craft.cas.dims (lua/craft/cas/dims/: prompt, checklist, probe,
-- fidelity, in that order); recipe.dims = {name or module, ...} adds others after them. The
-- weights below name any of them.
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
local stats = require 'craft.stats'
local registry = require 'craft.cas.dims'
local U = require 'craft.cas.util'
local RS = require 'craft.cas.reward_spec'

local M = {}
M.DIMS = registry.BUILTIN   -- METHOD.md's four (every dimension: craft.cas.dims)
M.reward_spec = RS.new
local CAS = {}
CAS.__index = CAS
M.CAS = CAS

local function merge(defaults, given)
  local r = {}
  for k, v in pairs(defaults) do r[k] = v end
  for k, v in pairs(given or {}) do r[k] = v end
  return r
end

local label_list, one_hot = U.label_list, U.one_hot

function M.new(recipe)
  local want = require('craft.core').want
  local r = want('cas.new', 'recipe', recipe, 'table', true) or {}
  for _, k in ipairs { 'classes', 'prompts', 'checklists', 'temperature', 'weights', 'reward_weights',
    'dims' } do
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
  self.dims = M.dims_of(r)
  local ones = {}
  for _, d in ipairs(self.dims) do ones[d] = 1 end
  self.weights = merge(ones, r.weights)
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
  -- device: where the CAS's own tensors (probe, bank, statistics, scores) are made; the encoders
  -- compute on their models' devices (craft.encoders). nil: the current device of each call.
  if r.device ~= nil then require('craft.device').code(r.device) end
  self.device = r.device
  return self
end

---------------------------------------------------------------- dimensions
-- dims_of(recipe) -> the names of the dimensions a CAS of this recipe has: the built-in four, then
-- recipe.dims (names or dimension modules, registered on the way), then any other dimension the
-- weights name, in that order.
function M.dims_of(r)
  r = require('craft.core').want('cas.dims_of', 'recipe', r, 'table', true) or {}
  require('craft.core').want('cas.dims_of', 'recipe.dims', r.dims, 'table', true)
  local list, seen = {}, {}
  local function add(d)
    if type(d) == 'table' then
      require('craft.core').want('cas.new', 'recipe.dims[i].name', d.name, 'string')
      d = registry.register(d.name, d).name
    end
    registry.get(d)   -- an unknown name is refused here
    if not seen[d] then seen[d] = true; list[#list + 1] = d end
  end
  for _, d in ipairs(registry.BUILTIN) do add(d) end
  for _, d in ipairs(r.dims or {}) do add(d) end
  local extra = {}
  for _, w in ipairs { r.weights or {}, r.reward_weights or {} } do
    for d in pairs(w) do if not seen[d] then extra[#extra + 1] = d end end
  end
  table.sort(extra)
  for _, d in ipairs(extra) do add(d) end
  return list
end

-- Whether dimension d can be computed: its encoders, texts and fitted parts exist.
function CAS:available(d)
  return registry.get(d).missing(self) == nil
end

local function active(self, weights)
  local r = {}
  for _, d in ipairs(self.dims) do
    local w = weights[d] or 0
    if w ~= 0 then
      local why = registry.get(d).missing(self)
      if why then
        argerror(('cas: dimension %s has weight %g but is not available (%s)'):format(d, w, why))
      end
      r[#r + 1] = d
    end
  end
  for d, w in pairs(weights) do
    if w ~= 0 and not self.weights[d] then
      argerror(('cas: dimension %s is not one of this CAS\'s (%s; add it to the recipe\'s dims)')
        :format(tostring(d),
        table.concat(self.dims, ', ')))
    end
  end
  return r
end

---------------------------------------------------------------- texts
-- The checklist's text features (craft.cas.dims.checklist), computed once.
function CAS:_checklist_text() return registry.get('checklist').text(self) end

-- The checklist item list: { {class = index, name = ...}, ... } (in the order items are stored).
function CAS:checklist_items()
  local ct = self:_checklist_text()
  local r = {}
  for i = 1, #ct.owner do r[i] = { class = ct.owner[i], name = ct.names[i] } end
  return r
end

---------------------------------------------------------------- raw dimensions
-- Raw (unstandardised) dimensions of a batch x with labels ys (Lua list): { d = tensor [n] },
-- plus the checklist item scores [n, I] when the checklist dimension is computed. Differentiable
-- in x whenever grad mode is on. What several dimensions read (an encoder's image features) is
-- computed once per batch.
function CAS:_raw(x, ys, dims)
  local want = {}
  for _, d in ipairs(dims) do want[d] = true end
  local Y = one_hot(ys, #self.classes)
  local out = {}
  local vlm_images, vision = {}, nil
  local shared = { out = out }
  -- the L2-normalised image features of a VLM (the prompt and checklist dimensions share them
  -- when they use the same VLM)
  function shared.vlm_image(enc)
    if not vlm_images[enc] then vlm_images[enc] = F.normalize(enc.encode_image(x), 2) end
    return vlm_images[enc]
  end
  -- the vision encoder's features and their L2-normalised form (probe and fidelity)
  function shared.vision()
    if not vision then
      local f = self.vision.encode(x)
      vision = { features = f, normalized = F.normalize(f, 2) }
    end
    return vision
  end
  for _, d in ipairs(self.dims) do
    if want[d] then out[d] = registry.get(d).raw(self, x, ys, Y, shared) end
  end
  return out
end

---------------------------------------------------------------- fitting
-- fit_bank(real_images, labels): the real-feature bank of dimension 4 (craft.cas.dims.fidelity;
-- training reals, not the held-out reals given to calibrate).
function CAS:fit_bank(images, labels) return registry.get('fidelity').fit_bank(self, images, labels) end

-- fit_probe(real_images, labels, {epochs=200, lr=1e-2, weight_decay=1e-4, val_fraction=0.2, seed=0,
--   val_images=, val_labels=}) -> {train_accuracy=, val_accuracy=, n_train=, n_val=}: the linear
-- probe of dimension 3 (craft.cas.dims.probe), frozen afterwards.
function CAS:fit_probe(images, labels, o) return registry.get('probe').fit_probe(self, images, labels, o) end

-- fit(train_real_images, labels, probe_opts): every dimension's fitted part (the probe, the
-- bank, a registered dimension's fit); returns the probe's report (nil without a probe).
function CAS:fit(images, labels, o)
  self.fit_reports = {}
  for _, d in ipairs(self.dims) do
    local dim = registry.get(d)
    if dim.fit then self.fit_reports[d] = dim.fit(self, images, labels, o) or true end
  end
  return self.probe_report
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
  for _, d in ipairs(self.dims) do if self:available(d) then dims[#dims + 1] = d end end
  local ys = label_list(labels)
  local raw = self:raw(images, ys, dims)
  local C = #self.classes
  local mu, sd = {}, {}
  for _, d in ipairs(dims) do
    mu[d], sd[d] = {}, {}
    for c = 1, C do
      local v = {}
      for i, y in ipairs(ys) do if y + 1 == c then v[#v + 1] = raw[d][i] end end
      if #v < 2 then
        argerror(('cas: calibrate needs at least 2 held-out real images of class %q'):format(self.classes[c]))
      end
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
  for d in pairs(w) do
    if not self.weights[d] then
      argerror(('cas:set_weights: dimension %s is not one of this CAS\'s (%s)'):format(tostring(d),
        table.concat(self.dims, ', ')))
    end
  end
  for _, d in ipairs(self.dims) do full[d] = w[d] or 0 end
  self.weights = full
  if not self.calib then return end
  local c = self.calib
  for _, d in ipairs(self.dims) do
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
  for _, d in ipairs(self.dims) do
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
-- reward(images, labels, spec) -> tensor [N] = sum_d w_d z_d, differentiable in images (every step
-- is a craft op); spec is a craft.cas.reward_spec (weights, cap, transform, scale).
-- The older positional form reward(images, labels, weights, cap, {scales=, transform=}) means the
-- same: weights default to the recipe's reward_weights (a dimension missing from `weights` has
-- weight 0); cap (nil: the recipe's reward_cap; false: none) caps each weighted dimension (see
-- reward_cap above); transform = 'log' compresses each term below -1 logarithmically; scales =
-- {dim -> positive number} divides each dimension's term.
function CAS:reward(images, labels, weights, cap, o)
  if not self.calib then argerror('cas: call cas:calibrate before reward') end
  if RS.is(weights) then
    local spec = weights
    if spec.scale == 'start' then
      argerror('cas.reward: the spec\'s scale is \'start\' (measured by the trainer); give the measured {dim '
        .. '-> number}')
    end
    weights, cap, o = spec.weights, spec.cap, { scales = spec.scale or nil, transform = spec.transform
      or nil }
  end
  o = require('craft.core').want('cas.reward', 'options', o, 'table', true) or {}
  require('craft.core').want('cas.reward', 'options.scales', o.scales, 'table', true)
  if o.transform and o.transform ~= 'log' then
    argerror(('cas.reward: transform %q (false or log)'):format(tostring(o.transform)))
  end
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


-- every method that makes tensors runs with the CAS's device as the current one (when it has one)
for _, name in ipairs { 'fit', 'fit_probe', 'fit_bank', 'calibrate', 'raw', 'score', 'reward', 'tail' } do
  local f = CAS[name]
  CAS[name] = function(self, ...)
    if not self.device then return f(self, ...) end
    return require('craft.device').scope(self.device, f, self, ...)
  end
end

return M
