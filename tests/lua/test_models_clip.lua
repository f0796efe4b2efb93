-- CLIP text and image towers against transformers 4.38.2 (tests/fixtures/encoders/clip*, made
-- by tests/fixtures/make_encoder_fixtures.py): outputs within 1e-4 relative error (of the
-- largest reference magnitude), the pixel gradient within 1e-3.
local craft = require 'craft'
local clip = require 'craft.models.clip'
local tokenizer = require 'craft.tokenizer'
local DIR = 'tests/fixtures/encoders/'
local T = {}

local function fixture(name) return craft.io.load_safetensors(DIR .. name .. '/io.safetensors') end

function T.parameters_are_named_by_checkpoint_keys(t)
  local m = clip.from_config(craft.io.read_json(DIR .. 'clip/config.json'))
  t.eq(m.kind, 'CLIPModel')
  local names = {}
  for _, np in ipairs(m:named_parameters()) do names[np[1]] = np[2] end
  for _, k in ipairs { 'text_model.embeddings.token_embedding.weight', 'text_model.embeddings.position_embedding.weight',
    'text_model.encoder.layers.0.self_attn.q_proj.weight', 'text_model.encoder.layers.2.mlp.fc1.bias',
    'text_model.final_layer_norm.weight', 'vision_model.embeddings.patch_embedding.weight',
    'vision_model.embeddings.class_embedding', 'vision_model.pre_layrnorm.weight', 'vision_model.post_layernorm.bias',
    'vision_model.encoder.layers.1.self_attn.out_proj.weight', 'visual_projection.weight', 'text_projection.weight',
    'logit_scale' } do
    t.ok(names[k] ~= nil, 'missing parameter ' .. k)
  end
  t.eq(table.concat(names['vision_model.embeddings.patch_embedding.weight'].shape, 'x'), '32x3x8x8')
  t.eq(names['text_projection.bias'], nil)
  -- the file's keys and the model's names are the same set (strict load)
  local list = craft.io.inspect(DIR .. 'clip/model.safetensors')
  local n = 0
  for _ in pairs(names) do n = n + 1 end
  t.eq(n, #list, 'parameter count vs checkpoint tensors')
end

function T.text_model_matches_reference(t)
  local ref = fixture('clip')
  local m = clip.from_pretrained(DIR .. 'clip')
  local out = m:child('text_model')(ref.input_ids, { penultimate = true, output_hidden_states = true })
  t.close(out.last_hidden_state, ref.text_last_hidden_state, 1e-4, 'last_hidden_state')
  t.close(out.pooler_output, ref.text_pooler_output, 1e-4, 'pooler_output (argmax rule)')
  t.close(out.penultimate, ref.text_penultimate, 1e-4, 'hidden_states[-2]')
  t.eq(#out.hidden_states, 4, 'embeddings + 3 layers')
  t.close(out.hidden_states[3], ref.text_penultimate, 1e-4, 'hidden_states list')
  t.close(m:encode_text(ref.input_ids), ref.text_embeds, 1e-4, 'text_embeds')
  local emb = craft.F.embedding(ref.input_ids, m:child('text_model'):child('embeddings'):child('token_embedding')._params.weight)
  local via = m:child('text_model')(ref.input_ids, { inputs_embeds = emb })
  t.close(via.pooler_output, ref.text_pooler_output, 1e-4, 'pooler_output from inputs_embeds')
  local masked = m:child('text_model')(ref.input_ids, { attention_mask = ref.attention_mask })
  t.close(masked.last_hidden_state, ref.text_masked_last_hidden_state, 1e-4, 'with attention_mask')
  -- the eos_token_id rule of newer configs: the first position holding eos_token_id, else 0
  local tm = m:child('text_model')
  tm.config.eos_token_id = 7
  t.close(tm(ref.input_ids).pooler_output, ref.text_pooler_output_eos7, 1e-4, 'pooler_output (eos_token_id rule)')
  tm.config.eos_token_id = 2
end

function T.text_model_with_projection_and_gelu(t)
  local ref = fixture('clip_text_gelu')
  local m = clip.from_pretrained(DIR .. 'clip_text_gelu')
  t.eq(m.kind, 'CLIPTextModelWithProjection')
  t.eq(m.config.hidden_act, 'gelu')
  local out = m(ref.input_ids)
  t.close(out.last_hidden_state, ref.text_last_hidden_state, 1e-4, 'last_hidden_state')
  t.close(out.text_embeds, ref.text_embeds, 1e-4, 'text_embeds (eos_token_id 999, an early end token)')
end

function T.tokenizer_to_text_features(t)
  local ref = fixture('clip')
  local meta = select(3, craft.io.load_safetensors(DIR .. 'clip/io.safetensors', { names = {} }))
  local prompts = craft.io.decode_json(meta.prompts)
  local tok = tokenizer.load('tests/fixtures/tokenizer/tiny_sd15')
  local ids = tok:encode(prompts)
  t.eq(table.concat(ids:flat(), ','), table.concat(ref.prompt_ids:flat(), ','), 'ids of the prompts')
  local m = clip.from_pretrained(DIR .. 'clip')
  t.close(m:child('text_model')(ids).pooler_output, ref.prompt_pooler_output, 1e-4, 'pooled prompt features')
end

function T.vision_model_matches_reference(t)
  local ref = fixture('clip')
  local m = clip.from_pretrained(DIR .. 'clip')
  local out = m:child('vision_model')(ref.pixel_values)
  t.close(out.last_hidden_state, ref.vision_last_hidden_state, 1e-4, 'last_hidden_state')
  t.close(out.pooler_output, ref.vision_pooler_output, 1e-4, 'pooler_output')
  t.close(m:encode_image(ref.pixel_values), ref.image_embeds, 1e-4, 'image_embeds')
  t.close(m(ref.input_ids, ref.pixel_values).logits_per_image, ref.logits_per_image, 1e-4, 'logits_per_image')
  local e = m:encode_image(ref.pixel_values, { normalize = true })
  t.near((e * e):sum(-1):flat()[1], 1, 1e-5, 'normalised embedding')
end

function T.pixel_gradient_matches_reference(t)
  local ref = fixture('clip')
  local m = clip.from_pretrained(DIR .. 'clip')
  m:requires_grad_(false)
  local px = ref.pixel_values:clone():requires_grad_(true)
  local s = (m:encode_image(px) * ref.image_grad_weights):sum()
  s:backward()
  t.ok(px.grad ~= nil, 'the pixels got a gradient')
  t.close(px.grad, ref.pixel_grad, 1e-3, 'd sum(image_embeds * w) / d pixels')
end

function T.preprocess_resizes_crops_and_normalises(t)
  -- no resize needed: only the centre crop (offset floor((40 - 32) / 2) = 4) and normalisation
  local img = craft.rand({ 2, 3, 32, 40 })
  local x = clip.preprocess(img, { size = 32, crop = 32 })
  t.eq(table.concat(x.shape, 'x'), '2x3x32x32')
  local v = img:get(2, 3, 5, 9)
  t.near(x:get(2, 3, 5, 5), (v - clip.MEAN[3]) / clip.STD[3], 1e-5, 'crop offset and normalisation')
  -- a constant image stays constant through resize and crop; [-1, 1] input is mapped to [0, 1]
  local c = clip.preprocess(craft.full({ 1, 3, 300, 200 }, 0.5), { size = 64, crop = 56, range = { -1, 1 } })
  t.eq(table.concat(c.shape, 'x'), '1x3x56x56')
  t.near(c:get(1, 1, 10, 10), (0.75 - clip.MEAN[1]) / clip.STD[1], 1e-5)
  -- differentiable in the images
  local src = craft.rand({ 1, 3, 96, 80 }, { requires_grad = true })
  clip.preprocess(src, { size = 32, crop = 32 }):sum():backward()
  t.ok(src.grad ~= nil and src.grad:abs():sum():item() > 0, 'gradient reaches the images')
  t.raises(function() clip.preprocess(craft.rand({ 3, 8, 8 })) end, 'must be a [B, C, H, W] tensor')
end

function T.errors_name_the_problem(t)
  local m = clip.from_pretrained(DIR .. 'clip')
  t.raises(function() m:encode_image(craft.rand({ 1, 3, 40, 40 })) end, 'the model has 4x4 positions')
  t.raises(function() m:encode_text(craft.zeros({ 1, 78 }, { dtype = 'i64' })) end, '78 tokens, the model has 77 positions')
  t.raises(function() m:encode_text(craft.zeros({ 77 }, { dtype = 'i64' })) end, 'input_ids must be a [B, L] tensor')
  t.raises(function() clip.from_config({ architectures = { 'CLIPSegModel' } }) end, 'model class "CLIPSegModel" is not implemented by craft')
  t.raises(function() clip.CLIPTextModel({ hidden_act = 'mish', num_hidden_layers = 1 }) end, 'hidden_act = "mish" is not implemented by craft')
end

return T
