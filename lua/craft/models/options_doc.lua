-- craft.models.options_doc: docs/model_options.md, made from the key tables the loaders check
-- configs against (craft.models.options), so the page cannot drift from the code:
--   ./build/craft -e "io.write(require('craft.models.options_doc').markdown())" > docs/model_options.md
local O = require 'craft.models.options'

local M = {}

-- the tables, in the page's order: { title, options }
function M.LIST()
  local U, V = require 'craft.models.unet', require 'craft.models.vae'
  local clip, dino, resnet = require 'craft.models.clip', require 'craft.models.dinov2', require 'craft.models.resnet'
  local S = require 'craft.models.schedulers'
  return {
    { 'UNet2DConditionModel (unet/config.json)', U.OPTIONS },
    { 'AutoencoderKL (vae/config.json)', V.OPTIONS },
    { 'CLIPTextConfig (text_encoder/config.json, a CLIPConfig\'s text_config)', clip.TEXT_OPTIONS },
    { 'CLIPVisionConfig (a CLIPConfig\'s vision_config)', clip.VISION_OPTIONS },
    { 'CLIPConfig (the top level of a CLIPModel config.json)', clip.CLIP_OPTIONS },
    { 'Dinov2Config', dino.OPTIONS },
    { 'ResNetConfig', resnet.OPTIONS },
    { 'DDIMScheduler (scheduler/scheduler_config.json)', S.DDIMScheduler.OPTIONS },
    { 'DDPMScheduler', S.DDPMScheduler.OPTIONS },
    { 'PNDMScheduler', S.PNDMScheduler.OPTIONS },
    { 'EulerDiscreteScheduler', S.EulerDiscreteScheduler.OPTIONS },
    { 'EulerAncestralDiscreteScheduler', S.EulerAncestralDiscreteScheduler.OPTIONS },
    { 'DPMSolverMultistepScheduler', S.DPMSolverMultistepScheduler.OPTIONS },
  }
end
-- title -> options
function M.TABLES()
  local r = {}
  for _, e in ipairs(M.LIST()) do r[e[1]] = e[2] end
  return r
end

local INTRO = [[
# Model options: what craft implements and what it refuses

Every loader of the model zoo (`lua/craft/models/`) checks each key of the config it reads
against one table of the keys its reference class knows (diffusers 0.27.2, transformers 4.38.2):

- a key with a value craft implements is used;
- a key marked *no effect* is accepted whatever its (well-typed) value: it does not change what
  craft computes (the reason is given);
- any other value is **refused** with one line naming the file, the key and the value, e.g.
  `unet/config.json: downsample_padding = 2 is not implemented by craft (implemented: 0, 1)`;
- a value of the wrong type is refused the same way (`... = "two" is not valid (layers_per_block
  must be an integer >= 1 or a list of integers >= 1)`); JSON `null` means the default where
  the reference's default is None, and is refused elsewhere;
- a key the table does not know is listed once per file on stderr as ignored
  (`craft: note: <file>: 1 key(s) craft does not know, ignored: <key>`); keys starting with `_`
  (`_class_name`, `_diffusers_version`) are bookkeeping and pass silently.

Values that are valid alone but not together (lists of the wrong length, channels that
`norm_num_groups` does not divide, ...) are refused with the same kind of line.

Generic transformers keys accepted with no effect (PretrainedConfig's own and the generation
settings older versions wrote): ]] .. table.concat((function()
  local r = {}
  for i, k in ipairs(O.GENERIC_INERT) do r[i] = '`' .. k .. '`' end
  return r
end)(), ', ') .. [[; `pruned_heads` is accepted only when empty.

Schedulers: `scheduler_config.json`'s `_class_name` chooses the class (DDIMScheduler,
DDPMScheduler, PNDMScheduler, EulerDiscreteScheduler, EulerAncestralDiscreteScheduler,
DPMSolverMultistepScheduler); another class is refused at load, and
`models.load(dir, {sampler = 'ddim'})` or `pipe:generate{sampler = 'euler'}` samples with one of
these built from that config, as diffusers' `Class.from_config(pipe.scheduler.config)` does (keys
the new class does not have are dropped silently there, as in diffusers).

This page is generated from the tables:
`./build/craft -e "io.write(require('craft.models.options_doc').markdown())" > docs/model_options.md`
(`tests/lua/test_models_unet_options.lua` checks that it is current).

]]

function M.markdown()
  local parts = { INTRO }
  for _, e in ipairs(M.LIST()) do parts[#parts + 1] = O.markdown(e[1], e[2]) .. '\n' end
  return table.concat(parts)
end

return M
