-- craft.tokenizer: the CLIP byte-level BPE tokenizer (engine/tokenizer.c) from Lua.
--   local tok = require('craft.tokenizer').load('path/to/tokenizer')   -- a diffusers tokenizer/ folder
--   load('vocab.json', 'merges.txt')  or  load('bpe_simple_vocab_16e6.txt.gz')
--   tok:encode('a photo of a cat')            -> i64 tensor [1, 77] (start, tokens, end, padding)
--   tok:encode({'a', 'b'}, {max_len = 77})    -> i64 tensor [2, 77], and the unpadded lengths
--   tok:decode(ids)                           -> text (a string for 1-d ids, a list for 2-d)
-- The ids are those of transformers' CLIPTokenizer (see craft.h); engine errors are Lua errors.
local core = require 'craft.core'
local argerror = require('craft.core').argerror
local T = require 'craft.tensor'
local ffi, C, check = core.ffi, core.C, core.check

local M = {}
local Tokenizer = {}
Tokenizer.__index = Tokenizer
M.Tokenizer = Tokenizer

local function is_dir(path)
  local f = io.open(path .. '/vocab.json', 'rb')
  if f then f:close(); return true end
  return false
end

local function wrap(pp)
  return setmetatable({ _c = ffi.gc(pp[0], C.craft_tokenizer_free) }, Tokenizer)
end

-- load(dir) | load(vocab_json, merges_txt) | load(bpe_gz)
function M.load(path, merges)
  core.want('tokenizer.load', 'path', path, 'string')
  core.want('tokenizer.load', 'merges', merges, 'string', true)
  local pp = ffi.new('craft_tokenizer*[1]')
  if merges ~= nil then
    check(C.craft_tokenizer_load(path, merges, pp), 2)
  elseif path:match('%.gz$') then
    check(C.craft_tokenizer_load_bpe_gz(path, pp), 2)
  elseif is_dir(path) then
    check(C.craft_tokenizer_load_dir(path, pp), 2)
  else
    core.argerror(('tokenizer.load %s: neither a tokenizer folder (with vocab.json) nor a .gz BPE file')
      :format(path))
  end
  return wrap(pp)
end

function Tokenizer:vocab_size() return C.craft_tokenizer_vocab_size(self._c) end
function Tokenizer:start_id() return C.craft_tokenizer_start_id(self._c) end
function Tokenizer:end_id() return C.craft_tokenizer_end_id(self._c) end
function Tokenizer:pad_id() return C.craft_tokenizer_pad_id(self._c) end
function Tokenizer:set_pad(id)
  core.want('tokenizer.set_pad', 'id', id, 'integer')
  check(C.craft_tokenizer_set_pad(self._c, id), 2)
  return self
end
-- token_id('cat</w>') -> id or nil ; token(id) -> string or nil
function Tokenizer:token_id(s)
  core.want('tokenizer.token_id', 'token', s, 'string')
  local id = C.craft_tokenizer_token_id(self._c, s)
  return id >= 0 and id or nil
end
function Tokenizer:token(id)
  core.want('tokenizer.token', 'id', id, 'integer')
  local p = C.craft_tokenizer_token(self._c, id)
  if p == nil then C.craft_clear_error(); return nil end
  return ffi.string(p)
end

-- encode(text or {texts}, {max_len=77, pad=true}) -> i64 [B, max_len], lengths (Lua list)
-- Without padding the rows are padded anyway (a tensor is rectangular): to the longest row,
-- with the pad id.
function Tokenizer:encode(texts, o)
  o = core.want('tokenizer.encode', 'options', o, 'table', true) or {}
  core.want('tokenizer.encode', 'options.max_len', o.max_len, 'positive', true)
  if type(texts) == 'string' then texts = { texts } end
  if type(texts) ~= 'table' or #texts == 0 then
    argerror('tokenizer.encode: expected a string or a list of strings')
  end
  local max_len = o.max_len or 77
  local pad = o.pad ~= false
  local B = #texts
  local ids = ffi.new('int32_t[?]', B * max_len)
  local n = ffi.new('int[1]')
  local lengths, width = {}, pad and max_len or 0
  for b = 1, B do
    local s = texts[b]
    if type(s) ~= 'string' then
      argerror(('tokenizer.encode: text %d is a %s, not a string'):format(b, type(s)))
    end
    local row = ids + (b - 1) * max_len
    check(C.craft_tokenizer_encode(self._c, s, max_len, 1, row, n), 2)
    lengths[b] = n[0]
    if n[0] > width then width = n[0] end
  end
  local t = T.from_buffer(ids, { B, max_len }, 'i32')
  if width < max_len then t = t:narrow(2, 1, width):contiguous() end
  return t:to('i64'), lengths
end

local function decode_row(self, row, n)
  local bytes = 16
  for k = 0, n - 1 do
    local p = C.craft_tokenizer_token(self._c, row[k])
    bytes = bytes + (p ~= nil and 2 * #ffi.string(p) or 0)
  end
  C.craft_clear_error()
  local buf = ffi.new('char[?]', bytes)
  check(C.craft_tokenizer_decode(self._c, row, n, buf, bytes), 3)
  return ffi.string(buf)
end

-- decode(ids): ids a 1-d tensor / Lua list (-> string) or a 2-d tensor (-> list of strings).
-- Special tokens (start, end, padding) are dropped, as transformers' skip_special_tokens=True.
function Tokenizer:decode(ids)
  if T.is_tensor(ids) then
    local shape = ids.shape
    if #shape ~= 1 and #shape ~= 2 then
      argerror(('tokenizer.decode: ids must be 1-d or 2-d, got %d dims'):format(#shape))
    end
    local flat = ids:flat()
    local rows, width = #shape == 2 and shape[1] or 1, shape[#shape]
    local buf = ffi.new('int32_t[?]', math.max(width, 1))
    local out = {}
    for r = 1, rows do
      for k = 1, width do buf[k - 1] = flat[(r - 1) * width + k] end
      out[r] = decode_row(self, buf, width)
    end
    return #shape == 2 and out or out[1]
  elseif type(ids) == 'table' then
    local buf = ffi.new('int32_t[?]', math.max(#ids, 1))
    for k = 1, #ids do
      buf[k - 1] = core.want('tokenizer.decode', ('ids[%d]'):format(k), ids[k], 'integer')
    end
    return decode_row(self, buf, #ids)
  end
  argerror('tokenizer.decode: expected a tensor or a list of ids, got ' .. type(ids))
end

return M
