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
  -- flatten from a start dim, negative from the end; a scalar flattens to one element
  t.eq(#x:flatten(2).shape, 2); t.eq(x:flatten(2).shape[2], 12)
  t.eq(x:flatten(-1).shape[3], 4)
  t.eq(craft.tensor(5):flatten().shape[1], 1)
end

function T.split_and_chunk(t)
  local F = craft.F
  local x = craft.arange(10):reshape(5, 2)
  local p = F.split(x, 2)
  t.eq(#p, 3); t.eq(p[3].shape[1], 1); t.eq(p[3]:get(1, 2), 9)
  t.eq(#F.split(x, 7), 1)
  local c = F.chunk(x, 3)   -- ceil(5 / 3) = 2 rows each: 2, 2, 1, as torch.chunk
  t.eq(#c, 3); t.eq(c[1].shape[1], 2); t.eq(c[3].shape[1], 1)
  t.eq(#F.chunk(x, 2, 2), 2)
  local e = craft.zeros({ 0, 3 })
  t.eq(#F.split(e, 2), 1); t.eq(F.split(e, 2)[1]:numel(), 0)
  t.eq(#F.chunk(e, 4), 1)
end

-- Argument checks that run in Lua: a clear message at the caller's line, never a loop
function T.lua_argument_errors(t)
  local F, x = craft.F, craft.zeros({ 2, 3 })
  local function at_caller(fn, pattern)
    local ok, err = pcall(fn)
    t.ok(not ok and err:find('^[^:]*test_tensor%.lua:%d+: ') and err:find(pattern, 1, true), tostring(err))
  end
  at_caller(function() local r = F.split(x, 0); return r end, 'split: size must be a positive integer, got 0')
  at_caller(function() local r = F.split(x, -1); return r end, 'got -1')
  at_caller(function() local r = F.split(x, 1.5); return r end, 'got 1.5')
  at_caller(function() local r = F.chunk(x, 0); return r end, 'chunk: k must be a positive integer')
  at_caller(function() local r = F.chunk(x, -3); return r end, 'got -3')
  at_caller(function() local r = x:flatten(2 ^ 40); return r end, 'flatten: start dim must be an integer in 1..2')
  at_caller(function() local r = x:flatten(0); return r end, 'flatten')
  at_caller(function() local r = x:flatten(-3); return r end, 'flatten')
  at_caller(function() local r = x:size(3); return r end, 'size: dim 3 out of range for 2 dims')
  at_caller(function() local r = x:size('a'); return r end, 'size: dim must be an integer')
  at_caller(function() local r = x:slice(5, 1, 1); return r end, 'size: dim 5 out of range')
  at_caller(function() local r = F.split(x, 1, 9); return r end, 'size: dim 9 out of range')
  at_caller(function() local r = x:permute(1); return r end, 'permute: 1 dims given for a 2-dim tensor')
  at_caller(function() local r = x:reshape({ 1.5 }); return r end, 'shape entry 1 is 1.5')
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
