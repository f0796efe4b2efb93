-- Wrong arguments to the Lua library's public functions (the module functions of craft.io,
-- metrics, stats, data, optim, phantoms, nn, autograd, device, tokenizer, cas, encoders, models,
-- lora, pipeline, schedulers and report): each module's functions are found by walking its
-- table, so a new function is covered without a change here, and called with seeded
-- combinations of nil, numbers (0, -1, 1.5, NaN, 1e300), strings (empty, a path in a folder
-- that does not exist), tables, booleans, functions and tensors. A call may succeed; when it
-- fails the error must be a message that points at the calling line of this file and is not
-- one of Lua's own ("attempt to index ...", "bad argument #1 to ..."), which would point
-- inside the library and say nothing about what the caller got wrong.
-- The same for the methods of the library's objects (tensors, modules, schedulers, optimisers,
-- tokenizers, loaders, EMA), each called on a fresh object, and for the top-level craft
-- functions. Left out: experiment.run and the trainers, which run whole experiments on a valid
-- config, and the setters of process-wide state (thread count, numeric guard, grad mode, seed,
-- default device), which later tests depend on.
local craft = require 'craft'
local T = {}

local MODULES = { 'craft.io', 'craft.metrics', 'craft.stats', 'craft.data', 'craft.optim', 'craft.phantoms',
  'craft.autograd', 'craft.device', 'craft.tokenizer', 'craft.cas', 'craft.encoders', 'craft.models',
  'craft.models.lora', 'craft.models.pipeline', 'craft.models.schedulers', 'craft.report', 'craft.samples',
  'craft.methods', 'craft.experiment.independence', 'craft.runtime', 'craft.repo', 'craft.cas.dims',
  'craft.cas.reward_spec' }
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
  local STATEFUL = { set_num_threads = true, numeric_guard = true, set_grad_enabled = true, manual_seed = true,
    set_default = true, set_default_device = true, set_precision_cache_mb = true }
  local names = {}
  for k, f in pairs(craft) do if type(f) == 'function' and not STATEFUL[k] then names[#names + 1] = k end end
  table.sort(names)
  for _, k in ipairs(names) do list[#list + 1] = { 'craft.' .. k, craft[k] } end
  for i = #list, 1, -1 do
    local n = list[i][1]
    if n:match('%.set_default$') or n:match('%.set_grad_enabled$') or n:match('%.set_num_threads$')
      or n:match('%.set_numeric_guard$') or n:match('%.set_precision_cache_mb$') or n == 'craft.repo.setup' then
      table.remove(list, i)
    end
  end
  return list
end

-- fresh objects whose methods are probed: name -> constructor
local OBJECTS = {
  tensor = function() return craft.randn({ 2, 3 }) end,
  linear = function() return craft.nn.Linear(3, 4) end,
  sequential = function() return craft.nn.Sequential(craft.nn.Linear(3, 4), craft.nn.SiLU()) end,
  ddim = function() return require('craft.models.schedulers').DDIM({}) end,
  ddpm = function() return require('craft.models.schedulers').DDPM({}) end,
  adamw = function() return craft.optim.AdamW(craft.nn.Linear(3, 4)) end,
  ema = function() return craft.optim.EMA(craft.nn.Linear(3, 4)) end,
  tokenizer = function() return require('craft.tokenizer').load('models/builtin/clip-tiny') end,
  loader = function()
    return craft.data.loader({ images = craft.zeros({ 4, 3, 8, 8 }), labels = craft.tensor({ 0, 1, 0, 1 }, { dtype = 'i64' }) })
  end,
}
local function methods_of(obj)
  local names, seen = {}, {}
  local function collect(tbl)
    for k, v in pairs(tbl) do
      if type(k) == 'string' and type(v) == 'function' and not seen[k] and not k:match('^__') then seen[k] = true; names[#names + 1] = k end
    end
  end
  collect(obj)
  local mt = getmetatable(obj)
  if type(mt) == 'table' then collect(mt) end   -- the Tensor class holds its methods beside a function __index
  local idx = mt and mt.__index
  while type(idx) == 'table' do collect(idx); local m2 = getmetatable(idx); idx = m2 and m2.__index end
  table.sort(names)
  return names
end

-- One call of fn (with self when given) on 0..3 random values. Returns whether it failed and
-- whether the failure was bad: not a message pointing at this file, or one of Lua's own errors.
local HERE = debug.getinfo(1, 'S').short_src
local function probe(t, state, label, fn, self)
  local na = state.rnd(4) - 1
  local args = {}
  for j = 1, na do
    local v = state.vals[state.rnd(#state.vals)]
    if v == 'nil' then v = nil end
    args[j] = v
  end
  state.calls = state.calls + 1
  local ok, err
  if self ~= nil then ok, err = pcall(function() local r = fn(self, unpack(args, 1, na)); return r end)
  else ok, err = pcall(function() local r = fn(unpack(args, 1, na)); return r end) end
  if ok then return end
  state.errors = state.errors + 1
  local s = type(err) == 'string' and err or nil
  local at = s and s:match('^([^:]+):%d+:')
  if not s or at ~= HERE or s:find('attempt to', 1, true) or s:find('bad argument #', 1, true) then
    state.bad = state.bad + 1
    if state.bad <= (tonumber(os.getenv('LUA_ARGS_SHOW')) or 10) then
      t.ok(false, ('%s(%d args): %s'):format(label, na, tostring(err)))
    end
  end
end
local function new_state(seed) return { rnd = generator(seed), vals = values(), calls = 0, errors = 0, bad = 0 } end

function T.wrong_arguments_give_clear_errors_at_the_caller(t)
  local st, list = new_state(7), targets()
  for _, target in ipairs(list) do
    for _ = 1, 40 do probe(t, st, target[1], target[2]) end
  end
  t.ok(#list > 80, ('%d functions found'):format(#list))
  t.ok(st.errors > st.calls / 2, ('most calls fail (%d of %d)'):format(st.errors, st.calls))
  t.eq(st.bad, 0, 'errors that do not point at the caller or that are Lua internals')
end

function T.wrong_arguments_to_methods_give_clear_errors_at_the_caller(t)
  local st, nmethods, onames = new_state(11), 0, {}
  for k in pairs(OBJECTS) do onames[#onames + 1] = k end
  table.sort(onames)
  for _, oname in ipairs(onames) do
    for _, m in ipairs(methods_of(OBJECTS[oname]())) do
      nmethods = nmethods + 1
      for _ = 1, 12 do
        local obj = OBJECTS[oname]()
        probe(t, st, oname .. ':' .. m, obj[m], obj)
      end
    end
  end
  t.ok(nmethods > 150, ('%d methods found'):format(nmethods))
  t.ok(st.errors > st.calls / 4, ('many calls fail (%d of %d)'):format(st.errors, st.calls))
  t.eq(st.bad, 0, 'errors that do not point at the caller or that are Lua internals')
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
  -- a string's ._c is nil: the engine used to get a NULL tensor and crashed
  t.raises(function() return craft.zeros({ 2 }):copy_('abc') end, 'copy_: source must be a tensor, got the string "abc"')
  t.raises(function() return craft.F.linear('x', craft.zeros({ 2, 2 })) end, 'linear: input must be a tensor, got the string "x"')
  t.raises(function() return metrics.ssim(craft.zeros({ 2, 3 }), craft.zeros({ 2, 3 })) end,
    'metrics.ssim: a must be images [N, C, H, W] or [C, H, W], got a tensor [2, 3] f32')
end

return T
