-- craft.models.options: checks a model's config table (a diffusers / transformers config.json)
-- against the one table of keys that model knows, so that a configuration craft does not
-- implement is refused instead of computed as something else.
--
-- A model's table maps each key its reference class reads to an entry { kind, default, ... }:
--   kind      what a valid value looks like (K.posint, K.list(K.string), K.either(...), ...)
--   default   the reference's default (nil: the reference's None)
--   only      the values craft implements (a list; io.null stands for None; or a function
--             v -> bool with only_desc); another value is refused with one line naming the
--             key, the value and the file
--   inert     a string saying why the key has no effect on what craft computes (any valid
--             value is accepted)
--   each      for a list: the entries craft implements (another entry is refused)
--   null      true when JSON null is a value of its own (not "use the default")
--   note      a remark for the documentation table
-- check(cfg, table, where) returns the config with every known key filled in (defaults for
-- absent keys, nil for None); a key the table does not know is listed once per file as
-- ignored (one stderr line); keys starting with "_" (_class_name, _diffusers_version, ...) are
-- bookkeeping and pass silently.
local io_ = require 'craft.io'
local argerror = require('craft.core').argerror

local M = {}
local null = io_.null

---------------------------------------------------------------- showing values
-- A value as JSON would write it (short), never Lua's "table: 0x...".
local function show(v, depth)
  depth = depth or 0
  if v == null or v == nil then return 'null' end
  local ty = type(v)
  if ty == 'string' then return ('%q'):format(#v > 60 and v:sub(1, 60) .. '...' or v) end
  if ty == 'number' then
    if v ~= v then return 'nan' end
    if v % 1 == 0 and math.abs(v) < 2 ^ 53 then return ('%d'):format(v) end
    return ('%.10g'):format(v)
  end
  if ty ~= 'table' then return tostring(v) end
  if depth > 2 then return '[...]' end
  if M.is_list(v) then
    local parts = {}
    for i = 1, math.min(#v, 8) do parts[i] = show(v[i], depth + 1) end
    if #v > 8 then parts[#parts + 1] = '...' end
    return '[' .. table.concat(parts, ', ') .. ']'
  end
  local keys = {}
  for k in pairs(v) do keys[#keys + 1] = tostring(k) end
  table.sort(keys)
  if #keys > 4 then keys = { keys[1], keys[2], keys[3], '...' } end
  return '{' .. table.concat(keys, ', ') .. '}'
end
M.show = show

---------------------------------------------------------------- kinds
-- A kind is { test = function(v) -> bool, desc = 'an integer' }.
local K = {}
M.K = K
-- plural: how a list of them is described ("a list of <plural>")
local function kind(desc, test, plural)
  return { desc = desc, test = test, plural = plural or ('values that are ' .. desc) }
end
local function is_list(v)
  if type(v) ~= 'table' or v == null then return false end
  if getmetatable(v) == io_.array_mt then return true end
  local n, count = #v, 0
  for _ in pairs(v) do count = count + 1 end
  return n > 0 and count == n
end
M.is_list = is_list
local function int(v) return type(v) == 'number' and v % 1 == 0 and math.abs(v) < 2 ^ 31 end
K.any = kind('any value', function() return true end)
K.int = kind('an integer', int, 'integers')
K.count = kind('an integer >= 0', function(v) return int(v) and v >= 0 end, 'integers >= 0')
K.posint = kind('an integer >= 1', function(v) return int(v) and v >= 1 end, 'integers >= 1')
K.number = kind('a number', function(v) return type(v) == 'number' and v == v
  and math.abs(v) < math.huge end, 'numbers')
K.posnum = kind('a number > 0', function(v) return type(v) == 'number' and v > 0 and v < math.huge end,
  'numbers > 0')
-- JSON has no infinity: Python's json writes -Infinity, which craft's parser reads as a string
K.number_or_inf = kind('a number', function(v)
  return (type(v) == 'number' and v == v) or v == '-Infinity' or v == 'Infinity'
end)
K.bool = kind('true or false', function(v) return type(v) == 'boolean' end, 'booleans')
K.string = kind('a string', function(v) return type(v) == 'string' end, 'strings')
K.object = kind('an object', function(v) return type(v) == 'table' and v ~= null and not is_list(v) end)
-- list(el): a non-empty JSON array whose entries are all of kind el
function K.list(el)
  return kind('a list of ' .. el.plural, function(v)
    if not is_list(v) or #v == 0 then return false end
    for i = 1, #v do if not el.test(v[i]) then return false end end
    return true
  end, 'lists of ' .. el.plural)
end
function K.either(...)
  local ks = { ... }
  local descs = {}
  for i, k in ipairs(ks) do descs[i] = k.desc end
  local plurals = {}
  for i, k in ipairs(ks) do plurals[i] = k.plural end
  return kind(table.concat(descs, ' or '), function(v)
    for _, k in ipairs(ks) do if k.test(v) then return true end end
    return false
  end, table.concat(plurals, ' or '))
end
-- per_level(el): one value for every level, or a list with one per level
function K.per_level(el) return K.either(el, K.list(el)) end

---------------------------------------------------------------- sources and notes
-- The file a config table came from (weak keys: forgotten with the table).
local sources = setmetatable({}, { __mode = 'k' })

-- read(path, {quiet=}) -> the decoded JSON object of a config file, remembered as coming from
-- path (its messages then name the file).
-- Python's json module writes -Infinity, Infinity and NaN (DPMSolverMultistepScheduler's
-- lambda_min_clipped is -Infinity by default), which JSON does not have: a file the engine's
-- parser refuses is read again with those bare words turned into strings ("-Infinity").
local function python_json(path)
  local f = io.open(path, 'rb')
  if not f then return nil end
  local text = f:read('*a')
  f:close()
  local out, i, n, in_str = {}, 1, #text, false
  while i <= n do
    local ch = text:sub(i, i)
    if in_str then
      out[#out + 1] = ch
      if ch == '\\' then out[#out + 1] = text:sub(i + 1, i + 1); i = i + 1
      elseif ch == '"' then in_str = false end
      i = i + 1
    elseif ch == '"' then in_str = true; out[#out + 1] = ch; i = i + 1
    else
      local word = text:match('^%-?Infinity', i) or text:match('^NaN', i)
      if word then out[#out + 1] = '"' .. word .. '"'; i = i + #word
      else out[#out + 1] = ch; i = i + 1 end
    end
  end
  local relaxed = table.concat(out)
  if relaxed == text then return nil end
  return io_.decode_json(relaxed, path)
end

function M.read(path, o)
  local ok, cfg = pcall(io_.read_json, path)
  if not ok then
    local ok2, again = pcall(python_json, path)
    if not (ok2 and again) then argerror((tostring(cfg):gsub('^[^:]*:%d+: ', ''))) end
    cfg = again
  end
  if type(cfg) ~= 'table' or cfg == null or is_list(cfg) then
    argerror(('%s: a config file must hold a JSON object, got %s'):format(path, show(cfg)))
  end
  sources[cfg] = { path = path, quiet = o and o.quiet }
  return cfg
end
-- remember(cfg, path, {quiet=}): marks a table as read from path (nested configs: text_config)
function M.remember(cfg, path, o)
  if type(cfg) == 'table' then sources[cfg] = { path = path, quiet = o and o.quiet } end
  return cfg
end
function M.where(cfg, fallback)
  local s = type(cfg) == 'table' and sources[cfg]
  return s and s.path or fallback
end

-- Notes go through M.note_writer (tests replace it to count them); each file's note is written
-- once per process.
M.note_writer = function(line) io.stderr:write(line, '\n') end
local noted = {}
local function note(where, keys, quiet)
  if quiet or #keys == 0 then return end
  table.sort(keys)
  local line = ('craft: note: %s: %d key(s) craft does not know, ignored: %s'):format(where, #keys,
    table.concat(keys, ', ', 1, math.min(#keys, 12)) .. (#keys > 12 and ', ...' or ''))
  if noted[line] then return end
  noted[line] = true
  M.note_writer(line)
end

---------------------------------------------------------------- checking
local function member(list, v)
  for _, x in ipairs(list) do if x == v then return true end end
  return false
end
local function list_only(only)
  local parts = {}
  for i, v in ipairs(only) do parts[i] = show(v) end
  return table.concat(parts, ', ')
end

-- check(cfg, options, where, {quiet=, extra = {key = true}}) -> filled config (a new table)
-- extra: keys the caller handles itself (kept as they are, not reported).
function M.check(cfg, options, where, o)
  o = o or {}
  if cfg == nil then cfg = {} end
  if type(cfg) ~= 'table' or cfg == null or is_list(cfg) then
    argerror(('%s: the config must be an object (a table of keys), got %s'):format(where, show(cfg)))
  end
  local src = sources[cfg]
  if src then where = src.path end
  local quiet = o.quiet or (src and src.quiet)
  local out, unknown = {}, {}
  for k, v in pairs(cfg) do
    if type(k) ~= 'string' then
      argerror(('%s: config key %s is not a string'):format(where, show(k)))
    end
    local e = options[k]
    if e then
      if v == null and not e.null then
        if e[2] ~= nil then
          argerror(('%s: %s = null is not valid (%s must be %s; leave it out for the default %s)')
            :format(where, k, k, e[1].desc, show(e[2])))
        end
        v = nil
      elseif not e[1].test(v) and not (v == null and e.null) then
        argerror(('%s: %s = %s is not valid (%s must be %s)'):format(where, k, show(v), k, e[1].desc))
      end
      out[k] = v
    elseif o.extra and o.extra[k] then
      out[k] = v
    elseif k:sub(1, 1) ~= '_' then
      unknown[#unknown + 1] = k
    end
  end
  for k, e in pairs(options) do
    if out[k] == nil then out[k] = e[2] end
    local v = out[k]
    if type(e.only) == 'function' then
      if not e.only(v) then
        argerror(('%s: %s = %s is not implemented by craft (implemented: %s)'):format(where, k, show(v),
          e.only_desc))
      end
    elseif e.only and not member(e.only, v == nil and null or v) then
      argerror(('%s: %s = %s is not implemented by craft (implemented: %s)'):format(where, k, show(v),
        list_only(e.only)))
    end
    if e.each and is_list(v) then
      for i = 1, #v do
        if not member(e.each, v[i]) then
          argerror(('%s: %s[%d] = %s is not implemented by craft (implemented: %s)'):format(where, k, i,
            show(v[i]), list_only(e.each)))
        end
      end
    end
  end
  note(where, unknown, quiet)
  return out
end

-- refuse(where, key, value, what): the one-line refusal for a combination check() cannot see
-- (a value that is valid alone but not with the others).
function M.refuse(where, key, value, what)
  argerror(('%s: %s = %s %s'):format(where, key, show(value), what))
end

---------------------------------------------------------------- transformers
-- The keys every transformers config.json may carry (PretrainedConfig's own, generation
-- settings of older versions): none changes an encoder's forward pass, except pruned_heads.
local GENERIC_INERT = { 'return_dict', 'output_hidden_states', 'output_attentions', 'torchscript',
  'torch_dtype',
  'use_bfloat16', 'tf_legacy_loss', 'tie_word_embeddings', 'chunk_size_feed_forward', 'is_encoder_decoder',
  'is_decoder', 'cross_attention_hidden_size', 'add_cross_attention', 'tie_encoder_decoder', 'max_length',
  'min_length', 'do_sample', 'early_stopping', 'num_beams', 'num_beam_groups', 'diversity_penalty',
  'temperature',
  'top_k', 'top_p', 'typical_p', 'repetition_penalty', 'length_penalty', 'no_repeat_ngram_size',
  'encoder_no_repeat_ngram_size', 'bad_words_ids', 'num_return_sequences', 'output_scores',
  'return_dict_in_generate',
  'forced_bos_token_id', 'forced_eos_token_id', 'remove_invalid_values', 'exponential_decay_length_penalty',
  'suppress_tokens', 'begin_suppress_tokens', 'finetuning_task', 'id2label', 'label2id', 'tokenizer_class',
  'prefix', 'bos_token_id', 'pad_token_id', 'sep_token_id', 'decoder_start_token_id', 'task_specific_params',
  'problem_type',
  'transformers_version', 'gradient_checkpointing', 'use_cache', 'num_labels', 'initializer_range',
  'initializer_factor' }
M.GENERIC_INERT = GENERIC_INERT
-- transformers(extra) -> a model's option table: the generic keys, then extra (the model's own)
function M.transformers(extra)
  local t = {}
  for _, k in ipairs(GENERIC_INERT) do
    t[k] = { K.any, nil, inert = 'transformers bookkeeping, generation or initialisation setting',
      generic = true }
  end
  t.pruned_heads = { K.any, nil, only = function(v) return v == nil
    or (type(v) == 'table' and next(v) == nil) end,
    only_desc = 'none ({})' }
  t.architectures = { K.list(K.string), nil, note = 'chooses the class when no kind is given' }
  for k, v in pairs(extra) do t[k] = v end
  return t
end

---------------------------------------------------------------- documentation
-- markdown(name, options) -> a table of the keys: implemented (with their accepted values),
-- refused values, inert keys. docs/model_options.md is made from these.
function M.markdown(name, options)
  local keys, generic = {}, 0
  for k, e in pairs(options) do
    if e.generic then generic = generic + 1 else keys[#keys + 1] = k end
  end
  table.sort(keys)
  local rows = { ('### %s'):format(name), '' }
  if generic > 0 then
    rows[#rows + 1] = ('Also accepted, with no effect: the %d generic keys of transformers configs (see '
      .. 'above).'):format(generic)
    rows[#rows + 1] = ''
  end
  rows[#rows + 1] = '| key | default | craft |'
  rows[#rows + 1] = '|---|---|---|'
  for _, k in ipairs(keys) do
    local e = options[k]
    local what
    if e.inert then what = 'accepted, no effect: ' .. e.inert
    elseif type(e.only) == 'function' then what = 'implemented: ' .. e.only_desc .. '; other values refused'
    elseif e.only then what = 'implemented: ' .. list_only(e.only) .. '; other values refused'
    elseif e.each then
      what = 'implemented: ' .. e[1].desc .. ', each one of ' .. list_only(e.each) .. '; others refused'
    else what = 'implemented: ' .. e[1].desc end
    if e.note then what = what .. ' (' .. e.note .. ')' end
    rows[#rows + 1] = ('| `%s` | `%s` | %s |'):format(k, show(e[2]), what)
  end
  return table.concat(rows, '\n') .. '\n'
end

return M
