-- bench/mpi_allreduce.lua [reps]: the gradient sum of a data-parallel LoRA step on SD 1.5, as
-- craft does it (craft.dist.allreduce_grads: the gradients copied into 25 MB buckets of host
-- memory, each summed over the ranks by MPI_Iallreduce), for LoRA ranks 4 to 64 on the
-- attention projections (to_q, to_k, to_v, to_out.0, the targets of craft's and diffusers' LoRA).
-- Run under mpirun: `mpirun -np 2 build/craft bench/mpi_allreduce.lua` (docs/scaling.md).
--
-- The parameter counts come from SD 1.5's UNet config (runwayml/stable-diffusion-v1-5):
-- block_out_channels 320, 640, 1280, 1280; a transformer block per resnet in the three cross-
-- attention down blocks (2 each), the mid block (1) and the three cross-attention up blocks (3
-- each): 16 blocks, 5 at width 320, 5 at 640, 6 at 1280; cross_attention_dim 768. A block of
-- width d has self-attention q, k, v, out (d -> d) and cross-attention q, out (d -> d), k, v
-- (768 -> d); a rank-r LoRA on a linear in -> out has r * (in + out) parameters.
local craft = require 'craft'
local dist = require 'craft.dist'
local reps = tonumber(arg[1]) or 20

local SD15 = { widths = { [320] = 5, [640] = 5, [1280] = 6 }, cross = 768 }
local function lora_shapes(r)
  local shapes = {}
  for d, n in pairs(SD15.widths) do
    for _ = 1, n do
      for _ = 1, 6 do shapes[#shapes + 1] = { { r, d }, { d, r } } end               -- d -> d projections
      for _ = 1, 2 do shapes[#shapes + 1] = { { r, SD15.cross }, { d, r } } end      -- cross k, v
    end
  end
  return shapes
end

local function median(v)
  table.sort(v)
  local n = #v
  return n % 2 == 1 and v[(n + 1) / 2] or (v[n / 2] + v[n / 2 + 1]) / 2
end

if dist.is_root() then
  print(('ranks %d (%d on this node), %d timed sums after 3 warm-up ones, median'):format(dist.size(),
    dist.local_size(), reps))
  print(('load average %s'):format((io.open('/proc/loadavg') or io.stdin):read('*l') or '?'))
  print(('%-9s %12s %9s %14s %14s %12s'):format('LoRA rank', 'parameters', 'MB', 'grads (ms)', 'flat (ms)',
    'bus GB/s'))
end
for _, r in ipairs { 4, 8, 16, 32, 64 } do
  local params, n = {}, 0
  for i, pair in ipairs(lora_shapes(r)) do
    for j, s in ipairs(pair) do
      local p = craft.zeros(s, { requires_grad = true })
      p.grad = craft.full(s, dist.rank() + 1)
      params[#params + 1] = { ('p%d_%d'):format(i, j), p }
      n = n + s[1] * s[2]
    end
  end
  -- grads: allreduce_grads over the parameters (their gradients packed into buckets, summed,
  -- unpacked); flat: MPI's sum of one buffer of the same size (the floor)
  local function timed(fn)
    local times = {}
    for k = 1, reps + 3 do
      dist.barrier()
      local t0 = craft.now()
      fn()
      local dt = craft.now() - t0
      if k > 3 then times[#times + 1] = dt end
    end
    -- the slowest rank's median is the step's
    local worst = 0
    for _, v in ipairs(dist.gather(median(times), 0) or {}) do worst = math.max(worst, v) end
    return worst
  end
  local tg = timed(function() dist.allreduce_grads(params) end)
  local flat = craft.ones({ n })
  local tf = timed(function() dist.allreduce(flat) end)
  if dist.is_root() then
    local P = dist.size()
    -- a ring all-reduce moves 2 (P - 1) / P of the buffer through each rank's link
    local bus = P > 1 and (2 * (P - 1) / P * n * 4 / tf / 1e9) or 0 / 0
    print(('%-9d %12d %9.2f %14.2f %14.2f %12.2f'):format(r, n, n * 4 / 2 ^ 20, tg * 1e3, tf * 1e3, bus))
  end
end
