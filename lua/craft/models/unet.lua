-- craft.models.unet: diffusers' UNet2DConditionModel (Stable Diffusion 1.x / 2.x) on the engine,
-- built from a diffusers unet/config.json table, with parameters named exactly by the diffusers
-- checkpoint keys. Also the building blocks the VAE shares (ResnetBlock2D, Down/Upsample2D).
--   local unet = require('craft.models.unet').UNet2DConditionModel(config)
--   local eps = unet(sample [B,4,h,w], timestep (number | [B]), encoder_hidden_states [B,L,C])
-- unet.gradient_checkpointing = true recomputes each down/mid/up block during backward.
local T = require 'craft.tensor'
local A = require 'craft.autograd'
local io_ = require 'craft.io'
local argerror = require('craft.core').argerror
local nn, F = require 'craft.nn', require 'craft.functional'

local M = {}

---------------------------------------------------------------- resnet, samplers
local ACTS = {
  silu = function(x) return x:silu() end,
  swish = function(x) return x:silu() end,
  gelu = function(x) return x:gelu() end,
  relu = function(x) return x:relu() end,
}
M.ACTS = ACTS

local ResnetBlock2D = nn.class('ResnetBlock2D')
M.ResnetBlock2D = ResnetBlock2D
-- ResnetBlock2D(cin, cout, {temb=channels or nil, groups=, eps=, out_scale=1})
-- out_scale: diffusers' output_scale_factor, (skip + h) / out_scale (the UNet's mid block)
function ResnetBlock2D:init(cin, cout, o)
  self.out_scale = o.out_scale or 1
  self:add('norm1', nn.GroupNorm(o.groups, cin, { eps = o.eps }))
  self:add('conv1', nn.Conv2d(cin, cout, 3, { padding = 1 }))
  if o.temb then self:add('time_emb_proj', nn.Linear(o.temb, cout)) end
  self:add('norm2', nn.GroupNorm(o.groups, cout, { eps = o.eps }))
  self:add('conv2', nn.Conv2d(cout, cout, 3, { padding = 1 }))
  if cin ~= cout then self:add('conv_shortcut', nn.Conv2d(cin, cout, 1)) end
end
function ResnetBlock2D:forward(x, temb)
  local m = self._modules
  local h = m.conv1(m.norm1(x, 'silu'))
  if temb and m.time_emb_proj then
    local t = m.time_emb_proj(temb:silu())
    h = h + t:reshape(t:size(1), t:size(2), 1, 1)
  end
  h = m.conv2(m.norm2(h, 'silu'))
  local skip = m.conv_shortcut and m.conv_shortcut(x) or x
  if self.out_scale ~= 1 then return (skip + h) * (1 / self.out_scale) end
  return skip + h
end

local Downsample2D = nn.class('Downsample2D')
M.Downsample2D = Downsample2D
-- padding 1 (UNet) or 0 (VAE encoder, UNet downsample_padding = 0: pad right/bottom by one,
-- then a valid stride-2 conv)
function Downsample2D:init(ch, padding)
  self.padding = padding
  self:add('conv', nn.Conv2d(ch, ch, 3, { stride = 2, padding = padding }))
end
function Downsample2D:forward(x)
  if self.padding == 0 then x = F.pad(x, { 0, 1, 0, 1 }) end
  return self._modules.conv(x)
end

local Upsample2D = nn.class('Upsample2D')
M.Upsample2D = Upsample2D
function Upsample2D:init(ch) self:add('conv', nn.Conv2d(ch, ch, 3, { padding = 1 })) end
-- size {h, w}: the skip connection's size (differs from 2x when the input was not a multiple of 2^n)
function Upsample2D:forward(x, size)
  local h, w = x:size(3) * 2, x:size(4) * 2
  if size then h, w = size[1], size[2] end
  return self._modules.conv(F.interpolate(x, { size = { h, w }, mode = 'nearest' }))
end

---------------------------------------------------------------- transformer
local GEGLU = nn.class('GEGLU')
function GEGLU:init(din, dout) self:add('proj', nn.Linear(din, dout * 2)) end
function GEGLU:forward(x) return F.geglu(self._modules.proj(x)) end

