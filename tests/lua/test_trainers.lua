-- The trainers (craft.train.*) on the tiny fixture pipeline (8x8 latents, 16x16 images, a tiny
-- random CLIP text encoder over the tiny SD 1.5 tokenizer): each trainer's step changes only what
-- it trains; CRAFT raises a simple differentiable reward on a fixed batch; the DRaFT-K gradient
-- boundary against a hand-written equivalent; the Diffusion-DPO loss against a hand computation
-- and its decrease on a fixed pair; textual inversion touches only the new token vectors;
-- 3 steps + resume + 3 steps is bit-identical to 6 steps; a NaN reward stops with the step named
-- and the last good checkpoint kept.
local craft = require 'craft'
local lora = require 'craft.models.lora'
local common = require 'craft.train.common'
local CT = require 'craft.train.craft'
local TI = require 'craft.train.ti'
local LD = require 'craft.train.lora_diffusion'
local DPO = require 'craft.train.dpo'
local F = craft.F
local T = {}

local tiny = dofile('tests/lua/tiny_pipeline.lua')
local pipe, PROMPTS, dataset, tok = tiny.pipe, tiny.PROMPTS, tiny.dataset, tiny.tokenizer
local BRIGHT = function(images) return images:mean({ 2, 3, 4 }) end
local function tmpdir(name)
  local base = os.tmpname()
  os.remove(base)
  return base .. '_' .. name
end
local function rmdir(d) os.execute("rm -rf '" .. d .. "'") end
-- every parameter of the frozen components, cloned
local function snapshot(p)
  local r = {}
  for _, k in ipairs { 'unet', 'vae', 'text_encoder' } do
    for _, np in ipairs(p[k]:named_parameters()) do r[k .. '.' .. np[1]] = np[2]:detach():clone() end
  end
  return r
