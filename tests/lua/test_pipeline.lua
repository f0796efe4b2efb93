-- Text-to-image end to end against diffusers' StableDiffusionPipeline: the tiny pipeline folder
-- (fp16 weights, DDIM, 4 steps, cfg 7.5) from supplied initial latents and text embeddings gives
-- the reference image; PNG output; DRaFT-style gradients through the last step.
local craft = require 'craft'
local io_ = require 'craft.io'
local models = require 'craft.models'
local T = {}

local c = io_.load_safetensors('tests/fixtures/models/cases/pipeline.safetensors')
local run = io_.read_json('tests/fixtures/models/cases/pipeline.json')
local function rel(a, b) return (a - b):abs():max():item() / math.max(b:abs():max():item(), 1e-30) end

local pipe
local function get() pipe = pipe or models.load('tests/fixtures/models/tiny_sd', { quiet = true }); return pipe end

function T.tiny_text_to_image_matches_diffusers(t)
  local p = get()
  local png = os.tmpname() .. '_img.png'
  local img = p:generate { prompt_embeds = c.prompt_embeds, negative_prompt_embeds = c.negative_prompt_embeds,
    latents = c.latents, steps = run.steps, cfg = run.cfg, height = run.height, width = run.width, out = png }
  t.eq(table.concat(img.shape, ','), '1,3,16,16')
  local e = rel(img, c.image)
  t.ok(e < 1e-4, ('decoded image rel err %.2g'):format(e))
  local f = io.open(png, 'rb')
  t.ok(f ~= nil and f:read(8) == '\137PNG\r\n\26\n', 'PNG written')
  if f then f:close() end
  os.remove(png)
end

function T.seeded_generation_and_draft_gradients(t)
  local p = get()
  local o = { prompt_embeds = c.prompt_embeds, negative_prompt_embeds = c.negative_prompt_embeds, steps = 2, cfg = 3,
    seed = 17, height = 16, width = 16 }
  local a = p:generate(o)
  local b = p:generate(o)
  t.eq(rel(a, b), 0, 'same seed, same image')
  t.ok(not a.requires_grad, 'no graph by default')
  local e = c.prompt_embeds:clone():requires_grad_(true)
  o.prompt_embeds, o.grad_steps = e, 1
  local img = p:generate(o)
  img:mean():backward()
  t.ok(e.grad ~= nil and e.grad:abs():max():item() > 0, 'gradient reaches the prompt embeddings through the last step')
  t.raises(function() p:generate { prompt = 'a chest x-ray', steps = 1 } end, 'no text encoder loaded')
end

-- checkpoint_vae = true recomputes the decoder in backward (block by block for craft's VAE, the whole
-- decode for another): the same images and gradients as keeping the activations, and the VAE's own
-- checkpointing flag as it was afterwards.
function T.checkpointed_decode_gives_the_same_gradient(t)
  local p = get()
  local function grad(ckpt)
    local e = c.prompt_embeds:clone():requires_grad_(true)
    local img = p:generate { prompt_embeds = e, negative_prompt_embeds = c.negative_prompt_embeds, steps = 2,
      cfg = 3, seed = 5, height = 16, width = 16, grad_steps = 1, checkpoint_vae = ckpt }
    ;(img * img):mean():backward()
    return img:detach(), e.grad
  end
  local i0, g0 = grad(false)
  local i1, g1 = grad(true)
  t.eq(p.vae.gradient_checkpointing, false, 'the VAE\'s flag is restored')
  t.ok(g0:abs():max():item() > 0, 'a gradient to compare')
  t.ok(rel(i1, i0) < 1e-6, ('same images, rel %.2g'):format(rel(i1, i0)))
  t.ok(rel(g1, g0) < 1e-5, ('same gradient with the decoder recomputed block by block, rel %.2g'):format(rel(g1, g0)))
  -- a VAE without block checkpointing: the whole decode under craft.checkpoint
  local vae = p.vae
  local wrapped = setmetatable({}, { __index = function(_, k)
    if k ~= 'gradient_checkpointing' then return vae[k] end
  end })
  wrapped.decode = function(_, z) return vae:decode(z) end
  p.vae = wrapped
  local ok, i2, g2 = pcall(grad, true)
  p.vae = vae
  t.ok(ok, tostring(i2))
  if ok then t.ok(rel(g2, g0) < 1e-5, ('same gradient with the whole decode recomputed, rel %.2g'):format(rel(g2, g0))) end
end

-- Sampling in bf16 before a gradient window: the bf16 weight copies are freed before the window (it
-- computes in fp32 and needs the memory), not after plain sampling; the gradient is still there.
function T.bf16_weight_copies_are_freed_before_the_gradient_window(t)
  local p = get()
  local A = require 'craft.autograd'
  local o = { prompt_embeds = c.prompt_embeds, negative_prompt_embeds = c.negative_prompt_embeds, steps = 3,
    cfg = 3, seed = 5, height = 16, width = 16, precision = 'bf16' }
  A.clear_precision_cache()
  craft.no_grad(function() return p:generate(o) end)
  local info = A.precision_info()
  if info.bf16_kernels == 0 then return t.skip('no bf16 kernels on this CPU: ' .. tostring(info.why)) end
  t.ok(info.cache.bytes > 0, 'plain bf16 sampling keeps the weight copies for the next call')
  local e = c.prompt_embeds:clone():requires_grad_(true)
  o.prompt_embeds, o.grad_steps = e, 1
  local img = p:generate(o)
  t.eq(A.precision_info().cache.bytes, 0, 'copies freed before the fp32 window, none made in it')
  img:mean():backward()
  t.ok(e.grad:abs():max():item() > 0, 'the gradient reaches the prompt embeddings')
end

-- Prompts go through the tokenizer and a text encoder (craft.models.clip; random tiny weights
-- here: this checks the wiring and shapes, the parity is the embeddings test above).
function T.prompts_through_tokenizer_and_text_encoder(t)
  local ok, clip = pcall(require, 'craft.models.clip')
  if not ok then return t.skip('craft.models.clip is not available') end
  local tok = require('craft.tokenizer').load('tests/fixtures/tokenizer/tiny_sd15')
  local te = clip.CLIPTextModel({ vocab_size = tok:vocab_size(), hidden_size = 32, intermediate_size = 64,
    num_hidden_layers = 1, num_attention_heads = 2 })
  local base = get()
  local p = require('craft.models.pipeline').new { unet = base.unet, vae = base.vae, scheduler = base.scheduler,
    text_encoder = te, tokenizer = tok }
  local e = p:encode_prompt({ 'a chest x-ray', 'a photo' })
  t.eq(table.concat(e.shape, ','), '2,77,32')
  local img = p:generate { prompt = { 'a chest x-ray', 'a photo' }, negative_prompt = 'blurry', steps = 1, cfg = 2, seed = 1 }
  t.eq(table.concat(img.shape, ','), '2,3,16,16')
  t.ok(img:min():item() >= 0 and img:max():item() <= 1, 'images in [0, 1]')
end

return T
