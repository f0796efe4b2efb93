-- craft.io: safetensors from Lua (round trip of dtypes and metadata, prefix / name filters,
-- f16 -> f32 on load, inspect), one clear error line for a bad file, JSON <-> Lua tables.
local craft = require 'craft'
local io_ = require 'craft.io'
local T = {}

local function tmp(name) return os.tmpname() .. '_' .. name end

function T.safetensors_round_trip(t)
  local p = tmp('rt.safetensors')
  local w = craft.randn({ 3, 4 }, { seed = 1 })
  local ids = craft.tensor({ 1, 2, 3 }, { dtype = 'i64' })
  local h = craft.tensor({ 0.5, -2 }):half()
  t.eq(io_.save_safetensors(p, { ['unet.w'] = w, ['unet.ids'] = ids, h = h, s = craft.tensor(2.5) }, { format = 'pt', note = 'x' }), 4)
  local sd, order, meta = io_.load_safetensors(p)
  t.eq(#order, 4)
  t.eq(meta.format, 'pt'); t.eq(meta.note, 'x')
  t.eq(sd['unet.w']:flat()[5], w:flat()[5], 'values')
  t.eq(sd['unet.ids'].dtype, 'i64', 'integers stay integers')
  t.eq(sd.h.dtype, 'f32', 'f16 becomes f32 by default')
  t.eq(sd.h:flat()[2], -2)
  t.eq(sd.s:dim(), 0, 'scalar')
  local raw = io_.load_safetensors(p, { dtype = 'stored' })
  t.eq(raw.h.dtype, 'f16')
  local sub = io_.load_safetensors(p, { prefix = 'unet.' })
  t.ok(sub.w ~= nil and sub.ids ~= nil and sub.h == nil, 'prefix filters and strips')
  local one = io_.load_safetensors(p, { names = { 'h' } })
  t.ok(one.h ~= nil and one.s == nil, 'names filter')
  -- a list of {name, tensor} pairs (named_parameters) saves too
  local m = craft.nn.Linear(2, 3)
  io_.save_safetensors(p, m:named_parameters())
  local list = io_.inspect(p)
  t.eq(#list, 2)
  local byname = {}
  for _, e in ipairs(list) do byname[e.name] = e end
  t.eq(byname.weight.dtype, 'F32'); t.eq(table.concat(byname.weight.shape, ','), '3,2'); t.eq(byname.weight.bytes, 24)
  os.remove(p)
end

function T.bad_files_give_one_clear_line(t)
  local p = tmp('bad.safetensors')
  local f = io.open(p, 'wb'); f:write('\16\0\0\0\0\0\0\0{"a": [1, 2, 3]}'); f:close()
  local ok, err = pcall(function() local r = io_.load_safetensors(p); return r end)
  t.ok(not ok, 'error raised')
  t.ok(tostring(err):find(p, 1, true) ~= nil, 'names the file: ' .. tostring(err))
  t.ok(not tostring(err):find('\n'), 'one line')
  t.ok(tostring(err):find('test_io.lua', 1, true) ~= nil, 'points at the caller')
  t.raises(function() io_.load_safetensors('/nonexistent/x.safetensors') end, '/nonexistent/x.safetensors')
  t.raises(function() io_.inspect(p) end, p)
  os.remove(p)
end

function T.json_to_tables_and_back(t)
  local cfg = io_.read_json('tests/fixtures/models/tiny_sd/unet/config.json')
  t.eq(cfg._class_name, 'UNet2DConditionModel')
  t.eq(cfg.block_out_channels[2], 32, 'arrays are 1-based')
  t.eq(cfg.use_linear_projection, true)
  t.eq(cfg.class_embed_type, io_.null, 'null is io.null')
  t.eq(cfg.norm_eps, 1e-5)
  local p = tmp('cfg.json')
  local v = { b = { 1, 2.5, 'x' }, a = io_.null, e = io_.array(), o = {}, s = 'q"\n', big = 2 ^ 40 }
  io_.write_json(p, v)
  local f = io.open(p); local text = f:read('*a'); f:close()
  t.ok(text:find('"a": null') < text:find('"b"'), 'sorted keys')
  local back = io_.read_json(p)
  t.eq(back.b[2], 2.5); t.eq(back.b[3], 'x'); t.eq(back.a, io_.null); t.eq(back.s, 'q"\n'); t.eq(back.big, 2 ^ 40)
  t.eq(#back.e, 0); t.eq(getmetatable(back.e), io_.array_mt, 'empty array stays an array')
  t.eq(io_.encode_json(back.o), '{}')
  t.raises(function() io_.write_json(p, { x = 0 / 0 }) end, '$.x is nan')
  t.raises(function() io_.write_json(p, { [1] = 1, [3] = 2 }) end, 'JSON keys are strings')
  f = io.open(p, 'w'); f:write('{"a": [1,}'); f:close()
  t.raises(function() io_.read_json(p) end, p)
  os.remove(p)
  t.eq(io_.decode_json('[1, {"k": false}]')[2].k, false)
end

return T
