-- craft.models.vae: diffusers' AutoencoderKL (the Stable Diffusion VAE) on the engine, built from a
-- diffusers vae/config.json table, parameters named by the diffusers keys (current names: the
-- mid-block attention's to_q / to_k / to_v / to_out.0; keymap.vae_new_names maps the old ones).
--   local vae = require('craft.models.vae').AutoencoderKL(config)
--   local mean, logvar = vae:encode(images [B,3,H,W] in [-1, 1])
--   local z = vae:sample(mean, logvar, {seed = 1})          -- or mean itself
--   local images = vae:decode(z)                            -- z unscaled: divide by scaling_factor first
-- vae.gradient_checkpointing = true recomputes the decoder's blocks during backward.
local T = require 'craft.tensor'
local A = require 'craft.autograd'
local io_ = require 'craft.io'
local U = require 'craft.models.unet'
local nn, F = require 'craft.nn', require 'craft.functional'

local M = {}

-- The mid-block self-attention over pixels (one head of all channels, residual, group norm).
local AttnBlock = nn.class('VAEAttention')
function AttnBlock:init(ch, groups)
  self:add('group_norm', nn.GroupNorm(groups, ch, { eps = 1e-6 }))
  self:add('to_q', nn.Linear(ch, ch))
  self:add('to_k', nn.Linear(ch, ch))
  self:add('to_v', nn.Linear(ch, ch))
  self:add('to_out', nn.Sequential(nn.Linear(ch, ch), nn.Identity()))
end
function AttnBlock:forward(x)
  local m = self._modules
  local b, c, h, w = unpack(x.shape)
  local t = m.group_norm(x):reshape(b, c, h * w):transpose(2, 3)
  local o = F.sdpa(m.to_q(t), m.to_k(t), m.to_v(t))
  o = m.to_out(o):transpose(2, 3):reshape(b, c, h, w)
  return o + x
end

local MidBlock = nn.class('UNetMidBlock2D')
function MidBlock:init(ch, groups)
  local o = { groups = groups, eps = 1e-6 }
  self:add('attentions', nn.ModuleList({ AttnBlock(ch, groups) }))
  self:add('resnets', nn.ModuleList({ U.ResnetBlock2D(ch, ch, o), U.ResnetBlock2D(ch, ch, o) }))
end
function MidBlock:forward(x)
  local m = self._modules
  return m.resnets:get(2)(m.attentions:get(1)(m.resnets:get(1)(x)))
end

-- DownEncoderBlock2D / UpDecoderBlock2D: resnets, then a down- or upsampler
local Block = nn.class('VAEBlock')
function Block:init(cin, cout, n, groups, sampler)
  local rs = nn.ModuleList()
  for j = 1, n do
    rs:append(U.ResnetBlock2D(j == 1 and cin or cout, cout, { groups = groups, eps = 1e-6 }))
  end
  self:add('resnets', rs)
  if sampler == 'down' then self:add('downsamplers', nn.ModuleList({ U.Downsample2D(cout, 0) })) end
  if sampler == 'up' then self:add('upsamplers', nn.ModuleList({ U.Upsample2D(cout) })) end
end
function Block:forward(x)
  local m = self._modules
  for _, r in m.resnets:iter() do x = r(x) end
  if m.downsamplers then x = m.downsamplers:get(1)(x) end
  if m.upsamplers then x = m.upsamplers:get(1)(x) end
  return x
end

local Encoder = nn.class('Encoder')
function Encoder:init(c)
  local ch, groups, lpb = c.block_out_channels, c.norm_num_groups, c.layers_per_block
  self:add('conv_in', nn.Conv2d(c.in_channels, ch[1], 3, { padding = 1 }))
  local downs = nn.ModuleList()
  for i = 1, #ch do
    downs:append(Block(i == 1 and ch[1] or ch[i - 1], ch[i], lpb, groups, i < #ch and 'down' or nil))
  end
  self:add('down_blocks', downs)
  self:add('mid_block', MidBlock(ch[#ch], groups))
  self:add('conv_norm_out', nn.GroupNorm(groups, ch[#ch], { eps = 1e-6 }))
  self:add('conv_out', nn.Conv2d(ch[#ch], 2 * c.latent_channels, 3, { padding = 1 }))
end
function Encoder:forward(x, run)
  local m = self._modules
  x = m.conv_in(x)
  for _, b in m.down_blocks:iter() do x = run(b, x) end
  x = run(m.mid_block, x)
  return m.conv_out(m.conv_norm_out(x, 'silu'))
end

local Decoder = nn.class('Decoder')
function Decoder:init(c)
  local ch, groups, lpb = c.block_out_channels, c.norm_num_groups, c.layers_per_block
  local n = #ch
  self:add('conv_in', nn.Conv2d(c.latent_channels, ch[n], 3, { padding = 1 }))
  self:add('mid_block', MidBlock(ch[n], groups))
  local ups = nn.ModuleList()
  local prev = ch[n]
  for i = 1, n do
    local cout = ch[n - i + 1]
    ups:append(Block(prev, cout, lpb + 1, groups, i < n and 'up' or nil))
    prev = cout
  end
  self:add('up_blocks', ups)
  self:add('conv_norm_out', nn.GroupNorm(groups, ch[1], { eps = 1e-6 }))
  self:add('conv_out', nn.Conv2d(ch[1], c.out_channels, 3, { padding = 1 }))
end
function Decoder:forward(z, run)
  local m = self._modules
  local x = run(m.mid_block, m.conv_in(z))
  for _, b in m.up_blocks:iter() do x = run(b, x) end
  return m.conv_out(m.conv_norm_out(x, 'silu'))
end

local AutoencoderKL = nn.class('AutoencoderKL')
M.AutoencoderKL = AutoencoderKL

local O = require 'craft.models.options'
local K, null = O.K, io_.null
-- Every key of diffusers 0.27.2's AutoencoderKL config, and three of later versions (see
-- craft.models.options).
M.OPTIONS = {
  in_channels = { K.posint, 3 },
  out_channels = { K.posint, 3 },
  down_block_types = { K.list(K.string), { 'DownEncoderBlock2D' }, each = { 'DownEncoderBlock2D' } },
  up_block_types = { K.list(K.string), { 'UpDecoderBlock2D' }, each = { 'UpDecoderBlock2D' } },
  block_out_channels = { K.list(K.posint), { 64 } },
  layers_per_block = { K.posint, 1 },
  act_fn = { K.string, 'silu', only = { 'silu', 'swish' } },
  latent_channels = { K.posint, 4 },
  norm_num_groups = { K.posint, 32 }, sample_size = { K.per_level(K.posint), 32,
  inert = 'the tiling size of diffusers\' tiled decoding, which craft does not do' },
  scaling_factor = { K.posnum, 0.18215 }, latents_mean = { K.list(K.number), nil, only = { null },
  note = 'SDXL-style latent statistics: craft\'s pipeline does not apply them' },
  latents_std = { K.list(K.number), nil, only = { null }, note = 'as latents_mean' },
  force_upcast = { K.bool, true, inert = 'craft computes in float32 always' },
  -- later diffusers
  shift_factor = { K.number, nil, only = { null } },
  use_quant_conv = { K.bool, true, only = { true } },
  use_post_quant_conv = { K.bool, true, only = { true } },
  mid_block_add_attention = { K.bool, true, only = { true } },
}

-- AutoencoderKL(config): config is the table of a diffusers vae/config.json (keys checked
-- against M.OPTIONS).
function AutoencoderKL:init(cfg)
  local where = O.where(cfg, 'AutoencoderKL config')
  local c = O.check(cfg, M.OPTIONS, where)
  local n = #c.block_out_channels
  if #c.down_block_types ~= n then
    O.refuse(where, 'down_block_types', c.down_block_types,
      ('has %d entries for %d block_out_channels'):format(#c.down_block_types, n))
  end
  if #c.up_block_types ~= n then
    O.refuse(where, 'up_block_types', c.up_block_types,
      ('has %d entries for %d block_out_channels'):format(#c.up_block_types, n))
  end
  for _, ch in ipairs(c.block_out_channels) do
    if ch % c.norm_num_groups ~= 0 then
      O.refuse(where, 'norm_num_groups', c.norm_num_groups,
        ('does not divide the %d channels of block_out_channels'):format(ch))
    end
  end
  self.config = c
  self.scaling_factor = c.scaling_factor
  self.gradient_checkpointing = false
  self:add('encoder', Encoder(c))
  self:add('decoder', Decoder(c))
  self:add('quant_conv', nn.Conv2d(2 * c.latent_channels, 2 * c.latent_channels, 1))
  self:add('post_quant_conv', nn.Conv2d(c.latent_channels, c.latent_channels, 1))
end

-- Runs one block, under craft.checkpoint when gradient checkpointing is on; large inputs get a
-- garbage collection first (see unet.lua: tensors are freed when Lua collects them).
function AutoencoderKL:runner()
  local function run(block, x)
    if x:numel() >= U.collect_above then collectgarbage() end
    return block(x)
  end
  if self.gradient_checkpointing and A.is_grad_enabled() then
    return function(block, x) return A.checkpoint(function(a) return run(block, a) end, x) end
  end
  return run
end

-- encode(x) -> mean, logvar of the latent distribution (logvar clamped to [-30, 20] as diffusers)
function AutoencoderKL:encode(x)
  local m = self._modules
  local moments = m.quant_conv(m.encoder(x, self:runner()))
  local n = moments:size(2) / 2
  return moments:narrow(2, 1, n), moments:narrow(2, n + 1, n):clamp(-30, 20)
end

-- sample(mean, logvar, noise_or_opts): mean + exp(logvar / 2) * noise; noise a tensor, or
-- {seed=, offset=} for Philox noise (the same seed gives the same latents everywhere).
function AutoencoderKL:sample(mean, logvar, noise)
  if not T.is_tensor(noise) then noise = T.randn(mean.shape, noise) end
  return mean + (logvar * 0.5):exp() * noise
end

function AutoencoderKL:decode(z)
  local m = self._modules
  return m.decoder(m.post_quant_conv(z), self:runner())
end

function AutoencoderKL:forward(x)
  local mean = self:encode(x)
  return self:decode(mean)
end

return M
