-- The compute precision from Lua: craft.set_precision / with_precision / precision_info, the
-- --precision flag, generate{precision}, and the tiny pipeline sampled in bf16 against fp32.
-- (tests/c/test_bf16.c checks each op against bounds derived from bf16's unit roundoff.)
local craft = require 'craft'
local T = {}

local function native() return craft.precision_info('cpu').bf16_kernels > 0 end
local function calls() return craft.precision_info().kernel_calls end

function T.setting_and_scope(t)
  t.eq(craft.precision(), 'fp32')
  t.eq(craft.set_precision('bf16'), 'fp32', 'set_precision returns the previous setting')
  t.eq(craft.precision(), 'bf16')
  t.eq(craft.set_precision('fp32'), 'bf16')
  -- with_precision restores the setting, also when fn fails
  t.eq(craft.with_precision('bf16', craft.precision), 'bf16')
  t.eq(craft.precision(), 'fp32')
  t.raises(function() craft.with_precision('bf16', function() error('boom', 0) end) end, 'boom')
  t.eq(craft.precision(), 'fp32', 'restored after an error')
  t.eq(craft.with_precision(nil, function(a) return a + 1 end, 1), 2, 'nil: fn as it is')
end

function T.unknown_names_are_one_clear_error_at_the_callers_line(t)
  local here = debug.getinfo(1, 'S').short_src
  for _, f in ipairs {
    function() craft.set_precision('fp16x') end,
    function() craft.with_precision('half', function() end) end,
    function() craft.set_precision(3) end,
  } do
    local ok, err = pcall(f)
    t.ok(not ok, 'refused')
    err = tostring(err)
    t.ok(err:find(here, 1, true) == 1, 'at the caller: ' .. err)
    t.ok(err:find('precision', 1, true) ~= nil, 'names the precision: ' .. err)
  end
  local ok, err = pcall(craft.set_precision, 'fp16x')
  t.ok(not ok and tostring(err):find("unknown precision 'fp16x' (expected 'fp32', 'bf16', 'bf16-mixed' or 'fp16')",
    1, true) ~= nil,
    tostring(err))
  t.eq(craft.precision(), 'fp32')
end

function T.precision_info_says_what_the_cpu_does(t)
  local i = craft.precision_info()
  t.eq(i.device, 'cpu')
  t.eq(i.precision, 'fp32')
  t.eq(i.computes, 'fp32')
  t.ok(type(i.why) == 'string' and #i.why > 0)
  t.ok(type(i.cache.bytes) == 'number' and type(i.kernel_calls) == 'number')
  local j = craft.with_precision('bf16', craft.precision_info)
  t.eq(j.computes, native() and 'bf16' or 'fp32')
  t.eq(j.bf16_kernels, native() and 4 or 0)
  t.eq(craft.with_precision('bf16-mixed', craft.precision_info).computes, native() and 'bf16' or 'fp32')
end

-- the weight caches' cap: set, read back through precision_info, restored; bad values refused
function T.precision_cache_cap(t)
  local C = require('craft.core').C
  local prev_cl = tonumber(C.craft_cl_f16_cache_cap_mb(-1))
  local prev = craft.set_precision_cache_mb(0)
  t.eq(tonumber(C.craft_cl_f16_cache_cap_mb(-1)), 0, 'both caches capped')
  t.ok(type(prev) == 'number' and prev >= 0)
  t.eq(craft.precision_info().cache.cap_mb, 0)
  craft.manual_seed(1)
  local x, w = craft.randn({ 4, 32 }), craft.randn({ 16, 32 })
  local y = craft.with_precision('bf16', function() return craft.F.linear(x, w) end)
  t.eq(craft.with_precision('bf16', craft.precision_info).cache.entries, 0)
  t.eq(craft.set_precision_cache_mb(prev), 0)
  t.eq(craft.precision_info().cache.cap_mb, prev)
  C.craft_cl_f16_cache_cap_mb(prev_cl) -- each cache back at its own cap
  local y2 = craft.with_precision('bf16', function() return craft.F.linear(x, w) end)
  t.allclose(y, y2, 0, 'the same result with and without the cache')
  for _, bad in ipairs({ -1, 1.5, 'x', math.huge, 2 ^ 53, 0 / 0 }) do
    local ok, err = pcall(craft.set_precision_cache_mb, bad)
    t.ok(not ok and tostring(err):find('set_precision_cache_mb', 1, true) ~= nil, tostring(err))
  end
end

-- a checkpointed segment's forward (run with grad off) stays fp32 when its output joins a graph
function T.graph_forwards_stay_fp32(t)
  craft.manual_seed(3)
  local x = craft.randn({ 8, 64 }):requires_grad_(true)
  local w = craft.randn({ 32, 64 })
  local function seg(a) return craft.F.linear(a, w):tanh() end
  local ref = craft.checkpoint(seg, x)
  local c0 = calls()
  local got = craft.with_precision('bf16', craft.checkpoint, seg, x)
  t.eq((got - ref):abs():max():item(), 0, 'checkpoint forward bit-identical to fp32')
  t.eq(calls(), c0, 'no bf16 kernel ran')
  craft.with_precision('bf16', function() got:sum():backward() end)
  t.eq(calls(), c0, 'nor in the recomputation and backward')
  -- the same segment without a graph does use bf16 (where the CPU has it)
  local ng = craft.with_precision('bf16', craft.no_grad, seg, x)
  if native() then
    t.ok(calls() > c0, 'no-grad linear ran in bf16')
    t.ok((ng - ref):abs():max():item() > 1e-6, 'and differs from fp32 by more than fp32 rounding')
  else
    t.eq((ng - ref):abs():max():item(), 0)
  end
end

-- bf16-mixed: a checkpointed segment's forward and its recomputation compute in bf16, and the
-- recomputation follows the forward's precision even when backward runs under another setting
function T.bf16_mixed_checkpoint_recomputes_in_bf16(t)
  craft.manual_seed(4)
  local x = craft.randn({ 16, 64 })
  local w = craft.randn({ 48, 64 }) * 0.2
  local function seg(a) return craft.F.linear(a, w):tanh() end
  local function grad(prec)
    local xx = x:clone():requires_grad_(true)
    local y = craft.with_precision(prec, craft.checkpoint, seg, xx)
    local c0 = calls()
    y:sum():backward()   -- under fp32: the checkpoint remembers its forward's precision
    return xx.grad, y, calls() - c0
  end
  local g32, y32 = grad('fp32')
  local c0 = calls()
  local g16, y16, during = grad('bf16-mixed')
  if native() then
    t.ok(calls() - during > c0, 'the forward ran in bf16')
    t.eq(during, 2, 'the recomputation and its backward ran in bf16 (forward and input gradient)')
    local ey = (y16 - y32):abs():max():item()
    local eg = (g16 - g32):abs():max():item() / g32:abs():max():item()
    t.ok(ey > 1e-6 and ey < 0.02, ('outputs within bf16 rounding of fp32: %.3g'):format(ey))
    t.ok(eg > 1e-6 and eg < 0.02, ('gradient within bf16 rounding of fp32: %.3g'):format(eg))
  else
    t.eq(calls(), c0)
    t.eq((g16 - g32):abs():max():item(), 0, 'fp32 where the CPU has no bf16')
  end
end

-- The tiny pipeline (tests/lua/tiny_pipeline.lua), 4 DDIM steps with guidance: bf16 sampling
-- against fp32 from the same seed. The stated tolerance for images in [0, 1]: largest
-- difference 0.02, mean 0.002 (measured on this Zen 5: 0.0048 and 0.00076).
function T.tiny_pipeline_sampled_in_bf16(t)
  local tiny = dofile('tests/lua/tiny_pipeline.lua')
  local pipe = tiny.pipe()
  local o = { prompt = { 'a chest x-ray, clear lungs', 'pneumonia on a chest film' }, negative_prompt = '',
    steps = 4, cfg = 3, seed = 5, height = 16, width = 16 }
  local ref = craft.no_grad(function() return pipe:generate(o) end)
  o.precision = 'bf16'
  local c0 = calls()
  local img = craft.no_grad(function() return pipe:generate(o) end)
  t.eq(craft.precision(), 'fp32', 'generate restores the setting')
  local d = (img - ref):abs()
  local dmax, dmean = d:max():item(), d:mean():item()
  t.ok(dmax <= 0.02 and dmean <= 0.002,
    ('bf16 images within tolerance: max %.3g, mean %.3g'):format(dmax, dmean))
  if native() then
    t.ok(calls() > c0, 'bf16 kernels ran')
    t.ok(dmax > 1e-5, ('and the images differ from fp32 (%.3g)'):format(dmax))
  else
    t.eq(dmax, 0, 'fp32 where the CPU has no bf16')
  end
  t.raises(function() pipe:generate { prompt = 'x', steps = 1, precision = 'int8' } end,
    "unknown precision 'int8'")
  -- an experiment's sampling precision is checked before anything runs
  t.raises(function() require('craft.experiment').run { generate = { precision = 'fp8' } } end,
    "experiment: generate: unknown precision 'fp8'")
end

-- generate{precision = 'bf16-mixed'} with a gradient window: the window and the decode compute in
-- bf16 too (under 'bf16' they stay fp32), and the gradient to the prompt embeddings stays within
-- the stated tolerance of fp32's: 5e-2 relative to the largest element (measured on this Zen 5:
-- 7.6e-3)
function T.tiny_pipeline_gradient_window_in_bf16_mixed(t)
  local tiny = dofile('tests/lua/tiny_pipeline.lua')
  local pipe = tiny.pipe()
  local e0 = craft.no_grad(function() return pipe:encode_prompt({ 'a chest x-ray, clear lungs' }) end)
  local n0 = craft.no_grad(function() return pipe:encode_prompt({ '' }) end)
  local function grad(prec)
    local e = e0:clone():requires_grad_(true)
    local c0 = calls()
    local img = pipe:generate { prompt_embeds = e, negative_prompt_embeds = n0, steps = 3, cfg = 3, seed = 5,
      height = 16, width = 16, grad_steps = 2, precision = prec }
    local c1 = calls()
    ;(img * img):mean():backward()
    return e.grad, c1 - c0, calls() - c1
  end
  local g32 = grad('fp32')
  local gb, fb, bb = grad('bf16')
  local gm, fm, bm = grad('bf16-mixed')
  t.eq(bb, 0, "'bf16': the backward is fp32")
  t.eq((gb - g32):abs():max():item() > 0 or not native(), true)
  local rel = (gm - g32):abs():max():item() / g32:abs():max():item()
  if native() then
    t.ok(fm > fb, ('bf16-mixed runs more bf16 kernels forward (%d) than bf16 (%d)'):format(fm, fb))
    t.ok(bm > 0, 'and some in backward: ' .. bm)
    t.ok(rel > 1e-6 and rel < 5e-2, ('gradient within tolerance of fp32: %.3g'):format(rel))
  else
    t.eq(rel, 0)
  end
end

-- --precision on the command line, and a CPU without AVX512-BF16 (oneDNN capped at avx512_core):
-- the bf16 setting computes fp32 and says so
function T.command_line_and_a_cpu_without_bf16(t)
  local f0 = io.popen('readlink /proc/$PPID/exe 2>/dev/null')   -- this craft binary (build or build-asan)
  local exe = f0:read('*l')
  f0:close()
  if not exe or exe == '' then return t.skip('cannot find the craft binary in /proc') end
  local code = [[local c = require 'craft'; local i = c.precision_info(); ]] ..
    [[local x, w = c.randn({4, 40}), c.randn({8, 40}); local a = c.F.linear(x, w); ]] ..
    [[local b = c.with_precision('fp32', c.F.linear, x, w); ]] ..
    [[io.write(i.precision, ' ', i.computes, ' ', (a - b):abs():max():item() == 0 and 'same' or 'differs')]]
  local function run(env)
    local f = io.popen(env .. ' ' .. exe .. " --precision bf16 -e \"" .. code .. "\" 2>&1")
    local out = f:read('*a')
    f:close()
    return out
  end
  local capped = run('ONEDNN_MAX_CPU_ISA=AVX512_CORE')
  t.ok(capped:find('bf16 fp32 same', 1, true) ~= nil, 'capped CPU computes fp32: ' .. capped)
  t.ok(capped:find('craft: note: precision bf16: cpu computes in fp32', 1, true) ~= nil,
    'and says so: ' .. capped)
  if native() then
    local out = run('')
    t.ok(out:find('bf16 bf16 differs', 1, true) ~= nil, '--precision bf16 computes bf16: ' .. out)
  end
  local f = io.popen(exe .. ' --precision half -e "" 2>&1')
  local bad = f:read('*a')
  f:close()
  t.ok(bad:find('--precision needs fp32, bf16, bf16-mixed or fp16, not half', 1, true) ~= nil, bad)
  f = io.popen(exe .. " --precision bf16-mixed -e \"io.write(require('craft').precision())\" 2>/dev/null")
  local mixed = f:read('*a')
  f:close()
  t.eq(mixed, 'bf16-mixed', '--precision bf16-mixed sets it')
end

-- A CPU whose bf16 multiplies slower than its fp32 (CRAFT_BF16_SPEEDUP stands in for the
-- measurement): set_precision says so in one line, precision_info gives the rate; at 2x, or under
-- fp32, no line.
function T.a_cpu_whose_bf16_is_slow(t)
  if not native() then return t.skip('no native bf16 here: the rate is not measured') end
  local f0 = io.popen('readlink /proc/$PPID/exe 2>/dev/null')
  local exe = f0:read('*l')
  f0:close()
  if not exe or exe == '' then return t.skip('cannot find the craft binary in /proc') end
  local code = [[local c = require 'craft'; c.set_precision('bf16'); c.set_precision('bf16-mixed'); ]] ..
    [[io.write('speedup ', c.precision_info().bf16_speedup)]]
  local function run(env, prec)
    local f = io.popen(env .. ' ' .. exe .. ' -e "' .. code:gsub('bf16%-mixed', prec) .. '" 2>&1')
    local out = f:read('*a')
    f:close()
    return out
  end
  local slow = run('CRAFT_BF16_SPEEDUP=0.5', 'bf16-mixed')
  t.ok(slow:find('craft: note: precision bf16: this CPU multiplies in bf16 at 0.50x its fp32 rate', 1, true),
    'the note under bf16: ' .. slow)
  t.ok(slow:find('craft: note: precision bf16-mixed: this CPU', 1, true), 'and under bf16-mixed: ' .. slow)
  t.ok(slow:find('speedup 0.5', 1, true), 'precision_info gives the rate: ' .. slow)
  local fast = run('CRAFT_BF16_SPEEDUP=2', 'bf16-mixed')
  t.ok(not fast:find('craft: note:', 1, true) and fast:find('speedup 2', 1, true), 'no note at 2x: ' .. fast)
  local fp32 = run('CRAFT_BF16_SPEEDUP=0.5', 'fp32')
  t.eq(select(2, fp32:gsub('craft: note:', '')), 1, 'one note (bf16), none for fp32: ' .. fp32)
  local s = craft.precision_info('cpu').bf16_speedup
  t.ok(type(s) == 'number' and s > 0.25 and s < 4, 'measured here: ' .. tostring(s))
  -- craft devices says it on the cpu line, and why a capped CPU has no bf16
  local function devices(env)
    local f = io.popen(env .. ' ' .. exe .. ' devices 2>&1')
    local out = f:read('*a')
    f:close()
    return out
  end
  local d = devices('CRAFT_BF16_SPEEDUP=0.5')
  t.ok(d:find('bf16 yes: multiplies and adds at 0.50x its fp32 rate, so fp32 is faster here', 1, true), d)
  t.ok(devices('CRAFT_BF16_SPEEDUP=2'):find('at 2.00x its fp32 rate, so bf16 pays here', 1, true))
  d = devices('ONEDNN_MAX_CPU_ISA=AVX512_CORE')
  t.ok(d:find('bf16 no (no avx512_core_bf16 on this CPU', 1, true), d)
end

return T
