-- The house rules of the Lua side (docs/architecture.md, docs/STYLE.md): only the binding modules
-- touch the C library (ffi.C / C.craft_*), no library module imports the `craft` facade, lines
-- are at most 110 columns; craft.repo's paths and package.path; the CAS dimension registry with a
-- dimension of a recipe's own; the reward spec against the positional form of cas:reward; the
-- trainers' lora_rank and its old name; Pipeline:generate's KL hook and decode option.
local craft = require 'craft'
local T = {}

-- the binding modules: the only Lua files that call the C library (docs/architecture.md)
local BINDING = {
  ['lua/craft/core.lua'] = true, ['lua/craft/runtime.lua'] = true, ['lua/craft/tensor.lua'] = true,
  ['lua/craft/autograd.lua'] = true, ['lua/craft/functional.lua'] = true, ['lua/craft/optim.lua'] = true,
  ['lua/craft/io.lua'] = true, ['lua/craft/data.lua'] = true, ['lua/craft/tokenizer.lua'] = true,
  ['lua/craft/phantoms.lua'] = true, ['lua/craft/device.lua'] = true, ['lua/craft/repl.lua'] = true,
  ['lua/craft/dist.lua'] = true, ['lua/craft/profile.lua'] = true,
}

local function files(cmd)
  local r = {}
  local p = io.popen(cmd)
  for l in p:lines() do r[#r + 1] = l end
  p:close()
  return r
end
local function read(path)
  local f = assert(io.open(path, 'rb'))
  local s = f:read('*a')
  f:close()
  return s
end

function T.binding_in_one_place(t)
  local lua = files('find lua -name "*.lua" | sort')
  t.ok(#lua > 50, 'the Lua library is there')
  -- recipes and examples are Lua outside the binding too
  for _, f in ipairs(files('find recipes examples -name "*.lua" | sort')) do lua[#lua + 1] = f end
  local offenders, used = {}, {}
  for _, f in ipairs(lua) do
    local s = read(f)
    if s:find('ffi.C', 1, true) or s:find('C.craft_', 1, true) then
      if BINDING[f] then used[f] = true else offenders[#offenders + 1] = f end
    end
  end
  t.eq(#offenders, 0, 'files outside the binding modules that call the C library: ' .. table.concat(offenders, ', '))
  for f in pairs(BINDING) do t.ok(used[f], f .. ' is listed as a binding module and calls the C library') end
end

function T.no_facade_inside_the_library(t)
  local offenders = {}
  for _, f in ipairs(files('find lua/craft -name "*.lua" | sort')) do
    -- the facade itself, and the REPL, whose job is to hand the facade to the user
    if f ~= 'lua/craft/init.lua' and f ~= 'lua/craft/repl.lua' then
      local s = read(f)
      for _, pat in ipairs { "require 'craft'", 'require "craft"', "require('craft')", 'require("craft")' } do
        if s:find(pat, 1, true) then offenders[#offenders + 1] = f end
      end
    end
  end
  t.eq(#offenders, 0, 'library modules importing the facade: ' .. table.concat(offenders, ', '))
end

function T.lines_at_most_110_columns(t)
  local long = {}
  local list = files('find lua recipes examples -name "*.lua" -not -path "lua/craft/study/*" | sort')
  t.ok(#list > 80, 'Lua files found')
  for _, f in ipairs(list) do
    local n = 0
    for line in io.lines(f) do
      n = n + 1
      if #line > 110 then long[#long + 1] = ('%s:%d (%d)'):format(f, n, #line) end
    end
  end
  t.eq(#long, 0, 'lines over 110 columns: ' .. table.concat(long, ', ', 1, math.min(#long, 10)))
end

function T.repo_paths_and_package_path(t)
  local repo = require 'craft.repo'
  t.eq(repo.normalize('/a/b/../c/./d//e'), '/a/c/d/e')
  t.eq(repo.normalize('a/../../b'), '../b')
  t.eq(repo.normalize('/a/..'), '/')
  local root = repo.root()
  t.ok(root and io.open(root .. '/lua/craft/init.lua') ~= nil, 'the root holds the library: ' .. tostring(root))
  -- the tests run from the repository: paths stay as the recipe wrote them
  t.eq(repo.path('models/builtin/sd-tiny'), 'models/builtin/sd-tiny')
  t.eq(repo.path('/abs/x'), '/abs/x')
  t.ok(io.open(repo.absolute(repo.path('recipes/quickstart.lua'))) ~= nil, 'a repository file is found')
  -- setup: the recipe's folder and recipes/ on package.path, after the library, once
  local saved_path, saved_recipe = package.path, repo.recipe()
  local ok, err = pcall(function()
    repo.setup('examples/01_tensors_autograd.lua')
    local p = package.path
    local ex, rec = p:find(root .. '/examples/?.lua', 1, true), p:find(root .. '/recipes/?.lua', 1, true)
    local lib = p:find('/craft/?.lua', 1, true) or p:find('lua/?.lua', 1, true)
    t.ok(ex and rec, 'examples/ and recipes/ on package.path')
    t.ok(lib and ex and lib < ex, 'after the library\'s own entries')
    repo.setup('examples/01_tensors_autograd.lua')
    local _, count = package.path:gsub(root:gsub('%p', '%%%0') .. '/examples/%?%.lua', '')
    t.eq(count, 1, 'set up twice, listed once')
    t.eq(repo.recipe(), root .. '/examples/01_tensors_autograd.lua')
    t.ok(type(require('lib.args')) == 'function', 'a recipe helper by require')
  end)
  package.path = saved_path
  if saved_recipe then repo.setup(saved_recipe) end
  package.path = saved_path
  t.ok(ok, tostring(err))
end

-- a pixels-only dimension of the test's own: the mean brightness
local BRIGHT = {
  name = 'brightness_test', encoder = nil,
  missing = function() return nil end,
  raw = function(cas, x) return x:mean({ 2, 3, 4 }) end,
}
local NO_BUILTIN = { prompt = 0, checklist = 0, probe = 0, fidelity = 0 }
local function bright_cas(extra)
  local o = { classes = { 'a', 'b' }, dims = { BRIGHT }, weights = NO_BUILTIN }
  for k, v in pairs(extra or {}) do o[k] = v end
  return craft.cas.new(o)
end
local function images(n, seed) return craft.rand({ n, 3, 8, 8 }, { seed = seed }) end
local LABELS = { 0, 1, 0, 1, 0, 1, 0, 1 }

function T.cas_dimension_registry(t)
  local dims = require 'craft.cas.dims'
  local names = dims.names()
  for i, d in ipairs { 'prompt', 'checklist', 'probe', 'fidelity' } do t.eq(names[i], d, 'built-in order') end
  for _, d in ipairs(dims.BUILTIN) do t.eq(dims.get(d).name, d, d .. ' found by name') end
  t.raises(function() dims.get('no_such_dimension') end, 'unknown dimension no_such_dimension')
  t.raises(function() dims.register('bad name', BRIGHT) end, 'must be a Lua identifier')
  t.raises(function() dims.register('x', { raw = function() end }) end, 'has no missing function')
  local cas = bright_cas()
  t.eq(#cas.dims, 5, 'the four and the recipe\'s own')
  t.eq(cas.dims[5], 'brightness_test')
  t.eq(cas.weights.brightness_test, 1, 'a listed dimension weighs 1 by default')
  t.raises(function() craft.cas.new { classes = { 'a', 'b' }, weights = { nonsense = 1 } } end,
    'unknown dimension nonsense')
  t.raises(function() cas:set_weights { brightness_test = 1, other = 1 } end, 'not one of this CAS')
  -- calibrate and score on it alone: z = (mean - mu_class) / sd_class, per the class's reals
  local x = images(8, 1)
  cas:calibrate(x, LABELS)
  local r = cas:score(x, LABELS)
  local m = x:mean({ 2, 3, 4 }):flat()
  local mu = cas.calib.mu.brightness_test
  local sd = cas.calib.sd.brightness_test
  t.near(r.dims.brightness_test[3], (m[3] - mu[1]) / sd[1], 1e-5, 'z-score of image 3 (class a)')
  t.near(r.cas[2], (m[2] - mu[2]) / sd[2], 1e-5, 'CAS = the one weighted dimension (image 2, class b)')
  -- differentiable: the reward's gradient reaches the images
  local xg = images(8, 2):requires_grad_(true)
  cas:reward(xg, LABELS):sum():backward()
  t.ok(xg.grad and xg.grad:abs():max():item() > 0, 'reward gradient reaches the images')
end

function T.reward_spec_is_the_positional_form(t)
  local RS = require 'craft.cas.reward_spec'
  local s = RS.new { cap = 0.5, transform = 'log' }
  t.eq(s.scale, false)
  t.eq(s.scale_images, 64)
  local s2 = s:with { cap = false }
  t.eq(s2.cap, false, 'with replaces')
  t.eq(s.cap, 0.5, 'the original is unchanged')
  t.eq(s2.transform, 'log', 'with keeps the other fields')
  t.raises(function() RS.new { transform = 'sqrt' } end, "transform is \"sqrt\"")
  t.raises(function() RS.new { weight = 1 } end, 'unknown field "weight"')
  t.raises(function() RS.new { scale = 'end' } end, 'scale is "end"')
  local cas = bright_cas()
  local x = images(8, 3)
  cas:calibrate(x, LABELS)
  local y = images(8, 4)
  local w = { brightness_test = 2 }
  local spec = RS.new { weights = w, cap = 0.1, transform = 'log', scale = { brightness_test = 3 } }
  local a = cas:reward(y, LABELS, spec)
  local b = cas:reward(y, LABELS, w, 0.1, { transform = 'log', scales = { brightness_test = 3 } })
  t.eq((a - b):abs():max():item(), 0, 'spec and positional form give the same reward')
  t.raises(function() cas:reward(y, LABELS, RS.new { scale = 'start' }) end, 'measured by the trainer')
end

function T.lora_rank_and_old_names(t)
  local common = require 'craft.train.common'
  local r = common.renamed('craft', { rank = 8, lr = 1 }, { rank = 'lora_rank' })
  t.eq(r.lora_rank, 8, 'rank becomes lora_rank')
  t.eq(r.rank, nil)
  t.raises(function() common.renamed('craft', { rank = 8, lora_rank = 4 }, { rank = 'lora_rank' }) end,
    'give lora_rank or its old name rank, not both')
  t.eq(require('craft.train.craft').PRESETS.tiny.lora_rank, 4)
  t.eq(require('craft.train.lora_diffusion').PRESETS.tiny.lora_rank, 4)
  t.raises(function() require('craft.train.dpo').train(nil, { rank = 8, prompts = {} }) end,
    'the LoRA rank is lora_rank')
  -- the CRAFT recipe's old reward fields are laid over its spec
  local CT = require 'craft.train.craft'
  local spec = CT.reward_spec_of { reward = { cap = 0.5, transform = 'log' }, reward_cap = false,
    reward_weights = { probe = 1 } }
  t.eq(spec.cap, false, 'reward_cap over the spec')
  t.eq(spec.transform, 'log', 'the spec\'s transform kept')
  t.eq(spec.weights.probe, 1, 'reward_weights became weights')
  t.eq(CT.reward_spec_of { reward = function() end }, nil, 'a function reward has no spec')
  t.eq(CT.reward_spec_of({ reward_cap = 'cas' }).cap, nil, '\'cas\': the CAS recipe\'s cap')
end

function T.generate_kl_hook_and_decode(t)
  local p = require('craft.models').load('tests/fixtures/models/tiny_sd', { quiet = true })
  local emb = craft.randn({ 2, 77, p.unet.config.cross_attention_dim or 32 }, { seed = 1 })
  local base = { prompt_embeds = emb, negative_prompt_embeds = emb * 0, cfg = 2, steps = 3, seed = 5 }
  local function with(o)
    local r = {}
    for k, v in pairs(base) do r[k] = v end
    for k, v in pairs(o) do r[k] = v end
    return r
  end
  local img, lat = craft.no_grad(function() return p:generate(base) end)
  local none, lat2, info = craft.no_grad(function() return p:generate(with { decode = false }) end)
  t.eq(none, nil, 'decode = false gives no images')
  t.eq((lat2 - lat):abs():max():item(), 0, 'the same latents')
  t.eq(info.kl, nil, 'no kl without the hook')
  -- the hook runs at each model evaluation inside the gradient window, only with grad on
  p.unet:requires_grad_(true)
  local calls = 0
  local function hook(unet, input, tt, context, out) calls = calls + 1; return out:square():mean() end
  local img2, _, info2 = p:generate(with { grad_steps = 2, kl = hook })
  t.eq(calls, 2, 'hook called in the last K = 2 evaluations')
  t.ok(info2.kl and info2.kl.requires_grad, 'the penalty carries a graph')
  t.eq((img2:detach() - img):abs():max():item(), 0, 'the window does not change the images')
  calls = 0
  craft.no_grad(function() return p:generate(with { grad_steps = 2, kl = hook }) end)
  t.eq(calls, 0, 'no penalty without grad')
  -- kl = true without adapters: the model is its own base, the penalty is exactly 0
  local _, _, info3 = p:generate(with { grad_steps = 1, kl = true })
  t.eq(info3.kl:item(), 0, 'LoRA-vs-base penalty of an unadapted model')
  t.raises(function() p:generate(with { kl = 1 }) end, 'generate: kl must be')
end

return T
