-- bench/gpu_table.lua DIR [--append FILE]: the side-by-side table of one bench/gpu.sh run, from the
-- files it left in DIR (meta.txt: key<TAB>value lines; tiny_craft.json, tiny_peer.json,
-- sd_craft.json, sd_peer.json when those steps ran). Prints markdown; --append also appends it to FILE.
local craft = require 'craft'

local dir, append = arg[1], nil
local k = 2
while arg[k] do
  if arg[k] == '--append' then append = arg[k + 1]; k = k + 1 end
  k = k + 1
end
assert(dir, 'usage: craft bench/gpu_table.lua DIR [--append FILE]')

local meta, order = {}, {}
for line in io.lines(dir .. '/meta.txt') do
  local key, v = line:match('^([^\t]+)\t(.*)$')
  if key then
    if meta[key] == nil then order[#order + 1] = key end
    meta[key] = v
  end
end
local function load(name)
  local path = dir .. '/' .. name .. '.json'
  local f = io.open(path)
  if not f then return nil end
  f:close()
  local ok, t = pcall(craft.io.read_json, path)
  return ok and t or nil
end
local tc, tp, sc, sp = load('tiny_craft'), load('tiny_peer'), load('sd_craft'), load('sd_peer')

local function ms(v)
  if not v then return nil end
  if v >= 1000 then return ('%.2f s'):format(v / 1000) end
  return ('%.1f ms'):format(v)
end
local function why(step)
  local f = meta['failed ' .. step]
  if f then return 'failed: ' .. f end
  if step == 'sd_peer' and meta.sd_peer_skipped then return 'skipped: ' .. meta.sd_peer_skipped end
  if step:match('_peer$') and not meta.peer then return 'skipped: no PyTorch with the device' end
  return 'not run'
end
local out = {}
local function p(s) out[#out + 1] = s end
local dry = meta.mode == 'dry-run'
local dev = meta.bench_device or '?'
p(('### %s: craft on %s against PyTorch, %s%s'):format(dry and 'bench/gpu.sh --dry-run (PoCL, tiny shapes: not a GPU figure)' or 'GPU run',
  dev, meta.date or '?', dry and '' or ' (`sh bench/gpu.sh`)'))
p('')
p(('- device %s: %s'):format(dev, meta['device ' .. dev] or '?'))
p(('- peer: %s; host CPU: %s'):format(meta.peer or 'none', meta.cpu or '?'))
local tests = {}
for _, key in ipairs(order) do
  local name = key:match('^test (.+)$')
  if name then tests[#tests + 1] = name .. ' ' .. meta[key] end
end
if #tests > 0 then p('- OpenCL op tests: ' .. table.concat(tests, '; ')) end
p(('- shapes: tiny UNet `%s`; SD 1.5 UNet `%s`'):format(meta.tiny_args or '?', meta.sd_args or '?'))
p('')
p(('| | craft, OpenCL %s | PyTorch (%s) | ratio (torch / craft) |'):format(dev, tp and tp.device or sp and sp.device or 'peer'))
p('|---|---|---|---|')
local function row(what, mine, theirs, mine_step, their_step)
  local a = ms(mine) or ('— (' .. why(mine_step) .. ')')
  local b = ms(theirs) or ('— (' .. why(their_step) .. ')')
  local r = (mine and theirs) and ('%.2fx'):format(theirs / mine) or ''
  p(('| %s | %s | %s | %s |'):format(what, a, b, r))
end
local tshape = tc and ('batch %d, 3x%dx%d'):format(tc.batch, tc.size, tc.size) or ''
row('tiny UNet inference forward ' .. tshape, tc and tc.infer_fwd_ms, tp and tp.infer_fwd_ms, 'tiny_craft', 'tiny_peer')
row('tiny UNet train step (AdamW)', tc and tc.train_step_ms, tp and tp.train_step_ms, 'tiny_craft', 'tiny_peer')
local sshape = sc and (sc.tiny and '(--tiny config)' or '(860 M params, random weights)') or ''
row('SD 1.5 UNet forward, no grad ' .. sshape, sc and sc.forward_ms, sp and sp.forward_ms, 'sd_craft', 'sd_peer')
row('SD 1.5 UNet forward + backward, checkpointed', sc and sc.forward_backward_ms, sp and sp.forward_backward_ms, 'sd_craft', 'sd_peer')
if tc and tc.loss_first_last and tp and tp.loss_first_last then
  p('')
  p(('Tiny-UNet losses, first / last step: craft %.4f / %.4f, torch %.4f / %.4f (different random streams: '
    .. 'the same order of magnitude is what to check).'):format(tc.loss_first_last[1], tc.loss_first_last[2],
    tp.loss_first_last[1], tp.loss_first_last[2]))
end
local text = table.concat(out, '\n') .. '\n'
io.write(text)
if append then
  local f = assert(io.open(append, 'a'))
  f:write('\n' .. text)
  f:close()
end
