-- tests/device_quickstart.lua CPU_RUN CL_RUN: the checks of tests/device_quickstart.sh on two
-- finished quickstart runs (--smoke, the same settings), the first on the CPU, the second with
-- --device cl:0. Prints every difference over its tolerance and ends "N passed, N failed".
-- The tolerances and why they are what they are: docs/backends.md, "The quickstart on an OpenCL
-- device".
local io_ = require 'craft.io'
local cpu_dir, cl_dir = arg[1], arg[2]
local passed, failed = 0, 0
local function check(cond, msg)
  if cond then passed = passed + 1 else failed = failed + 1; io.stderr:write('FAIL device_quickstart: ', msg, '\n') end
end

-- TOLERANCES (docs/backends.md): a percentage (a share of a method's 24 images: 4 per class, 3
-- classes, 2 seeds; its CI bounds; a relative reduction) may differ by one image's worth, 100 / 24
-- points; every other number by 0.025 absolute (one test image of a balanced accuracy) or 1e-3
-- relative, whichever is larger. Wall minutes and p-values are not compared.
local SHARE_POINTS = 100 / 24 + 1e-9
local ABS, REL = 0.025, 1e-3

local function lines(path)
  local f = assert(io.open(path), 'no ' .. path)
  local r = {}
  for l in f:lines() do r[#r + 1] = l end
  f:close()
  return r
end

local a, b = lines(cpu_dir .. '/table.txt'), lines(cl_dir .. '/table.txt')
check(#a == #b, ('the tables have %d and %d lines'):format(#a, #b))

-- the device lines
check(a[#a] == 'device: cpu (no OpenCL kernels launched)', 'the CPU table ends with its device line: ' .. a[#a])
local n = tonumber(b[#b]:match('^device: cl:0 .+, kernels launched: (%d+)$') or '')
check(n and n > 0, 'the cl:0 table ends with "device: cl:0 <name>, kernels launched: N", N > 0: ' .. b[#b])

-- numbers and the text around them; the notes' p-values are not compared (a paired test over two
-- seeds turns tiny differences into large p-value changes), nor the wall minutes
local NUM = '[-+]?%d+%.?%d*'
local worst = {}
for i = 1, math.min(#a, #b) - 1 do
  local la, lb = a[i], b[i]
  local sa, sb = la:gsub(NUM, '#'), lb:gsub(NUM, '#')
  check(sa == sb, ('line %d differs in its text:\n  cpu: %s\n  cl:  %s'):format(i, la, lb))
  if sa == sb and not la:match('^columns:') then
    local na, nb = {}, {}
    for x in la:gmatch(NUM) do na[#na + 1] = tonumber(x) end
    for x in lb:gmatch(NUM) do nb[#nb + 1] = tonumber(x) end
    -- each number's kind from the text right after it
    local kinds, pos = {}, 1
    for k = 1, #na do
      local s, e = la:find(NUM, pos)
      local after = la:sub(e + 1, e + 1)
      local before = la:sub(1, s - 1)
      kinds[k] = (after == '%' or after == ',' and before:match('%[%s*$') or after == ']') and 'share'
        or (before:match('p = $') and 'p') or 'value'
      pos = e + 1
    end
    local is_row = la:match('|%s*[%d.]+%s+[%d.]+%s+[%d.]+$') ~= nil   -- a method row: steps, images, min
    for k = 1, #na do
      local skip = kinds[k] == 'p' or (is_row and k == #na)
      if not skip then
        local d = math.abs(na[k] - nb[k])
        local tol = kinds[k] == 'share' and SHARE_POINTS or math.max(ABS, REL * math.abs(na[k]))
        local key = kinds[k]
        worst[key] = math.max(worst[key] or 0, d)
        check(d <= tol, ('line %d, number %d (%s): cpu %s, cl %s (tolerance %g):\n  %s\n  %s'):format(i, k,
          kinds[k], na[k], nb[k], tol, la, lb))
      end
    end
  end
end
io.stderr:write(('device_quickstart: largest differences: shares %.2f points, other values %.4f\n'):format(
  worst.share or 0, worst.value or 0))

-- where every job's tensors were: models (parameters, buffers, adapters, TI vectors), optimiser
-- state, the training losses and the generated images
local jobs, trained = 0, 0
local p = io.popen('ls ' .. cl_dir .. '/*/s*/result.json')
for path in p:lines() do
  local r = io_.read_json(path)
  jobs = jobs + 1
  check(r.device == 'cl:0', path .. ': the job ran with the current device ' .. tostring(r.device))
  local d = r.devices or {}
  local function only_cl(what, c)
    local other = {}
    for k in pairs(c or {}) do if k ~= 'cl:0' then other[#other + 1] = k end end
    check(c ~= nil and (c['cl:0'] or 0) > 0 and #other == 0,
      ('%s: %s on %s'):format(path, what, c and io_.encode_json(c) or 'nothing recorded'))
  end
  only_cl('the models', d.models)
  check(d.images == 'cl:0', path .. ': the generated images on ' .. tostring(d.images))
  if d.optimiser then
    trained = trained + 1
    only_cl('the optimiser state', d.optimiser)
    only_cl('the training losses', d.losses)
  end
  check((r.kernels_launched or 0) > 0, path .. ': no kernel launched by the job')
end
p:close()
check(jobs >= 6, ('%d jobs found in %s'):format(jobs, cl_dir))
check(trained >= 4, ('%d jobs trained with an optimiser'):format(trained))
print(('%d passed, %d failed'):format(passed, failed))
os.exit(failed == 0 and 0 or 1)
