-- bench/bench_craft_step.lua: one CRAFT step at full size, timed phase by phase, with its peak
-- memory, and the same step in diffusers / transformers (bench/peer_craft_step.py, a DRaFT-1
-- step written as the peer) run in the same invocation.
--
--   craft bench/bench_craft_step.lua [--steps 3] [--batch 1] [--rank 8] [--cfg 7.5] [--size 512]
--                                    [--models DIR] [--tiny] [--no-peer] [--precision bf16|bf16-mixed]
--                                    [--precision-cache-mb N] [--json out.json]
--
-- The step is craft's CRAFT trainer itself (craft.train.craft.train, max_steps = 1): SD 1.5 at
-- 512x512 (64x64 latents), DDIM with classifier-free guidance for --steps steps, the gradient
-- only through the last (K = 1) and the VAE decode (checkpointed), the reward the four-dimension
-- CAS (prompt and checklist in CLIP ViT-L/14, probe and fidelity in DINOv2-B), backward into
-- rank --rank LoRA adapters on the UNet's attention projections (to_q, to_k, to_v, to_out.0), the
-- gradient clipped and one AdamW update. The per-step CAS logging is off (log_dims = false: a
-- metric, not the step). The phases are timed by wrapping the calls the trainer makes (the UNet,
-- the VAE decode, the reward, backward, the optimiser); "other" is the rest of the step.
-- Models: random weights at the real shapes from tools/make_fullsize.lua, written to --models
-- (default build/fullsize, or build/fullsize-tiny with --tiny) the first time, in a child
-- process, so their making does not count. The CAS is fitted and calibrated on a few synthetic
-- "real" images (smooth random fields; the values do not matter for timing), and the probe, the
-- feature bank, the calibration, the initial noise and the prompts the trainer picked are handed
-- to the peer, so both compute the same reward: its value is printed for both as a check.
-- Peak memory: the process's peak resident set during the step (VmHWM after clearing it once the
-- models are loaded; /proc/self/clear_refs), for craft and the peer alike.
-- --tiny: the same step on tools/make_fullsize.lua --tiny's toy models (seconds; a test runs it
-- with --no-peer). --precision bf16: the trainer runs under craft.with_precision('bf16'): the
-- no-grad sampling steps and the prompt encoding in bf16, the gradient window in fp32; the peer
-- runs those under torch.autocast(bfloat16). --precision bf16-mixed: the whole step's forward in
-- bf16 and the input gradients too (weight gradients fp32); the peer runs its whole forward under
-- torch.autocast(bfloat16).
local craft = require 'craft'
local B = dofile('bench/common.lua')
local models = require 'craft.models'
local encoders = require 'craft.encoders'
local CAS = require 'craft.cas'
local train = require 'craft.train.craft'
local common = require 'craft.train.common'
local optim = require 'craft.optim'
local T = require 'craft.tensor'

local args = B.args({ steps = 3, batch = 1, rank = 8, cfg = 7.5 }, { 'no-peer', 'tiny' })
-- --precision-cache-mb: the cap of the bf16 weight copies (craft.set_precision_cache_mb; default
-- 4096 MiB): lower trades memory for conversions, which the step's time and peak then show
if args.precision_cache_mb then craft.set_precision_cache_mb(args.precision_cache_mb) end
local DIR = args.models or (args.tiny and 'build/fullsize-tiny' or 'build/fullsize')

local shell_quote = B.shell_quote
local function exists(p) local f = io.open(p) if f then f:close() return true end return false end
local function status_kib(key)
  local f = io.open('/proc/self/status')
  if not f then return nil end
  local s = f:read('*a')
  f:close()
  return tonumber(s:match(key .. ':%s+(%d+)'))
end
local function clear_peak()
  local f = io.open('/proc/self/clear_refs', 'w')
  if f then f:write('5'); f:close() end
end

