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

function T.train_eval_flags(t)
  local m = nn.Sequential(nn.Linear(2, 2), nn.Dropout(0.5))
  m:eval()
  t.eq(m:child(1).training, false)
  m:train()
  t.eq(m:child(1).training, true)
end

return T
