-- The current device in the Lua library (craft.device, docs/backends.md): tensor creation follows
-- it, scopes restore it, and models, encoders, optimisers, pipelines and trainers take
-- {device = ...}. The cl cases run on the first OpenCL device (PoCL here) and compare with the CPU.
local craft = require 'craft'
local devices = require 'craft.device'
local T = {}

local function have_cl() return devices.count() > 0 end

function T.default_is_cpu_and_scope_restores(t)
  t.eq(craft.default_device(), 'cpu')
  t.eq(craft.zeros({ 2 }).device, 'cpu')
  t.eq(devices.scope('cpu', function() return craft.ones({ 1 }).device end), 'cpu')
  t.raises(function() devices.scope('gpu:0', function() end) end, 'unknown device')
  t.raises(function() devices.scope('cpu', 5) end, 'device.scope: fn must be')
  t.eq(devices.launches('cpu'), 0)
  t.eq(devices.describe('cpu'), 'cpu')
  local c = devices.census({ a = craft.zeros({ 1 }), b = { craft.ones({ 2 }) } }, craft.nn.Linear(2, 3))
  t.eq(c.cpu, 4)
end

function T.creation_follows_the_current_device(t)
  if not have_cl() then return t.skip('no OpenCL device') end
  local made = devices.scope('cl:0', function()
    return { zeros = craft.zeros({ 2, 3 }), ones = craft.ones({ 3 }), full = craft.full({ 2 }, 2.5),
      empty = craft.empty({ 4 }), randn = craft.randn({ 5 }, { seed = 3 }),
      rand = craft.rand({ 5 }, { seed = 3 }),
      arange = craft.arange(0, 4), tensor = craft.tensor({ { 1, 2 }, { 3, 4 } }),
      ids = craft.tensor({ 1, 2 }, { dtype = 'i64' }),
      buf = craft.from_buffer(craft.ffi.new('float[2]', { 7, 8 }), { 2 }),
      here = craft.zeros({ 1 }, { device = 'cpu' }) }
  end)
  t.eq(craft.default_device(), 'cpu', 'the scope gave the device back')
  for k, x in pairs(made) do t.eq(x.device, k == 'here' and 'cpu' or 'cl:0', k) end
  t.allclose(made.full, { 2.5, 2.5 }, 0)
  t.allclose(made.tensor, { 1, 2, 3, 4 }, 0)
  t.allclose(made.ids, { 1, 2 }, 0)
  t.allclose(made.buf, { 7, 8 }, 0)
  t.allclose(made.arange, { 0, 1, 2, 3 }, 0)
  -- the same Philox stream on both devices (Box-Muller in float: a few ulps apart)
  t.allclose(made.randn, craft.randn({ 5 }, { seed = 3 }), 1e-5)
  t.allclose(made.rand, craft.rand({ 5 }, { seed = 3 }), 1e-6)
  -- a scope ends however its function does
  t.raises(function() devices.scope('cl:0', function() error('inner failure', 0) end) end, 'inner failure')
  t.eq(craft.default_device(), 'cpu')
  -- host memory only: a clear error, not a device pointer handed to C
  t.raises(function() return made.zeros:data_ptr() end, "is on cl:0, not in host memory")
  -- scalars made for a tensor's method go to the tensor's device
  t.eq(made.ones:eq(1).device, 'cl:0')
  t.eq(craft.ones({ 2 }):eq(1).device, 'cpu')
  local n0 = devices.launches('cl:0')
  local _ = (made.ones * 2):sum():item()
  t.ok(devices.launches('cl:0') > n0, 'kernels launched are counted')
  t.ok(devices.describe('cl:0'):match('^cl:0 .+') ~= nil, 'describe names the device')
end

function T.layers_bring_their_input(t)
  if not have_cl() then return t.skip('no OpenCL device') end
  craft.manual_seed(5)
  local cpu = craft.nn.Sequential(craft.nn.Conv2d(3, 4, 3, { padding = 1 }), craft.nn.GroupNorm(2, 4))
  local dev = craft.nn.Sequential(craft.nn.Conv2d(3, 4, 3, { padding = 1 }), craft.nn.GroupNorm(2, 4))
  dev:load_state_dict(cpu:state_dict())
  dev:to('cl:0')
  local x = craft.rand({ 2, 3, 8, 8 }, { seed = 1 })   -- host data into a cl:0 model
  local y = dev(x)
  t.eq(y.device, 'cl:0')
  t.close(y:to('cpu'), cpu(x), 1e-5, 'conv + group norm on cl:0 vs cpu')
