-- tests/lua/tiny_pipeline.lua: the tiny text-to-image pipeline and data the trainer tests share
-- (test_trainers, test_dist, tests/crash/train.lua): the committed tiny SD fixture with a
-- one-layer CLIP text encoder of seed 1, two classes' prompts, eight random images of seed 7.
--   local tiny = dofile('tests/lua/tiny_pipeline.lua')   (from the repository root)
local craft = require 'craft'
local models = require 'craft.models'
local clip = require 'craft.models.clip'

local M = {}
M.tokenizer = require('craft.tokenizer').load('tests/fixtures/tokenizer/tiny_sd15')

function M.pipe()
  local p = models.load('tests/fixtures/models/tiny_sd', { quiet = true })
  craft.manual_seed(1)
  p.text_encoder = clip.CLIPTextModel({ vocab_size = M.tokenizer:vocab_size(), hidden_size = 32,
    intermediate_size = 64, num_hidden_layers = 1, num_attention_heads = 2 })
  p.tokenizer = M.tokenizer
  return p
end

M.PROMPTS = { normal = { 'a chest x-ray, clear lungs', 'a normal chest film' },
  pneumonia = { 'a chest x-ray with consolidation', 'pneumonia on a chest film' } }

function M.dataset()
  craft.manual_seed(7)
  return { images = craft.rand({ 8, 3, 16, 16 }), labels = craft.tensor({ 0, 1, 0, 1, 0, 1, 0, 1 }, { dtype = 'i64' }),
    classes = { 'normal', 'pneumonia' } }
end

return M
