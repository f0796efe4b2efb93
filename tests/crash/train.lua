-- tests/crash/train.lua OUT [resume]: the CRAFT trainer on the tiny test pipeline, 8 steps with a
-- checkpoint after every step, for tests/crash_resume.sh (which kills it with SIGKILL during a
-- save and resumes it). Prints "ran <steps this process trained>" and "weights <hex digest of the trained LoRA
-- weights' bytes>" at the end.
local craft = require 'craft'
local ffi = require 'ffi'
local models = require 'craft.models'
local clip = require 'craft.models.clip'
local lora = require 'craft.models.lora'
local CT = require 'craft.train.craft'
craft.set_num_threads(1)

local out, resume = arg[1], arg[2] == 'resume'
local tok = require('craft.tokenizer').load('tests/fixtures/tokenizer/tiny_sd15')
local p = models.load('tests/fixtures/models/tiny_sd', { quiet = true })
craft.manual_seed(1)
p.text_encoder = clip.CLIPTextModel({ vocab_size = tok:vocab_size(), hidden_size = 32, intermediate_size = 64,
  num_hidden_layers = 1, num_attention_heads = 2 })
p.tokenizer = tok
local PROMPTS = { normal = { 'a chest x-ray, clear lungs', 'a normal chest film' },
  pneumonia = { 'a chest x-ray with consolidation', 'pneumonia on a chest film' } }
local ran = 0   -- training steps this process ran (one reward call each): a resume runs only the rest
CT.train(p, { preset = 'tiny', steps = 3, lr = 1e-2, prompts = PROMPTS, quiet = true, kl_weight = 0.1,
  reward = function(images) ran = ran + 1; return images:mean({ 2, 3, 4 }) end,
  max_steps = 8, checkpoint_every = 1, out = out, resume = resume })

-- FNV-1a over the float32 bytes of every LoRA weight, in name order
local names, by = {}, {}
for _, np in ipairs(lora.parameters(p.unet)) do names[#names + 1] = np[1]; by[np[1]] = np[2] end
table.sort(names)
local h = 0xcbf29ce484222325ULL
for _, n in ipairs(names) do
  local t = by[n]:detach():float():contiguous()
  local b = ffi.cast('const uint8_t*', t:data_ptr())
  for i = 0, t:numel() * 4 - 1 do h = bit.bxor(h, b[i]) * 0x100000001b3ULL end
end
print('ran ' .. ran)
print(('weights %016x'):format(tonumber(bit.rshift(h, 32))) .. ('%08x'):format(tonumber(bit.band(h, 0xffffffff))))
