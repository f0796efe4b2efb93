-- DINOv2 against transformers 4.38.2 (tests/fixtures/encoders/dinov2*, made by
-- tests/fixtures/make_encoder_fixtures.py): at the native 4x4 patch grid and at three other
-- sizes (bicubic resampling of the position embeddings), GELU and SwiGLU MLPs; outputs within
-- 1e-4 relative error, pixel gradients within 1e-3.
local craft = require 'craft'
local dinov2 = require 'craft.models.dinov2'
local DIR = 'tests/fixtures/encoders/'
local T = {}


-- forward and pixel gradient of sum(last_hidden_state * w) at one size of one fixture
local function check(t, m, ref, sfx, what)
  local px = ref['pixel_values' .. sfx]:clone():requires_grad_(true)
  local out = m(px)
  t.close(out.last_hidden_state, ref['last_hidden_state' .. sfx], 1e-4, what .. ' last_hidden_state')
  t.close(out.pooler_output, ref['pooler_output' .. sfx], 1e-4, what .. ' pooler_output')
  t.eq(out.patch_tokens:size(2), out.last_hidden_state:size(2) - 1, what .. ' patch tokens')
  ;(out.last_hidden_state * ref['grad_weights' .. sfx]):sum():backward()
  t.close(px.grad, ref['pixel_grad' .. sfx], 1e-3, what .. ' pixel gradient')
end

function T.parameters_are_named_by_checkpoint_keys(t)
  local m = dinov2.from_config(craft.io.read_json(DIR .. 'dinov2/config.json'))
  local names = {}
  for _, np in ipairs(m:named_parameters()) do names[np[1]] = np[2] end
  for _, k in ipairs { 'embeddings.cls_token', 'embeddings.mask_token', 'embeddings.position_embeddings',
    'embeddings.patch_embeddings.projection.weight', 'embeddings.patch_embeddings.projection.bias',
    'encoder.layer.0.norm1.weight', 'encoder.layer.0.attention.attention.query.weight',
    'encoder.layer.1.attention.attention.value.bias', 'encoder.layer.0.attention.output.dense.weight',
    'encoder.layer.0.layer_scale1.lambda1', 'encoder.layer.1.layer_scale2.lambda1', 'encoder.layer.0.mlp.fc1.weight',
    'encoder.layer.1.mlp.fc2.bias', 'layernorm.weight' } do
    t.ok(names[k] ~= nil, 'missing parameter ' .. k)
  end
  t.eq(table.concat(names['embeddings.position_embeddings'].shape, 'x'), '1x17x32')
  local sw = dinov2.from_config(craft.io.read_json(DIR .. 'dinov2_swiglu/config.json'))
  local sn = {}
  for _, np in ipairs(sw:named_parameters()) do sn[np[1]] = np[2] end
  t.eq(table.concat(sn['encoder.layer.0.mlp.weights_in.weight'].shape, 'x'), '176x32', 'SwiGLU width (128 * 2/3, to 8s)')
end

function T.native_grid_matches_reference(t)
  check(t, dinov2.from_pretrained(DIR .. 'dinov2'), craft.io.load_safetensors(DIR .. 'dinov2/io.safetensors'), '', '28x28')
end

function T.other_sizes_resample_position_embeddings(t)
  local m = dinov2.from_pretrained(DIR .. 'dinov2')
  local ref = craft.io.load_safetensors(DIR .. 'dinov2/io.safetensors')
  check(t, m, ref, '_42x35', '42x35 (6x5 grid)')
  check(t, m, ref, '_21x21', '21x21 (3x3 grid)')
  check(t, m, ref, '_30x29', '30x29 (4x4 grid, not square)')
end

function T.swiglu_matches_reference(t)
  check(t, dinov2.from_pretrained(DIR .. 'dinov2_swiglu'), craft.io.load_safetensors(DIR .. 'dinov2_swiglu/io.safetensors'), '', 'SwiGLU')
end

function T.bicubic_matrix_rows(t)
  -- scale 1: the identity; upsampling rows are partitions of unity with PyTorch's a = -0.75 taps
  local id = dinov2.bicubic_matrix(4, 4, 1)
  t.allclose(id, { 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1 }, 1e-12)
  local up = dinov2.bicubic_matrix(3, 5, 5 / 3)
  local sums = up:sum(2):flat()
  for i = 1, 5 do t.near(sums[i], 1, 1e-6, 'row sum') end
  -- output 0 samples 0.5 * 3/5 - 0.5 = -0.2: floor -1, t = 0.8, taps -2..1 clamped to 0, 0, 0, 1;
  -- input 1 gets the last tap, ((a x - 5a) x + 8a) x - 4a at x = 2 - t = 1.2, a = -0.75: -0.096
  t.near(up:get(1, 2), -0.096, 1e-6, 'tap weight')
end

function T.errors_name_the_problem(t)
  local m = dinov2.from_pretrained(DIR .. 'dinov2')
  t.raises(function() m(craft.rand({ 3, 28, 28 })) end, 'pixel_values must be a [B, C, H, W] tensor')
  t.raises(function() m(craft.rand({ 1, 1, 28, 28 })) end, '1 input channels, the model wants 3')
  t.raises(function() m(craft.rand({ 1, 3, 5, 28 })) end, 'smaller than one 7x7 patch')
  t.raises(function() dinov2.Dinov2Model({ hidden_size = 30, num_attention_heads = 4 }) end, 'num_attention_heads = 4 does not divide hidden_size 30')
end

return T
