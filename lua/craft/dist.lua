-- craft.dist: data-parallel runs (the binding of engine/dist). One process per rank, started by
-- an MPI launcher (`mpirun -np 4 craft recipe.lua`, `srun craft recipe.lua`); without one (or in
-- a build without MPI) the process is rank 0 of 1 and every collective returns its input.
--
--   local dist = require 'craft.dist'
--   dist.rank(), dist.size(), dist.local_rank(), dist.local_size(), dist.is_root()
--   dist.allreduce(x)            -- sum over ranks: a number, a list of numbers, or a f32 tensor (in place)
--   dist.allreduce_grads(params) -- {{name, tensor}, ...}: their .grad summed over ranks, in buckets
--   dist.broadcast(v, root)      -- root's value (plain Lua data, or a tensor filled in place)
--   dist.gather(v, root)         -- on root: {v of rank 0, v of rank 1, ...}; nil elsewhere
--   dist.gather_rows(t, root)    -- on root: every rank's tensor concatenated along dim 1
--   dist.barrier(), dist.shard(n) -- this rank's contiguous block of n items: first index, count
--
-- Every rank calls the collectives in the same order. A collective that times out (a rank died
-- or hangs; CRAFT_DIST_TIMEOUT seconds) prints its message naming the silent ranks and ends the
-- job. Values travel through host memory (tensors must be CPU tensors).
local core = require 'craft.core'
local ffi, C = core.ffi, core.C
local want, argerror = core.want, core.argerror
local function is_tensor(v) return type(v) == 'table' and type(rawget(v, '_c')) == 'cdata' end
local ESIZE = { f32 = 4, f64 = 8, i64 = 8, i32 = 4, i8 = 1, u8 = 1, bool = 1, f16 = 2, bf16 = 2 }

local M = {}

local info = ffi.new('int[4]')
-- joining the job: a failure (a launcher but no MPI in the build) is said as it is, at no line
if C.craft_dist_init(info, info + 1, info + 2, info + 3) ~= 0 then
  error(ffi.string(C.craft_last_error()), 0)
end
local RANK, SIZE, LOCAL_RANK, LOCAL_SIZE = info[0], info[1], info[2], info[3]

function M.rank() return RANK end
function M.size() return SIZE end
function M.local_rank() return LOCAL_RANK end
function M.local_size() return LOCAL_SIZE end
function M.is_root() return RANK == 0 end
-- active() -> whether this process is one rank of an MPI job (also with one rank)
function M.active() return C.craft_dist_active() ~= 0 end
function M.has_mpi() return C.craft_dist_has_mpi() ~= 0 end
function M.timeout() return tonumber(C.craft_dist_timeout()) end
function M.set_timeout(s)
  want('dist.set_timeout', 'seconds', s, 'number')
  core.check(C.craft_dist_set_timeout(s))
end

-- A failed collective leaves the other ranks waiting in theirs: say why here and end the job.
local function ck(rc)
  if rc == 0 then return end
  local msg = ffi.string(C.craft_last_error())
  if SIZE > 1 then
    io.stderr:write(('craft: rank %d of %d: %s\n'):format(RANK, SIZE, msg))
    io.stderr:flush()
    C.craft_dist_abort(1)
  end
  error(msg, core.user_level())
end

function M.barrier() ck(C.craft_dist_barrier()) end

-- abort(msg): prints msg (naming this rank) and ends every rank of the job; without MPI an error
function M.abort(msg)
  msg = tostring(msg or 'aborted')
  io.stderr:write(('craft: rank %d of %d: %s\n'):format(RANK, SIZE, msg))
  io.stderr:flush()
  C.craft_dist_abort(1)
  error(msg, 0)
end

-- shard(n) -> first (1-based), count: this rank's contiguous block of n items. The first n % size
-- ranks get one more, so the blocks cover 1..n in rank order.
function M.shard(n, rank, size)
  want('dist.shard', 'n', n, 'count')
  rank, size = rank or RANK, size or SIZE
  local base, extra = math.floor(n / size), n % size
  local first = rank * base + math.min(rank, extra) + 1
  return first, base + (rank < extra and 1 or 0)
end

