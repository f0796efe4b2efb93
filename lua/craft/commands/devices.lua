-- craft devices: the CPU's bf16 support and measured bf16 rate, the OpenCL platforms and devices
-- craft sees (names as 'cl:N'), their memory, compute units and fp16 / fp64 support, and the
-- default device. Exits 0 with no OpenCL too.
local M = {}

local function human(n)
  if n >= 2 ^ 30 then return ('%.1f GiB'):format(n / 2 ^ 30) end
  if n >= 2 ^ 20 then return ('%.1f MiB'):format(n / 2 ^ 20) end
  return ('%.0f KiB'):format(n / 2 ^ 10)
end

function M.main(args)
  if args[1] == '-h' or args[1] == '--help' then
    print('usage: craft devices   (OpenCL platforms and devices; select one with --device cl:N or '
      .. 'CRAFT_DEVICE)')
    return 0
  end
  local device = require 'craft.device'
  local list, why = device.list()
  print('cpu     the host CPU (oneDNN kernels)')
  local info = require('craft.autograd').precision_info('cpu')
  if info.bf16_kernels > 0 then
    local s = info.bf16_speedup or 0
    print(('        bf16 yes: multiplies and adds at %.2fx its fp32 rate, so %s'):format(s,
      s < 1 and 'fp32 is faster here' or 'bf16 pays here'))
  else
    print('        bf16 no (' .. info.why .. ')')
  end
  if #list == 1 then
    print('no OpenCL device: ' .. (why or 'the OpenCL platforms list none'))
  else
    local platforms, seen = {}, {}
    for k = 2, #list do
      local d = list[k]
      if not seen[d.platform_index] then seen[d.platform_index] = true; platforms[#platforms + 1] = d end
    end
    print(('OpenCL: %d platform%s, %d device%s'):format(#platforms, #platforms == 1 and '' or 's', #list - 1,
      #list == 2 and '' or 's'))
    for _, p in ipairs(platforms) do
      print(('platform %d: %s'):format(p.platform_index, p.platform))
      for k = 2, #list do
        local d = list[k]
        if d.platform_index == p.platform_index then
          print(('  %-6s %s (%s, %s)'):format(d.name, d.device, d.vendor, d.gpu and 'GPU' or 'not a GPU'))
          print(('         %s, driver %s, %d compute units'):format(d.opencl_c, d.driver, d.compute_units))
          print(('         memory %s global, %s per buffer, %s local'):format(human(d.global_mem),
            human(d.max_alloc), human(d.local_mem)))
          print(('         fp16 %s, fp64 %s'):format(d.fp16 and 'yes'
            or 'no (f16 tensors are stored as f16, computed in fp32)',
            d.fp64 and 'yes' or 'no (reductions accumulate in float; normals by the float formulas)'))
        end
      end
    end
  end
  local ok, def = pcall(device.default)
  print('default device: ' .. (ok and def or ('? (' .. tostring(def) .. ')')))
  return 0
end

return M
