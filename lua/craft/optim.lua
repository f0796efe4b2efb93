-- craft.optim: AdamW and SGD (C kernels, PyTorch semantics), global-norm gradient clipping,
-- EMA of parameters and learning-rate schedules. Optimiser state round-trips through
-- state_dict() for checkpoints.
local core = require 'craft.core'
local T = require 'craft.tensor'
local ffi, C, check, want, argerror = core.ffi, core.C, core.check, core.want, core.argerror

local optim = {}

local function params_list(params, fname)
  -- accepts a module, a list of tensors, or a list of {name, tensor} pairs
  want(fname, 'params', params, 'table')
  if params.parameters and params._params then params = params:named_parameters() end
  local list = {}
  for i, p in ipairs(params) do
    if T.is_tensor(p) then list[i] = { 'param' .. i, p }
    elseif type(p) == 'table' and type(p[1]) == 'string' and T.is_tensor(p[2]) then list[i] = p
    else
      argerror(('%s: params[%d] must be a tensor or a {name, tensor} pair, got %s'):format(fname, i,
        core.describe(p)))
    end
  end
  return list
end
-- the options every optimiser shares: a table, lr and weight_decay numbers
local function options(fname, o)
  o = want(fname, 'options', o, 'table', true) or {}
  want(fname, 'options.lr', o.lr, 'number', true)
  want(fname, 'options.weight_decay', o.weight_decay, 'number', true)
  return o
end

local Optimizer = {}
Optimizer.__index = Optimizer

function Optimizer:zero_grad()
  for _, np in ipairs(self.params) do np[2]:zero_grad() end
end
-- state_dict(): { step = n, lr = x, ["exp_avg." .. name] = tensor, ... } (tensors are the live state)
function Optimizer:state_dict()
  local sd = { step = self.step_count, lr = self.lr }
  for name, st in pairs(self.state) do
    for k, t in pairs(st) do sd[k .. '.' .. name] = t end
  end
  return sd
end
function Optimizer:load_state_dict(sd)
  want('optimizer.load_state_dict', 'state dict', sd, 'table')
  want('optimizer.load_state_dict', 'state dict step', sd.step, 'count', true)
  want('optimizer.load_state_dict', 'state dict lr', sd.lr, 'number', true)
  self.step_count = sd.step or 0
  if sd.lr then self.lr = sd.lr end
  for _, np in ipairs(self.params) do
    local name = np[1]
    for _, k in ipairs(self.state_keys) do
      local t = sd[k .. '.' .. name]
      if t then
        self.state[name] = self.state[name] or {}
        local cur = self.state[name][k]
        if cur then cur:copy_(t) else self.state[name][k] = t:float():clone():detach() end
      end
    end
  end
end

local function state_for(self, name, p)
  local st = self.state[name]
  if not st then
    st = {}
    for _, k in ipairs(self.state_keys) do
      st[k] = T.zeros(p.shape)
      if p.device ~= 'cpu' then st[k] = st[k]:to(p.device) end   -- the state lives with its parameter
    end
    self.state[name] = st
  end
  return st
end

-- AdamW(params, {lr=1e-3, betas={0.9, 0.999}, eps=1e-8, weight_decay=1e-2})
function optim.AdamW(params, o)
  o = options('optim.AdamW', o)
  want('optim.AdamW', 'options.betas', o.betas, 'table', true)
  want('optim.AdamW', 'options.eps', o.eps, 'number', true)
  local self = setmetatable({ params = params_list(params, 'optim.AdamW'), state = {}, step_count = 0,
    lr = o.lr or 1e-3, betas = o.betas or { 0.9, 0.999 }, eps = o.eps or 1e-8,
    weight_decay = o.weight_decay == nil and 1e-2 or o.weight_decay,
    state_keys = { 'exp_avg', 'exp_avg_sq' } }, Optimizer)
  self.step = function(s)
    s.step_count = s.step_count + 1
    for _, np in ipairs(s.params) do
      local name, p = np[1], np[2]
      local g = p._c.grad
      if g ~= nil then
        local st = state_for(s, name, p)
        check(C.craft_adamw_step(p._c, g, st.exp_avg._c, st.exp_avg_sq._c, s.lr, s.betas[1], s.betas[2],
          s.eps,
          s.weight_decay, s.step_count), 2)
      end
    end
  end
  return self
end

