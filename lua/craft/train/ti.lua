-- craft.train.ti: Textual Inversion (METHOD.md, "Baselines"): one learned token per class,
-- trained with the standard diffusion loss on real images of that class; everything else frozen.
--
-- The tokenizer (C, fixed vocabulary) is not extended. Instead a placeholder string such as
-- "<melanoma>" is cut out of the prompt, the text around it is tokenized as usual, and the
-- placeholder's positions get the learned vector at the text encoder's input (its
-- inputs_embeds): the same embeddings diffusers builds after adding the token to the tokenizer.
--
--   local ti = require 'craft.train.ti'
--   local res = ti.train(pipe, {data = ds, out = 'runs/ti'})   -- ds.classes name the classes
--   ti.install(pipe, res.vectors)     -- pipe:generate{prompt = 'a photo of <melanoma>'} uses them
--   ti.save(pipe, dir); ti.load(pipe, dir)   -- one diffusers-loadable file per token
local T = require 'craft.tensor'
local A = require 'craft.autograd'
local argerror = require('craft.core').argerror
local common = require 'craft.train.common'
local lora = require 'craft.models.lora'
local F = require 'craft.functional'

local M = {}

M.DEFAULTS = {
  data = false,               -- real images {images [N,C,H,W] in [0,1], labels i64 [N], classes} (required)
  tokens = false,             -- {class -> placeholder}; default "<class name>" (spaces -> "_")
  initializer = false,        -- {class -> text}; a token starts at the mean embedding of its text's
                              -- tokens (default: the class name itself)
  n_vectors = 1,              -- embedding vectors per token
  templates = { 'a photo of {}' }, -- prompts for real images; {} is replaced by the token (choice)
  height = false, width = false,
  lr = 5e-4,                  -- METHOD: lr 5e-4 (the lab's earlier work)
  max_steps = 500,            -- METHOD: 500 steps
  batch_size = 4,             -- (choice)
  checkpoint_every = 100,
}
-- Tiny models: fewer steps at a higher rate (the tiny text encoder is random, so the token has
-- to move further than a real CLIP's does).
M.PRESETS = { full = {}, tiny = { max_steps = 100, lr = 5e-3, batch_size = 4, checkpoint_every = 25,
  gradient_checkpointing = false } }

-- The text encoder's token table (CLIPTextModel of craft.models.clip).
local function token_table(te)
  for _, np in ipairs(te:named_parameters()) do
    if np[1]:match('token_embedding%.weight$') then return np[2] end
  end
  argerror('textual inversion: the text encoder has no token_embedding (a craft.models.clip CLIPTextModel is '
    .. 'needed)')
end

-- The content ids of a piece of text (no start / end token).
local function content_ids(tok, text)
  if text:match('^%s*$') then return {} end
  local ids, lengths = tok:encode(text, { pad = false })
  local flat, r = ids:flat(), {}
  for k = 2, lengths[1] - 1 do r[#r + 1] = flat[k] end
  return r
end

-- tokenize(pipe, prompts, vectors) -> ids i64 [B, L], slots {[token] = {{row, pos, j}, ...}}
-- Text between placeholders is tokenized as usual; each placeholder takes n positions (one per
-- vector) holding the start id there (never pooled as the end token under either pooling rule)
-- until its vectors replace them.
function M.tokenize(pipe, prompts, vectors)
  local tok = pipe.tokenizer
  local L = 77
  local names = {}
  for name in pairs(vectors or {}) do names[#names + 1] = name end
  table.sort(names, function(a, b) return #a > #b end)   -- longest first: "<a_b>" before "<a>"
  local rows, slots = {}, {}
  local start_id, end_id, pad_id = tok:start_id(), tok:end_id(), tok:pad_id()
  for b, p in ipairs(prompts) do
    local ids, pos = { start_id }, 1
    local function push(id) if #ids < L - 1 then ids[#ids + 1] = id; return #ids end end
    while pos <= #p do
      local at, which
      for _, name in ipairs(names) do
        local i = p:find(name, pos, true)
        if i and (not at or i < at) then at, which = i, name end
      end
      for _, id in ipairs(content_ids(tok, p:sub(pos, (at or #p + 1) - 1))) do push(id) end
      if not at then break end
      for j = 1, vectors[which]:size(1) do
        local k = push(start_id)
        if k then slots[which] = slots[which] or {}; table.insert(slots[which], { b, k, j }) end
      end
      pos = at + #which
    end
    ids[#ids + 1] = end_id
    while #ids < L do ids[#ids + 1] = pad_id end
    rows[b] = ids
  end
  return T.tensor(rows, { dtype = 'i64' }), slots
end

-- encode(pipe, prompts, vectors) -> [B, L, D] last hidden states, differentiable in the vectors.
function M.encode(pipe, prompts, vectors)
  vectors = vectors or (pipe.ti and pipe.ti.vectors) or {}
  local ids, slots = M.tokenize(pipe, prompts, vectors)
  local W = token_table(pipe.text_encoder)
  local x = F.embedding(ids, W)
  if next(slots) then
    local B, L = ids:size(1), ids:size(2)
    local keep = {}
    for b = 1, B do keep[b] = {}; for k = 1, L do keep[b][k] = { 1 } end end
    local add
    for name, list in pairs(slots) do
      local per = {}
      for _, sl in ipairs(list) do per[sl[3]] = per[sl[3]] or {}; table.insert(per[sl[3]], sl) end
      for j, sls in pairs(per) do
        local m = {}
        for b = 1, B do m[b] = {}; for k = 1, L do m[b][k] = { 0 } end end
        for _, sl in ipairs(sls) do m[sl[1]][sl[2]][1] = 1; keep[sl[1]][sl[2]][1] = 0 end
        local term = T.tensor(m) * vectors[name]:narrow(1, j, 1):reshape(1, 1, -1)
        add = add and add + term or term
      end
    end
    x = x * T.tensor(keep) + add
  end
  local out = pipe.text_encoder(ids, { inputs_embeds = x })
  return out.last_hidden_state
end

-- install(pipe, vectors, tokens): pipe:encode_prompt (and so pipe:generate and the other
-- trainers) understands the placeholders. tokens {class -> placeholder} is kept for lookups.
-- encode_prompt runs without a graph: the vectors may still require grad, and a graph from the
-- prompt would otherwise run through every denoising step of a generation.
function M.install(pipe, vectors, tokens)
  pipe.ti = { vectors = vectors, tokens = tokens or {} }
  pipe.encode_prompt = function(self, prompts)
    if type(prompts) == 'string' then prompts = { prompts } end
    return A.no_grad(M.encode, self, prompts)
  end
  return pipe
end

local function file_name(token, k)
  local s = token:gsub('[^%w_%-]', '')
  return s ~= '' and s or ('token_' .. k)
end

-- save(pipe, dir): one file per token, {token: [n, D]}, as diffusers' textual_inversion script
-- writes and load_textual_inversion reads; also tokens.json {class -> token}.
function M.save(pipe, dir)
  common.mkdir(dir)
  local names = {}
  for name in pairs(pipe.ti.vectors) do names[#names + 1] = name end
  table.sort(names)
  local files = {}
  for k, name in ipairs(names) do
    files[k] = dir .. '/' .. file_name(name, k) .. '.safetensors'
    lora.save_textual_inversion(files[k], name, pipe.ti.vectors[name])
  end
  require('craft.io').write_json(dir .. '/tokens.json', pipe.ti.tokens)
  return files
end

-- load(pipe, dir) installs the tokens saved by save().
function M.load(pipe, dir)
  local tokens = require('craft.io').read_json(dir .. '/tokens.json')
  local names = {}
  for _, token in pairs(tokens) do names[#names + 1] = token end
  table.sort(names)
  local vectors = {}
  -- the vectors join the text encoder's embeddings: they go to its device
  local enc = pipe.text_encoder
  local te = enc and enc.named_parameters and enc:named_parameters()[1]
  for k, token in ipairs(names) do
    local t, e = lora.load_textual_inversion(dir .. '/' .. file_name(token, k) .. '.safetensors')
    vectors[t or token] = te and e:to(te[2].device) or e
  end
  return M.install(pipe, vectors, tokens)
end

-- train(pipe, recipe) -> {log, step, checkpoint, out, vectors = {token -> [n, D]}, tokens = {class -> token}}
-- Installs the tokens on pipe as it goes (so the result is ready to sample from).
local function train(pipe, recipe)
  local r = common.options('ti', recipe, M.DEFAULTS, M.PRESETS, {})
  if not (pipe.tokenizer and pipe.text_encoder) then
    argerror('ti: the pipeline needs a tokenizer and a text encoder')
  end
  local ds = r.data
  if not (type(ds) == 'table' and ds.classes) then
    argerror('ti: recipe.data = {images, labels, classes} is required')
  end
  common.freeze(pipe)
  local W = token_table(pipe.text_encoder)
  local tokens, vectors, params = {}, {}, {}
  for _, c in ipairs(ds.classes) do
    local token = (r.tokens and r.tokens[c]) or ('<' .. c:gsub('%s+', '_') .. '>')
    local ids = content_ids(pipe.tokenizer, (r.initializer and r.initializer[c]) or c)
    if #ids == 0 then argerror(('ti: the initializer of class %q has no tokens'):format(c)) end
    local init = A.no_grad(function()
      local e = F.embedding(T.tensor(ids, { dtype = 'i64' }), W):mean(1, true)
      return e:expand(r.n_vectors, e:size(2)):contiguous()
    end)
    tokens[c], vectors[token] = token, init:detach():requires_grad_(true)
    params[#params + 1] = { 'ti.' .. token, vectors[token] }
  end
  M.install(pipe, vectors, tokens)
  local real = common.real_data(pipe, ds, r)

  -- each rank computes its block of the batch (common.shard)
  local sh = common.shard(r.batch_size, 'ti')
  local function step(s, pos)
    local g = common.rng(r.seed, s, 3)
    local x0, ys, ep, ix = real.batch(s, g, sh)
    local prompts = {}
    for i, y in ipairs(ys) do
      local tpl = r.templates[g.int(#r.templates)]
      prompts[i] = tpl:gsub('{}', (tokens[ds.classes[y + 1]]:gsub('%%', '%%%%')))
    end
    pos.epoch, pos.index = ep, ix
    return common.diffusion_loss(pipe, x0, M.encode(pipe, common.slice(prompts, sh)), g, sh), {}
  end

  local res = common.run { name = 'ti', recipe = r, params = params, step = step,
    export = function(dir) M.save(pipe, dir .. '/learned_embeds') end }
  res.vectors, res.tokens = vectors, tokens
  return res
end
M.train = common.on_device(train)   -- recipe.device: train there (craft.train.common)

return M
