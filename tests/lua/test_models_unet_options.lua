-- The UNet config options craft implements beyond the plain SD 1.x / 2.x layout, each against
-- diffusers 0.27.2 (tests/fixtures/make_unet_options_fixtures.py: one tiny folder per case,
-- fp16 weights, float32 reference): downsample_padding 0, timestep_post_act,
-- time_embedding_act_fn, (nested) transformer_layers_per_block with its reverse, an
-- only_cross_attention list, time_embedding_dim, mid_block_type null / UNetMidBlock2D, and the
-- small ones (kernels, center_input_sample, mid_block_scale_factor). Then the refusals: one
-- line naming the key, its value and the file; unknown keys noted once.
local craft = require 'craft'
local io_ = require 'craft.io'
local models = require 'craft.models'
local O = require 'craft.models.options'
local U = require 'craft.models.unet'
local T = {}

local DIR = 'tests/fixtures/models/unet_options/'
local CASES = { 'downsample_padding_0', 'timestep_post_act_silu', 'time_embedding_act_fn_silu',
  'reverse_transformer_layers', 'nested_transformer_layers', 'only_cross_attention_list',
  'time_embedding_dim_gelu_post_act', 'mid_block_none', 'mid_block_plain_scaled', 'misc_kernels_center_scale' }

function T.options_match_diffusers(t)
  for _, name in ipairs(CASES) do
    local u = models.load_unet(DIR .. name)
    local c = io_.load_safetensors(DIR .. name .. '/case.safetensors')
    local out = craft.no_grad(function() return u(c.sample, c.timestep, c.encoder_hidden_states) end)
    t.close(out, c.out, 1e-5, name)
  end
end

-- a config of the fixtures' shape with some keys changed (nil values drop the key)
local function config(over)
  local c = io_.read_json(DIR .. 'downsample_padding_0/config.json')
  for k, v in pairs(over or {}) do c[k] = v end
  return c
end
local function refuses(t, over, text)
  local ok, err = pcall(U.UNet2DConditionModel, O.remember(config(over), 'unet/config.json'))
  t.ok(not ok, text .. ': refused')
  err = tostring(err)
  t.ok(err:find(text, 1, true) ~= nil and err:find('unet/config.json', 1, true) ~= nil and not err:find('\n'),
    ('one line naming the file and %q, got %q'):format(text, err))
end

function T.refusals_name_key_value_and_file(t)
  local both = { down_block_types = { 'CrossAttnDownBlock2D', 'CrossAttnDownBlock2D' },
    up_block_types = { 'CrossAttnUpBlock2D', 'CrossAttnUpBlock2D' } }
  local function with(extra)
    local r = {}
    for k, v in pairs(both) do r[k] = v end
    for k, v in pairs(extra) do r[k] = v end
    return r
  end
  refuses(t, with { transformer_layers_per_block = { { 1 }, { 2 } } },
    'transformer_layers_per_block = [[1], [2]] lists counts per resnet: give reverse_transformer_layers_per_block too')
  refuses(t, with { only_cross_attention = { true, false, true } }, 'only_cross_attention = [true, false, true] has 3 entries for 2 levels')
  refuses(t, with { only_cross_attention = { 'yes', false } }, 'only_cross_attention = ["yes", false] is not valid')
  refuses(t, { mid_block_type = 'UNetMidBlock2DSimpleCrossAttn' }, 'mid_block_type = "UNetMidBlock2DSimpleCrossAttn" is not implemented by craft')
  refuses(t, { timestep_post_act = 'mish' }, 'timestep_post_act = "mish" is not implemented by craft')
  refuses(t, { downsample_padding = 2 }, 'downsample_padding = 2 is not implemented by craft (implemented: 0, 1)')
  refuses(t, { num_attention_heads = 4 }, 'num_attention_heads = 4 is not implemented by craft')
  refuses(t, { time_embedding_dim = 'big' }, 'time_embedding_dim = "big" is not valid (time_embedding_dim must be an integer >= 1)')
  refuses(t, { layers_per_block = craft.io.null }, 'layers_per_block = null is not valid')
  refuses(t, { dropout = 0.1 }, 'dropout = 0.1 is not implemented by craft')
  refuses(t, with { transformer_layers_per_block = { 1, 2 }, reverse_transformer_layers_per_block = { { 1, 1 }, { 1 } } },
    'reverse_transformer_layers_per_block[2] = [1] lists 1 transformer depth(s) for a block of 2 resnets')
  -- a config whose time_embedding_dim disagrees with the weights: the load names the keys
  local d = DIR .. 'time_embedding_dim_gelu_post_act'
  local cfg = io_.read_json(d .. '/config.json')
  cfg.time_embedding_dim = 20
  local u = U.UNet2DConditionModel(cfg)
  t.raises(function() u:load_state_dict(io_.load_safetensors(models.find_weights(d), { dtype = 'f32' })) end, 'time_embedding.linear_1.weight')
end

function T.unknown_keys_are_noted_once_per_file(t)
  local lines = {}
  local old = O.note_writer
  O.note_writer = function(l) lines[#lines + 1] = l end
  local ok, err = pcall(function()
    for _ = 1, 3 do
      U.UNet2DConditionModel(O.remember(config { shiny_new_option = 3, another = { 1 } }, 'x/unet/config.json'))
    end
  end)
  O.note_writer = old
  t.ok(ok, tostring(err))
  t.eq(#lines, 1, 'one note for three loads')
  t.eq(lines[1], 'craft: note: x/unet/config.json: 2 key(s) craft does not know, ignored: another, shiny_new_option', 'the note')
  -- inert keys and bookkeeping keys pass silently
  lines = {}
  O.note_writer = function(l) lines[#lines + 1] = l end
  ok, err = pcall(U.UNet2DConditionModel, config { upcast_attention = true, _use_default_values = { 'x' }, resnet_out_scale_factor = 2 })
  O.note_writer = old
  t.ok(ok and #lines == 0, 'inert and _-keys are silent: ' .. tostring(err))
end

function T.documentation_lists_every_key(t)
  local f = assert(io.open('docs/model_options.md'))
  local doc = f:read('*a')
  f:close()
  for name, opts in pairs(require('craft.models.options_doc').TABLES()) do
    local md = O.markdown(name, opts)
    t.ok(doc:find(md, 1, true) ~= nil, name .. ': docs/model_options.md holds the current table (regenerate it, see its top)')
  end
end

return T
