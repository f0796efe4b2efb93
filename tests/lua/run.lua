-- tests/lua/run.lua: runs every tests/lua/test_*.lua (or those named on the command line).
-- A test file returns a table { name = function(t) ... end }; `t` has the assertions below.
-- Ends with "N passed, N failed".
local passed, failed = 0, 0
local current = ''

local t = {}
local function fail(msg, level)
  failed = failed + 1
  local info = debug.getinfo((level or 2) + 1, 'Sl')
  io.stderr:write(('FAIL %s (%s:%d): %s\n'):format(current, info and info.short_src or '?', info and info.currentline or 0, msg))
end
function t.ok(cond, msg) if cond then passed = passed + 1 else fail(msg or 'expected true', 2) end end
function t.eq(a, b, msg)
  if a == b then passed = passed + 1 else fail(('%s: %s ~= %s'):format(msg or 'eq', tostring(a), tostring(b)), 2) end
end
function t.near(a, b, tol, msg)
  tol = tol or 1e-6
  if type(a) == 'number' and type(b) == 'number' and math.abs(a - b) <= tol then passed = passed + 1
  else fail(('%s: %s vs %s (tol %g)'):format(msg or 'near', tostring(a), tostring(b), tol), 2) end
end
-- all elements of tensor/table a near b
function t.allclose(a, b, tol, msg)
  local fa = type(a) == 'table' and a.flat and a:flat() or a
  local fb = type(b) == 'table' and b.flat and b:flat() or b
  tol = tol or 1e-5
  if #fa ~= #fb then return fail(('%s: %d vs %d elements'):format(msg or 'allclose', #fa, #fb), 2) end
  for i = 1, #fa do
    if not (math.abs(fa[i] - fb[i]) <= tol * (1 + math.abs(fb[i]))) then
      return fail(('%s: element %d: %.7g vs %.7g (tol %g)'):format(msg or 'allclose', i, fa[i], fb[i], tol), 2)
    end
  end
  passed = passed + 1
end
-- fn must raise an error whose message matches pattern (plain find)
function t.raises(fn, pattern, msg)
  local ok, err = pcall(fn)
  if ok then return fail((msg or 'raises') .. ': no error raised', 2) end
  if pattern and not tostring(err):find(pattern, 1, true) then
    return fail(('%s: error %q does not contain %q'):format(msg or 'raises', tostring(err), pattern), 2)
  end
  passed = passed + 1
end
function t.skip(why) io.stderr:write(('skip %s: %s\n'):format(current, why)) end
-- max |a - b| / max |b|: the parity tests' error relative to the reference's largest magnitude
function t.rel(a, b) return (a - b):abs():max():item() / math.max(b:abs():max():item(), 1e-30) end
-- tensor a against reference b: the same shape, and t.rel(a, b) <= tol
function t.close(a, b, tol, what)
  if table.concat(a.shape, 'x') ~= table.concat(b.shape, 'x') then
    fail(('%s shape: %s ~= %s'):format(what, table.concat(a.shape, 'x'), table.concat(b.shape, 'x')), 2)
    return   -- not a tail call: fail reports the caller's line
  end
  local r = t.rel(a, b)
  if r <= tol then passed = passed + 1 else fail(('%s: relative error %.3g > %g'):format(what, r, tol), 2) end
end

local files = {}
if arg and #arg > 0 then files = arg
else
  local p = io.popen('ls tests/lua/test_*.lua 2>/dev/null')
  for f in p:lines() do files[#files + 1] = f end
  p:close()
end
for _, f in ipairs(files) do
  local chunk, err = loadfile(f)
  if not chunk then
    current = f
    fail('cannot load: ' .. err, 1)
  else
    local ok, suite = pcall(chunk)
    if not ok then current = f; fail('error at load: ' .. tostring(suite), 1)
    else
      local names = {}
      for name in pairs(suite) do names[#names + 1] = name end
      table.sort(names)
      for _, name in ipairs(names) do
        current = f:match('([^/]+)%.lua$') .. '.' .. name
        local f0 = failed
        local ok2, e = xpcall(function() suite[name](t) end, debug.traceback)
        if not ok2 then fail('error: ' .. tostring(e), 1) end
        io.stderr:write((failed == f0 and 'ok   ' or 'FAIL ') .. current .. '\n')
      end
    end
  end
  collectgarbage()
end
print(('%d passed, %d failed'):format(passed, failed))
-- returned, not os.exit(): craft then closes the Lua state, so every tensor is released
-- (the ASan run checks that nothing leaks)
return failed == 0 and 0 or 1
