-- bench/bench_sd15_vae.lua: the Stable Diffusion 1.5 VAE decoder (random weights, the real shapes)
-- decoding a [batch, 4, size, size] latent to 8x the size with no grad, against the diffusers peer
-- (bench/peer_sd15_vae.py) in the same invocation: the first call (which includes oneDNN's
-- primitive creation and the first touch of the activation memory), the median of --steps further
-- calls, and the peak memory (craft: the pool's peak and the process's peak resident set; torch:
-- its process's peak resident set). Part of `make bench` (a 64x64 latent: 512 px images).
--   craft bench/bench_sd15_vae.lua [--batch 1] [--size 64] [--steps 1] [--no-peer] [--precision bf16]
-- --precision bf16 adds rows: the same decode under craft.set_precision('bf16') (docs/backends.md),
-- its first call and the median of --steps, and its largest and mean difference from the fp32 image.
local craft = require 'craft'
local V = require 'craft.models.vae'
local runtime = require 'craft.runtime'

local args = dofile('bench/common.lua').args({ batch = 1, size = 64, steps = 1 }, { 'no-peer' })

-- runwayml/stable-diffusion-v1-5 vae/config.json (peer_sd15_vae.py builds the same)
local CONFIG = { in_channels = 3, out_channels = 3, latent_channels = 4, block_out_channels = { 128, 256, 512, 512 },
  layers_per_block = 2, norm_num_groups = 32, act_fn = 'silu', sample_size = 512,
  down_block_types = { 'DownEncoderBlock2D', 'DownEncoderBlock2D', 'DownEncoderBlock2D', 'DownEncoderBlock2D' },
  up_block_types = { 'UpDecoderBlock2D', 'UpDecoderBlock2D', 'UpDecoderBlock2D', 'UpDecoderBlock2D' } }

local now = runtime.now
-- the process's peak resident set (VmHWM), MiB
local function peak_rss_mib()
  local f = io.open('/proc/self/status')
  if not f then return nil end
  local kb
  for l in f:lines() do kb = kb or tonumber(l:match('^VmHWM:%s*(%d+)')) end
  f:close()
  return kb and kb / 1024
end

local function peer_run()
  if args.no_peer then return nil, '--no-peer given' end
  local py = dofile('bench/common.lua').peer_python()
  local res, why = dofile('bench/common.lua').run_peer(py, 'bench/peer_sd15_vae.py',
    ('--batch %d --size %d --steps %d --threads %d'):format(args.batch, args.size, args.steps, craft.num_threads()))
  if not res then why = ('%s: %s (sh tools/setup.sh --bench)'):format(py, why) end
  return res, why
end

craft.manual_seed(0)
local vae = V.AutoencoderKL(CONFIG)
local B, S = args.batch, args.size
local z = craft.randn({ B, 4, S, S })
collectgarbage(); collectgarbage()
local base = craft.memory(true).in_use
print(('SD 1.5 VAE decoder, batch %d, latent %dx%d -> %dx%d, %d threads'):format(B, S, S, 8 * S, 8 * S,
  craft.num_threads()))
local function decode() return craft.no_grad(function() return vae:decode(z) end) end
local t0 = now()
local img = decode()
local first = (now() - t0) * 1e3
img = nil
local ts = {}
for k = 1, args.steps do
  t0 = now()
  img = decode()
  ts[k] = (now() - t0) * 1e3
  img = nil
end
table.sort(ts)
local med = ts[math.floor((#ts + 1) / 2)]
local pool_peak = (craft.memory().peak - base) / 2 ^ 20
local rss = peak_rss_mib()
local prec
if args.precision and args.precision ~= 'fp32' then
  local ref = decode()
  local function dec16() return craft.with_precision(args.precision, decode) end
  t0 = now()
  local y = dec16()
  prec = { first = (now() - t0) * 1e3, ts = {} }
  for k = 1, args.steps do
    y = nil
    t0 = now()
    y = dec16()
    prec.ts[k] = (now() - t0) * 1e3
  end
  table.sort(prec.ts)
  prec.med = prec.ts[math.floor((#prec.ts + 1) / 2)]
  local d = (y - ref):abs()
  prec.max, prec.mean, prec.scale = d:max():item(), d:mean():item(), ref:abs():max():item()
  prec.computes = craft.precision_info().bf16_kernels > 0 and args.precision or 'fp32'
  y, ref = nil, nil
  require('craft.core').C.craft_cpu_bf16_cache_clear()
end
local weights = base / 2 ^ 20
vae, z = nil, nil
collectgarbage(); collectgarbage()
require('craft.core').C.craft_pool_trim()
local peer, why = peer_run()
local function row(what, mine, theirs, unit)
  if theirs then
    print(('  %-30s craft %9.1f %s   torch %9.1f %s   ratio %.2fx'):format(what, mine, unit, theirs, unit, theirs / mine))
  else print(('  %-30s craft %9.1f %s'):format(what, mine, unit)) end
end
row('decode, first call', first, peer and peer.first_ms, 'ms')
row('decode, median of next ' .. args.steps, med, peer and peer.decode_ms, 'ms')
row('peak resident memory', rss or 0, peer and peer.peak_rss_mib, 'MiB')
print(('  craft pool: weights and input %.0f MiB, peak during decode %.0f MiB above them'):format(weights, pool_peak))
if prec then
  row(('decode, %s, first call'):format(args.precision), prec.first, nil, 'ms')
  row(('decode, %s, median of %d'):format(args.precision, args.steps), prec.med, peer and peer.decode_ms, 'ms')
  print(('  %s computes %s; image vs fp32: max |diff| %.4g (%.4g of max |x| %.3g), mean |diff| %.3g'):format(
    args.precision, prec.computes, prec.max, prec.max / math.max(prec.scale, 1e-30), prec.scale, prec.mean))
end
if peer then
  print(('  (ratio: torch / craft, above 1 means craft is faster or smaller; torch %s, diffusers %s, %d threads)')
    :format(tostring(peer.torch), tostring(peer.diffusers), peer.threads or 0))
else
  print('  peer skipped: ' .. tostring(why))
end
