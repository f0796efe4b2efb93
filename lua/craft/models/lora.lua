-- craft.models.lora: LoRA adapters on a model's linear / conv layers (y = W x + b + s * up(down(x)),
-- s = alpha / rank), training only the adapters, merging them into the base weights and back, and
-- files in the diffusers/peft and the kohya layouts (keymap.lua names the keys). Also textual
-- inversion embeddings in the file layout diffusers' load_textual_inversion reads.
--   local names = lora.attach(unet, {rank = 16})          -- attention projections, base frozen
--   local opt = craft.optim.AdamW(lora.parameters(unet), {lr = 1e-4})
--   lora.save(unet, 'lora.safetensors', {layout = 'kohya'}); lora.load(unet2, 'lora.safetensors')
local T = require 'craft.tensor'
local A = require 'craft.autograd'
local argerror = require('craft.core').argerror
local io_ = require 'craft.io'
local keymap = require 'craft.models.keymap'
local nn, F = require 'craft.nn', require 'craft.functional'

local M = {}

-- Default targets: the UNet's attention projections (METHOD: "LoRA on the attention projections").
M.ATTENTION = { '%.to_q$', '%.to_k$', '%.to_v$', '%.to_out%.0$' }
-- With convs = true also the resnet convolutions and the transformers' proj_in / proj_out.
M.CONVS = { '%.conv1$', '%.conv2$', '%.proj_in$', '%.proj_out$' }

local function kind_of(m)
  local mt = getmetatable(m)
  if mt == nn.Linear then return 'linear' end
  if mt == nn.Conv2d then return 'conv' end
  return nil
end

local function forward_lora(self, x)
  local p, l = self._params, self._lora
  if kind_of(self) == 'linear' then
    local y = F.linear(x, p.weight, p.bias)
    if l.merged then return y end
    return y + F.linear(F.linear(x, l.down), l.up) * l.scale
  end
  local y = F.conv2d(x, p.weight, p.bias, self.opts)
  if l.merged then return y end
  local o = self.opts
  return y + F.conv2d(F.conv2d(x, l.down, nil,
    { stride = o.stride, padding = o.padding, dilation = o.dilation }), l.up) * l.scale
end

-- Adds (or resets) the adapter of one module; down ~ U(+-1/sqrt(fan_in)) as peft, up = 0 so the
-- model starts unchanged.
local function attach_one(m, rank, alpha, seed, offset)
  local w = m._params.weight
  local cout, cin = w:size(1), w:size(2)
  local down_shape, up_shape
  if kind_of(m) == 'linear' then down_shape, up_shape = { rank, cin }, { cout, rank }
  else
    if (m.opts.groups or 1) ~= 1 then argerror('lora: grouped convolutions are not supported') end
    down_shape, up_shape = { rank, cin, w:size(3), w:size(4) }, { cout, rank, 1, 1 }
  end
  local fan_in = down_shape[2] * (down_shape[3] or 1) * (down_shape[4] or 1)
  local bound = 1 / math.sqrt(fan_in)
  -- the adapter lives with its layer, whatever the current device
  local down = T.rand(down_shape, { seed = seed, offset = offset, device = w.device }) * (2 * bound) - bound
  m._lora = { down = down:detach():requires_grad_(true),
    up = T.zeros(up_shape, { requires_grad = true, device = w.device }),
    rank = rank, alpha = alpha, scale = alpha / rank, merged = false }
  m.forward = forward_lora
  return m._lora
end

-- The modules with an adapter: list of { name, module } in model order.
-- model must be an nn module (fname names the caller in the error)
local function module_arg(fname, model)
  require('craft.core').want(fname, 'model', model, 'table')
  if type(model.named_modules) ~= 'function' then
    argerror(('%s: model must be an nn module, got a table without named_modules'):format(fname))
  end
  return model
end

function M.adapted(model)
  module_arg('lora.adapted', model)
  local r = {}
  for _, nm in ipairs(model:named_modules()) do
    if rawget(nm[2], '_lora') then r[#r + 1] = nm end
  end
  return r
end

-- attach(model, {rank=16, alpha=rank, targets=patterns, convs=false, seed=0, freeze=true})
--   -> names of the adapted modules. Freezes every base parameter of model (requires_grad false).
-- with_scale(model, s, fn, ...): fn(...) with every adapter's scale set to s (0 = the frozen
-- base model: DPO's reference, the KL penalty's base prediction), restored afterwards however fn
-- ends.
local function pack(...) return { n = select('#', ...), ... } end
function M.with_scale(model, s, fn, ...)
  local ad, saved = M.adapted(model), {}
  for i, nm in ipairs(ad) do saved[i] = nm[2]._lora.scale; nm[2]._lora.scale = s end
  local r = pack(pcall(fn, ...))
  for i, nm in ipairs(ad) do nm[2]._lora.scale = saved[i] end
  if not r[1] then error(r[2], 0) end
  return unpack(r, 2, r.n)
