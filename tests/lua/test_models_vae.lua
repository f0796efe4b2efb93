-- AutoencoderKL against diffusers (tests/fixtures/make_model_fixtures.py): encode (mean, logvar),
-- decode and its gradient, checkpointed decode equal to plain, seeded sampling, old key names.
local craft = require 'craft'
local io_ = require 'craft.io'
local models = require 'craft.models'
local keymap = require 'craft.models.keymap'
local T = {}

local DIR = 'tests/fixtures/models/tiny_sd/vae'
local c = io_.load_safetensors('tests/fixtures/models/cases/vae.safetensors')
local TOL = 1e-4

function T.encode_decode_and_gradient_match(t)
  local v = models.load_vae(DIR)
  t.near(v.scaling_factor, 0.18215, 0, 'scaling_factor from the config')
  local mean, logvar = craft.no_grad(function() return v:encode(c.x) end)
  t.ok(t.rel(mean, c.mean) < TOL, ('mean rel err %.2g'):format(t.rel(mean, c.mean)))
  t.ok(t.rel(logvar, c.logvar) < TOL, ('logvar rel err %.2g'):format(t.rel(logvar, c.logvar)))
  local results = {}
  for _, ckpt in ipairs { false, true } do
    v.gradient_checkpointing = ckpt
    local z = c.z:clone():requires_grad_(true)
    local d = v:decode(z)
    ;(d * c.grad_weight):sum():backward()
    results[#results + 1] = { d:detach(), z.grad }
    t.ok(t.rel(d, c.decoded) < TOL, ('decode rel err %.2g (checkpointing %s)'):format(t.rel(d, c.decoded), tostring(ckpt)))
    t.ok(t.rel(z.grad, c['grad.z']) < TOL, ('decode grad rel err %.2g'):format(t.rel(z.grad, c['grad.z'])))
  end
  t.ok(t.rel(results[2][2], results[1][2]) < 1e-6, 'checkpointed gradient equals plain')
end

function T.seeded_sample(t)
  local v = models.load_vae(DIR)
  local a = v:sample(c.mean, c.logvar, { seed = 4 })
  local b = v:sample(c.mean, c.logvar, { seed = 4 })
  t.eq(t.rel(a, b), 0, 'same seed, same latents')
  local want = c.mean + (c.logvar * 0.5):exp() * craft.randn(c.mean.shape, { seed = 4 })
  t.ok(t.rel(a, want) < 1e-6, 'mean + std * noise')
end

function T.old_attention_names_load(t)
  local v = models.load_vae(DIR)
  local sd = v:state_dict()
  local old = {}
  local rename = { to_q = 'query', to_k = 'key', to_v = 'value', ['to_out.0'] = 'proj_attn' }
  for k, x in pairs(sd) do
    local pre, proj, leaf = k:match('^(.*attentions%.0)%.(to_[%w_.]+)%.(%a+)$')
    if pre and rename[proj] then old[pre .. '.' .. rename[proj] .. '.' .. leaf] = x else old[k] = x end
  end
  t.ok(old['encoder.mid_block.attentions.0.query.weight'] ~= nil, 'old layout built')
  local v2 = require('craft.models.vae').AutoencoderKL(io_.read_json(DIR .. '/config.json'))
  local missing, unexpected = keymap.load(v2, keymap.vae_new_names(old), { what = 'vae' })
  t.eq(#missing + #unexpected, 0, 'old names map onto the new ones')
  local z = c.z
  t.eq(t.rel(craft.no_grad(function() return v2:decode(z) end), craft.no_grad(function() return v:decode(z) end)), 0)
end

return T
