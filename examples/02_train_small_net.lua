-- examples/02_train_small_net.lua: a small network trained with AdamW on two interleaved spirals.
--
--   craft examples/02_train_small_net.lua [--smoke]
--
-- nn modules are named by their checkpoint keys (0.weight, 2.bias, ...), so a state dict lines
-- up with PyTorch's; the optimiser steps on the parameters' .grad.
local craft = require 'craft'
local nn, F = craft.nn, craft.F
local smoke = (arg[1] == '--smoke')

-- the data: n points per spiral, two classes, a little seeded noise
local n = 200
local pts, labels = {}, {}
for c = 0, 1 do
  for i = 1, n do
    local r = i / n * 3
    local t = 1.75 * i / n * 2 * math.pi + c * math.pi
    pts[#pts + 1] = { r * math.sin(t), r * math.cos(t) }
    labels[#labels + 1] = c
  end
end
local x = craft.tensor(pts) + craft.randn({ 2 * n, 2 }, { seed = 0 }) * 0.05
local y = craft.tensor(labels, { dtype = 'i64' })

craft.manual_seed(0)   -- the weights' initial draw
local net = nn.Sequential(nn.Linear(2, 64), nn.SiLU(), nn.Linear(64, 64), nn.SiLU(), nn.Linear(64, 2))
local opt = craft.optim.AdamW(net, { lr = 1e-2, weight_decay = 1e-4 })

local function accuracy()
  local pred = craft.no_grad(function() return net(x):argmax(2):flat() end)
  local hit = 0
  for i, p in ipairs(pred) do if p == labels[i] then hit = hit + 1 end end
  return hit / #labels
end

local steps = smoke and 150 or 600
for step = 1, steps do
  local loss = F.cross_entropy(net(x), y)   -- full batch
  loss:backward()
  opt:step()
  opt:zero_grad()
  if step % 50 == 0 then
    print(('step %4d  loss %.4f  accuracy %.3f'):format(step, loss:item(), accuracy()))
  end
end
local acc = accuracy()
print(('%d parameters; training accuracy %.3f'):format(net:num_parameters(), acc))
assert(acc > 0.9, 'the network did not learn the spirals')
print('example ok: a small net trained')
