-- tests/crash/train.lua OUT [resume]: the CRAFT trainer on the tiny test pipeline, 8 steps with a
-- checkpoint after every step, for tests/crash_resume.sh (which kills it with SIGKILL during a
-- save and resumes it). Prints "ran <steps this process trained>" and "weights <hex digest of the trained LoRA
-- weights' bytes>" at the end.
local craft = require 'craft'
local ffi = require 'ffi'
local lora = require 'craft.models.lora'
local CT = require 'craft.train.craft'
craft.set_num_threads(1)

local out, resume = arg[1], arg[2] == 'resume'
local tiny = dofile('tests/lua/tiny_pipeline.lua')
local p, PROMPTS = tiny.pipe(), tiny.PROMPTS
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
