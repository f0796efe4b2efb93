-- craft.models.unet: diffusers' UNet2DConditionModel (Stable Diffusion 1.x / 2.x) on the engine,
-- built from a diffusers unet/config.json table, with parameters named exactly by the diffusers
-- checkpoint keys. Also the building blocks the VAE shares (ResnetBlock2D, Down/Upsample2D).
--   local unet = require('craft.models.unet').UNet2DConditionModel(config)
--   local eps = unet(sample [B,4,h,w], timestep (number | [B]), encoder_hidden_states [B,L,C])
-- unet.gradient_checkpointing = true recomputes each down/mid/up block during backward.
local craft = require 'craft'
local argerror = require('craft.core').argerror
local nn, F = craft.nn, craft.F

local M = {}

---------------------------------------------------------------- resnet, samplers
local ResnetBlock2D = nn.class('ResnetBlock2D')
M.ResnetBlock2D = ResnetBlock2D
-- ResnetBlock2D(cin, cout, {temb=channels or nil, groups=, eps=})
function ResnetBlock2D:init(cin, cout, o)
  self:add('norm1', nn.GroupNorm(o.groups, cin, { eps = o.eps }))
  self:add('conv1', nn.Conv2d(cin, cout, 3, { padding = 1 }))
  if o.temb then self:add('time_emb_proj', nn.Linear(o.temb, cout)) end
  self:add('norm2', nn.GroupNorm(o.groups, cout, { eps = o.eps }))
  self:add('conv2', nn.Conv2d(cout, cout, 3, { padding = 1 }))
  if cin ~= cout then self:add('conv_shortcut', nn.Conv2d(cin, cout, 1)) end
end
function ResnetBlock2D:forward(x, temb)
  local m = self._modules
  local h = m.conv1(m.norm1(x):silu())
  if temb and m.time_emb_proj then
    local t = m.time_emb_proj(temb:silu())
    h = h + t:reshape(t:size(1), t:size(2), 1, 1)
  end
  h = m.conv2(m.norm2(h):silu())
  local skip = m.conv_shortcut and m.conv_shortcut(x) or x
  return skip + h
end

local Downsample2D = nn.class('Downsample2D')
M.Downsample2D = Downsample2D
-- padding 1 (UNet) or 0 (VAE encoder: pad right/bottom by one, then a valid stride-2 conv)
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
function GEGLU:forward(x)
  local h = self._modules.proj(x)
  local n = h:size(-1) / 2
  return h:narrow(-1, 1, n) * h:narrow(-1, n + 1, n):gelu()
end

local FeedForward = nn.class('FeedForward')
function FeedForward:init(dim)
  -- net.1 is a dropout in diffusers: it holds no parameter, so an Identity keeps the numbering
  self:add('net', nn.Sequential(GEGLU(dim, dim * 4), nn.Identity(), nn.Linear(dim * 4, dim)))
end
function FeedForward:forward(x) return self._modules.net(x) end

local BasicTransformerBlock = nn.class('BasicTransformerBlock')
function BasicTransformerBlock:init(dim, heads, head_dim, cross_dim)
  self:add('norm1', nn.LayerNorm(dim))
  self:add('attn1', nn.Attention(dim, { heads = heads, head_dim = head_dim }))
  self:add('norm2', nn.LayerNorm(dim))
  self:add('attn2', nn.Attention(dim, { heads = heads, head_dim = head_dim, context_dim = cross_dim }))
  self:add('norm3', nn.LayerNorm(dim))
  self:add('ff', FeedForward(dim))
end
function BasicTransformerBlock:forward(x, context)
  local m = self._modules
  x = m.attn1(m.norm1(x)) + x
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
  for _ = 1, o.layers or 1 do blocks:append(BasicTransformerBlock(inner, o.heads, o.head_dim, o.cross_dim)) end
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
local DownBlock = nn.class('DownBlock2D')
-- o: n (resnets), attn (transformer options or nil), downsample, temb, groups, eps
function DownBlock:init(cin, cout, o)
  local resnets, attns = nn.ModuleList(), nn.ModuleList()
  for j = 1, o.n do
    resnets:append(ResnetBlock2D(j == 1 and cin or cout, cout, o))
    if o.attn then attns:append(Transformer2DModel(cout, o.attn)) end
  end
  self:add('resnets', resnets)
  if o.attn then self:add('attentions', attns) end
  if o.downsample then self:add('downsamplers', nn.ModuleList({ Downsample2D(cout, 1) })) end
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