end
local function unchanged(t, p, before, what)
  local bad = {}
  for k, v in pairs(snapshot(p)) do
    if (v - before[k]):abs():max():item() ~= 0 then bad[#bad + 1] = k end
  end
  t.eq(#bad, 0, what .. ': frozen parameters changed (' .. table.concat(bad, ', ', 1, math.min(3, #bad)) .. ')')
end
local function lora_weights(p)
  local r = {}
  for _, np in ipairs(lora.parameters(p.unet)) do r[np[1]] = np[2]:detach():clone() end
  return r
end
local function max_diff(a, b) return (a - b):abs():max():item() end

---------------------------------------------------------------- CRAFT
function T.craft_step_changes_only_lora(t)
  local p = pipe()
  local before = snapshot(p)
  local res = CT.train(p, { preset = 'tiny', steps = 4, max_steps = 1, prompts = PROMPTS, reward = BRIGHT, quiet = true })
  unchanged(t, p, before, 'craft')
  local moved = 0
  for _, np in ipairs(lora.parameters(p.unet)) do
    if np[1]:match('lora_B') and np[2]:abs():max():item() > 0 then moved = moved + 1 end
  end
  t.ok(moved > 0, 'the LoRA up weights left zero')
  t.eq(#res.log, 1)
  t.ok(res.log[1].reward > 0 and res.log[1].grad_norm > 0, 'reward and gradient logged')
end

-- The brightness reward of one fixed batch (fixed prompts and noise), before and after training.
function T.craft_reward_goes_up_on_a_fixed_batch(t)
  local p = pipe()
  local encode = common.prompt_encoder(p)
  local noise = craft.randn({ 4, 4, 8, 8 }, { seed = 99 })
  local prompts = { PROMPTS.normal[1], PROMPTS.pneumonia[1], PROMPTS.normal[2], PROMPTS.pneumonia[2] }
  local function fixed_reward()
    local img = craft.no_grad(common.sample, p, { cond = encode(prompts), uncond = encode { '', '', '', '' }, cfg = 3,
      steps = 4, noise = noise })
    return BRIGHT(img):mean():item()
  end
  local r0 = fixed_reward()
  CT.train(p, { preset = 'tiny', steps = 4, cfg = 3, max_steps = 20, lr = 1e-2, prompts = PROMPTS, reward = BRIGHT,
    quiet = true })
  local r1 = fixed_reward()
  io.stderr:write(('  craft: fixed-batch brightness reward %.4f -> %.4f (+%.4f) after 20 steps\n'):format(r0, r1, r1 - r0))
  t.ok(r1 > r0 + 0.01, ('reward went up: %.4f -> %.4f'):format(r0, r1))
end

-- grads of every LoRA parameter after backward of the brightness reward
local function grads_of(p)
  local r = {}
  for _, np in ipairs(lora.parameters(p.unet)) do r[np[1]] = np[2].grad and np[2].grad:clone() or false end
  return r
end
local function setup_k(seed)
  local p = pipe()
  lora.attach(p.unet, { rank = 4, seed = 3 })
  for i, np in ipairs(lora.parameters(p.unet)) do
    if np[1]:match('lora_B') then craft.no_grad(function() np[2]:copy_(craft.randn(np[2].shape, { seed = seed, offset = i * 4096 }) * 0.05) end) end
  end
  local enc = common.prompt_encoder(p)
  return p, enc({ PROMPTS.normal[1], PROMPTS.pneumonia[1] }), enc({ '', '' }), craft.randn({ 2, 4, 8, 8 }, { seed = 5 })
end

function T.draft_k_gradient_boundary(t)
  local p, cond, uncond, noise = setup_k(11)
  local function run(K, nz)
    p.unet:zero_grad()
    for _, np in ipairs(lora.parameters(p.unet)) do np[2]:zero_grad() end
    local img = common.sample(p, { cond = cond, uncond = uncond, cfg = 3, steps = 4, noise = nz or noise, grad_steps = K })
    BRIGHT(img):mean():backward()
    return grads_of(p)
  end
  local g1, g2 = run(1), run(2)
  -- the hand-written DRaFT-1: three steps without a graph, the last one and the decode with it
  for _, np in ipairs(lora.parameters(p.unet)) do np[2]:zero_grad() end
  local s = p.scheduler
  local ts = s:set_timesteps(4)
  local ctx = F.cat({ uncond, cond }, 1)
  local function denoise(tt, x)
    local out = p.unet(F.cat({ x, x }, 1), tt, ctx)
    local u, c = out:narrow(1, 1, 2), out:narrow(1, 3, 2)
    return s:step(u + (c - u) * 3, tt, x).prev_sample
  end
  local x = noise
  craft.no_grad(function() for i = 1, 3 do x = denoise(ts[i], x) end end)
  x = denoise(ts[4], x:detach())
  local img = (p.vae:decode(x * (1 / p.vae.scaling_factor)) * 0.5 + 0.5):clamp(0, 1)
  BRIGHT(img):mean():backward()
  local gh = grads_of(p)
  local worst, differ, n = 0, 0, 0
  for k, g in pairs(g1) do
    t.ok(g and gh[k], k .. ' has a gradient')
    if g and gh[k] then
      worst = math.max(worst, max_diff(g, gh[k]) / math.max(gh[k]:abs():max():item(), 1e-30))
      if g2[k] then differ = math.max(differ, max_diff(g, g2[k])); n = n + 1 end
    end
  end
  io.stderr:write(('  draft-k: K=1 vs hand-written rel diff %.3g; K=1 vs K=2 max diff %.3g\n'):format(worst, differ))
  t.ok(worst < 1e-5, ('K=1 gradients equal the hand-written no_grad boundary (rel %.2g)'):format(worst))
  t.ok(n > 0 and differ > 0, ('K=1 and K=2 give different gradients (max diff %.3g)'):format(differ))
  -- nothing flows back past the boundary: the initial noise gets a gradient only when K covers every step
  local nz = noise:clone():requires_grad_(true)
  run(3, nz)
  t.ok(nz.grad == nil, 'K < steps: no gradient reaches the initial noise')
  local nz2 = noise:clone():requires_grad_(true)
  run(4, nz2)
  t.ok(nz2.grad ~= nil and nz2.grad:abs():max():item() > 0, 'K = steps: the initial noise gets one')
end

function T.craft_kl_penalty_and_real_diffusion(t)
  local p = pipe()
  local res = CT.train(p, { preset = 'tiny', steps = 4, max_steps = 2, lr = 1e-2, prompts = PROMPTS, reward = BRIGHT,
    kl_weight = 1, real_diffusion_weight = 0.5, data = dataset(), quiet = true })
  t.eq(res.log[1].kl, 0, 'step 1: LoRA up = 0, so the LoRA and base predictions agree exactly')
  t.ok(res.log[2].kl > 0, 'step 2: the adapters moved the prediction')
  t.ok(res.log[1].real_diffusion > 0, 'real-image diffusion loss logged')
  t.near(res.log[1].loss, -res.log[1].reward + 0.5 * res.log[1].real_diffusion, 1e-5, 'loss = -R + kl + w * diffusion')
  t.raises(function() CT.train(pipe(), { preset = 'tiny', prompts = PROMPTS, reward = BRIGHT, lr_rate = 1 }) end,
    'unknown recipe field "lr_rate"')
  t.raises(function() CT.train(pipe(), { preset = 'tiny', prompts = PROMPTS }) end, 'give reward')
end

-- A CAS over fake encoders (fixed random linear maps from pixels; texts hashed to vectors).
local function tiny_cas()
  local NPIX = 3 * 16 * 16
  local W1 = craft.randn({ NPIX, 8 }, { seed = 41 }) * (1 / math.sqrt(NPIX))
  local W2 = craft.randn({ NPIX, 6 }, { seed = 42 }) * (1 / math.sqrt(NPIX))
  local function feat(x, W) return (x - 0.5):reshape(x:size(1), NPIX):matmul(W) end
  local function text(s)
    local h = 0
    for i = 1, #s do h = (h * 31 + s:byte(i)) % 2 ^ 31 end
    return craft.randn({ 8 }, { seed = h }):flat()
  end
  local cas = require('craft.cas').new {
    classes = { 'normal', 'pneumonia' }, prompts = PROMPTS, k = 2, temperature = { prompt = 1, checklist = 1 },
    checklists = { normal = { { pos = 'clear lungs', neg = 'opacities' } }, pneumonia = { { pos = 'consolidation', neg = 'clear lungs' } } },
    vlm = { encode_image = function(x) return feat(x, W1) end, encode_text = function(list)
      local rows = {}
      for i, s in ipairs(list) do rows[i] = text(s) end
      return craft.tensor(rows)
    end },
    vision = { encode = function(x) return feat(x, W2) end },
  }
  local ds = dataset()
  cas:fit(ds.images, ds.labels, { epochs = 20 })
  cas:calibrate(craft.rand({ 8, 3, 16, 16 }, { seed = 43 }), ds.labels)
  return cas
end

function T.craft_and_dpo_with_a_cas(t)
  local cas = tiny_cas()
  local res = CT.train(pipe(), { preset = 'tiny', steps = 3, max_steps = 2, prompts = PROMPTS, cas = cas, quiet = true,
    reward_weights = { prompt = 1, checklist = 1, probe = 1, fidelity = 0 } })
  for _, d in ipairs { 'prompt', 'checklist', 'probe', 'fidelity' } do
    t.ok(type(res.log[2]['cas_' .. d]) == 'number', 'logged cas_' .. d)
  end
  t.ok(res.log[1].reward == res.log[1].reward and res.log[1].grad_norm > 0, 'the CAS reward trains')
  local d = DPO.train(pipe(), { preset = 'tiny', steps = 2, max_steps = 1, prompts = PROMPTS, cas = cas, quiet = true,
    pairs = 4 })
  t.ok(d.log[1].pairs >= 1 and d.pairs >= 2, 'pairs ranked by the checklist dimension')
end

---------------------------------------------------------------- DPO
local function dpo_setup(randomise)
  local p = pipe()
  lora.attach(p.unet, { rank = 4, seed = 2 })
  if randomise then
    for i, np in ipairs(lora.parameters(p.unet)) do
      if np[1]:match('lora_B') then craft.no_grad(function() np[2]:copy_(craft.randn(np[2].shape, { seed = 21, offset = i * 4096 }) * 0.05) end) end
    end
  end
  local enc = common.prompt_encoder(p)
  return p, { xw = craft.randn({ 1, 4, 8, 8 }, { seed = 31 }), xl = craft.randn({ 1, 4, 8, 8 }, { seed = 32 }),
    context = enc({ PROMPTS.pneumonia[1] }), t = { 500 }, noise = craft.randn({ 1, 4, 8, 8 }, { seed = 33 }), beta = 2000 }
end

function T.dpo_loss_equals_hand_computation(t)
  local p, o = dpo_setup(true)
  o.beta = 500   -- beta scales float32 rounding of the mse differences too; keep the comparison sharp
  local loss, info = DPO.loss(p, o)
  -- by hand: each UNet call on its own, squared errors summed in Lua
  local s = p.scheduler
  local function mse(x, scale)
    local noisy = s:add_noise(x, o.noise, o.t)
    local pred = craft.no_grad(common.with_lora_scale, p.unet, scale, p.unet, noisy, craft.tensor(o.t), o.context)
    local a, b, acc = pred:flat(), o.noise:flat(), 0
    for i = 1, #a do acc = acc + (a[i] - b[i]) ^ 2 end
    return acc / #a
  end
  local mw, ml = mse(o.xw, 1), mse(o.xl, 1)
  local rw, rl = mse(o.xw, 0), mse(o.xl, 0)
  local z = -o.beta / 2 * ((mw - ml) - (rw - rl))
  local want = math.log(1 + math.exp(-z))
  io.stderr:write(('  dpo: loss %.8f, hand-computed %.8f\n'):format(loss:item(), want))
  t.ok(math.abs(mw - rw) > 1e-6, 'the adapters change the prediction (a real test of the reference term)')
  t.near(loss:item(), want, 1e-4 * math.max(1, want), ('DPO loss %.6f vs hand-computed %.6f'):format(loss:item(), want))
  t.eq(info.acc, z > 0 and 1 or 0, 'implicit accuracy')
end

function T.dpo_loss_decreases_on_a_fixed_pair(t)
  local p, o = dpo_setup(false)
  local opt = craft.optim.AdamW(lora.parameters(p.unet), { lr = 1e-3 })
  local first, last
  for i = 1, 10 do
    opt:zero_grad()
    local loss = DPO.loss(p, o)
    if i == 1 then first = loss:item() end
    last = loss:item()
    loss:backward()
    opt:step()
  end
  t.near(first, math.log(2), 1e-6, 'fresh adapters: model = reference, loss = log 2')
  io.stderr:write(('  dpo: fixed-pair loss %.4f -> %.4f after 9 steps\n'):format(first, last))
  t.ok(last < first - 0.05, ('DPO loss decreased: %.4f -> %.4f'):format(first, last))
end

-- Offline Diffusion-DPO on a fixed toy preference set (the brighter of two generations wins):
-- the implicit preference accuracy it logs on its training pairs rises above chance, and the
-- held-out pairs' accuracy and loss are logged (and start at chance: the model is the reference).
function T.dpo_learns_a_fixed_toy_preference(t)
  local res = DPO.train(pipe(), { preset = 'tiny', steps = 2, cfg = 1, prompts = PROMPTS, quiet = true, pairs = 24,
    heldout = 0.25, max_steps = 60, batch_size = 4, lr = 3e-3, beta = 2000, eval_every = 20,
    rank = function(images) return BRIGHT(images) end })
  t.eq(res.n_train_pairs + res.heldout.n, res.pairs, 'training and held-out pairs')
  local early, late = 0, 0
  for s = 1, 10 do early = early + res.log[s].implicit_acc / 10 end
  for s = 51, 60 do late = late + res.log[s].implicit_acc / 10 end
  io.stderr:write(('  dpo toy: implicit accuracy %.2f (steps 1-10) -> %.2f (steps 51-60); held-out %.2f (loss %.3f) over %d pairs\n'):format(
    early, late, res.heldout.accuracy, res.heldout.loss, res.heldout.n))
  t.ok(late > 0.5 and late > early, 'the logged preference accuracy rises above chance')
  t.ok(res.log[20].heldout_acc ~= nil and res.log[60].heldout_acc ~= nil, 'held-out accuracy logged at eval steps')
  t.ok(res.heldout.accuracy > 0.5, 'held-out accuracy above chance')
end

function T.dpo_step_changes_only_lora(t)
  local p = pipe()
  local before = snapshot(p)
  local calls = 0
  -- rank by brightness (a stand-in for the checklist score)
  local res = DPO.train(p, { preset = 'tiny', steps = 3, max_steps = 1, prompts = PROMPTS, quiet = true, pairs = 6,
    generate_batch = 3, heldout = 0,
    rank = function(images) calls = calls + 1; return BRIGHT(images) end })
  unchanged(t, p, before, 'dpo')
  t.eq(calls, 2, 'one ranking call per generated batch of pairs, none while training')
  t.eq(res.log[1].pairs, 2, 'a batch of two pairs')
  t.near(res.log[1].loss, math.log(2), 1e-6, 'first step: model = reference')
  local moved = false
  for _, np in ipairs(lora.parameters(p.unet)) do if np[2]:abs():max():item() > 0 and np[1]:match('lora_B') then moved = true end end
  t.ok(moved, 'adapters trained')
end

---------------------------------------------------------------- TI, TI + LoRA
function T.ti_tokenization_and_changes_only_new_tokens(t)
  local p = pipe()
  -- without placeholders the tokenization is the tokenizer's own
  local ids = TI.tokenize(p, { 'a chest x-ray' }, {})
  t.eq(max_diff(ids:float(), tok:encode('a chest x-ray'):float()), 0, 'plain prompts tokenize as before')
  local before = snapshot(p)
  local ds = dataset()
  local res = TI.train(p, { preset = 'tiny', max_steps = 2, data = ds, quiet = true, initializer = { normal = 'normal',
    pneumonia = 'lung' } })
  unchanged(t, p, before, 'ti')
  t.eq(res.tokens.pneumonia, '<pneumonia>')
  local W = p.text_encoder._modules.text_model._modules.embeddings._modules.token_embedding._params.weight
  for _, c in ipairs(ds.classes) do
    local v = res.vectors[res.tokens[c]]
    local init = craft.no_grad(function()
      local idc = TI.tokenize(p, { c == 'normal' and 'normal' or 'lung' }, {}):flat()
      local rows = {}
      for k = 2, #idc do if idc[k] == tok:end_id() then break end rows[#rows + 1] = idc[k] end
      return F.embedding(craft.tensor(rows, { dtype = 'i64' }), W):mean(1, true)
    end)
    t.ok(max_diff(v, init) > 0, c .. ': its token vector moved from the initializer')
  end
  -- the placeholder's position carries the learned vector
  local e1 = craft.no_grad(TI.encode, p, { 'a photo of <pneumonia>' })
  local e2 = craft.no_grad(TI.encode, p, { 'a photo of <normal>' })
  t.ok(max_diff(e1, e2) > 0, 'different tokens, different embeddings')
  local dir = tmpdir('ti')
  TI.save(p, dir)
  local q = pipe()
  TI.load(q, dir)
  t.eq(max_diff(craft.no_grad(q.encode_prompt, q, { 'a photo of <pneumonia>' }), e1), 0, 'saved tokens load back')
  local name = lora.load_textual_inversion(dir .. '/pneumonia.safetensors')
  t.eq(name, '<pneumonia>', 'diffusers layout {token: [n, dim]}')
  rmdir(dir)
end

function T.ti_then_lora_step_changes_only_lora(t)
  local p = pipe()
  local ds = dataset()
  local ti_res = TI.train(p, { preset = 'tiny', max_steps = 1, data = ds, quiet = true })
  local before = snapshot(p)
  local vec = ti_res.vectors['<normal>']:clone()
  local res = LD.train(p, { preset = 'tiny', max_steps = 2, data = ds, ti = ti_res, quiet = true })
  unchanged(t, p, before, 'lora_diffusion')
  t.eq(max_diff(ti_res.vectors['<normal>'], vec), 0, 'the TI tokens stay frozen')
  t.eq(#res.log, 2)
  t.ok(res.log[1].loss > 0 and res.log[2].grad_norm > 0, 'diffusion loss and gradients')
end

---------------------------------------------------------------- checkpoints
-- 6 steps straight vs 3 steps, a fresh process-like restart (new pipeline), resume, 3 more.
local function resume_case(t, what, train, recipe, weights_of)
  local a, b = tmpdir(what .. '_a'), tmpdir(what .. '_b')
  local function rec(extra)
    local r = {}
    for k, v in pairs(recipe) do r[k] = v end
    for k, v in pairs(extra) do r[k] = v end
    return r
  end
  local pa = pipe()
  local ra = train(pa, rec { max_steps = 6, out = a, checkpoint_every = 2 })
  local pb = pipe()
  train(pb, rec { max_steps = 6, out = b, checkpoint_every = 2, stop_at = 3 })
  t.eq(common.checkpoint_step(b .. '/checkpoint.safetensors'), 3, what .. ': interrupted at step 3')
  local pc = pipe()
  local rc = train(pc, rec { max_steps = 6, out = b, checkpoint_every = 2, resume = true })
  local wa, wc = weights_of(pa, ra), weights_of(pc, rc)
  local n, worst = 0, 0
  for k, v in pairs(wa) do
    n = n + 1
    worst = math.max(worst, wc[k] and max_diff(v, wc[k]) or math.huge)
  end
  t.ok(n > 0, what .. ': weights to compare')
  t.eq(worst, 0, what .. ': resumed weights are bit-identical to the uninterrupted run')
  t.eq(#rc.log, 6, what .. ': the log continues')
  t.eq(rc.log[6].loss, ra.log[6].loss, what .. ': same last loss')
  local f = io.open(b .. '/log.csv')
  local lines = 0
  for _ in f:lines() do lines = lines + 1 end
  f:close()
  t.eq(lines, 7, what .. ': log.csv has a header and 6 rows')
  rmdir(a); rmdir(b)
end

function T.resume_is_bit_identical(t)
  local lw = function(p) return lora_weights(p) end
  resume_case(t, 'craft', CT.train, { preset = 'tiny', steps = 3, lr = 1e-2, prompts = PROMPTS, reward = BRIGHT,
    quiet = true, kl_weight = 0.1 }, lw)
  resume_case(t, 'dpo', DPO.train, { preset = 'tiny', steps = 2, prompts = PROMPTS, quiet = true, pairs = 8, eval_every = 2,
    rank = function(images) return BRIGHT(images) end }, lw)
  resume_case(t, 'lora_diffusion', LD.train, { preset = 'tiny', batch_size = 3, data = dataset(), quiet = true }, lw)
  resume_case(t, 'ti', TI.train, { preset = 'tiny', batch_size = 3, data = dataset(), quiet = true }, function(_, r)
    local w = {}
    for k, v in pairs(r.vectors) do w[k] = v:detach():clone() end
    return w
  end)
end

function T.nan_reward_stops_and_keeps_the_last_good_checkpoint(t)
  local dir = tmpdir('nan')
  local calls = 0
  local reward = function(images)
    calls = calls + 1
    local R = BRIGHT(images)
    if calls == 3 then R = R * (0 / 0) end
    return R
  end
  local ok, err = pcall(CT.train, pipe(), { preset = 'tiny', steps = 2, max_steps = 5, checkpoint_every = 1,
    prompts = PROMPTS, reward = reward, out = dir, quiet = true })
  t.ok(not ok, 'training stopped')
  t.ok(tostring(err):find('step 3', 1, true) ~= nil, 'the message names the step: ' .. tostring(err))
  t.ok(tostring(err):find('nan', 1, true) ~= nil, 'and the NaN')
  t.ok(tostring(err):find('last good checkpoint', 1, true) ~= nil, 'and the checkpoint')
  t.eq(common.checkpoint_step(dir .. '/checkpoint.safetensors'), 2, 'the step-2 checkpoint is kept')
  -- resuming from it works (the reward is fine again)
  local res = CT.train(pipe(), { preset = 'tiny', steps = 2, max_steps = 3, checkpoint_every = 1, prompts = PROMPTS,
    reward = BRIGHT, out = dir, resume = true, quiet = true })
  t.eq(res.step, 3, 'resumed past the bad step')
  t.ok(common.exists(dir .. '/lora.safetensors'), 'final LoRA written')
  local loaded = lora.load(pipe().unet, dir .. '/lora.safetensors')
  t.ok(#loaded > 0, 'the exported LoRA loads')
  rmdir(dir)
  -- with the numeric guard the op that made the NaN is named, and the step still is
  calls = 0
  local ok2, err2 = pcall(CT.train, pipe(), { preset = 'tiny', steps = 2, max_steps = 5, prompts = PROMPTS,
    reward = reward, numeric_guard = true, quiet = true })
  t.ok(not ok2 and tostring(err2):find('step 3', 1, true) ~= nil, 'numeric guard: ' .. tostring(err2))
  t.ok(craft.C.craft_numeric_guard() == 0, 'the guard is switched back off')
end

-- log.csv with columns some rows lack (DPO's held-out figures, every eval_every steps): each
-- missing cell is empty, never a neighbour's value or the header's
function T.log_csv_keeps_sparse_columns(t)
  local path = os.tmpname()
  common.write_csv(path, { { step = 1, loss = 0.5 }, { step = 2, loss = 0.25, heldout_acc = 0.75 }, { step = 3, loss = 0.125 },
    { loss = 1 } })
  local f = io.open(path)
  local text = f:read('*a')
  f:close()
  os.remove(path)
  t.eq(text, 'step,heldout_acc,loss\n1,,0.5\n2,0.75,0.25\n3,,0.125\n,,1\n', 'sparse rows')
end

-- One thread: these models are tiny, and OpenMP threads on a busy machine cost far more than
-- they give here (a step takes seconds instead of milliseconds under contention).
for name, fn in pairs(T) do
  T[name] = function(t)
    local n = craft.num_threads()
    craft.set_num_threads(1)
    local ok, err = xpcall(fn, debug.traceback, t)
    craft.set_num_threads(n)
    if not ok then error(err, 0) end
  end
end

return T