local FeedForward = nn.class('FeedForward')
function FeedForward:init(dim)
  -- net.1 is a dropout in diffusers: it holds no parameter, so an Identity keeps the numbering
  self:add('net', nn.Sequential(GEGLU(dim, dim * 4), nn.Identity(), nn.Linear(dim * 4, dim)))
end
function FeedForward:forward(x) return self._modules.net(x) end

local BasicTransformerBlock = nn.class('BasicTransformerBlock')
-- only_cross: diffusers' only_cross_attention, attn1 attends to the text as well (no self-attention)
function BasicTransformerBlock:init(dim, heads, head_dim, cross_dim, only_cross)
  self.only_cross = only_cross
  self:add('norm1', nn.LayerNorm(dim))
  self:add('attn1', nn.Attention(dim,
    { heads = heads, head_dim = head_dim, context_dim = only_cross and cross_dim or nil }))
  self:add('norm2', nn.LayerNorm(dim))
  self:add('attn2', nn.Attention(dim, { heads = heads, head_dim = head_dim, context_dim = cross_dim }))
  self:add('norm3', nn.LayerNorm(dim))
  self:add('ff', FeedForward(dim))
end
function BasicTransformerBlock:forward(x, context)
  local m = self._modules
  x = m.attn1(m.norm1(x), self.only_cross and context or nil) + x
  x = m.attn2(m.norm2(x), context) + x
  return m.ff(m.norm3(x)) + x
end

local Transformer2DModel = nn.class('Transformer2DModel')
M.Transformer2DModel = Transformer2DModel
function Transformer2DModel:init(ch, o)
  local inner = o.heads * o.head_dim
  self.linear = o.linear
  self:add('norm', nn.GroupNorm(o.groups, ch, { eps = 1e-6 }))
  self:add('proj_in', o.linear and nn.Linear(ch, inner) or nn.Conv2d(ch, inner, 1))
  local blocks = nn.ModuleList()
  for _ = 1, o.layers or 1 do
    blocks:append(BasicTransformerBlock(inner, o.heads, o.head_dim, o.cross_dim, o.only_cross))
  end
  self:add('transformer_blocks', blocks)
  self:add('proj_out', o.linear and nn.Linear(inner, ch) or nn.Conv2d(inner, ch, 1))
end
function Transformer2DModel:forward(x, context)
  local m = self._modules
  local b, _, hh, ww = unpack(x.shape)
  local h = m.norm(x)
  if not self.linear then h = m.proj_in(h) end
  local c = h:size(2)
  h = h:permute(1, 3, 4, 2):reshape(b, hh * ww, c)
  if self.linear then h = m.proj_in(h) end
  for _, blk in m.transformer_blocks:iter() do h = blk(h, context) end
  if self.linear then h = m.proj_out(h) end
  h = h:reshape(b, hh, ww, h:size(3)):permute(1, 4, 2, 3)
  if not self.linear then h = m.proj_out(h) end
  return h + x
end

---------------------------------------------------------------- blocks
-- attn: a function(j) -> the transformer options of the block's j-th attention, or nil
local DownBlock = nn.class('DownBlock2D')
-- o: n (resnets), attn, downsample (nil, or the padding: 1 or 0), temb, groups, eps
function DownBlock:init(cin, cout, o)
  local resnets, attns = nn.ModuleList(), nn.ModuleList()
  for j = 1, o.n do
    resnets:append(ResnetBlock2D(j == 1 and cin or cout, cout, o))
    if o.attn then attns:append(Transformer2DModel(cout, o.attn(j))) end
  end
  self:add('resnets', resnets)
  if o.attn then self:add('attentions', attns) end
  if o.downsample then self:add('downsamplers', nn.ModuleList({ Downsample2D(cout, o.downsample) })) end