---------------------------------------------------------------- the models
local function ensure_models()
  local stamp = DIR .. '/make_fullsize.json'
  if exists(stamp) then
    local ok, s = pcall(craft.io.read_json, stamp)
    -- folders of another size or of an older version of the tool are written again
    if ok and s.tiny == (args.tiny or false) and s.version == dofile('tools/make_fullsize.lua').VERSION then
      return false
    end
  end
  local f = io.popen('readlink /proc/$PPID/exe')   -- this craft binary
  local exe = f:read('*l')
  f:close()
  local cmd = ('%s tools/make_fullsize.lua --out %s%s'):format(shell_quote(exe), shell_quote(DIR),
    args.tiny and ' --tiny' or '')
  io.stderr:write('bench_craft_step: writing the models: ' .. cmd .. '\n')
  if os.execute(cmd) ~= 0 then error('bench_craft_step: ' .. cmd .. ' failed', 0) end
  return true
end

-- the CAS's texts: two classes, two enriched prompts each, three checklist items with negations
local CLASSES = { 'normal', 'cardiomegaly' }
local PROMPTS = {
  normal = { 'a frontal chest x-ray with a normal cardiac silhouette and clear lungs',
    'chest radiograph, heart size within normal limits, cardiothoracic ratio below 0.5' },
  cardiomegaly = { 'a frontal chest x-ray with an enlarged cardiac silhouette',
    'chest radiograph showing cardiomegaly, cardiothoracic ratio about 0.6' } }
local CHECKLISTS = {
  normal = { { pos = 'narrow cardiac silhouette', neg = 'enlarged cardiac silhouette' },
    { pos = 'clear lung fields', neg = 'opacified lung fields' },
    { pos = 'sharp costophrenic angles', neg = 'blunted costophrenic angles' } },
  cardiomegaly = { { pos = 'enlarged cardiac silhouette', neg = 'narrow cardiac silhouette' },
    { pos = 'cardiothoracic ratio above 0.5', neg = 'cardiothoracic ratio below 0.5' },
    { pos = 'widened heart borders', neg = 'normal heart borders' } } }

-- n smooth random images [n, 3, S, S] in [0, 1]: an 8x8 random field upsampled
local function fake_reals(n, S, seed)
  local low = craft.rand({ n, 3, 8, 8 }, { seed = seed })
  return craft.F.interpolate(low, { size = { S, S }, mode = 'bilinear' })
end

---------------------------------------------------------------- phase timers
local now = craft.now
local phases = { encode = 0, sample = 0, sample_n = 0, last = 0, decode = 0, decode_n = 0, reward = 0,
  backward = 0, clip = 0, adamw = 0 }
-- the pool's peak in use (MiB) within each phase, and over the whole step (peaks.all)
local peaks = { all = 0 }
local function peak_since(key)
  local p = craft.memory(true).peak / 2 ^ 20
  if key then peaks[key] = math.max(peaks[key] or 0, p) end
  peaks.all = math.max(peaks.all, p)
end
local function timed(key, fn, count_key)
  return function(...)
    peak_since(nil)
    local t0 = now()
    local r = { fn(...) }
    phases[key] = phases[key] + (now() - t0)
    peak_since(key)
    if count_key then phases[count_key] = phases[count_key] + 1 end
    return unpack(r)
  end
end

