-- craft.cas.util: what the CAS object and its dimension modules share: label lists, one-hot rows,
-- cached text features and batched vision features.
local T = require 'craft.tensor'
local A = require 'craft.autograd'
local F = require 'craft.functional'
local argerror = require('craft.core').argerror

local M = {}

-- labels: an i64 tensor or a Lua list of 0-based class indices -> Lua list
function M.label_list(labels)
  if T.is_tensor(labels) then return labels:flat() end
  return labels
end

-- [n, C] of 0/1 (f32): row i is the one-hot of ys[i]
function M.one_hot(ys, C)
  return T.arange(C):eq(T.tensor(ys):reshape(#ys, 1))
end

-- L2-normalised text embeddings of a list of strings, without a graph
function M.encode_texts(enc, strings)
  return A.no_grad(function() return F.normalize(enc(strings):detach():float(), 2) end)
end

-- the vision encoder's features of many images, in batches of cas.batch_size, without a graph
function M.features(cas, images)
  local n, parts = images:size(1), {}
  A.no_grad(function()
    for s = 1, n, cas.batch_size do
      parts[#parts + 1] = cas.vision.encode(images:narrow(1, s, math.min(cas.batch_size, n - s + 1))):detach()
        :float()
    end
  end)
  if #parts == 0 then argerror('cas: no images') end
  return F.cat(parts, 1)
end

return M