---------------------------------------------------------------- sums
-- allreduce(x) -> the sum over ranks: x a number (returns the sum), a list of numbers (returns
-- a new list, as doubles), or a CPU f32 / f64 tensor (summed in place, returned)
function M.allreduce(x)
  if type(x) == 'number' then
    if SIZE == 1 then return x end
    local b = ffi.new('double[1]', x)
    ck(C.craft_dist_allreduce_f64(b, 1))
    return b[0]
  end
  if is_tensor(x) then
    if SIZE == 1 then return x end
    if not x:is_contiguous() then
      argerror('dist.allreduce: the tensor must be contiguous (sum a :contiguous() copy)')
    end
    local dt = x.dtype
    if dt == 'f32' then ck(C.craft_dist_allreduce_f32(ffi.cast('float *', x:data_ptr()), x:numel()))
    elseif dt == 'f64' then ck(C.craft_dist_allreduce_f64(ffi.cast('double *', x:data_ptr()), x:numel()))
    else argerror(('dist.allreduce: a %s tensor (f32 or f64)'):format(tostring(dt))) end
    C.craft_tensor_mark_written(x._c)   -- written behind the engine's back: bump the version
    return x
  end
  want('dist.allreduce', 'x', x, 'number|table')
  local n = #x
  local r = {}
  if SIZE == 1 then for i = 1, n do r[i] = x[i] end return r end
  local b = ffi.new('double[?]', math.max(n, 1))
  for i = 1, n do
    if type(x[i]) ~= 'number' then
      argerror(('dist.allreduce: x[%d] is a %s, not a number'):format(i, type(x[i])))
    end
    b[i - 1] = x[i]
  end
  ck(C.craft_dist_allreduce_f64(b, n))
  for i = 1, n do r[i] = b[i - 1] end
  return r
end

-- a contiguous f32 tensor in host memory: its bytes are copied in and out of a bucket directly
local function plain_f32(t) return t.device == 'cpu' and t.dtype == 'f32' and t:is_contiguous() end

