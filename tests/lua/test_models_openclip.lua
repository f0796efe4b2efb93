-- SD 2.x single files: the OpenCLIP text tower (cond_stage_model.model.*) read into transformers'
-- CLIPTextModel names (tests/fixtures/make_openclip_fixtures.py: a tiny 24-block tower, converted
-- by diffusers' own converter into a 23-layer CLIPTextModel). Keys equal to diffusers' conversion,
-- outputs within 1e-4 relative, the left-over keys reported.
local craft = require 'craft'
local io_ = require 'craft.io'
local models = require 'craft.models'
local keymap = require 'craft.models.keymap'
local clip = require 'craft.models.clip'
local T = {}

local DIR = 'tests/fixtures/models/sd2_openclip/'
local TINY = 'tests/fixtures/models/tiny_sd/'
local ref = io_.load_safetensors(DIR .. 'io.safetensors')
local function shape(t) return table.concat(t.shape, 'x') end

-- the 14 keys SD 2 leaves unused: the last block (12 tensors), text_projection, logit_scale
local function left_over(prefix)
  local l = { prefix .. 'logit_scale', prefix .. 'text_projection' }
  for _, n in ipairs { 'attn.in_proj_bias', 'attn.in_proj_weight', 'attn.out_proj.bias', 'attn.out_proj.weight',
    'ln_1.bias', 'ln_1.weight', 'ln_2.bias', 'ln_2.weight', 'mlp.c_fc.bias', 'mlp.c_fc.weight', 'mlp.c_proj.bias',
    'mlp.c_proj.weight' } do
    l[#l + 1] = prefix .. 'transformer.resblocks.23.' .. n
  end
  table.sort(l)
  return table.concat(l, ',')
end

function T.openclip_keys_convert_like_diffusers(t)
  local tower = io_.load_safetensors(DIR .. 'ldm_text.safetensors', { prefix = keymap.LDM_OPENCLIP })
  local got, unused = keymap.openclip_to_clip(tower)
  local want = io_.load_safetensors(DIR .. 'text_encoder/model.safetensors')
  local n, bad = 0, {}
  for k, w in pairs(want) do
    n = n + 1
    local g = got[k]
    if not g or shape(g) ~= shape(w) or t.rel(g, w) ~= 0 then bad[#bad + 1] = k end
  end
  for k in pairs(got) do if not want[k] then bad[#bad + 1] = k .. ' (extra)' end end
  table.sort(bad)
  t.eq(#bad, 0, 'keys differing from diffusers\' conversion: ' .. table.concat(bad, ', ', 1, math.min(5, #bad)))
  t.eq(n, 4 + 23 * 16, 'CLIPTextModel tensors (embeddings, final norm, 23 layers)')
  t.eq(table.concat(unused, ','), left_over(''), 'left over: the last block, text_projection, logit_scale')
  -- the fused projection splits q, k, v in that order
  local inp = tower['transformer.resblocks.5.attn.in_proj_weight']
  t.eq(t.rel(got['text_model.encoder.layers.5.self_attn.v_proj.weight'], inp:narrow(1, 17, 8)), 0, 'v = rows 17..24')
  -- every block kept, and the projection as a linear weight, when asked
  local all, unused2 = keymap.openclip_to_clip(tower, { layers = 24, projection = true })
  t.ok(all['text_model.encoder.layers.23.mlp.fc2.bias'] ~= nil, 'layers = 24 keeps the last block')
  t.eq(t.rel(all['text_projection.weight'], tower.text_projection:t()), 0, 'text_projection transposed')
  t.eq(table.concat(unused2, ','), 'logit_scale')
end

function T.sd2_single_file_loads_the_text_encoder(t)
  -- an SD 2-style single file: the tiny UNet and VAE in the LDM layout plus the OpenCLIP tower
  local unet, vae = models.load_unet(TINY .. 'unet'), models.load_vae(TINY .. 'vae')
  local sd = keymap.diffusers_to_ldm({ unet = unet:state_dict(), vae = vae:state_dict() }, unet.config, vae.config)
  for k, v in pairs(io_.load_safetensors(DIR .. 'ldm_text.safetensors')) do sd[k] = v end
  local path = os.tmpname() .. '_sd2.safetensors'
  io_.save_safetensors(path, sd, { format = 'pt' })
  -- the warning lines, as a user sees them
  local lines, real = {}, io.stderr
  io.stderr = { write = function(_, s) lines[#lines + 1] = s end }
  local ok, got = pcall(models.load_single_file, path, { unet_config = TINY .. 'unet', vae_config = TINY .. 'vae',
    text_encoder_config = DIR .. 'text_encoder' })
  io.stderr = real
  t.ok(ok, tostring(not ok and got))
  if not ok then os.remove(path); return end
  t.eq(got.text_encoder_layout, 'openclip')
  t.eq(#lines, 1, 'one warning line')
  t.ok((lines[1] or ''):find('14 key(s) converted to no UNet, VAE or text encoder key, not loaded ' ..
    '(cond_stage_model.model.logit_scale, cond_stage_model.model.text_projection, ' ..
    'cond_stage_model.model.transformer.resblocks.23.attn.in_proj_bias, ...)', 1, true), lines[1])
  local out = craft.no_grad(function() return got.text_encoder(ref.input_ids) end)
  local e1, e2 = t.rel(out.last_hidden_state, ref.last_hidden_state), t.rel(out.pooler_output, ref.pooler_output)
  t.ok(e1 <= 1e-4, ('last_hidden_state (SD 2\'s penultimate layer) rel err %.2g'):format(e1))
  t.ok(e2 <= 1e-4, ('pooler_output rel err %.2g'):format(e2))
  local c = io_.load_safetensors('tests/fixtures/models/cases/unet_linear.safetensors')
  local u = craft.no_grad(function() return got.unet(c.sample, c.timestep, c.encoder_hidden_states) end)
  t.ok(t.rel(u, c.out) < 1e-4, 'the UNet from the same file')
  -- with the projection (CLIPTextModelWithProjection): text_embeds = pooled @ text_projection
  local p = models.load_single_file(path, { unet_config = TINY .. 'unet', vae_config = TINY .. 'vae',
    text_encoder_config = DIR .. 'text_encoder', text_projection = true, quiet = true })
  local proj = io_.load_safetensors(DIR .. 'ldm_text.safetensors', { names = { keymap.LDM_OPENCLIP .. 'text_projection' } })
  local emb = craft.no_grad(function() return p.text_encoder(ref.input_ids).text_embeds end)
  t.ok(t.rel(emb, ref.pooler_output:matmul(proj[keymap.LDM_OPENCLIP .. 'text_projection'])) < 1e-5, 'text_embeds')
  -- without a text config: the converted tensors, SD 2's 23 layers
  local bare, other = keymap.ldm_to_diffusers(io_.load_safetensors(path), unet.config, vae.config)
  t.eq(table.concat(other, ','), left_over(keymap.LDM_OPENCLIP), 'left-over keys, by full name')
  t.ok(bare.text_encoder['text_model.encoder.layers.22.self_attn.k_proj.bias'] ~= nil
    and bare.text_encoder['text_model.encoder.layers.23.self_attn.k_proj.bias'] == nil, '23 layers')
  -- a config asking for more layers than the file has: the missing keys are an error
  t.raises(function()
    models.load_single_file(path, { unet_config = TINY .. 'unet', vae_config = TINY .. 'vae', quiet = true,
      text_encoder_config = { vocab_size = 64, hidden_size = 8, intermediate_size = 16, num_hidden_layers = 25,
        num_attention_heads = 2, max_position_embeddings = 16, hidden_act = 'gelu' } })
  end, '16 text_encoder key(s) missing (text_model.encoder.layers.24.')
  os.remove(path)
end

function T.diffusers_converted_folder_gives_the_same_output(t)
  local m = clip.from_pretrained(DIR .. 'text_encoder')
  local out = craft.no_grad(function() return m(ref.input_ids) end)
  t.ok(t.rel(out.last_hidden_state, ref.last_hidden_state) <= 1e-4, 'last_hidden_state')
  t.ok(t.rel(out.pooler_output, ref.pooler_output) <= 1e-4, 'pooler_output')
end

return T
