-- bench/tiny_unet.lua: the tiny class-conditional DDPM UNet of ../shared/bench/torch_tiny_unet.py
-- (same architecture, batch, schedule and optimiser), timed in craft, with the PyTorch peer run
-- in the same invocation; prints both and the ratios.
--   craft bench/tiny_unet.lua [--batch 16] [--steps 10] [--warmup 3] [--no-peer]
--                             [--device cl:0] [--size 32] [--json out.json]
-- --device: the model, its batches and the optimiser state on that device, each timed step ending
-- with a device synchronize (the peer here stays on PyTorch's CPU; bench/gpu.sh runs
-- bench/peer_tiny_unet.py on CUDA instead). --size: image side (a multiple of 4; bench/gpu.sh
-- --dry-run uses 8). --json: craft's figures for bench/gpu.sh.
local craft = require 'craft'
local nn, F = craft.nn, craft.F

local args = dofile('bench/common.lua').args({ batch = 16, steps = 10, warmup = 3, size = 32 }, { 'no-peer' })

local ResBlock = nn.class('ResBlock')
function ResBlock:init(cin, cout, emb)
  self:add('norm1', nn.GroupNorm(32, cin))
  self:add('conv1', nn.Conv2d(cin, cout, 3, { padding = 1 }))
  self:add('emb', nn.Linear(emb, cout))
  self:add('norm2', nn.GroupNorm(32, cout))
  self:add('conv2', nn.Conv2d(cout, cout, 3, { padding = 1 }))
  if cin ~= cout then self:add('skip', nn.Conv2d(cin, cout, 1)) end
end
function ResBlock:forward(x, emb)
  local m = self._modules
  local h = m.conv1(m.norm1(x, 'silu'))
  local e = m.emb(emb:silu())
  h = h + e:reshape(e:size(1), e:size(2), 1, 1)
  h = m.conv2(m.norm2(h, 'silu'))
  return (m.skip and m.skip(x) or x) + h
end

local SelfAttention = nn.class('SelfAttention')
function SelfAttention:init(ch, heads)
  self.heads = heads or 4
  self:add('norm', nn.GroupNorm(32, ch))
  self:add('qkv', nn.Conv2d(ch, 3 * ch, 1))
  self:add('proj', nn.Conv2d(ch, ch, 1))
end
function SelfAttention:forward(x)
  local b, c, h, w = x:size(1), x:size(2), x:size(3), x:size(4)
  local d = c / self.heads
  local qkv = self._modules.qkv(self._modules.norm(x)):reshape(b, 3, self.heads, d, h * w)
  local q = qkv:select(2, 1):transpose(3, 4)
  local k = qkv:select(2, 2):transpose(3, 4)
  local v = qkv:select(2, 3):transpose(3, 4)
  local o = F.sdpa(q, k, v)                       -- [b, heads, hw, d]
  o = o:transpose(3, 4):reshape(b, c, h, w)
  return x + self._modules.proj(o)
end

local Down = nn.class('Down')
function Down:init(ch) self:add('conv', nn.Conv2d(ch, ch, 3, { stride = 2, padding = 1 })) end
function Down:forward(x) return self._modules.conv(x) end
local Up = nn.class('Up')
function Up:init(ch) self:add('conv', nn.Conv2d(ch, ch, 3, { padding = 1 })) end
function Up:forward(x) return self._modules.conv(F.interpolate(x, { scale_factor = 2 })) end