end
-- -> h, then every output the up path takes as a skip connection
function DownBlock:forward(h, temb, context)
  local m, states = self._modules, {}
  for j, r in m.resnets:iter() do
    h = r(h, temb)
    if m.attentions then h = m.attentions:get(j)(h, context) end
    states[#states + 1] = h
  end
  if m.downsamplers then
    h = m.downsamplers:get(1)(h)
    states[#states + 1] = h
  end
  return h, unpack(states)
end

-- UNetMidBlock2DCrossAttn (resnet, attention, resnet) or, with o.attn nil, UNetMidBlock2D as
-- the UNet builds it (one resnet). o.out_scale: mid_block_scale_factor.
local MidBlock = nn.class('UNetMidBlock2DCrossAttn')
function MidBlock:init(ch, o)
  local ro = { temb = o.temb, groups = o.groups, eps = o.eps, out_scale = o.out_scale }
  if o.attn then
    self:add('resnets', nn.ModuleList({ ResnetBlock2D(ch, ch, ro), ResnetBlock2D(ch, ch, ro) }))
    self:add('attentions', nn.ModuleList({ Transformer2DModel(ch, o.attn) }))
  else
    self:add('resnets', nn.ModuleList({ ResnetBlock2D(ch, ch, ro) }))
  end
end
function MidBlock:forward(h, temb, context)
  local m = self._modules
  h = m.resnets:get(1)(h, temb)
  if not m.attentions then return h end
  h = m.attentions:get(1)(h, context)
  return m.resnets:get(2)(h, temb)
end

local UpBlock = nn.class('UpBlock2D')
-- o: n, attn, upsample, skip_channels = { per resnet }, temb, groups, eps
function UpBlock:init(prev, cout, o)
  local resnets, attns = nn.ModuleList(), nn.ModuleList()
  for j = 1, o.n do
    resnets:append(ResnetBlock2D((j == 1 and prev or cout) + o.skip_channels[j], cout, o))
    if o.attn then attns:append(Transformer2DModel(cout, o.attn(j))) end
  end
  self:add('resnets', resnets)
  if o.attn then self:add('attentions', attns) end
  if o.upsample then self:add('upsamplers', nn.ModuleList({ Upsample2D(cout) })) end
end
-- forward(h, temb, context, up_h, up_w, skip_n, ..., skip_1): skips newest first
function UpBlock:forward(h, temb, context, up_h, up_w, ...)
  local m, skips = self._modules, { ... }
  for j, r in m.resnets:iter() do
    h = r(F.cat({ h, skips[j] }, 2), temb)
    if m.attentions then h = m.attentions:get(j)(h, context) end
  end
  if m.upsamplers then h = m.upsamplers:get(1)(h, up_h and { up_h, up_w }) end
  return h
end

---------------------------------------------------------------- the model
local TimestepEmbedding = nn.class('TimestepEmbedding')
-- post_act: diffusers' timestep_post_act (an activation after linear_2), or nil
function TimestepEmbedding:init(cin, dim, post_act)
  self.post_act = post_act
  self:add('linear_1', nn.Linear(cin, dim))
  self:add('linear_2', nn.Linear(dim, dim))
end
function TimestepEmbedding:forward(e)
  local h = self._modules.linear_2(self._modules.linear_1(e):silu())
  return self.post_act and self.post_act(h) or h
end

local UNet = nn.class('UNet2DConditionModel')
M.UNet2DConditionModel = UNet

local O = require 'craft.models.options'
local K, null = O.K, io_.null
local ACT_NAMES = { null, 'silu', 'swish', 'gelu', 'relu' }
local tlayers_kind = K.either(K.posint, K.list(K.posint))
local odd_kernel = { 1, 3, 5, 7 }
-- Every key of diffusers 0.27.2's UNet2DConditionModel config (see craft.models.options).
M.OPTIONS = {
  sample_size = { K.per_level(K.posint), nil, note = 'the default size of pipe:generate' },
  in_channels = { K.posint, 4 },
  out_channels = { K.posint, 4 },
  center_input_sample = { K.bool, false },
  flip_sin_to_cos = { K.bool, true },
  freq_shift = { K.number, 0 }, down_block_types = { K.list(K.string),
  { 'CrossAttnDownBlock2D', 'CrossAttnDownBlock2D', 'CrossAttnDownBlock2D', 'DownBlock2D' },
    each = { 'CrossAttnDownBlock2D', 'DownBlock2D' } },
  mid_block_type = { K.string, 'UNetMidBlock2DCrossAttn', null = true,
  only = { 'UNetMidBlock2DCrossAttn', 'UNetMidBlock2D', null } }, up_block_types = { K.list(K.string),
  { 'UpBlock2D', 'CrossAttnUpBlock2D', 'CrossAttnUpBlock2D', 'CrossAttnUpBlock2D' },
    each = { 'UpBlock2D', 'CrossAttnUpBlock2D' } },
  only_cross_attention = { K.per_level(K.bool), false },
  block_out_channels = { K.list(K.posint), { 320, 640, 1280, 1280 } },
  layers_per_block = { K.per_level(K.posint), 2 },
  downsample_padding = { K.count, 1, only = { 0, 1 } },
  mid_block_scale_factor = { K.posnum, 1 },
  dropout = { K.number, 0, only = { 0 }, note = 'craft has no dropout' },
  act_fn = { K.string, 'silu', only = { 'silu', 'swish' } },
  norm_num_groups = { K.posint, 32 },
  norm_eps = { K.posnum, 1e-5 },
  cross_attention_dim = { K.per_level(K.posint), 1280 },
  transformer_layers_per_block = { K.either(K.posint, K.list(tlayers_kind)), 1,
    note = 'per level; a level may list one count per resnet (then give '
      .. 'reverse_transformer_layers_per_block)' },
  reverse_transformer_layers_per_block = { K.list(tlayers_kind), nil, note = 'per up block' },
  encoder_hid_dim = { K.posint, nil, only = { null } },
  encoder_hid_dim_type = { K.string, nil, only = { null } },
  attention_head_dim = { K.per_level(K.posint), 8, note = 'read as the number of heads, as diffusers does' },
  num_attention_heads = { K.per_level(K.posint), nil, only = { null },
  note = 'diffusers 0.27.2 refuses it too' },
  dual_cross_attention = { K.bool, false, only = { false } },
  use_linear_projection = { K.bool, false },
  class_embed_type = { K.string, nil, only = { null } },
  addition_embed_type = { K.string, nil, only = { null } },
  addition_time_embed_dim = { K.posint, nil, only = { null } },
  num_class_embeds = { K.posint, nil, only = { null } },
  upcast_attention = { K.bool, false, inert = 'craft computes attention in float32 always' },
  resnet_time_scale_shift = { K.string, 'default', only = { 'default' } },
  resnet_skip_time_act = { K.bool, false,
  inert = 'diffusers reads it only in SimpleCrossAttn / ResnetDownsample blocks, which craft refuses' },
  resnet_out_scale_factor = { K.posnum, 1,
  inert = 'diffusers reads it only in SimpleCrossAttn / ResnetDownsample blocks, which craft refuses' },
  time_embedding_type = { K.string, 'positional', only = { 'positional' } },
  time_embedding_dim = { K.posint, nil },
  time_embedding_act_fn = { K.string, nil, only = ACT_NAMES },
  timestep_post_act = { K.string, nil, only = ACT_NAMES },
  time_cond_proj_dim = { K.posint, nil, only = { null } },
  conv_in_kernel = { K.posint, 3, only = odd_kernel },
  conv_out_kernel = { K.posint, 3, only = odd_kernel },
  projection_class_embeddings_input_dim = { K.posint, nil, only = { null } },
  attention_type = { K.string, 'default', only = { 'default' } },
  class_embeddings_concat = { K.bool, false, inert = 'read only with class embeddings, which craft refuses' },
  mid_block_only_cross_attention = { K.bool, nil,
  inert = 'read only by UNetMidBlock2DSimpleCrossAttn, which craft refuses' },
  cross_attention_norm = { K.string, nil,
  inert = 'diffusers reads it only in SimpleCrossAttn blocks, which craft refuses' },
  addition_embed_type_num_heads = { K.posint, 64,
  inert = 'read only with addition_embed_type "text_image", which craft refuses' },
}

-- per_level(c, key, n) -> a list of n values (one value repeated, or the list, which must have n)
local function per_level(c, key, n, where)
  local v = c[key]
  if type(v) ~= 'table' then
    local r = {}
    for i = 1, n do r[i] = v end
    return r
  end
  if #v ~= n then
    O.refuse(where, key, v, ('has %d entries for %d levels (block_out_channels)'):format(#v, n))
  end
  return v
end

-- UNet2DConditionModel(config): config is the table of a diffusers unet/config.json (keys
-- checked against M.OPTIONS: see craft.models.options).
function UNet:init(cfg)
  local where = O.where(cfg, 'UNet2DConditionModel config')
  local c = O.check(cfg, M.OPTIONS, where)
  self.config = c
  local ch = c.block_out_channels
  local levels = #ch
  if type(c.sample_size) == 'table' and #c.sample_size ~= 2 then
    O.refuse(where, 'sample_size', c.sample_size, 'must be one size or [height, width]')
  end
  local down_types, up_types = c.down_block_types, c.up_block_types
  if #down_types ~= levels then
    O.refuse(where, 'down_block_types', down_types,
      ('has %d entries for %d block_out_channels'):format(#down_types, levels))
  end
  if #up_types ~= levels then
    O.refuse(where, 'up_block_types', up_types,
      ('has %d entries for %d block_out_channels'):format(#up_types, levels))
  end
  local lpb = per_level(c, 'layers_per_block', levels, where)
  -- diffusers reads attention_head_dim as the number of heads (a historical misnomer it keeps)
  local heads = per_level(c, 'attention_head_dim', levels, where)
  local cross = per_level(c, 'cross_attention_dim', levels, where)
  local only_cross = per_level(c, 'only_cross_attention', levels, where)
  local tl = per_level(c, 'transformer_layers_per_block', levels, where)
  local rtl = c.reverse_transformer_layers_per_block
  if rtl == nil then
    for i = 1, levels do
      if type(tl[i]) == 'table' then
        O.refuse(where, 'transformer_layers_per_block', c.transformer_layers_per_block,
          'lists counts per resnet: give reverse_transformer_layers_per_block too (diffusers requires it)')
      end
    end
    rtl = {}
    for i = 1, levels do rtl[i] = tl[levels - i + 1] end
  elseif #rtl ~= levels then
    O.refuse(where, 'reverse_transformer_layers_per_block', rtl,
      ('has %d entries for %d up blocks'):format(#rtl, levels))
  end
  -- the transformer depth of resnet j of a block: one count, or one per resnet
  local function depth(v, j, key, n)
    if type(v) ~= 'table' then return v end
    if #v < n then
      O.refuse(where, key, v, ('lists %d transformer depth(s) for a block of %d resnets'):format(#v, n))
    end
    return v[j]
  end
  local groups, eps = c.norm_num_groups, c.norm_eps
  for _, n in ipairs(ch) do
    if n % groups ~= 0 then
      O.refuse(where, 'norm_num_groups', groups,
        ('does not divide the %d channels of block_out_channels'):format(n))
    end
  end
  local temb = c.time_embedding_dim or ch[1] * 4
  self.flip_sin_to_cos = c.flip_sin_to_cos
  self.freq_shift = c.freq_shift
  self.time_act = c.time_embedding_act_fn and ACTS[c.time_embedding_act_fn]
  self.gradient_checkpointing = false

  local function attn_opts(i, channels, layers)
    if channels % heads[i] ~= 0 then
      O.refuse(where, 'attention_head_dim', c.attention_head_dim,
        ('gives %d heads, which do not split %d channels'):format(heads[i], channels))
    end
    return { heads = heads[i], head_dim = channels / heads[i], cross_dim = cross[i], layers = layers,
      linear = c.use_linear_projection, groups = groups, only_cross = only_cross[i] }
  end
  local function cross_attn(t, prefix) return t == 'CrossAttn' .. prefix end

  local kin, kout = c.conv_in_kernel, c.conv_out_kernel
  self:add('conv_in', nn.Conv2d(c.in_channels, ch[1], kin, { padding = (kin - 1) / 2 }))
  self:add('time_embedding',
    TimestepEmbedding(ch[1], temb, c.timestep_post_act and ACTS[c.timestep_post_act]))

  local downs = nn.ModuleList()
  local skip_ch = { ch[1] }   -- channels of every skip connection, in push order
  for i = 1, levels do
    local cin = i == 1 and ch[1] or ch[i - 1]
    local n = lpb[i]
    local attn = cross_attn(down_types[i], 'DownBlock2D') and function(j)
      return attn_opts(i, ch[i], depth(tl[i], j, ('transformer_layers_per_block[%d]'):format(i), n))
    end or nil
    downs:append(DownBlock(cin, ch[i],
      { n = n, attn = attn, downsample = i < levels and c.downsample_padding or nil,
      temb = temb, groups = groups, eps = eps }))
    for _ = 1, n do skip_ch[#skip_ch + 1] = ch[i] end
    if i < levels then skip_ch[#skip_ch + 1] = ch[i] end
  end
  self:add('down_blocks', downs)
  if c.mid_block_type ~= null then
    local cross_mid = c.mid_block_type == 'UNetMidBlock2DCrossAttn'
    self:add('mid_block',
      MidBlock(ch[levels], { attn = cross_mid and attn_opts(levels, ch[levels], depth(tl[levels], 1,
      ('transformer_layers_per_block[%d]'):format(levels), 1)) or nil, temb = temb, groups = groups,
      eps = eps, out_scale = c.mid_block_scale_factor }))
  end

  local ups = nn.ModuleList()
  local prev = ch[levels]
  for i = 1, levels do
    local li = levels - i + 1   -- the level this up block mirrors
    local n = lpb[li] + 1
    local sk = {}
    for j = 1, n do sk[j] = table.remove(skip_ch) end
    -- diffusers pairs the up block with the reversed head counts of the down path
    local attn = cross_attn(up_types[i], 'UpBlock2D') and function(j)
      return attn_opts(li, ch[li],
        depth(rtl[i], j, ('reverse_transformer_layers_per_block[%d]'):format(i), n))
    end or nil
    ups:append(UpBlock(prev, ch[li],
      { n = n, attn = attn, upsample = i < levels, skip_channels = sk, temb = temb,
      groups = groups, eps = eps }))
    prev = ch[li]
  end
  self:add('up_blocks', ups)
  self:add('conv_norm_out', nn.GroupNorm(groups, ch[1], { eps = eps }))
  self:add('conv_out', nn.Conv2d(ch[1], c.out_channels, kout, { padding = (kout - 1) / 2 }))
end

-- A tensor's memory goes back when Lua collects its wrapper, and LuaJIT's collector does not see
-- the engine's memory: a full collection before each block with a large input bounds the
-- garbage to about one block (an SD 1.5 forward at 64x64 peaks at 0.8 GiB instead of 2.2). A
-- collection costs milliseconds, so small activations (tiny models) skip it; set
-- M.collect_above = math.huge to never collect.
M.collect_above = 2 ^ 18   -- elements of the block's input

-- Runs block(...) directly, or under craft.checkpoint when gradient checkpointing is on (the
-- collection then also runs before each recomputation during backward).
function UNet:run_block(block, h, ...)
  local function run(...)
    if h:numel() >= M.collect_above then collectgarbage() end
    return block(...)
  end
  if self.gradient_checkpointing and A.is_grad_enabled() then return A.checkpoint(run, h, ...) end
  return run(h, ...)
end

function UNet:time_embed(timestep, batch)
  local t = timestep
  if type(t) == 'number' then t = T.full({ batch }, t)
  else
    t = t:float():reshape(-1)
    if t:size(1) == 1 and batch > 1 then t = t:expand(batch) end
    if t:size(1) ~= batch then
      argerror(('UNet2DConditionModel: %d timesteps for a batch of %d'):format(t:size(1), batch))
    end
  end
  local e = F.timestep_embedding(t, self._modules.conv_in.cout, { flip_sin_to_cos = self.flip_sin_to_cos,
    downscale_freq_shift = self.freq_shift })
  e = self._modules.time_embedding(e)
  return self.time_act and self.time_act(e) or e
end

function UNet:forward(sample, timestep, context)
  if sample:dim() ~= 4 then
    argerror('UNet2DConditionModel: sample must be [B, C, h, w], got [' .. table.concat(sample.shape, ', ')
      .. ']')
  end
  local m = self._modules
  local temb = self:time_embed(timestep, sample:size(1))
  if self.config.center_input_sample then sample = sample * 2 - 1 end
  local h = m.conv_in(sample)
  local skips = { h }
  for _, blk in m.down_blocks:iter() do
    local r = { self:run_block(blk, h, temb, context) }
    h = r[1]
    for k = 2, #r do skips[#skips + 1] = r[k] end
  end
  if m.mid_block then h = self:run_block(m.mid_block, h, temb, context) end
  for _, blk in m.up_blocks:iter() do
    local n = blk._modules.resnets:len()
    local mine = {}
    for j = 1, n do mine[j] = table.remove(skips) end
    -- upsample to the size of the next skip (the resolution the down path had there)
    local nxt = skips[#skips]
    local uh, uw = nxt and nxt:size(3), nxt and nxt:size(4)
    h = self:run_block(blk, h, temb, context, uh, uw, unpack(mine))
  end
  return m.conv_out(m.conv_norm_out(h, 'silu'))
end

return M
