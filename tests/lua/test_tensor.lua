-- Tensors from Lua: creation, views, printing, element access, error messages.
local craft = require 'craft'
local T = {}

function T.create_and_shape(t)
  local x = craft.tensor({ { 1, 2, 3 }, { 4, 5, 6 } })
  t.eq(#x.shape, 2)
  t.eq(x.shape[1], 2); t.eq(x.shape[2], 3)
  t.eq(x:numel(), 6)
  t.eq(x.dtype, 'f32')
  t.eq(x:get(2, 3), 6)
  t.eq(x:get(-1, -1), 6)
  local z = craft.zeros({ 3, 4 })
  t.eq(z:sum():item(), 0)
  t.eq(craft.ones({ 2, 2 }):sum():item(), 4)
  t.eq(craft.full({ 2 }, 7):flat()[2], 7)
  local a = craft.arange(5)
  t.allclose(a, { 0, 1, 2, 3, 4 })
end

function T.views(t)
  local x = craft.arange(24):reshape(2, 3, 4)
  t.eq(x:permute(3, 1, 2).shape[1], 4)
  t.eq(x:transpose(1, 3):get(4, 3, 2), x:get(2, 3, 4))
  t.allclose(x:slice(3, 2, 3), { 1, 2, 5, 6, 9, 10, 13, 14, 17, 18, 21, 22 })
  t.allclose(x:narrow(2, 2, 1):flatten(), { 4, 5, 6, 7, 16, 17, 18, 19 })
  t.eq(x:select(1, 2):get(1, 1), 12)
  t.eq(x:unsqueeze(1).shape[1], 1)
  t.eq(x:unsqueeze(-1).shape[4], 1)
  t.eq(#x:unsqueeze(1):squeeze().shape, 3)
  t.eq(craft.tensor({ 1, 2 }):reshape(2, 1):expand(2, 3):sum():item(), 9)
end

function T.dtype_conversion(t)
  local x = craft.tensor({ 1.5, -2.25, 3.14159 })
  local h = x:half()
  t.eq(h.dtype, 'f16')
  t.allclose(h:float(), { 1.5, -2.25, 3.140625 })
  t.eq(x:to('i64'):get(2), -2)
  t.raises(function() x:to('complex') end, 'unknown dtype "complex"')
end

function T.printing(t)
  local s = tostring(craft.tensor({ { 1, 2 }, { 3, 4 } }))
  t.ok(s:find('tensor%(%[%[1%.0000, 2%.0000%],\n        %[3%.0000, 4%.0000%]%], shape=%[2, 2%], dtype=f32%)'), s)
  local big = craft.zeros({ 40, 40 })
  t.ok(tostring(big):find('...', 1, true), 'large tensors are summarised')
  t.ok(tostring(craft.tensor(3)):find('tensor%(3%.0000, shape=%[%]'), 'scalar')
end

function T.errors_name_op_shapes_and_line(t)
  local a, b = craft.zeros({ 2, 3 }), craft.zeros({ 4, 5 })
  local ok, err = pcall(function() return a + b end)
  t.ok(not ok)
  t.ok(err:find('test_tensor.lua:%d+: add: shapes %[2, 3%] f32 and %[4, 5%] f32 do not broadcast'), err)
  t.raises(function() return a:matmul(b) end, 'matmul: [2, 3] f32 @ [4, 5] f32')
  -- the position is the caller's line even through the library's tail calls
  local ok2, err2 = pcall(function() local r = a:matmul(b) return r end)
  t.ok(not ok2 and err2:find('^[^:]*test_tensor%.lua:%d+: matmul:'), err2)
  t.raises(function() return a:reshape(7) end, 'reshape')
  t.raises(function() return a:sum(3) end, 'dim 2 out of range')
  t.raises(function() return a:get(3, 1) end, 'index 2 out of range')
  t.raises(function() return craft.tensor({ { 1, 2 }, { 3 } }) end, 'ragged')
  t.raises(function() return a + 'x' end, 'arithmetic on')
  t.raises(function() return craft.zeros({ 2, 3 }, { dtype = 'i64' }):exp() end, 'exp: input is [2, 3] i64, expected f32')
end

function T.arithmetic(t)
  local x = craft.tensor({ 1, 2, 3 })
  t.allclose(x + 1, { 2, 3, 4 })
  t.allclose(1 - x, { 0, -1, -2 })
  t.allclose(x * x, { 1, 4, 9 })
  t.allclose(6 / x, { 6, 3, 2 })
  t.allclose(x ^ 2, { 1, 4, 9 })
  t.allclose(-x, { -1, -2, -3 })
  t.allclose(x:exp(), { math.exp(1), math.exp(2), math.exp(3) }, 1e-6)
  t.allclose(x:gt(craft.tensor(1.5)), { 0, 1, 1 })
  t.allclose(x:clamp(1.5, 2.5), { 1.5, 2, 2.5 })
  local m = craft.tensor({ { 1, 5, 2 }, { 7, 0, 3 } })
  local v, i = m:max(2)
  t.allclose(v, { 5, 7 }); t.allclose(i, { 1, 0 })
  t.near(m:var():item(), 6.8, 1e-5)   -- sum of squared deviations 34, over n - 1 = 5
  t.allclose(m:mean(1), { 4, 2.5, 2.5 })
end

return T
