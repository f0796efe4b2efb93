-- examples/06_custom_cas_dimension.lua: a new CAS dimension is one file plus one recipe line.
--
--   craft examples/06_custom_cas_dimension.lua [--out runs/examples/06] [--smoke]
--
-- The file: examples/extensions/sharpness.lua (a table with raw, missing and, here, fit; see
-- craft.cas.dims). The line: the reward suite's CAS lists it in `dims`, next to the built-in
-- four. The reward CRAFT ascends then includes it (weight 1, like the others; a reward spec's
-- weights can say otherwise), the reward's per-image scores and CRAFT's log carry it
-- (cas_sharpness), and recipes/ablation.lua would drop it in turn like the others.
local craft = require 'craft'
local args = require('lib.args')(arg, { out = 'runs/examples/06', smoke = false },
  'craft examples/06_custom_cas_dimension.lua [--out DIR] [--smoke]')
local out = args.out

-- the quickstart's phantom splits, reward (tiny CLIP + DINOv2) and judges (recipes/lib/phantoms.lua)
local cfg = require('lib.phantoms') { modality = 'cxr', shots = 8, out = out, smoke = true }
cfg.name, cfg.title = 'sharpness dimension', 'CRAFT with a fifth CAS dimension'

cfg.reward.cas.dims = { require 'extensions.sharpness' }          -- the one recipe line

cfg.methods = {
  { name = 'Base + enriched', kind = 'base', baseline = true },
  { name = 'CRAFT', kind = 'craft',
    recipe = { max_steps = args.smoke and 3 or 50, steps = 4, grad_steps = 2, cfg = 3,
      batch_size = 2, lr = 1e-3, lora_rank = 4, reward = { cap = 0.5, transform = 'log' } } },
}
cfg.train_seeds, cfg.jobs = { 0 }, 1
local res = require('craft.experiment').run(cfg)

-- the reward's CAS has five dimensions, and CRAFT's log follows the new one
print('reward dimensions: ' .. table.concat(res.reward.dims, ', '))
local log = craft.io.read_csv(out .. '/craft/s0/craft/log.csv')
local has = false
for _, c in ipairs(log) do has = has or c == 'cas_sharpness' end
print(('CRAFT log columns include cas_sharpness: %s'):format(tostring(has)))
assert(res.reward.dims[5] == 'sharpness' and has, 'the new dimension is in the reward')
print('example ok: a custom CAS dimension')
