-- craft tests/study/extract.lua DOM_HTML NAME [OUT_FILE]: the URI-decoded text of <pre id=NAME>
-- in a `chromium --dump-dom` output (tests/study/driver.js writes them); exit 1 if absent.
local f = assert(io.open(arg[1], 'rb'))
local dom = f:read('*a')
f:close()
local text = dom:match('<pre id="' .. arg[2] .. '">([^<]*)</pre>')
if not text then return 1 end
text = text:gsub('&amp;', '&'):gsub('%%(%x%x)', function(h) return string.char(tonumber(h, 16)) end)
if arg[3] then
  local o = assert(io.open(arg[3], 'wb'))
  o:write(text)
  o:close()
else
  io.write(text, '\n')
end
return 0
