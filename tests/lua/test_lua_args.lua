-- Wrong arguments to the Lua library's public functions (the module functions of craft.io,
-- metrics, stats, data, optim, phantoms, nn, autograd, device, tokenizer, cas, encoders, models,
-- lora, pipeline, schedulers and report): each module's functions are found by walking its
-- table, so a new function is covered without a change here, and called with seeded
-- combinations of nil, numbers (0, -1, 1.5, NaN, 1e300), strings (empty, a path in a folder
-- that does not exist), tables, booleans, functions and tensors. A call may succeed; when it
-- fails the error must be a message that points at the calling line of this file and is not
-- one of Lua's own ("attempt to index ...", "bad argument #1 to ..."), which would point
-- inside the library and say nothing about what the caller got wrong.
-- Left out: experiment.run and the trainers, which run whole experiments on a valid config.
local craft = require 'craft'
local T = {}

local MODULES = { 'craft.io', 'craft.metrics', 'craft.stats', 'craft.data', 'craft.optim', 'craft.phantoms',
  'craft.autograd', 'craft.device', 'craft.tokenizer', 'craft.cas', 'craft.encoders', 'craft.models',
  'craft.models.lora', 'craft.models.pipeline', 'craft.models.schedulers', 'craft.report' }
local NN = { 'Linear', 'Conv2d', 'ConvTranspose2d', 'GroupNorm', 'LayerNorm', 'Embedding', 'Dropout', 'Attention' }

local function generator(seed)
  local state = seed
  return function(n)
    state = (state * 1103515245 + 12345) % 2147483648
    return math.floor(state / 65536) % n + 1
  end
end

local function values()
  return { false, 0, -1, 1.5, 0 / 0, 1e300, '', '/nonexistent-craft-dir/x', {}, { 1, 2 }, { { 1, 2 }, { 3 } }, true,
    function() end, craft.randn({ 2, 3 }), craft.zeros({ 0 }), craft.tensor({ 0, 1 }, { dtype = 'i64' }), 'nil' }
end

local function targets()
  local list = {}
  for _, mn in ipairs(MODULES) do
    local M = require(mn)
    local names = {}
    for k, f in pairs(M) do if type(f) == 'function' then names[#names + 1] = k end end
    table.sort(names)
    for _, k in ipairs(names) do list[#list + 1] = { mn .. '.' .. k, M[k] } end
  end
  local nn = require 'craft.nn'
  for _, k in ipairs(NN) do list[#list + 1] = { 'nn.' .. k, nn[k] } end
  return list
end

function T.wrong_arguments_give_clear_errors_at_the_caller(t)
  local here = debug.getinfo(1, 'S').short_src
  local rnd, vals, list = generator(7), values(), targets()
  local calls, errors, bad = 0, 0, 0
  for _, target in ipairs(list) do
    for _ = 1, 40 do
      local na = rnd(4) - 1
      local args = {}
      for j = 1, na do
        local v = vals[rnd(#vals)]
        if v == 'nil' then v = nil end
        args[j] = v
      end
      calls = calls + 1
      local ok, err = pcall(function() local r = target[2](unpack(args, 1, na)); return r end)
      if not ok then
        errors = errors + 1
        local s = type(err) == 'string' and err or nil
        local at = s and s:match('^([^:]+):%d+:')
        if not s or at ~= here or s:find('attempt to', 1, true) or s:find('bad argument #', 1, true) then
          bad = bad + 1
          if bad <= (tonumber(os.getenv("LUA_ARGS_SHOW")) or 10) then t.ok(false, ('%s(%d args): %s'):format(target[1], na, tostring(err))) end
        end
      end
    end
  end
  t.ok(#list > 80, ('%d functions found'):format(#list))
  t.ok(errors > calls / 2, ('most calls fail (%d of %d)'):format(errors, calls))
  t.eq(bad, 0, 'errors that do not point at the caller or that are Lua internals')
end

-- The checks name the function, the argument and what it got.
function T.messages_say_what_was_wrong(t)
  local io_, stats, metrics, nn, data = craft.io, craft.stats, craft.metrics, require('craft.nn'), craft.data
  t.raises(function() return io_.read_json(42) end, 'io.read_json: path must be a string, got 42')
  t.raises(function() return stats.mean({ 1, 'a' }) end, 'stats.mean: x[2] must be a number, got the string "a"')
  t.raises(function() return metrics.accuracy({ 0, 1 }, { 1 }) end, 'metrics.accuracy: y has 2 entries but p has 1')
  t.raises(function() return nn.Linear(3) end, 'Linear: out_features must be an integer >= 1, got nil')
  t.raises(function() return nn.GroupNorm(3, 8) end, 'GroupNorm: 3 groups do not divide 8 channels')
  t.raises(function() return data.loader({ images = craft.zeros({ 2, 3 }) }) end,
    'data.loader: data set labels must be a tensor, got nil')
  t.raises(function() return craft.optim.AdamW({ 5 }) end, 'optim.AdamW: params[1] must be a tensor or a {name, tensor} pair, got 5')
  t.raises(function() return metrics.ssim(craft.zeros({ 2, 3 }), craft.zeros({ 2, 3 })) end,
    'metrics.ssim: a must be images [N, C, H, W] or [C, H, W], got a tensor [2, 3] f32')
end

return T