local function install_timers(pipe, cas)
  local A = require 'craft.autograd'
  local unet_forward = pipe.unet.forward
  pipe.unet.forward = function(self, ...)
    peak_since(nil)
    local t0 = now()
    local r = { unet_forward(self, ...) }
    if A.is_grad_enabled() then phases.last = phases.last + (now() - t0); peak_since('last')
    else
      phases.sample, phases.sample_n = phases.sample + (now() - t0), phases.sample_n + 1
      peak_since('sample')
    end
    return unpack(r)
  end
  -- the decode's forward only: under checkpoint_vae, backward calls it again (counted in backward)
  local decode, in_backward = pipe.vae.decode, false
  pipe.vae.decode = function(...)
    if in_backward then return decode(...) end
    return timed('decode', decode, 'decode_n')(...)
  end
  pipe.encode_prompt = timed('encode', pipe.encode_prompt)
  cas.reward = timed('reward', cas.reward)
  local Tensor = T.Tensor
  local saved = { backward = Tensor.backward, AdamW = optim.AdamW, clip = optim.clip_grad_norm }
  local backward = timed('backward', saved.backward)
  Tensor.backward = function(...)
    in_backward = true
    local ok, err = pcall(backward, ...)
    in_backward = false
    if not ok then error(err, 0) end
  end
  optim.clip_grad_norm = timed('clip', saved.clip)
  optim.AdamW = function(...)
    local o = saved.AdamW(...)
    o.step = timed('adamw', o.step)
    return o
  end
  return function()
    Tensor.backward, optim.AdamW, optim.clip_grad_norm = saved.backward, saved.AdamW, saved.clip
  end
end

---------------------------------------------------------------- the peer
local function peer_run(spec_path, inputs_path)
  if args.no_peer then return nil, '--no-peer given' end
  local py, why = B.peer_ready({ 'torch', 'diffusers', 'transformers' })
  if not py then return nil, why end
  local autocast = ({ bf16 = 'sampling', ['bf16-mixed'] = 'all' })[args.precision or 'fp32'] or 'none'
  return B.run_peer(py, 'bench/peer_craft_step.py',
    ('--models %s --spec %s --inputs %s --threads %d --autocast %s'):format(shell_quote(DIR),
      shell_quote(spec_path), shell_quote(inputs_path), craft.num_threads(), autocast))
end

---------------------------------------------------------------- the run
local made = ensure_models()
local t0 = now()
local pipe = models.load(DIR .. '/sd15', { sampler = 'ddim', quiet = true })
local vlm = encoders.clip(DIR .. '/clip-vit-l14')
local vision = encoders.dinov2(DIR .. '/dinov2-base')
local load_s = now() - t0
local S = args.size or pipe.unet.config.sample_size * pipe:vae_scale_factor()
print(('CRAFT step%s: SD 1.5 UNet + VAE + CLIP text (%s), CLIP ViT-L/14 and DINOv2-B (%s), random weights; '
  .. '%dx%d, batch %d, DDIM %d steps (K = 1), cfg %g, LoRA rank %d, %d threads')
  :format(args.tiny and ' (--tiny models)' or '', DIR .. '/sd15', made and 'written now' or 'as found', S, S,
    args.batch, args.steps, args.cfg, args.rank, craft.num_threads()))

local cas = CAS.new { classes = CLASSES, prompts = PROMPTS, checklists = CHECKLISTS, vlm = vlm,
  vision = vision }
t0 = now()
local n_fit, n_cal = 4, 3
local fit_y, cal_y = {}, {}
for i = 1, 2 * n_fit do fit_y[i] = (i - 1) % 2 end
for i = 1, 2 * n_cal do cal_y[i] = (i - 1) % 2 end
cas:fit(fake_reals(2 * n_fit, S, 11), fit_y, { epochs = 50 })
cas:calibrate(fake_reals(2 * n_cal, S, 12), cal_y)
local cas_s = now() - t0

local recipe = { prompts = PROMPTS, classes = CLASSES, cas = cas, lora_rank = args.rank, steps = args.steps,
  grad_steps = 1, cfg = args.cfg, batch_size = args.batch, max_steps = 1, seed = 0, quiet = true,
  log_dims = false, lr = 1e-4, height = S, width = S }
-- what the trainer's step 1 draws (craft.train.craft: the prompts, then the noise's seed)
local g = common.rng(recipe.seed, 1, 1)
local prompts, ys = train.pick(recipe, CLASSES, g, args.batch)
local noise = common.noise_of(common.latent_shape(pipe, args.batch, recipe), g.seed(),
  common.shard(args.batch, 'bench'))

