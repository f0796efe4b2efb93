-- recipes/pretrain/common.lua: what the pretraining recipes share: wall clock and logging,
-- phantom batches, float16 checkpoints, the tokenizer folder. Loaded with
--   local C = require 'pretrain.common'      (recipes/ is on package.path: craft.repo)
local craft = require 'craft'

local M = {}
M.dir = debug.getinfo(1, 'S').source:match('^@(.*)/common%.lua$') or 'recipes/pretrain'
M.seeds = dofile(M.dir .. '/seeds.lua')
M.captions = dofile(M.dir .. '/captions.lua')
M.out = os.getenv('CRAFT_BUILTIN_DIR') or require('craft.repo').path('models/builtin')

-- Threads: CRAFT_THREADS (the training runs share a small machine; 1 each lets two run at once).
if os.getenv('CRAFT_THREADS') then craft.set_num_threads(tonumber(os.getenv('CRAFT_THREADS'))) end

---------------------------------------------------------------- clock and log
M.now = require('craft.runtime').now   -- CLOCK_MONOTONIC: wall time, whatever the thread count
local t0 = M.now()
function M.elapsed() return M.now() - t0 end
function M.log(fmt, ...)
  io.stdout:write(('[%7.1fs] '):format(M.elapsed()), fmt:format(...), '\n')
  io.stdout:flush()
end

-- A step counter from the command line: `craft recipe.lua steps=500 batch=16` overrides the
-- recipe's defaults (quick trial runs); every other key=value is passed through as a string.
function M.args(defaults)
  local o = {}
  for k, v in pairs(defaults) do o[k] = v end
  for _, a in ipairs(arg or {}) do
    local k, v = a:match('^([%w_]+)=(.*)$')
    if k then o[k] = tonumber(v) or v end
  end
  return o
end

---------------------------------------------------------------- data
-- n images of one modality, fresh for every (seed, first_index): images [n, 3, 32, 32] in [0, 1]
function M.phantoms(modality, n, seed, first_index, class)
  return craft.phantoms.dataset { modality = modality, n = n, size = M.seeds.size, seed = seed,
    first_index = first_index, class = class }
end

