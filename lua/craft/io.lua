-- craft.io: safetensors and JSON from Lua, over the engine's C readers and writers (which
-- validate everything and name the file in their errors). Checkpoints, configs and LoRA files
-- all pass through here.
local core = require 'craft.core'
local T = require 'craft.tensor'
local ffi, C, check, want = core.ffi, core.C, core.check, core.want

local M = {}

-- JSON null (a Lua nil cannot be a table value) and the marker that keeps empty arrays arrays.
M.null = setmetatable({}, { __tostring = function() return 'null' end })
M.array_mt = { __name = 'json array' }
function M.array(t)
  want('io.array', 'list', t, 'table', true)
  return setmetatable(t or {}, M.array_mt)
end

local FLOAT = { f32 = true, f16 = true, bf16 = true, f64 = true }
-- Inside a pcall: raise the engine's message bare, so that the outer error() adds one position.
local function ck(rc) if rc ~= 0 then error(ffi.string(C.craft_last_error()), 0) end end

---------------------------------------------------------------- safetensors
local function open(path)
  local pp = ffi.new('craft_safetensors*[1]')
  check(C.craft_st_open(path, pp))
  return pp[0]
end

local function metadata_of(f)
  local meta = {}
  for i = 0, C.craft_st_metadata_count(f) - 1 do
    local k = ffi.string(C.craft_st_metadata_key(f, i))
    meta[k] = ffi.string(C.craft_st_metadata(f, k))
  end
  return meta
end

