-- tools/make_fullsize.lua: writes random-weight model folders at the real shapes of the models a
-- full-size CRAFT run uses, with nothing downloaded, so that the full-size step can be timed and
-- its memory measured on any machine (bench/bench_craft_step.lua):
--
--   ./build/craft tools/make_fullsize.lua --out DIR [--tiny] [--dtype f16|f32] [--seed 0]
--                                         [--only sd15,clip,dinov2,resnet]
--
--   DIR/sd15/             StableDiffusionPipeline (diffusers layout) of runwayml/stable-diffusion-v1-5:
--                         model_index.json, unet/, vae/, text_encoder/, tokenizer/, scheduler/
--                         (its PNDMScheduler config; no safety checker or feature extractor)
--   DIR/clip-vit-l14/     CLIPModel of openai/clip-vit-large-patch14 (transformers layout) + tokenizer
--   DIR/dinov2-base/      Dinov2Model of facebook/dinov2-base
--   DIR/resnet-50/        ResNetForImageClassification of microsoft/resnet-50 (1000 classes)
--
-- The config.json files hold the facts of those repositories' own configs (shapes, activations,
-- epsilons, token ids, scheduler constants, preprocessing); the weights are random, drawn from
-- craft's seeded generator with each library's own initialisation, so activations are those of a
-- freshly built model rather than of noise at the wrong scale:
--   diffusers UNet and VAE: PyTorch's layer defaults (uniform +-1/sqrt(fan_in)), norms 1 / 0;
--   CLIP (transformers CLIPPreTrainedModel._init_weights, initializer_factor 1): token and
--     position embeddings N(0, 0.02), attention q/k/v N(0, D^-0.5 (2L)^-0.5), out N(0, D^-0.5),
--     fc1 N(0, (2D)^-0.5), fc2 N(0, D^-0.5 (2L)^-0.5), class embedding N(0, D^-0.5), patch
--     embedding N(0, 0.02), projections N(0, width^-0.5), linear biases 0, logit scale 2.6592;
--     SD 1.5's text encoder is CLIP ViT-L/14's text tower, so sd15/text_encoder holds the same
--     weights as clip-vit-l14's text_model;
--   DINOv2 (Dinov2PreTrainedModel): linear and patch weights, position embeddings and class token
--     truncated N(0, 0.02) (the truncation at +-2 is 100 standard deviations out: plain normal
--     draws), biases 0, mask token 0, layer scales 1;
--   ResNet (ResNetPreTrainedModel): convolutions Kaiming normal (fan_out, ReLU gain), batch norms
--     weight 1, bias 0, running mean 0, variance 1; the classifier PyTorch's default.
-- The tokenizer is the real CLIP BPE vocabulary (49408 ids, 48894 merges) that ships with craft
-- (models/builtin/sd-tiny/tokenizer), so no vocabulary is made up.
-- --dtype f16 (default) halves the files (3.3 GB in all, against 6.6 GB in f32); craft, diffusers
-- and transformers load either as float32. --tiny writes the same layout with toy widths (seconds,
-- a few MB: the tests and bench_craft_step.lua --tiny). tools/check_fullsize.py loads every folder
-- with diffusers / transformers and lists missing or unexpected keys.
local craft = require 'craft'
local core = require 'craft.core'
local clip = require 'craft.models.clip'

local M = {}
-- written to make_fullsize.json: a change to what the folders hold raises it (bench_craft_step.lua
-- writes folders of another version again)
M.VERSION = 2