-- SGD(params, {lr, momentum=0, weight_decay=0, nesterov=false})
function optim.SGD(params, o)
  o = options('optim.SGD', o)
  want('optim.SGD', 'options.momentum', o.momentum, 'number', true)
  local self = setmetatable({ params = params_list(params, 'optim.SGD'), state = {}, step_count = 0,
    lr = o.lr or 1e-2,
    momentum = o.momentum or 0, weight_decay = o.weight_decay or 0, nesterov = o.nesterov or false,
    state_keys = { 'momentum_buffer' } }, Optimizer)
  self.step = function(s)
    s.step_count = s.step_count + 1
    for _, np in ipairs(s.params) do
      local name, p = np[1], np[2]
      local g = p._c.grad
      if g ~= nil then
        local buf = s.momentum ~= 0 and state_for(s, name, p).momentum_buffer._c or nil
        check(C.craft_sgd_step(p._c, g, buf, s.lr, s.momentum, s.weight_decay, s.nesterov and 1 or 0), 2)
      end
    end
  end
  return self
end

-- clip_grad_norm(params, max_norm) -> total norm before clipping
function optim.clip_grad_norm(params, max_norm)
  local list = params_list(params, 'optim.clip_grad_norm')
  want('optim.clip_grad_norm', 'max_norm', max_norm, 'number')
  local grads = {}
  for _, np in ipairs(list) do
    local g = np[2]._c.grad
    if g ~= nil then grads[#grads + 1] = g end
  end
  if #grads == 0 then return 0 end
  local arr = ffi.new('craft_tensor*[?]', #grads, grads)
  local total = ffi.new('double[1]')
  check(C.craft_clip_grad_norm(#grads, arr, max_norm, total), 2)
  return tonumber(total[0])
end

-- ema_update(avg, x, decay): avg <- decay * avg + (1 - decay) * x in place (no autograd), for an
-- average kept in tensors of one's own (a DINO teacher)
function optim.ema_update(avg, x, decay)
  want('optim.ema_update', 'average', avg, 'tensor')
  want('optim.ema_update', 'x', x, 'tensor')
  want('optim.ema_update', 'decay', decay, 'number')
  check(C.craft_ema_update(avg._c, x._c, decay), 2)
end

-- EMA(params, decay): ema:update() after each step; ema:copy_to(params) to use the averages.
function optim.EMA(params, decay)
  local list = params_list(params, 'optim.EMA')
  want('optim.EMA', 'decay', decay, 'number', true)
  local self = { decay = decay or 0.999, shadow = {}, params = list }
  for i, np in ipairs(list) do self.shadow[i] = np[2]:detach():clone() end
  function self:update()
    for i, np in ipairs(self.params) do
      check(C.craft_ema_update(self.shadow[i]._c, np[2]._c, self.decay), 2)
    end
  end
  function self:copy_to(target)
    local tl = target and params_list(target, 'EMA:copy_to') or self.params
    for i, np in ipairs(tl) do np[2]:detach():copy_(self.shadow[i]) end
  end
  return self
end

-- Schedules: functions step -> multiplier of the base lr.
optim.schedule = {}
function optim.schedule.constant() return function() return 1 end end
function optim.schedule.linear_warmup(warmup)
  want('optim.schedule.linear_warmup', 'warmup', warmup, 'count')
  return function(step) return warmup > 0 and math.min(1, (step + 1) / warmup) or 1 end
end
-- cosine(total, {warmup=0, min_ratio=0})
function optim.schedule.cosine(total, o)
  want('optim.schedule.cosine', 'total', total, 'count')
  o = want('optim.schedule.cosine', 'options', o, 'table', true) or {}
  want('optim.schedule.cosine', 'options.warmup', o.warmup, 'count', true)
  want('optim.schedule.cosine', 'options.min_ratio', o.min_ratio, 'number', true)
  local warmup, min_ratio = o.warmup or 0, o.min_ratio or 0
  return function(step)
    if step < warmup then return (step + 1) / warmup end
    local p = math.min(1, (step - warmup) / math.max(1, total - warmup))
    return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * p))
  end
end
-- Applies schedule(step) * base_lr to the optimiser's lr.
function optim.LRScheduler(opt, schedule)
  want('optim.LRScheduler', 'optimizer', opt, 'table')
  want('optim.LRScheduler', 'optimizer.lr', opt.lr, 'number')
  want('optim.LRScheduler', 'schedule', schedule, 'function')
  local base = opt.lr
  local s = { opt = opt, schedule = schedule, step_count = 0 }
  function s:step()
    self.step_count = self.step_count + 1
    self.opt.lr = base * self.schedule(self.step_count)
  end
  opt.lr = base * schedule(0)
  return s
end

return optim
