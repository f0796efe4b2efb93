-- The Clinical Alignment Score with tiny fake encoders (random linear maps from pixels to
-- features): standardisation, thresholds, tail, weights, the kNN dimension, caching, and the
-- differentiable reward against finite differences.
local craft = require 'craft'
local CASM = require 'craft.cas'
local stats = require 'craft.stats'
local data = require 'craft.data'
local T = {}

local NC, S, D, E = 3, 6, 16, 12
local NPIX = 3 * S * S

-- A synthetic world: each class is a pixel pattern plus noise; the VLM and the vision encoder
-- are fixed random linear maps; the text of a class points along its pattern's image features.
local function world(o)
  o = o or {}
  craft.manual_seed(o.seed or 1)
  local patterns = craft.rand({ NC, 3, S, S })
  local W1 = craft.randn({ NPIX, D }) * (1 / math.sqrt(NPIX))
  local W2 = craft.randn({ NPIX, E }) * (1 / math.sqrt(NPIX))
  local calls = { text = 0, image = 0, vision = 0 }
  local function feat(x, W) return (x - 0.5):reshape(x:size(1), NPIX):matmul(W) end
  local pfeat = craft.no_grad(function() return feat(patterns, W1) end):flat()
  local text = {}
  local classes, prompts, checklists = {}, {}, {}
  -- like CLIP: every text shares a large common direction, so cosines differ by little
  local function vec(c, scale, jitter)
    local v = {}
    for d = 1, D do
      v[d] = scale * pfeat[(c - 1) * D + d] + jitter * math.sin(d * 7.1 + #text * 1.3) + 4 * math.cos(d * 2.3)
    end
    return v
  end
  for c = 1, NC do
    local name = 'class' .. c
    classes[c] = name
    prompts[name] = {}
    for j = 1, (o.prompts_per_class or 2) + (c == 1 and (o.extra_prompt or 0) or 0) do
      local s = ('%s prompt %d'):format(name, j)
      text[s] = vec(c, 1, 0.3)
      prompts[name][j] = s
    end
    checklists[name] = {}
    for j = 1, 3 do
      local pos, neg = ('%s item %d'):format(name, j), ('%s not item %d'):format(name, j)
      text[pos] = vec(c, 1, 0.5)
      text[neg] = vec(c, 0.8, 0.5)
      checklists[name][j] = { pos = pos, neg = neg }
    end
  end
  local recipe = {
    classes = classes, prompts = prompts, checklists = checklists,
    vlm = {
      encode_image = function(x) calls.image = calls.image + 1; return feat(x, W1) end,
      encode_text = function(list)
        calls.text = calls.text + 1
        local rows = {}
        for i, s in ipairs(list) do rows[i] = assert(text[s], s) end
        return craft.tensor(rows)
      end,
    },
    vision = { encode = function(x) calls.vision = calls.vision + 1; return feat(x, W2) end },
    k = 3,
    batch_size = 16,
  }
  for k, v in pairs(o.recipe or {}) do recipe[k] = v end
  local function sample(n, seed, noise, wrong)
    craft.manual_seed(seed)
    local ys, idx = {}, {}
    for i = 1, n do ys[i] = (i - 1) % NC; idx[i] = ((wrong and ys[i] + 1 or ys[i]) % NC) + 1 end
    local x = data.take(patterns, idx) + craft.randn({ n, 3, S, S }) * (noise or 0.3)
    return x, ys
  end
  return { recipe = recipe, calls = calls, sample = sample }
end

local function ready(o)
  local w = world(o)
  local cas = CASM.new(w.recipe)
  local xtr, ytr = w.sample(90, 11)
  cas:fit(xtr, ytr, { epochs = 100, lr = 0.05 })
  local xh, yh = w.sample(120, 12)
  cas:calibrate(xh, yh)
  return cas, w, xh, yh
end

local function per_class_mean(values, ys, c)
  local v = {}
  for i, y in ipairs(ys) do if y + 1 == c then v[#v + 1] = values[i] end end
  return stats.mean(v), stats.std(v)
end

function T.real_images_score_about_zero(t)
  local cas, w, xh, yh = ready()
  -- on the calibration set itself: exactly mean 0, std 1 per class and dimension
  local r = cas:score(xh, yh)
  for _, d in ipairs(CASM.DIMS) do
    for c = 1, NC do
      local m, s = per_class_mean(r.dims[d], yh, c)
      t.near(m, 0, 1e-4, 'held-out mean of ' .. d)
      t.near(s, 1, 1e-3, 'held-out std of ' .. d)
    end
  end
  -- on fresh reals from the same distribution: about 0
  local xt, yt = w.sample(150, 13)
  local rt = cas:score(xt, yt)
  for _, d in ipairs(CASM.DIMS) do
    for c = 1, NC do
      local m = per_class_mean(rt.dims[d], yt, c)
      t.ok(math.abs(m) < 0.45, ('fresh reals %s class %d: mean z %.3f'):format(d, c, m))
    end
  end
  t.ok(math.abs(stats.mean(rt.cas)) < 0.8, 'fresh reals mean CAS about 0')
  -- images drawn with the wrong class pattern are clinically wrong: low CAS, a big tail
  local xb, yb = w.sample(60, 14, 0.3, true)
  local rb = cas:score(xb, yb)
  t.ok(stats.mean(rb.cas) < -3, 'wrong-class images score low: ' .. stats.mean(rb.cas))
  t.ok(rb.tail > 0.9, 'wrong-class tail ' .. rb.tail)
  t.ok(rt.tail < 0.3, 'real tail near q: ' .. rt.tail)
  t.ok(cas.probe_report.val_accuracy > 0.9, 'probe held-out accuracy ' .. cas.probe_report.val_accuracy)
  t.eq(cas.probe_report.n_val, 18)
end

function T.thresholds_are_linear_quantiles(t)
  local cas, _, _, yh = ready()
  for c = 1, NC do
    local v = {}
    for i, y in ipairs(yh) do if y + 1 == c then v[#v + 1] = cas.heldout_cas[i] end end
    table.sort(v)
    -- numpy 'linear': h = (n - 1) q, interpolate between order statistics floor(h), floor(h) + 1
    local h = (#v - 1) * 0.10
    local lo = math.floor(h)
    local want = v[lo + 1] + (v[lo + 2] - v[lo + 1]) * (h - lo)
    t.near(cas.thresholds[c], want, 1e-12, 'threshold class ' .. c)
  end
  -- q changes the threshold: q = 0.5 is the median of the held-out CAS
  cas.q = 0.5
  cas:set_weights(cas.weights)
  local v = {}
  for i, y in ipairs(yh) do if y == 0 then v[#v + 1] = cas.heldout_cas[i] end end
  t.near(cas.thresholds[1], stats.median(v), 1e-12)
end

function T.tail_counts_below_class_threshold(t)
  local cas = CASM.new { classes = { 'a', 'b' } }
  cas.thresholds = { 0.5, -1 }
  local tail, per, below = cas:tail({ 0.4, 0.6, 0.5, -2, 0, -1 }, { 0, 0, 0, 1, 1, 1 })
  t.near(tail, 2 / 6, 1e-12)
  t.near(per[1], 1 / 3, 1e-12)
  t.near(per[2], 1 / 3, 1e-12)
  t.eq(below[1], true); t.eq(below[3], false, 'equal to the threshold is not below'); t.eq(below[6], false)
end

function T.zero_weight_removes_dimension(t)
  local cas, w, xh, yh = ready()
  local full = cas:score(xh, yh)
  cas:set_weights { prompt = 1, checklist = 0, probe = 0, fidelity = 0 }
  local before = w.calls.vision
  local r = cas:score(xh, yh)
  t.eq(w.calls.vision, before, 'a zero-weight dimension is not computed')
  t.eq(r.dims.probe, nil)
  t.eq(r.dims.checklist, nil)
  for i = 1, #r.cas do t.near(r.cas[i], full.dims.prompt[i], 1e-9) end
  -- weights scale the sum
  cas:set_weights { prompt = 2, checklist = 0.5 }
  r = cas:score(xh, yh)
  t.near(r.cas[5], 2 * full.dims.prompt[5] + 0.5 * full.dims.checklist[5], 1e-9)
  -- a recipe without a vision encoder works once dims 3 and 4 have weight 0
  local w2 = world()
  w2.recipe.vision = nil
  w2.recipe.weights = { probe = 0, fidelity = 0 }
  local c2 = CASM.new(w2.recipe)
  c2:calibrate(xh, yh)
  t.eq(c2:score(xh, yh).dims.fidelity, nil)
  local c3 = CASM.new(world().recipe)
  t.raises(function() c3:calibrate(xh, yh) end, 'dimension probe was not calibrated')
end

function T.text_features_cached(t)
  local cas, w, xh, yh = ready()
  local n = w.calls.text
  cas:score(xh, yh)
  cas:reward(xh:narrow(1, 1, 4), { 0, 1, 2, 0 })
  t.eq(w.calls.text, n, 'no text re-encoding after the first use')
  t.eq(n, 3, 'prompts once, checklist positives and negatives once each')
end

-- Dimension 1 by hand: mean over prompt sets of log softmax(cos / T)[y]; 'embedding' mode
-- averages the embeddings instead. With unequal prompt counts the short class cycles.
function T.prompt_dimension_by_hand(t)
  local w = world { extra_prompt = 1 }
  w.recipe.weights = { checklist = 0, probe = 0, fidelity = 0 }
  local cas = CASM.new(w.recipe)
  local x, ys = w.sample(4, 21)
  local raw = cas:raw(x, ys, { 'prompt' }).prompt
  local img = craft.F.normalize(w.recipe.vlm.encode_image(x), 2):tolist()
  local txt = {}
  for c = 1, NC do
    txt[c] = {}
    for j, s in ipairs(w.recipe.prompts['class' .. c]) do
      txt[c][j] = craft.F.normalize(w.recipe.vlm.encode_text({ s }), 2):tolist()[1]
    end
  end
  local function dot(a, b) local s = 0; for i = 1, #a do s = s + a[i] * b[i] end; return s end
  for i = 1, #ys do
    local acc = 0
    for j = 1, 3 do   -- class 1 has 3 prompts, the others 2 (cycled: 1, 2, 1)
      local logits, lse = {}, 0
      for c = 1, NC do
        local p = txt[c][(j - 1) % #txt[c] + 1]
        logits[c] = dot(img[i], p) / 0.01
      end
      local m = math.max(unpack(logits))
      for c = 1, NC do lse = lse + math.exp(logits[c] - m) end
      acc = acc + logits[ys[i] + 1] - m - math.log(lse)
    end
    t.near(raw[i], acc / 3, 2e-3 * (1 + math.abs(acc / 3)), 'log-prob image ' .. i)
  end
  -- one prompt per class: both averaging modes agree
  local w1 = world { prompts_per_class = 1 }
  local a = CASM.new(w1.recipe):raw(x, ys, { 'prompt' }).prompt
  w1.recipe.prompt_average = 'embedding'
  local b = CASM.new(w1.recipe):raw(x, ys, { 'prompt' }).prompt
  t.allclose(a, b, 1e-4)
end

-- Dimension 4 against a brute-force mean of the k best same-class cosines.
function T.fidelity_is_mean_of_k_nearest_same_class(t)
  local w = world()
  local cas = CASM.new(w.recipe)
  local xb, yb = w.sample(10, 31)   -- classes 0,1,2,0,... : class 2 has 3 bank images
  cas:fit_bank(xb, yb)
  cas.k = 4                          -- more than class 2 has: its rows average 3
  local x, ys = w.sample(6, 32)
  local got = cas:raw(x, ys, { 'fidelity' }).fidelity
  local fb = craft.F.normalize(w.recipe.vision.encode(xb), 2):tolist()
  local fx = craft.F.normalize(w.recipe.vision.encode(x), 2):tolist()
  for i = 1, #ys do
    local sims = {}
    for j = 1, #yb do
      if yb[j] == ys[i] then
        local s = 0
        for d = 1, E do s = s + fx[i][d] * fb[j][d] end
        sims[#sims + 1] = s
      end
    end
    table.sort(sims, function(p, q) return p > q end)
    local k = math.min(4, #sims)
    local m = 0
    for j = 1, k do m = m + sims[j] / k end
    t.near(got[i], m, 1e-5, 'fidelity image ' .. i)
  end
end

function T.checklist_audit_shares(t)
  local cas, w = ready()
  local x, ys = w.sample(30, 41)
  local r = cas:score(x, ys)
  local audit = cas:audit(r)
  t.eq(#audit, NC)
  t.eq(#audit[1], 3)
  t.ok(audit[1][1] > 0.8, 'real images satisfy their items: ' .. audit[1][1])
  local xb, yb = w.sample(30, 42, 0.3, true)
  local ab = cas:audit(cas:score(xb, yb))
  t.ok(ab[1][1] < audit[1][1], 'wrong-class images satisfy fewer items')
  t.eq(#cas:checklist_items(), 3 * NC)
end

-- The reward equals the metric-mode CAS and its gradient matches central differences.
function T.reward_is_differentiable(t)
  local cas, w = ready { recipe = { temperature = { prompt = 0.5, checklist = 0.5 } } }
  local x, ys = w.sample(3, 51)
  local r = cas:score(x, ys)
  local xg = x:detach():clone():requires_grad_(true)
  local R = cas:reward(xg, ys, cas.weights)
  t.allclose(R, r.cas, 1e-3, 'reward = CAS')
  R:sum():backward()
  local g = xg.grad:flat()
  local function total(xx) return craft.no_grad(function() return cas:reward(xx, ys, cas.weights):sum():item() end) end
  local base = x:detach():clone():contiguous()
  local eps, worst = 1e-2, 0
  for _, i in ipairs { 1, 17, 40, 77, 108, 150, 200, 251, 300 } do
    local xp, xm = base:clone(), base:clone()
    local n = base:numel()
    local flatp, flatm = xp:reshape(n), xm:reshape(n)
    flatp:set(flatp:get(i) + eps, i)
    flatm:set(flatm:get(i) - eps, i)
    local fd = (total(xp) - total(xm)) / (2 * eps)
    worst = math.max(worst, math.abs(fd - g[i]) / (0.05 + math.abs(fd)))
  end
  t.ok(worst < 0.02, ('reward gradient vs finite differences: worst relative error %.4f'):format(worst))
  t.ok(math.abs(g[1]) + math.abs(g[17]) > 0, 'gradient is not zero')
  -- reward weights: the probe dimension alone
  local Rp = cas:reward(x, ys, { probe = 1 })
  for i = 1, 3 do t.near(Rp:get(i), r.dims.probe[i], 1e-3) end
  -- reward_cap: each weighted dimension is capped at cap * |w|, the metric is unchanged
  cas.reward_cap = -0.25
  local Rc = cas:reward(x, ys, { probe = 2, fidelity = 1 })
  for i = 1, 3 do
    t.near(Rc:get(i), math.min(2 * r.dims.probe[i], -0.5) + math.min(r.dims.fidelity[i], -0.25), 1e-3, 'capped reward')
  end
  cas.reward_cap = { probe = 100 }
  local Ru = cas:reward(x, ys, { probe = 1 })
  for i = 1, 3 do t.near(Ru:get(i), r.dims.probe[i], 1e-3, 'per-dimension cap') end
  cas.reward_cap = false
  -- scales divide each dimension's term; transform 'log' maps a term v < -1 to -1 - log(-v)
  local Rs = cas:reward(x, ys, { probe = 2, fidelity = 1 }, false, { scales = { probe = 4, fidelity = 0.5 } })
  for i = 1, 3 do t.near(Rs:get(i), 2 * r.dims.probe[i] / 4 + r.dims.fidelity[i] / 0.5, 1e-3, 'scaled reward') end
  local function g(v) return v >= -1 and v or -1 - math.log(-v) end
  local Rl = cas:reward(x, ys, { probe = 2, fidelity = 1 }, false, { transform = 'log' })
  for i = 1, 3 do t.near(Rl:get(i), g(2 * r.dims.probe[i]) + g(r.dims.fidelity[i]), 1e-3, 'log-compressed reward') end
  t.raises(function() cas:reward(x, ys, nil, false, { transform = 'cube' }) end, 'transform "cube" (false or log)')
end

-- Dimension 2 may use another VLM (recipe.checklist_vlm); here a copy of the same one, so the
-- checklist values agree, and the prompt dimension's VLM is not needed for it.
function T.separate_checklist_vlm(t)
  local w = world()
  local x, ys = w.sample(6, 71)
  local a = CASM.new(w.recipe):raw(x, ys, { 'checklist' }).checklist
  local copy = { encode_image = w.recipe.vlm.encode_image, encode_text = w.recipe.vlm.encode_text }
  w.recipe.checklist_vlm, w.recipe.vlm = copy, nil
  local b = CASM.new(w.recipe):raw(x, ys, { 'checklist' }).checklist
  t.allclose(b, a, 1e-6)
end

function T.errors_name_the_problem(t)
  local w = world()
  local cas = CASM.new(w.recipe)
  local x, ys = w.sample(4, 61)
  t.raises(function() cas:score(x, ys) end, 'calibrate')
  w.recipe.prompts.class2 = {}
  local c2 = CASM.new(w.recipe)
  t.raises(function() c2:raw(x, ys, { 'prompt' }) end, 'no prompts for class "class2"')
  t.raises(function() CASM.new { classes = { 'a', 'b' }, prompt_average = 'max' } end, 'prompt_average')
end

return T