-- the blocks the loading left cached in the pool (each model's state dict, read and copied in) go
-- back to the system, so the step's peak is the step's own
collectgarbage(); collectgarbage()
require('craft.core').C.craft_pool_trim()
local rss_before = status_kib('VmRSS') / 1024
local load_hwm = status_kib('VmHWM') / 1024   -- the process's peak so far: loading and fitting
clear_peak()
craft.memory(true)
local restore = install_timers(pipe, cas)
t0 = now()
local res = args.precision and craft.with_precision(args.precision, train.train, pipe, recipe)
  or train.train(pipe, recipe)
local total = now() - t0
restore()
local hwm = status_kib('VmHWM') / 1024
peak_since(nil)
local pool_peak = peaks.all
local row = res.log[1]
-- the adapters' down weights, for the peer: the same adapters give the same gradient (up starts at
-- zero, so the step leaves down as drawn but for AdamW's decay, a factor 1 - 1e-6)
local inputs, n_lora, n_adapters = {}, 0, 0   -- what the peer reads (craft.io.save_safetensors below)
for _, np in ipairs(require('craft.models.lora').parameters(pipe.unet)) do
  n_lora = n_lora + np[2]:numel()
  local m = np[1]:match('^(.*)%.lora_A%.weight$')
  if m then inputs['lora_down.' .. m] = np[2]:detach(); n_adapters = n_adapters + 1 end
end
local mine = { total = total, encode = phases.encode, sample = phases.sample, sample_n = phases.sample_n,
  last = phases.last, decode = phases.decode, reward = phases.reward, backward = phases.backward,
  clip = phases.clip, adamw = phases.adamw, reward_value = row.reward, grad_norm = row.grad_norm,
  peak_rss_mib = hwm, rss_before_mib = rss_before, pool_peak_mib = pool_peak, n_lora_params = n_lora,
  n_adapters = n_adapters, pool_peaks = peaks, load_peak_rss_mib = load_hwm }
mine.other = total - (mine.encode + mine.sample + mine.last + mine.decode + mine.reward + mine.backward
  + mine.clip + mine.adamw)

-- the inputs the peer needs to compute the same reward
local spec_path, inputs_path = os.tmpname(), os.tmpname() .. '.safetensors'
local C = #CLASSES
local mu, sd = {}, {}
for i, d in ipairs(cas.calib.dims) do
  mu[i], sd[i] = {}, {}
  for c = 1, C do mu[i][c], sd[i][c] = cas.calib.mu[d][c], cas.calib.sd[d][c] end
end
inputs.noise, inputs.probe_weight, inputs.probe_bias = noise, cas.probe._params.weight, cas.probe._params.bias
inputs.bank_features, inputs.bank_labels = cas.bank.features, craft.tensor(cas.bank.labels)
inputs.calib_mu, inputs.calib_sd = craft.tensor(mu), craft.tensor(sd)
craft.io.save_safetensors(inputs_path, inputs)
craft.io.write_json(spec_path, { classes = CLASSES, prompts = PROMPTS, checklists = CHECKLISTS,
  picked_prompts = prompts, picked_labels = ys, dims = cas.calib.dims, k = cas.k,
  temperature = cas.temperature, steps = args.steps, cfg = args.cfg, rank = args.rank, batch = args.batch,
  lr = recipe.lr, weight_decay = common.COMMON.weight_decay, betas = common.COMMON.betas,
  adam_eps = common.COMMON.adam_eps, max_grad_norm = common.COMMON.max_grad_norm, height = S, width = S })

-- the peer runs with craft's models released
pipe, vlm, vision, cas, res = nil, nil, nil, nil, nil
-- LuaJIT's compiled traces hold the closures they call as constants (the trainer's step closes
-- over the pipeline and the CAS): flushing them lets the collector free the models
jit.flush()
collectgarbage(); collectgarbage()
require('craft.core').C.craft_cpu_bf16_cache_clear()
require('craft.core').C.craft_pool_trim()
local peer, why = peer_run(spec_path, inputs_path)
os.remove(spec_path); os.remove(inputs_path)

