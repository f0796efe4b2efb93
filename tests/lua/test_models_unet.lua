-- UNet2DConditionModel against diffusers (tests/fixtures/make_model_fixtures.py): forward and
-- backward (input, text and parameter gradients) for both projection styles, gradient
-- checkpointing equal to plain, and the key layouts (LDM single file <-> diffusers, the load
-- report). With CRAFT_LDM_CHECK=FILE set it writes the tiny pipeline as an LDM single file for
--   python3 tests/fixtures/make_model_fixtures.py --check-ldm FILE   (diffusers' own converters).
local craft = require 'craft'
local io_ = require 'craft.io'
local models = require 'craft.models'
local keymap = require 'craft.models.keymap'
local T = {}

local M = 'tests/fixtures/models/'
local CASES = { conv = { M .. 'tiny_unet_conv', M .. 'cases/unet_conv.safetensors' },
  linear = { M .. 'tiny_sd/unet', M .. 'cases/unet_linear.safetensors' } }
local TOL = 1e-4

local function named(u)
  local r = {}
  for _, np in ipairs(u:named_parameters()) do r[np[1]] = np[2] end
  return r
end

-- forward + backward of loss = sum(out * grad_weight); returns out and the gradients by name
local function fwd_bwd(u, c)
  u:zero_grad()
  local x = c.sample:clone():requires_grad_(true)
  local e = c.encoder_hidden_states:clone():requires_grad_(true)
  local out = u(x, c.timestep, e)
  ;(out * c.grad_weight):sum():backward()
  local g = { sample = x.grad, encoder_hidden_states = e.grad }
  for k, p in pairs(named(u)) do g[k] = p.grad end
  return out:detach(), g
end

local function parity(t, which)
  local dir, file = CASES[which][1], CASES[which][2]
  local u = models.load_unet(dir)
  local c = io_.load_safetensors(file)
  local out, g = fwd_bwd(u, c)
  local e = t.rel(out, c.out)
  t.ok(e < TOL, ('%s forward rel err %.2g'):format(which, e))
  local e500 = t.rel(craft.no_grad(function() return u(c.sample, 500, c.encoder_hidden_states) end), c.out_t500)
  t.ok(e500 < TOL, ('%s scalar timestep rel err %.2g'):format(which, e500))
  local n, worst = 0, 0
  for k, want in pairs(c) do
    local p = k:match('^grad%.(.*)$')
    if p then
      n = n + 1
      local ge = g[p] and t.rel(g[p], want) or math.huge
      worst = math.max(worst, ge)
      t.ok(ge < TOL, ('%s grad %s rel err %.2g'):format(which, p, ge))
    end
  end
  t.eq(n, 13, which .. ' gradients compared')
  return u, c, out, g, worst
end

function T.forward_backward_conv_projection(t) parity(t, 'conv') end

function T.forward_backward_linear_projection_and_checkpointing(t)
  local u, c, out, g = parity(t, 'linear')
  u.gradient_checkpointing = true
  local out2, g2 = fwd_bwd(u, c)
  t.ok(t.rel(out2, out) < 1e-6, 'checkpointed forward equals plain')
  local worst = 0
  for k, v in pairs(g) do worst = math.max(worst, t.rel(g2[k], v)) end
  t.ok(worst < 1e-5, ('checkpointed gradients equal plain (worst rel %.2g)'):format(worst))
end

function T.config_errors_are_clear(t)
  local U = require 'craft.models.unet'
  local cfg = io_.read_json(CASES.conv[1] .. '/config.json')
  cfg.class_embed_type = 'timestep'
  t.raises(function() U.UNet2DConditionModel(cfg) end, 'class_embed_type = "timestep" is not implemented by craft (implemented: null)')
  cfg.class_embed_type = nil
  cfg.down_block_types = { 'CrossAttnDownBlock2D', 'AttnDownBlock2D' }
  t.raises(function() U.UNet2DConditionModel(cfg) end, 'down_block_types[2] = "AttnDownBlock2D" is not implemented by craft')
end

function T.ldm_keys_round_trip_and_known_names(t)
  local ucfg = io_.read_json(M .. 'tiny_sd/unet/config.json')
  local vcfg = io_.read_json(M .. 'tiny_sd/vae/config.json')
  local u = models.load_unet(M .. 'tiny_sd/unet')
  local v = models.load_vae(M .. 'tiny_sd/vae')
  local usd, vsd = u:state_dict(), v:state_dict()
  local ldm = keymap.diffusers_to_ldm({ unet = usd, vae = vsd }, ucfg, vcfg)
  local known = {
    ['down_blocks.0.resnets.0.norm1.weight'] = 'model.diffusion_model.input_blocks.1.0.in_layers.0.weight',
    ['down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q.weight'] = 'model.diffusion_model.input_blocks.1.1.transformer_blocks.0.attn1.to_q.weight',
    ['down_blocks.0.downsamplers.0.conv.weight'] = 'model.diffusion_model.input_blocks.2.0.op.weight',
    ['down_blocks.1.resnets.0.conv_shortcut.weight'] = 'model.diffusion_model.input_blocks.3.0.skip_connection.weight',
    ['down_blocks.1.resnets.0.time_emb_proj.bias'] = 'model.diffusion_model.input_blocks.3.0.emb_layers.1.bias',
    ['mid_block.attentions.0.proj_in.weight'] = 'model.diffusion_model.middle_block.1.proj_in.weight',
    ['mid_block.resnets.1.conv2.weight'] = 'model.diffusion_model.middle_block.2.out_layers.3.weight',
    ['up_blocks.0.upsamplers.0.conv.weight'] = 'model.diffusion_model.output_blocks.1.1.conv.weight',
    ['up_blocks.1.attentions.1.proj_out.weight'] = 'model.diffusion_model.output_blocks.3.1.proj_out.weight',
    ['time_embedding.linear_2.bias'] = 'model.diffusion_model.time_embed.2.bias',
    ['conv_norm_out.weight'] = 'model.diffusion_model.out.0.weight',
  }
  for d, l in pairs(known) do t.ok(ldm[l] ~= nil and t.rel(ldm[l], usd[d]) == 0, d .. ' -> ' .. l) end
  t.ok(ldm['first_stage_model.decoder.up.1.block.0.conv1.weight'] ~= nil, 'VAE decoder levels counted from the bottom')
  t.ok(ldm['first_stage_model.encoder.down.0.downsample.conv.weight'] ~= nil, 'VAE downsample')
  local q = ldm['first_stage_model.encoder.mid.attn_1.q.weight']
  t.eq(table.concat(q.shape, ','), '32,32,1,1', 'LDM VAE attention is a 1x1 conv')
  local n = 0
  for _ in pairs(ldm) do n = n + 1 end
  local nu, nv = #u:named_parameters(), #v:named_parameters()
  t.eq(n, nu + nv, 'one LDM key per parameter')
  local back, other = keymap.ldm_to_diffusers(ldm, ucfg, vcfg)
  t.eq(#other, 0)
  local bad = 0
  for k, x in pairs(usd) do if not back.unet[k] or t.rel(back.unet[k], x) ~= 0 then bad = bad + 1 end end
  for k, x in pairs(vsd) do if not back.vae[k] or table.concat(back.vae[k].shape, ',') ~= table.concat(x.shape, ',') then bad = bad + 1 end end
  t.eq(bad, 0, 'round trip restores every key and shape')
end

-- The SD 1.5 layout (config only): the module numbering of the released v1-5 single file.
function T.sd15_ldm_module_numbering(t)
  local cfg = { block_out_channels = { 320, 640, 1280, 1280 }, layers_per_block = 2,
    down_block_types = { 'CrossAttnDownBlock2D', 'CrossAttnDownBlock2D', 'CrossAttnDownBlock2D', 'DownBlock2D' },
    up_block_types = { 'UpBlock2D', 'CrossAttnUpBlock2D', 'CrossAttnUpBlock2D', 'CrossAttnUpBlock2D' } }
  local map = {}
  for _, p in ipairs(keymap.unet_pairs(cfg)) do map[p[1]] = p[2] end
  local want = { ['down_blocks.0.downsamplers.0.conv'] = 'input_blocks.3.0.op', ['down_blocks.2.downsamplers.0.conv'] = 'input_blocks.9.0.op',
    ['down_blocks.3.resnets.1'] = 'input_blocks.11.0', ['down_blocks.2.attentions.1'] = 'input_blocks.8.1',
    ['up_blocks.0.upsamplers.0.conv'] = 'output_blocks.2.1.conv', ['up_blocks.1.upsamplers.0.conv'] = 'output_blocks.5.2.conv',
    ['up_blocks.2.upsamplers.0.conv'] = 'output_blocks.8.2.conv', ['up_blocks.3.attentions.2'] = 'output_blocks.11.1',
    ['up_blocks.3.resnets.2'] = 'output_blocks.11.0' }
  for d, l in pairs(want) do t.eq(map[d], l, d) end
  t.eq(map['down_blocks.3.attentions.0'], nil, 'DownBlock2D has no attention')
end

function T.single_file_loads_like_the_folder(t)
  local parts = { unet = models.load_unet(M .. 'tiny_sd/unet'), vae = models.load_vae(M .. 'tiny_sd/vae') }
  local path = os.getenv('CRAFT_LDM_CHECK') or (os.tmpname() .. '_ldm.safetensors')
  models.save_single_file(path, parts)
  local got = models.load_single_file(path, { unet_config = M .. 'tiny_sd/unet', vae_config = M .. 'tiny_sd/vae' })
  local c = io_.load_safetensors(CASES.linear[2])
  local out = craft.no_grad(function() return got.unet(c.sample, c.timestep, c.encoder_hidden_states) end)
  t.ok(t.rel(out, c.out) < TOL, 'unet from the single file')
  local z = craft.randn({ 1, 4, 8, 8 }, { seed = 3 })
  local a = craft.no_grad(function() return got.vae:decode(z) end)
  local b = craft.no_grad(function() return parts.vae:decode(z) end)
  t.eq(t.rel(a, b), 0, 'vae from the single file')
  if not os.getenv('CRAFT_LDM_CHECK') then os.remove(path) end
end

function T.load_reports_missing_unexpected_and_shapes(t)
  local u = models.load_unet(M .. 'tiny_sd/unet')
  local sd = u:state_dict()
  sd['conv_in.weight'] = nil
  sd['extra.weight'] = craft.zeros({ 1 })
  local missing, unexpected = keymap.load(u, sd, { what = 'unet', quiet = true })
  t.eq(table.concat(missing, ','), 'conv_in.weight')
  t.eq(table.concat(unexpected, ','), 'extra.weight')
  sd['conv_in.weight'] = craft.zeros({ 16, 4, 3, 1 })
  t.raises(function() keymap.load(u, sd, { what = 'unet', quiet = true }) end,
    'unet: conv_in.weight has shape [16, 4, 3, 3] in the model but [16, 4, 3, 1] in the checkpoint')
  t.raises(function() models.load_unet('tests/fixtures/models/nowhere') end, 'nowhere/config.json is missing')
  t.raises(function() models.load('tests/fixtures/models/tiny_unet_conv') end, 'model_index.json is missing')
end

return T