M.BUCKET_MB = 25   -- the gradients summed per call (as PyTorch DDP's default bucket)

-- allreduce_grads(params): every parameter's .grad summed over ranks, in place, in buckets of
-- BUCKET_MB (one host copy of the bucket). params: a list of tensors or of {name, tensor}. A
-- parameter no rank has a gradient for keeps none (as in one process, where an optimiser skips
-- it); one that only other ranks' blocks reached takes part with zeros here and gets the sum.
function M.allreduce_grads(params)
  if SIZE == 1 then return end
  want('dist.allreduce_grads', 'params', params, 'table')
  local T = require 'craft.tensor'
  local list, has = {}, {}
  for i, p in ipairs(params) do
    list[i] = is_tensor(p) and p or p[2]
    has[i] = list[i].grad and 1 or 0
  end
  has = M.allreduce(has)
  local live = {}
  for i, p in ipairs(list) do if has[i] > 0 then live[#live + 1] = p end end
  local per = math.floor(M.BUCKET_MB * 2 ^ 20 / 4)
  local i = 1
  while i <= #live do
    local group, n = {}, 0
    repeat
      group[#group + 1] = live[i]
      n = n + live[i]:numel()
      i = i + 1
    until i > #live or n + live[i]:numel() > per
    local flat = T.empty({ n })
    local base = ffi.cast('float *', flat:data_ptr())
    local at, grads = 0, {}
    for j, p in ipairs(group) do
      local k = p:numel()
      local g = p.grad
      grads[j] = g
      if not g then ffi.fill(base + at, k * 4)
      elseif plain_f32(g) then ffi.copy(base + at, g:data_ptr(), k * 4)   -- the common case: a memcpy
      else flat:narrow(1, at + 1, k):copy_(g:reshape(k)) end
      at = at + k
    end
    ck(C.craft_dist_allreduce_f32(base, n))
    at = 0
    for j, p in ipairs(group) do
      local k = p:numel()
      local g = grads[j]
      if g and plain_f32(g) then
        ffi.copy(g:data_ptr(), base + at, k * 4)
        C.craft_tensor_mark_written(g._c)
      else
        local part = flat:narrow(1, at + 1, k):reshape(p.shape)
        if g then g:copy_(part) else p.grad = part:clone() end
      end
      at = at + k
    end
  end
end

---------------------------------------------------------------- plain Lua data between ranks
-- serialise / deserialise plain data (numbers incl. NaN and infinities, strings, booleans, tables)
local function ser(v, out)
  local t = type(v)
  if t == 'number' then
    if v ~= v then out[#out + 1] = '0/0'
    elseif v == math.huge then out[#out + 1] = '1/0'
    elseif v == -math.huge then out[#out + 1] = '-1/0'
    else out[#out + 1] = ('%.17g'):format(v) end
  elseif t == 'string' then out[#out + 1] = ('%q'):format(v)
  elseif t == 'boolean' or t == 'nil' then out[#out + 1] = tostring(v)
  elseif t == 'table' and not is_tensor(v) then
    out[#out + 1] = '{'
    for k, x in pairs(v) do
      out[#out + 1] = '['
      ser(k, out)
      out[#out + 1] = ']='
      ser(x, out)
      out[#out + 1] = ','
    end
    out[#out + 1] = '}'
  else
    argerror(('dist: a %s cannot be sent between ranks (numbers, strings, booleans and tables of them; '
      .. 'tensors through gather_rows / broadcast)'):format(is_tensor(v) and 'tensor' or t))
  end
end
local function encode(v)
  local out = {}
  ser(v, out)
  return table.concat(out)
end
-- the bytes come from the job's own ranks, written by encode
local function decode(s)
  local fn = assert(loadstring('return ' .. s, '=dist'))
  setfenv(fn, {})
  return fn()
end

M._encode, M._decode = encode, decode   -- for the tests

-- gather_bytes(s, root) -> on root a list of every rank's string, nil elsewhere
local function gather_bytes(s, root)
  local counts = ffi.new('int64_t[?]', SIZE)
  ck(C.craft_dist_allgather_counts(#s, counts))
  local total = 0
  for r = 0, SIZE - 1 do total = total + tonumber(counts[r]) end
  local out = RANK == root and ffi.new('char[?]', math.max(total, 1)) or nil
  ck(C.craft_dist_gatherv(s, #s, out, counts, root))
  if RANK ~= root then return nil end
  local r, at = {}, 0
  for k = 0, SIZE - 1 do
    local n = tonumber(counts[k])
    r[k + 1] = ffi.string(out + at, n)
    at = at + n
  end
  return r
end

local function check_root(fname, root)
  root = root or 0
  if type(root) ~= 'number' or root % 1 ~= 0 or root < 0 or root >= SIZE then
    argerror(('%s: root must be a rank 0 .. %d, got %s'):format(fname, SIZE - 1, tostring(root)))
  end
  return root
end

-- gather(v, root = 0) -> on root {v of rank 0, v of rank 1, ...}; nil elsewhere. v: plain data.
function M.gather(v, root)
  root = check_root('dist.gather', root)
  local bytes = encode(v)   -- also with one rank: what one rank refuses, several do
  if SIZE == 1 then return { v } end
  local parts = gather_bytes(bytes, root)
  if not parts then return nil end
  for i, s in ipairs(parts) do parts[i] = decode(s) end
  return parts
end

-- gather_rows(t, root = 0) -> on root every rank's CPU tensor concatenated along dim 1 (the other
-- dims must agree; a rank may give 0 rows, or nil for none); nil elsewhere.
function M.gather_rows(t, root)
  root = check_root('dist.gather_rows', root)
  local T = require 'craft.tensor'
  if SIZE == 1 then return t end
  local meta = M.gather(t and { shape = t.shape, dtype = t.dtype } or false, root)
  local bytes = ''
  if t and t:numel() > 0 then
    local c = t:to('cpu'):contiguous()   -- through host memory: a device tensor is copied over
    local es = ESIZE[c.dtype]
    if not es then argerror(('dist.gather_rows: a %s tensor'):format(tostring(c.dtype))) end
    bytes = ffi.string(c:data_ptr(), c:numel() * es)
  end
  local parts = gather_bytes(bytes, root)
  if not parts then return nil end
  local shape, dtype, rows = nil, nil, 0
  for r, m in ipairs(meta) do
    if m then
      local tail = table.concat(m.shape, 'x', 2)
      if shape and (tail ~= table.concat(shape, 'x', 2) or m.dtype ~= dtype) then
        argerror(('dist.gather_rows: rank %d gives [%s] %s, rank 0.. gave [%s] %s: the rows must agree')
          :format(r - 1, table.concat(m.shape, ', '), m.dtype, table.concat(shape, ', '), dtype))
      end
      shape, dtype = shape or m.shape, dtype or m.dtype
      rows = rows + m.shape[1]
    end
  end
  if not shape then return nil end
  local full = {}
  for i, s in ipairs(shape) do full[i] = s end
  full[1] = rows
  local out = T.empty(full, { dtype = dtype })
  local joined = table.concat(parts)
  if #joined > 0 then ffi.copy(out:data_ptr(), joined, #joined) end
  return out
end

-- broadcast(v, root = 0) -> root's v on every rank: plain data (returned), or a CPU tensor of the
-- same shape on every rank (filled in place from root's, returned)
function M.broadcast(v, root)
  root = check_root('dist.broadcast', root)
  if SIZE == 1 then return v end
  if is_tensor(v) then
    if not v:is_contiguous() then argerror('dist.broadcast: the tensor must be contiguous') end
    local es = ESIZE[v.dtype]
    ck(C.craft_dist_broadcast(v:data_ptr(), v:numel() * es, root))
    C.craft_tensor_mark_written(v._c)   -- a broadcast parameter must not be served from a stale bf16 cache
    return v
  end
  local s = RANK == root and encode(v) or ''
  local n = ffi.new('int64_t[1]', #s)
  ck(C.craft_dist_broadcast(n, 8, root))
  local buf = ffi.new('char[?]', math.max(tonumber(n[0]), 1))
  if RANK == root then ffi.copy(buf, s, #s) end
  ck(C.craft_dist_broadcast(buf, n[0], root))
  return decode(ffi.string(buf, n[0]))
end

-- The cores of a node are shared by its ranks: each takes its share of the threads unless the
-- user chose (craft -t N, OMP_NUM_THREADS).
if LOCAL_SIZE > 1 and not os.getenv('OMP_NUM_THREADS') then
  local rt = require 'craft.runtime'
  rt.set_num_threads(math.max(1, math.floor(rt.num_threads() / LOCAL_SIZE)))
end

return M