-- A batch of n_per images from each modality: images, and rows carrying .modality and .label
-- (the global label: the index into M.all_classes(), 0-based).
function M.mixed(n_per, seed, first_index)
  local imgs, rows = {}, {}
  local base = 0
  for _, m in ipairs(M.seeds.modalities) do
    local ds = M.phantoms(m, n_per, seed, first_index)
    imgs[#imgs + 1] = ds.images
    local ys = ds.labels:flat()
    for i, r in ipairs(ds.rows) do
      r.modality, r.label, r.local_label = m, base + ys[i], ys[i]
      rows[#rows + 1] = r
    end
    base = base + #ds.classes
  end
  return craft.cat(imgs, 1), rows
end

-- {'cxr/normal', 'cxr/cardiomegaly', ...}: the 11 (modality, class) pairs in label order
function M.all_classes()
  local r = {}
  for _, m in ipairs(M.seeds.modalities) do
    for _, c in ipairs(craft.phantoms.classes(m)) do r[#r + 1] = m .. '/' .. c end
  end
  return r
end

---------------------------------------------------------------- checks
-- zero_shot(clip_model, tokenizer, n, preprocess_opts) -> {modality = accuracy, mean = ...}: n
-- held-out phantoms per modality (seeds.lua: heldout) classified by the cosine to each class's
-- prompts (captions.lua), the prompt embeddings averaged per class (CLIP's prompt ensembling).
function M.zero_shot(model, tok, n, pre)
  local clipm = require 'craft.models.clip'
  local acc, total = {}, 0
  craft.no_grad(function()
    for _, m in ipairs(M.seeds.modalities) do
      local protos = {}
      for ci, c in ipairs(craft.phantoms.classes(m)) do
        local e = model:encode_text(tok:encode(M.captions.prompts[m][c]), { normalize = true })
        protos[ci] = craft.F.normalize(e:mean(1, true), -1)
      end
      local ds = M.phantoms(m, n, M.seeds.heldout.seed, 0)
      local img = model:encode_image(clipm.preprocess(ds.images, pre or { size = 32, crop = 32 }),
      { normalize = true })
      local pred, y = img:matmul(craft.cat(protos, 1):t()):argmax(2):flat(), ds.labels:flat()
      local ok = 0
      for i = 1, n do if pred[i] == y[i] then ok = ok + 1 end end
      acc[m] = ok / n
      total = total + acc[m]
    end
  end)
  acc.mean = total / #M.seeds.modalities
  return acc
end

-- linear_probe(encode, {n_train=, n_test=, steps=}) -> {modality = accuracy, mean = ...}: a
-- logistic-regression probe per modality on L2-normalised features encode(images [N,3,32,32] in
-- [0, 1]) -> [N, D], fitted on n_train held-out phantoms (seeds.lua: heldout, from index 10^6)
-- and scored on n_test others (from index 0): CAS dimension 3's probe, in miniature.
function M.linear_probe(encode, o)
  o = o or {}
  local n_train, n_test, steps = o.n_train or 256, o.n_test or 128, o.steps or 300
  local acc, total = {}, 0
  for _, m in ipairs(M.seeds.modalities) do
    local tr = M.phantoms(m, n_train, M.seeds.heldout.seed, 10 ^ 6)
    local te = M.phantoms(m, n_test, M.seeds.heldout.seed, 0)
    local ftr = craft.no_grad(function() return craft.F.normalize(encode(tr.images), -1) end)
    local fte = craft.no_grad(function() return craft.F.normalize(encode(te.images), -1) end)
    local K = #tr.classes
    local head = craft.nn.Linear(ftr:size(2), K)
    local opt = craft.optim.AdamW(head, { lr = 0.05, weight_decay = 1e-4 })
    for _ = 1, steps do
      craft.F.cross_entropy(head(ftr * 10), tr.labels):backward()   -- x10: unit-norm features, sharper logits
      opt:step(); opt:zero_grad()
    end
    local pred = craft.no_grad(function() return head(fte * 10):argmax(2):flat() end)
    local y, ok = te.labels:flat(), 0
    for i = 1, n_test do if pred[i] == y[i] then ok = ok + 1 end end
    acc[m] = ok / n_test
    total = total + acc[m]
  end
  acc.mean = total / #M.seeds.modalities
  return acc
end

function M.fmt_acc(acc)
  local parts = {}
  for _, m in ipairs(M.seeds.modalities) do parts[#parts + 1] = ('%s %.2f'):format(m, acc[m]) end
  return table.concat(parts, '  ') .. ('  (mean %.3f)'):format(acc.mean)
end

-- The generator's continuous parameters of one modality, standardised (mean / sd of a large
-- sample of the same stream): the regression targets of the supervised proxies.
function M.param_stats(m, seed)
  local ds = M.phantoms(m, 1024, seed, 10 ^ 9)
  local st = {}
  for _, p in ipairs(ds.params) do
    local s, s2 = 0, 0
    for _, r in ipairs(ds.rows) do s = s + r[p]; s2 = s2 + r[p] * r[p] end
    local mu = s / #ds.rows
    st[#st + 1] = { name = p, mean = mu, sd = math.sqrt(math.max(s2 / #ds.rows - mu * mu, 1e-12)) }
  end
  return st
end
function M.param_targets(rows, st)
  local t = {}
  for i, r in ipairs(rows) do
    local row = {}
    for j, p in ipairs(st) do row[j] = (r[p.name] - p.mean) / p.sd end
    t[i] = row
  end
  return craft.tensor(t)
end

---------------------------------------------------------------- checkpoints
function M.mkdir(path) assert(os.execute(('mkdir -p %q'):format(path))) end

-- Saves a module's (or a {name = tensor} table's) floating tensors as float16, other dtypes
-- as they are (BatchNorm's num_batches_tracked stays i64). Written to path.tmp, then renamed,
-- so that a reader never sees half a file while a run saves its intermediate weights.
function M.save_half(path, what, metadata)
  local sd = what.state_dict and what:state_dict() or what
  local out = {}
  for k, t in pairs(sd) do
    local dt = t.dtype
    out[k] = (dt == 'f32' or dt == 'f64' or dt == 'bf16') and t:detach():half() or t:detach()
  end
  craft.io.save_safetensors(path .. '.tmp', out, metadata or { format = 'pt' })
  assert(os.rename(path .. '.tmp', path))
end

-- A model's craft_training.json records the data it saw (`data`, provenance entries that
-- craft.experiment.independence checks against an experiment's splits): every built-in model
-- trains on fresh images of its own phantom seed stream, all modalities.
function M.write_json(path, value)
  if path:match('craft_training%.json$') and type(value) == 'table' and value.seed and not value.data then
    value.data = { { source = 'phantoms', seed = value.seed, all = true } }
  end
  craft.io.write_json(path, value)
end

---------------------------------------------------------------- tokenizer
M.BPE_GZ = require('craft.repo').path('tests/fixtures/tokenizer/bpe_simple_vocab_16e6.txt.gz')

-- Writes a transformers / diffusers tokenizer/ folder (vocab.json, merges.txt and the SD 1.x
-- configs) for the real CLIP vocabulary, from the shipped bpe_simple_vocab_16e6.txt.gz: the
-- pipeline loader reads folders, and transformers' CLIPTokenizer reads the same files. The
-- vocabulary is read back from the engine's gz tokenizer (ids 0..49407), the merges are the
-- first 48894 lines after the header, as CLIP uses them. Checked: the folder encodes like the gz.
function M.write_tokenizer(dir)
  M.mkdir(dir)
  local tokz = require 'craft.tokenizer'
  local ref = tokz.load(M.BPE_GZ)
  local vocab = {}
  for id = 0, ref:vocab_size() - 1 do vocab[ref:token(id)] = id end
  craft.io.write_json(dir .. '/vocab.json', vocab)
  local p = assert(io.popen(('gzip -dc %q'):format(M.BPE_GZ)))
  local f = assert(io.open(dir .. '/merges.txt', 'wb'))
  f:write('#version: 0.2\n')
  local n = 0
  for line in p:lines() do
    n = n + 1
    if n >= 2 and n <= 48894 + 1 then f:write(line, '\n') end
  end
  p:close(); f:close()
  local special = function(s)
    return { content = s, lstrip = false, normalized = true, rstrip = false, single_word = false,
      __type = 'AddedToken' }
  end
  craft.io.write_json(dir .. '/tokenizer_config.json', { add_prefix_space = false, do_lower_case = true,
    errors = 'replace', model_max_length = 77, pad_token = '<|endoftext|>', tokenizer_class = 'CLIPTokenizer',
    bos_token = special('<|startoftext|>'), eos_token = special('<|endoftext|>'),
    unk_token = special('<|endoftext|>') })
  craft.io.write_json(dir .. '/special_tokens_map.json', { bos_token = special('<|startoftext|>'),
    eos_token = special('<|endoftext|>'), pad_token = '<|endoftext|>', unk_token = special('<|endoftext|>') })
  local tok = tokz.load(dir)
  local probe = { 'chest x-ray with an enlarged cardiac silhouette, cardiothoracic ratio about 0.58',
    'fundus photograph, large optic cup, cup-to-disc ratio 0.7', 'H&E stained histology: mucin pools' }
  local a, b = ref:encode(probe):flat(), tok:encode(probe):flat()
  for i = 1, #a do assert(a[i] == b[i], 'tokenizer folder does not encode like the gz file') end
  return tok
end

return M
