-- The fp16 compute precision from Lua (docs/backends.md): the setting's name, precision_info on
-- the CPU (fp32: no f16 kernels) and on cl:0 (f16), and end to end on cl:0: the built-in
-- sd-tiny UNet's forward and the tiny pipeline's sampling under fp16 against fp32, within the
-- stated tolerances. tests/c/test_cl_f16.c checks each op against bounds derived from f16's
-- unit roundoff on every OpenCL device.
local craft = require 'craft'
local devices = require 'craft.device'
local models = require 'craft.models'
local T = {}

local function have_cl() return devices.count() > 0 end
local function f16_calls() return craft.precision_info().f16_kernel_calls end

function T.the_setting_and_the_cpu(t)
  t.eq(craft.set_precision('fp16'), 'fp32')
  t.eq(craft.precision(), 'fp16')
  local i = craft.precision_info('cpu')
  t.eq(i.precision, 'fp16')
  t.eq(i.computes, 'fp32', 'the CPU has no f16 kernels')
  t.eq(i.f16_kernels, 0)
  t.ok(i.why:find('no fp16 kernels', 1, true) ~= nil, i.why)
  -- on the CPU the setting changes nothing: fp32, bit for bit, nothing counted
  craft.manual_seed(2)
  local x, w = craft.randn({ 5, 40 }), craft.randn({ 7, 40 })
  local c0 = f16_calls()
  local a = craft.no_grad(craft.F.linear, x, w)
  t.eq(f16_calls(), c0)
  t.eq(craft.set_precision('fp32'), 'fp16')
  t.eq((a - craft.F.linear(x, w)):abs():max():item(), 0)
  local ok, err = pcall(craft.set_precision, 'fp8')
  local want = "unknown precision 'fp8' (expected 'fp32', 'bf16', 'bf16-mixed' or 'fp16')"
  t.ok(not ok and tostring(err):find(want, 1, true) ~= nil,
    tostring(err))
end

function T.precision_info_on_cl(t)
  if not have_cl() then return t.skip('no OpenCL device') end
  local i = craft.with_precision('fp16', craft.precision_info, 'cl:0')
  t.eq(i.device, 'cl:0')
  t.eq(i.computes, 'fp16')
  t.eq(i.f16_kernels, 3)
  t.eq(i.bf16_kernels, 0)
  t.ok(type(i.cache.bytes) == 'number' and type(i.kernel_calls) == 'number')
  t.eq(craft.with_precision('bf16', craft.precision_info, 'cl:0').computes, 'fp32', 'no bf16 kernels on cl')
end

-- sd-tiny's UNet (the quickstart's generator) on cl:0: one forward under fp16 against fp32 on the
-- device. Stated tolerance: largest difference within 2e-3 of the largest output, mean within
-- 1e-3 of the mean output (measured on PoCL: 2.7e-4 and 2.4e-4).
function T.sd_tiny_unet_forward(t)
  if not have_cl() then return t.skip('no OpenCL device') end
  local pipe = models.load('models/builtin/sd-tiny', { quiet = true, device = 'cl:0' })
  local unet, cfg = pipe.unet, pipe.unet.config
  craft.manual_seed(3)
  local opts = { device = 'cl:0' }
  local x = craft.randn({ 2, cfg.in_channels, cfg.sample_size, cfg.sample_size }, opts)
  local ctx = craft.randn({ 2, 8, cfg.cross_attention_dim }, opts)
  local ts = craft.tensor({ 500, 20 }, opts)
  local function fwd() return craft.no_grad(function() return unet(x, ts, ctx) end) end
  local y32 = fwd()
  local c0 = f16_calls()
  local y16 = craft.with_precision('fp16', fwd)
  t.eq(y16.device, 'cl:0')
  local n = f16_calls() - c0
  t.ok(n > 0, 'f16 kernels ran: ' .. n)
  local d = (y16 - y32):abs()
  local dmax, dmean = d:max():item(), d:mean():item()
  local rmax, rmean = y32:abs():max():item(), y32:abs():mean():item()
  t.ok(dmax <= 2e-3 * rmax and dmean <= 1e-3 * rmean,
    ('fp16 UNet within tolerance: max %.3g (of %.3g), mean %.3g (of %.3g)'):format(dmax, rmax, dmean, rmean))
  t.ok(dmax > 1e-6, ('and differs from fp32 (%.3g)'):format(dmax))
  -- the weights were converted once: a second forward converts nothing new
  local m0 = craft.with_precision('fp16', craft.precision_info).cache.misses
  craft.with_precision('fp16', fwd)
  local function cache() return craft.with_precision('fp16', craft.precision_info).cache end
  t.eq(cache().misses, m0, 'weights served from the f16 cache')
  craft.set_precision('fp16')
  t.eq(craft.set_precision('fp32'), 'fp16')
  t.eq(cache().entries, 0, "set_precision('fp32') empties it")