-- load_safetensors(path, {dtype=, names=, prefix=}) -> { name = tensor }, order, metadata
--   dtype: 'f32' (default) converts floating tensors to f32 and keeps integer ones as stored;
--          'stored' keeps every tensor as stored; any other dtype name converts everything.
--   names: a list (or set) of the names wanted; prefix: keep only names starting with it,
--          returned without the prefix ("unet." strips a pipeline-wide file down to the UNet).
function M.load_safetensors(path, o)
  want('io.load_safetensors', 'path', path, 'string')
  o = want('io.load_safetensors', 'options', o, 'table', true) or {}
  want('io.load_safetensors', 'options.names', o.names, 'table', true)
  want('io.load_safetensors', 'options.prefix', o.prefix, 'string', true)
  local want = o.dtype or 'f32'
  local force = (want ~= 'stored' and want ~= 'f32') and core.dtype_code(want) or nil
  local names
  if o.names then
    names = {}
    for k, v in pairs(o.names) do
      if type(k) == 'number' then names[v] = true else names[k] = v and true or nil end
    end
  end
  local f = open(path)
  local ok, res = pcall(function()
    local out, order = {}, {}
    local dt = ffi.new('int[1]')
    local pt = ffi.new('craft_tensor*[1]')
    for i = 0, C.craft_st_count(f) - 1 do
      local name = ffi.string(C.craft_st_name(f, i))
      local key = name
      if o.prefix then key = name:sub(1, #o.prefix) == o.prefix and name:sub(#o.prefix + 1) or nil end
      if key and (not names or names[name] or names[key]) then
        ck(C.craft_st_info(f, i, dt, nil, nil))
        local code = force or -1
        if not force and want == 'f32' and FLOAT[core.DTYPE_NAMES[dt[0]]] then code = 0 end
        ck(C.craft_st_load(f, i, code, pt))
        out[key] = T.wrap(pt[0])
        order[#order + 1] = key
      end
    end
    return { out, order, metadata_of(f) }
  end)
  C.craft_st_close(f)
  if not ok then core.argerror(res) end
  return res[1], res[2], res[3]
end

-- save_safetensors(path, tensors, metadata): tensors is { name = tensor } or a list of
-- { name, tensor } pairs (named_parameters()); metadata { string = string } or nil.
function M.save_safetensors(path, tensors, metadata)
  want('io.save_safetensors', 'path', path, 'string')
  want('io.save_safetensors', 'tensors', tensors, 'table')
  want('io.save_safetensors', 'metadata', metadata, 'table', true)
  local pairs_list = {}
  if #tensors > 0 then
    for i, p in ipairs(tensors) do
      if type(p) ~= 'table' or type(p[1]) ~= 'string' or not T.is_tensor(p[2]) then
        core.argerror(('save_safetensors %s: entry %d is not a {name, tensor} pair'):format(path, i))
      end
      pairs_list[i] = p
    end
  else
    for k, v in pairs(tensors) do
      if type(k) ~= 'string' or not T.is_tensor(v) then
        core.argerror(('save_safetensors %s: entry %s is not a name = tensor pair'):format(path, tostring(k)))
      end
      pairs_list[#pairs_list + 1] = { k, v }
    end
  end
  local n = #pairs_list
  local names = ffi.new('const char*[?]', math.max(n, 1))
  local ts = ffi.new('craft_tensor*[?]', math.max(n, 1))
  local keep = {}   -- the Lua strings must outlive the call
  for i, p in ipairs(pairs_list) do
    keep[#keep + 1] = p[1]
    names[i - 1] = p[1]
    ts[i - 1] = p[2]._c
  end
  local mk, mv, nm = {}, {}, 0
  for k, v in pairs(metadata or {}) do nm = nm + 1; mk[nm] = tostring(k); mv[nm] = tostring(v) end
  local ck = ffi.new('const char*[?]', math.max(nm, 1))
  local cv = ffi.new('const char*[?]', math.max(nm, 1))
  for i = 1, nm do ck[i - 1], cv[i - 1] = mk[i], mv[i] end
  check(C.craft_st_save(path, n, names, ts, nm, ck, cv), 2)
  return n
end

-- inspect(path) -> list of { name, dtype (as in the file), shape, bytes }, metadata
function M.inspect(path)
  want('io.inspect', 'path', path, 'string')
  local f = open(path)
  local list = {}
  local nd = ffi.new('int[1]')
  local shape = ffi.new('int64_t[8]')
  for i = 0, C.craft_st_count(f) - 1 do
    C.craft_st_info(f, i, nil, nd, shape)
    local s = {}
    for d = 0, nd[0] - 1 do s[d + 1] = tonumber(shape[d]) end
    list[#list + 1] = { name = ffi.string(C.craft_st_name(f, i)),
      dtype = ffi.string(C.craft_st_dtype_name(f, i)),
      shape = s, bytes = tonumber(C.craft_st_nbytes(f, i)) }
  end
  local meta = metadata_of(f)
  C.craft_st_close(f)
  return list, meta
end

---------------------------------------------------------------- JSON
local function walk(doc, node)
  local ty = C.craft_json_type(doc, node)
  if ty == C.CRAFT_JSON_NULL then return M.null end
  if ty == C.CRAFT_JSON_FALSE then return false end
  if ty == C.CRAFT_JSON_TRUE then return true end
  if ty == C.CRAFT_JSON_INTEGER or ty == C.CRAFT_JSON_REAL then
    local v = ffi.new('double[1]')
    ck(C.craft_json_number(doc, node, v))
    return tonumber(v[0])
  end
  if ty == C.CRAFT_JSON_STRING then
    return ffi.string(C.craft_json_string(doc, node), C.craft_json_length(doc, node))
  end
  local n = tonumber(C.craft_json_length(doc, node))
  if ty == C.CRAFT_JSON_ARRAY then
    local a = M.array()
    for i = 0, n - 1 do a[i + 1] = walk(doc, C.craft_json_child(doc, node, i)) end
    return a
  end
  local obj = {}
  for i = 0, n - 1 do
    obj[ffi.string(C.craft_json_key(doc, node, i))] = walk(doc, C.craft_json_child(doc, node, i))
  end
  return obj
end

local function to_lua(pp)
  local doc = pp[0]
  local ok, v = pcall(walk, doc, 0)
  C.craft_json_free(doc)
  if not ok then core.argerror(v) end
  return v
end

-- read_json(path) -> Lua value: objects become tables, arrays 1-based Lua arrays (marked with
-- io.array_mt so that an empty one writes back as []), null becomes io.null.
function M.read_json(path)
  want('io.read_json', 'path', path, 'string')
  local pp = ffi.new('craft_json*[1]')
  check(C.craft_json_parse_file(path, pp), 2)
  return to_lua(pp)
end
function M.decode_json(text, what)
  want('io.decode_json', 'text', text, 'string')
  want('io.decode_json', 'what', what, 'string', true)
  local pp = ffi.new('craft_json*[1]')
  check(C.craft_json_parse_string(text, #text, what or 'json text', pp), 2)
  return to_lua(pp)
end

local ESC = { ['"'] = '\\"', ['\\'] = '\\\\', ['\b'] = '\\b', ['\f'] = '\\f', ['\n'] = '\\n', ['\r'] = '\\r',
  ['\t'] = '\\t' }
local function quote(s)
  return '"' .. s:gsub('[%c"\\]', function(c) return ESC[c] or ('\\u%04x'):format(c:byte()) end) .. '"'
end

local function is_array(t)
  if getmetatable(t) == M.array_mt then return true end
  local n = #t
  if n == 0 then return false end
  local count = 0
  for _ in pairs(t) do count = count + 1 end
  return count == n
end

local function encode(v, indent, path, out)
  local ty = type(v)
  if v == M.null then out[#out + 1] = 'null'
  elseif ty == 'boolean' then out[#out + 1] = tostring(v)
  elseif ty == 'number' then
    if v ~= v or v == math.huge or v == -math.huge then
      error(('write_json: %s is %s (JSON has no NaN/Inf)'):format(path, tostring(v)), 0)
    end
    if v % 1 == 0 and math.abs(v) < 2 ^ 53 then out[#out + 1] = ('%d'):format(v)
    else out[#out + 1] = ('%.17g'):format(v) end
  elseif ty == 'string' then out[#out + 1] = quote(v)
  elseif ty == 'table' then
    local inner = indent .. '  '
    if is_array(v) then
      if #v == 0 then out[#out + 1] = '[]'; return end
      out[#out + 1] = '[\n'
      for i = 1, #v do
        out[#out + 1] = inner
        encode(v[i], inner, path .. '[' .. i .. ']', out)
        out[#out + 1] = i < #v and ',\n' or '\n'
      end
      out[#out + 1] = indent .. ']'
    else
      local keys = {}
      for k in pairs(v) do
        if type(k) ~= 'string' then
          error(('write_json: %s has a %s key (%s); JSON keys are strings'):format(path, type(k),
            tostring(k)), 0)
        end
        keys[#keys + 1] = k
      end
      table.sort(keys)
      if #keys == 0 then out[#out + 1] = '{}'; return end
      out[#out + 1] = '{\n'
      for i, k in ipairs(keys) do
        out[#out + 1] = inner .. quote(k) .. ': '
        encode(v[k], inner, path .. '.' .. k, out)
        out[#out + 1] = i < #keys and ',\n' or '\n'
      end
      out[#out + 1] = indent .. '}'
    end
  else
    error(('write_json: %s is a %s, which JSON cannot hold'):format(path, ty), 0)
  end
end

-- encode_json(value) -> text (2-space indent, object keys sorted)
function M.encode_json(v)
  local out = {}
  local ok, err = pcall(encode, v, '', '$', out)
  if not ok then core.argerror(err) end
  return table.concat(out)
end

-- write_json(path, value): atomically (path.tmp, fsync, rename), checked by the engine's parser.
function M.write_json(path, v)
  want('io.write_json', 'path', path, 'string')
  local out = {}
  local ok, err = pcall(encode, v, '', '$', out)
  if not ok then core.argerror(path .. ': ' .. err) end
  local text = table.concat(out) .. '\n'
  check(C.craft_json_write_file(path, text, #text), 2)
end

---------------------------------------------------------------- images and CSV files
-- png_bytes(img) -> the PNG encoding of one image [C, H, W] in [0, 1] (values clamped), through
-- the engine's writer and a temporary file.
function M.png_bytes(img)
  want('io.png_bytes', 'image', img, 'tensor')
  local path = os.tmpname()
  local ok, err = pcall(M.write_png, path, img)
  if not ok then os.remove(path); error(err, 0) end
  local f = assert(io.open(path, 'rb'))
  local bytes = f:read('*a')
  f:close()
  os.remove(path)
  return bytes
end

-- read_image(path, channels) -> {h, w, c, pixels = the 8-bit HWC bytes as a string}: any image the
-- engine's reader takes (PNG, JPEG, BMP, ...); channels 0 keeps the file's. One error line naming
-- the file when it cannot be decoded.
function M.read_image(path, channels)
  want('io.read_image', 'path', path, 'string')
  want('io.read_image', 'channels', channels, 'count', true)
  local arr = ffi.new('craft_array')
  check(C.craft_image_read(path, channels or 0, arr), 2)
  local h, w, c = tonumber(arr.shape[0]), tonumber(arr.shape[1]), tonumber(arr.shape[2])
  local pixels = ffi.string(arr.data, arr.nbytes)
  C.craft_array_free(arr)
  return { h = h, w = w, c = c, pixels = pixels }
end

-- write_png(path, img): one image [C, H, W] in [0, 1] (values clamped) as an 8-bit PNG.
function M.write_png(path, img)
  want('io.write_png', 'path', path, 'string')
  want('io.write_png', 'image', img, 'tensor')
  if img:dim() ~= 3 then
    core.argerror(('io.write_png: the image must be [C, H, W], got %s'):format(core.describe(img)))
  end
  local x = img:detach():to('cpu'):float():contiguous()
  local c, h, w = x:size(1), x:size(2), x:size(3)
  local buf = ffi.new('uint8_t[?]', c * h * w)
  check(C.craft_f32_chw_to_u8_hwc(ffi.cast('float*', x:data_ptr()), c, h, w, 0, 1, buf), 2)
  check(C.craft_image_write_png(path, h, w, c, buf), 2)
end

-- csv_writer(path) -> w: w:row(cells, n) writes one row of n cells (n defaults to #cells; a nil
-- or false cell is written empty, every other with tostring), w:close() finishes the file. A
-- failing row closes the file and raises.
local Writer = {}
Writer.__index = Writer
function M.csv_writer(path)
  want('io.csv_writer', 'path', path, 'string')
  local wp = ffi.new('craft_csv_writer*[1]')
  check(C.craft_csv_writer_open(path, wp), 2)
  return setmetatable({ w = wp[0] }, Writer)
end
function Writer:row(values, n)
  n = n or #values
  local cells = ffi.new('const char*[?]', math.max(n, 1))
  local keep = {}   -- the strings `cells` points at, alive until the row is written
  for i = 1, n do
    local v = values[i]
    if v == nil or v == false then cells[i - 1] = nil
    else keep[i] = tostring(v); cells[i - 1] = keep[i] end
  end
  local rc = C.craft_csv_writer_row(self.w, n, cells)
  if rc ~= 0 then C.craft_csv_writer_close(self.w); self.w = nil; check(rc, 2) end
end
function Writer:close()
  if self.w then
    local w = self.w
    self.w = nil
    check(C.craft_csv_writer_close(w), 2)
  end
end

-- write_csv(path, rows): rows is a list of lists of cells (the first row is the header); cells
-- are written with tostring, quoted where needed.
function M.write_csv(path, rows)
  want('io.write_csv', 'path', path, 'string')
  want('io.write_csv', 'rows', rows, 'table')
  local w = M.csv_writer(path)
  for _, row in ipairs(rows) do
    local cells = {}
    for i, v in ipairs(row) do cells[i] = tostring(v) end
    w:row(cells, #row)
  end
  w:close()
end

-- read_csv(path) -> header (list of names), rows (list of {name = string cell}), each row also
-- carrying _line (the 1-based line it starts on, for error messages).
function M.read_csv(path)
  want('io.read_csv', 'path', path, 'string')
  local cp = ffi.new('craft_csv*[1]')
  check(C.craft_csv_read_file(path, 1, cp), 2)
  local csv = ffi.gc(cp[0], C.craft_csv_free)
  local header, rows = {}, {}
  local ncols = C.craft_csv_cols(csv)
  for k = 0, ncols - 1 do header[k + 1] = ffi.string(C.craft_csv_header(csv, k)) end
  for r = 0, C.craft_csv_rows(csv) - 1 do
    local row = { _line = C.craft_csv_row_line(csv, r) }
    for k = 0, ncols - 1 do row[header[k + 1]] = ffi.string(C.craft_csv_cell(csv, r, k)) end
    rows[#rows + 1] = row
  end
  return header, rows
end

return M
