-- The Lua binding of the CLIP tokenizer gives the ids (and decoded text) of the C tests'
-- fixture, tests/fixtures/tokenizer/cases.json (made by make_tokenizer_fixtures.py from
-- transformers' CLIPTokenizer).
local craft = require 'craft'
local tokenizer = require 'craft.tokenizer'
local FIX = 'tests/fixtures/tokenizer/'
local T = {}

local function unhex(h) return (h:gsub('..', function(c) return string.char(tonumber(c, 16)) end)) end
local cases = craft.io.read_json(FIX .. 'cases.json')

-- The reference ids, padded to max_len with the pad id, as the encoder gives them.
local function padded(ref, max_len, pad)
  local r = {}
  for i = 1, max_len do r[i] = ref[i] or pad end
  return r
end

local function check_all(t, tok, key)
  local pad = tok:pad_id()
  t.eq(pad, cases.pad_ids[key], key .. ' pad id')
  local texts, refs = {}, {}
  for i, c in ipairs(cases.cases) do texts[i], refs[i] = unhex(c.hex), c[key] end
  local ids, lengths = tok:encode(texts, { max_len = 77 })
  t.eq(table.concat(ids.shape, 'x'), #texts .. 'x77', key .. ' shape')
  t.eq(ids.dtype, 'i64')
  local flat, bad = ids:flat(), 0
  for i = 1, #texts do
    local want = padded(refs[i], 77, pad)
    if lengths[i] ~= #refs[i] then bad = bad + 1
    else
      for k = 1, 77 do if flat[(i - 1) * 77 + k] ~= want[k] then bad = bad + 1; break end end
    end
  end
  t.eq(bad, 0, key .. ': texts whose ids differ from the reference')
  return ids
end

function T.real_vocab_from_gz_matches_reference(t)
  local tok = tokenizer.load(FIX .. 'bpe_simple_vocab_16e6.txt.gz')
  t.eq(tok:vocab_size(), 49408)
  t.eq(tok:start_id(), 49406)
  t.eq(tok:end_id(), 49407)
  t.eq(tok:token_id('cat</w>'), 2368)
  t.eq(tok:token(2368), 'cat</w>')
  t.eq(tok:token(49408), nil)
  local ids = check_all(t, tok, 'real')
  -- a few spelled out, so a reader sees what the ids are
  local one = tok:encode('a photo of a cat')
  t.eq(table.concat(one:narrow(2, 1, 8):flat(), ','), '49406,320,1125,539,320,2368,49407,49407')
  local bad = 0
  local texts = tok:decode(ids)
  for i, c in ipairs(cases.cases) do if texts[i] ~= c.decode then bad = bad + 1 end end
  t.eq(bad, 0, 'decoded texts that differ from the reference')
  t.eq(tok:decode({ 49406, 320, 1125, 539, 320, 2368, 49407 }), 'a photo of a cat')
end

function T.truncation_keeps_the_end_token(t)
  local tok = tokenizer.load(FIX .. 'bpe_simple_vocab_16e6.txt.gz')
  for _, c in ipairs(cases.truncation) do
    local ids = tok:encode(unhex(c.hex), { max_len = c.max_length })
    t.eq(table.concat(ids:flat(), ','), table.concat(padded(c.real, c.max_length, 49407), ','), 'max_len ' .. c.max_length)
  end
  local ids, n = tok:encode({ 'a photo of a cat', 'a' }, { max_len = 77, pad = false })
  t.eq(table.concat(ids.shape, 'x'), '2x7')
  t.eq(n[2], 3)
end

function T.tiny_folders_match_reference(t)
  check_all(t, tokenizer.load(FIX .. 'tiny_sd15'), 'tiny_sd15')
  check_all(t, tokenizer.load(FIX .. 'tiny_sd2'), 'tiny_sd2')
  local tok = tokenizer.load(FIX .. 'tiny_sd15/vocab.json', FIX .. 'tiny_sd15/merges.txt')
  t.eq(tok:vocab_size(), 914)
end

function T.errors_are_lua_errors(t)
  local tok = tokenizer.load(FIX .. 'tiny_sd15')
  t.raises(function() tokenizer.load('no/such/dir') end, 'neither a tokenizer folder')
  t.raises(function() tokenizer.load('no_such.gz') end, 'no_such.gz')
  t.raises(function() tok:encode('x', { max_len = 1 }) end, 'max_len 1')
  t.raises(function() tok:encode({ 'x', 3 }) end, 'text 2 is a number')
  t.raises(function() tok:decode({ 1, 5000 }) end, 'is not a token')
  t.raises(function() tok:set_pad(100000) end, 'is not a token')
end

return T
