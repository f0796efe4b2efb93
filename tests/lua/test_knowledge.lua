-- The knowledge artifacts (recipes/knowledge, docs/knowledge.md): every file loads (directly and
-- through the loader), class lists match the phantoms and the data sets' label order, 4-8
-- distinct prompts and 4-10 checklist items (pos and neg) per class, every phantom item names an
-- oracle item of its own class (or is oracle = false with a reason), the oracle agrees with the
-- items on clean phantoms, the prompts fit the CLIP context, and craft.cas accepts the tables.
local craft = require 'craft'
local T = {}

local PHANTOMS = { 'cxr', 'fundus', 'derm', 'histo' }
-- label order from each data set's SOURCE.md (../shared/data), as craft.data.medmnist names it
local REAL = {
  pneumoniamnist = { modality = 'cxr', classes = { 'normal', 'pneumonia' },
    data = '../shared/data/pneumoniamnist/pneumoniamnist.npz' },
  retinamnist = { modality = 'fundus', classes = { 'grade 0', 'grade 1', 'grade 2', 'grade 3', 'grade 4' },
    data = '../shared/data/retinamnist/retinamnist.npz' },
  ham10000 = { modality = 'derm', classes = { 'nevus', 'melanoma' },
    data = '../shared/data/ham10000-mel-nv/ham10000_mel_nv_28.npz' },
}

local function exists(p) local f = io.open(p, 'rb') if f then f:close() return true end return false end
local function loader() return dofile('recipes/knowledge/init.lua') end

