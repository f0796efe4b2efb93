-- tests/mpi/compare_tables.lua A B: compares two experiment tables (table.txt): the same lines and
-- words, every number within 1e-4 relative (1e-9 absolute near zero) but the last column of the
-- method rows (wall minutes per model). Prints the differences and "same" or "differ".
local function lines(path)
  local r = {}
  for l in assert(io.open(path)):lines() do r[#r + 1] = l end
  return r
end
local function words(line)
  local w = {}
  for x in line:gmatch('%S+') do w[#w + 1] = x end
  local _, bars = line:gsub('|', '')
  if bars == 3 then w[#w] = nil end   -- a method row's (and the header's) last column: minutes
  return w
end
-- the numbers of a word (17.5%, [4.0, 12.0], 0.812/0.700, (0.750), p = 0.0312)
local function numbers(s)
  local r = {}
  for n in s:gmatch('[-+]?%d+%.?%d*[eE]?[-+]?%d*') do r[#r + 1] = tonumber(n) end
  return r, (s:gsub('[-+]?%d+%.?%d*[eE]?[-+]?%d*', '#'))
end
local a, b = lines(arg[1]), lines(arg[2])
local bad = 0
local function differ(msg) bad = bad + 1; if bad <= 20 then print(msg) end end
if #a ~= #b then differ(('%d lines vs %d'):format(#a, #b)) end
for i = 1, math.min(#a, #b) do
  local wa, wb = words(a[i]), words(b[i])
  if #wa ~= #wb then differ(('line %d: %d words vs %d:\n  %s\n  %s'):format(i, #wa, #wb, a[i], b[i])) else
    for k = 1, #wa do
      local na, sa = numbers(wa[k])
      local nb, sb = numbers(wb[k])
      local same = sa == sb and #na == #nb
      for j = 1, same and #na or 0 do
        local x, y = na[j], nb[j]
        if x and y and math.abs(x - y) > 1e-4 * math.max(math.abs(x), math.abs(y)) + 1e-9 then same = false end
      end
      if not same then differ(('line %d word %d: %s vs %s'):format(i, k, wa[k], wb[k])) end
    end
  end
end
print(bad == 0 and 'same' or ('differ (%d)'):format(bad))
