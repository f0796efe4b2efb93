-- Modules: parameter naming, state dicts, train/eval, optimisers on a small problem.
local craft = require 'craft'
local nn = craft.nn
local T = {}

function T.parameter_names_follow_checkpoint_keys(t)
  local m = nn.Sequential(nn.Linear(3, 4), nn.SiLU(), nn.Linear(4, 2, { bias = false }))
  local names = {}
  for _, np in ipairs(m:named_parameters()) do names[#names + 1] = np[1] end
  t.eq(table.concat(names, ','), '0.weight,0.bias,2.weight')
  t.eq(m:num_parameters(), 3 * 4 + 4 + 8)
  local a = nn.Attention(8, { heads = 2 })
  local an = {}
  for _, np in ipairs(a:named_parameters()) do an[#an + 1] = np[1] end
  t.eq(table.concat(an, ','), 'to_q.weight,to_k.weight,to_v.weight,to_out.0.weight,to_out.0.bias')
end

function T.state_dict_round_trip(t)
  local m1 = nn.Linear(3, 2)
  local m2 = nn.Linear(3, 2)
  m2:load_state_dict(m1:state_dict())
  t.allclose(m2._params.weight, m1._params.weight:flat())
  local sd = m1:state_dict()
  sd.extra = craft.zeros({ 1 })
  t.raises(function() m2:load_state_dict(sd) end, '1 unexpected key(s) (extra)')
  local _, unexpected = m2:load_state_dict(sd, { strict = false })
  t.eq(unexpected[1], 'extra')
  t.raises(function() m2:load_state_dict({ weight = craft.zeros({ 2, 2 }), bias = craft.zeros({ 2 }) }) end,
    'weight has shape [2x3] in the model but [2x2]')
end

-- module:to moves parameters (still leaves that require grad) and the optimiser keeps its state
-- beside them: three SGD-momentum steps on cl:0 land where the CPU's do (SGD, not AdamW: Adam's
-- normalised step turns a 1e-7 difference in a near-zero gradient into a full step of either sign).
function T.module_to_device_trains_like_cpu(t)
  if craft.device.count() == 0 then return t.skip('no OpenCL device') end
  local function build()
    craft.manual_seed(4)
    return nn.Sequential(nn.Conv2d(3, 4, 3, { padding = 1 }), nn.SiLU(), nn.GroupNorm(2, 4))
  end
  local x = craft.randn({ 2, 3, 6, 6 }, { seed = 9 })
  local function train(m, dev)
    local opt = craft.optim.SGD(m, { lr = 0.1, momentum = 0.9 })
    local xd = x:to(dev)
    for _ = 1, 3 do
      local loss = (m(xd) * m(xd)):mean()
      opt:zero_grad(); loss:backward(); opt:step()
    end
    return m
  end
  local cpu = train(build(), 'cpu')
  local dev = build():to('cl:0')
  t.eq(dev:parameters()[1].device, 'cl:0')
  t.ok(dev:parameters()[1].requires_grad, 'still a parameter')
  train(dev, 'cl:0')
  for i, p in ipairs(cpu:parameters()) do
    t.allclose(dev:parameters()[i]:to('cpu'), p, 1e-4, 'parameter ' .. i)
  end
  t.eq(dev:to('cpu'):parameters()[1].device, 'cpu')
end

function T.train_eval_flags(t)
  local m = nn.Sequential(nn.Linear(2, 2), nn.Dropout(0.5))
  m:eval()
  t.eq(m:child(1).training, false)
  m:train()
  t.eq(m:child(1).training, true)
end

function T.group_norm_with_a_fused_activation(t)
  local craft = require 'craft'
  local nn, F = require 'craft.nn', require 'craft.functional'
  craft.manual_seed(3)
  local m = nn.GroupNorm(4, 8)
  m._params.weight:copy_(craft.randn({ 8 }))
  m._params.bias:copy_(craft.randn({ 8 }))
  local x = craft.randn({ 2, 8, 5, 5 })
  for _, act in ipairs { 'silu', 'gelu', 'tanh' } do
    local a, b = m(x, act), m(x)[act](m(x))
    t.eq((a - b):abs():max():item(), 0, act .. ': the same numbers as group_norm then :' .. act .. '()')
  end
  local here = debug.getinfo(1, 'S').short_src
  local ok, err = pcall(F.group_norm, x, 4, nil, nil, 1e-5, 'swishy')
  t.ok(not ok and tostring(err):find(here, 1, true) == 1, tostring(err))
  t.ok(tostring(err):find("unknown activation 'swishy'", 1, true) ~= nil, tostring(err))
end

return T
