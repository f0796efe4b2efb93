-- bench/bench_sd15_unet.lua: the Stable Diffusion 1.5 UNet (860 M parameters, random weights),
-- timed in craft, with the diffusers peer (bench/peer_sd15_unet.py) run in the same invocation.
-- Opt-in (slow on a laptop CPU; not part of `make bench`): a no-grad forward at a 64x64 latent
-- (512 px images) and a forward + backward with gradient checkpointing per block (what reward
-- finetuning does), with the pool's peak memory.
--   craft bench/bench_sd15_unet.lua [--batch 1] [--size 64] [--steps 1] [--warmup 0]
--                                   [--no-backward] [--no-checkpoint] [--no-peer]
-- The peer needs a python with torch and diffusers: CRAFT_PEER_PYTHON (default /tmp/fixvenv/bin/python,
-- see tests/fixtures/make_model_fixtures.py).
local craft = require 'craft'
local U = require 'craft.models.unet'

local args = { batch = 1, size = 64, steps = 1, warmup = 0 }
local i = 1
while arg[i] do
  local a = arg[i]
  if a == '--no-peer' then args.no_peer = true
  elseif a == '--no-backward' then args.no_backward = true
  elseif a == '--no-checkpoint' then args.no_checkpoint = true
  elseif a:match('^%-%-') then args[a:sub(3)] = tonumber(arg[i + 1]); i = i + 1 end
  i = i + 1
end

-- runwayml/stable-diffusion-v1-5 unet/config.json (peer_sd15_unet.py builds the same)
local CONFIG = { sample_size = 64, in_channels = 4, out_channels = 4, block_out_channels = { 320, 640, 1280, 1280 },
  layers_per_block = 2, attention_head_dim = 8, cross_attention_dim = 768, norm_num_groups = 32, norm_eps = 1e-5,
  flip_sin_to_cos = true, freq_shift = 0, use_linear_projection = false,
  down_block_types = { 'CrossAttnDownBlock2D', 'CrossAttnDownBlock2D', 'CrossAttnDownBlock2D', 'DownBlock2D' },
  up_block_types = { 'UpBlock2D', 'CrossAttnUpBlock2D', 'CrossAttnUpBlock2D', 'CrossAttnUpBlock2D' } }

local ffi = require 'ffi'
pcall(ffi.cdef, 'typedef struct { long tv_sec; long tv_nsec; } bench_timespec; int clock_gettime(int clk, bench_timespec *tp);')
local tspec = ffi.new('bench_timespec')
local function now()
  ffi.C.clock_gettime(1, tspec)
  return tonumber(tspec.tv_sec) + tonumber(tspec.tv_nsec) * 1e-9
end
local function median_time(fn, n, warmup)
  for _ = 1, warmup do fn() end
  local ts = {}
  for k = 1, n do local t0 = now(); fn(); ts[k] = now() - t0 end
  table.sort(ts)
  return ts[math.floor((n + 1) / 2)] * 1e3
end

local function peer_run()
  if args.no_peer then return nil end
  local py = os.getenv('CRAFT_PEER_PYTHON') or '/tmp/fixvenv/bin/python'
  local tmp = os.tmpname()
  local cmd = ('%s bench/peer_sd15_unet.py --batch %d --size %d --steps %d --warmup %d --threads %d --json %s%s%s > /dev/null 2>&1')
    :format(py, args.batch, args.size, args.steps, args.warmup, craft.num_threads(), tmp,
      args.no_backward and ' --no-backward' or '', args.no_checkpoint and ' --no-checkpoint' or '')
  local res
  if os.execute(cmd) == 0 then res = craft.io.read_json(tmp) end
  os.remove(tmp)
  return res
end

local function row(what, mine, theirs, mem, pmem)
  local m = mem and ('   peak %6.0f MiB'):format(mem) or ''
  local pm = pmem and (' / torch rss %6.0f MiB'):format(pmem) or ''
  if theirs then print(('  %-34s craft %9.1f ms   torch %9.1f ms   ratio %.2fx%s%s'):format(what, mine, theirs, theirs / mine, m, pm))
  else print(('  %-34s craft %9.1f ms   (no peer)%s'):format(what, mine, m)) end
end

craft.manual_seed(0)
local t0 = now()
local unet = U.UNet2DConditionModel(CONFIG)
local B, S = args.batch, args.size
print(('SD 1.5 UNet (%.0f M params, built in %.1f s), batch %d, latent %dx%d, %d threads'):format(
  unet:num_parameters() / 1e6, now() - t0, B, S, S, craft.num_threads()))
local x = craft.randn({ B, 4, S, S })
local ctx = craft.randn({ B, 77, 768 })
local t = craft.full({ B }, 500)
local base = craft.memory(true).in_use
local fwd = median_time(function() craft.no_grad(function() return unet(x, t, ctx) end) end, args.steps, args.warmup)
local fwd_mem = (craft.memory(true).peak - base) / 2 ^ 20
local fb, fb_mem
if not args.no_backward then
  unet.gradient_checkpointing = not args.no_checkpoint
  unet:requires_grad_(false)   -- frozen base (LoRA-style); the gradient flows to the latents
  fb = median_time(function()
    local xx = x:clone():requires_grad_(true)
    unet(xx, t, ctx):mean():backward()
    return xx.grad
  end, args.steps, args.warmup)
  fb_mem = (craft.memory().peak - base) / 2 ^ 20
end
local peer = peer_run()
row('forward (no grad)', fwd, peer and peer.forward_ms, fwd_mem, peer and peer.forward_rss_mib)
if fb then
  row('forward + backward' .. (args.no_checkpoint and '' or ' (checkpointed)'), fb, peer and peer.forward_backward_ms, fb_mem,
    peer and peer.forward_backward_rss_mib)
end
print(('  (peak: pool memory above the weights; weights %.0f MiB)'):format(base / 2 ^ 20))
