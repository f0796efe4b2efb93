local argerror = require('craft.core').argerror
-- craft.models.keymap: the one table of checkpoint key layouts and the translations between them,
-- and the loader that reports what did not line up.
--   diffusers            down_blocks.0.resnets.0.norm1.weight           (craft's own parameter names)
--   LDM / CompVis file   model.diffusion_model.input_blocks.1.0.in_layers.0.weight,
--                        first_stage_model.encoder.down.0.block.0.norm1.weight,
--                        cond_stage_model.transformer.text_model.*  (SD 1.x: transformers' CLIP)
--                        cond_stage_model.model.transformer.resblocks.N.attn.in_proj_weight, ln_1,
--                        mlp.c_fc, token_embedding, positional_embedding, ln_final, text_projection
--                        (SD 2.x: the OpenCLIP text tower; see openclip_to_clip)
--   old diffusers VAE    ...mid_block.attentions.0.query / key / value / proj_attn
--   LoRA, peft           unet.<module>.lora_A.weight / lora_B.weight
--   LoRA, diffusers      unet.<module>.lora.down.weight / lora.up.weight,
--                        <attn>.processor.to_q_lora.down.weight (attention processors, older)
--   LoRA, kohya          lora_unet_<module with _ for .>.lora_down.weight / lora_up.weight / alpha
-- The layouts are facts read from diffusers' converters and kohya's sd-scripts; the code is ours.
local M = {}

local LDM_UNET, LDM_VAE = 'model.diffusion_model.', 'first_stage_model.'
local LDM_CLIP = 'cond_stage_model.transformer.'
local LDM_OPENCLIP = 'cond_stage_model.model.'
M.LDM_UNET, M.LDM_VAE, M.LDM_CLIP, M.LDM_OPENCLIP = LDM_UNET, LDM_VAE, LDM_CLIP, LDM_OPENCLIP

-- Renames inside one module (diffusers name -> LDM name) by module kind.
local INNER = {
  unet_resnet = { norm1 = 'in_layers.0', conv1 = 'in_layers.2', time_emb_proj = 'emb_layers.1',
    norm2 = 'out_layers.0', conv2 = 'out_layers.3', conv_shortcut = 'skip_connection' },
  vae_resnet = { conv_shortcut = 'nin_shortcut' },
  vae_attn = { group_norm = 'norm', to_q = 'q', to_k = 'k', to_v = 'v', ['to_out.0'] = 'proj_out' },
}

local function as_list(v, n)
  if type(v) == 'table' then return v end
  local r = {}
  for i = 1, n do r[i] = v end
  return r
end

---------------------------------------------------------------- module prefix tables
-- unet_pairs(config) -> list of { diffusers_prefix, ldm_prefix, kind } for a diffusers UNet config
-- (as SD 1.x / 2.x write it: the same layers_per_block at every level).
function M.unet_pairs(cfg)
  local levels = #cfg.block_out_channels
  local lpb = as_list(cfg.layers_per_block or 2, levels)
  local p = { { 'time_embedding.linear_1', 'time_embed.0' }, { 'time_embedding.linear_2', 'time_embed.2' },
    { 'conv_in', 'input_blocks.0.0' }, { 'conv_norm_out', 'out.0' }, { 'conv_out', 'out.2' },
    { 'mid_block.resnets.0', 'middle_block.0', 'unet_resnet' },
    { 'mid_block.attentions.0', 'middle_block.1' },
    { 'mid_block.resnets.1', 'middle_block.2', 'unet_resnet' } }
  local n = 1   -- input_blocks.0 is conv_in
  for i = 0, levels - 1 do
    local attn = cfg.down_block_types[i + 1]:find('CrossAttn', 1, true)
    for j = 0, lpb[i + 1] - 1 do
      p[#p + 1] = { ('down_blocks.%d.resnets.%d'):format(i, j), ('input_blocks.%d.0'):format(n),
        'unet_resnet' }
      if attn then
        p[#p + 1] = { ('down_blocks.%d.attentions.%d'):format(i, j), ('input_blocks.%d.1'):format(n) }
      end
      n = n + 1
    end
    if i < levels - 1 then
      p[#p + 1] = { ('down_blocks.%d.downsamplers.0.conv'):format(i), ('input_blocks.%d.0.op'):format(n) }
      n = n + 1
    end
  end
  n = 0
  for i = 0, levels - 1 do
    local attn = cfg.up_block_types[i + 1]:find('CrossAttn', 1, true)
    local layers = lpb[levels - i] + 1
    for j = 0, layers - 1 do
      p[#p + 1] = { ('up_blocks.%d.resnets.%d'):format(i, j), ('output_blocks.%d.0'):format(n),
        'unet_resnet' }
      if attn then
        p[#p + 1] = { ('up_blocks.%d.attentions.%d'):format(i, j), ('output_blocks.%d.1'):format(n) }
      end
      if j == layers - 1 and i < levels - 1 then
        p[#p + 1] = { ('up_blocks.%d.upsamplers.0.conv'):format(i),
          ('output_blocks.%d.%d.conv'):format(n, attn and 2 or 1) }
      end
      n = n + 1
    end
  end
  return p
end

-- vae_pairs(config) -> the same for an AutoencoderKL config. LDM numbers decoder levels from the
-- lowest resolution up (up.0 is the last diffusers up block).
function M.vae_pairs(cfg)
  local levels = #cfg.block_out_channels
  local lpb = cfg.layers_per_block or 2
  local p = { { 'encoder.conv_norm_out', 'encoder.norm_out' },
    { 'decoder.conv_norm_out', 'decoder.norm_out' } }
  for _, side in ipairs { 'encoder', 'decoder' } do
    p[#p + 1] = { side .. '.mid_block.resnets.0', side .. '.mid.block_1', 'vae_resnet' }
    p[#p + 1] = { side .. '.mid_block.resnets.1', side .. '.mid.block_2', 'vae_resnet' }
    p[#p + 1] = { side .. '.mid_block.attentions.0', side .. '.mid.attn_1', 'vae_attn' }
  end
  for i = 0, levels - 1 do
    for j = 0, lpb - 1 do
      p[#p + 1] = { ('encoder.down_blocks.%d.resnets.%d'):format(i, j),
        ('encoder.down.%d.block.%d'):format(i, j), 'vae_resnet' }
    end
    if i < levels - 1 then
      p[#p + 1] = { ('encoder.down_blocks.%d.downsamplers.0.conv'):format(i),
        ('encoder.down.%d.downsample.conv'):format(i) }
    end
    local b = levels - 1 - i
    for j = 0, lpb do
      p[#p + 1] = { ('decoder.up_blocks.%d.resnets.%d'):format(i, j),
        ('decoder.up.%d.block.%d'):format(b, j), 'vae_resnet' }
    end
    if i < levels - 1 then
      p[#p + 1] = { ('decoder.up_blocks.%d.upsamplers.0.conv'):format(i),
        ('decoder.up.%d.upsample.conv'):format(b) }
    end
  end
  return p
end

---------------------------------------------------------------- key translation
local function starts(s, prefix) return s:sub(1, #prefix) == prefix end

-- Builds a translator from a pair list: to_ldm(key) / to_diffusers(key) -> new key, kind (nil if
-- the key is under no listed module: the caller keeps it unchanged, for names shared by both).
local function translator(pairs_list)
  local by_d, by_l = {}, {}
  for _, pr in ipairs(pairs_list) do
    local inner, rev = INNER[pr[3]] or {}, {}
    for a, b in pairs(inner) do rev[b] = a end
    by_d[#by_d + 1] = { pr[1] .. '.', pr[2] .. '.', inner, pr[3] }
    by_l[#by_l + 1] = { pr[2] .. '.', pr[1] .. '.', rev, pr[3] }
  end
  -- longest prefix first: "input_blocks.1.0." must not swallow "input_blocks.1.0.op."
  local function order(a, b) return #a[1] > #b[1] end
  table.sort(by_d, order)
  table.sort(by_l, order)
  local function tr(list)
    return function(key)
      for _, e in ipairs(list) do
        if starts(key, e[1]) then
          local rest = key:sub(#e[1] + 1)
          local mod, leaf = rest:match('^(.*)%.([^.]+)$')
          if mod and e[3][mod] then rest = e[3][mod] .. '.' .. leaf end
          return e[2] .. rest, e[4]
        end
      end
      return nil
    end
  end
  return tr(by_d), tr(by_l)
end

-- LDM VAE attention projections are 1x1 convs ([C, C, 1, 1]); diffusers' are linears ([C, C]).
local function fix_attn_shape(t, kind, leaf, to_ldm)
  if kind ~= 'vae_attn' or leaf ~= 'weight' then return t end
  local s = t.shape
  if to_ldm and #s == 2 then return t:reshape(s[1], s[2], 1, 1) end
  if not to_ldm and #s > 2 then return t:reshape(s[1], s[2]) end
  return t
end

-- diffusers_to_ldm({unet=sd, vae=sd, text_encoder=sd}, unet_config, vae_config) -> one LDM state dict
function M.diffusers_to_ldm(parts, unet_cfg, vae_cfg)
  local out = {}
  if parts.unet then
    local to_ldm = translator(M.unet_pairs(unet_cfg))
    for k, t in pairs(parts.unet) do out[LDM_UNET .. (to_ldm(k) or k)] = t end
  end
  if parts.vae then
    local to_ldm = translator(M.vae_pairs(vae_cfg))
    for k, t in pairs(parts.vae) do
      local nk, kind = to_ldm(k)
      out[LDM_VAE .. (nk or k)] = fix_attn_shape(t, kind, k:match('[^.]+$'), true)
    end
  end
  for k, t in pairs(parts.text_encoder or {}) do out[LDM_CLIP .. k] = t end
  return out
end

---------------------------------------------------------------- OpenCLIP text tower (SD 2.x)
-- OpenCLIP names -> transformers CLIPTextModel names (diffusers' convert_open_clip_checkpoint /
-- create_text_encoder_from_open_clip_checkpoint). Outside the blocks:
local OPENCLIP_TOP = {
  positional_embedding = 'text_model.embeddings.position_embedding.weight',
  ['token_embedding.weight'] = 'text_model.embeddings.token_embedding.weight',
  ['ln_final.weight'] = 'text_model.final_layer_norm.weight',
  ['ln_final.bias'] = 'text_model.final_layer_norm.bias',
}
-- inside transformer.resblocks.N (-> text_model.encoder.layers.N); attn.in_proj_* is split below
local OPENCLIP_BLOCK = { ln_1 = 'layer_norm1', ln_2 = 'layer_norm2', ['mlp.c_fc'] = 'mlp.fc1',
  ['mlp.c_proj'] = 'mlp.fc2', ['attn.out_proj'] = 'self_attn.out_proj' }

-- openclip_to_clip(sd, {layers=, projection=}) -> a CLIPTextModel state dict, the keys of sd
-- not used (sorted). sd holds the OpenCLIP text tower's keys without their prefix
-- ("transformer.resblocks.0.attn.in_proj_weight", "token_embedding.weight", ...).
--   attn.in_proj_weight [3D, D] / in_proj_bias [3D] split into q_proj, k_proj, v_proj (in that order);
--   layers: how many resblocks to keep (the first ones). Default: all but the last, SD 2's
--     "penultimate" convention: its LDM conditioner takes the output of the next-to-last block
--     (then ln_final), so diffusers' converted SD 2 text encoder has 23 layers for 24 resblocks
--     and the last block's keys are left over;
--   projection: keep text_projection ([D, E], applied as x @ P) as text_projection.weight ([E, D],
--     CLIPTextModelWithProjection); by default it is left over, as SD 2 does not use it.
-- logit_scale and anything unrecognised are left over too.
function M.openclip_to_clip(sd, o)
  o = o or {}
  local nblocks = -1
  for k in pairs(sd) do
    local i = k:match('^transformer%.resblocks%.(%d+)%.')
    if i then nblocks = math.max(nblocks, tonumber(i)) end
  end
  nblocks = nblocks + 1
  local keep = o.layers or math.max(nblocks - 1, 0)
  local out, unused = {}, {}
  for k, t in pairs(sd) do
    local i, rest = k:match('^transformer%.resblocks%.(%d+)%.(.+)$')
    local done = false
    if OPENCLIP_TOP[k] then
      out[OPENCLIP_TOP[k]] = t; done = true
    elseif k == 'text_projection' and o.projection then
      out['text_projection.weight'] = t:t():contiguous(); done = true
    elseif i and tonumber(i) < keep then
      local pre = 'text_model.encoder.layers.' .. i .. '.'
      local kind = rest:match('^attn%.in_proj_(%a+)$')
      if kind == 'weight' or kind == 'bias' then
        local d = t:size(1) / 3
        if d % 1 == 0 then
          for j, n in ipairs { 'q_proj', 'k_proj', 'v_proj' } do
            out[pre .. 'self_attn.' .. n .. '.' .. kind] = t:narrow(1, (j - 1) * d + 1, d):contiguous()
          end
          done = true
        end
      else
        local mod, leaf = rest:match('^(.*)%.([^.]+)$')
        if mod and OPENCLIP_BLOCK[mod] then
          out[pre .. OPENCLIP_BLOCK[mod] .. '.' .. leaf] = t; done = true
        end
      end
    end
    if not done then unused[#unused + 1] = k end
  end
  table.sort(unused)
  return out, unused
end

-- ldm_to_diffusers(sd, unet_config, vae_config, {text_layers=, text_projection=})
-- -> { unet = sd, vae = sd, text_encoder = sd }, other
-- The text encoder is in transformers' CLIPTextModel names from either layout: SD 1.x
-- (cond_stage_model.transformer.*) or SD 2.x's OpenCLIP tower (cond_stage_model.model.*, through
-- openclip_to_clip with layers = text_layers, projection = text_projection; text_encoder_layout
-- is then 'openclip'). other: a sorted list of the keys converted to nothing (EMA copies, the
-- OpenCLIP keys openclip_to_clip leaves over, ...).
function M.ldm_to_diffusers(sd, unet_cfg, vae_cfg, o)
  o = o or {}
  local parts, other = { unet = {}, vae = {}, text_encoder = {} }, {}
  local _, unet_tr = translator(M.unet_pairs(unet_cfg))
  local _, vae_tr = translator(M.vae_pairs(vae_cfg or { block_out_channels = { 1 } }))
  local openclip
  for k, t in pairs(sd) do
    if starts(k, LDM_UNET) then
      local r = k:sub(#LDM_UNET + 1)
      parts.unet[unet_tr(r) or r] = t
    elseif starts(k, LDM_VAE) then
      local r = k:sub(#LDM_VAE + 1)
      local nk, kind = vae_tr(r)
      parts.vae[nk or r] = fix_attn_shape(t, kind, r:match('[^.]+$'), false)
    elseif starts(k, LDM_CLIP) then
      local r = k:sub(#LDM_CLIP + 1)
      -- older SD 1.x files lack transformers' "text_model." level
      if not starts(r, 'text_model.') then r = 'text_model.' .. r end
      parts.text_encoder[r] = t
    elseif starts(k, LDM_OPENCLIP) then
      openclip = openclip or {}
      openclip[k:sub(#LDM_OPENCLIP + 1)] = t
    else
      other[#other + 1] = k
    end
  end
  if openclip then
    local te, unused = M.openclip_to_clip(openclip,
      { layers = o.text_layers, projection = o.text_projection })
    for k, t in pairs(te) do parts.text_encoder[k] = t end
    for _, k in ipairs(unused) do other[#other + 1] = LDM_OPENCLIP .. k end
    parts.text_encoder_layout = 'openclip'
  end
  table.sort(other)
  return parts, other
end

-- Old diffusers VAE attention names -> current ones (in place on a copy).
local OLD_ATTN = { query = 'to_q', key = 'to_k', value = 'to_v', proj_attn = 'to_out.0' }
function M.vae_new_names(sd)
  local out = {}
  for k, t in pairs(sd) do
    local pre, old, leaf = k:match('^(.*attentions%.%d+)%.([%w_]+)%.([^.]+)$')
    if pre and OLD_ATTN[old] then out[pre .. '.' .. OLD_ATTN[old] .. '.' .. leaf] = t else out[k] = t end
  end
  return out
end

---------------------------------------------------------------- loading with a report
local function shape_str(t) return '[' .. table.concat(t.shape, ', ') .. ']' end

-- One entry of load: a function of the module, not a closure over sd, or the JIT trace of the loop
-- would keep sd alive (see nn.lua's load_entry).
local function take(sd, known, missing, what, name, t)
  known[name] = true
  local src = sd[name]
  if src == nil then missing[#missing + 1] = name; return end
  local a, b = shape_str(t), shape_str(src)
  if a ~= b then
    argerror(('%s: %s has shape %s in the model but %s in the checkpoint'):format(what, name, a, b))
  end
  t:copy_(src)
end

-- load(model, sd, {what=, quiet=}) copies every tensor of sd whose key names a parameter or buffer
-- of model. Returns missing (model keys absent from sd) and unexpected (sd keys not loaded), each
-- sorted; prints a one-line summary on stderr when either is non-empty (unless quiet). A shape
-- mismatch is an error naming the key and both shapes.
function M.load(model, sd, o)
  o = o or {}
  local what = o.what or 'model'
  local known, missing, unexpected = {}, {}, {}
  for _, np in ipairs(model:named_parameters()) do take(sd, known, missing, what, np[1], np[2]) end
  for _, nb in ipairs(model:named_buffers()) do take(sd, known, missing, what, nb[1], nb[2]) end
  for k in pairs(sd) do if not known[k] then unexpected[#unexpected + 1] = k end end
  table.sort(missing)
  table.sort(unexpected)
  if (#missing > 0 or #unexpected > 0) and not o.quiet then
    local function few(l)
      return #l == 0 and '' or (' (' .. table.concat(l, ', ', 1, math.min(3, #l))
        .. (#l > 3 and ', ...' or '') .. ')')
    end
    io.stderr:write(('craft: warning: %s: %d checkpoint key(s) not loaded%s, %d model key(s) missing%s\n')
      :format(
      what, #unexpected, few(unexpected), #missing, few(missing)))
  end
  return missing, unexpected
end

---------------------------------------------------------------- LoRA layouts
-- kohya flattens the module path with underscores; the names of a given model disambiguate.
function M.kohya_name(module, prefix) return (prefix or 'lora_unet') .. '_' .. module:gsub('%.', '_') end

-- The LoRA part a key holds, the module it belongs to (as written) and the layout.
-- Returns module, part ('down' | 'up' | 'alpha'), layout, or nil.
function M.parse_lora_key(key)
  local m = key:match('^(.*)%.lora_A%.weight$') or key:match('^(.*)%.lora_A%.[%w_]+%.weight$')
  if m then return m, 'down', 'peft' end
  m = key:match('^(.*)%.lora_B%.weight$') or key:match('^(.*)%.lora_B%.[%w_]+%.weight$')
  if m then return m, 'up', 'peft' end
  m = key:match('^(.*)%.lora%.down%.weight$')
  if m then return m, 'down', 'diffusers' end
  m = key:match('^(.*)%.lora%.up%.weight$')
  if m then return m, 'up', 'diffusers' end
  -- attention processors: <attn>.processor.to_q_lora.down.weight; to_out_lora is to_out.0
  local attn, proj, part = key:match('^(.*)%.processor%.(to_[qkv])_lora%.(%a+)%.weight$')
  if not attn then
    attn, part = key:match('^(.*)%.processor%.to_out_lora%.(%a+)%.weight$'); proj = 'to_out.0'
  end
  if attn and (part == 'down' or part == 'up') then return attn .. '.' .. proj, part, 'processor' end
  m = key:match('^(lora_[%w_]+)%.lora_down%.weight$')
  if m then return m, 'down', 'kohya' end
  m = key:match('^(lora_[%w_]+)%.lora_up%.weight$')
  if m then return m, 'up', 'kohya' end
  m = key:match('^(lora_[%w_]+)%.alpha$')
  if m then return m, 'alpha', 'kohya' end
  return nil
end

-- group_lora(sd, module_names, prefix) -> { [module] = { down=, up=, alpha= } }, unrecognised keys.
-- module_names: the list of the model's module names (kohya names are resolved against them);
-- prefix: the component prefix to strip from diffusers/peft keys ("unet.") and the kohya one
-- ("lora_unet").
function M.group_lora(sd, module_names, o)
  o = o or {}
  local dprefix, kprefix = o.prefix or 'unet.', o.kohya_prefix or 'lora_unet'
  local by_kohya = {}
  for _, n in ipairs(module_names) do by_kohya[M.kohya_name(n, kprefix)] = n end
  local groups, bad = {}, {}
  for k, t in pairs(sd) do
    local mod, part, layout = M.parse_lora_key(k)
    if mod and layout == 'kohya' then mod = by_kohya[mod]
    elseif mod and starts(mod, dprefix) then mod = mod:sub(#dprefix + 1) end
    if mod then
      groups[mod] = groups[mod] or {}
      groups[mod][part] = t
      groups[mod].layout = layout
    else
      bad[#bad + 1] = k
    end
  end
  table.sort(bad)
  return groups, bad
end

-- Keys to write one module's LoRA under: lora_keys(module, layout) -> down key, up key, alpha key|nil
function M.lora_keys(module, layout, o)
  o = o or {}
  if layout == 'kohya' then
    local n = M.kohya_name(module, o.kohya_prefix)
    return n .. '.lora_down.weight', n .. '.lora_up.weight', n .. '.alpha'
  elseif layout == 'peft' then
    local p = (o.prefix or 'unet.') .. module
    return p .. '.lora_A.weight', p .. '.lora_B.weight', nil
  end
  argerror(('lora_keys: unknown layout %q (peft, kohya)'):format(tostring(layout)))
end

-- convert_lora(sd, layout, module_names, o) -> the same adapters in another layout ('peft' or
-- 'kohya'), unrecognised keys. module_names resolves kohya names (see group_lora); going to
-- peft, alpha / rank is folded into lora_B (peft files carry no alpha).
function M.convert_lora(sd, layout, module_names, o)
  local groups, bad = M.group_lora(sd, module_names, o)
  local out = {}
  for mod, g in pairs(groups) do
    if g.down and g.up then
      local kd, ku, ka = M.lora_keys(mod, layout, o)
      local rank = g.down:size(1)
      out[kd] = g.down
      if layout == 'kohya' then
        out[ku] = g.up
        out[ka] = g.alpha or require('craft.tensor').tensor(rank)
      else
        local scale = g.alpha and g.alpha:item() / rank or 1
        out[ku] = scale == 1 and g.up or g.up * scale
      end
    else
      bad[#bad + 1] = mod .. ' (incomplete pair)'
    end
  end
  return out, bad
end

return M
