-- craft.study.make: builds a study packet from a run directory (run.json + samples/, see
-- craft.samples): PACKET/study.html for the readers and PACKET/key.json for the investigator.
--
--   make.packet{run = RUN_DIR, out = PACKET, per_class = N, methods = {'craft_4', 'DPO'},
--               real = 0, seed = 'S', instructions = 'text', force = false} -> summary
--
-- Trials: one per (class, draw). Draw d of a class shows the d-th image of a seeded shuffle of
-- every selected method's images of that class (and `real` real test-split images), in a
-- seeded order; the page then shuffles that order again per reader. Every random choice
-- derives from the seed; without one, 128 bits from /dev/urandom, so that nobody who reads
-- this code can rebuild the key from the page. key.json records the seed.
local core = require 'craft.core'
local io_ = require 'craft.io'
local samples = require 'craft.samples'
local hash = require 'craft.study.hash'
local png = require 'craft.study.png'
local page = require 'craft.study.page'
local scan = require 'craft.study.scan'

local M = {}

M.DEFAULT_TITLE = 'Reader study'
M.DEFAULT_INSTRUCTIONS = {
  'Thank you for taking part. Each trial names a target finding, describes it, and shows a few images that are meant to show it. Rank the images by clinical plausibility: how convincingly each one looks like a genuine image of a patient with that finding, as you would judge it in your own reading.',
  'Click the most plausible image first, then the next, down to the least plausible; click a ranked image again to take back its rank. You can also drag the small images in "Your ranking" to reorder them. Every image must get a rank before you can go on.',
  'Under each image you may tick the items of the checklist that you can see in that image, and mark an image "not diagnostic" if it cannot be read at all. Both are optional.',
  'The images and trials are in a random order. Work at your usual reading pace. Your progress is kept in this browser, so you can close the page and come back to it later on the same computer.',
  'At the end, download your ratings file and send it to the investigator.',
}

local function fail(msg) error(msg, 0) end

local function random_seed()
  local f = io.open('/dev/urandom', 'rb')
  if f then
    local b = f:read(16)
    f:close()
    if b and #b == 16 then return (b:gsub('.', function(c) return ('%02x'):format(c:byte()) end)) end
  end
  return hash.hex(('%s %s %s'):format(os.time(), os.clock(), tostring({})))
end

