-- craft.experiment.independence: keeps the judge apart from the reward (METHOD.md, "Evaluation
-- integrity"). check(cfg) raises one error naming every overlap it finds:
--   * a model file used by both suites (the same path, or the same bytes under another name), or
--     the same encoder object;
--   * real images in two splits (the splits few_shot, reward_fit, calibration, judge_fit,
--     judge_calibration and test must be pairwise disjoint: by provenance and by pixel content);
--   * a model trained on the data of an experiment split, or reward and judge models trained on
--     the same data (by the provenance their craft_training.json records).
-- The reward and the judge fit their probe / bank / statistics / thresholds on their own splits, so
-- disjoint splits mean no fitted state is shared.
--
-- Provenance entries (datasets' `provenance`, models' `trained_on`), a list of tables:
--   {source = 'phantoms', seed = 401, all = true}            every image of a phantom seed stream
--   {source = 'phantoms:cxr', seed = 1001, class = 0, first = 0, n = 16}   a range of one class
--   {source = 'pneumoniamnist:train', indices = {...}}       listed images of a file's split
--   {source = 'pneumoniamnist:train', all = true}            a whole split
-- Two entries overlap when one source is a prefix of the other at a ':' boundary ('phantoms'
-- covers 'phantoms:cxr'), their seeds agree (when either has one) and their images intersect.
local core = require 'craft.core'
local argerror = core.argerror

local M = {}

M.SPLITS = { 'few_shot', 'reward_fit', 'calibration', 'judge_fit', 'judge_calibration', 'test' }

---------------------------------------------------------------- files
-- A fingerprint of a file's bytes: its size and two polynomial hashes over every byte (exact in
-- doubles), so a copy under another path is found.
local function fingerprint(path)
  core.want('independence.fingerprint', 'path', path, 'string')
  local f = io.open(path, 'rb')
  if not f then return nil end
  local h1, h2, n = 0, 0, 0
  while true do
    local chunk = f:read(65536)
    if not chunk then break end
    n = n + #chunk
    for i = 1, #chunk do
      local b = chunk:byte(i)
      h1 = (h1 * 31 + b) % 4294967291
      h2 = (h2 * 257 + b) % 2147483629
    end
  end
  f:close()
  return ('%d:%d:%d'):format(n, h1, h2)
end
M.fingerprint = fingerprint

