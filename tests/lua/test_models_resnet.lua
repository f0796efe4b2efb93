-- ResNet (the out-of-family convolutional encoder) against transformers 4.38.2
-- (tests/fixtures/encoders/resnet*, made by tests/fixtures/make_encoder_fixtures.py): basic and
-- bottleneck layers, BatchNorm from running statistics (eval) and from batch statistics (train,
-- with the running statistics update); outputs within 1e-4, pixel gradients within 1e-3.
local craft = require 'craft'
local resnet = require 'craft.models.resnet'
local DIR = 'tests/fixtures/encoders/'
local T = {}


local function check(t, name)
  local ref = craft.io.load_safetensors(DIR .. name .. '/io.safetensors')
  local m = resnet.from_pretrained(DIR .. name)
  t.eq(m.training, false, 'from_pretrained gives eval mode')
  local px = ref.pixel_values:clone():requires_grad_(true)
  local out = m(px)
  t.close(out.last_hidden_state, ref.last_hidden_state, 1e-4, name .. ' last_hidden_state')
  t.close(out.pooler_output, ref.pooler_output, 1e-4, name .. ' pooler_output')
  t.eq(table.concat(out.features.shape, 'x'), out.pooler_output:size(1) .. 'x' .. out.pooler_output:size(2))
  ;(out.pooler_output * ref.grad_weights):sum():backward()
  t.close(px.grad, ref.pixel_grad, 1e-3, name .. ' pixel gradient')
  -- train mode: batch statistics, and the running statistics move as PyTorch moves them
  m:train()
  local tr = craft.no_grad(function() return m(ref.pixel_values) end)
  t.close(tr.last_hidden_state, ref.train_last_hidden_state, 1e-4, name .. ' train-mode output')
  local bn = m:child('embedder'):child('embedder'):child('normalization')
  t.close(bn._buffers.running_mean, ref.train_running_mean, 1e-5, name .. ' running_mean after a step')
  t.close(bn._buffers.running_var, ref.train_running_var, 1e-5, name .. ' running_var after a step')
  t.eq(bn._buffers.num_batches_tracked:item(), 11, 'num_batches_tracked')
end

function T.parameters_and_buffers_are_named_by_checkpoint_keys(t)
  local m = resnet.from_config(craft.io.read_json(DIR .. 'resnet/config.json'))
  local sd = m:state_dict()
  for _, k in ipairs { 'embedder.embedder.convolution.weight', 'embedder.embedder.normalization.weight',
    'embedder.embedder.normalization.running_var', 'embedder.embedder.normalization.num_batches_tracked',
    'encoder.stages.0.layers.0.layer.0.convolution.weight', 'encoder.stages.0.layers.0.layer.1.normalization.bias',
    'encoder.stages.1.layers.0.shortcut.convolution.weight', 'encoder.stages.1.layers.1.layer.1.normalization.running_mean' } do
    t.ok(sd[k] ~= nil, 'missing key ' .. k)
  end
  t.eq(sd['encoder.stages.0.layers.0.shortcut.convolution.weight'], nil, 'no shortcut when shapes agree')
  local n = 0
  for _ in pairs(sd) do n = n + 1 end
  t.eq(n, #craft.io.inspect(DIR .. 'resnet/model.safetensors'), 'state dict size vs checkpoint')
end

function T.basic_layers_match_reference(t) check(t, 'resnet') end
function T.bottleneck_layers_match_reference(t) check(t, 'resnet_bottleneck') end

function T.max_pool_takes_window_maxima(t)
  local x = craft.tensor({ { { { 1, 5, 2, 0 }, { 3, -1, 4, 8 }, { 0, 2, 9, 1 }, { 7, 6, 3, 2 } } } })
  local y = resnet.max_pool2d(x, 3, 2, 1)
  t.eq(table.concat(y.shape, 'x'), '1x1x2x2')
  t.allclose(y, { 5, 8, 7, 9 }, 0)
  local bn = resnet.BatchNorm2d(2)
  bn:eval()
  bn._buffers.running_mean:copy_(craft.tensor({ 1, -1 }))
  bn._buffers.running_var:copy_(craft.tensor({ 4, 0.25 }))
  local z = bn(craft.ones({ 1, 2, 1, 1 }))
  t.allclose(z, { 0, 2 / math.sqrt(0.25 + 1e-5) }, 1e-6, 'eval BatchNorm is the running-statistics affine map')
end

function T.errors_name_the_problem(t)
  local m = resnet.from_pretrained(DIR .. 'resnet')
  t.raises(function() m(craft.rand({ 1, 1, 32, 32 })) end, '1 input channels, the model wants 3')
  t.raises(function() resnet.ResNetModel({ layer_type = 'preact' }) end, 'layer_type = "preact" is not implemented by craft')
  t.raises(function() resnet.ResNetModel({ hidden_act = 'mish' }) end, 'hidden_act = "mish" is not implemented by craft')
end

return T
