-- craft inspect FILE.safetensors...: lists each tensor (name, dtype as stored, shape, bytes), the
-- totals and the metadata, without loading the data.
local io_ = require 'craft.io'

local M = {}

local function human(n)
  if n >= 2 ^ 30 then return ('%.2f GiB'):format(n / 2 ^ 30) end
  if n >= 2 ^ 20 then return ('%.2f MiB'):format(n / 2 ^ 20) end
  if n >= 2 ^ 10 then return ('%.1f KiB'):format(n / 2 ^ 10) end
  return n .. ' B'
end

function M.main(args)
  if #args == 0 or args[1] == '-h' or args[1] == '--help' then
    print('usage: craft inspect FILE.safetensors [FILE...]   (tensor names, dtypes, shapes, sizes, metadata)')
    return #args == 0 and 2 or 0
  end
  for k, path in ipairs(args) do
    local ok, list, meta = pcall(io_.inspect, path)   -- called directly: the message carries no Lua position
    if not ok then
      io.stderr:write('craft inspect: ' .. tostring(list) .. '\n')
      return 1
    end
    if k > 1 then print() end
    print(path)
    local w, bytes, count, dtypes = 4, 0, 0, {}
    for _, e in ipairs(list) do w = math.max(w, #e.name) end
    for _, e in ipairs(list) do
      local n = 1
      for _, s in ipairs(e.shape) do n = n * s end
      print(('  %-' .. w .. 's  %-5s  %-20s  %s'):format(e.name, e.dtype, '[' .. table.concat(e.shape, ', ')
        .. ']', human(e.bytes)))
      bytes, count = bytes + e.bytes, count + n
      dtypes[e.dtype] = (dtypes[e.dtype] or 0) + 1
    end
    local dl = {}
    for d, n in pairs(dtypes) do dl[#dl + 1] = d .. ' x' .. n end
    table.sort(dl)
    print(('  %d tensors, %d elements, %s (%s)'):format(#list, count, human(bytes), table.concat(dl, ', ')))
    local keys = {}
    for mk in pairs(meta) do keys[#keys + 1] = mk end
    table.sort(keys)
    for _, mk in ipairs(keys) do
      local v = meta[mk]
      if #v > 100 then v = v:sub(1, 97) .. '...' end
      print(('  metadata %s = %s'):format(mk, v))
    end
  end
  return 0
end

return M