local function paragraphs(text)
  if type(text) == 'table' then return text end
  local list = {}
  for p in (text .. '\n\n'):gmatch('(.-)\n%s*\n') do
    p = p:gsub('%s+', ' '):gsub('^ ', ''):gsub(' $', '')
    if p ~= '' then list[#list + 1] = p end
  end
  return list
end

local function read_text(path)
  local f, err = io.open(path, 'rb')
  if not f then fail('study make: cannot read ' .. path .. ': ' .. tostring(err)) end
  local s = f:read('*a')
  f:close()
  return s
end

-- the methods of the packet, in run.json's order (or the order given)
local function select_methods(run, wanted, rows)
  local have = {}
  for _, r in ipairs(rows) do have[r.method_key] = true end
  local list = {}
  if not wanted then
    for _, m in ipairs(run.methods) do
      if have[m.key] then list[#list + 1] = m end
    end
    if #list == 0 then fail('study make: the run has no generated images in samples/index.csv') end
    return list
  end
  local seen = {}
  for _, w in ipairs(wanted) do
    local found
    for _, m in ipairs(run.methods) do if m.key == w or m.name == w then found = m end end
    if not found then
      local names = {}
      for _, m in ipairs(run.methods) do names[#names + 1] = ('%s (%s)'):format(m.key, m.name) end
      fail(('study make: no method %q in the run (methods: %s)'):format(w, table.concat(names, ', ')))
    end
    if seen[found.key] then fail(('study make: method %q is listed twice'):format(w)) end
    if not have[found.key] then fail(('study make: method %q has no images in samples/index.csv'):format(w)) end
    seen[found.key] = true
    list[#list + 1] = found
  end
  return list
end

local function check_run(run, dir)
  if type(run) ~= 'table' or type(run.classes) ~= 'table' or type(run.methods) ~= 'table' or #run.classes == 0 then
    fail(('study make: %s/run.json lacks classes or methods'):format(dir))
  end
  for i, m in ipairs(run.methods) do
    if type(m) ~= 'table' or type(m.key) ~= 'string' or type(m.name) ~= 'string' then
      fail(('study make: %s/run.json: methods[%d] needs a name and a key'):format(dir, i))
    end
  end
end

function M.packet(o)
  core.want('study.make', 'options', o, 'table')
  core.want('study.make', 'options.run', o.run, 'string')
  core.want('study.make', 'options.out', o.out, 'string')
  local per_class = core.want('study.make', 'options.per_class', o.per_class, 'positive', true)
  local n_real = core.want('study.make', 'options.real', o.real, 'count', true) or 0
  local run_path = o.run .. '/run.json'
  local f = io.open(run_path)
  if not f then fail(('study make: %s not found (is %s a run directory?)'):format(run_path, o.run)) end
  f:close()
  local bare = require('craft.study.ratings').bare
  local ok, run = pcall(io_.read_json, run_path)
  if not ok then fail('study make: ' .. bare(run)) end
  check_run(run, o.run)
  local rows
  ok, rows = pcall(samples.read, o.run .. '/samples')
  if not ok then fail('study make: ' .. bare(rows)) end
  local kf = io.open(o.out .. '/key.json')
  if kf then kf:close() end
  if kf and not o.force then
    fail(('study make: %s/key.json exists: a new packet would orphan ratings made with the old one (--force to replace it)'):format(o.out))
  end
  local methods = select_methods(run, o.methods, rows)
  local seed = o.seed and tostring(o.seed) or random_seed()
  local function g(purpose) return hash.rng('study-make\n' .. seed .. '\n' .. purpose) end

  -- pools of images per (method key, class index), each in a seeded random order
  local pools = {}
  for _, r in ipairs(rows) do
    local k = r.method_key .. '\0' .. r.class_index
    pools[k] = pools[k] or {}
    table.insert(pools[k], r)
  end
  for k, list in pairs(pools) do
    table.sort(list, function(a, b) return a.file < b.file end)
    pools[k] = hash.shuffle(list, g('pool\n' .. k))
  end
  local function pool(key, c) return pools[key .. '\0' .. (c - 1)] or {} end
  local limit = math.huge
  for c = 1, #run.classes do
    for _, m in ipairs(methods) do limit = math.min(limit, #pool(m.key, c)) end
    if n_real > 0 then limit = math.min(limit, math.floor(#pool('real', c) / n_real)) end
  end
  if per_class and per_class > limit or limit == 0 then
    local lines = {}
    for c, name in ipairs(run.classes) do
      local counts = {}
      for _, m in ipairs(methods) do counts[#counts + 1] = ('%s %d'):format(m.key, #pool(m.key, c)) end
      if n_real > 0 then counts[#counts + 1] = ('real %d'):format(#pool('real', c)) end
      lines[#lines + 1] = name .. ': ' .. table.concat(counts, ', ')
    end
    fail(('study make: %s draws per class need more images than the run has (images per class: %s)%s'):format(
      per_class or 'any', table.concat(lines, '; '), limit > 0 and (' ; at most --per-class ' .. limit) or ''))
  end
  per_class = per_class or math.min(limit, 10)

  -- the trials, in a seeded order across classes
  local pending = {}
  for c = 1, #run.classes do
    for d = 1, per_class do
      local imgs = {}
      for _, m in ipairs(methods) do
        local r = pool(m.key, c)[d]
        imgs[#imgs + 1] = { row = r, method = m.name, key = m.key, kind = m.kind }
      end
      for k = 1, n_real do
        imgs[#imgs + 1] = { row = pool('real', c)[(d - 1) * n_real + k], method = 'Real', key = 'real', kind = 'real' }
      end
      pending[#pending + 1] = { class_index = c - 1, draw = d, images = imgs }
    end
  end
  pending = hash.shuffle(pending, g('trials'))
  local packet_id = hash.token(g('packet'), 12)
  local tokens, used = g('tokens'), {}
  local ok1, first = pcall(png.read, pending[1].images[1].row.path)
  if not ok1 then fail('study make: ' .. first) end
  local channels = 1
  for _, tr in ipairs(pending) do
    for _, im in ipairs(tr.images) do
      local ok, info = pcall(png.read, im.row.path)
      if not ok then fail('study make: ' .. info) end
      if info.h ~= first.h or info.w ~= first.w then
        fail(('study make: %s is %dx%d but %s is %dx%d: a packet needs one image size'):format(im.row.path, info.w, info.h,
          pending[1].images[1].row.path, first.w, first.h))
      end
      if info.c >= 3 then channels = 3 end
    end
  end

  local key_trials, page_trials = {}, {}
  for t, tr in ipairs(pending) do
    local id = ('T%02d'):format(t)
    local imgs = hash.shuffle(tr.images, g('images\n' .. id))
    local kt = { id = id, class_index = tr.class_index, class = run.classes[tr.class_index + 1], draw = tr.draw, images = {} }
    local pt = { id = id, c = tr.class_index, images = {} }
    for _, im in ipairs(imgs) do
      local tok
      repeat tok = hash.token(tokens, 10) until not used[tok]
      used[tok] = true
      local img = png.read(im.row.path, channels)
      pt.images[#pt.images + 1] = { id = tok, src = 'data:image/png;base64,' .. png.base64(png.encode(img)) }
      kt.images[#kt.images + 1] = { id = tok, method = im.method, method_key = im.key, kind = im.kind or io_.null,
        file = im.row.file, train_seed = im.row.train_seed or io_.null, gen_seed = im.row.gen_seed or io_.null }
    end
    key_trials[t], page_trials[t] = kt, pt
  end

  -- what the readers see of each class
  local K = run.knowledge or {}
  local classes = {}
  for c, name in ipairs(run.classes) do
    local desc = K.descriptions and K.descriptions[name]
    if type(desc) ~= 'string' then desc = K.prompts and type(K.prompts[name]) == 'table' and K.prompts[name][1] end
    local items = {}
    for _, it in ipairs(K.checklists and K.checklists[name] or {}) do
      if type(it) == 'table' and type(it.pos) == 'string' then items[#items + 1] = it.pos end
    end
    classes[c] = { name = name, description = type(desc) == 'string' and desc or '', items = io_.array(items) }
  end
  local study = type(run.study) == 'table' and run.study or {}
  local instructions = o.instructions and paragraphs(read_text(o.instructions))
    or (study.instructions and paragraphs(study.instructions)) or M.DEFAULT_INSTRUCTIONS
  local title = type(study.title) == 'string' and study.title or M.DEFAULT_TITLE

  local checksum_list = {}
  for t, pt in ipairs(page_trials) do
    local ids = {}
    for k, im in ipairs(pt.images) do ids[k] = im.id end
    checksum_list[t] = { id = pt.id, class_index = pt.c, images = ids }
  end
  local html = page.render { packet = packet_id, title = title, instructions = instructions, classes = classes,
    trials = page_trials, pixelated = first.w < 160 }
  local findings, info = scan.page(html, scan.forbidden(run, rows))
  if #findings > 0 then
    local lines = {}
    for _, fd in ipairs(findings) do lines[#lines + 1] = ('%s %q in "...%s..."'):format(fd.what, fd.text, fd.context) end
    fail('study make: the page would unblind (rename the method or edit the text): ' .. table.concat(lines, '; '))
  end

  local conditions = {}
  for _, m in ipairs(methods) do conditions[#conditions + 1] = { name = m.name, key = m.key, kind = m.kind or io_.null } end
  if n_real > 0 then conditions[#conditions + 1] = { name = 'Real', key = 'real', kind = 'real' } end
  local abs_run = o.run
  if abs_run:sub(1, 1) ~= '/' then
    local p = io.popen('pwd')
    abs_run = p:read('*l') .. '/' .. abs_run
    p:close()
  end
  local key = {
    format = 'craft-study-key', version = 1, packet = packet_id, seed = seed, created = os.date('!%Y-%m-%dT%H:%M:%SZ'),
    run = { dir = abs_run, name = run.name or io_.null, title = run.title or io_.null },
    trials_checksum = hash.trials_checksum(packet_id, checksum_list),
    per_class = per_class, real_per_trial = n_real, classes = run.classes,
    checklists = (function() local t = {}; for c, cl in ipairs(classes) do t[c] = cl.items end; return t end)(),
    conditions = conditions, image = { width = first.w, height = first.h, channels = channels, bytes = info.bytes },
    trials = key_trials,
  }
  os.execute("mkdir -p '" .. o.out:gsub("'", "'\\''") .. "'")
  local hf = assert(io.open(o.out .. '/study.html.tmp', 'wb'))
  hf:write(html)
  hf:close()
  assert(os.rename(o.out .. '/study.html.tmp', o.out .. '/study.html'))
  io_.write_json(o.out .. '/key.json', key)
  return { packet = packet_id, trials = #key_trials, per_class = per_class, conditions = conditions, images = info.images,
    html_bytes = #html, html = o.out .. '/study.html', key = o.out .. '/key.json', seed = seed }
end

return M
