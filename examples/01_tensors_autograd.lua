-- examples/01_tensors_autograd.lua: tensors, operators and reverse-mode autodiff.
--
--   craft examples/01_tensors_autograd.lua
--
-- Tensors use PyTorch's dimension order; in Lua, dims and indices are 1-based (negative ones
-- count from the end). An op on a tensor that requires grad records how to differentiate it;
-- backward() fills .grad of the leaves.
local craft = require 'craft'

-- a leaf that requires grad, and a seeded draw (the same numbers on every machine)
local x = craft.tensor({ { 1, 2, 3 }, { 4, 5, 6 } }, { requires_grad = true })
local w = craft.randn({ 3, 2 }, { seed = 0 })
print('x', x)

-- y = sum(tanh(x @ w)^2): matmul, elementwise ops and a reduction
local h = x:matmul(w):tanh()
local y = (h * h):sum()
y:backward()
print('dy/dx', x.grad)

-- the same gradient by hand: d/dx sum(tanh(xw)^2) = (2 tanh(xw) (1 - tanh(xw)^2)) w^T
local th = craft.no_grad(function() return x:matmul(w):tanh() end)
local by_hand = (th * 2 * (1 - th * th)):matmul(w:t())
local err = (x.grad - by_hand):abs():max():item()
print(('max |autograd - by hand| = %.2g'):format(err))
assert(err < 1e-5, 'autograd disagrees with the hand-written gradient')

-- no_grad: nothing is recorded (inference, metrics)
local z = craft.no_grad(function() return (x * 2):sum() end)
assert(not z.requires_grad, 'no graph under no_grad')

-- gradient checkpointing: the block's activations are recomputed in backward instead of kept;
-- the gradient is the same
local a = craft.randn({ 4, 8 }, { seed = 1 }):requires_grad_(true)
local v = craft.randn({ 8, 8 }, { seed = 2 })
local function block(t) return t:matmul(v):relu():matmul(v):sigmoid() end
block(a):sum():backward()
local g1 = a.grad:clone()
a.grad = nil
craft.checkpoint(block, a):sum():backward()
local cerr = (a.grad - g1):abs():max():item()
print(('checkpointed gradient differs by %.2g'):format(cerr))
assert(cerr == 0, 'checkpointing changed the gradient')
print('example ok: tensors and autograd')
