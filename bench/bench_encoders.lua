-- bench/bench_encoders.lua: full-size encoder shapes with random weights, timed in craft, with
-- the transformers peer (bench/peer_encoders.py) run in the same invocation. Opt-in (not part of
-- `make bench`): a ViT-B/16 CLIP image tower and a DINOv2-S/14 (native grid 37x37, so 224 px
-- resamples its position embeddings), one forward + backward to the pixels with frozen weights
-- (what reward finetuning does), batch 4 at 224 px. --model full: the reward's encoders at their
-- real sizes instead, CLIP ViT-L/14 (clip-l) and DINOv2-B/14 (dinov2-b).
--   craft bench/bench_encoders.lua [--batch 4] [--size 224] [--steps 3] [--warmup 1]
--                                  [--model clip|dinov2|all|clip-l|dinov2-b|full] [--no-peer]
-- The peer needs a python with torch and transformers: bench/common.lua picks it (CRAFT_PEER_PYTHON,
-- else the .venv-bench that `sh tools/setup.sh --bench` makes).
local craft = require 'craft'
local clip = require 'craft.models.clip'
local dinov2 = require 'craft.models.dinov2'

local args = dofile('bench/common.lua').args({ batch = 4, size = 224, steps = 3, warmup = 1, model = 'all' },
  { 'no-peer' })

-- the configs (peer_encoders.py builds the same)
local CONFIGS = {
  clip = { hidden_size = 768, intermediate_size = 3072, num_hidden_layers = 12, num_attention_heads = 12,
    image_size = 224, patch_size = 16, projection_dim = 512, hidden_act = 'quick_gelu' },
  dinov2 = { hidden_size = 384, num_hidden_layers = 12, num_attention_heads = 6, mlp_ratio = 4,
    image_size = 518, patch_size = 14, layerscale_value = 1.0 },
  ['clip-l'] = { hidden_size = 1024, intermediate_size = 4096, num_hidden_layers = 24,
    num_attention_heads = 16, image_size = 224, patch_size = 14, projection_dim = 768, hidden_act = 'quick_gelu' },
  ['dinov2-b'] = { hidden_size = 768, num_hidden_layers = 12, num_attention_heads = 12, mlp_ratio = 4,
    image_size = 518, patch_size = 14, layerscale_value = 1.0 },
}
local TITLES = { clip = 'CLIP ViT-B/16 image tower', dinov2 = 'DINOv2-S/14',
  ['clip-l'] = 'CLIP ViT-L/14 image tower', ['dinov2-b'] = 'DINOv2-B/14' }
local SETS = { all = { 'clip', 'dinov2' }, full = { 'clip-l', 'dinov2-b' } }
if not (SETS[args.model] or CONFIGS[args.model]) then
  error(('bench_encoders: --model %s: expected clip, dinov2, all, clip-l, dinov2-b or full')
    :format(tostring(args.model)), 0)
end
local function build(name)
  if name:match('^clip') then
    CONFIGS[name].image_size = args.size   -- CLIP's position table is made for the bench size
    local m = clip.CLIPVisionModel(CONFIGS[name], { projection = true })
    return m, function(px) return m(px).image_embeds end
  end
  local m = dinov2.Dinov2Model(CONFIGS[name])
  return m, function(px) return m(px).pooler_output end
end

-- wall clock (CLOCK_MONOTONIC); os.clock would add up the CPU time of all threads
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

local function peer_run(name)
  if args.no_peer then return nil end
  local py = dofile('bench/common.lua').peer_python()
  local tmp = os.tmpname()
  local cmd = ('%s bench/peer_encoders.py --model %s --batch %d --size %d --steps %d --warmup %d --threads %d --json %s > /dev/null 2>&1')
    :format(py, name, args.batch, args.size, args.steps, args.warmup, craft.num_threads(), tmp)
  local res
  if os.execute(cmd) == 0 then res = craft.io.read_json(tmp) end
  os.remove(tmp)
  return res
end

local function row(what, mine, theirs)
  if theirs then print(('  %-30s craft %8.1f ms   torch %8.1f ms   ratio %.2fx'):format(what, mine, theirs, theirs / mine))
  else print(('  %-30s craft %8.1f ms   (no peer)'):format(what, mine)) end
end

craft.manual_seed(0)
local B, S = args.batch, args.size
print(('encoders, batch %d, %dx%d, %d threads'):format(B, S, S, craft.num_threads()))
for _, name in ipairs(SETS[args.model] or { args.model }) do
  local model, features = build(name)
  model:eval():requires_grad_(false)
  local px = craft.randn({ B, 3, S, S })
  local w = craft.randn(features(px).shape)
  craft.memory(true)
  local fwd = median_time(function() craft.no_grad(features, px) end, args.steps, args.warmup)
  local fb = median_time(function()
    local x = px:clone():requires_grad_(true)
    ;(features(x) * w):sum():backward()
    return x.grad
  end, args.steps, args.warmup)
  local peak = craft.memory().peak / 2 ^ 20
  local peer = peer_run(name)
  print(('%s (%.1f M params)'):format(TITLES[name], model:num_parameters() / 1e6))
  row('forward (no grad)', fwd, peer and peer.forward_ms)
  row('forward + backward to pixels', fb, peer and peer.forward_backward_ms)
  print(('  peak pool memory %.0f MiB'):format(peak))
end