end

function T.optimiser_state_lives_with_its_parameter(t)
  local lin = craft.nn.Linear(3, 2)
  t.raises(function() craft.optim.AdamW(lin, { device = 'cl:0' }) end,
    "options.device is cl:0 but parameter weight is on cpu")
  if not have_cl() then return t.skip('no OpenCL device') end
  lin:to('cl:0')
  local opt = craft.optim.AdamW(lin, { lr = 1e-2, device = 'cl:0' })
  lin(craft.ones({ 4, 3 })):sum():backward()
  opt:step()
  local c = devices.census(opt.state)
  t.eq(c['cl:0'], 4)
  t.eq(c.cpu, nil)
end

local SD = 'models/builtin/sd-tiny'

function T.pipeline_on_cl_matches_cpu(t)
  if not have_cl() then return t.skip('no OpenCL device') end
  local models = require 'craft.models'
  local cpu = models.load(SD, { quiet = true })
  local cl = models.load(SD, { quiet = true, device = 'cl:0' })
  t.eq(craft.default_device(), 'cpu')
  local c = devices.census(cl.unet, cl.vae, cl.text_encoder)
  t.ok(c['cl:0'] and c['cl:0'] > 0 and not c.cpu, 'every parameter and buffer on cl:0')
  t.eq(cl:device(), 'cl:0')
  local o = { prompt = { 'a chest x-ray' }, steps = 3, cfg = 3, seed = 11 }
  local a = craft.no_grad(function() return cpu:generate(o) end)
  local b = craft.no_grad(function() return cl:generate(o) end)
  t.eq(b.device, 'cl:0')
  t.close(b:to('cpu'), a, 1e-3, 'sd-tiny images, 3 DDIM steps, cl:0 vs cpu')
  t.raises(function() cpu:generate { prompt = 'x', steps = 1, device = 'cl:0' } end,
    "generate: device = cl:0, but the pipeline is on cpu")
  -- a trainer's recipe.device moves the pipeline and trains there
  local ld = require 'craft.train.lora_diffusion'
  local data = require('craft.phantoms').dataset { modality = 'cxr', n = 4, size = 32, seed = 1 }
  local r = ld.train(cpu, { preset = 'tiny', data = data, max_steps = 1, batch_size = 2, quiet = true,
    device = 'cl:0', templates = { 'a chest x-ray of {}' } })
  t.eq(cpu:device(), 'cl:0', 'the trainer moved the pipeline')
  t.eq(r.loss_devices['cl:0'], 1, 'the step computed on cl:0')
  t.eq(devices.census(r.optimizer.state).cpu, nil, 'no optimiser state on the host')
end

function T.encoders_compute_on_their_device(t)
  if not have_cl() then return t.skip('no OpenCL device') end
  local E = require 'craft.encoders'
  local cpu = E.resnet('models/builtin/resnet-tiny')
  local cl = E.resnet('models/builtin/resnet-tiny', { device = 'cl:0' })
  t.eq(devices.census(cl.model).cpu, nil)
  local x = craft.rand({ 2, 3, 32, 32 }, { seed = 4 })
  local a, b = craft.no_grad(cpu.encode, x), craft.no_grad(cl.encode, x)
  t.eq(b.device, 'cl:0')
  t.close(b:to('cpu'), a, 1e-4, 'resnet-tiny features, cl:0 vs cpu')
  t.raises(function() E.resnet('models/builtin/resnet-tiny', { device = 'vk:0' }) end, 'unknown device')
end

function T.experiment_device_moves_its_encoders(t)
  if not have_cl() then return t.skip('no OpenCL device') end
  local E = require 'craft.encoders'
  local cfg = { device = 'cl:0', reward = { vision = E.resnet('models/builtin/resnet-tiny') },
    judge = { vision = E.resnet('models/builtin/resnet-tiny') } }
  t.ok((devices.census(cfg.reward.vision.model).cpu or 0) > 0, 'the encoder starts on the cpu')
  local ok, err = pcall(require('craft.experiment')._use_device, cfg)
  local now = craft.default_device()
  devices.set_default('cpu')   -- the experiment's setting is process-wide: give it back
  t.ok(ok, tostring(err))
  t.eq(now, 'cl:0', 'cfg.device became the current device')
  t.eq(devices.census(cfg.reward.vision.model, cfg.judge.vision.model).cpu, nil, 'the encoders moved')
end

return T