-- the real configs (values as the repositories' config.json files state them)
local function sd15_unet(tiny)
  local c = { _class_name = 'UNet2DConditionModel', _diffusers_version = '0.27.2', act_fn = 'silu',
    attention_head_dim = 8, block_out_channels = { 320, 640, 1280, 1280 }, center_input_sample = false,
    cross_attention_dim = 768, down_block_types = { 'CrossAttnDownBlock2D', 'CrossAttnDownBlock2D',
    'CrossAttnDownBlock2D', 'DownBlock2D' }, downsample_padding = 1, flip_sin_to_cos = true, freq_shift = 0,
    in_channels = 4, layers_per_block = 2, mid_block_scale_factor = 1, norm_eps = 1e-5, norm_num_groups = 32,
    out_channels = 4, sample_size = 64, up_block_types = { 'UpBlock2D', 'CrossAttnUpBlock2D',
    'CrossAttnUpBlock2D', 'CrossAttnUpBlock2D' } }
  if tiny then
    c.block_out_channels, c.layers_per_block = { 32, 32, 64, 64 }, 1
    c.cross_attention_dim, c.sample_size = 32, 16
  end
  return c
end

local function sd15_vae(tiny)
  local c = { _class_name = 'AutoencoderKL', _diffusers_version = '0.27.2', act_fn = 'silu',
    block_out_channels = { 128, 256, 512, 512 },
    down_block_types = { 'DownEncoderBlock2D', 'DownEncoderBlock2D',
    'DownEncoderBlock2D', 'DownEncoderBlock2D' }, in_channels = 3, latent_channels = 4, layers_per_block = 2,
    norm_num_groups = 32, out_channels = 3, sample_size = 512, scaling_factor = 0.18215,
    up_block_types = { 'UpDecoderBlock2D', 'UpDecoderBlock2D', 'UpDecoderBlock2D', 'UpDecoderBlock2D' } }
  if tiny then c.block_out_channels, c.layers_per_block, c.sample_size = { 32, 32, 64, 64 }, 1, 128 end
  return c
end

-- SD 1.5 ships PNDM; CRAFT samples with DDIM made from this config (models.load{sampler = 'ddim'})
local SCHEDULER = { _class_name = 'PNDMScheduler', _diffusers_version = '0.27.2', beta_end = 0.012,
  beta_schedule = 'scaled_linear', beta_start = 0.00085, clip_sample = false, num_train_timesteps = 1000,
  set_alpha_to_one = false, skip_prk_steps = true, steps_offset = 1,
  trained_betas = require('craft.io').null }

-- openai/clip-vit-large-patch14 (its older config: bos 0, eos 2, pad 1, which transformers reads as
-- "pool at the highest token id", the end token)
local function clip_text(tiny)
  local t = { vocab_size = 49408, hidden_size = 768, intermediate_size = 3072, projection_dim = 768,
    num_hidden_layers = 12, num_attention_heads = 12, max_position_embeddings = 77, hidden_act = 'quick_gelu',
    layer_norm_eps = 1e-5, attention_dropout = 0, dropout = 0, initializer_range = 0.02,
    initializer_factor = 1, bos_token_id = 0, eos_token_id = 2, pad_token_id = 1,
    model_type = 'clip_text_model' }
  if tiny then
    t.hidden_size, t.intermediate_size, t.projection_dim, t.num_hidden_layers, t.num_attention_heads =
      32, 64, 32, 2, 2
  end
  return t
end

local function clip_config(tiny)
  local v = { hidden_size = 1024, intermediate_size = 4096, projection_dim = 768, num_hidden_layers = 24,
    num_attention_heads = 16, image_size = 224, patch_size = 14, num_channels = 3, hidden_act = 'quick_gelu',
    layer_norm_eps = 1e-5, attention_dropout = 0, dropout = 0, initializer_range = 0.02,
    initializer_factor = 1, model_type = 'clip_vision_model' }
  if tiny then
    v.hidden_size, v.intermediate_size, v.projection_dim, v.num_hidden_layers, v.num_attention_heads =
      32, 64, 32, 2, 2
  end
  return { architectures = { 'CLIPModel' }, model_type = 'clip', initializer_factor = 1,
    logit_scale_init_value = 2.6592, projection_dim = tiny and 32 or 768, text_config = clip_text(tiny),
    vision_config = v, torch_dtype = 'float32', transformers_version = '4.38.2' }
end

local function dinov2_config(tiny)
  local c = { architectures = { 'Dinov2Model' }, model_type = 'dinov2', hidden_size = 768,
    num_hidden_layers = 12,
    num_attention_heads = 12, mlp_ratio = 4, hidden_act = 'gelu', hidden_dropout_prob = 0,
    attention_probs_dropout_prob = 0, initializer_range = 0.02, layer_norm_eps = 1e-6, image_size = 518,
    patch_size = 14, num_channels = 3, qkv_bias = true, layerscale_value = 1, drop_path_rate = 0,
    use_swiglu_ffn = false, torch_dtype = 'float32', transformers_version = '4.38.2' }
  if tiny then c.hidden_size, c.num_hidden_layers, c.num_attention_heads = 32, 2, 2 end
  return c
end

local function resnet_config(tiny)
  local c = { architectures = { 'ResNetForImageClassification' }, model_type = 'resnet', num_channels = 3,
    embedding_size = 64, hidden_sizes = { 256, 512, 1024, 2048 }, depths = { 3, 4, 6, 3 },
    layer_type = 'bottleneck', hidden_act = 'relu', downsample_in_first_stage = false, num_labels = 1000,
    torch_dtype = 'float32', transformers_version = '4.38.2' }
  if tiny then c.embedding_size, c.hidden_sizes, c.depths = 16, { 32, 64, 128, 256 }, { 1, 1, 1, 1 } end
  return c
end

-- CLIPImageProcessor of clip-vit-large-patch14 and BitImageProcessor of dinov2-base / resnet-50
local function preprocessor(kind, size, crop, mean, std)
  return { crop_size = { height = crop, width = crop }, do_center_crop = true, do_normalize = true,
    do_resize = true, do_rescale = true, rescale_factor = 1 / 255, image_mean = mean, image_std = std,
    image_processor_type = kind, resample = 3, size = { shortest_edge = size } }
end
local IMAGENET_MEAN, IMAGENET_STD = { 0.485, 0.456, 0.406 }, { 0.229, 0.224, 0.225 }

---------------------------------------------------------------- writing
local function mkdir(dir) os.execute("mkdir -p '" .. dir:gsub("'", "'\\''") .. "'") end

local function copy_file(from, to)
  local f = assert(io.open(from, 'rb'))
  local data = f:read('*a')
  f:close()
  local g = assert(io.open(to, 'wb'))
  g:write(data)
  g:close()
end

local TOKENIZER_FILES = { 'vocab.json', 'merges.txt', 'tokenizer_config.json', 'special_tokens_map.json' }
local function write_tokenizer(dir)
  mkdir(dir)
  local src = require('craft.repo').path('models/builtin/sd-tiny/tokenizer')
  for _, f in ipairs(TOKENIZER_FILES) do copy_file(src .. '/' .. f, dir .. '/' .. f) end
end

-- save(path, list of {name, tensor}, dtype): the tensors written in dtype, one conversion at a time
local function save(path, params, dtype)
  local out = {}
  for i, np in ipairs(params) do
    local t = np[2]:detach()
    if t.dtype == 'f32' and dtype ~= 'f32' then t = t:to(dtype) end
    out[i] = { np[1], t }
  end
  craft.io.save_safetensors(path, out, { format = 'pt' })
  return #out
end

-- every parameter and buffer, as the state dict names them
local function state(model)
  local list = {}
  for _, np in ipairs(model:named_parameters()) do list[#list + 1] = np end
  for _, nb in ipairs(model:named_buffers()) do list[#list + 1] = nb end
  table.sort(list, function(a, b) return a[1] < b[1] end)
  return list
end

local function count(list)
  local n = 0
  for _, np in ipairs(list) do n = n + np[2]:numel() end
  return n
end

---------------------------------------------------------------- initialisation
local function normal(t, std) t:normal_(0, std) end

-- transformers' CLIP init over a CLIPModel's (or a tower's) named parameters
local function init_clip(model, cfg)
  local tc, vc = cfg.text_config, cfg.vision_config
  craft.no_grad(function()
    for _, np in ipairs(model:named_parameters()) do
      local name, p = np[1], np[2]
      local tower = name:match('^text_model%.') and tc or name:match('^vision_model%.') and vc or nil
      local D, L = tower and tower.hidden_size, tower and tower.num_hidden_layers
      if name:match('bias$') then p:zero_()
      elseif name:match('layer_norm%d?%.weight$') or name:match('layernorm%.weight$')
        or name:match('pre_layrnorm%.weight$') or name:match('final_layer_norm%.weight$') then p:fill_(1)
      elseif name:match('token_embedding%.weight$') or name:match('position_embedding%.weight$') then
        normal(p, 0.02)
      elseif name:match('class_embedding$') then normal(p, D ^ -0.5)
      elseif name:match('patch_embedding%.weight$') then normal(p, 0.02)
      elseif name:match('_proj%.weight$') and name:match('self_attn') then
        normal(p, name:match('out_proj') and D ^ -0.5 or D ^ -0.5 * (2 * L) ^ -0.5)
      elseif name:match('mlp%.fc1%.weight$') then normal(p, (2 * D) ^ -0.5)
      elseif name:match('mlp%.fc2%.weight$') then normal(p, D ^ -0.5 * (2 * L) ^ -0.5)
      elseif name == 'text_projection.weight' then normal(p, tc.hidden_size ^ -0.5)
      elseif name == 'visual_projection.weight' then normal(p, vc.hidden_size ^ -0.5)
      elseif name == 'logit_scale' then p:fill_(cfg.logit_scale_init_value)
      else error('make_fullsize: no CLIP init rule for ' .. name) end
    end
  end)
end

local function init_dinov2(model)
  craft.no_grad(function()
    for _, np in ipairs(model:named_parameters()) do
      local name, p = np[1], np[2]
      if name:match('lambda1$') then p:fill_(1)
      elseif name:match('mask_token$') or name:match('bias$') then p:zero_()
      elseif name:match('norm%d?%.weight$') or name == 'layernorm.weight' then p:fill_(1)
      elseif p:dim() >= 2 or name:match('cls_token$') then normal(p, 0.02)
      else error('make_fullsize: no DINOv2 init rule for ' .. name) end
    end
  end)
end

local function init_resnet(model)
  craft.no_grad(function()
    for _, np in ipairs(model:named_parameters()) do
      local name, p = np[1], np[2]
      if p:dim() == 4 then
        local fan_out = p:size(1) * p:size(3) * p:size(4)
        normal(p, math.sqrt(2 / fan_out))
      elseif name:match('normalization%.weight$') then p:fill_(1)
      elseif name:match('normalization%.bias$') then p:zero_()
      else error('make_fullsize: no ResNet init rule for ' .. name) end
    end
  end)
end

---------------------------------------------------------------- the folders
local function note(o, fmt, ...)
  if not o.quiet then io.stderr:write('make_fullsize: ', fmt:format(...), '\n') end
end

local function write_clip(dir, o, text_encoder_dir)
  local cfg = clip_config(o.tiny)
  craft.manual_seed(o.seed + 1)
  local model = clip.CLIPModel(cfg)
  init_clip(model, cfg)
  mkdir(dir)
  craft.io.write_json(dir .. '/config.json', cfg)
  local sd = state(model)
  save(dir .. '/model.safetensors', sd, o.dtype)
  write_tokenizer(dir)
  craft.io.write_json(dir .. '/preprocessor_config.json',
    preprocessor('CLIPImageProcessor', 224, 224, clip.MEAN, clip.STD))
  note(o, '%s: CLIPModel, %.1f M parameters', dir, count(sd) / 1e6)
  if text_encoder_dir then
    -- SD 1.5's text encoder is CLIP ViT-L/14's text tower: the same weights, as CLIPTextModel
    local te = {}
    for _, np in ipairs(sd) do if np[1]:match('^text_model%.') then te[#te + 1] = np end end
    mkdir(text_encoder_dir)
    local tcfg = clip_text(o.tiny)
    tcfg.architectures, tcfg.torch_dtype, tcfg.transformers_version = { 'CLIPTextModel' }, 'float32', '4.38.2'
    craft.io.write_json(text_encoder_dir .. '/config.json', tcfg)
    save(text_encoder_dir .. '/model.safetensors', te, o.dtype)
    note(o, '%s: CLIPTextModel, %.1f M parameters', text_encoder_dir, count(te) / 1e6)
  end
end

local function write_sd15(dir, o)
  local U, V = require 'craft.models.unet', require 'craft.models.vae'
  local null = require('craft.io').null
  mkdir(dir)
  craft.io.write_json(dir .. '/model_index.json', { _class_name = 'StableDiffusionPipeline',
    _diffusers_version = '0.27.2', feature_extractor = { null, null }, image_encoder = { null, null },
    requires_safety_checker = false, safety_checker = { null, null },
    scheduler = { 'diffusers', 'PNDMScheduler' }, text_encoder = { 'transformers', 'CLIPTextModel' },
    tokenizer = { 'transformers', 'CLIPTokenizer' }, unet = { 'diffusers', 'UNet2DConditionModel' },
    vae = { 'diffusers', 'AutoencoderKL' } })
  mkdir(dir .. '/scheduler')
  craft.io.write_json(dir .. '/scheduler/scheduler_config.json', SCHEDULER)
  write_tokenizer(dir .. '/tokenizer')
  for _, part in ipairs { { 'unet', sd15_unet, U.UNet2DConditionModel, 2 },
    { 'vae', sd15_vae, V.AutoencoderKL, 3 } } do
    local name, config, class, seed = part[1], part[2], part[3], part[4]
    local cfg = config(o.tiny)
    craft.manual_seed(o.seed + seed)
    local model = class(cfg)   -- PyTorch's layer defaults, as diffusers leaves them
    mkdir(dir .. '/' .. name)
    craft.io.write_json(dir .. '/' .. name .. '/config.json', cfg)
    local sd = state(model)
    save(dir .. '/' .. name .. '/diffusion_pytorch_model.safetensors', sd, o.dtype)
    note(o, '%s/%s: %s, %.1f M parameters', dir, name, cfg._class_name, count(sd) / 1e6)
    model, sd = nil, nil
    collectgarbage(); collectgarbage(); core.C.craft_pool_trim()
  end
end

local function write_dinov2(dir, o)
  local cfg = dinov2_config(o.tiny)
  craft.manual_seed(o.seed + 4)
  local model = require('craft.models.dinov2').from_config(cfg)
  init_dinov2(model)
  mkdir(dir)
  craft.io.write_json(dir .. '/config.json', cfg)
  local sd = state(model)
  save(dir .. '/model.safetensors', sd, o.dtype)
  craft.io.write_json(dir .. '/preprocessor_config.json',
    preprocessor('BitImageProcessor', 256, 224, IMAGENET_MEAN, IMAGENET_STD))
  note(o, '%s: Dinov2Model, %.1f M parameters', dir, count(sd) / 1e6)
end

local function write_resnet(dir, o)
  local cfg = resnet_config(o.tiny)
  craft.manual_seed(o.seed + 5)
  local model = require('craft.models.resnet').from_config(cfg)
  init_resnet(model)
  local sd = {}
  for _, np in ipairs(state(model)) do sd[#sd + 1] = { 'resnet.' .. np[1], np[2] } end
  -- ResNetForImageClassification's head: Flatten, then Linear(2048, 1000) (PyTorch's default init)
  local head = craft.nn.Linear(cfg.hidden_sizes[#cfg.hidden_sizes], cfg.num_labels)
  sd[#sd + 1] = { 'classifier.1.weight', head._params.weight }
  sd[#sd + 1] = { 'classifier.1.bias', head._params.bias }
  mkdir(dir)
  craft.io.write_json(dir .. '/config.json', cfg)
  save(dir .. '/model.safetensors', sd, o.dtype)
  craft.io.write_json(dir .. '/preprocessor_config.json', { crop_pct = 0.875, do_normalize = true,
    do_resize = true, do_rescale = true, rescale_factor = 1 / 255, image_mean = IMAGENET_MEAN,
    image_std = IMAGENET_STD, image_processor_type = 'ConvNextImageProcessor', resample = 3,
    size = { shortest_edge = 224 } })
  note(o, '%s: ResNetForImageClassification, %.1f M parameters', dir, count(sd) / 1e6)
end

M.PARTS = { 'sd15', 'clip', 'dinov2', 'resnet' }
M.DIRS = { sd15 = 'sd15', clip = 'clip-vit-l14', dinov2 = 'dinov2-base', resnet = 'resnet-50' }

-- make(out, {tiny, dtype = 'f16', seed = 0, only = {part = true}, quiet}) -> {part -> folder}
function M.make(out, o)
  core.want('make_fullsize', 'out', out, 'string')
  o = core.want('make_fullsize', 'options', o, 'table', true) or {}
  local opts = { tiny = o.tiny or false, dtype = o.dtype or 'f16', seed = o.seed or 0, quiet = o.quiet }
  if opts.dtype ~= 'f16' and opts.dtype ~= 'f32' and opts.dtype ~= 'bf16' then
    core.argerror(('make_fullsize: dtype %q (f16, bf16 or f32)'):format(tostring(opts.dtype)))
  end
  local only = o.only
  local function want(p) return not only or only[p] end
  local dirs = {}
  for _, p in ipairs(M.PARTS) do dirs[p] = out .. '/' .. M.DIRS[p] end
  mkdir(out)
  if want('clip') or want('sd15') then
    -- the SD text encoder is CLIP's text tower: written with it
    if want('clip') then write_clip(dirs.clip, opts, want('sd15') and (dirs.sd15 .. '/text_encoder') or nil)
    else
      local tmp = os.tmpname()
      os.remove(tmp)
      write_clip(tmp, { tiny = opts.tiny, dtype = opts.dtype, seed = opts.seed, quiet = true },
        dirs.sd15 .. '/text_encoder')
      os.execute("rm -rf '" .. tmp .. "'")
    end
  end
  -- each model is dropped before the next is built (the UNet alone is 3.4 GB in float32)
  local function release() collectgarbage(); collectgarbage(); core.C.craft_pool_trim() end
  release()
  if want('sd15') then write_sd15(dirs.sd15, opts) end
  release()
  if want('dinov2') then write_dinov2(dirs.dinov2, opts) end
  if want('resnet') then write_resnet(dirs.resnet, opts) end
  craft.io.write_json(out .. '/make_fullsize.json', { tiny = opts.tiny, dtype = opts.dtype, seed = opts.seed,
    version = M.VERSION, made_by = 'tools/make_fullsize.lua' })
  return dirs
end

-- as a script: ./build/craft tools/make_fullsize.lua --out DIR [...]
if arg and arg[0] and arg[0]:match('make_fullsize%.lua$') then
  local o, out = {}, nil
  local i = 1
  while arg[i] do
    local a = arg[i]
    if a == '--out' then out = arg[i + 1]; i = i + 1
    elseif a == '--tiny' then o.tiny = true
    elseif a == '--dtype' then o.dtype = arg[i + 1]; i = i + 1
    elseif a == '--seed' then o.seed = tonumber(arg[i + 1]); i = i + 1
    elseif a == '--only' then
      o.only = {}
      for p in tostring(arg[i + 1]):gmatch('[^,]+') do
        if not M.DIRS[p] then
          io.stderr:write(('make_fullsize: --only %s: unknown part (sd15, clip, dinov2, resnet)\n'):format(p))
          os.exit(2)
        end
        o.only[p] = true
      end
      i = i + 1
    elseif a == '--help' or a == '-h' then
      print('usage: craft tools/make_fullsize.lua --out DIR [--tiny] [--dtype f16|f32] [--seed N] '
        .. '[--only sd15,clip,dinov2,resnet]')
      os.exit(0)
    else
      io.stderr:write(('make_fullsize: unexpected argument %q (--help)\n'):format(a))
      os.exit(2)
    end
    i = i + 1
  end
  if not out then
    io.stderr:write('make_fullsize: --out DIR is required (--help)\n')
    os.exit(2)
  end
  local t0 = craft.now()
  M.make(out, o)
  io.stderr:write(('make_fullsize: wrote %s in %.1f s\n'):format(out, craft.now() - t0))
end

return M
