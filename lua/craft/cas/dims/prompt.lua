-- CAS dimension 1, prompt alignment: the mean over prompt sets of the image's log-probability of
-- its own class under a zero-shot classifier of the VLM (cas.prompt_average: 'logprob' averages
-- the log-probabilities of the sets, 'embedding' one classifier of averaged prompt embeddings).
return {
  name = 'prompt',
  summary = 'zero-shot log-probability of the image\'s class under the VLM\'s prompts',
  encoder = 'vlm',
  missing = function(cas)
    if cas.vlm == nil or cas.prompts == nil then return 'missing encoder or texts in the recipe' end
  end,
  raw = function(cas, x, ys, Y, shared)
    local F = require 'craft.functional'
    local img = shared.vlm_image(cas.vlm)
    local sets, acc = cas:_prompt_text(), nil
    for _, S in ipairs(sets) do
      local lp = F.log_softmax(img:matmul(S:t()) * (1 / cas.temperature.prompt), 2)
      acc = acc and acc + lp or lp
    end
    return (acc * Y):sum(2) * (1 / #sets)
  end,
}
