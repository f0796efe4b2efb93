-- A small MLP (AdamW, clipping) and a small conv net (SGD with momentum) trained from the same
-- initial weights and data as PyTorch (tests/fixtures/make_train_fixtures.py): the losses must
-- match step by step, so forward, backward and the optimisers agree end to end.
local craft = require 'craft'
local nn, F = craft.nn, craft.F
local T = {}

local function load(path) return (craft.io.load_safetensors(path)) end

function T.mlp_adamw_matches_pytorch(t)
  local f = load('tests/fixtures/train/mlp_adamw.safetensors')
  local net = nn.Sequential(nn.Linear(8, 16), nn.SiLU(), nn.Linear(16, 16), nn.GELU(), nn.Linear(16, 4))
  local init = {}
  for k, v in pairs(f) do if k:sub(1, 5) == 'init.' then init[k:sub(6)] = v end end
  net:load_state_dict(init)
  local opt = craft.optim.AdamW(net, { lr = 1e-2, weight_decay = 0.01 })
  local ref = f.losses:flat()
  for step = 1, #ref do
    local loss = F.cross_entropy(net(f.x), f.y)
    opt:zero_grad()
    loss:backward()
    craft.optim.clip_grad_norm(net, 1.0)
    opt:step()
    t.near(loss:item(), ref[step], 1e-5 * (1 + math.abs(ref[step])), 'mlp loss at step ' .. step)
  end
  local sd = net:state_dict()
  t.allclose(sd['4.weight'], f['final.4.weight']:flat(), 1e-4, 'final weights')
end

function T.convnet_sgd_matches_pytorch(t)
  local f = load('tests/fixtures/train/convnet_sgd.safetensors')
  local Net = nn.class('ConvNet')
  function Net:init()
    self:add('conv1', nn.Conv2d(3, 8, 3, { padding = 1 }))
    self:add('norm1', nn.GroupNorm(4, 8))
    self:add('conv2', nn.Conv2d(8, 16, 3, { stride = 2, padding = 1 }))
    self:add('norm2', nn.GroupNorm(4, 16))
    self:add('head', nn.Linear(16, 3))
  end
  function Net:forward(x)
    local m = self._modules
    local h = m.norm1(m.conv1(x)):silu()
    h = m.norm2(m.conv2(h)):silu()
    h = F.avg_pool2d(h, 4):mean({ 3, 4 })
    return m.head(h)
  end
  local net = Net()
  local init = {}
  for k, v in pairs(f) do if k:sub(1, 5) == 'init.' then init[k:sub(6)] = v end end
  net:load_state_dict(init)
  local opt = craft.optim.SGD(net, { lr = 0.05, momentum = 0.9, weight_decay = 1e-4 })
  local ref = f.losses:flat()
  for step = 1, #ref do
    local loss = F.cross_entropy(net(f.x), f.y)
    opt:zero_grad()
    loss:backward()
    opt:step()
    t.near(loss:item(), ref[step], 1e-5 * (1 + math.abs(ref[step])), 'convnet loss at step ' .. step)
  end
end

return T
