-- craft.metrics_args: the argument checks that craft.metrics and craft.metrics_learned share
-- (lists, labels, feature matrices, probability rows; each error names the function and argument).
local core = require 'craft.core'
local T = require 'craft.tensor'
local want, argerror = core.want, core.argerror

local M = {}

-- a Lua list from a list or a tensor (fname and what name it in the error)
function M.list(v, fname, what)
  want(fname, what, v, 'list')
  if T.is_tensor(v) then return v:flat() end
  return v
end
-- class labels: a list or a tensor of integers
function M.labels(v, fname, what)
  v = M.list(v, fname, what)
  for i = 1, #v do
    if type(v[i]) ~= 'number' or v[i] % 1 ~= 0 then
      argerror(('%s: %s[%d] must be an integer class label, got %s'):format(fname, what, i,
        core.describe(v[i])))
    end
  end
  return v
end
-- true labels y and predictions p, as long as each other
function M.label_pair(fname, y, p)
  y, p = M.labels(y, fname, 'y'), M.labels(p, fname, 'p')
  if #y ~= #p then argerror(('%s: y has %d entries but p has %d'):format(fname, #y, #p)) end
  return y, p
end
-- tensor [N, D] from a tensor or a list of rows
function M.mat(v, fname, what)
  want(fname, what, v, 'list')
  local x = T.is_tensor(v) and v:detach():float():contiguous() or T.tensor(v)
  if x:dim() ~= 2 then
    argerror(('%s: %s must be [N, D] features, got %s'):format(fname, what, core.describe(x)))
  end
  return x
end
-- rows (a list of lists) from a tensor [N, C] or a list of rows
function M.rows(v, fname, what)
  want(fname, what, v, 'list')
  local P = T.is_tensor(v) and v:tolist() or v
  for i = 1, #P do
    if type(P[i]) ~= 'table' then
      argerror(('%s: %s must be rows [N, C], row %d is %s'):format(fname, what, i, core.describe(P[i])))
    end
  end
  return P
end

return M
