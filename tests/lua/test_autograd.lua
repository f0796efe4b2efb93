-- Autograd from Lua: backward, accumulation, no_grad, custom functions, checkpointing.
local craft = require 'craft'
local T = {}

function T.square_gives_2x(t)
  local x = craft.tensor({ { 0.5, -1 }, { 2, 3 } }, { requires_grad = true })
  ;(x * x):sum():backward()
  t.allclose(x.grad, { 1, -2, 4, 6 })
end

function T.no_grad_records_nothing(t)
  local x = craft.tensor({ 1, 2 }, { requires_grad = true })
  local y = craft.no_grad(function() return x * 3 end)
  t.eq(y.requires_grad, false)
  t.eq(y.grad_fn, nil)
  t.ok(craft.is_grad_enabled())
  -- an error inside no_grad restores grad mode
  pcall(craft.no_grad, function() error('boom') end)
  t.ok(craft.is_grad_enabled())
end

function T.backward_errors(t)
  local x = craft.tensor({ 1, 2 }, { requires_grad = true })
  local y = x * 2
  t.raises(function() y:backward() end, 'not a scalar')
  t.raises(function() craft.tensor({ 1 }):sum():backward() end, 'does not require grad')
end

function T.custom_function(t)
  -- y = x^3 with a hand-written backward
  local cube = craft.Function('cube', function(ctx, x) ctx.x = x; return x * x * x end,
    function(ctx, g) return g * ctx.x * ctx.x * 3 end)
  local x = craft.tensor({ 1, 2, -1 }, { requires_grad = true })
  cube(x):sum():backward()
  t.allclose(x.grad, { 3, 12, 3 })
  t.eq(cube(x).grad_fn, 'cube')
end

function T.checkpoint_matches_plain(t)
  local lin1, lin2 = craft.nn.Linear(4, 8), craft.nn.Linear(8, 3)
  local x = craft.tensor({ { 0.1, -0.2, 0.3, 0.4 }, { 1, 2, -1, 0 } }, { requires_grad = true })
  local function block(h) return lin2(lin1(h):silu()):tanh() end
  block(x):square():sum():backward()
  local g_plain, w_plain = x.grad:flat(), lin1._params.weight.grad:flat()
  x:zero_grad(); lin1:zero_grad(); lin2:zero_grad()
  local y = craft.checkpoint(block, x)
  t.eq(y.grad_fn, 'checkpoint')
  y:square():sum():backward()
  t.allclose(x.grad, g_plain, 1e-6, 'input grad')
  t.allclose(lin1._params.weight.grad, w_plain, 1e-6, 'param grad')
  -- a segment whose input needs no grad still trains its parameters
  lin1:zero_grad()
  local x2 = x:detach()
  craft.checkpoint(block, x2):square():sum():backward()
  t.ok(lin1._params.weight.grad ~= nil, 'params inside a checkpoint get grads')
  -- an error inside the recomputation surfaces as a Lua error, not a crash
  local calls = 0
  local y3 = craft.checkpoint(function(h)
    calls = calls + 1
    if calls > 1 then error('recompute failed') end
    return h * 2
  end, x)
  t.raises(function() y3:sum():backward() end, 'recompute failed')
end

return T
