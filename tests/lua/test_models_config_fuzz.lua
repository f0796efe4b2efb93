-- Config fuzzing: the committed parity fixtures' config.json files (UNet, VAE, a scheduler,
-- CLIP, DINOv2, ResNet) are written again with random, seeded perturbations (unknown keys,
-- values of the wrong type, nested lists, nulls, deleted keys, in nested objects too) and
-- loaded through the ordinary loaders. Each must either load and compute, or be refused with
-- one clear line: never a Lua internal error ("attempt to index", "'for' limit", "table:
-- 0x..."). When the perturbation leaves craft's reading of the config unchanged (an unknown
-- key, an inert key, a value equal to the default), the output must still match the reference
-- (diffusers / transformers); an unknown key is noted once, on one line.
local craft = require 'craft'
local io_ = require 'craft.io'
local models = require 'craft.models'
local O = require 'craft.models.options'
local null = io_.null
local T = {}

local M, E = 'tests/fixtures/models/', 'tests/fixtures/encoders/'
local SEED = tonumber(os.getenv('CRAFT_FUZZ_SEED') or '') or 20261204
local ROUNDS = tonumber(os.getenv('CRAFT_FUZZ_ROUNDS') or '') or 30

---------------------------------------------------------------- the targets
local function copy(src, dst)
  local f = assert(io.open(src, 'rb'))
  local data = f:read('*a')
  f:close()
  local g = assert(io.open(dst, 'wb'))
  g:write(data)
  g:close()
end

local samplers = O.read(M .. 'cases/samplers.json').cases
local sref = io_.load_safetensors(M .. 'cases/samplers.safetensors', { dtype = 'stored' })
local function sampler_case(name)
  for _, c in ipairs(samplers) do if c.name == name then return c end end
end

-- name -> { dir (fixture), files (copied as they are), config file, load(dir) -> model,
-- run(model) -> out, ref, tol, options (for inert keys) }
local function targets()
  local U, V = require 'craft.models.unet', require 'craft.models.vae'
  local clip, dino, resnet = require 'craft.models.clip', require 'craft.models.dinov2', require 'craft.models.resnet'
  local S = require 'craft.models.schedulers'
  local uc = io_.load_safetensors(M .. 'unet_options/downsample_padding_0/case.safetensors')
  local vc = io_.load_safetensors(M .. 'cases/vae.safetensors')
  local cc = io_.load_safetensors(E .. 'clip/io.safetensors')
  local dc = io_.load_safetensors(E .. 'dinov2/io.safetensors')
  local rc = io_.load_safetensors(E .. 'resnet/io.safetensors')
  local function nograd(f) return function(m) return craft.no_grad(f, m) end end
  local list = {
    { name = 'unet', dir = M .. 'unet_options/downsample_padding_0', files = { 'diffusion_pytorch_model.fp16.safetensors' },
      config = 'config.json', options = U.OPTIONS, load = function(d) return models.load_unet(d) end,
      run = nograd(function(u) return u(uc.sample, uc.timestep, uc.encoder_hidden_states) end), ref = uc.out, tol = 1e-5 },
    { name = 'vae', dir = M .. 'tiny_sd/vae', files = { 'diffusion_pytorch_model.fp16.safetensors' }, config = 'config.json',
      options = V.OPTIONS, load = function(d) return models.load_vae(d) end,
      run = nograd(function(v) return v:decode(vc.z) end), ref = vc.decoded, tol = 1e-4 },
    { name = 'clip', dir = E .. 'clip', files = { 'model.safetensors' }, config = 'config.json', options = clip.CLIP_OPTIONS,
      nested = { text_config = clip.TEXT_OPTIONS, vision_config = clip.VISION_OPTIONS },
      load = function(d) return clip.from_pretrained(d) end,
      run = nograd(function(m) return m:child('text_model')(cc.input_ids).last_hidden_state end), ref = cc.text_last_hidden_state, tol = 1e-4 },
    { name = 'dinov2', dir = E .. 'dinov2', files = { 'model.safetensors' }, config = 'config.json', options = dino.OPTIONS,
      load = function(d) return dino.from_pretrained(d) end,
      run = nograd(function(m) return m(dc.pixel_values).last_hidden_state end), ref = dc.last_hidden_state, tol = 1e-4 },
    { name = 'resnet', dir = E .. 'resnet', files = { 'model.safetensors' }, config = 'config.json', options = resnet.OPTIONS,
      load = function(d) return resnet.from_pretrained(d) end,
      run = nograd(function(m) return m(rc.pixel_values).last_hidden_state end), ref = rc.last_hidden_state, tol = 1e-4 },
  }
  -- a scheduler: a whole sampling run (made-up model, as test_samplers.lua) against diffusers
  for _, name in ipairs { 'dpm_2m_karras_sd15', 'pndm_prk', 'euler_a_sd15' } do
    local c = sampler_case(name)
    list[#list + 1] = { name = name, config = 'scheduler_config.json', files = {}, base = c.config,
      options = S.CLASSES[c.config._class_name].OPTIONS,
      load = function(d) return S.from_config(d) end,
      run = function(s)
        local ts = s:set_timesteps(c.steps)
        local x = sref.x0 * s.init_noise_sigma
        for i, tt in ipairs(ts) do
          local out = s:scale_model_input(x, tt) * 0.3 + sref.c * (tt / 1000)
          x = s:step(out, tt, x, { noise = sref[('%s.noise%d'):format(name, i)] }).prev_sample
        end
        return x
      end,
      ref = sref[('%s.x%d'):format(name, sref[name .. '.timesteps']:numel())], tol = 1e-5 }
  end
  return list