local MidBlock = nn.class('UNetMidBlock2DCrossAttn')
function MidBlock:init(ch, o)
  self:add('resnets', nn.ModuleList({ ResnetBlock2D(ch, ch, o), ResnetBlock2D(ch, ch, o) }))
  self:add('attentions', nn.ModuleList({ Transformer2DModel(ch, o.attn) }))
end
function MidBlock:forward(h, temb, context)
  local m = self._modules
  h = m.resnets:get(1)(h, temb)
  h = m.attentions:get(1)(h, context)
  return m.resnets:get(2)(h, temb)
end

local UpBlock = nn.class('UpBlock2D')
-- o: n, attn, upsample, skip_channels = { per resnet }, temb, groups, eps
function UpBlock:init(prev, cout, o)
  local resnets, attns = nn.ModuleList(), nn.ModuleList()
  for j = 1, o.n do
    resnets:append(ResnetBlock2D((j == 1 and prev or cout) + o.skip_channels[j], cout, o))
    if o.attn then attns:append(Transformer2DModel(cout, o.attn)) end
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
function TimestepEmbedding:init(cin, dim)
  self:add('linear_1', nn.Linear(cin, dim))
  self:add('linear_2', nn.Linear(dim, dim))
end
function TimestepEmbedding:forward(e) return self._modules.linear_2(self._modules.linear_1(e):silu()) end

local UNet = nn.class('UNet2DConditionModel')
M.UNet2DConditionModel = UNet

local function per_level(v, n, what)
  if type(v) ~= 'table' then
    local r = {}
    for i = 1, n do r[i] = v end
    return r
  end
  if #v ~= n then argerror(('UNet2DConditionModel: %s has %d entries for %d levels'):format(what, #v, n)) end
  return v
end

local function check_config(c)
  local unsupported = { class_embed_type = true, addition_embed_type = true, encoder_hid_dim = true,
    time_cond_proj_dim = true, num_class_embeds = true }
  for k in pairs(unsupported) do
    if c[k] ~= nil and c[k] ~= craft.io.null then
      argerror(('UNet2DConditionModel: config %s = %s is not supported (SD 1.x / 2.x UNets only)'):format(k, tostring(c[k])))
    end
  end
  local function want(k, v)
    if c[k] ~= nil and c[k] ~= craft.io.null and c[k] ~= v then
      argerror(('UNet2DConditionModel: config %s = %s is not supported (only %s)'):format(k, tostring(c[k]), tostring(v)))
    end
  end
  want('act_fn', 'silu'); want('resnet_time_scale_shift', 'default'); want('time_embedding_type', 'positional')
  want('mid_block_type', 'UNetMidBlock2DCrossAttn'); want('center_input_sample', false)
  want('dual_cross_attention', false); want('only_cross_attention', false)
  want('conv_in_kernel', 3); want('conv_out_kernel', 3); want('resnet_out_scale_factor', 1)
  want('mid_block_scale_factor', 1)
  if c.num_attention_heads ~= nil and c.num_attention_heads ~= craft.io.null then
    argerror('UNet2DConditionModel: config num_attention_heads is not supported (diffusers refuses it too)')
  end
end

