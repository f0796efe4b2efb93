-- craft.dist without a launcher (one rank: every collective returns its input), its shard
-- arithmetic and serialisation, and the data-parallel split of every trainer's step checked in
-- one process: each trainer's step run as rank 0 and as rank 1 of 2 (craft.dist's size and
-- shard stood in for; the gradient sum captured where it would be summed over ranks) gives
-- gradients whose sum is the one-rank step's, and the same logged values. Sharded generation
-- (noise_offset) gives the images of the whole batch. tests/mpi.sh runs real ranks under mpirun.
local craft = require 'craft'
local dist = require 'craft.dist'
local common = require 'craft.train.common'
local T = {}

function T.one_rank_without_a_launcher(t)
  t.eq(dist.size(), 1, 'size')
  t.eq(dist.rank(), 0, 'rank')
  t.eq(dist.local_rank(), 0, 'local rank')
  t.ok(dist.is_root(), 'rank 0 is the root')
  t.ok(not dist.active(), 'MPI is not initialised without a launcher')
  t.eq(dist.allreduce(2.5), 2.5, 'allreduce of a number')
  local l = dist.allreduce({ 1, 2, 3 })
  t.eq(#l, 3, 'allreduce of a list')
  t.eq(l[3], 3, 'allreduce of a list: values')
  local x = craft.tensor({ 1, 2 })
  t.eq(dist.allreduce(x), x, 'allreduce of a tensor is the tensor')
  t.eq(dist.gather({ a = 1 })[1].a, 1, 'gather: a list of one value')
  t.eq(dist.gather_rows(x), x, 'gather_rows')
  t.eq(dist.broadcast('s'), 's', 'broadcast')
  dist.barrier()
  t.ok(dist.timeout() > 0, 'a timeout is set')
  t.raises(function() dist.set_timeout(-1) end, 'timeout', 'a negative timeout is refused')
  t.raises(function() dist.gather(1, 3) end, 'root must be a rank 0 .. 0', 'a root past the ranks is refused')
  t.raises(function() dist.gather(x) end, 'cannot be sent between ranks', 'a tensor through gather is refused')
end

function T.shards_cover_the_items_in_rank_order(t)
  local bad = 0
  for size = 1, 5 do
    for n = 0, 11 do
      local next_ = 1
      for r = 0, size - 1 do
        local first, count = dist.shard(n, r, size)
        if first ~= next_ or count < math.floor(n / size) or count > math.ceil(n / size) then bad = bad + 1 end
        next_ = first + count
      end
      if next_ ~= n + 1 then bad = bad + 1 end
    end
  end
  t.eq(bad, 0, 'every (size, n): contiguous blocks in rank order covering 1..n, sizes differ by at most 1')
end

function T.plain_data_survives_the_wire(t)
  local v = { 1.0000000000000002, -0.1, 0 / 0, 1 / 0, -1 / 0, 'a"b\n', true, false, { x = { 1, 2 }, [7] = 'y' } }
  local r = dist._decode(dist._encode(v))
  t.eq(r[1], v[1], 'a double exactly')
  t.eq(r[2], -0.1, 'a double exactly (2)')
  t.ok(r[3] ~= r[3], 'NaN')
  t.eq(r[4], 1 / 0, 'inf')
  t.eq(r[5], -1 / 0, '-inf')
  t.eq(r[6], 'a"b\n', 'a string with quotes and a newline')
  t.eq(r[7], true, 'true')
  t.eq(r[8], false, 'false')
  t.eq(r[9].x[2], 2, 'nested list')
  t.eq(r[9][7], 'y', 'a number key')
end

---------------------------------------------------------------- trainers split across stand-in ranks
local tiny = dofile('tests/lua/tiny_pipeline.lua')
local pipe, PROMPTS, dataset = tiny.pipe, tiny.PROMPTS, tiny.dataset

-- as_rank(rank, size, fn) runs fn with craft.dist standing in for `size` ranks of which this is
-- `rank`: sums are the identity (each rank's part is kept), and the gradients are captured where
-- they would be summed. -> fn's result, the captured {name -> gradient}
local function as_rank(rank, size, fn)
  local saved = {}
  for _, k in ipairs { 'size', 'rank', 'is_root', 'shard', 'allreduce', 'allreduce_grads' } do saved[k] = dist[k] end
  local grads = {}
  dist.size = function() return size end
  dist.rank = function() return rank end
  dist.is_root = function() return rank == 0 end
  dist.shard = function(n, r, s) return saved.shard(n, r or rank, s or size) end
  dist.allreduce = function(x) return x end
  dist.allreduce_grads = function(params)
    for _, np in ipairs(params) do
      local g = np[2].grad
      grads[np[1]] = g and g:detach():clone() or false
    end
  end
  local ok, res = pcall(fn)
  for k, v in pairs(saved) do dist[k] = v end
  if not ok then error(res, 0) end
  return res, grads
end

-- one step of a trainer on a fresh pipeline as `rank` of `size`: the gradients of its trained
-- parameters at the end of backward (this rank's part), and its log row
local function one_step(train, recipe, rank, size)
  local res, grads = as_rank(rank, size, function() return train(pipe(), recipe) end)
  return grads, res.log[1]
end

-- the sum over 2 stand-in ranks of their gradients equals the one-rank step's; logged values too
local function check_split(t, what, train, recipe, logged)
  local g1, row1 = one_step(train, recipe, 0, 1)
  local ga, rowa = one_step(train, recipe, 0, 2)
  local gb, rowb = one_step(train, recipe, 1, 2)
  local n, worst, missing = 0, 0, {}
  for name, g in pairs(g1) do
    if g then
      n = n + 1
      local a, b = ga[name], gb[name]
      if a == nil or b == nil then missing[#missing + 1] = name else
        local sum = (a and a or g * 0) + (b and b or g * 0)
        local err = (sum - g):abs():max():item() / (g:abs():max():item() + 1e-12)
        worst = math.max(worst, err)
      end
    end
  end
  t.ok(n > 0, what .. ': the one-rank step has gradients')
  t.eq(#missing, 0, what .. ': every parameter takes part on both ranks')
  t.ok(worst < 1e-4, ('%s: rank 0 + rank 1 gradients = the one-rank gradients (worst relative error %.2g)')
    :format(what, worst))
  for _, k in ipairs(logged or {}) do
    t.near(rowa[k] + rowb[k], row1[k], 1e-5 * (1 + math.abs(row1[k])), what .. ': logged ' .. k .. ' (sum of parts)')
  end
  t.near(rowa.loss + rowb.loss, row1.loss, 1e-5 * (1 + math.abs(row1.loss)), what .. ': loss (sum of parts)')
end

function T.craft_step_splits_across_ranks(t)
  local CT = require 'craft.train.craft'
  check_split(t, 'craft', CT.train, { preset = 'tiny', steps = 3, grad_steps = 2, batch_size = 4, eta = 0.5,
    prompts = PROMPTS, quiet = true, kl_weight = 0.1, real_diffusion_weight = 1, data = dataset(),
    reward_augment = { shift = 1, noise = 0.02 }, reward = function(images) return images:mean({ 2, 3, 4 }) end,
    max_steps = 1, lr = 1e-3 }, { 'reward', 'kl', 'real_diffusion' })
end

function T.ti_and_lora_steps_split_across_ranks(t)
  local TI = require 'craft.train.ti'
  local LD = require 'craft.train.lora_diffusion'
  check_split(t, 'ti', TI.train, { preset = 'tiny', data = dataset(), templates = { 'a photo of {}', 'an x-ray of {}' },
    batch_size = 4, max_steps = 1, quiet = true })
  check_split(t, 'lora_diffusion', LD.train, { preset = 'tiny', data = dataset(), batch_size = 4, max_steps = 1,
    quiet = true })
end

function T.dpo_step_splits_across_ranks(t)
  local DPO = require 'craft.train.dpo'
  check_split(t, 'dpo', DPO.train, { preset = 'tiny', steps = 3, prompts = PROMPTS, batch_size = 4, pairs = 12,
    heldout = 0, shared_noise = false, max_steps = 1, quiet = true,
    reward = function(images) return images:mean({ 2, 3, 4 }) end }, { 'implicit_acc', 'model_mse', 'ref_mse' })
end

function T.a_batch_smaller_than_the_ranks_is_refused(t)
  t.raises(function() as_rank(0, 8, function() return common.shard(4, 'craft') end) end,
    'a batch of 4 cannot be split across 8 ranks', 'batch 4 on 8 ranks')
end

-- a shard of a batch, generated with noise_offset, gives the whole batch's images (DDIM with
-- eta > 0: the step noise is offset too)
function T.sharded_generation_matches_the_whole_batch(t)
  local p = pipe()
  local prompts = { 'a chest x-ray', 'a normal chest film', 'pneumonia on a chest film', 'a chest film' }
  local whole = craft.no_grad(function()
    return p:generate { prompt = prompts, steps = 3, cfg = 2, seed = 11, sampler = 'ddim', eta = 0.7 }
  end)
  local shape = common.latent_shape(p, 4, {})
  local per = shape[2] * shape[3] * shape[4]
  shape[1] = 2
  local half = craft.no_grad(function()
    return p:generate { prompt = { prompts[3], prompts[4] }, steps = 3, cfg = 2, seed = 11, sampler = 'ddim', eta = 0.7,
      noise_offset = 2 * per, latents = craft.randn(shape, { seed = 11, offset = 2 * per }) }
  end)
  t.allclose(half, whole:narrow(1, 3, 2), 1e-5, 'images 3..4 generated alone = images 3..4 of the batch')
end

-- cl:auto: rank 0 of its node takes the first GPU, or the first OpenCL device without one
function T.cl_auto_maps_the_local_rank_to_a_device(t)
  local device = require 'craft.device'
  local n = device.count()
  if n == 0 then
    t.raises(function() device.code('cl:auto') end, 'no OpenCL device', 'cl:auto without OpenCL devices')
    return
  end
  local want
  for i = n - 1, 0, -1 do if device.info(i).gpu then want = i end end
  t.eq(device.code('cl:auto'), 1 + (want or 0), 'cl:auto on local rank 0')
end

return T
