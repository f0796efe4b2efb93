-- examples/07_custom_baseline_method.lua: a new baseline method is one file plus one recipe line.
--
--   craft examples/07_custom_baseline_method.lua [--out runs/examples/07] [--smoke]
--
-- The file: examples/extensions/best_prompt.lua (a table with kind, needs_reward and adapt; see
-- craft.methods). The line: an entry in the recipe's method list whose kind is that module. The
-- experiment runs it like the built-in methods (per training seed, in worker processes when
-- there are several), grades its images with the judges and compares it in the table.
local args = require('lib.args')(arg, { out = 'runs/examples/07', smoke = false },
  'craft examples/07_custom_baseline_method.lua [--out DIR] [--smoke]')
local out = args.out

local cfg = require('lib.phantoms') { modality = 'cxr', shots = 8, out = out, smoke = true }
cfg.name, cfg.title = 'best prompt', 'A custom baseline: the reward\'s favourite prompt'
cfg.methods = require('lib.methods').list { smoke = true, only = { base = true } }   -- Base + enriched

-- the one recipe line:
cfg.methods[#cfg.methods + 1] = { name = 'Best prompt', kind = require 'extensions.best_prompt',
  baseline = true, per_prompt = 2, steps = 4 }

cfg.train_seeds, cfg.jobs = { 0 }, 1
local res = require('craft.experiment').run(cfg)
local row = res.rows[2]
print(('%s: judge tail %.1f%%, reward tail %.1f%%, %d images generated to choose the prompts')
  :format(row.method, 100 * row.judge_tail, 100 * row.reward_tail, row.train_images or 0))
assert(row.method == 'Best prompt' and row.judge_tail ~= nil, 'the new method was graded')
print('example ok: a custom baseline method')