end

function M.attach(model, o)
  module_arg('lora.attach', model)
  local want = require('craft.core').want
  o = want('lora.attach', 'options', o, 'table', true) or {}
  want('lora.attach', 'options.rank', o.rank, 'positive', true)
  want('lora.attach', 'options.alpha', o.alpha, 'number', true)
  want('lora.attach', 'options.targets', o.targets, 'table', true)
  local rank = o.rank or 16
  local alpha = o.alpha or rank
  local pats = {}
  for _, p in ipairs(o.targets or M.ATTENTION) do pats[#pats + 1] = p end
  if o.convs then for _, p in ipairs(M.CONVS) do pats[#pats + 1] = p end end
  if o.freeze ~= false then model:requires_grad_(false) end
  local names, offset = {}, 0
  for _, nm in ipairs(model:named_modules()) do
    local name, m = nm[1], nm[2]
    if kind_of(m) then
      for _, p in ipairs(pats) do
        if ('.' .. name):find(p) then
          local l = attach_one(m, rank, alpha, o.seed or 0, offset)
          offset = offset + l.down:numel() + 4
          names[#names + 1] = name
          break
        end
      end
    end
  end
  if #names == 0 then argerror('lora.attach: no Linear / Conv2d module matches the targets') end
  return names
end

-- parameters(model) -> { {name, tensor}, ... } of the adapters (for craft.optim)
function M.parameters(model)
  module_arg('lora.parameters', model)
  local r = {}
  for _, nm in ipairs(M.adapted(model)) do
    r[#r + 1] = { nm[1] .. '.lora_A.weight', nm[2]._lora.down }
    r[#r + 1] = { nm[1] .. '.lora_B.weight', nm[2]._lora.up }
  end
  return r
end

-- The weight delta s * up @ down in the base weight's shape.
local function delta(m)
  local l = m._lora
  local w = m._params.weight
  local d = l.up:reshape(l.up:size(1), l.rank):matmul(l.down:reshape(l.rank, -1))
  return d:reshape(w.shape) * l.scale
end

-- merge(model): folds every adapter into its base weight (inference at base speed). The base
-- weight is kept, so unmerge restores it bit for bit.
function M.merge(model)
  module_arg('lora.merge', model)
  A.no_grad(function()
    for _, nm in ipairs(M.adapted(model)) do
      local m, l = nm[2], nm[2]._lora
      if not l.merged then
        local w = m._params.weight
        l.saved = w:clone()
        w:add_(delta(m))
        l.merged = true
      end
    end
  end)
end
function M.unmerge(model)
  for _, nm in ipairs(M.adapted(model)) do
    local l = nm[2]._lora
    if l.merged then
      nm[2]._params.weight:copy_(l.saved)
      l.saved, l.merged = nil, false
    end
  end
end
-- detach(model): removes the adapters (unmerging first), leaving the base model.
function M.detach(model)
  M.unmerge(model)
  for _, nm in ipairs(M.adapted(model)) do
    rawset(nm[2], '_lora', nil)
    rawset(nm[2], 'forward', nil)
  end
end

-- bake(model): folds every adapter into its base weight for good and removes the adapters: the
-- model is then a plain model whose weights carry the adaptation (a start point for another
-- adapter, which a DRaFT+-style penalty then holds to this model rather than the original).
function M.bake(model)
  M.merge(model)
  for _, nm in ipairs(M.adapted(model)) do
    rawset(nm[2], '_lora', nil)
    rawset(nm[2], 'forward', nil)
  end
end

---------------------------------------------------------------- files
-- save(model, path, {layout='peft'|'kohya', prefix='unet.', kohya_prefix='lora_unet'})
-- peft keeps no alpha in the file (diffusers then uses alpha = rank), so a scale other than 1 is
-- folded into lora_B; kohya stores alpha next to each pair.
function M.save(model, path, o)
  module_arg('lora.save', model)
  local want = require('craft.core').want
  want('lora.save', 'path', path, 'string')
  o = want('lora.save', 'options', o, 'table', true) or {}
  local layout = o.layout or 'peft'
  local out, ranks = {}, {}
  for _, nm in ipairs(M.adapted(model)) do
    local l = nm[2]._lora
    local kd, ku, ka = keymap.lora_keys(nm[1], layout, o)
    out[kd] = l.down:detach()
    if layout == 'kohya' then
      out[ku] = l.up:detach()
      out[ka] = T.tensor(l.alpha)
    else
      out[ku] = l.scale == 1 and l.up:detach() or (l.up * l.scale):detach()
    end
    ranks[l.rank] = l.alpha
  end
  if next(out) == nil then argerror('lora.save: the model has no adapters') end
  local meta = { format = 'pt' }
  if layout == 'kohya' then
    local r, a = next(ranks)
    meta.ss_network_module = 'networks.lora'
    meta.ss_network_dim, meta.ss_network_alpha = tostring(r), tostring(a)
  end
  return io_.save_safetensors(path, out, meta)
end

local function shape_str(t) return '[' .. table.concat(t.shape, ', ') .. ']' end

-- load(model, path_or_table, {prefix=, kohya_prefix=, quiet=}) -> names loaded, keys not loaded.
-- Reads peft (lora_A/lora_B), diffusers (lora.down/lora.up, processor.to_q_lora) and kohya
-- (lora_down/lora_up/alpha) layouts; attaches adapters where the model has none yet.
function M.load(model, src, o)
  module_arg('lora.load', model)
  local want = require('craft.core').want
  want('lora.load', 'source', src, 'string|table')
  o = want('lora.load', 'options', o, 'table', true) or {}
  local sd = type(src) == 'string' and io_.load_safetensors(src) or src
  local what = type(src) == 'string' and src or 'lora state'
  local modules, names = {}, {}
  for _, nm in ipairs(model:named_modules()) do
    if kind_of(nm[2]) then modules[nm[1]] = nm[2]; names[#names + 1] = nm[1] end
  end
  local groups, skipped = keymap.group_lora(sd, names, o)
  local loaded = {}
  for name, g in pairs(groups) do
    local m = modules[name]
    if not m or not g.down or not g.up then
      skipped[#skipped + 1] = name .. (m and ' (incomplete pair)' or ' (no such layer)')
    else
      local rank = g.down:size(1)
      local l = rawget(m, '_lora')
      if not l or l.rank ~= rank then l = attach_one(m, rank, rank, 0, 0) end
      if l.merged then argerror(('lora.load %s: %s is merged; unmerge first'):format(what, name)) end
      local alpha = g.alpha and g.alpha:item() or rank
      for _, pr in ipairs { { 'down', g.down, l.down }, { 'up', g.up, l.up } } do
        if shape_str(pr[2]) ~= shape_str(pr[3]) then
          error(('lora.load %s: %s lora %s has shape %s in the file but %s in the model'):format(
            what, name, pr[1], shape_str(pr[2]), shape_str(pr[3])), 2)
        end
        pr[3]:copy_(pr[2])
      end
      l.alpha, l.scale = alpha, alpha / rank
      loaded[#loaded + 1] = name
    end
  end
  table.sort(loaded)
  table.sort(skipped)
  if #skipped > 0 and not o.quiet then
    io.stderr:write(('craft: warning: %s: %d LoRA key(s) / layer(s) not loaded (%s%s)\n'):format(what,
      #skipped,
      table.concat(skipped, ', ', 1, math.min(3, #skipped)), #skipped > 3 and ', ...' or ''))
  end
  return loaded, skipped
end

---------------------------------------------------------------- textual inversion
-- save_textual_inversion(path, token, embeddings [n, dim] or [dim]): { [token] = [n, dim] }, the
-- file layout of diffusers' textual_inversion training script and load_textual_inversion.
function M.save_textual_inversion(path, token, emb)
  local want = require('craft.core').want
  want('lora.save_textual_inversion', 'path', path, 'string')
  want('lora.save_textual_inversion', 'token', token, 'string')
  want('lora.save_textual_inversion', 'embedding', emb, 'tensor')
  if emb:dim() == 1 then emb = emb:reshape(1, emb:size(1)) end
  return io_.save_safetensors(path, { [token] = emb:detach():float():contiguous() })
end
-- load_textual_inversion(path) -> token (nil for an "emb_params" file), embeddings [n, dim]
function M.load_textual_inversion(path)
  require('craft.core').want('lora.load_textual_inversion', 'path', path, 'string')
  local sd, order = io_.load_safetensors(path)
  if sd.emb_params then return nil, sd.emb_params end
  if #order ~= 1 then
    argerror(('%s: a textual inversion file holds one {token: embedding} entry or "emb_params", found %d '
      .. 'tensors'):format(path, #order))
  end
  local e = sd[order[1]]
  if e:dim() == 1 then e = e:reshape(1, e:size(1)) end
  return order[1], e
end

return M
