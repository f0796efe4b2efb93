-- craft.study.png: every image of a study packet goes through one path: decoded by the engine's
-- reader into 8-bit pixels, then written here as a PNG with only IHDR, IDAT and IEND chunks and
-- an *uncompressed* (stored-block) zlib stream. Compression would make an image's byte size
-- depend on its content, and so on the method that made it; stored blocks make every image of a
-- packet the same number of bytes, so sizes cannot separate methods at all.
--
--   local img = png.read(path, channels)  -- {h =, w =, c =, pixels = u8 string (HWC)}; channels
--                                          -- 0 keeps the file's, 1 or 3 converts
--   local bytes = png.encode(img)          -- the PNG file's bytes
--   local chunks = png.chunks(bytes)       -- {'IHDR', 'IDAT', 'IEND'} or nil, why
--   png.base64(bytes)                      -- for the data URI
local core = require 'craft.core'
local bit = require 'bit'
local band, bxor, rshift = bit.band, bit.bxor, bit.rshift

local M = {}

local CRC = {}
for n = 0, 255 do
  local c = n
  for _ = 1, 8 do
    if band(c, 1) ~= 0 then c = bxor(0xedb88320, rshift(c, 1)) else c = rshift(c, 1) end
  end
  CRC[n] = c
end
local function crc32(s)
  local c = -1
  for i = 1, #s do c = bxor(CRC[band(bxor(c, s:byte(i)), 0xff)], rshift(c, 8)) end
  return bxor(c, -1) % 4294967296
end
local function be32(v)
  v = v % 4294967296
  return string.char(math.floor(v / 16777216) % 256, math.floor(v / 65536) % 256, math.floor(v / 256) % 256, v % 256)
end
local function chunk(kind, data) return be32(#data) .. kind .. data .. be32(crc32(kind .. data)) end

local function adler32(s)
  local a, b = 1, 0
  for i = 1, #s do
    a = (a + s:byte(i)) % 65521
    b = (b + a) % 65521
  end
  return b * 65536 + a
end

-- read(path, channels): one error line naming the file when it cannot be decoded.
function M.read(path, channels)
  local ok, r = pcall(require('craft.io').read_image, path, channels or 0)
  if not ok then error(tostring(r):gsub('^[^:]*:%d+: ', ''), 0) end
  return r
end

local COLOR_TYPE = { [1] = 0, [3] = 2 }

function M.encode(img)
  local ct = COLOR_TYPE[img.c]
  if not ct then error(('study png: %d channels (1 or 3 expected)'):format(img.c), 0) end
  local row = img.w * img.c
  local raw = {}
  for y = 0, img.h - 1 do raw[#raw + 1] = '\0' .. img.pixels:sub(y * row + 1, (y + 1) * row) end
  raw = table.concat(raw)
  local z = { '\120\1' }   -- zlib header: deflate, 32 KiB window, no dictionary, check bits
  local pos = 1
  repeat
    local n = math.min(65535, #raw - pos + 1)
    local final = pos + n > #raw and 1 or 0
    z[#z + 1] = string.char(final, n % 256, math.floor(n / 256), 255 - n % 256, 255 - math.floor(n / 256))
    z[#z + 1] = raw:sub(pos, pos + n - 1)
    pos = pos + n
  until pos > #raw
  z[#z + 1] = be32(adler32(raw))
  local ihdr = be32(img.w) .. be32(img.h) .. string.char(8, ct, 0, 0, 0)
  return '\137PNG\r\n\26\n' .. chunk('IHDR', ihdr) .. chunk('IDAT', table.concat(z)) .. chunk('IEND', '')
end

local B64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/'
-- base64(s): RFC 4648 with '=' padding (for data URIs)
function M.base64(s)
  local out, n = {}, #s
  for i = 1, n, 3 do
    local a, b, c = s:byte(i, i + 2)
    local v = a * 65536 + (b or 0) * 256 + (c or 0)
    local q1, q2 = math.floor(v / 262144), math.floor(v / 4096) % 64
    local q3, q4 = math.floor(v / 64) % 64, v % 64
    out[#out + 1] = B64:sub(q1 + 1, q1 + 1) .. B64:sub(q2 + 1, q2 + 1) .. (b and B64:sub(q3 + 1, q3 + 1) or '=')
      .. (c and B64:sub(q4 + 1, q4 + 1) or '=')
  end
  return table.concat(out)
end

-- chunks(bytes) -> the chunk types in order, or nil and why (a scan for metadata chunks).
function M.chunks(s)
  if s:sub(1, 8) ~= '\137PNG\r\n\26\n' then return nil, 'no PNG signature' end
  local list, pos = {}, 9
  while pos <= #s do
    if pos + 11 > #s then return nil, 'truncated chunk header' end
    local b1, b2, b3, b4 = s:byte(pos, pos + 3)
    local n = ((b1 * 256 + b2) * 256 + b3) * 256 + b4
    local kind = s:sub(pos + 4, pos + 7)
    if pos + 11 + n > #s then return nil, 'chunk ' .. kind .. ' runs past the end' end
    if be32(crc32(s:sub(pos + 4, pos + 7 + n))) ~= s:sub(pos + 8 + n, pos + 11 + n) then
      return nil, 'chunk ' .. kind .. ': bad CRC'
    end
    list[#list + 1] = kind
    pos = pos + 12 + n
  end
  return list
end

return M
