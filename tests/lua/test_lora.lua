-- LoRA: attach (base frozen, output unchanged at init), training reaches only the adapters,
-- merge / unmerge (unmerge restores the weights exactly), save / load round trips in the peft,
-- old diffusers-processor and kohya layouts, kohya alpha scaling, textual inversion files.
-- With CRAFT_LORA_CHECK=DIR set it also writes DIR/lora_peft.safetensors, lora_kohya.safetensors,
-- learned_embeds.safetensors and prediction.safetensors for
--   python3 tests/fixtures/make_model_fixtures.py --check-lora DIR   (loads them into diffusers).
local craft = require 'craft'
local io_ = require 'craft.io'
local models = require 'craft.models'
local lora = require 'craft.models.lora'
local T = {}

local UNET = 'tests/fixtures/models/tiny_sd/unet'
local case = io_.load_safetensors('tests/fixtures/models/cases/unet_linear.safetensors')
local function tmp(name) return os.tmpname() .. '_' .. name end
local function run(u) return craft.no_grad(function() return u(case.sample, case.timestep, case.encoder_hidden_states) end) end
local function rel(a, b) return (a - b):abs():max():item() / b:abs():max():item() end
local function load_unet() return models.load_unet(UNET, { quiet = true }) end
-- adapters with random up weights too, so that they change the output
local function randomise(u, seed)
  for i, np in ipairs(lora.parameters(u)) do np[2]:copy_(craft.randn(np[2].shape, { seed = seed, offset = i * 4096 }) * 0.05) end
end
local function weights(u)
  local r = {}
  for _, np in ipairs(u:named_parameters()) do r[np[1]] = np[2]:clone() end
  return r
end