-- UNet2DConditionModel(config): config is the table of a diffusers unet/config.json.
function UNet:init(c)
  check_config(c)
  self.config = c
  local ch = c.block_out_channels or { 320, 640, 1280, 1280 }
  local levels = #ch
  local down_types = c.down_block_types or { 'CrossAttnDownBlock2D', 'CrossAttnDownBlock2D', 'CrossAttnDownBlock2D', 'DownBlock2D' }
  local up_types = c.up_block_types or { 'UpBlock2D', 'CrossAttnUpBlock2D', 'CrossAttnUpBlock2D', 'CrossAttnUpBlock2D' }
  if #down_types ~= levels or #up_types ~= levels then
    argerror(('UNet2DConditionModel: %d block_out_channels but %d down and %d up block types'):format(levels, #down_types, #up_types))
  end
  local lpb = per_level(c.layers_per_block or 2, levels, 'layers_per_block')
  -- diffusers reads attention_head_dim as the number of heads (a historical misnomer it keeps)
  local heads = per_level(c.attention_head_dim or 8, levels, 'attention_head_dim')
  local tlayers = per_level(c.transformer_layers_per_block or 1, levels, 'transformer_layers_per_block')
  local cross = per_level(c.cross_attention_dim or 1280, levels, 'cross_attention_dim')
  local groups, eps = c.norm_num_groups or 32, c.norm_eps or 1e-5
  local temb = ch[1] * 4
  self.flip_sin_to_cos = c.flip_sin_to_cos ~= false
  self.freq_shift = c.freq_shift or 0
  self.gradient_checkpointing = false

  local function attn_opts(i, channels)
    if channels % heads[i] ~= 0 then
      argerror(('UNet2DConditionModel: %d channels do not split into %d heads (attention_head_dim)'):format(channels, heads[i]))
    end
    return { heads = heads[i], head_dim = channels / heads[i], cross_dim = cross[i], layers = tlayers[i],
      linear = c.use_linear_projection == true, groups = groups }
  end
  local function kind(t, prefix)
    if t == 'CrossAttn' .. prefix then return true end
    if t == prefix then return false end
    argerror(('UNet2DConditionModel: block type %s is not supported (CrossAttn%s, %s)'):format(t, prefix, prefix))
  end

  self:add('conv_in', nn.Conv2d(c.in_channels or 4, ch[1], 3, { padding = 1 }))
  self:add('time_embedding', TimestepEmbedding(ch[1], temb))

  local downs = nn.ModuleList()
  local skip_ch = { ch[1] }   -- channels of every skip connection, in push order
  for i = 1, levels do
    local cin = i == 1 and ch[1] or ch[i - 1]
    local attn = kind(down_types[i], 'DownBlock2D') and attn_opts(i, ch[i]) or nil
    downs:append(DownBlock(cin, ch[i], { n = lpb[i], attn = attn, downsample = i < levels, temb = temb,
      groups = groups, eps = eps }))
    for _ = 1, lpb[i] do skip_ch[#skip_ch + 1] = ch[i] end
    if i < levels then skip_ch[#skip_ch + 1] = ch[i] end
  end
  self:add('down_blocks', downs)
  self:add('mid_block', MidBlock(ch[levels], { attn = attn_opts(levels, ch[levels]), temb = temb, groups = groups, eps = eps }))

  local ups = nn.ModuleList()
  local prev = ch[levels]
  for i = 1, levels do
    local li = levels - i + 1   -- the level this up block mirrors
    local n = lpb[li] + 1
    local sk = {}
    for j = 1, n do sk[j] = table.remove(skip_ch) end
    -- diffusers pairs the up block with the reversed head counts of the down path
    local attn = kind(up_types[i], 'UpBlock2D') and attn_opts(li, ch[li]) or nil
    ups:append(UpBlock(prev, ch[li], { n = n, attn = attn, upsample = i < levels, skip_channels = sk, temb = temb,
      groups = groups, eps = eps }))
    prev = ch[li]
  end
  self:add('up_blocks', ups)
  self:add('conv_norm_out', nn.GroupNorm(groups, ch[1], { eps = eps }))
  self:add('conv_out', nn.Conv2d(ch[1], c.out_channels or 4, 3, { padding = 1 }))
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
  if self.gradient_checkpointing and craft.is_grad_enabled() then return craft.checkpoint(run, h, ...) end
  return run(h, ...)
end

function UNet:time_embed(timestep, batch)
  local t = timestep
  if type(t) == 'number' then t = craft.full({ batch }, t)
  else
    t = t:float():reshape(-1)
    if t:size(1) == 1 and batch > 1 then t = t:expand(batch) end
    if t:size(1) ~= batch then
      argerror(('UNet2DConditionModel: %d timesteps for a batch of %d'):format(t:size(1), batch))
    end
  end
  local e = F.timestep_embedding(t, self._modules.conv_in.cout, { flip_sin_to_cos = self.flip_sin_to_cos,
    downscale_freq_shift = self.freq_shift })
  return self._modules.time_embedding(e)
end

function UNet:forward(sample, timestep, context)
  if sample:dim() ~= 4 then argerror('UNet2DConditionModel: sample must be [B, C, h, w], got [' .. table.concat(sample.shape, ', ') .. ']') end
  local m = self._modules
  local temb = self:time_embed(timestep, sample:size(1))
  local h = m.conv_in(sample)
  local skips = { h }
  for _, blk in m.down_blocks:iter() do
    local r = { self:run_block(blk, h, temb, context) }
    h = r[1]
    for k = 2, #r do skips[#skips + 1] = r[k] end
  end
  h = self:run_block(m.mid_block, h, temb, context)
  for _, blk in m.up_blocks:iter() do
    local n = blk._modules.resnets:len()
    local mine = {}
    for j = 1, n do mine[j] = table.remove(skips) end
    -- upsample to the size of the next skip (the resolution the down path had there)
    local nxt = skips[#skips]
    local uh, uw = nxt and nxt:size(3), nxt and nxt:size(4)
    h = self:run_block(blk, h, temb, context, uh, uw, unpack(mine))
  end
  return m.conv_out(m.conv_norm_out(h):silu())
end

return M