end

-- The tiny pipeline (tests/lua/tiny_pipeline.lua) on cl:0, 4 DDIM steps with guidance, sampled
-- with generate{precision = 'fp16'} against fp32 from the same seed. Stated tolerance for images
-- in [0, 1]: largest difference 0.005, mean 0.0005 (measured on PoCL: 3.9e-4 and 7.4e-5).
function T.tiny_pipeline_sampled_in_fp16_on_cl(t)
  if not have_cl() then return t.skip('no OpenCL device') end
  local tiny = dofile('tests/lua/tiny_pipeline.lua')
  local pipe = tiny.pipe()
  pipe:to('cl:0')
  local o = { prompt = { 'a chest x-ray, clear lungs', 'pneumonia on a chest film' }, negative_prompt = '',
    steps = 4, cfg = 3, seed = 5, height = 16, width = 16 }
  local ref = craft.no_grad(function() return pipe:generate(o) end)
  o.precision = 'fp16'
  local c0 = f16_calls()
  local img = craft.no_grad(function() return pipe:generate(o) end)
  t.eq(craft.precision(), 'fp32', 'generate restores the setting')
  t.eq(img.device, 'cl:0')
  t.ok(f16_calls() > c0, 'f16 kernels ran')
  local d = (img - ref):abs()
  local dmax, dmean = d:max():item(), d:mean():item()
  t.ok(dmax <= 0.005 and dmean <= 0.0005,
    ('fp16 images within tolerance: max %.3g, mean %.3g'):format(dmax, dmean))
  t.ok(dmax > 1e-6, ('and differ from fp32 (%.3g)'):format(dmax))
end

-- --precision fp16 on the command line: computes fp16 on cl:0; on the CPU it says it computes fp32
function T.command_line(t)
  local f0 = io.popen('readlink /proc/$PPID/exe 2>/dev/null')   -- this craft binary (build or build-asan)
  local exe = f0:read('*l')
  f0:close()
  if not exe or exe == '' then return t.skip('cannot find the craft binary in /proc') end
  local function run(args)
    local f = io.popen(exe .. ' ' .. args ..
      [[ -e "local c = require 'craft'; local i = c.precision_info(); ]] ..
      [[io.write(i.precision, ' ', i.device, ' ', i.computes)" 2>&1]])
    local out = f:read('*a')
    f:close()
    return out
  end
  local cpu = run('--precision fp16')
  t.ok(cpu:find('fp16 cpu fp32', 1, true) ~= nil, cpu)
  t.ok(cpu:find('craft: note: precision fp16: cpu computes in fp32', 1, true) ~= nil, 'and says so: ' .. cpu)
  local f = io.popen(exe .. ' --precision fp8 -e "" 2>&1')
  local bad = f:read('*a')
  f:close()
  t.ok(bad:find('--precision needs fp32, bf16, bf16-mixed or fp16, not fp8', 1, true) ~= nil, bad)
  if not have_cl() then return t.skip('no OpenCL device') end
  local cl = run('--device cl:0 --precision fp16')
  t.ok(cl:find('fp16 cl:0 fp16', 1, true) ~= nil, cl)
  t.ok(cl:find('note', 1, true) == nil, 'no note where f16 kernels exist: ' .. cl)
end

return T
