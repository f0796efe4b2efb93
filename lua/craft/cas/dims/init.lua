-- craft.cas.dims: the registry of CAS dimensions (METHOD.md, "The Clinical Alignment Score"). A
-- dimension is a module (one file in this folder, or a table a recipe hands to the CAS) with:
--   name = 'prompt', summary = 'one line',
--   encoder = 'vlm' | 'vision' | nil   -- the CAS encoder it reads (a suite without that encoder
--                                      -- leaves the dimension out); nil: none (pixels only)
--   missing(cas) -> nil, or what the CAS lacks to compute it ('call cas:fit_probe', ...)
--   raw(cas, x, ys, Y, shared) -> tensor [n]: the raw (unstandardised) score of each image of the
--     batch x (labels ys, a Lua list of 0-based classes; Y their one-hot [n, C]), differentiable in
--     x when grad mode is on; shared is a per-batch table for what several dimensions compute
--     once (shared.vlm_image(enc), shared.vision()); a dimension may leave extra per-image outputs
--     in shared.out (the checklist's item scores)
--   fit(cas, real_images, labels, o) -> report or nil (optional): what cas:fit does for it
-- The CAS standardises every raw score per class on held-out reals, weights and sums them.
-- Adding a dimension: a file lua/craft/cas/dims/<name>.lua (found by name), or a table in the CAS
-- recipe's `dims` list (examples/custom_cas_dimension.lua).
local core = require 'craft.core'

local M = { registered = {} }

-- METHOD.md's four, in the order every table and file lists them
M.BUILTIN = { 'prompt', 'checklist', 'probe', 'fidelity' }

local function check(name, dim)
  core.want('cas.dims.register', 'name', name, 'string')
  core.want('cas.dims.register', 'dimension', dim, 'table')
  if not name:match('^[%a_][%w_]*$') then
    core.argerror(('cas.dims.register: the name %q must be a Lua identifier (it names CSV columns)')
      :format(name))
  end
  for _, k in ipairs { 'raw', 'missing' } do
    if type(dim[k]) ~= 'function' then
      core.argerror(('cas.dims.register: dimension %q has no %s function'):format(name, k))
    end
  end
  if dim.fit ~= nil and type(dim.fit) ~= 'function' then
    core.argerror(('cas.dims.register: dimension %q: fit must be a function'):format(name))
  end
end

-- register(name, dim) -> dim: makes the dimension known by name (a second registration replaces
-- the first: a recipe run again registers again)
function M.register(name, dim)
  check(name, dim)
  dim.name = dim.name or name
  M.registered[name] = dim
  return dim
end

-- get(name) -> the dimension module (registered, or lua/craft/cas/dims/<name>.lua)
function M.get(name)
  if M.registered[name] then return M.registered[name] end
  if type(name) == 'string' and name:match('^[%a_][%w_]*$') and name ~= 'init' then
    local ok, mod = pcall(require, 'craft.cas.dims.' .. name)
    if ok and type(mod) == 'table' then return M.register(name, mod) end
    if not ok and not tostring(mod):find("module 'craft.cas.dims." .. name .. "' not found", 1, true) then
      error(mod, 0)
    end
  end
  core.argerror(('cas: unknown dimension %s (known: %s)'):format(tostring(name),
    table.concat(M.names(), ', ')))
end

-- names() -> the built-in dimensions, then the others registered in this process (sorted)
function M.names()
  local r, seen = {}, {}
  for _, d in ipairs(M.BUILTIN) do r[#r + 1], seen[d] = d, true end
  local extra = {}
  for d in pairs(M.registered) do if not seen[d] then extra[#extra + 1] = d end end
  table.sort(extra)
  for _, d in ipairs(extra) do r[#r + 1] = d end
  return r
end

return M