local function encoders_of(suite)
  local r = {}
  for _, role in ipairs { 'vlm', 'checklist_vlm', 'vision' } do
    if suite[role] then r[#r + 1] = { role = role, enc = suite[role] } end
  end
  return r
end

---------------------------------------------------------------- provenance
local function prefix_match(a, b)
  if a == b then return true end
  local short, long = a, b
  if #short > #long then short, long = long, short end
  return long:sub(1, #short + 1) == short .. ':'
end

local function index_set(e)
  if e.indices then
    local s = {}
    for _, i in ipairs(e.indices) do s[i] = true end
    return s
  end
  return nil
end

-- do two provenance entries share an image?
function M.entries_overlap(a, b)
  if type(a) ~= 'table' or type(b) ~= 'table' or type(a.source) ~= 'string' or type(b.source) ~= 'string' then return false end
  if not prefix_match(a.source, b.source) then return false end
  if a.seed ~= nil and b.seed ~= nil and a.seed ~= b.seed then return false end
  if a.all or b.all then return true end
  if a.class ~= nil and b.class ~= nil and a.class ~= b.class then return false end
  if a.first ~= nil and b.first ~= nil then
    local a1, b1 = a.first + (a.n or math.huge), b.first + (b.n or math.huge)
    return a.first < b1 and b.first < a1
  end
  local sa, sb = index_set(a), index_set(b)
  if sa and sb then
    for i in pairs(sa) do if sb[i] then return true end end
    return false
  end
  return true   -- entries of one source that say nothing narrower: assume they overlap
end

local function lists_overlap(la, lb)
  for _, a in ipairs(la or {}) do
    for _, b in ipairs(lb or {}) do
      if M.entries_overlap(a, b) then return a, b end
    end
  end
  return nil
end

local function describe_entry(e)
  local parts = { e.source }
  if e.seed then parts[#parts + 1] = 'seed ' .. e.seed end
  if e.class then parts[#parts + 1] = 'class ' .. e.class end
  if e.indices then parts[#parts + 1] = #e.indices .. ' listed images' end
  if e.all then parts[#parts + 1] = 'all images' end
  return table.concat(parts, ', ')
end

---------------------------------------------------------------- image content
-- A hash of every image of a data set (pixels quantised to 1/65535), to find the same image in
-- two splits whatever their provenance says.
function M.image_hashes(images)
  core.want('independence.image_hashes', 'images', images, 'tensor')
  local n = images:size(1)
  local per = images:numel() / math.max(n, 1)
  local v = images:contiguous():float():flat()
  local r = {}
  for i = 0, n - 1 do
    local h1, h2 = 0, 0
    for k = i * per + 1, (i + 1) * per do
      local q = math.floor(v[k] * 65535 + 0.5)
      h1 = (h1 * 31 + q) % 4294967291
      h2 = (h2 * 257 + q) % 2147483629
    end
    r[i + 1] = h1 .. ':' .. h2
  end
  return r
end

---------------------------------------------------------------- the check
-- check{splits = {name -> dataset}, reward = suite, judge = suite, generator = {trained_on = ...}}
-- -> the list of overlaps found (empty); raises when there is any, naming them all.
function M.check(o)
  core.want('independence.check', 'options', o, 'table')
  for _, k in ipairs { 'splits', 'reward', 'judge', 'generator' } do core.want('independence.check', 'options.' .. k, o[k], 'table', true) end
  for name, d in pairs(o.splits or {}) do
    if type(d) ~= 'table' or not require('craft.tensor').is_tensor(d.images) then
      argerror(('independence.check: splits.%s must be a data set with images'):format(tostring(name)))
    end
  end
  local problems = {}
  local function add(fmt, ...) problems[#problems + 1] = fmt:format(...) end
  local reward, judge, splits = o.reward or {}, o.judge or {}, o.splits or {}
  -- 1. model files and encoder objects
  local rf = {}
  for _, e in ipairs(encoders_of(reward)) do
    for _, f in ipairs(e.enc.files or {}) do rf[#rf + 1] = { role = e.role, path = f, fp = fingerprint(f) } end
  end
  for _, je in ipairs(encoders_of(judge)) do
    for _, re in ipairs(encoders_of(reward)) do
      if je.enc == re.enc then add('the judge %s and the reward %s are the same encoder (%s)', je.role, re.role, je.enc.name or '?') end
    end
    for _, f in ipairs(je.enc.files or {}) do
      local fp = fingerprint(f)
      for _, r in ipairs(rf) do
        if r.path == f or (fp and fp == r.fp) then
          add('model file %s is used by the judge (%s) and by the reward (%s%s)', f, je.role, r.role,
            r.path ~= f and (', as ' .. r.path) or '')
        end
      end
    end
  end
  -- 2. splits: provenance and content, pairwise
  local names, hashes = {}, {}
  for _, s in ipairs(M.SPLITS) do if splits[s] then names[#names + 1] = s end end
  for _, s in ipairs(names) do
    local set = {}
    for _, h in ipairs(M.image_hashes(splits[s].images)) do set[h] = true end
    hashes[s] = set
  end
  for i = 1, #names do
    for j = i + 1, #names do
      local a, b = names[i], names[j]
      if splits[a] == splits[b] then add('splits %s and %s are the same data set', a, b)
      else
        local ea, eb = lists_overlap(splits[a].provenance, splits[b].provenance)
        if ea then add('splits %s and %s draw on the same images (%s / %s)', a, b, describe_entry(ea), describe_entry(eb)) end
        local shared = 0
        for h in pairs(hashes[a]) do if hashes[b][h] then shared = shared + 1 end end
        if shared > 0 then add('%d image(s) of split %s are also in split %s (same pixels)', shared, a, b) end
      end
    end
  end
  -- 3. what the models were trained on
  local models = {}
  for _, e in ipairs(encoders_of(reward)) do models[#models + 1] = { who = 'reward ' .. e.role, enc = e.enc } end
  local first_judge = #models + 1
  for _, e in ipairs(encoders_of(judge)) do models[#models + 1] = { who = 'judge ' .. e.role, enc = e.enc } end
  if o.generator then models[#models + 1] = { who = 'generator', enc = o.generator } end
  for _, m in ipairs(models) do
    for _, s in ipairs(names) do
      local ea = lists_overlap(m.enc.trained_on, splits[s].provenance)
      if ea then add('the %s (%s) was trained on images of split %s (%s)', m.who, m.enc.name or m.enc.dir or '?', s, describe_entry(ea)) end
    end
  end
  for i = first_judge, #models do
    if models[i].who ~= 'generator' then
      for k = 1, first_judge - 1 do
        local ea = lists_overlap(models[i].enc.trained_on, models[k].enc.trained_on)
        if ea then add('the %s and the %s were trained on the same images (%s)', models[i].who, models[k].who, describe_entry(ea)) end
      end
    end
  end
  if #problems > 0 then
    argerror('experiment: the judge is not independent of the reward: ' .. table.concat(problems, '; '))
  end
  return problems
end

return M
