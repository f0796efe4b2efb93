-- tests/mpi/collectives.lua: craft.dist's collectives across real ranks (tests/mpi.sh runs it
-- under mpirun with 3 ranks). Every rank checks what it gets; each prints one line
-- "rank R: N passed, M failed" and FAIL lines for what went wrong.
local craft = require 'craft'
local dist = require 'craft.dist'
local R, P = dist.rank(), dist.size()
local passed, failed = 0, 0
local function ok(c, msg)
  if c then passed = passed + 1 else failed = failed + 1; io.stderr:write(('FAIL rank %d: %s\n'):format(R, msg)) end
end

ok(P == tonumber(arg[1]), ('size %d, mpirun -np %s'):format(P, tostring(arg[1])))
ok(dist.active(), 'MPI is initialised under mpirun')
ok(dist.local_size() == P and dist.local_rank() == R, 'one node: local rank = rank')
-- sums: numbers, lists, tensors
ok(dist.allreduce(R + 1) == P * (P + 1) / 2, 'allreduce of a number')
local l = dist.allreduce({ R, 1, 0.5 })
ok(l[1] == P * (P - 1) / 2 and l[2] == P and l[3] == P / 2, 'allreduce of a list')
local x = craft.full({ 3, 5 }, R + 1)
dist.allreduce(x)
ok(x:min():item() == P * (P + 1) / 2 and x:max():item() == P * (P + 1) / 2, 'allreduce of a tensor, in place')
-- gradients: a parameter with a gradient on every rank, one with a gradient only on rank 1, one on none
local a = craft.zeros({ 4 }, { requires_grad = true })
local b = craft.zeros({ 2, 2 }, { requires_grad = true })
local c = craft.zeros({ 3 }, { requires_grad = true })
local loss = (a * (R + 1)):sum()
if R == 1 then loss = loss + (b * 2):sum() end
loss:backward()
local bucket = dist.BUCKET_MB
dist.BUCKET_MB = 1e-5   -- buckets of ~2 floats: the bucketing path
dist.allreduce_grads({ { 'a', a }, { 'b', b }, { 'c', c } })
dist.BUCKET_MB = bucket
ok(a.grad and a.grad:min():item() == P * (P + 1) / 2, 'allreduce_grads: the sum of every rank\'s gradient')
ok(b.grad and b.grad:max():item() == 2 and b.grad:min():item() == 2, 'allreduce_grads: rank 1\'s gradient everywhere')
ok(c.grad == nil, 'allreduce_grads: no rank had a gradient: none')
-- gather: plain data and rows of different lengths
local g = dist.gather({ rank = R, name = 'r' .. R, v = { R, 0 / 0 } }, 0)
if R == 0 then
  local good = #g == P
  for r = 1, P do good = good and g[r].rank == r - 1 and g[r].name == 'r' .. (r - 1) and g[r].v[2] ~= g[r].v[2] end
  ok(good, 'gather: every rank\'s table in rank order on the root')
else
  ok(g == nil, 'gather: nil off the root')
end
local rows   -- rank 2 gives nothing
if R ~= 2 then rows = craft.full({ R + 1, 2 }, R) end
local all = dist.gather_rows(rows, 1)
if R == 1 then
  local n = 0
  for r = 0, P - 1 do if r ~= 2 then n = n + r + 1 end end
  ok(all and all:size(1) == n and all:size(2) == 2, 'gather_rows: the rows of every rank on root 1')
  ok(all and all:get(1, 1) == 0 and all:get(n, 2) == (P > 3 and P - 1 or 1), 'gather_rows: in rank order')
else
  ok(all == nil, 'gather_rows: nil off the root')
end
-- broadcast
local v = dist.broadcast(R == 1 and { msg = 'from one', n = 7 } or nil, 1)
ok(v and v.msg == 'from one' and v.n == 7, 'broadcast of a table')
local t = craft.full({ 2, 3 }, R)
dist.broadcast(t, 2 % P)
ok(t:min():item() == 2 % P and t:max():item() == 2 % P, 'broadcast of a tensor, in place')
dist.barrier()
print(('rank %d: %d passed, %d failed'):format(R, passed, failed))
