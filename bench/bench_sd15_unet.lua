-- bench/bench_sd15_unet.lua: the Stable Diffusion 1.5 UNet (860 M parameters, random weights),
-- timed in craft, with the diffusers peer (bench/peer_sd15_unet.py) run in the same invocation:
-- a no-grad forward at a 64x64 latent (512 px images) and a forward + backward with gradient
-- checkpointing per block (what reward finetuning does), with peak memory. Part of `make bench`
-- (bench/run.sh runs it with batch 1, a 64x64 latent, one timed step: a few minutes on 2 cores).
--   craft bench/bench_sd15_unet.lua [--batch 1] [--size 64] [--steps 1] [--warmup 0]
--                                   [--no-backward] [--no-checkpoint] [--no-peer]
--                                   [--device cl:0] [--tiny] [--json out.json]
--                                   [--precision bf16|bf16-mixed]
-- --device runs craft's model on that device (weights moved with :to, inputs made there; each timed
-- step ends with a device synchronize). --tiny swaps the config for a small one with the same block
-- types (bench/gpu.sh --dry-run: seconds on PoCL). --json writes craft's figures (and the peer's,
-- when it ran) for bench/gpu.sh. --precision bf16 adds a row: the same no-grad forward under
-- craft.set_precision('bf16') (its first call, which converts the weights to bf16, and the median of
-- the timed steps), with the largest and mean difference of its output from the fp32 forward's;
-- --precision bf16-mixed adds the forward + backward under mixed precision too (after one warm-up
-- call), with its latent gradient's difference from fp32's. With either, the peer also times its
-- rows under torch.autocast(bfloat16). The peer runs on the CPU unless CRAFT_PEER_DEVICE names a
-- torch device (cuda).
-- The peer needs a python with torch and diffusers: bench/common.lua picks it (CRAFT_PEER_PYTHON, else
-- the venv `sh tools/setup.sh --bench` makes: .venv-bench, PyPI's torch 2.x + diffusers 0.27.2).
-- Without it the craft rows are printed and one "peer skipped: why" line; that is not a failure.
local craft = require 'craft'
local U = require 'craft.models.unet'

local args = dofile('bench/common.lua').args({ batch = 1, size = 64, steps = 1, warmup = 0 },
  { 'no-peer', 'no-backward', 'no-checkpoint', 'tiny' })

-- runwayml/stable-diffusion-v1-5 unet/config.json (peer_sd15_unet.py builds the same)
local CONFIG = { sample_size = 64, in_channels = 4, out_channels = 4, block_out_channels = { 320, 640, 1280, 1280 },
  layers_per_block = 2, attention_head_dim = 8, cross_attention_dim = 768, norm_num_groups = 32, norm_eps = 1e-5,
  flip_sin_to_cos = true, freq_shift = 0, use_linear_projection = false,
  down_block_types = { 'CrossAttnDownBlock2D', 'CrossAttnDownBlock2D', 'CrossAttnDownBlock2D', 'DownBlock2D' },
  up_block_types = { 'UpBlock2D', 'CrossAttnUpBlock2D', 'CrossAttnUpBlock2D', 'CrossAttnUpBlock2D' } }
if args.tiny then   -- the same block types at a toy width (peer_sd15_unet.py --tiny builds the same)
  CONFIG.block_out_channels = { 32, 32, 64, 64 }
  CONFIG.layers_per_block = 1
  CONFIG.cross_attention_dim = 32
end
local CTX_LEN, CTX_DIM = 77, CONFIG.cross_attention_dim
local device = args.device or 'cpu'
local dcraft = require 'craft.device'
local function sync() if device ~= 'cpu' then dcraft.synchronize(device) end end

local ffi = require 'ffi'
pcall(ffi.cdef, 'typedef struct { long tv_sec; long tv_nsec; } bench_timespec; int clock_gettime(int clk, bench_timespec *tp);')
local tspec = ffi.new('bench_timespec')
local function now()
  ffi.C.clock_gettime(1, tspec)
  return tonumber(tspec.tv_sec) + tonumber(tspec.tv_nsec) * 1e-9
end
local function median_time(fn, n, warmup)
  for _ = 1, warmup do fn(); sync() end
  local ts = {}
  for k = 1, n do local t0 = now(); fn(); sync(); ts[k] = now() - t0 end
  table.sort(ts)
  return ts[math.floor((n + 1) / 2)] * 1e3
end

local shell_quote = dofile('bench/common.lua').shell_quote

-- peer_run() -> the peer's JSON table, or nil and why it was skipped
local function peer_run()
  if args.no_peer then return nil, '--no-peer given' end
  local py, why = dofile('bench/common.lua').peer_ready({ 'torch', 'diffusers' })
  if not py then return nil, why end
  local pdev = os.getenv('CRAFT_PEER_DEVICE') or ''
  return dofile('bench/common.lua').run_peer(py, 'bench/peer_sd15_unet.py',
    ('--batch %d --size %d --steps %d --warmup %d --threads %d%s%s%s%s%s')
    :format(args.batch, args.size, args.steps, args.warmup, craft.num_threads(),
      args.no_backward and ' --no-backward' or '', args.no_checkpoint and ' --no-checkpoint' or '',
      args.tiny and ' --tiny' or '', pdev ~= '' and (' --device ' .. shell_quote(pdev)) or '',
      (args.precision and args.precision ~= 'fp32') and ' --autocast' or ''))
end

local function row(what, mine, theirs)
  if theirs then print(('  %-34s craft %9.1f ms   torch %9.1f ms   ratio %.2fx'):format(what, mine, theirs, theirs / mine))
  else print(('  %-34s craft %9.1f ms'):format(what, mine)) end
end
local function mem_row(what, mine, weights, theirs)
  local s = ('  %-34s craft %6.0f MiB (weights %.0f + pool peak %.0f)'):format(what, weights + mine, weights, mine)
  if theirs then s = s .. ('   torch %6.0f MiB (process peak RSS)'):format(theirs) end
  print(s)
end

craft.manual_seed(0)
local t0 = now()
local unet = U.UNet2DConditionModel(CONFIG)
local B, S = args.batch, args.size
if device ~= 'cpu' then unet:to(device) end
print(('SD 1.5 UNet%s (%.0f M params, built in %.1f s), batch %d, latent %dx%d, %d threads, device %s'):format(
  args.tiny and ' (--tiny config)' or '', unet:num_parameters() / 1e6, now() - t0, B, S, S, craft.num_threads(), device))
local x = craft.randn({ B, 4, S, S }):to(device)
local ctx = craft.randn({ B, CTX_LEN, CTX_DIM }):to(device)
local t = craft.full({ B }, 500):to(device)
sync()
local base = craft.memory(true).in_use
local y32
local fwd = median_time(function() y32 = craft.no_grad(function() return unet(x, t, ctx) end) end, args.steps, args.warmup)
local fwd_mem = (craft.memory(true).peak - base) / 2 ^ 20
local prec_row
if args.precision and args.precision ~= 'fp32' then
  local y16
  local function f16() y16 = craft.with_precision(args.precision, craft.no_grad, function() return unet(x, t, ctx) end) end
  local c0 = craft.precision_info(device).kernel_calls
  local t1 = now(); f16(); sync(); local first = (now() - t1) * 1e3
  local calls = craft.precision_info(device).kernel_calls - c0
  local med = median_time(f16, args.steps, 0)
  local d = (y16 - y32):abs()
  local scale = y32:abs():max():item()
  local mem16 = (craft.memory(true).peak - base) / 2 ^ 20
  prec_row = { ms = med, first_ms = first, max_abs = d:max():item(), mean_abs = d:mean():item(),
    max_rel = d:max():item() / scale, ref_max = scale, calls = calls, mem = mem16,
    computes = craft.precision_info(device).bf16_kernels > 0 and 'bf16' or 'fp32' }
end
local fb, fb_mem, mixed_row
if not args.no_backward then
  unet.gradient_checkpointing = not args.no_checkpoint
  unet:requires_grad_(false)   -- frozen base (LoRA-style); the gradient flows to the latents
  craft.clear_precision_cache()   -- the bf16 weights of the row above are not the fp32 step's
  craft.memory(true)
  local g32
  fb = median_time(function()
    local xx = x:clone():requires_grad_(true)
    unet(xx, t, ctx):mean():backward()
    g32 = xx.grad
  end, args.steps, args.warmup)
  fb_mem = (craft.memory().peak - base) / 2 ^ 20
  if args.precision == 'bf16-mixed' then   -- mixed-precision training: bf16 forward and input gradients
    local g16
    local function step()
      craft.with_precision('bf16-mixed', function()
        local xx = x:clone():requires_grad_(true)
        unet(xx, t, ctx):mean():backward()
        g16 = xx.grad
      end)
    end
    craft.memory(true)
    local c0 = craft.precision_info(device).kernel_calls
    local t1 = now(); step(); sync(); local first = (now() - t1) * 1e3
    local calls = craft.precision_info(device).kernel_calls - c0
    local med = median_time(step, args.steps, 0)
    local scale = g32:abs():max():item()
    mixed_row = { ms = med, first_ms = first, calls = calls,
      max_rel = (g16 - g32):abs():max():item() / scale,
      rms_rel = ((g16 - g32) ^ 2):mean():item() ^ 0.5 / scale,
      mem = (craft.memory().peak - base) / 2 ^ 20 }
  end
end
local weights = base / 2 ^ 20
local unet_params = unet:num_parameters()
-- the peer runs after craft's timings, with craft's model released (one 3.3 GiB copy at a time)
unet, x, ctx = nil, nil, nil
collectgarbage(); collectgarbage()
require('craft.core').C.craft_cpu_bf16_cache_clear()   -- the bf16 weights (--precision bf16)
require('craft.core').C.craft_pool_trim()   -- hand the cached blocks back to the system
local peer, why = peer_run()
row('forward (no grad)', fwd, peer and peer.forward_ms)
if prec_row then
  row(('forward (no grad), %s'):format(args.precision), prec_row.ms, peer and peer.forward_autocast_ms)
  if peer and peer.forward_autocast_ms then
    print(('  %-34s (torch under torch.autocast(bfloat16); against torch fp32: %.2fx)'):format('', peer.forward_ms / prec_row.ms))
  end
  print(('  %-34s %.2fx the fp32 forward; first call %.1f ms (converts the weights); %d %s kernel calls per forward')
    :format('', fwd / prec_row.ms, prec_row.first_ms, prec_row.calls, prec_row.computes))
  print(('  %-34s output vs fp32: max |diff| %.3g (%.3g of max |y| %.3g), mean |diff| %.3g; peak memory %.0f MiB over the weights')
    :format('', prec_row.max_abs, prec_row.max_rel, prec_row.ref_max, prec_row.mean_abs, prec_row.mem))
  local speedup = craft.precision_info('cpu').bf16_speedup
  if speedup and device == 'cpu' then   -- what bounds the row: the CPU's own rate
    print(('  %-34s this CPU multiplies and adds in bf16 at %.2fx its fp32 rate (measured)'):format('', speedup))
  end
end
if fb then
  row('forward + backward' .. (args.no_checkpoint and '' or ' (checkpointed)'), fb, peer and peer.forward_backward_ms)
end
if mixed_row then
  row('forward + backward, bf16-mixed', mixed_row.ms, peer and peer.forward_backward_autocast_ms)
  if peer and peer.forward_backward_ms then
    print(('  %-34s (torch under torch.autocast(bfloat16); against torch fp32: %.2fx)'):format('',
      peer.forward_backward_ms / mixed_row.ms))
  end
  print(('  %-34s %.2fx the fp32 forward + backward; first call %.1f ms (converts the weights); %d bf16 kernel calls')
    :format('', fb / mixed_row.ms, mixed_row.first_ms, mixed_row.calls))
  print(('  %-34s latent gradient vs fp32: max |diff| %.3g, rms %.3g of max |g|; peak memory %.0f MiB over the weights (with their bf16 copies)')
    :format('', mixed_row.max_rel, mixed_row.rms_rel, mixed_row.mem))
end
mem_row('peak memory, forward', fwd_mem, weights, peer and peer.forward_rss_mib)
if fb then mem_row('peak memory, forward + backward', fb_mem, weights, peer and peer.forward_backward_rss_mib) end
if args.json then
  craft.io.write_json(args.json, { device = device, tiny = args.tiny or false, params = unet_params,
    forward_ms = fwd, forward_backward_ms = fb, checkpointed = not args.no_checkpoint,
    precision = prec_row and args.precision or nil, precision_row = prec_row, mixed_row = mixed_row,
    peer = peer, peer_skipped = (not peer) and tostring(why) or nil })
end
if peer then
  print(('  (ratio: torch time / craft time, above 1 means craft is faster; torch %s, diffusers %s, %d threads)'):format(
    tostring(peer.torch), tostring(peer.diffusers), peer.threads or 0))
else
  print('  peer skipped: ' .. tostring(why))
end