end

---------------------------------------------------------------- perturbations
local function deep_copy(v)
  if type(v) ~= 'table' or v == null then return v end
  local r = setmetatable({}, getmetatable(v))
  for k, x in pairs(v) do r[k] = deep_copy(x) end
  return r
end

-- values of every JSON shape
local function junk(rnd)
  local pool = {
    function() return 'fuzz' end, function() return '' end, function() return -3 end, function() return 0 end,
    function() return 2.5 end, function() return 7 end, function() return 1e-3 end, function() return true end,
    function() return false end, function() return null end, function() return {} end,
    function() return io_.array {} end, function() return io_.array { 1, 2 } end,
    function() return io_.array { io_.array { 1 }, io_.array { 2, 3 } } end, function() return io_.array { 'x', null } end,
    function() return { a = 1, b = io_.array { true } } end, function() return io_.array { io_.array {} } end,
  }
  return pool[rnd(#pool)]()
end

-- the objects inside a config (the top level, text_config, ...) with their paths
local function objects(cfg)
  local r = { { cfg, '' } }
  for k, v in pairs(cfg) do
    if type(v) == 'table' and v ~= null and not O.is_list(v) then r[#r + 1] = { v, k .. '.' } end
  end
  table.sort(r, function(a, b) return a[2] < b[2] end)
  return r
end
local function sorted_keys(t)
  local r = {}
  for k in pairs(t) do r[#r + 1] = k end
  table.sort(r)
  return r
end

-- perturb(cfg, rnd, n, nested, tag) -> description, the names of the unknown keys added to
-- objects craft reads (the top level, or the nested configs it knows)
local function perturb(cfg, rnd, n, nested, tag)
  local what, added = {}, {}
  for m = 1, n do
    local objs = objects(cfg)
    local obj = objs[rnd(#objs)]
    local o, path = obj[1], obj[2]
    local keys = sorted_keys(o)
    local kind = rnd(6)
    if kind == 1 or #keys == 0 then
      local k = ('zz_fuzz_%s_%d'):format(tag, m)
      o[k] = junk(rnd)
      if path == '' or (nested and nested[path:sub(1, -2)]) then added[#added + 1] = { o, k, path:sub(1, -2) } end
      what[#what + 1] = 'unknown ' .. path .. k
    else
      local k = keys[rnd(#keys)]
      if kind == 2 then o[k] = junk(rnd); what[#what + 1] = 'junk ' .. path .. k .. ' = ' .. O.show(o[k])
      elseif kind == 3 then o[k] = nil; what[#what + 1] = 'deleted ' .. path .. k
      elseif kind == 4 then o[k] = io_.array { o[k] }; what[#what + 1] = 'nested ' .. path .. k
      elseif kind == 5 then o[k] = null; what[#what + 1] = 'null ' .. path .. k
      else   -- a list entry replaced
        local v = o[k]
        if O.is_list(v) and #v > 0 then v[rnd(#v)] = junk(rnd); what[#what + 1] = 'entry of ' .. path .. k
        else o[k] = junk(rnd); what[#what + 1] = 'junk ' .. path .. k end
      end
    end
  end
  local still = {}   -- a later perturbation may have removed or replaced one
  for _, a in ipairs(added) do
    local o = a[3] == '' and cfg or cfg[a[3]]
    if o == a[1] and o[a[2]] ~= nil then still[#still + 1] = a[2] end
  end
  return table.concat(what, '; '), still
end

---------------------------------------------------------------- outcomes
local BAD = { 'attempt to', "'for' ", 'table: 0x', 'bad argument', 'stack traceback', 'nil value', 'number expected',
  'lua/craft/' }
local function clean(err)
  err = tostring(err)
  if err:find('\n') then return false, 'more than one line' end
  for _, b in ipairs(BAD) do if err:find(b, 1, true) then return false, b end end
  return true
end

-- craft's reading of a config: the filled config without the keys that have no effect
local function effective(c, options, nested)
  local r = {}
  for k, v in pairs(c or {}) do
    local e = options[k]
    if not (e and e.inert) then
      r[k] = nested and nested[k] and type(v) == 'table' and effective(v, nested[k]) or v
    end
  end
  return r
end
local function same(a, b)
  if type(a) ~= 'table' or type(b) ~= 'table' then return a == b end
  for k, v in pairs(a) do if not same(v, b[k]) then return false end end
  for k in pairs(b) do if a[k] == nil then return false end end
  return true
end
local function reading(m, tg)
  local c = m.config
  if m.kind == 'CLIPModel' then
    return { top = c.projection_dim, text = effective(c.text_config, tg.nested.text_config),
      vision = effective(c.vision_config, tg.nested.vision_config) }
  end
  return effective(c, tg.options, tg.nested)
end

function T.perturbed_configs_compute_at_parity_or_are_refused_clearly(t)
  local tmp = os.tmpname()
  os.remove(tmp)
  assert(os.execute('mkdir -p ' .. tmp) == 0 or true)
  local notes = {}
  local old = O.note_writer
  O.note_writer = function(l) notes[#notes + 1] = l end
  math.randomseed(SEED)
  local rnd = function(n) return math.random(n) end
  local totals = { parity = 0, other = 0, refused = 0 }
  local ok_all, err_all = pcall(function()
    for ti, tg in ipairs(targets()) do
      local d = ('%s/%d_%s'):format(tmp, ti, tg.name)
      os.execute('mkdir -p ' .. d)
      for _, f in ipairs(tg.files) do copy(tg.dir .. '/' .. f, d .. '/' .. f) end
      local base = tg.base or io_.read_json(tg.dir .. '/' .. tg.config)
      io_.write_json(d .. '/' .. tg.config, base)
      local m0 = tg.load(d)
      local want = reading(m0, tg)
      t.close(tg.run(m0), tg.ref, tg.tol, tg.name .. ' unperturbed')
      for round = 1, ROUNDS do
        local cfg = deep_copy(base)
        local what, added = perturb(cfg, rnd, rnd(2), tg.nested, tg.name:gsub('%W', '') .. round)
        io_.write_json(d .. '/' .. tg.config, cfg)
        local before = #notes
        local ok, res = pcall(function()
          local m = tg.load(d)
          return { m = m, out = tg.run(m) }
        end)
        local label = ('%s round %d (%s)'):format(tg.name, round, what)
        if ok then
          if same(reading(res.m, tg), want) then
            totals.parity = totals.parity + 1
            t.close(res.out, tg.ref, tg.tol, label .. ': unchanged reading, same output')
          else
            totals.other = totals.other + 1
          end
          -- each unknown key named in a new note; one line per file (or nested object) at most
          local new = table.concat(notes, '\n', before + 1)
          local named = true
          for _, k in ipairs(added) do named = named and new:find(k, 1, true) ~= nil end
          t.ok(named and #notes - before <= #objects(cfg), label .. ': the unknown keys noted, one line each file: ' .. new)
        else
          totals.refused = totals.refused + 1
          local fine, why = clean(res)
          t.ok(fine, ('%s: not a clear refusal (%s): %s'):format(label, tostring(why), tostring(res)))
          if os.getenv('CRAFT_SHOW_ERRORS') then print(label, tostring(res)) end
        end
      end
    end
  end)
  O.note_writer = old
  os.execute('rm -rf ' .. tmp)
  t.ok(ok_all, 'fuzz loop: ' .. tostring(err_all))
  -- the mix: some perturbations are harmless, many are refused
  t.ok(totals.parity >= 20 and totals.refused >= 60, ('outcomes: %d at parity, %d other valid configs, %d refused')
    :format(totals.parity, totals.other, totals.refused))
  if os.getenv('CRAFT_SHOW_ERRORS') then
    print(('fuzz: %d at parity, %d other valid configs, %d refused'):format(totals.parity, totals.other, totals.refused))
  end
end

return T
