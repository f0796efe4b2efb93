-- craft.experiment.suites: the two scorers of an experiment (METHOD.md, "Evaluation integrity").
--   reward(cfg): the CAS the trainers ascend: the reward VLM (dimensions 1-2) and vision encoder
--     (3-4), its probe and kNN bank fitted on splits.reward_fit, standardised and thresholded on
--     splits.calibration. Reported as the optimised quantity only.
--   judge(cfg): the headline's CAS: the judge's own encoder (another model family; the probe
--     and fidelity dimensions), fitted on splits.judge_fit, standardised and thresholded on
--     splits.judge_calibration; on phantoms the oracle judges too (cfg.judge.oracle).
-- Both are built once per process and cached on cfg.
local M = {}

local function merge(a, b)
  local r = {}
  for k, v in pairs(a or {}) do r[k] = v end
  for k, v in pairs(b or {}) do r[k] = v end
  return r
end

function M.reward(cfg)
  if cfg._reward_cas then return cfg._reward_cas end
  local s, K = cfg.splits, cfg.knowledge
  local enc = cfg.reward
  local o = merge({ classes = cfg.classes, vlm = enc.vlm, checklist_vlm = enc.checklist_vlm, vision = enc.vision,
    prompts = K.prompts, checklists = K.checklists }, enc.cas)
  local t = enc.vlm and enc.vlm.temperature
  if t and not o.temperature then o.temperature = { prompt = t, checklist = t } end
  local cas = require('craft.cas').new(o)
  cas.probe_report = cas:fit(s.reward_fit.images, s.reward_fit.labels,
    { val_images = s.calibration.images, val_labels = s.calibration.labels })
  cas:calibrate(s.calibration.images, s.calibration.labels)
  cfg._reward_cas = cas
  return cas
end

function M.judge(cfg)
  if cfg._judge_cas then return cfg._judge_cas end
  local s, j = cfg.splits, cfg.judge
  local weights = (j.cas and j.cas.weights) or { prompt = j.vlm and 1 or 0, checklist = j.vlm and 1 or 0, probe = 1, fidelity = 1 }
  local o = merge({ classes = cfg.classes, vlm = j.vlm, vision = j.vision, weights = weights,
    prompts = cfg.knowledge.prompts, checklists = cfg.knowledge.checklists }, j.cas)
  o.weights, o.reward_cap = weights, false
  local cas = require('craft.cas').new(o)
  cas.probe_report = cas:fit(s.judge_fit.images, s.judge_fit.labels,
    { val_images = s.judge_calibration.images, val_labels = s.judge_calibration.labels })
  cas:calibrate(s.judge_calibration.images, s.judge_calibration.labels)
  cfg._judge_cas = cas
  return cas
end

return M
