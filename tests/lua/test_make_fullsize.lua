-- tools/make_fullsize.lua (random-weight folders at the real shapes) at its --tiny widths: every
-- folder loads in craft's loaders with exactly the keys the models have, the weights follow the
-- libraries' init scales, and bench/bench_craft_step.lua --tiny runs one CRAFT step on them
-- (without the peer), so the full-size benchmark cannot rot. The full-size folders load in
-- diffusers / transformers with no missing or unexpected key (tools/check_fullsize.py; run by hand,
-- docs/performance.md: CI has no Python).
local craft = require 'craft'
local MF = dofile('tools/make_fullsize.lua')
local T = {}

local DIR = os.tmpname()
os.remove(DIR)
local dirs
local function made()
  if not dirs then dirs = MF.make(DIR, { tiny = true, quiet = true }) end
  return dirs
end

local function keys_of_file(path, strip)
  local set, n = {}, 0
  for _, e in ipairs(craft.io.inspect(path)) do
    local k = e.name
    if strip then k = k:gsub('^' .. strip:gsub('%.', '%%.'), '') end
    set[k] = true
    n = n + 1
  end
  return set, n
end

-- the file's keys are exactly the model's parameters and buffers
local function same_keys(t, model, path, what, strip, extra)
  local file = keys_of_file(path, strip)
  local n_model = 0
  for k in pairs(model:state_dict()) do
    n_model = n_model + 1
    t.ok(file[k], what .. ': the file lacks ' .. k)
    file[k] = nil
  end
  for _, k in ipairs(extra or {}) do file[k] = nil end
  local left = {}
  for k in pairs(file) do left[#left + 1] = k end
  t.eq(#left, 0, what .. ': keys no model part takes: ' .. table.concat(left, ', '))
  t.ok(n_model > 0, what .. ': a model with parameters')
end

local function std(x)
  x = x:float()
  return ((x - x:mean()):square():mean():item()) ^ 0.5
end

function T.every_folder_loads_in_craft_with_exactly_its_keys(t)
  local d = made()
  local pipe = craft.models.load(d.sd15, { sampler = 'ddim', quiet = true })
  same_keys(t, pipe.unet, d.sd15 .. '/unet/diffusion_pytorch_model.safetensors', 'unet')
  same_keys(t, pipe.vae, d.sd15 .. '/vae/diffusion_pytorch_model.safetensors', 'vae')
  same_keys(t, pipe.text_encoder, d.sd15 .. '/text_encoder/model.safetensors', 'text_encoder')
  t.eq(pipe.tokenizer:vocab_size(), 49408, 'the CLIP vocabulary')
  t.eq(pipe.scheduler.class_name, 'DDIMScheduler', 'DDIM made from the folder\'s PNDM config')
  local vlm = require('craft.encoders').clip(d.clip)
  same_keys(t, vlm.model, d.clip .. '/model.safetensors', 'clip')
  local dino = require('craft.encoders').dinov2(d.dinov2)
  same_keys(t, dino.model, d.dinov2 .. '/model.safetensors', 'dinov2')
  local rn = require('craft.models.resnet').from_pretrained(d.resnet)
  same_keys(t, rn, d.resnet .. '/model.safetensors', 'resnet', 'resnet.',
    { 'classifier.1.weight', 'classifier.1.bias' })
  -- the SD text encoder is CLIP's text tower: the same weights
  local te = craft.io.load_safetensors(d.sd15 .. '/text_encoder/model.safetensors')
  local cl = craft.io.load_safetensors(d.clip .. '/model.safetensors')
  local k = 'text_model.encoder.layers.0.self_attn.q_proj.weight'
  t.eq((te[k] - cl[k]):abs():max():item(), 0, 'text encoder = CLIP text tower')
  -- the encoders and the pipeline run: finite features, images not all saturated
  local img = craft.rand({ 2, 3, 64, 64 }, { seed = 3 })
  local f = craft.no_grad(function() return vlm.encode_image(img) end)
  t.eq(f:size(2), 32, 'tiny CLIP projection width')
  t.ok(f:abs():max():item() < 1e3 and f:abs():max():item() > 0, 'finite, non-zero CLIP image features')
  local g = craft.no_grad(function() return dino.encode(img) end)
  t.ok(g:abs():max():item() < 1e3 and g:abs():max():item() > 0, 'finite, non-zero DINOv2 features')
  local images = craft.no_grad(function()
    return pipe:generate { prompt = 'a chest x-ray', steps = 3, seed = 1 }
  end)
  t.eq(table.concat(images.shape, 'x'), '1x3x128x128', 'a 128 px image from the tiny pipeline')
  local inside = ((images:gt(0.01) * images:lt(0.99)):float():mean()):item()
  t.ok(inside > 0.2, ('most pixels inside (0, 1), not clamped: %.2f'):format(inside))
end

function T.weights_follow_the_libraries_init_scales(t)
  local d = made()
  local cl = craft.io.load_safetensors(d.clip .. '/model.safetensors')
  t.eq(craft.io.inspect(d.clip .. '/model.safetensors')[1].dtype, 'F16', 'written as f16 by default')
  t.near(std(cl['text_model.embeddings.token_embedding.weight']), 0.02, 0.001, 'token embedding N(0, 0.02)')
  -- tiny text tower: width 32, 2 layers: q/k/v std 32^-0.5 * 4^-0.5, out 32^-0.5, fc1 64^-0.5
  t.near(std(cl['text_model.encoder.layers.0.self_attn.q_proj.weight']), 32 ^ -0.5 * 4 ^ -0.5, 0.01,
    'q_proj std')
  t.near(std(cl['text_model.encoder.layers.1.self_attn.out_proj.weight']), 32 ^ -0.5, 0.02, 'out_proj std')
  t.near(std(cl['text_model.encoder.layers.0.mlp.fc1.weight']), 64 ^ -0.5, 0.01, 'fc1 std')
  t.eq(cl['text_model.encoder.layers.0.mlp.fc1.bias']:abs():max():item(), 0, 'linear biases 0')
  t.eq(cl['vision_model.post_layernorm.weight']:min():item(), 1, 'layer norm weight 1')
  t.near(cl.logit_scale:item(), 2.6592, 1e-3, 'logit scale')
  local dn = craft.io.load_safetensors(d.dinov2 .. '/model.safetensors')
  t.near(std(dn['encoder.layer.0.mlp.fc1.weight']), 0.02, 0.002, 'DINOv2 linear N(0, 0.02)')
  t.eq(dn['encoder.layer.0.layer_scale1.lambda1']:min():item(), 1, 'layer scale 1')
  t.eq(dn['embeddings.mask_token']:abs():max():item(), 0, 'mask token 0')
  local rn = craft.io.load_safetensors(d.resnet .. '/model.safetensors')
  local w = rn['resnet.encoder.stages.3.layers.0.layer.1.convolution.weight']   -- 64 -> 64, 3x3
  local kstd = math.sqrt(2 / (w:size(1) * 9))
  t.near(std(w), kstd, 0.1 * kstd, 'Kaiming normal, fan_out')
  t.eq(rn['resnet.embedder.embedder.normalization.running_var']:min():item(), 1, 'running variance 1')
  local un = craft.io.load_safetensors(d.sd15 .. '/unet/diffusion_pytorch_model.safetensors')
  local c = un['conv_in.weight']   -- 4 -> 32, 3x3: uniform +-1/sqrt(36)
  t.ok(c:abs():max():item() <= 1 / 6 + 1e-3 and std(c) > 0.8 / 6 / math.sqrt(3), 'PyTorch default conv init')
  local cfg = craft.io.read_json(d.sd15 .. '/scheduler/scheduler_config.json')
  t.eq(cfg._class_name, 'PNDMScheduler', 'SD 1.5 ships PNDM')
end

function T.bad_options_are_one_line_errors(t)
  t.raises(function() MF.make(DIR .. '-x', { dtype = 'int8' }) end, 'dtype "int8"')
  t.raises(function() MF.make(42) end, 'out')
end

function T.the_step_benchmark_runs_at_tiny_size(t)
  local d = made()
  local f = io.popen('readlink /proc/$PPID/exe 2>/dev/null')
  local exe = f:read('*l')
  f:close()
  if not exe or exe == '' then return t.skip('no /proc: cannot find the craft binary') end
  local out, log = os.tmpname(), os.tmpname()
  local root = d.sd15:gsub('/sd15$', '')
  local rc = os.execute(("'%s' bench/bench_craft_step.lua --tiny --no-peer --steps 3 --models '%s'"
    .. " --json '%s'"
    .. " > '%s' 2>&1")
    :format(exe, root, out, log))
  local f = io.open(log)
  local text = f and f:read('*a') or ''
  if f then f:close() end
  t.eq(rc, 0, 'bench_craft_step.lua --tiny exits 0: ' .. text:sub(-400))
  local r = craft.io.read_json(out)
  os.remove(out); os.remove(log)
  local c = r.craft
  t.eq(c.sample_n, 2, 'steps 1 and 2 without a graph: 2 UNet calls (both guidance halves in one)')
  t.ok(c.last > 0 and c.decode > 0 and c.reward > 0 and c.backward > 0, 'every phase timed')
  t.ok(c.reward_value == c.reward_value and math.abs(c.reward_value) < 1e6, 'a finite reward')
  t.ok(c.grad_norm > 0 and c.grad_norm == c.grad_norm, 'the gradient reaches the LoRA adapters')
  t.ok(c.peak_rss_mib >= c.rss_before_mib and c.peak_rss_mib > 0, 'peak resident memory measured')
  t.ok(text:find('peer skipped: --no-peer given', 1, true) ~= nil, 'says the peer was skipped')
end

-- (named to run last: the tests run in name order)
function T.zz_remove_the_folders(t)
  if dirs then os.execute("rm -rf '" .. DIR .. "'") end
  t.ok(io.open(DIR .. '/make_fullsize.json') == nil, 'the temporary folders are gone')
end

return T