print(('  setup: models loaded in %.1f s, CAS fitted and calibrated on %d + %d synthetic images in %.1f s')
  :format(load_s, 2 * n_fit, 2 * n_cal, cas_s))
local function line(what, a, b, key)
  local pk = key and peaks[key] and ('   pool peak %6.0f MiB'):format(peaks[key]) or ''
  if b then
    print(('  %-40s craft %8.2f s   torch %8.2f s   ratio %5.2fx%s'):format(what, a, b,
      a > 0 and b / a or 0 / 0, pk))
  else print(('  %-40s craft %8.2f s%s'):format(what, a, pk)) end
end
local p = peer or {}
line('prompt encoding (no grad)', mine.encode, p.encode, 'encode')
line(('sampling, %d UNet calls without a graph'):format(mine.sample_n), mine.sample, p.sample, 'sample')
line('last step, UNet forward with a graph', mine.last, p.last, 'last')
line('VAE decode forward (checkpointed)', mine.decode, p.decode, 'decode')
line('reward: CAS, 4 dimensions, forward', mine.reward, p.reward, 'reward')
line('backward (VAE recomputed, UNet ckpt)', mine.backward, p.backward, 'backward')
line('gradient clipping + AdamW', mine.clip + mine.adamw, peer and (p.clip + p.adamw), 'adamw')
line('other (scheduler, LoRA attach, ...)', mine.other, p.other)
line('one CRAFT step, total', mine.total, p.total)
local function mem(what, a, b)
  print(('  %-40s craft %6.0f MiB%s'):format(what, a,
    b and ('   torch %6.0f MiB   ratio %5.2fx'):format(b, b / a) or ''))
end
mem('resident before the step (weights)', mine.rss_before_mib, p.rss_before_mib)
mem('peak resident during the step', mine.peak_rss_mib, p.peak_rss_mib)
mem('peak resident while loading (before)', mine.load_peak_rss_mib, p.load_peak_rss_mib)
print(('  %-40s craft %6.0f MiB (the pool\'s peak in use; goal: step peak <= 12 GiB = 12288 MiB)')
  :format('', mine.pool_peak_mib))
local cinfo = craft.precision_info().cache
print(('  %-40s craft %6d MiB cap (%s)'):format('bf16 weight copies', cinfo.cap_mb,
  args.precision_cache_mb and '--precision-cache-mb' or 'CRAFT_BF16_CACHE_MB or the default'))
print(('  %-40s craft %.6g   torch %s'):format('reward (mean over the batch)', mine.reward_value,
  peer and ('%.6g (relative difference %.2g)'):format(p.reward_value,
  math.abs(p.reward_value - mine.reward_value) / math.max(1e-12, math.abs(mine.reward_value))) or '-'))
print(('  %-40s craft %.6g   torch %s'):format('gradient norm before clipping', mine.grad_norm,
  peer and ('%.6g (relative difference %.2g)'):format(p.grad_norm,
  math.abs(p.grad_norm - mine.grad_norm) / math.max(1e-30, math.abs(mine.grad_norm))) or '-'))
print(('  %-40s craft %d adapters, %d parameters%s'):format('LoRA, rank ' .. args.rank, n_adapters, n_lora,
  peer and ('   torch %d adapters (%d down weights from craft), %d parameters'):format(p.n_adapters or 0,
  p.n_down_from_craft or 0, p.n_lora_params or 0) or ''))
if peer then
  print(('  (ratio: torch / craft, above 1 means craft is faster or smaller; torch %s, diffusers %s, '
    .. 'transformers %s, %d threads)'):format(tostring(p.torch), tostring(p.diffusers),
    tostring(p.transformers),
    p.threads or 0))
else
  print('  peer skipped: ' .. tostring(why))
end
if args.json then
  craft.io.write_json(args.json, { tiny = args.tiny or false, steps = args.steps, batch = args.batch,
    rank = args.rank, precision = args.precision, precision_cache_mb = cinfo.cap_mb, craft = mine,
    peer = peer,
    peer_skipped = (not peer) and tostring(why) or nil })
end