function T.attach_freezes_base_and_trains_only_adapters(t)
  local u = load_unet()
  local base = run(u)
  local names = lora.attach(u, { rank = 4 })
  t.eq(#names, 32, 'to_q, to_k, to_v, to_out.0 of 4 transformer blocks x 2 attentions')
  t.ok(names[1]:match('%.to_q$') ~= nil, names[1])
  t.eq(rel(run(u), base), 0, 'up = 0: unchanged output')
  for _, p in ipairs(u:parameters()) do t.ok(not p.requires_grad, 'base frozen'); break end
  local out = u(case.sample, case.timestep, case.encoder_hidden_states)
  ;(out * case.grad_weight):sum():backward()
  local params = lora.parameters(u)
  t.eq(#params, 64)
  t.ok(params[2][2].grad ~= nil and params[2][2].grad:abs():max():item() > 0, 'lora_B gets a gradient')
  t.ok(u:parameters()[1].grad == nil, 'base weight gets none')
  t.raises(function() lora.attach(u, { targets = { 'nothing_here$' } }) end, 'no Linear / Conv2d module matches')
end

function T.merge_matches_and_unmerge_restores_exactly(t)
  local u = load_unet()
  lora.attach(u, { rank = 4, alpha = 8, convs = true })
  randomise(u, 3)
  local before = weights(u)
  local live = run(u)
  lora.merge(u)
  local merged = run(u)
  t.ok(rel(merged, live) < 1e-5, ('merged vs live adapters: %.2g'):format(rel(merged, live)))
  t.ok(rel(u._modules.conv_in._params.weight, before['conv_in.weight']) == 0, 'non-target untouched')
  lora.unmerge(u)
  local same = true
  for k, w in pairs(weights(u)) do
    if rel(w, before[k]) ~= 0 and before[k]:abs():max():item() > 0 then same = false end
  end
  t.ok(same, 'unmerge restores every weight bit for bit')
  t.eq(rel(run(u), live), 0, 'after unmerge: live adapters again')
  lora.detach(u)
  t.eq(#lora.adapted(u), 0)
end

-- bake: the adaptation stays in the weights, the adapters are gone, a new adapter starts from there
function T.bake_keeps_the_adaptation(t)
  local u = load_unet()
  lora.attach(u, { rank = 4 })
  randomise(u, 5)
  local live = run(u)
  lora.bake(u)
  t.eq(#lora.adapted(u), 0, 'no adapters left')
  t.ok(rel(run(u), live) < 1e-5, ('baked vs live: %.2g'):format(rel(run(u), live)))
  lora.attach(u, { rank = 2 })
  t.ok(rel(run(u), live) < 1e-5, 'a fresh adapter (up = 0) starts from the baked model')
  lora.detach(u)
  t.ok(rel(run(u), live) < 1e-5, 'detaching the new adapter keeps the baked weights')
end

function T.save_load_round_trips(t)
  local u = load_unet()
  lora.attach(u, { rank = 4, alpha = 2 })
  randomise(u, 5)
  local want = run(u)
  for _, layout in ipairs { 'peft', 'kohya' } do
    local p = tmp(layout .. '.safetensors')
    lora.save(u, p, { layout = layout })
    local keys = io_.inspect(p)
    local k1 = keys[1].name
    if layout == 'peft' then t.ok(k1:match('^unet%..*%.lora_[AB]%.weight$') ~= nil, k1)
    else t.ok(k1:match('^lora_unet_[%w_]+%.') ~= nil, k1) end
    local u2 = load_unet()
    local loaded, skipped = lora.load(u2, p)
    t.eq(#loaded, 32, layout .. ' modules loaded')
    t.eq(#skipped, 0, layout .. ' nothing skipped')
    t.ok(rel(run(u2), want) < 1e-6, layout .. (': round trip %.2g'):format(rel(run(u2), want)))
    os.remove(p)
  end
  -- the older diffusers attention-processor names
  local old = {}
  for _, np in ipairs(lora.parameters(u)) do
    local attn, proj, ab = np[1]:match('^(.*)%.(to_[%w_.]+)%.lora_([AB])%.weight$')
    proj = proj == 'to_out.0' and 'to_out' or proj
    local t_ = np[2]:detach()
    if ab == 'B' then t_ = t_ * 0.5 end   -- alpha 2 / rank 4: the old layout has no alpha
    old[attn .. '.processor.' .. proj .. '_lora.' .. (ab == 'A' and 'down' or 'up') .. '.weight'] = t_
  end
  local u3 = load_unet()
  local loaded = lora.load(u3, old)
  t.eq(#loaded, 32, 'processor layout')
  t.ok(rel(run(u3), want) < 1e-6, 'processor layout output')
end

function T.kohya_alpha_scales(t)
  local u = load_unet()
  lora.attach(u, { rank = 4, alpha = 8 })
  randomise(u, 7)
  local p = tmp('kohya.safetensors')
  lora.save(u, p, { layout = 'kohya' })
  local sd = io_.load_safetensors(p)
  local alpha_key = 'lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q.alpha'
  t.eq(sd[alpha_key]:item(), 8, 'alpha stored')
  t.eq(sd[alpha_key]:dim(), 0, 'alpha is a scalar')
  local function delta_of(alpha)
    for k, v in pairs(sd) do if k:match('%.alpha$') then sd[k] = craft.tensor(alpha) end end
    local u2 = load_unet()
    local w0 = u2._modules.down_blocks:get(1)._modules.attentions:get(1)._modules.transformer_blocks:get(1)._modules.attn1._modules.to_q._params.weight:clone()
    lora.load(u2, sd)
    lora.merge(u2)
    local w1 = u2._modules.down_blocks:get(1)._modules.attentions:get(1)._modules.transformer_blocks:get(1)._modules.attn1._modules.to_q._params.weight
    return w1 - w0
  end
  -- kohya -> peft without a model instance (alpha folded into lora_B)
  local names = {}
  for _, nm in ipairs(u:named_modules()) do names[#names + 1] = nm[1] end
  local peft, bad = require('craft.models.keymap').convert_lora(sd, 'peft', names)
  t.eq(#bad, 0)
  local u3 = load_unet()
  lora.load(u3, peft)
  t.ok(rel(run(u3), run(u)) < 1e-6, 'kohya converted to peft gives the same model')
  local d8, d2 = delta_of(8), delta_of(2)
  t.ok(rel(d2 * 4, d8) < 1e-5, 'alpha 2 gives a quarter of alpha 8')
  os.remove(p)
  t.raises(function()
    local bad = { ['unet.down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q.lora_A.weight'] = craft.zeros({ 4, 5 }),
      ['unet.down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q.lora_B.weight'] = craft.zeros({ 16, 4 }) }
    lora.load(load_unet(), bad)
  end, 'to_q lora down has shape [4, 5] in the file but [4, 16] in the model')
end

function T.textual_inversion_file(t)
  local p = tmp('ti.safetensors')
  local e = craft.randn({ 1, 32 }, { seed = 9 })
  lora.save_textual_inversion(p, '<lesion>', e)
  local tok, got = lora.load_textual_inversion(p)
  t.eq(tok, '<lesion>')
  t.eq(rel(got, e), 0)
  os.remove(p)
end

-- Files for the diffusers cross-check (see the header).
function T.write_diffusers_check(t)
  local dir = os.getenv('CRAFT_LORA_CHECK')
  if not dir then return t.skip('set CRAFT_LORA_CHECK=DIR to write the files for --check-lora') end
  os.execute('mkdir -p ' .. dir)
  local pred = { sample = case.sample, timestep = case.timestep, encoder_hidden_states = case.encoder_hidden_states }
  local a = load_unet()
  lora.attach(a, { rank = 4, alpha = 2, seed = 1 })
  randomise(a, 11)
  lora.save(a, dir .. '/lora_peft.safetensors', { layout = 'peft' })
  pred.out_peft = run(a)
  local b = load_unet()
  lora.attach(b, { rank = 4, alpha = 8, convs = true, seed = 2 })
  randomise(b, 12)
  lora.save(b, dir .. '/lora_kohya.safetensors', { layout = 'kohya' })
  pred.out_kohya = run(b)
  io_.save_safetensors(dir .. '/prediction.safetensors', pred)
  lora.save_textual_inversion(dir .. '/learned_embeds.safetensors', '<craft-lesion>', craft.randn({ 1, 32 }, { seed = 13 }))
  t.ok(true)
end

return T
