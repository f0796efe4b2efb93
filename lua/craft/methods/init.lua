-- craft.methods: the registry of adaptation methods an experiment compares (METHOD.md,
-- "Baselines" and "CRAFT finetuning"). A method is a module (one file here, or a table a recipe
-- registers) with:
--   kind = 'name', summary = 'one line',
--   needs_reward = true|false       -- whether adapt calls ctx.reward() (the reward suite's CAS)
--   adapt(pipe, m, ctx) -> {prompts = {class -> {prompts}}, result = trainer result or nil,
--     adapters = {{kind = 'ti'|'lora', path = ...}, ...} (what it wrote, in order),
--     budget = {steps = n, images = generated during training}}
-- m is the method's entry in the recipe ({name, kind, from, recipe, ...}); ctx carries seed (the
-- training seed), dir (the job's folder), classes, knowledge, few_shot (the labelled reals),
-- start_prompts (the prompts of the method it starts from, when m.from), reward() and quiet.
-- Adding a method: a file lua/craft/methods/<kind>.lua returning such a table (or
-- methods.register(kind, table) in a recipe), and a line in the recipe's method list
-- (docs/evaluation.md, "Adding a method").
local argerror = require('craft.core').argerror

local M = { registered = {} }

M.BUILTIN = { 'base', 'ti_lora', 'lora_continue', 'dpo', 'craft' }

function M.register(kind, method)
  require('craft.core').want('methods.register', 'kind', kind, 'string')
  require('craft.core').want('methods.register', 'method', method, 'table')
  if type(method.adapt) ~= 'function' then argerror(('methods.register: method %q has no adapt function'):format(kind)) end
  method.kind = method.kind or kind
  M.registered[kind] = method
  return method
end

function M.get(kind)
  if M.registered[kind] then return M.registered[kind] end
  if type(kind) == 'string' and kind:match('^[%w_]+$') then
    local ok, mod = pcall(require, 'craft.methods.' .. kind)
    if ok and type(mod) == 'table' and mod.adapt then M.registered[kind] = mod; return mod end
    if not ok and not tostring(mod):find("module 'craft.methods." .. kind .. "' not found", 1, true) then error(mod, 0) end
  end
  local known = {}
  for _, k in ipairs(M.BUILTIN) do known[#known + 1] = k end
  for k in pairs(M.registered) do
    local dup = false
    for _, b in ipairs(M.BUILTIN) do dup = dup or b == k end
    if not dup then known[#known + 1] = k end
  end
  argerror(('experiment: unknown method kind %q (known: %s)'):format(tostring(kind), table.concat(known, ', ')))
end

-- helpers the methods share
function M.merge(a, b)
  require('craft.core').want('methods.merge', 'a', a, 'table', true)
  require('craft.core').want('methods.merge', 'b', b, 'table', true)
  local r = {}
  for k, v in pairs(a or {}) do r[k] = v end
  for k, v in pairs(b or {}) do r[k] = v end
  return r
end

-- the enriched prompts of the knowledge artifacts, or the start method's prompts
function M.start_prompts(ctx)
  require('craft.core').want('methods.start_prompts', 'ctx', ctx, 'table')
  if type(ctx.start_prompts) ~= 'table' and type(ctx.knowledge) ~= 'table' then
    argerror('methods.start_prompts: ctx has neither start_prompts nor knowledge')
  end
  return ctx.start_prompts or ctx.knowledge.prompts
end

return M
