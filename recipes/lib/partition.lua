-- recipes/lib/partition.lua: disjoint parts of a labelled split, the same every time (a real data
-- set's experiment splits and the pools its stand-in models are pretrained on must never overlap:
-- craft.experiment.independence checks the indices each records).
--   partition(labels, seed, parts, groups) -> {name -> sorted list of 1-based indices}
-- labels: 0-based class of every image of the split; parts, in order: {name, per_class = n} takes
-- n images of every class (fewer when the class runs out, with a note), {name, rest = k} splits
-- what is left of every class into k equal shares for the k parts that say rest = k. Each class's
-- images are taken in a seeded random order (craft.data.permutation(n, seed, 100 + class)).
-- groups (optional): a group id per image (HAM10000's lesion_id: several photographs of one
-- lesion); a group's images always land in the same part, and a part takes whole groups until it
-- has at least its share (so it may hold a few more).
local craft = require 'craft'

return function(labels, seed, parts, groups)
  -- units: a group (or a single image) with its images, per class
  local units_of = {}
  local unit_by_group = {}
  for i, y in ipairs(labels) do
    units_of[y] = units_of[y] or {}
    local g = groups and groups[i]
    local u = g and unit_by_group[g]
    if not u then
      u = { images = {} }
      units_of[y][#units_of[y] + 1] = u
      if g then unit_by_group[g] = u end
    end
    u.images[#u.images + 1] = i
  end
  local order = {}
  for y, units in pairs(units_of) do
    local p = craft.data.permutation(#units, seed, 100 + y)
    local o, total = {}, 0
    for k, j in ipairs(p) do o[k] = units[j]; total = total + #units[j].images end
    order[y] = { list = o, next = 1, total = total, taken = 0 }
  end
  local out = {}
  local rest_k, rest_i, remaining = nil, 0, nil
  local function take(st, n, name, y, fill_all)
    local got, count = {}, 0
    while st.next <= #st.list and (fill_all or count < n) do
      local u = st.list[st.next]
      for _, i in ipairs(u.images) do got[#got + 1] = i end
      count = count + #u.images
      st.next, st.taken = st.next + 1, st.taken + #u.images
      if not fill_all and count >= n then break end
    end
    if not fill_all and count < n then
      io.stderr:write(('partition: part %s wants %d images of class %d, got %d\n'):format(name, n, y, count))
    end
    return got
  end
  for _, part in ipairs(parts) do
    local name = part[1]
    local got = {}
    for y, st in pairs(order) do
      local list
      if part.per_class then
        list = take(st, part.per_class, name, y)
      else
        if not remaining then
          remaining = {}
          for yy, s2 in pairs(order) do remaining[yy] = s2.total - s2.taken end
        end
        rest_k = part.rest
        local last = rest_i == rest_k - 1
        list = take(st, math.floor(remaining[y] / rest_k), name, y, last)
      end
      for _, i in ipairs(list) do got[#got + 1] = i end
    end
    if part.rest then rest_i = rest_i + 1 end
    table.sort(got)
    out[name] = got
  end
  return out
end
