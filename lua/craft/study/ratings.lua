-- craft.study.ratings: reads a packet's key and the readers' ratings files, checks each file
-- against the key, and turns what passes into blocks (craft.study.analysis). A bad file never
-- stops the others: each problem is one line naming the file, and the file is left out (or, for
-- missing trials and display-order mismatches, analysed with a note).
--
--   local key = ratings.read_key(path)                   -- one error line if it is not a key
--   local r = ratings.load(key, {'a.json', 'b.json'})
--   r.blocks, r.raters = {{name, file, trials, seconds = {...}}}, r.problems = {lines},
--   r.files = {{path, status = 'used' | 'skipped' | 'duplicate', rater, trials, note}}
local io_ = require 'craft.io'
local hash = require 'craft.study.hash'

local M = {}

local function fail(msg) error(msg, 0) end

-- a library error's message without its "file.lua:123: " position (the position is ours, not
-- the user's: these messages are about their files)
function M.bare(msg) return (tostring(msg):gsub('^[^\n]-%.lua:%d+: ', '')) end

local function is_list_of(v, kind)
  if type(v) ~= 'table' then return false end
  local n = 0
  for _ in pairs(v) do n = n + 1 end
  if n ~= #v then return false end
  for _, x in ipairs(v) do if type(x) ~= kind then return false end end
  return true
end

-- check_key(key) -> nil, or what in the key's structure is not as `study make` writes it
function M.check_key(key)
  if not is_list_of(key.classes, 'string') or #key.classes == 0 then return 'classes is not a list of names' end
  if not is_list_of(key.conditions, 'table') or #key.conditions == 0 then return 'conditions is not a list' end
  for i, c in ipairs(key.conditions) do
    if type(c.key) ~= 'string' or type(c.name) ~= 'string' then return ('conditions[%d] needs a key and a name'):format(i) end
  end
  if not is_list_of(key.checklists or {}, 'table') then return 'checklists is not a list of lists' end
  for _, items in ipairs(key.checklists or {}) do
    if not is_list_of(items, 'string') then return 'checklists is not a list of lists of texts' end
  end
  if not is_list_of(key.trials, 'table') or #key.trials == 0 then return 'trials is not a list' end
  if type(key.trials_checksum) ~= 'string' then return 'no trials_checksum' end
  local seen = {}
  for i, t in ipairs(key.trials) do
    if type(t.id) ~= 'string' or seen[t.id] then return ('trials[%d] has no id of its own'):format(i) end
    seen[t.id] = true
    if type(t.class_index) ~= 'number' or t.class_index % 1 ~= 0 or t.class_index < 0 or t.class_index >= #key.classes then
      return ('trials[%d].class_index is not a class'):format(i)
    end
    if not is_list_of(t.images, 'table') or #t.images < 2 then return ('trials[%d].images is not a list'):format(i) end
    for k, im in ipairs(t.images) do
      if type(im.id) ~= 'string' or seen[im.id] or type(im.method_key) ~= 'string' then
        return ('trials[%d].images[%d] needs an id of its own and a method_key'):format(i, k)
      end
      seen[im.id] = true
    end
  end
  return nil
end

