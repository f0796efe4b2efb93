-- craft.study.hash: the string hash, seeded generator and shuffle that the study packet's page
-- and the analysis must agree on bit for bit. The page's JavaScript twin is M.JS (embedded in
-- every packet); the analysis recomputes each rater's display order from (packet id, rater
-- name, trial id) and checks the page's checksums with the same functions.
--
--   hash4(s)   -> four uint32 words: FNV-1a over the bytes of s from four different starting
--                 values, each finished with MurmurHash3's fmix32 (a checksum against accidental
--                 edits and truncation, not a signature against forgery)
--   hex(s)     -> the 32 hex digits of hash4(s)
--   rng(s)     -> a generator seeded by hash4(s): sfc32 (Chris Doty-Humphrey's small fast
--                 chaotic generator), first 12 outputs dropped; :u32() -> 0 .. 2^32 - 1
--   shuffle(list, s) -> a shuffled copy (Fisher-Yates from the end, j = u32 % (i + 1))
--   token(g, n) -> n characters from an alphabet without look-alikes (0/o, 1/l/i)
local bit = require 'bit'
local band, bor, bxor, lshift, rshift, tobit = bit.band, bit.bor, bit.bxor, bit.lshift, bit.rshift, bit.tobit

local M = {}

local TWO32 = 4294967296
local function u32(x) return x % TWO32 end   -- a signed bit-op result as 0 .. 2^32 - 1

