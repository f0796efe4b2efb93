-- craft.profile: CRAFT_PROFILE times every engine call; the table at exit names each call with
-- its exact count, and nothing is wrapped without it.
local craft = require 'craft'
local core = require 'craft.core'
local P = require 'craft.profile'
local T = {}

local function tmpname() local n = os.tmpname(); os.remove(n); return n end

function T.unset_means_the_c_namespace_itself(t)
  -- this test process runs without CRAFT_PROFILE: the binding must call C directly
  if os.getenv('CRAFT_PROFILE') then return t.skip('CRAFT_PROFILE is set for the test run') end
  t.eq(type(core.C), 'userdata', 'core.C is the C namespace, not a wrapper table')
end

function T.wrapper_counts_and_times_each_call(t)
  local W = P.wrap(core.C)
  P.reset()
  local x = craft.randn({ 8, 8 })
  local before = P.report()
  local n0 = 0
  for _, r in ipairs(before.rows) do if r.name == 'num_threads' then n0 = r.calls end end
  for _ = 1, 3 do W.craft_num_threads() end
  local r = P.report()
  local row
  for _, rr in ipairs(r.rows) do if rr.name == 'num_threads' then row = rr end end
  t.ok(row ~= nil, 'a row for num_threads')
  t.eq(row.calls - n0, 3, 'three calls counted')
  t.ok(row.seconds >= 0 and r.wall >= r.engine, 'times are sane')
  t.ok(W.craft_last_error == core.C.craft_last_error, 'queries are passed through unwrapped')
  t.ok(x ~= nil)
end

function T.table_at_exit_names_calls_with_exact_counts(t)
  local out = tmpname()
  local code = "local c = require 'craft'; local a = c.randn({16, 16});"
    .. " for i = 1, 3 do a = a:matmul(a) end;"
    .. " local p = c.randn({4, 4}):requires_grad_(); for i = 1, 2 do (p:matmul(p)):sum():backward() end;"
    .. " local F = require 'craft.functional';"
    .. " local x = c.randn({1, 2, 8, 8}); local w = c.randn({4, 2, 3, 3});"
    .. " F.conv2d(x, w); F.conv2d(x, w);"
    -- a script's own clock_gettime declaration (the benches have one) must still work
    .. " local ffi = require 'ffi'; ffi.cdef 'typedef struct { long s; long ns; } my_ts;"
    .. " int clock_gettime(int c, my_ts *t);'; local ts = ffi.new('my_ts');"
    .. " assert(ffi.C.clock_gettime(1, ts) == 0)"
  local rc = os.execute(("CRAFT_PROFILE=%s ./build/craft -e %q 2>/dev/null"):format(out, code))
  t.ok(rc == 0 or rc == true, 'the child ran')
  local f = io.open(out)
  t.ok(f ~= nil, 'the table was written to ' .. out)
  local text = f:read('*a')
  f:close()
  os.remove(out)
  t.ok(text:find('^craft profile: [%d.]+ s wall') ~= nil, 'header: ' .. text:sub(1, 80))
  t.eq(tonumber(text:match('\n  matmul +(%d+) ')), 5, 'matmul: 3 + 2 calls\n' .. text)
  t.eq(tonumber(text:match('\n  conv2d +(%d+) ')), 2, 'conv2d: 2 calls\n' .. text)
  t.ok(text:find('inside backward, per op:', 1, true) ~= nil, text)
  t.eq(tonumber(text:match('\n    matmul +(%d+) ')), 2, 'matmul backward: 2 calls\n' .. text)
  t.eq(tonumber(text:match('\n    sum +(%d+) ')), 2, 'sum backward: 2 calls\n' .. text)
end

function T.rows_hold_self_time(t)
  -- a fake engine on a fake clock: outer spends 2 s itself around a 5 s nested inner call
  local clock = 0
  local fake = {
    craft_now = function() return clock end,
    craft_profile_backward = function() end,
    craft_profile_backward_row = function() return 1 end,
  }
  local W
  fake.craft_inner = function() clock = clock + 5 end
  fake.craft_outer = function() clock = clock + 1; W.craft_inner(); clock = clock + 1 end
  W = P.wrap(fake)
  P.reset()
  W.craft_outer()
  clock = clock + 3   -- outside the engine
  local r = P.report()
  local got = {}
  for _, row in ipairs(r.rows) do got[row.name] = row end
  t.eq(got.outer.seconds, 2, 'outer: self time')
  t.eq(got.inner.seconds, 5, 'inner: its own row')
  t.eq(r.engine, 7, 'the rows add up once')
  t.eq(r.wall, 10)
  P.wrap(core.C)   -- the real engine again for the tests after this one
end

function T.nested_calls_count_once(t)
  -- gradient checkpointing recomputes the forward inside backward: each row keeps self time,
  -- so the rows never add up to more than the wall time
  local out = tmpname()
  local code = "local c = require 'craft'; local A = require 'craft.autograd';"
    .. " local p = c.randn({256, 256}):requires_grad_();"
    .. " for i = 1, 3 do"
    .. "   local y = A.checkpoint(function(a) return a:matmul(a):matmul(a) end, p); y:sum():backward()"
    .. " end"
  os.execute(("CRAFT_PROFILE=%s ./build/craft -e %q 2>/dev/null"):format(out, code))
  local f = io.open(out)
  t.ok(f ~= nil, 'the table was written')
  local text = f:read('*a')
  f:close()
  os.remove(out)
  local wall, engine, outside = text:match(
    '^craft profile: ([%d.]+) s wall, ([%d.]+) s in %d+ engine functions, ([%d.-]+) s outside')
  t.ok(wall and tonumber(outside) >= 0 and tonumber(engine) <= tonumber(wall), text)
  t.ok(text:find('\n    checkpoint ', 1, true) ~= nil, 'the checkpoint node has a backward row\n' .. text)
end

function T.format_folds_the_tail(t)
  local r = { wall = 2, engine = 1.5, rows = {
    { name = 'a', calls = 1, seconds = 1 }, { name = 'b', calls = 2, seconds = 0.3 },
    { name = 'c', calls = 4, seconds = 0.2 } } }
  local s = P.format(r, 1)
  t.ok(s:find('\n  a +1 +1000%.0 +50%.0%%') ~= nil, s)
  t.ok(s:find('(2 others)', 1, true) ~= nil and s:find(' 500%.0 ') ~= nil, s)
  t.ok(s:find('0.50 s outside the engine', 1, true) ~= nil, s)
end

return T
