-- CAS dimension 1, prompt alignment: the mean over prompt sets of the image's log-probability of
-- its own class under a zero-shot classifier of the VLM (cas.prompt_average: 'logprob' averages
-- the log-probabilities of the sets, 'embedding' one classifier of averaged prompt embeddings).
-- Prompt set j takes the j-th prompt of every class (cycling through a class's prompts when it has
-- fewer), so each set is one zero-shot classifier.
local A = require 'craft.autograd'
local F = require 'craft.functional'
local U = require 'craft.cas.util'
local argerror = require('craft.core').argerror

-- the prompt sets' text features, computed once per CAS: {[C, D], ...}
local function text(cas)
  if cas._ptext then return cas._ptext end
  local all, start, count = {}, {}, {}
  for c, name in ipairs(cas.classes) do
    local ps = cas.prompts[name]
    if type(ps) ~= 'table' or #ps == 0 then argerror(('cas: no prompts for class %q'):format(name)) end
    start[c], count[c] = #all + 1, #ps
    for _, p in ipairs(ps) do all[#all + 1] = p end
  end
  local E = U.encode_texts(cas.vlm.encode_text, all)
  local sets = {}
  A.no_grad(function()
    if cas.prompt_average == 'embedding' then
      local rows = {}
      for c = 1, #cas.classes do rows[c] = E:narrow(1, start[c], count[c]):mean(1) end
      sets[1] = F.normalize(F.stack(rows, 1), 2)
    else
      local J = 0
      for c = 1, #cas.classes do J = math.max(J, count[c]) end
      for j = 1, J do
        local rows = {}
        for c = 1, #cas.classes do rows[c] = E:select(1, start[c] + (j - 1) % count[c]) end
        sets[j] = F.stack(rows, 1)     -- [C, D]: one zero-shot classifier
      end
    end
  end)
  cas._ptext = sets
  return sets
end

return {
  name = 'prompt',
  summary = 'zero-shot log-probability of the image\'s class under the VLM\'s prompts',
  encoder = 'vlm',
  missing = function(cas)
    if cas.vlm == nil or cas.prompts == nil then return 'missing encoder or texts in the recipe' end
  end,
  raw = function(cas, x, ys, Y, shared)
    local img = shared.vlm_image(cas.vlm)
    local sets, acc = text(cas), nil
    for _, S in ipairs(sets) do
      local lp = F.log_softmax(img:matmul(S:t()) * (1 / cas.temperature.prompt), 2)
      acc = acc and acc + lp or lp
    end
    return (acc * Y):sum(2) * (1 / #sets)
  end,
}