-- 32-bit multiply modulo 2^32 (JavaScript's Math.imul): split b so no product passes 2^49.
local function imul(a, b)
  a, b = u32(a), u32(b)
  local bhi, blo = math.floor(b / 65536), b % 65536
  return tobit(tobit(a * bhi) * 65536 + a * blo)
end
M.imul = imul

local function fmix(h)
  h = bxor(h, rshift(h, 16))
  h = imul(h, 0x85ebca6b)
  h = bxor(h, rshift(h, 13))
  h = imul(h, 0xc2b2ae35)
  return bxor(h, rshift(h, 16))
end

function M.hash4(s)
  local out, n = {}, #s
  for k = 1, 4 do
    local h = bxor(tobit(0x811c9dc5), imul(k, 0x9e3779b9))
    for i = 1, n do
      h = imul(bxor(h, s:byte(i)), 16777619)
    end
    out[k] = u32(fmix(bxor(h, n)))
  end
  return out
end

function M.hex(s)
  local w = M.hash4(s)
  return ('%08x%08x%08x%08x'):format(w[1], w[2], w[3], w[4])
end

local Rng = {}
Rng.__index = Rng
function Rng:u32()
  local a, b, c, d = self[1], self[2], self[3], self[4]
  local t = tobit(tobit(a + b) + d)
  d = tobit(d + 1)
  a = bxor(b, rshift(b, 9))
  b = tobit(c + lshift(c, 3))
  c = bor(lshift(c, 21), rshift(c, 11))
  c = tobit(c + t)
  self[1], self[2], self[3], self[4] = a, b, c, d
  return u32(t)
end

function M.rng(seed)
  local w = M.hash4(seed)
  local g = setmetatable({ tobit(w[1]), tobit(w[2]), tobit(w[3]), tobit(w[4]) }, Rng)
  for _ = 1, 12 do g:u32() end
  return g
end

function M.shuffle(list, seed)
  local g = type(seed) == 'string' and M.rng(seed) or seed
  local r = {}
  for i = 1, #list do r[i] = list[i] end
  for i = #r - 1, 1, -1 do
    local j = g:u32() % (i + 1)
    r[i + 1], r[j + 1] = r[j + 1], r[i + 1]
  end
  return r
end

M.ALPHABET = 'abcdefghjkmnpqrstuvwxyz23456789'
function M.token(g, n)
  local t = {}
  for i = 1, n do
    local k = g:u32() % #M.ALPHABET + 1
    t[i] = M.ALPHABET:sub(k, k)
  end
  return table.concat(t)
end

-- The seed strings of the display order (one trial) and of the trial order (a whole session).
function M.order_seed(packet, rater, trial) return packet .. '\n' .. rater .. '\n' .. trial end
function M.session_seed(packet, rater) return packet .. '\n' .. rater .. '\n' end

-- The trial list's checksum: trials = { {id =, class_index =, images = {ids in page order}} }
function M.trials_checksum(packet, trials)
  local lines = { 'reader-study-trials/1', packet }
  for _, tr in ipairs(trials) do
    lines[#lines + 1] = ('%s:%d:%s'):format(tr.id, tr.class_index, table.concat(tr.images, ','))
  end
  return M.hex(table.concat(lines, '\n'))
end

-- The ratings file's content checksum (the page computes it when it writes the file).
function M.ratings_checksum(r)
  local lines = { 'reader-study-ratings/1', r.packet, r.rater, r.trials_checksum }
  for _, t in ipairs(r.trials) do
    local ids = {}
    for id, items in pairs(t.ticks or {}) do if #items > 0 then ids[#ids + 1] = id end end
    table.sort(ids)
    local ticks = {}
    for i, id in ipairs(ids) do
      local items = {}
      for k, v in ipairs(t.ticks[id]) do items[k] = v end
      table.sort(items)
      for k, v in ipairs(items) do items[k] = ('%d'):format(v) end
      ticks[i] = id .. ':' .. table.concat(items, '.')
    end
    local flags = {}
    for k, v in ipairs(t.flags or {}) do flags[k] = v end
    table.sort(flags)
    lines[#lines + 1] = table.concat({ t.trial, table.concat(t.shown, ','), table.concat(t.ranking, ','),
      table.concat(ticks, ';'), table.concat(flags, ','), ('%d'):format(t.ms) }, '|')
  end
  return M.hex(table.concat(lines, '\n'))
end

-- The JavaScript twin (ES2017; TextEncoder gives the UTF-8 bytes that Lua strings hold).
M.JS = [==[
const H = (() => {
  const enc = new TextEncoder();
  function fmix(h) {
    h ^= h >>> 16; h = Math.imul(h, 0x85ebca6b);
    h ^= h >>> 13; h = Math.imul(h, 0xc2b2ae35);
    return (h ^ (h >>> 16)) >>> 0;
  }
  function hash4(s) {
    const b = enc.encode(s), out = [];
    for (let k = 1; k <= 4; k++) {
      let h = (0x811c9dc5 ^ Math.imul(k, 0x9e3779b9)) | 0;
      for (let i = 0; i < b.length; i++) h = Math.imul(h ^ b[i], 16777619);
      out.push(fmix(h ^ b.length));
    }
    return out;
  }
  function hex(s) { return hash4(s).map(w => w.toString(16).padStart(8, '0')).join(''); }
  function rng(seed) {
    let [a, b, c, d] = hash4(seed).map(w => w | 0);
    const next = () => {
      const t = (((a + b) | 0) + d) | 0;
      d = (d + 1) | 0;
      a = b ^ (b >>> 9);
      b = (c + (c << 3)) | 0;
      c = (c << 21) | (c >>> 11);
      c = (c + t) | 0;
      return t >>> 0;
    };
    for (let i = 0; i < 12; i++) next();
    return next;
  }
  function shuffle(list, seed) {
    const g = rng(seed), r = list.slice();
    for (let i = r.length - 1; i >= 1; i--) {
      const j = g() % (i + 1);
      const t = r[i]; r[i] = r[j]; r[j] = t;
    }
    return r;
  }
  const orderSeed = (packet, rater, trial) => packet + '\n' + rater + '\n' + trial;
  const sessionSeed = (packet, rater) => packet + '\n' + rater + '\n';
  function trialsChecksum(packet, trials) {
    const lines = ['reader-study-trials/1', packet];
    for (const t of trials) lines.push(t.id + ':' + t.c + ':' + t.images.map(i => i.id).join(','));
    return hex(lines.join('\n'));
  }
  const byCode = (x, y) => (x < y ? -1 : x > y ? 1 : 0);
  function ratingsChecksum(r) {
    const lines = ['reader-study-ratings/1', r.packet, r.rater, r.trials_checksum];
    for (const t of r.trials) {
      const ids = Object.keys(t.ticks).filter(id => t.ticks[id].length > 0).sort(byCode);
      const ticks = ids.map(id => id + ':' + t.ticks[id].slice().sort((x, y) => x - y).join('.')).join(';');
      lines.push([t.trial, t.shown.join(','), t.ranking.join(','), ticks,
        t.flags.slice().sort(byCode).join(','), String(t.ms)].join('|'));
    }
    return hex(lines.join('\n'));
  }
  return { hash4, hex, rng, shuffle, orderSeed, sessionSeed, trialsChecksum, ratingsChecksum };
})();
]==]

return M
