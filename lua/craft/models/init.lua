-- craft.models: loading diffusers folders and LDM single files into craft modules.
--   local pipe = require('craft.models').load('path/to/sd-folder')    -- model_index.json folder
--   pipe.unet, pipe.vae, pipe.scheduler (and pipe.text_encoder, pipe.tokenizer with craft.models.clip)
--   local unet = models.load_unet('path/unet')                          -- one component folder
--   local parts = models.load_single_file('sd.safetensors', {unet_config=, vae_config=,
--   text_encoder_config=})
-- Weights come from diffusion_pytorch_model.safetensors or model.safetensors, or their
-- ".fp16." variants, always converted to f32. A missing file or model key is an error naming it;
-- checkpoint keys that fit nothing are listed in a one-line warning.
local io_ = require 'craft.io'
local argerror = require('craft.core').argerror
local keymap = require 'craft.models.keymap'

local M = { keymap = keymap }
setmetatable(M, { __index = function(t, k)
  -- submodules on first use: models.unet, models.vae, models.schedulers, models.lora, models.pipeline
  local ok, mod = pcall(require, 'craft.models.' .. k)
  if ok then rawset(t, k, mod); return mod end
  if not tostring(mod):find("module 'craft.models." .. k .. "' not found", 1, true) then argerror(mod) end
  return nil
end })

local function exists(path)
  local f = io.open(path, 'rb')
  if f then f:close(); return true end
  return false
end

