-- craft.study.scan: checks that a study packet's page does not unblind. `craft study make` runs
-- it on every page before writing it, and the tests run it on the written file.
--
--   scan.page(html, forbidden) -> findings (an empty list when the page is clean), info
--     forbidden = { words = {{text =, what =}}, strings = {{text =, what =}} }
--     words are matched case-insensitively as whole words (not inside a longer word, so that
--     a method called "base" does not match "base64"); strings (file names) anywhere.
--     Every embedded image must be a PNG of only IHDR, IDAT and IEND chunks, and all of them
--     must have the same IHDR and the same byte size; the page text is searched with the
--     images' base64 payloads taken out (random base64 text holds any short word by chance).
--     info = {images = count, bytes = size of each image, text = the page without payloads}
--   scan.forbidden(run, rows) -> the forbidden list of a run: every method's name, key and
--     kind (all of the run's methods, not only those in the packet), the samples' file names,
--     their base names and the per-method folder names.
local png = require 'craft.study.png'

local M = {}

local B64 = {}
do
  local a = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/'
  for i = 1, 64 do B64[a:byte(i)] = i - 1 end
end
function M.unbase64(s)
  local out, acc, bits = {}, 0, 0
  for i = 1, #s do
    local v = B64[s:byte(i)]
    if v then
      acc, bits = acc * 64 + v, bits + 6
      if bits >= 8 then
        bits = bits - 8
        local b = math.floor(acc / 2 ^ bits)
        out[#out + 1] = string.char(b)
        acc = acc - b * 2 ^ bits
      end
    end
  end
  return table.concat(out)
end

local function context(text, i, j)
  return (text:sub(math.max(1, i - 30), math.min(#text, j + 30)):gsub('%s+', ' '))
end

local function whole_word_at(low, i, j)
  local before, after = low:sub(i - 1, i - 1), low:sub(j + 1, j + 1)
  return not before:match('[%w_]') and not after:match('[%w_]')
end

function M.page(html, forbidden)
  local findings = {}
  local function add(what, text, ctx) findings[#findings + 1] = { what = what, text = text, context = ctx } end
  local images, size, ihdr = 0, nil, nil
  local text = html:gsub('data:image/png;base64,([A-Za-z0-9+/=]*)', function(payload)
    images = images + 1
    local bytes = M.unbase64(payload)
    local chunks, why = png.chunks(bytes)
    if not chunks then add('image', ('image %d'):format(images), why)
    elseif table.concat(chunks, ',') ~= 'IHDR,IDAT,IEND' then
      add('image', ('image %d'):format(images), 'chunks ' .. table.concat(chunks, ',') .. ' (only IHDR, IDAT, IEND allowed)')
    end
    local h = bytes:sub(9, 33)
    if not size then size, ihdr = #bytes, h
    elseif #bytes ~= size then add('image', ('image %d'):format(images), ('%d bytes, the first image has %d'):format(#bytes, size))
    elseif h ~= ihdr then add('image', ('image %d'):format(images), 'a different IHDR (size, depth or colour type) from the first image')
    end
    return 'data:image/png;base64,'
  end)
  if html:find('data:image/', 1, true) and images == 0 then add('image', 'images', 'embedded images that are not base64 PNGs') end
  local low = text:lower()
  for _, w in ipairs(forbidden.words or {}) do
    local needle = w.text:lower()
    local from = 1
    while #needle > 0 do
      local i, j = low:find(needle, from, true)
      if not i then break end
      if whole_word_at(low, i, j) then add(w.what, w.text, context(text, i, j)); break end
      from = i + 1
    end
  end
  for _, s in ipairs(forbidden.strings or {}) do
    local i, j = low:find(s.text:lower(), 1, true)
    if i and #s.text > 0 then add(s.what, s.text, context(text, i, j)) end
  end
  return findings, { images = images, bytes = size, text = text }
end

function M.forbidden(run, rows)
  local words, strings, seen = {}, {}, {}
  local function word(t, what)
    if type(t) == 'string' and t ~= '' and not seen['w' .. t:lower()] then
      seen['w' .. t:lower()] = true
      words[#words + 1] = { text = t, what = what }
    end
  end
  local function str(t, what)
    if t ~= '' and not seen['s' .. t:lower()] then
      seen['s' .. t:lower()] = true
      strings[#strings + 1] = { text = t, what = what }
    end
  end
  for _, m in ipairs(run.methods or {}) do
    word(m.name, 'method name')
    word(m.key, 'method key')
    word(m.kind, 'method kind')
  end
  for _, r in ipairs(rows) do
    if r.method ~= 'Real' then word(r.method, 'method name'); word(r.method_key, 'method key') end
    str(r.file, 'file name')
    local base = r.file:match('([^/]+)$')
    str(base, 'file name')
    str((base:gsub('%.[%w]+$', '')), 'file name')
    local dir = r.file:match('^(.*)/[^/]+$')
    if dir then str(dir .. '/', 'folder name') end
  end
  return { words = words, strings = strings }
end

return M
