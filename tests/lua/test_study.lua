-- The blinded reader study (craft.study): the analysis on hand-computed cases and against scipy
-- (tests/fixtures/make_study_fixtures.py), the packet's hash and PNG writer, `study make` on a
-- synthetic run (blinding scan, reproducibility, errors), and `study score` with simulated
-- readers and every kind of bad ratings file. The browser side: tests/study_browser.sh.
local craft = require 'craft'
local io_ = require 'craft.io'
local hash = require 'craft.study.hash'
local png = require 'craft.study.png'
local A = require 'craft.study.analysis'
local scan = require 'craft.study.scan'
local make = require 'craft.study.make'
local score = require 'craft.study.score'
local ref = dofile('tests/fixtures/study/study_ref.lua')
local T = {}

local function tmpdir()
  local p = io.popen('mktemp -d')
  local d = p:read('*l')
  p:close()
  return d
end
local function read(path)
  local f = assert(io.open(path, 'rb'))
  local s = f:read('*a')
  f:close()
  return s
end
local function write(path, s)
  local f = assert(io.open(path, 'wb'))
  f:write(s)
  f:close()
end

---------------------------------------------------------------- hash, generator, PNG
function T.hash_matches_a_python_implementation(t)
  t.eq(hash.imul(123456789, 987654321), -67153019, 'imul')
  t.eq(hash.imul(0xffffffff, 5), -5, 'imul of -1')
  t.eq(hash.imul(0x9e3779b9, 3), -626627285, 'imul')
  for _, c in ipairs(ref.hash) do
    local w = hash.hash4(c.s)
    for k = 1, 4 do t.eq(w[k], c.words[k], ('hash4(%q)[%d]'):format(c.s:sub(1, 20), k)) end
    local g = hash.rng(c.s)
    for k = 1, 5 do t.eq(g:u32(), c.draws[k], ('sfc32(%q) draw %d'):format(c.s:sub(1, 20), k)) end
  end
  local list = {}
  for i = 1, 20 do list[i] = i end
  local s = hash.shuffle(list, 'x')
  local seen, moved = {}, 0
  for i, v in ipairs(s) do seen[v] = true; if v ~= i then moved = moved + 1 end end
  local all = true
  for i = 1, 20 do all = all and seen[i] == true end
  t.ok(all and #s == 20, 'a shuffle is a permutation')
  t.ok(moved > 10, 'a shuffle moves most items')
  t.eq(table.concat(hash.shuffle(list, 'x'), ','), table.concat(s, ','), 'a shuffle is a function of its seed')
  t.ok(table.concat(hash.shuffle(list, 'y'), ',') ~= table.concat(s, ','), 'another seed, another order')
end

function T.png_is_stored_and_decodes_back(t)
  craft.manual_seed(1)
  local x = craft.rand({ 3, 9, 7 })
  local path = os.tmpname()
  io_.write_png(path, x)
  local img = png.read(path)
  os.remove(path)
  t.eq(img.c, 3); t.eq(img.h, 9); t.eq(img.w, 7)
  local bytes = png.encode(img)
  t.eq(table.concat(assert(png.chunks(bytes)), ','), 'IHDR,IDAT,IEND', 'only critical chunks')
  -- signature 8 + IHDR 25 + IDAT (12 + zlib 2 + one stored block 5 + raw + adler 4) + IEND 12
  t.eq(#bytes, 8 + 25 + 12 + 2 + 5 + 9 * (1 + 7 * 3) + 4 + 12, 'the size depends on the shape alone')
  local ffi, C = craft.ffi, craft.C
  local arr = ffi.new('craft_array')
  t.eq(C.craft_image_decode(bytes, #bytes, 'stored png', 0, arr), 0, 'the engine decodes it')
  t.eq(ffi.string(arr.data, arr.nbytes), img.pixels, 'pixels survive the round trip')
  C.craft_array_free(arr)
  -- an image over 65535 bytes of scanlines needs several stored blocks
  local big = { h = 200, w = 120, c = 3, pixels = ('\7\200\33'):rep(200 * 120) }
  local b2 = png.encode(big)
  t.eq(C.craft_image_decode(b2, #b2, 'big png', 0, arr), 0, 'several stored blocks decode')
  t.eq(ffi.string(arr.data, arr.nbytes), big.pixels, 'big image round trip')
  C.craft_array_free(arr)
  local bad = bytes:sub(1, 40) .. 'X' .. bytes:sub(42)
  t.eq(png.chunks(bad), nil, 'a damaged chunk is noticed')
  for _, s in ipairs { '', 'f', 'fo', 'foo', 'foob', 'fooba', 'foobar', bytes } do
    t.eq(scan.unbase64(png.base64(s)), s, 'base64 round trip')
  end
  t.eq(png.base64('foobar'), 'Zm9vYmFy', 'RFC 4648 test vector')
  t.eq(png.base64('fooba'), 'Zm9vYmE=', 'RFC 4648 test vector')
  t.eq(png.base64('foob'), 'Zm9vYg==', 'RFC 4648 test vector')
end

---------------------------------------------------------------- statistics
function T.chi2_sf_matches_scipy(t)
  for _, c in ipairs(ref.chi2_sf) do
    local got = A.chi2_sf(c[1], c[2])
    t.ok(math.abs(got - c[3]) <= 1e-12 * math.max(c[3], 1e-300) + 1e-15, ('chi2_sf(%g, %d) = %.17g, scipy %.17g'):format(c[1], c[2], got, c[3]))
  end
  -- closed forms: df 2 is exp(-x/2), df 4 is exp(-x/2) (1 + x/2)
  t.near(A.chi2_sf(5.991464547107979, 2), 0.05, 1e-15, 'df 2 at its 95% point')
  t.near(A.chi2_sf(7, 4), math.exp(-3.5) * 4.5, 1e-15, 'df 4')
  t.eq(A.chi2_sf(0, 3), 1, 'sf(0) = 1')
end

function T.friedman_and_kendall_match_scipy(t)
  local stats = craft.stats
  for i, c in ipairs(ref.friedman) do
    local rows = {}
    for r, row in ipairs(c.rows) do rows[r] = stats.rank(row) end
    local f = A.friedman(rows)
    t.near(f.statistic, c.statistic, 1e-10, 'friedman statistic ' .. i)
    t.near(f.p, c.p, 1e-12, 'friedman p ' .. i)
    t.near(A.kendall_w(rows).w, c.w, 1e-12, 'kendall W ' .. i)
  end
end

-- Three readers, two trials, three conditions (derivations in docs/reader_study.md style):
--   ranks (a, b, c):  r1 t1 1 2 3 | r1 t2 1 3 2 | r2 t1 2 1 3 | r2 t2 1 2 3 | r3 t1 1 2 3 | r3 t2 3 1 2
local HAND = { { 'r1', 't1', 1, 2, 3 }, { 'r1', 't2', 1, 3, 2 }, { 'r2', 't1', 2, 1, 3 }, { 'r2', 't2', 1, 2, 3 },
  { 'r3', 't1', 1, 2, 3 }, { 'r3', 't2', 3, 1, 2 } }
local function hand_blocks()
  local blocks = {}
  for _, h in ipairs(HAND) do
    local items = {}
    for j, c in ipairs { 'a', 'b', 'c' } do
      items[j] = { id = c .. h[2], cond = c, rank = h[2 + j], ticked = 0, n_items = 0, flag = false, position = j }
    end
    blocks[#blocks + 1] = { rater = h[1], trial = h[2], class = 0, items = items }
  end
  return blocks
end

function T.analysis_on_a_hand_computed_case(t)
  local blocks, conds = hand_blocks(), { 'a', 'b', 'c' }
  local s = A.summarise(blocks, conds)
  -- rank sums 9, 11, 16 over 6 blocks
  t.near(s['mean_rank:a'], 9 / 6, 1e-15, 'mean rank a')
  t.near(s['mean_rank:b'], 11 / 6, 1e-15, 'mean rank b')
  t.near(s['mean_rank:c'], 16 / 6, 1e-15, 'mean rank c')
  -- a above b in 4 of 6 blocks, a above c in 5, b above c in 5
  t.near(s['win:a:b'], 4 / 6, 1e-15, 'a over b')
  t.near(s['win:b:a'], 2 / 6, 1e-15, 'b over a')
  t.near(s['win:a:c'], 5 / 6, 1e-15, 'a over c')
  t.near(s['win:b:c'], 5 / 6, 1e-15, 'b over c')
  t.near(s['first:a'], 4 / 6, 1e-15, 'a ranked first')
  -- Friedman: 12 / (6 * 3 * 4) * (81 + 121 + 256) - 3 * 6 * 4 = 13 / 3; df 2, so p = exp(-Q / 2)
  local f = A.friedman_blocks(blocks, conds)
  t.near(f.statistic, 13 / 3, 1e-12, 'Friedman statistic')
  t.eq(f.df, 2, 'Friedman df')
  t.near(f.p, math.exp(-13 / 6), 1e-14, 'Friedman p')
  -- Kendall's W per trial: t1 rank sums 4, 5, 9 -> S = 14 -> W = 12 * 14 / (9 * 24) = 7/9;
  -- t2 rank sums 5, 6, 7 -> S = 2 -> W = 1/9; mean 4/9
  local ag = A.agreement(blocks, conds)
  t.eq(ag.per_trial.n, 2, 'trials with 2+ readers')
  t.near(ag.per_trial.w, 4 / 9, 1e-14, 'mean per-trial W')
  t.near(ag.per_trial.min, 1 / 9, 1e-14, 'min W')
  -- method level: mean ranks per reader r1 (1, 2.5, 2.5), r2 (1.5, 1.5, 3), r3 (2, 1.5, 2.5)
  -- -> ranks r1 (1, 2.5, 2.5), r2 (1.5, 1.5, 3), r3 (2, 1, 3); sums 4.5, 5, 8.5, S = 9.5;
  -- ties 6 + 6; W = 12 * 9.5 / (9 * 24 - 3 * 12) = 19/30; chi2 = 3 * 2 * W = 3.8, p = exp(-1.9)
  t.near(ag.methods.w, 19 / 30, 1e-14, 'method-level W')
  t.near(ag.methods.chi2, 3.8, 1e-12, 'method-level chi2')
  t.near(ag.methods.p, math.exp(-1.9), 1e-14, 'method-level p')
  local pos = A.position(blocks)
  t.near(pos[1].mean, 9 / 6, 1e-15, 'position 1 holds condition a here')
end

function T.bootstrap_resamples_readers_then_trials(t)
  -- two readers who always disagree: r1 ranks a first, r2 ranks b first, 10 trials each.
  local blocks = {}
  for r = 1, 2 do
    for k = 1, 10 do
      local ra = r == 1 and 1 or 2
      blocks[#blocks + 1] = { rater = 'r' .. r, trial = 't' .. k, class = 0,
        items = { { id = 'a' .. k, cond = 'a', rank = ra, ticked = 0, n_items = 0 }, { id = 'b' .. k, cond = 'b', rank = 3 - ra, ticked = 0, n_items = 0 } } }
    end
  end
  local fn = function(bl) return A.summarise(bl, { 'a', 'b' }) end
  local ci = A.bootstrap(blocks, fn, { n = 2000, seed = 3 })
  -- a reader is drawn twice in half of the resamples: the interval spans both readers' views
  t.eq(ci['mean_rank:a'][1], 1, 'lower end: r1 drawn twice')
  t.eq(ci['mean_rank:a'][2], 2, 'upper end: r2 drawn twice')
  -- one reader, identical trials: no spread
  local one = {}
  for k = 1, 10 do one[k] = blocks[k] end
  local c1 = A.bootstrap(one, fn, { n = 500, seed = 0 })
  t.eq(c1['mean_rank:a'][1], 1); t.eq(c1['mean_rank:a'][2], 1)
  t.eq(A.bootstrap(blocks, fn, { n = 300, seed = 9 })['win:a:b'][1], A.bootstrap(blocks, fn, { n = 300, seed = 9 })['win:a:b'][1], 'seeded')
end

---------------------------------------------------------------- a synthetic run and its packet
local METHODS = { { name = 'Base', key = 'base_1', kind = 'base' }, { name = 'DPO', key = 'dpo_2', kind = 'dpo' },
  { name = 'CRAFT', key = 'craft_3', kind = 'craft' } }
local CLASSES = { 'normal', 'cardiomegaly' }

-- RUN/run.json and RUN/samples: per method 3 images per class, 6 real images per class; the
-- methods' images differ in brightness so that their PNG sizes would differ if compressed.
local function synthetic_run(dir, o)
  o = o or {}
  craft.manual_seed(5)
  local w = require('craft.samples').writer(dir .. '/samples')
  local labels6 = { 0, 0, 0, 1, 1, 1 }
  w:add { method = 'Real', key = 'real', images = craft.rand({ 12, 3, 16, 16 }), labels = { 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1 }, classes = CLASSES }
  for i, m in ipairs(METHODS) do
    local x = craft.rand({ 6, 3, 16, 16 }) * ((i - 1) / 2) + 0.25   -- flat images compress better
    w:add { method = m.name, key = m.key, train_seed = 0, gen_seed = 1, images = x, labels = labels6, classes = CLASSES }
  end
  w:close()
  io_.write_json(dir .. '/run.json', { name = 'synthetic', title = 'synthetic run', classes = CLASSES, methods = METHODS,
    knowledge = { prompts = { normal = { 'a normal chest x-ray' }, cardiomegaly = { 'an enlarged heart' } },
      checklists = { normal = { { pos = 'clear lungs', neg = 'opacity' }, { pos = 'normal heart', neg = 'big heart' } },
        cardiomegaly = { { pos = 'enlarged cardiac silhouette', neg = 'normal heart' } } },
      descriptions = o.descriptions },
    study = o.study })
end

function T.make_writes_a_blinded_packet(t)
  local d = tmpdir()
  synthetic_run(d .. '/run')
  local r = make.packet { run = d .. '/run', out = d .. '/p', per_class = 3, real = 1, seed = 'unit' }
  t.eq(r.trials, 6, 'trials = classes x draws')
  local key = io_.read_json(d .. '/p/key.json')
  local html = read(d .. '/p/study.html')
  t.eq(#key.trials, 6)
  t.eq(#key.conditions, 4, 'three methods and Real')
  local first_pos, used = {}, {}
  for _, tr in ipairs(key.trials) do
    local n = {}
    for p, im in ipairs(tr.images) do
      n[im.method_key] = (n[im.method_key] or 0) + 1
      t.ok(im.id:match('^[a-z2-9]+$') and #im.id == 10, 'a random token id')
      t.ok(not used[im.file], 'an image is used once')
      used[im.file] = true
      if im.method_key == 'base_1' then first_pos[p] = true end
      -- the page lists the trial's images in the key's order
      local at = html:find('"' .. im.id .. '"', 1, true)
      t.ok(at ~= nil, 'the page has the image id')
    end
    t.eq(n.base_1, 1); t.eq(n.dpo_2, 1); t.eq(n.craft_3, 1); t.eq(n.real, 1)
  end
  local positions = 0
  for _ in pairs(first_pos) do positions = positions + 1 end
  t.ok(positions >= 2, 'a method does not sit at one position in every trial')
  -- blinding: no method name, key, kind or file name; equal-sized, chunk-clean images
  local rows = require('craft.samples').read(d .. '/run/samples')
  local findings, info = scan.page(html, scan.forbidden(io_.read_json(d .. '/run/run.json'), rows))
  t.eq(#findings, 0, 'no leak: ' .. (findings[1] and (findings[1].text .. ' in ' .. findings[1].context) or ''))
  t.eq(info.images, 24, 'every image embedded once')
  t.ok(not html:lower():find('craft', 1, true), 'the program\'s name is nowhere in the page')
  -- the source PNGs (stb, compressed) differ in size by method; the packet's do not
  local sizes = {}
  for _, row in ipairs(rows) do
    sizes[row.method_key] = sizes[row.method_key] or {}
    table.insert(sizes[row.method_key], #read(row.path))
  end
  t.ok(craft.stats.mean(sizes.base_1) < craft.stats.mean(sizes.craft_3), 'the source files do differ in size by method')
  t.eq(key.image.bytes, 8 + 25 + 12 + 2 + 5 + 16 * (1 + 16 * 3) + 4 + 12, 'one byte size for every image')
  -- the same seed gives the same packet; another seed another one
  local r2 = make.packet { run = d .. '/run', out = d .. '/p2', per_class = 3, real = 1, seed = 'unit' }
  t.eq(r2.packet, r.packet, 'reproducible packet id')
  t.eq(read(d .. '/p2/study.html'), html, 'reproducible page')
  local r3 = make.packet { run = d .. '/run', out = d .. '/p3', per_class = 3, real = 1, seed = 'other' }
  t.ok(r3.packet ~= r.packet, 'another seed, another packet')
  local r4 = make.packet { run = d .. '/run', out = d .. '/p4', per_class = 2 }
  t.ok(#r4.seed == 32, 'without a seed, a random 128-bit one')
  t.eq(#io_.read_json(d .. '/p4/key.json').conditions, 3, 'no real images unless asked')
  os.execute("rm -rf '" .. d .. "'")
end

function T.scan_finds_planted_leaks(t)
  local d = tmpdir()
  synthetic_run(d .. '/run')
  make.packet { run = d .. '/run', out = d .. '/p', per_class = 2, seed = 's' }
  local html = read(d .. '/p/study.html')
  local forbidden = scan.forbidden(io_.read_json(d .. '/run/run.json'), require('craft.samples').read(d .. '/run/samples'))
  local function swap(h, a, b)
    local i = h:find(a, 1, true)
    return h:sub(1, i - 1) .. b .. h:sub(i + #a)
  end
  local function leaks(h)
    local f = scan.page(h, forbidden)
    local w = {}
    for _, x in ipairs(f) do w[#w + 1] = x.what .. ':' .. x.text end
    return table.concat(w, ' ')
  end
  t.eq(leaks(html), '', 'clean as written')
  t.ok(leaks(html:gsub('<title>', '<title>Dpo ')):find('method name:DPO', 1, true), 'a method name in any case')
  t.ok(leaks(html:gsub('<title>', '<title>craft_3 ')):find('method key:craft_3', 1, true), 'a method key')
  t.ok(leaks(html:gsub('<title>', '<title>dpo_2/t0_g1_c0_1.png ')):find('file name', 1, true), 'a file name')
  t.eq(leaks(html:gsub('<title>', '<title>endpoint based ')), '', 'not inside longer words')
  -- an image with a text chunk, and one of another size
  local payload = html:match('data:image/png;base64,([A-Za-z0-9+/=]+)')
  local bytes = scan.unbase64(payload)
  local body = bytes:sub(34)   -- after the signature and IHDR
  local text_chunk = '\0\0\0\5tEXtabcde\0\0\0\0'
  local with_text = png.base64(bytes:sub(1, 33) .. text_chunk .. body)
  t.ok(leaks(swap(html, payload, with_text)):find('image', 1, true), 'a metadata chunk is found')
  local other = png.base64(png.encode { h = 8, w = 8, c = 3, pixels = ('\1'):rep(192) })
  t.ok(leaks(swap(html, payload, other)):find('image', 1, true), 'an image of another size is found')
  os.execute("rm -rf '" .. d .. "'")
end

function T.make_refuses_what_it_cannot_do(t)
  local d = tmpdir()
  synthetic_run(d .. '/run', { study = { instructions = 'Please compare the DPO images with the others.' } })
  t.raises(function() make.packet { run = d .. '/run', out = d .. '/p', per_class = 2 } end, 'would unblind', 'instructions naming a method')
  synthetic_run(d .. '/run2', { study = { instructions = 'Rank them.\n\nThen go on.', title = 'Chest study' } })
  make.packet { run = d .. '/run2', out = d .. '/ok', per_class = 2, seed = 'x' }
  local html = read(d .. '/ok/study.html')
  t.ok(html:find('"Rank them."', 1, true) and html:find('"Then go on."', 1, true), 'the recipe\'s instructions, as paragraphs')
  t.ok(html:find('<title>Chest study</title>', 1, true), 'the recipe\'s title')
  t.raises(function() make.packet { run = d .. '/run2', out = d .. '/ok', per_class = 2, seed = 'y' } end, 'key.json exists', 'no silent overwrite')
  make.packet { run = d .. '/run2', out = d .. '/ok', per_class = 2, seed = 'y', force = true }
  t.raises(function() make.packet { run = d .. '/run2', out = d .. '/q', per_class = 4 } end, 'at most --per-class 3', 'too many draws')
  t.raises(function() make.packet { run = d .. '/run2', out = d .. '/q2', per_class = 2, real = 4 } end, 'need more images', 'too many reals')
  t.raises(function() make.packet { run = d .. '/run2', out = d .. '/q3', methods = { 'nope' } } end, 'no method "nope"', 'unknown method')
  t.raises(function() make.packet { run = d .. '/none', out = d .. '/q4' } end, 'run.json not found', 'not a run')
  local r = make.packet { run = d .. '/run2', out = d .. '/sel', methods = { 'DPO', 'craft_3' }, seed = 'z' }
  t.eq(#r.conditions, 2, 'methods by name or key')
  t.eq(r.per_class, 3, 'default draws: as many as every method has')
  os.execute("rm -rf '" .. d .. "'")
end

---------------------------------------------------------------- scoring with simulated readers
-- What the page writes for a reader who ranks each trial with choose(trial, shown) -> ranking,
-- ticks, flags (the same hash functions as the page's JavaScript).
local function simulate(key, rater, choose, o)
  o = o or {}
  local ids = {}
  for i, tr in ipairs(key.trials) do ids[i] = tr.id end
  local by = {}
  for _, tr in ipairs(key.trials) do by[tr.id] = tr end
  local r = { format = 'reader-study-ratings', version = 1, packet = key.packet, trials_checksum = key.trials_checksum,
    trial_count = #key.trials, rater = rater, started = '2026-01-01T00:00:00Z', finished = '2026-01-01T01:00:00Z',
    user_agent = 'simulated', trials = {} }
  for k, id in ipairs(hash.shuffle(ids, hash.session_seed(key.packet, rater))) do
    if o.only and k > o.only then break end
    local tr = by[id]
    local img = {}
    for i, im in ipairs(tr.images) do img[i] = im.id end
    local shown = hash.shuffle(img, hash.order_seed(key.packet, rater, id))
    local ranking, ticks, flags = choose(tr, shown)
    r.trials[#r.trials + 1] = { trial = id, shown = shown, ranking = ranking, ticks = ticks or {}, flags = io_.array(flags or {}),
      ms = 1000 * k, visits = 1, answered = '2026-01-01T00:30:00Z' }
  end
  r.checksum = hash.ratings_checksum(r)
  return r
end
-- rank by a preference list of method keys
local function prefer(order)
  return function(tr)
    local pos = {}
    for i, k in ipairs(order) do pos[k] = i end
    local list = {}
    for _, im in ipairs(tr.images) do list[#list + 1] = im end
    table.sort(list, function(a, b) return pos[a.method_key] < pos[b.method_key] end)
    local ranking = {}
    for i, im in ipairs(list) do ranking[i] = im.id end
    return ranking
  end
end

function T.score_with_bad_files(t)
  local d = tmpdir()
  synthetic_run(d .. '/run')
  make.packet { run = d .. '/run', out = d .. '/p', per_class = 2, real = 1, seed = 'score' }
  make.packet { run = d .. '/run', out = d .. '/other', per_class = 2, real = 1, seed = 'another' }
  local key = io_.read_json(d .. '/p/key.json')
  local okey = io_.read_json(d .. '/other/key.json')
  local files = {}
  local function put(name, r) files[name] = d .. '/' .. name .. '.json'; io_.write_json(files[name], r); return files[name] end
  -- A: CRAFT > DPO > Base > Real; B: DPO > CRAFT > Real > Base; C: Real > CRAFT > DPO > Base, 2 trials
  put('a', simulate(key, 'Dr A', prefer { 'craft_3', 'dpo_2', 'base_1', 'real' }))
  put('b', simulate(key, 'Dr B', prefer { 'dpo_2', 'craft_3', 'real', 'base_1' }))
  put('c', simulate(key, 'Dr C', prefer { 'real', 'craft_3', 'dpo_2', 'base_1' }, { only = 2 }))
  put('other', simulate(okey, 'Dr D', prefer { 'real', 'craft_3', 'dpo_2', 'base_1' }))
  local text = read(files.a)
  write(d .. '/trunc.json', text:sub(1, math.floor(#text / 2)))
  files.trunc = d .. '/trunc.json'
  local edited = io_.read_json(files.b)
  edited.trials[1].ranking[1], edited.trials[1].ranking[2] = edited.trials[1].ranking[2], edited.trials[1].ranking[1]
  put('edited', edited)
  write(d .. '/copy_of_b.json', read(files.b))
  files.copy = d .. '/copy_of_b.json'
  put('b_again', simulate(key, '  dr b ', prefer { 'base_1', 'real', 'craft_3', 'dpo_2' }, { only = 1 }))
  local resorted = simulate(key, 'Dr E', prefer { 'base_1', 'real', 'craft_3', 'dpo_2' })
  resorted.trials[1].shown = { resorted.trials[1].shown[2], resorted.trials[1].shown[1], unpack(resorted.trials[1].shown, 3) }
  resorted.checksum = hash.ratings_checksum(resorted)
  put('resorted', resorted)

  local list = { files.a, files.b, files.c, files.other, files.trunc, files.edited, files.copy, files.b_again, files.resorted,
    d .. '/missing.json' }
  local r = score.run { key = d .. '/p/key.json', ratings = list, out = d .. '/out', boot = 200, quiet = true }
  local function problem_for(path)
    local found = {}
    for _, p in ipairs(r.problems) do if p:sub(1, #path + 1) == path .. ':' then found[#found + 1] = p end end
    return found
  end
  local expect = {
    [files.other] = 'ratings for packet', [files.trunc] = 'not a complete JSON file', [files.edited] = 'does not match its checksum',
    [files.copy] = 'the same ratings as ' .. files.b, [files.b_again] = 'also rated in', [files.c] = 'completed 2 of 4 trials',
    [files.resorted] = 'shown in an order other than', [d .. '/missing.json'] = 'cannot read',
  }
  for path, want in pairs(expect) do
    local p = problem_for(path)
    t.eq(#p, 1, 'one line for ' .. path)
    t.ok(p[1] and p[1]:find(want, 1, true), ('%s: %q in %q'):format(path, want, tostring(p[1])))
  end
  t.eq(#problem_for(files.a), 0, 'a good file has no line')
  t.eq(#r.problems, 8, 'one line per problem, no more')
  t.eq(#r.loaded.raters, 4, 'A, B, C and E are analysed')
  -- nothing lost: the numbers equal those of the good files alone
  local clean = score.run { key = d .. '/p/key.json', ratings = { files.a, files.b, files.c, files.resorted }, out = d .. '/out2', boot = 200, quiet = true }
  for k, v in pairs(clean.result.est) do
    if v == v then t.near(r.result.est[k], v, 0, 'same ' .. k) end
  end
  -- A, B, C alone: hand-computed (4 + 4 + 2 rankings)
  local abc = score.run { key = d .. '/p/key.json', ratings = { files.a, files.b, files.c }, out = d .. '/run/study', boot = 200, quiet = true }
  local e = abc.result.est
  t.near(e['mean_rank:craft_3'], 16 / 10, 1e-12, 'CRAFT (4 x 1 + 4 x 2 + 2 x 2) / 10')
  t.near(e['mean_rank:dpo_2'], 18 / 10, 1e-12, 'DPO')
  t.near(e['mean_rank:base_1'], 36 / 10, 1e-12, 'Base')
  t.near(e['mean_rank:real'], 30 / 10, 1e-12, 'Real')
  t.near(e['win:craft_3:dpo_2'], 6 / 10, 1e-12, 'CRAFT above DPO')
  t.near(e.real_below, 8 / 10, 1e-12, 'a synthetic image above the real one')
  -- rank sums 16, 18, 36, 30: 12 / (10 * 4 * 5) * 2776 - 3 * 10 * 5 = 16.56
  t.near(abc.result.friedman.statistic, 16.56, 1e-10, 'Friedman')
  t.near(abc.result.friedman.p, A.chi2_sf(16.56, 3), 1e-15, 'Friedman p')
  local csv = read(d .. '/run/study/methods.csv')
  t.ok(csv:find('craft_3,CRAFT,10,1.6,', 1, true), 'methods.csv has the CRAFT row')
  local page = read(d .. '/run/study/index.html')
  t.ok(page:find('Friedman', 1, true) and page:find('Dr C', 1, true) and not page:find('<script', 1, true), 'the results page')
  t.raises(function() score.run { key = d .. '/p/key.json', ratings = { files.trunc, files.other }, out = d .. '/o3', quiet = true } end,
    'no usable ratings', 'nothing usable is an error')
  t.raises(function() score.run { key = files.a, ratings = { files.a }, out = d .. '/o4', quiet = true } end, 'is not a study key')
  os.execute("rm -rf '" .. d .. "'")
end

-- Damaged ratings files and keys: every one gives a line (or one error for a key), never a Lua
-- error from inside the library.
function T.damaged_files_never_crash(t)
  local d = tmpdir()
  synthetic_run(d .. '/run')
  make.packet { run = d .. '/run', out = d .. '/p', per_class = 2, real = 1, seed = 'fuzz' }
  local ratings = require 'craft.study.ratings'
  local key = ratings.read_key(d .. '/p/key.json')
  local good = io_.encode_json(simulate(io_.read_json(d .. '/p/key.json'), 'Dr F', prefer { 'real', 'craft_3', 'dpo_2', 'base_1' }))
  local g = hash.rng('mutations')
  local path = d .. '/m.json'
  local lines, used, crashes = 0, 0, {}
  local swaps = { { '"ms": ', '"ms": -' }, { '"ranking": [', '"ranking": [1, ' }, { '"ticks": {', '"ticks": [' },
    { '"flags": [', '"flags": {"a": ' }, { '"trials": [', '"trials": {"x": 1, "y": ' }, { '"rater": "Dr F"', '"rater": 7' },
    { '"shown": [', '"shown": ["zz", ' }, { '"trial": "T0', '"trial": "X0' }, { '"version": 1', '"version": "1"' } }
  for i = 1, 300 do
    local text = good
    if i <= #swaps then
      text = text:gsub(swaps[i][1]:gsub('%p', '%%%0'), (swaps[i][2]:gsub('%%', '%%%%')), 1)
    else
      for _ = 1, 1 + g:u32() % 4 do
        local at = g:u32() % #text + 1
        local op = g:u32() % 3
        local ch = string.char(32 + g:u32() % 95)
        if op == 0 then text = text:sub(1, at - 1) .. ch .. text:sub(at + 1)
        elseif op == 1 then text = text:sub(1, at - 1) .. text:sub(at + 1)
        else text = text:sub(1, at) .. ch .. text:sub(at + 1) end
      end
    end
    write(path, text)
    local ok, r = pcall(ratings.load, key, { path })
    if not ok then crashes[#crashes + 1] = tostring(r)
    else
      if r.files[1].status == 'used' then used = used + 1 end
      lines = lines + #r.problems
    end
  end
  t.eq(#crashes, 0, 'no crash: ' .. tostring(crashes[1]))
  t.ok(lines >= 300 - used, 'a line for every file left out')
  t.ok(used < 60, 'a mutated file is rarely still valid (' .. used .. ' of 300)')
  -- keys
  local ktext = read(d .. '/p/key.json')
  local kcrash, kfail = {}, 0
  local kswaps = { { '"images": [', '"images": 5, "x": [' }, { '"class_index": 0', '"class_index": 9' },
    { '"method_key": "', '"method_key": 1, "y": "' }, { '"classes": [', '"classes": 3, "z": [' }, { '"id": "T01"', '"id": "T02"' } }
  for i = 1, 120 do
    local text = ktext
    if i <= #kswaps then text = text:gsub(kswaps[i][1]:gsub('%p', '%%%0'), kswaps[i][2], 1)
    else
      local at = g:u32() % #text + 1
      text = text:sub(1, at - 1) .. string.char(32 + g:u32() % 95) .. text:sub(at + 1)
    end
    write(path, text)
    local ok, err = pcall(ratings.read_key, path)
    if not ok then
      if tostring(err):find('^study score: ' .. path:gsub('%p', '%%%0')) then kfail = kfail + 1 else kcrash[#kcrash + 1] = tostring(err) end
    end
  end
  t.eq(#kcrash, 0, 'no crash on a damaged key: ' .. tostring(kcrash[1]))
  t.ok(kfail >= #kswaps, 'damaged keys are refused')
  os.execute("rm -rf '" .. d .. "'")
end

function T.report_links_the_study(t)
  local d = tmpdir()
  local report = require 'craft.report'
  local res = { classes = { 'a' }, thresholds = { 0 }, real = { cas = { 0.1, 0.2 }, labels = { 0, 0 } },
    methods = { { name = 'M', cas = { 0.3, -0.1 }, labels = { 0, 0 } } }, bootstrap = { n = 20 } }
  report.write(d .. '/run/report', res)
  local html = read(d .. '/run/report/index.html')
  t.ok(html:find('<!-- craft:study-link -->', 1, true), 'the report has the marker')
  t.ok(not html:find('study-link">', 1, true), 'no link without a study')
  -- score inserts the link at the marker, and refreshes it rather than adding another
  t.ok(score.link(d .. '/run/report/index.html', '../study/index.html', '2 readers'), 'linked')
  t.ok(score.link(d .. '/run/report/index.html', '../study/index.html', '3 readers'), 'linked again')
  html = read(d .. '/run/report/index.html')
  local _, n = html:gsub('study%-link">', '')
  t.eq(n, 1, 'one link')
  t.ok(html:find('3 readers', 1, true) and not html:find('2 readers', 1, true), 'the newer link')
  -- a report written after the study links it by itself
  os.execute("mkdir -p '" .. d .. "/run/study' && touch '" .. d .. "/run/study/index.html'")
  report.write(d .. '/run/report', res)
  t.ok(read(d .. '/run/report/index.html'):find('href="../study/index.html"', 1, true), 'the report links ../study')
  os.execute("rm -rf '" .. d .. "'")
end

return T
