-- The knowledge artifacts (recipes/knowledge): every file loads, classes match the data, 4-8
-- prompts and 4-10 checklist items per class, every phantom item names an oracle item of its
-- modality, and a CAS object accepts the tables.
local craft = require 'craft'
local T = {}

local PHANTOMS = { 'cxr', 'fundus', 'derm', 'histo' }
local REAL = { pneumoniamnist = { 'normal', 'pneumonia' },
  retinamnist = { 'grade 0', 'grade 1', 'grade 2', 'grade 3', 'grade 4' }, ham10000 = { 'nevus', 'melanoma' } }

local function check_shape(t, K, classes, what)
  t.eq(table.concat(K.classes, ','), table.concat(classes, ','), what .. ' classes')
  local seen = {}
  for _, c in ipairs(classes) do
    local ps = K.prompts[c]
    t.ok(ps and #ps >= 4 and #ps <= 8, ('%s %s: %d prompts'):format(what, c, ps and #ps or 0))
    for _, p in ipairs(ps or {}) do
      t.ok(not seen[p], what .. ': duplicate prompt ' .. p)
      seen[p] = true
    end
    local items = K.checklists[c]
    t.ok(items and #items >= 4 and #items <= 10, ('%s %s: %d checklist items'):format(what, c, items and #items or 0))
    for _, it in ipairs(items or {}) do
      t.ok(type(it.pos) == 'string' and type(it.neg) == 'string' and it.pos ~= it.neg, what .. ' item has pos and neg')
    end
  end
  t.ok(type(K.generic_prompt) == 'string' and #K.generic_prompt > 0, what .. ' generic prompt')
end

function T.phantom_artifacts_match_the_oracle(t)
  for _, m in ipairs(PHANTOMS) do
    local K = dofile(('recipes/knowledge/phantoms_%s.lua'):format(m))
    local classes = craft.phantoms.classes(m)
    check_shape(t, K, classes, m)
    local oracle = {}
    for _, it in ipairs(craft.phantoms.items(m)) do oracle[it.name] = it.class end
    for _, c in ipairs(classes) do
      for _, it in ipairs(K.checklists[c]) do
        t.ok(oracle[it.oracle] ~= nil, ('%s %s: %q is an oracle item'):format(m, c, tostring(it.oracle)))
        t.ok(type(it.expect) == 'boolean', ('%s %s %s: expect is a boolean'):format(m, c, tostring(it.oracle)))
      end
    end
  end
end

-- The expected verdicts agree with the oracle on clean phantoms: an item's expected verdict
-- holds on at least half of its class's images (a class is defined by a subset of its
-- findings: a melanoma shows at least three of the five ABCD items, not all) and more often
-- than on the other classes' images unless it is shared by all classes (a wrong mapping fails).
function T.expected_verdicts_hold_on_clean_phantoms(t)
  for _, m in ipairs(PHANTOMS) do
    local K = dofile(('recipes/knowledge/phantoms_%s.lua'):format(m))
    local audits = {}
    for ci = 1, #K.classes do
      local ds = craft.phantoms.dataset { modality = m, n = 24, size = 64, seed = 77, class = ci - 1 }
      audits[ci] = craft.phantoms.audit(m, ds.images)
    end
    local function rate(ci, it)
      local hold = 0
      for i = 1, 24 do if audits[ci].items[i][it.oracle] == it.expect then hold = hold + 1 end end
      return hold / 24
    end
    for ci, c in ipairs(K.classes) do
      for _, it in ipairs(K.checklists[c]) do
        local own, others, n = rate(ci, it), 0, 0
        for cj = 1, #K.classes do if cj ~= ci then others = others + rate(cj, it); n = n + 1 end end
        others = others / n
        t.ok(own >= 0.5, ('%s %s: %s expected %s on %.0f%% of its class'):format(m, c, it.oracle, tostring(it.expect), 100 * own))
        t.ok(own > others or own >= 0.9, ('%s %s: %s = %s holds on %.0f%% of the class but %.0f%% of the others'):format(
          m, c, it.oracle, tostring(it.expect), 100 * own, 100 * others))
      end
    end
  end
end

function T.real_dataset_artifacts(t)
  for name, classes in pairs(REAL) do
    check_shape(t, dofile(('recipes/knowledge/%s.lua'):format(name)), classes, name)
  end
end

function T.cas_accepts_the_tables(t)
  local K = dofile('recipes/knowledge/phantoms_derm.lua')
  local W = craft.randn({ 3 * 8 * 8, 8 }, { seed = 5 })
  local vocab = {}
  local function text_feat(s)
    local v = {}
    for k = 1, 8 do v[k] = ((#s * 31 + s:byte(k % #s + 1) * k) % 17) / 17 - 0.5 end
    return v
  end
  local cas = craft.cas.new {
    classes = K.classes, prompts = K.prompts, checklists = K.checklists,
    vlm = { encode_image = function(x) return x:reshape(x:size(1), -1):matmul(W) end,
      encode_text = function(texts)
        local rows = {}
        for i, s in ipairs(texts) do rows[i] = text_feat(s); vocab[s] = true end
        return craft.tensor(rows)
      end },
    weights = { prompt = 1, checklist = 1, probe = 0, fidelity = 0 },
  }
  local ds = craft.phantoms.dataset { modality = 'derm', n = 16, size = 32, seed = 3 }
  local small = craft.data.resize(ds.images, 8)
  cas:calibrate(small, ds.labels)
  local r = cas:score(small, ds.labels)
  t.eq(#r.cas, 16)
  t.ok(vocab['asymmetric shape'], 'checklist text was encoded')
end

return T
