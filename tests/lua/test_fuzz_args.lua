-- Random arguments through the Lua API (the Lua-side companion of tests/fuzz/fuzz_api.c): a
-- seeded generator calls tensor methods and craft.F functions with dims, sizes, indices and
-- scalars drawn from ordinary values and edge cases (0, negatives, fractions, 2^31, 2^53, 1e300,
-- +-inf, NaN). Each call must return or raise a Lua error whose value is a non-empty string:
-- no crash, no hang, no error object of another type. Every error, the engine's (a status from
-- C, through core.check) and the Lua library's argument checks alike, must point at the calling
-- line of this file. Sizes are kept small or certainly refused, so that no call asks for a
-- legal multi-gigabyte tensor, and results are kept for later calls only when they are small.
local craft = require 'craft'
local F = craft.F
local T = {}

local function generator(seed)
  local state = seed
  return function(n)   -- 1..n
    state = (state * 1103515245 + 12345) % 2147483648
    return math.floor(state / 65536) % n + 1
  end
end

local NUMS = { 0, 1, 2, 3, -1, -2, -3, 1.5, -0.5, 2 ^ 31, -2 ^ 31, 2 ^ 31 - 1, 2 ^ 53, -2 ^ 53, 1e300, -1e300,
  math.huge, -math.huge, 0 / 0, 7, 100, 4, 5 }
local SIZES = { 0, 1, 2, 3, 7, -1, -2, 1.5, 2 ^ 47, 2 ^ 53, -2 ^ 53, 1e300, -1e300, math.huge, -math.huge, 0 / 0 }
local DTYPES = { 'f32', 'f16', 'bf16', 'f64', 'i64', 'i32', 'i8', 'u8', 'bool' }

