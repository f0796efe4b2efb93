-- craft.cas.reward_spec: how a trainer turns a calibrated CAS into its reward, as one value the
-- recipe hands to the trainer (craft.train.craft's and craft.train.dpo's `reward`):
--
--   local RS = require 'craft.cas.reward_spec'
--   local spec = RS.new{weights = {prompt = 1, checklist = 1, probe = 1, fidelity = 1},
--     cap = 0.5, transform = 'log', scale = false}
--   spec:with{cap = false}                 -- a copy with fields replaced (an ablation's variant)
--   cas:reward(images, labels, spec)       -- tensor [N], differentiable in the images
--
-- Fields (a recipe choice each; METHOD.md's reward is the plain weighted sum: no cap, no
-- transform, no scale):
--   weights    {dim -> number}; nil: the CAS recipe's reward_weights. A dimension left out has
--              weight 0 (it is not computed).
--   cap        false, a number or {dim -> number}: each weighted standardised dimension is capped
--              at cap * |w_d|, so an image earns nothing for exceeding real images on one
--              dimension; nil: the CAS recipe's reward_cap.
--   transform  false or 'log': below -1 a term counts as -1 - log(-term), so a batch's few worst
--              images do not own its gradient.
--   scale      false, {dim -> number} (each term divided by it) or 'start': the trainer measures
--              each dimension's spread (IQR / 1.349, at least 1) on scale_images images of the
--              starting model and uses those (craft.train.craft).
--   scale_images  64: the images 'start' measures on.
local core = require 'craft.core'

local M = {}
local Spec = {}
Spec.__index = Spec
M.Spec = Spec

M.FIELDS = { weights = 'table', cap = 'number|table|boolean', transform = 'string|boolean',
  scale = 'string|table|boolean', scale_images = 'positive' }

local function check(fname, o)
  for k, v in pairs(o) do
    local kind = M.FIELDS[k]
    if not kind then
      local known = {}
      for f in pairs(M.FIELDS) do known[#known + 1] = f end
      table.sort(known)
      core.argerror(('%s: unknown field %q (known: %s)'):format(fname, tostring(k),
        table.concat(known, ', ')))
    end
    core.want(fname, k, v, kind)
  end
  if o.transform and o.transform ~= 'log' then
    core.argerror(('%s: transform is %q (false or \'log\')'):format(fname, tostring(o.transform)))
  end
  if o.cap == true then core.argerror(fname .. ': cap is true (false, a number or {dim -> number})') end
  if type(o.scale) == 'string' and o.scale ~= 'start' then
    core.argerror(('%s: scale is %q (false, \'start\' or {dim -> number})'):format(fname, o.scale))
  end
  if o.scale == true then core.argerror(fname .. ': scale is true (false, \'start\' or {dim -> number})') end
end

-- new{weights=, cap=, transform=, scale=, scale_images=} -> a reward spec
function M.new(o)
  o = core.want('reward_spec.new', 'spec', o, 'table', true) or {}
  if M.is(o) then return o end
  check('reward_spec.new', o)
  local s = setmetatable({}, Spec)
  for k, v in pairs(o) do s[k] = v end
  if s.transform == nil then s.transform = false end
  if s.scale == nil then s.scale = false end
  s.scale_images = s.scale_images or 64
  return s
end

function M.is(v) return type(v) == 'table' and getmetatable(v) == Spec end

-- spec:with{field = value, ...} -> a new spec: this one with those fields replaced (false clears a
-- cap, a transform or a scale)
function Spec:with(o)
  core.want('reward_spec:with', 'fields', o, 'table')
  check('reward_spec:with', o)
  local r = {}
  for k, v in pairs(self) do r[k] = v end
  for k, v in pairs(o) do r[k] = v end
  return M.new(r)
end

-- describe() -> one line for logs and reports
function Spec:describe()
  local parts = {}
  if self.weights then
    local ws = {}
    for d, w in pairs(self.weights) do ws[#ws + 1] = ('%s %g'):format(d, w) end
    table.sort(ws)
    parts[#parts + 1] = 'weights ' .. table.concat(ws, ', ')
  else
    parts[#parts + 1] = 'the CAS recipe\'s weights'
  end
  if type(self.cap) == 'number' then parts[#parts + 1] = ('cap %g'):format(self.cap)
  elseif type(self.cap) == 'table' then parts[#parts + 1] = 'cap per dimension' end
  if self.transform then parts[#parts + 1] = 'transform ' .. self.transform end
  if self.scale == 'start' then parts[#parts + 1] = 'scaled on the starting model'
  elseif type(self.scale) == 'table' then parts[#parts + 1] = 'scaled' end
  return table.concat(parts, '; ')
end

return M