local TinyUNet = nn.class('TinyUNet')
function TinyUNet:init()
  local chans, blocks, emb, tdim = { 64, 128, 128 }, 2, 256, 64
  self.tdim = tdim
  self:add('temb', nn.Sequential(nn.Linear(tdim, emb), nn.SiLU(), nn.Linear(emb, emb)))
  self:add('cemb', nn.Embedding(11, emb))
  self:add('inp', nn.Conv2d(3, chans[1], 3, { padding = 1 }))
  local down, skip, ch = nn.ModuleList(), { chans[1] }, chans[1]
  for lvl, c in ipairs(chans) do
    for _ = 1, blocks do down:append(ResBlock(ch, c, emb)); ch = c; skip[#skip + 1] = ch end
    if lvl ~= #chans then down:append(Down(ch)); skip[#skip + 1] = ch end
  end
  self:add('down', down)
  self:add('mid1', ResBlock(ch, ch, emb))
  self:add('attn', SelfAttention(ch))
  self:add('mid2', ResBlock(ch, ch, emb))
  local up = nn.ModuleList()
  for lvl = #chans, 1, -1 do
    local c = chans[lvl]
    for _ = 1, blocks + 1 do up:append(ResBlock(ch + table.remove(skip), c, emb)); ch = c end
    if lvl ~= 1 then up:append(Up(ch)) end
  end
  self:add('up', up)
  self:add('out', nn.Sequential(nn.GroupNorm(32, ch), nn.SiLU(), nn.Conv2d(ch, 3, 3, { padding = 1 })))
end
function TinyUNet:forward(x, t, y)
  local m = self._modules
  local emb = m.temb(F.timestep_embedding(t, self.tdim, { flip_sin_to_cos = true, downscale_freq_shift = 0 })) + m.cemb(y)
  local h = m.inp(x)
  local hs = { h }
  for _, blk in m.down:iter() do
    if blk._name == 'ResBlock' then h = blk(h, emb) else h = blk(h) end
    hs[#hs + 1] = h
  end
  h = m.mid2(m.attn(m.mid1(h, emb)), emb)
  for _, blk in m.up:iter() do
    if blk._name == 'ResBlock' then h = blk(craft.cat({ h, table.remove(hs) }, 2), emb) else h = blk(h) end
  end
  return m.out(h)
end

local function now()
  return craft.C.craft_now and tonumber(craft.C.craft_now()) or os.clock()
end
local device = args.device or craft.device.default()
local function sync() if device ~= 'cpu' then craft.device.synchronize(device) end end
local function median_time(fn, n, warmup)
  for _ = 1, warmup do fn(); sync() end
  local ts = {}
  for k = 1, n do local t0 = now(); fn(); sync(); ts[k] = now() - t0 end
  table.sort(ts)
  return ts[math.floor((n + 1) / 2)] * 1e3, ts[1] * 1e3, ts[n] * 1e3
end

craft.manual_seed(0)
local B, S = args.batch, args.size
local model = TinyUNet()
if device ~= 'cpu' then model:to(device) end
local opt = craft.optim.AdamW(model, { lr = 2e-4, weight_decay = 0.01 })
local T = 1000
local betas = {}
local abar, acc = {}, 1
for k = 0, T - 1 do acc = acc * (1 - (1e-4 + (0.02 - 1e-4) * k / (T - 1))); abar[k] = acc end
local x0 = craft.randn({ B, 3, S, S }):clamp(-1, 1):to(device)
local y = craft.tensor((function() local r = {} for k = 1, B do r[k] = (k * 7) % 11 end return r end)(), { dtype = 'i64' }):to(device)
local function batch()
  local tv, ab = {}, {}
  for k = 1, B do tv[k] = math.random(0, T - 1); ab[k] = abar[tv[k]] end
  local eps = craft.randn({ B, 3, S, S }):to(device)
  local abt = craft.tensor(ab):reshape(B, 1, 1, 1):to(device)
  return abt:sqrt() * x0 + (1 - abt):sqrt() * eps, craft.tensor(tv):to(device), eps
end
local xt, tt = batch()
local res = { params = model:num_parameters() }
model:eval()
res.infer_fwd_ms = median_time(function() craft.no_grad(function() return model(xt, tt, y) end) end, args.steps, args.warmup)
model:train()
local losses = {}
res.train_step_ms = median_time(function()
  local xb, tb, eb = batch()
  local loss = F.mse_loss(model(xb, tb, y), eb)
  opt:zero_grad(); loss:backward(); opt:step()
  losses[#losses + 1] = loss:item()
end, args.steps, args.warmup)
res.peak_mib = craft.memory().peak / 2 ^ 20

print(('tiny UNet (%.2f M params, batch %d, 3x%dx%d), %d threads, device %s'):format(res.params / 1e6, B, S, S, craft.num_threads(), device))
if args.json then
  craft.io.write_json(args.json, { device = device, batch = B, size = S, params = res.params,
    infer_fwd_ms = res.infer_fwd_ms, train_step_ms = res.train_step_ms, loss_first_last = { losses[1], losses[#losses] } })
end
local peer
if not args.no_peer and S == 32 then   -- torch_tiny_unet.py is 32x32 only
  local tmp = os.tmpname()
  local cmd = ("'%s' %s --batch %d --steps %d --warmup %d --threads %d --tuned-malloc --json %s > /dev/null 2>&1"):format(
    dofile('bench/common.lua').peer_python(), os.getenv('CRAFT_PEER') or '../shared/bench/torch_tiny_unet.py',
    B, args.steps, args.warmup, craft.num_threads(), tmp)
  if os.execute(cmd) == 0 then
    local f = io.open(tmp); local txt = f and f:read('*a'); if f then f:close() end
    peer = txt and craft.io and craft.io.read_json(tmp)
  end
  os.remove(tmp)
end
local function row(name, mine, theirs)
  if theirs then
    print(('%-22s craft %8.1f ms   torch %8.1f ms   ratio %.2fx'):format(name, mine, theirs, theirs / mine))
  else
    print(('%-22s craft %8.1f ms   (no peer)'):format(name, mine))
  end
end
row('inference forward', res.infer_fwd_ms, peer and peer.infer_fwd_ms[1])
row('train step (AdamW)', res.train_step_ms, peer and peer.train_step_ms[1])
print(('peak pool memory %.0f MiB%s'):format(res.peak_mib, peer and (', torch peak RSS %.0f MiB'):format(peer.peak_rss_mib) or ''))
print(('losses first %.4f last %.4f'):format(losses[1], losses[#losses]))