local function fuzz(t, seed, n)
  local rnd = generator(seed)
  local function small() return rnd(7) - 4 end
  local function anynum() if rnd(3) == 1 then return NUMS[rnd(#NUMS)] end return small() end
  local function shape()
    local s = {}
    for i = 1, rnd(5) - 1 do s[i] = rnd(4) == 1 and SIZES[rnd(#SIZES)] or rnd(4) - 1 end
    return s
  end
  local function dims()
    if rnd(4) == 1 then return anynum() end
    local s = {}
    for i = 1, rnd(4) - 1 do s[i] = anynum() end
    return s
  end
  local function fresh()
    return { craft.randn({ 2, 3 }), craft.zeros({ 0, 3 }), craft.randn({ 2, 3, 4 }), craft.randn({ 1, 2, 4, 4 }),
      craft.full({}, 2), craft.randn({ 4 }), craft.tensor({ 0, 1, 2 }, { dtype = 'i64' }), craft.randn({ 3, 1 }) }
  end
  local pool = fresh()
  local function pick() return pool[rnd(#pool)] end
  -- each call keeps its result in a local before returning it: a tail call would leave no
  -- frame of this file for the error position
  local CALLS = {
    function() local r = pick():reshape(shape()); return r end,
    function() local r = pick():reshape(anynum(), anynum()); return r end,
    function() local p = {}; for i = 1, rnd(4) - 1 do p[i] = anynum() end; local r = pick():permute(p); return r end,
    function() local r = pick():transpose(anynum(), anynum()); return r end,
    function() local r = pick():slice(anynum(), anynum(), anynum(), anynum()); return r end,
    function() local r = pick():narrow(anynum(), anynum(), anynum()); return r end,
    function() local r = pick():select(anynum(), anynum()); return r end,
    function() local r = pick():expand(shape()); return r end,
    function() local r = pick():unsqueeze(anynum()); return r end,
    function() local r = pick():squeeze(anynum()); return r end,
    function() local r = pick():sum(dims(), rnd(2) == 1); return r end,
    function() local r = pick():mean(dims(), rnd(2) == 1); return r end,
    function() local r = pick():var(dims(), { correction = anynum() }); return r end,
    function() local r = pick():max(anynum(), rnd(2) == 1); return r end,
    function() local r = pick():min(anynum()); return r end,
    function() local r = pick():argmax(anynum()); return r end,
    function() local r = pick():softmax(anynum()); return r end,
    function() local r = pick():log_softmax(anynum()); return r end,
    function() local r = pick():get(anynum(), anynum()); return r end,
    function() local r = pick():set(anynum(), anynum(), anynum()); return r end,
    function() local r = pick():size(anynum()); return r end,
    function() local r = pick():to(DTYPES[rnd(#DTYPES)]); return r end,
    function() local r = pick():matmul(pick()); return r end,
    function() local r = pick():add(rnd(2) == 1 and pick() or anynum()); return r end,
    function() local r = pick():div(anynum()); return r end,
    function() local r = pick():pow(anynum()); return r end,
    function() local r = pick():clamp(anynum(), anynum()); return r end,
    function() local r = pick():flatten(anynum()); return r end,
    function() local r = craft.zeros(shape()); return r end,
    function() local r = craft.full(shape(), anynum(), { dtype = DTYPES[rnd(#DTYPES)] }); return r end,
    function() local r = craft.randn(shape()); return r end,
    function() local r = craft.arange(small(), anynum() % 1e6, anynum()); return r end,
    function() local r = F.cat({ pick(), pick() }, anynum()); return r end,
    function() local r = F.stack({ pick(), pick() }, anynum()); return r end,
    function() local r = F.chunk(pick(), anynum(), anynum()); return r end,
    function() local r = F.split(pick(), anynum(), anynum()); return r end,
    function()
      local r = F.pad(pick(), { small(), small(), small(), small() }, ({ 'constant', 'reflect', 'replicate' })[rnd(3)])
      return r
    end,
    function()
      local r = F.conv2d(pick(), pick(), nil, { stride = anynum(), padding = small(), dilation = anynum(), groups = anynum() })
      return r
    end,
    function()
      local r = F.interpolate(pick(), { size = { rnd(9) - 2, rnd(9) - 2 }, mode = rnd(2) == 1 and 'nearest' or 'bilinear' })
      return r
    end,
    function() local r = F.avg_pool2d(pick(), anynum(), anynum(), anynum()); return r end,
    function() local r = F.group_norm(pick(), anynum()); return r end,
    function() local r = F.layer_norm(pick(), anynum()); return r end,
    function() local r = F.embedding(craft.tensor({ small(), small() }, { dtype = 'i64' }), pick()); return r end,
    function() local r = F.cross_entropy(pick(), pick(), { label_smoothing = anynum() }); return r end,
    function() local r = F.normalize(pick(), anynum()); return r end,
    function() local r = F.timestep_embedding(pick(), rnd(9) - 2); return r end,
    function() local r = F.sdpa(pick(), pick(), pick(), { scale = anynum(), causal = rnd(2) == 1 }); return r end,
    function()
      local x = craft.randn({ 2, 3 }, { requires_grad = true })
      local y = (x * x):sum(dims())
      y:backward(rnd(2) == 1 and pick() or nil)
      local g = x.grad
      return g
    end,
  }
  local here = debug.getinfo(1, 'S').short_src
  local ok_n, err_n, bad = 0, 0, 0
  for it = 1, n do
    local ok, res = pcall(CALLS[rnd(#CALLS)])
    if ok then
      ok_n = ok_n + 1
      if craft.is_tensor(res) and res:numel() <= 64 and rnd(4) == 1 then
        local small_dims = true
        for _, s in ipairs(res.shape) do if s > 64 then small_dims = false end end
        if small_dims then pool[rnd(#pool)] = res end
      end
    else
      err_n = err_n + 1
      if type(res) ~= 'string' or res == '' then
        bad = bad + 1
        t.ok(false, ('call %d (seed %d): the error is a %s, not a message'):format(it, seed, type(res)))
      else
        local at = res:match('^([^:]+):%d+:')
        if at ~= here then
          bad = bad + 1
          t.ok(false, ('call %d (seed %d): the error points at %s, not the caller: %s'):format(it, seed, tostring(at), res))
        end
      end
    end
    if it % 250 == 0 then pool = fresh(); collectgarbage() end
  end
  t.ok(ok_n > n / 10 and err_n > n / 10, ('a mix of successes (%d) and errors (%d)'):format(ok_n, err_n))
  t.eq(bad, 0, 'calls whose failure was not a clean error')
end

function T.random_arguments_seed1(t) fuzz(t, 1, 2500) end
function T.random_arguments_seed2(t) fuzz(t, 2, 2500) end

return T
