-- recipes/lib/real_set.lua: the CRAFT comparison on a real labelled data set (recipes/
-- pneumoniamnist.lua, recipes/ham10000.lua, recipes/study.lua). run(set_name, args):
--   args = {data, shots, out, size, smoke, tune, seeds, budget, jobs, reuse, models, pipeline,
--           clip, dinov2, judge}
-- The splits are the set's fixed parts (recipes/lib/real_sets.lua): few-shot (the first `shots`
-- per class of the few-shot pool), reward-fit and judge-fit from the training split,
-- calibration and judge-calibration from the validation split, test from the test split (a
-- tuning part of the training split with --tune). The reward (tiny CLIP + DINOv2) and the judge
-- (tiny ResNet) are the set's stand-ins (models/<set>/, recipes/pretrain/real_standins.lua),
-- pretrained each on its own pool of the training split; --clip / --dinov2 / --judge bring real
-- checkpoints instead. There is no oracle for real images.
local craft = require 'craft'
local repo = require 'craft.repo'
local E = craft.encoders
local R = require 'lib.real_sets'

local M = {}

M.DEFAULTS = { shots = 16, size = 32, smoke = false, tune = false, seeds = '', budget = 0, jobs = 0,
  reuse = false,
  pipeline = repo.path('models/builtin/sd-tiny'), models = '', clip = '', dinov2 = '', judge = '' }

local function first_n(ds, per_class)
  return R.first_per_class(ds, per_class)
end

-- config(set_name, args) -> a craft.experiment config without methods / seeds
function M.config(set_name, args)
  local set = R.sets[set_name] or error('real_set: unknown set ' .. tostring(set_name), 0)
  local K = require('knowledge').get(set.knowledge)
  local smoke = args.smoke
  local function cut(p) return smoke and first_n(p, 16) or p end
  local models = args.models ~= '' and args.models or repo.path(set.models)
  local function pick(v, d) return (v and v ~= '') and v or d end
  for _, part in ipairs { { args.clip, 'clip' }, { args.dinov2, 'dinov2' }, { args.judge, 'resnet' } } do
    local dir = pick(part[1], models .. '/' .. part[2])
    local f = io.open(dir .. '/config.json')
    if f then f:close() else
      error(('%s: no model at %s. The stand-ins for %s are made by ./build/craft '
        .. 'recipes/pretrain/real_standins.lua set=%s (about 25 minutes on one thread); or bring '
        .. 'checkpoints with --clip, --dinov2 and --judge'):format(set_name, dir, set.title, set.name), 0)
    end
  end
  local parts = R.parts(set, args.data ~= '' and args.data or set.data, args.size)
  local generator = E.describe('generator', pick(args.pipeline, M.DEFAULTS.pipeline) .. '/unet', {})
  return {
    out = args.out, pipeline = pick(args.pipeline, M.DEFAULTS.pipeline),
    generator = { name = 'generator', trained_on = generator.trained_on },
    classes = K.classes, knowledge = K,
    splits = { few_shot = first_n(parts.few_shot_pool, args.shots), reward_fit = cut(parts.reward_fit),
      calibration = cut(parts.calibration), judge_fit = cut(parts.judge_fit),
      judge_calibration = cut(parts.judge_calibration), test = cut(args.tune and parts.tune or parts.test) },
    reward = { vlm = E.clip(pick(args.clip, models .. '/clip')),
    vision = E.dinov2(pick(args.dinov2, models .. '/dinov2')),
      cas = { q = 0.10, k = 5 } },
    judge = { vision = E.resnet(pick(args.judge, models .. '/resnet')), cas = { q = 0.10, k = 5 } },
    tune = args.tune or false,
    generate = { per_class = smoke and 4 or 24, steps = smoke and 4 or 10, cfg = 3.0 },
  }
end

function M.run(set_name, args, spec)
  local lib = require 'lib.methods'
  local run = require 'lib.run'
  local cfg = M.config(set_name, args)
  for k, v in pairs(spec or {}) do cfg[k] = v end
  cfg.methods = cfg.methods or lib.list { smoke = args.smoke, budget = args.budget > 0 and args.budget
    or nil }
  cfg.train_seeds = run.seeds(args, args.smoke and { 0, 1 } or { 0, 1, 2 })
  cfg.jobs, cfg.reuse = run.jobs(args), args.reuse
  return require('craft.experiment').run(cfg)
end

return M