-- the shape every artifact shares (METHOD.md, "The knowledge artifacts"; craft.cas's keying)
local function check_shape(t, K, classes, what)
  t.eq(table.concat(K.classes, ','), table.concat(classes, ','), what .. ' classes')
  t.ok(type(K.generic_prompt) == 'string' and #K.generic_prompt > 0, what .. ' generic prompt')
  t.ok(type(K.sources) == 'string' and #K.sources > 0, what .. ' sources')
  local is_class = {}
  for _, c in ipairs(classes) do is_class[c] = true end
  -- keyed by class name (craft.cas reads prompts[classes[i]]), nothing else in the tables
  for k in pairs(K.prompts) do t.ok(is_class[k], ('%s: prompts key %s is not a class'):format(what, tostring(k))) end
  for k in pairs(K.checklists) do t.ok(is_class[k], ('%s: checklists key %s is not a class'):format(what, tostring(k))) end
  local seen = {}
  for _, c in ipairs(classes) do
    local ps = K.prompts[c]
    t.ok(type(ps) == 'table' and #ps >= 4 and #ps <= 8, ('%s %s: %d prompts (4-8)'):format(what, c, ps and #ps or 0))
    for _, p in ipairs(ps or {}) do
      t.ok(type(p) == 'string' and #p > 0, what .. ': prompt is a string')
      t.ok(not seen[p], what .. ': duplicate prompt ' .. tostring(p))
      seen[p] = true
    end
    local items = K.checklists[c]
    t.ok(type(items) == 'table' and #items >= 4 and #items <= 10, ('%s %s: %d checklist items (4-10)'):format(what, c, items and #items or 0))
    local pos_seen = {}
    for _, it in ipairs(items or {}) do
      t.ok(type(it.pos) == 'string' and type(it.neg) == 'string' and #it.pos > 0 and #it.neg > 0 and it.pos ~= it.neg,
        ('%s %s: item %s has distinct pos and neg'):format(what, c, tostring(it.pos)))
      t.ok(not pos_seen[it.pos], ('%s %s: duplicate item %s'):format(what, c, tostring(it.pos)))
      pos_seen[it.pos] = true
    end
  end
end

function T.every_file_loads_directly_and_through_the_loader(t)
  local K = loader()
  t.eq(table.concat(K.names(), ','),
    'ham10000,phantoms_cxr,phantoms_derm,phantoms_fundus,phantoms_histo,pneumoniamnist,retinamnist', 'names')
  for _, name in ipairs(K.names()) do
    local direct = dofile(('recipes/knowledge/%s.lua'):format(name))
    local via = K.get(name)
    t.ok(type(direct) == 'table' and type(via) == 'table', name .. ' loads')
    t.eq(table.concat(via.classes, ','), table.concat(direct.classes, ','), name .. ' same table')
    t.ok(via ~= K.get(name), name .. ': get returns a fresh table')
  end
  for _, m in ipairs(PHANTOMS) do
    t.eq(K.resolve(m), 'phantoms_' .. m, m .. ' by modality')
    t.eq(K.resolve('phantoms:' .. m), 'phantoms_' .. m, m .. ' by craft modality string')
    t.eq(K.get(m).modality, m, m .. ' modality field')
  end
  for name, r in pairs(REAL) do
    t.eq(K.resolve(r.data), name, name .. ' from its data path')
    t.eq(K.get(name).modality, r.modality, name .. ' modality field')
  end
  t.eq(K.resolve('ham'), 'ham10000', 'alias ham')
  t.eq(K.resolve('ham10000-mel-nv'), 'ham10000', 'alias ham10000-mel-nv')
  t.raises(function() K.get('dermamnist') end, 'no artifacts for', 'unknown name')
  -- once loaded, the loader answers require 'recipes.knowledge' too
  t.ok(package.loaded['recipes.knowledge'] ~= nil, 'registered as recipes.knowledge')
  t.ok(require('recipes.knowledge.init').get('cxr') ~= nil, 'require from the repository root')
end

function T.phantom_artifacts_have_the_phantom_classes(t)
  for _, m in ipairs(PHANTOMS) do check_shape(t, loader().get(m), craft.phantoms.classes(m), m) end
end

function T.real_dataset_artifacts_follow_the_label_order(t)
  for name, r in pairs(REAL) do
    local K = loader().get(name)
    check_shape(t, K, r.classes, name)
    if exists(r.data) then
      local ds = craft.data.medmnist(r.data, { split = 'val' })
      t.eq(table.concat(K.classes, ','), table.concat(ds.classes, ','), name .. ' classes = craft.data.medmnist classes')
    else
      t.skip(r.data .. ' not present: label order checked against SOURCE.md only')
    end
    -- real-data items have no oracle (the audit is the VLM's verdict only)
    for _, c in ipairs(K.classes) do
      for _, it in ipairs(K.checklists[c]) do t.ok(not it.oracle, name .. ': no oracle on real data') end
    end
  end
end

-- Every phantom item names an oracle item of the same modality and of the checklist's own
-- class, or is oracle = false with a reason; every oracle item of a class is covered.
function T.phantom_items_name_an_oracle_item_of_their_class(t)
  for _, m in ipairs(PHANTOMS) do
    local K = loader().get(m)
    local classes = craft.phantoms.classes(m)
    local oracle, covered = {}, {}
    for _, it in ipairs(craft.phantoms.items(m)) do oracle[it.name] = it.class end
    for ci, c in ipairs(classes) do
      for _, it in ipairs(K.checklists[c]) do
        if it.oracle == false then
          t.ok(type(it.reason) == 'string' and #it.reason > 0, ('%s %s %q: oracle = false needs a reason'):format(m, c, it.pos))
        else
          t.ok(oracle[it.oracle] ~= nil, ('%s %s %q: oracle %s is an oracle item of %s'):format(m, c, it.pos, tostring(it.oracle), m))
          t.eq(oracle[it.oracle], ci - 1, ('%s %s %q: oracle item %s belongs to the class'):format(m, c, it.pos, tostring(it.oracle)))
          covered[it.oracle] = true
        end
      end
    end
    for name, cls in pairs(oracle) do
      t.ok(covered[name], ('%s: oracle item %s (class %s) has a checklist item'):format(m, name, classes[cls + 1]))
    end
  end
end

-- The mapping is right on pixels: an item's oracle verdict holds on at least half of its
-- class's clean phantoms (a class is defined by a subset of its findings: a melanoma shows at
-- least three of the five ABCD items, a DR fundus at least three lesions among three kinds)
-- and more often than on the other classes' images unless it holds on nearly all of its own.
function T.oracle_verdicts_hold_on_clean_phantoms(t)
  local N = 24
  for _, m in ipairs(PHANTOMS) do
    local K = loader().get(m)
    local audits = {}
    for ci = 1, #K.classes do
      local ds = craft.phantoms.dataset { modality = m, n = N, size = 64, seed = 77, class = ci - 1 }
      audits[ci] = craft.phantoms.audit(m, ds.images)
    end
    local function rate(ci, name)
      local hold = 0
      for i = 1, N do if audits[ci].items[i][name] then hold = hold + 1 end end
      return hold / N
    end
    for ci, c in ipairs(K.classes) do
      for _, it in ipairs(K.checklists[c]) do
        if it.oracle then
          local own, others = rate(ci, it.oracle), 0
          for cj = 1, #K.classes do if cj ~= ci then others = others + rate(cj, it.oracle) / (#K.classes - 1) end end
          t.ok(own >= 0.5, ('%s %s: %s holds on %.0f%% of the class'):format(m, c, it.oracle, 100 * own))
          t.ok(own > others or own >= 0.9, ('%s %s: %s holds on %.0f%% of the class but %.0f%% of the others'):format(
            m, c, it.oracle, 100 * own, 100 * others))
        end
      end
    end
  end
end

-- Every text fits a CLIP context (77 tokens, start and end included) untruncated.
function T.texts_fit_the_clip_context(t)
  if not exists('models/builtin/clip-tiny/vocab.json') then return t.skip('models/builtin/clip-tiny absent') end
  local tok = require('craft.tokenizer').load('models/builtin/clip-tiny')
  local K = loader()
  for _, name in ipairs(K.names()) do
    local A = K.get(name)
    local texts = { A.generic_prompt }
    for _, c in ipairs(A.classes) do
      for _, p in ipairs(A.prompts[c]) do texts[#texts + 1] = p end
      for _, it in ipairs(A.checklists[c]) do texts[#texts + 1] = it.pos; texts[#texts + 1] = it.neg end
    end
    local _, lens = tok:encode(texts, { max_len = 77 })
    local longest = 0
    for i = 1, #texts do longest = math.max(longest, lens[i]) end
    t.ok(longest < 77, ('%s: longest text %d tokens'):format(name, longest))
  end
end

-- craft.cas takes every artifact as it is: tiny fake encoders (a fixed random linear map for
-- images, a hashed vector per string for texts), both prompt averages, prompt and checklist
-- dimensions scored and audited.
local D = 8
local function hashed(s)
  local h = 5381
  for i = 1, #s do h = (h * 33 + s:byte(i)) % 2147483647 end
  local v = {}
  for k = 1, D do v[k] = math.sin(h * 0.001 + k * 1.7) + 0.3 * math.cos(#s + k) end
  return v
end

function T.cas_accepts_every_artifact(t)
  local W = craft.randn({ 3 * 8 * 8, D }, { seed = 5 })
  local K = loader()
  for _, name in ipairs(K.names()) do
    local A = K.get(name)
    local C = #A.classes
    local encoded = {}
    local vlm = {
      encode_image = function(x) return x:reshape(x:size(1), -1):matmul(W) end,
      encode_text = function(texts)
        local rows = {}
        for i, s in ipairs(texts) do rows[i] = hashed(s); encoded[s] = true end
        return craft.tensor(rows)
      end,
    }
    local n = 4 * C
    local labels = {}
    for i = 1, n do labels[i] = (i - 1) % C end
    local x = craft.rand({ n, 3, 8, 8 }, { seed = 11 })
    local nitems = 0
    for _, c in ipairs(A.classes) do nitems = nitems + #A.checklists[c] end
    for _, avg in ipairs { 'logprob', 'embedding' } do
      local cas = craft.cas.new { classes = A.classes, prompts = A.prompts, checklists = A.checklists, vlm = vlm,
        prompt_average = avg, weights = { prompt = 1, checklist = 1, probe = 0, fidelity = 0 },
        temperature = { prompt = 1, checklist = 1 } }   -- unsaturated with these fake features
      cas:calibrate(x, labels)
      local r = cas:score(x, labels)
      t.eq(#r.cas, n, ('%s (%s): one score per image'):format(name, avg))
      local finite = true
      for _, v in ipairs(r.cas) do if v ~= v or v == math.huge or v == -math.huge then finite = false end end
      t.ok(finite, ('%s (%s): finite scores'):format(name, avg))
      t.eq(#cas:checklist_items(), nitems, name .. ': every checklist item is scored')
      local audit = cas:audit(r)
      t.eq(#audit, C, name .. ': audit per class')
      for ci, c in ipairs(A.classes) do t.eq(#audit[ci], #A.checklists[c], name .. ' ' .. c .. ': audit per item') end
    end
    -- the text that reached the encoder is the artifact's own: prompts, positives, negatives
    local first = A.checklists[A.classes[1]][1]
    t.ok(encoded[A.prompts[A.classes[C]][1]] and encoded[first.pos] and encoded[first.neg], name .. ': texts encoded')
  end
end

return T
