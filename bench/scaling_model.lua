-- bench/scaling_model.lua: the projection of docs/scaling.md: step time and parallel efficiency
-- of a data-parallel CRAFT step (one rank per GPU, one image per GPU per step) at 8, 64 and 512
-- GPUs for SD 1.5 LoRA ranks 4, 16 and 64. Every input is an assumption written below (change
-- them here); the output is the table of docs/scaling.md.
--   ./build/craft bench/scaling_model.lua
local A = {
  lora_params_per_rank = 199296,   -- SD 1.5 attention projections (bench/mpi_allreduce.lua)
  bytes = 4,                       -- fp32 gradients
  gpus_per_node = 8,
  alpha = 5e-6,                    -- s per message hop (InfiniBand + MPI software)
  intra_GBps = 5,                  -- host-memory all-reduce bandwidth per rank inside a node
  nic_GBps = 25,                   -- one 200 Gb/s HDR InfiniBand port per node, shared by its ranks
  stage_GBps = 10,                 -- PCIe device <-> host copy of the gradients (pageable memory)
  compute = { fast = 0.72, fp32 = 9.0 },   -- s per image per step on one GPU (docs/scaling.md)
  jitter = 0.02,                   -- standard deviation of a GPU's step time, as a share of it
}

local function allreduce(P, M)
  local B = P <= A.gpus_per_node and A.intra_GBps or math.min(A.intra_GBps, A.nic_GBps / A.gpus_per_node)
  -- Open MPI's ring for large buffers: 2 (P - 1) hops, each rank sends and receives 2 (P - 1) / P of M
  return 2 * (P - 1) * A.alpha + 2 * (P - 1) / P * M / (B * 1e9)
end

print(('%-5s %-5s %8s %10s %9s | %-12s %9s %9s'):format('rank', 'GPUs', 'MB', 'allreduce', 'staging',
  'compute', 'E', 'E (jitter)'))
for _, r in ipairs { 4, 16, 64 } do
  local M = A.lora_params_per_rank * r * A.bytes
  for _, P in ipairs { 8, 64, 512 } do
    local tar, tst = allreduce(P, M), 2 * M / (A.stage_GBps * 1e9)
    for _, k in ipairs { 'fast', 'fp32' } do
      local tc = A.compute[k]
      -- synchronous steps wait for the slowest of P GPUs: about jitter * sqrt(2 ln P) longer
      local strag = A.jitter * tc * math.sqrt(2 * math.log(P))
      print(('%-5d %-5d %8.2f %8.2f ms %6.2f ms | %-5s %4.2f s %8.1f%% %8.1f%%'):format(r, P, M / 1e6, tar * 1e3,
        tst * 1e3, k, tc, 100 * tc / (tc + tar + tst), 100 * tc / (tc + tar + tst + strag)))
    end
  end
end