function M.read_key(path, who)
  who = who or 'study score'
  local ok, key = pcall(io_.read_json, path)
  if not ok then fail(('%s: %s: not a readable key (%s)'):format(who, path, M.bare(key))) end
  if type(key) ~= 'table' or key.format ~= 'craft-study-key' or type(key.trials) ~= 'table' or type(key.packet) ~= 'string'
    or type(key.conditions) ~= 'table' then
    fail(('%s: %s is not a study key (craft study make writes key.json)'):format(who, path))
  end
  local why = M.check_key(key)
  if why then fail(('%s: %s: %s: the key was edited or damaged'):format(who, path, why)) end
  key.by_trial, key.by_image = {}, {}
  for _, t in ipairs(key.trials) do
    key.by_trial[t.id] = t
    t.ids = {}
    for _, im in ipairs(t.images) do
      key.by_image[im.id] = im
      t.ids[#t.ids + 1] = im.id
    end
  end
  local list = {}
  for i, t in ipairs(key.trials) do list[i] = { id = t.id, class_index = t.class_index, images = t.ids } end
  if hash.trials_checksum(key.packet, list) ~= key.trials_checksum then
    fail(('%s: %s: its trial list does not match its own checksum: the key was edited'):format(who, path))
  end
  return key
end

local function same_set(a, b)
  if #a ~= #b then return false end
  local seen = {}
  for _, x in ipairs(a) do if seen[x] then return false end; seen[x] = true end
  for _, x in ipairs(b) do if not seen[x] then return false end end
  return true
end

-- check(key, r) -> nil or why the parsed file r cannot be used (after the JSON parse)
local function check(key, r)
  if type(r) ~= 'table' or r.format ~= 'reader-study-ratings' then return 'not a ratings file of a reader study' end
  if r.version ~= 1 then return ('ratings format version %s (this craft reads version 1)'):format(tostring(r.version)) end
  if r.packet ~= key.packet then
    return ('ratings for packet %s, but the key is for packet %s (another study\'s ratings?)'):format(tostring(r.packet), key.packet)
  end
  if r.trials_checksum ~= key.trials_checksum then
    return ('made from a trial list (checksum %s) that is not the key\'s (%s): the packet was altered'):format(
      tostring(r.trials_checksum), key.trials_checksum)
  end
  if type(r.rater) ~= 'string' or r.rater == '' then return 'no reader name' end
  if not (type(r.trials) == 'table' and (#r.trials > 0 or next(r.trials) == nil)) then return 'no list of trials' end
  for i, t in ipairs(r.trials) do
    local where = ('trials[%d]'):format(i)
    if type(t) ~= 'table' or type(t.trial) ~= 'string' then return where .. ' has no trial id: edited' end
    if not is_list_of(t.shown, 'string') or not is_list_of(t.ranking, 'string') or not is_list_of(t.flags or {}, 'string') then
      return where .. ': shown, ranking and flags must be lists of image ids: edited'
    end
    if type(t.ticks) ~= 'table' or type(t.ms) ~= 'number' or t.ms < 0 or t.ms % 1 ~= 0 or t.ms >= 2 ^ 53 then
      return where .. ': ticks or ms malformed: edited'
    end
    for id, items in pairs(t.ticks) do
      if type(id) ~= 'string' or not is_list_of(items, 'number') then return where .. ': ticks malformed: edited' end
    end
  end
  if type(r.checksum) ~= 'string' or hash.ratings_checksum(r) ~= r.checksum then
    return 'its content does not match its checksum: edited after it was written'
  end
  local seen = {}
  for i, t in ipairs(r.trials) do
    local kt = key.by_trial[t.trial]
    if not kt then return ('trials[%d]: trial %s is not in the packet'):format(i, t.trial) end
    if seen[t.trial] then return ('trial %s appears twice'):format(t.trial) end
    seen[t.trial] = true
    if not same_set(t.ranking, kt.ids) or not same_set(t.shown, kt.ids) then
      return ('trial %s: the ranking is not of that trial\'s images'):format(t.trial)
    end
    local n_items = #((key.checklists or {})[kt.class_index + 1] or {})
    local in_trial = {}
    for _, x in ipairs(kt.ids) do in_trial[x] = true end
    for id, items in pairs(t.ticks) do
      if not in_trial[id] then return ('trial %s: ticks for an image not in the trial'):format(t.trial) end
      for _, k in ipairs(items) do
        if k % 1 ~= 0 or k < 0 or k >= n_items then return ('trial %s: checklist item %s out of range'):format(t.trial, tostring(k)) end
      end
    end
    for _, id in ipairs(t.flags or {}) do
      if not in_trial[id] then return ('trial %s: a flag for an image not in the trial'):format(t.trial) end
    end
  end
  return nil
end

local function blocks_of(key, r, rater)
  local blocks, reordered = {}, 0
  for _, t in ipairs(r.trials) do
    local kt = key.by_trial[t.trial]
    local expect = hash.shuffle(kt.ids, hash.order_seed(key.packet, r.rater, t.trial))
    local order_ok = table.concat(expect, ',') == table.concat(t.shown, ',')
    if not order_ok then reordered = reordered + 1 end
    local rank, pos, flags = {}, {}, {}
    for k, id in ipairs(t.ranking) do rank[id] = k end
    for k, id in ipairs(t.shown) do pos[id] = k end
    for _, id in ipairs(t.flags or {}) do flags[id] = true end
    local n_items = #((key.checklists or {})[kt.class_index + 1] or {})
    local items = {}
    for _, im in ipairs(kt.images) do
      items[#items + 1] = { id = im.id, cond = im.method_key, rank = rank[im.id], flag = flags[im.id] or false,
        ticked = #(t.ticks[im.id] or {}), ticks = t.ticks[im.id] or {}, n_items = n_items, position = order_ok and pos[im.id] or nil }
    end
    blocks[#blocks + 1] = { rater = rater, trial = t.trial, class = kt.class_index, items = items, ms = t.ms }
  end
  return blocks, reordered
end

local function norm(name) return (name:lower():gsub('%s+', ' '):gsub('^ ', ''):gsub(' $', '')) end

function M.load(key, paths)
  local out = { blocks = {}, raters = {}, problems = {}, files = {} }
  local function problem(path, msg) out.problems[#out.problems + 1] = path .. ': ' .. msg end
  local accepted = {}
  for _, path in ipairs(paths) do
    local entry = { path = path, status = 'skipped' }
    out.files[#out.files + 1] = entry
    local f, err = io.open(path, 'rb')
    local text = f and f:read('*a')
    if f then f:close() end
    if not text then
      entry.note = 'cannot read: ' .. tostring(err)
    else
      local ok, r = pcall(io_.decode_json, text, path)
      if not ok then
        local msg = tostring(r)
        local _, e = msg:find('json ' .. path .. ': ', 1, true)
        entry.note = 'not a complete JSON file (truncated or damaged?): ' .. (e and msg:sub(e + 1) or msg)
      else
        local why = check(key, r)
        if why then entry.note = why
        else
          entry.status, entry.rater, entry.trials, entry.r = 'used', r.rater, #r.trials, r
          accepted[#accepted + 1] = entry
        end
      end
    end
    if entry.status == 'skipped' then problem(path, entry.note .. '; skipped') end
  end
  -- one file per reader
  local by_name = {}
  for _, e in ipairs(accepted) do
    local k = norm(e.rater)
    local prev = by_name[k]
    if not prev then by_name[k] = e
    elseif prev.r.checksum == e.r.checksum then
      e.status, e.note = 'duplicate', ('the same ratings as %s (reader %q); counted once'):format(prev.path, e.rater)
      problem(e.path, e.note)
    else
      local keep, drop = prev, e
      if e.trials > prev.trials then keep, drop = e, prev end
      by_name[k] = keep
      drop.status = 'duplicate'
      drop.note = ('reader %q also rated in %s: kept %s (%d trials), left out %s (%d trials); if they are two people, give them different names'):format(
        e.rater, prev.path, keep.path, keep.trials, drop.path, drop.trials)
      problem(drop.path, drop.note)
    end
  end
  for _, e in ipairs(accepted) do
    if e.status == 'used' then
      local r = e.r
      local blocks, reordered = blocks_of(key, r, r.rater)
      for _, b in ipairs(blocks) do out.blocks[#out.blocks + 1] = b end
      local seconds = {}
      for i, b in ipairs(blocks) do seconds[i] = b.ms / 1000 end
      out.raters[#out.raters + 1] = { name = r.rater, file = e.path, trials = #blocks, seconds = seconds,
        started = r.started, finished = r.finished }
      if #r.trials < #key.trials then
        local have, missing = {}, {}
        for _, t in ipairs(r.trials) do have[t.trial] = true end
        for _, t in ipairs(key.trials) do if not have[t.id] then missing[#missing + 1] = t.id end end
        local list = #missing > 8 and (table.concat(missing, ', ', 1, 8) .. ', ...') or table.concat(missing, ', ')
        e.note = ('reader %q completed %d of %d trials (missing %s); the %d are analysed'):format(r.rater, #r.trials,
          #key.trials, list, #r.trials)
        problem(e.path, e.note)
      end
      if reordered > 0 then
        problem(e.path, ('%d trials were shown in an order other than the one the page computes for reader %q; analysed, left out of the position check'):format(reordered, r.rater))
      end
    end
  end
  return out
end

return M