-- find_weights(dir, variant) -> path; variant 'fp16' prefers the fp16 files, otherwise they are
-- the fallback when no full-precision file is there.
function M.find_weights(dir, variant)
  local want = require('craft.core').want
  want('models.find_weights', 'dir', dir, 'string')
  want('models.find_weights', 'variant', variant, 'string', true)
  local tried = {}
  local order = variant and { variant, false } or { false, 'fp16' }
  for _, v in ipairs(order) do
    for _, base in ipairs { 'diffusion_pytorch_model', 'model' } do
      local p = dir .. '/' .. base .. (v and ('.' .. v) or '') .. '.safetensors'
      if exists(p) then return p end
      tried[#tried + 1] = p:match('[^/]+$')
    end
  end
  argerror(('%s: no weights file (looked for %s)'):format(dir, table.concat(tried, ', ')))
end

local O = require 'craft.models.options'
-- read_config(path, what, o): the JSON object of a config file, remembered as read from path
-- (so that a refused or ignored key names the file)
local function read_config(path, what, o)
  if not exists(path) then argerror(('%s: %s is missing'):format(what, path)) end
  return O.read(path, { quiet = o and o.quiet })
end

-- Fills model from the weights in dir; missing model keys are an error.
local function fill(model, dir, what, o, rename)
  local path = M.find_weights(dir, o.variant)
  local sd = io_.load_safetensors(path, { dtype = 'f32' })
  if rename then sd = rename(sd) end
  -- missing keys: the error says it all (one line); otherwise keys not loaded get a warning
  local missing, unexpected = keymap.load(model, sd, { what = what .. ' (' .. path .. ')', quiet = true })
  if #missing > 0 then
    argerror(('%s: %d model key(s) missing from %s (%s%s)%s'):format(what, #missing, path,
      table.concat(missing, ', ', 1, math.min(5, #missing)), #missing > 5 and ', ...' or '',
      #unexpected > 0 and (', and %d checkpoint key(s) fit nothing: does config.json match the weights?')
      :format(#unexpected) or ''))
  end
  if #unexpected > 0 and not o.quiet then
    io.stderr:write(('craft: warning: %s (%s): %d checkpoint key(s) not loaded (%s%s)\n'):format(what, path,
      #unexpected,
      table.concat(unexpected, ', ', 1, math.min(3, #unexpected)), #unexpected > 3 and ', ...' or ''))
  end
  return model
end

local function load_unet(dir, o)
  require('craft.core').want('models.load_unet', 'dir', dir, 'string')
  o = require('craft.core').want('models.load_unet', 'options', o, 'table', true) or {}
  local U = require 'craft.models.unet'
  return fill(U.UNet2DConditionModel(read_config(dir .. '/config.json', 'unet', o)), dir, 'unet', o)
end
-- {device = 'cl:0'}: the model is built and loaded there (default: the current device)
function M.load_unet(dir, o)
  return require('craft.device').scope(type(o) == 'table' and o.device or nil, load_unet, dir, o)
end

local function load_vae(dir, o)
  require('craft.core').want('models.load_vae', 'dir', dir, 'string')
  o = require('craft.core').want('models.load_vae', 'options', o, 'table', true) or {}
  local V = require 'craft.models.vae'
  return fill(V.AutoencoderKL(read_config(dir .. '/config.json', 'vae', o)), dir, 'vae', o,
    keymap.vae_new_names)
end
-- {device = 'cl:0'}: the model is built and loaded there (default: the current device)
function M.load_vae(dir, o)
  return require('craft.device').scope(type(o) == 'table' and o.device or nil, load_vae, dir, o)
end

-- load_scheduler(dir, {sampler=, quiet=}): the scheduler dir/scheduler_config.json names, or the
-- sampler named (craft.models.schedulers.NAMES or a diffusers class name) made from that config.
function M.load_scheduler(dir, o)
  require('craft.core').want('models.load_scheduler', 'dir', dir, 'string')
  o = require('craft.core').want('models.load_scheduler', 'options', o, 'table', true) or {}
  require('craft.core').want('models.load_scheduler', 'options.sampler', o.sampler, 'string', true)
  local cfg = read_config(dir .. '/scheduler_config.json', 'scheduler', o)
  return require('craft.models.schedulers').from_config(cfg, { class = o.sampler, quiet = o.quiet })
end

-- The text side comes from craft.models.clip (written separately); without it the pipeline
-- needs prompt embeddings passed in.
local function load_text_side(dir, index, o)
  local te, tok, note
  local has = function(k)
    return type(index[k]) == 'table' and index[k][1] ~= io_.null and index[k][1] ~= nil
  end
  if has('tokenizer') then
    local ok, T = pcall(require, 'craft.tokenizer')
    if ok then tok = T.load(dir .. '/tokenizer') else note = 'craft.tokenizer is not available' end
  end
  if has('text_encoder') then
    local ok, clip = pcall(require, 'craft.models.clip')
    local loader = ok and type(clip) == 'table' and (clip.load_text_encoder or clip.load_text_model)
    if loader then te = loader(dir .. '/text_encoder', o)
    else note = 'craft.models.clip is not available: text_encoder/ not loaded, pass prompt_embeds' end
  end
  return te, tok, note
end

-- load(dir, {variant=, quiet=, sampler=}) -> a Pipeline (craft.models.pipeline) holding the
-- components; its scheduler is the one scheduler/scheduler_config.json names (a class craft does
-- not implement is refused), or `sampler` (e.g. 'ddim') made from that config.
local function load(dir, o)
  require('craft.core').want('models.load', 'dir', dir, 'string')
  o = require('craft.core').want('models.load', 'options', o, 'table', true) or {}
  local index = read_config(dir .. '/model_index.json', 'pipeline', { quiet = true })
  local function need(k)
    if type(index[k]) ~= 'table' or index[k][1] == io_.null then
      argerror(('%s/model_index.json: no %s component'):format(dir, k))
    end
  end
  need('unet'); need('vae'); need('scheduler')
  local parts = { config = index, path = dir }
  parts.unet = M.load_unet(dir .. '/unet', o)
  parts.vae = M.load_vae(dir .. '/vae', o)
  parts.scheduler = M.load_scheduler(dir .. '/scheduler', { sampler = o.sampler, quiet = o.quiet })
  parts.quiet = o.quiet
  parts.text_encoder, parts.tokenizer, parts.note = load_text_side(dir, index, o)
  if parts.note and not o.quiet then io.stderr:write('craft: note: ' .. parts.note .. '\n') end
  return require('craft.models.pipeline').new(parts)
end
-- {device = 'cl:0'}: the model is built and loaded there (default: the current device)
function M.load(dir, o)
  return require('craft.device').scope(type(o) == 'table' and o.device or nil, load, dir, o)
end

-- load_single_file(path, {unet_config=, vae_config=, text_encoder_config=, text_projection=, quiet=})
-- -> { unet =, vae =, text_encoder =, text_encoder_state =, text_encoder_layout = }
-- from an original LDM / CompVis checkpoint (model.diffusion_model.*, first_stage_model.*, and the
-- text tower: cond_stage_model.transformer.* for SD 1.x, cond_stage_model.model.* (OpenCLIP) for
-- SD 2.x). Configs are diffusers / transformers config tables (or folders / json paths). With
-- text_encoder_config (a CLIPTextConfig, e.g. an SD 2 text_encoder/config.json: 23 layers, gelu)
-- the text encoder is built and loaded (an OpenCLIP tower keeps its first num_hidden_layers
-- blocks; text_projection = true keeps its projection, for a CLIPTextModelWithProjection);
-- without it text_encoder_state holds its tensors under transformers' names (OpenCLIP: all
-- blocks but the last, SD 2's penultimate convention). Keys converted to nothing are listed in
-- one warning line; model keys missing from the file are an error.
local function load_single_file(path, o)
  require('craft.core').want('models.load_single_file', 'path', path, 'string')
  o = require('craft.core').want('models.load_single_file', 'options', o, 'table', true) or {}
  local function cfg(c, what, optional)
    if c == nil and optional then return nil end
    if type(c) == 'string' then
      return read_config(c:match('%.json$') and c or (c .. '/config.json'), what, o)
    end
    if type(c) ~= 'table' then
      argerror('load_single_file: give ' .. what .. '_config (a diffusers config table or path)')
    end
    return c
  end
  local ucfg, vcfg = cfg(o.unet_config, 'unet'), cfg(o.vae_config, 'vae')
  local tcfg = cfg(o.text_encoder_config, 'text_encoder', true)
  -- the models first: their configs are checked (and filled) before the keys are converted
  local U, V = require 'craft.models.unet', require 'craft.models.vae'
  local unet, vae = U.UNet2DConditionModel(ucfg), V.AutoencoderKL(vcfg)
  local te
  if tcfg then
    local clip = require 'craft.models.clip'
    te = clip.CLIPTextModel(tcfg, { projection = o.text_projection })
    te.kind = o.text_projection and 'CLIPTextModelWithProjection' or 'CLIPTextModel'
  end
  local parts, other = keymap.ldm_to_diffusers(io_.load_safetensors(path), unet.config, vae.config,
    { text_layers = te and te.config.num_hidden_layers, text_projection = o.text_projection })
  if #other > 0 and not o.quiet then
    io.stderr:write(('craft: warning: %s: %d key(s) converted to no UNet, VAE or text encoder key, not '
      .. 'loaded (%s%s)\n'):format(
      path, #other, table.concat(other, ', ', 1, math.min(3, #other)), #other > 3 and ', ...' or ''))
  end
  local todo = { { unet, parts.unet, 'unet' }, { vae, parts.vae, 'vae' } }
  if te then
    local tsd = {}
    -- position_ids: a buffer older transformers saved; not a weight (clip.load_weights drops it too)
    for k, t in pairs(parts.text_encoder) do if not k:match('position_ids$') then tsd[k] = t end end
    todo[#todo + 1] = { te, tsd, 'text_encoder' }
  end
  for _, c in ipairs(todo) do
    local missing = keymap.load(c[1], c[2], { what = c[3] .. ' (' .. path .. ')', quiet = o.quiet })
    if #missing > 0 then
      argerror(('%s: %d %s key(s) missing (%s%s)'):format(path, #missing, c[3],
        table.concat(missing, ', ', 1, math.min(5, #missing)), #missing > 5 and ', ...' or ''))
    end
  end
  if te then te:eval() end
  return { unet = unet, vae = vae, text_encoder = te, text_encoder_state = parts.text_encoder,
    text_encoder_layout = parts.text_encoder_layout or 'clip' }
end
-- {device = 'cl:0'}: the model is built and loaded there (default: the current device)
function M.load_single_file(path, o)
  return require('craft.device').scope(type(o) == 'table' and o.device or nil, load_single_file, path, o)
end

-- save_single_file(path, {unet=, vae=, text_encoder_state=}): the LDM layout, for tools that
-- want one file (A1111, ComfyUI, the original scripts).
function M.save_single_file(path, parts)
  require('craft.core').want('models.save_single_file', 'path', path, 'string')
  require('craft.core').want('models.save_single_file', 'parts', parts, 'table')
  local sds = {}
  if parts.unet then sds.unet = parts.unet:state_dict() end
  if parts.vae then sds.vae = parts.vae:state_dict() end
  sds.text_encoder = parts.text_encoder_state
  local out = keymap.diffusers_to_ldm(sds, parts.unet and parts.unet.config, parts.vae and parts.vae.config)
  return io_.save_safetensors(path, out, { format = 'pt' })
end

return M
