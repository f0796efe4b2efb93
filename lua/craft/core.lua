-- craft.core: the FFI binding of libcraft. Declares the C API from the engine's own header
-- text (embedded in the library at build time) and turns a failing status into a Lua error
-- carrying the engine's message. Nothing else in Lua calls the C library without `check`.
local ffi = require 'ffi'

local M = {}

local function find_library()
  -- Inside the craft executable the symbols are already global (ffi.C); from plain LuaJIT
  -- load the shared library next to this file's build tree, or from the system.
  local ok = pcall(function() ffi.cdef 'const char *craft_cdef_text(void);' end)
  local ok2 = pcall(function() return ffi.C.craft_cdef_text end)
  if ok2 then return ffi.C end
  local here = debug.getinfo(1, 'S').source:match('^@(.*)/lua/craft/core%.lua$')
  local candidates = {}
  if os.getenv('CRAFT_LIB') then candidates[#candidates + 1] = os.getenv('CRAFT_LIB') end
  if here then candidates[#candidates + 1] = here .. '/build/libcraft.so' end
  candidates[#candidates + 1] = 'craft'
  for _, name in ipairs(candidates) do
    local okl, lib = pcall(ffi.load, name, true)
    if okl then return lib end
  end
  error('craft: cannot find libcraft (set CRAFT_LIB to the path of libcraft.so)', 0)
end

local C = find_library()
ffi.cdef(ffi.string(C.craft_cdef_text()))
local profile_to = os.getenv('CRAFT_PROFILE')
if profile_to and profile_to ~= '' and profile_to ~= '0' then   -- per-call timing (craft.profile)
  local P = require 'craft.profile'
  C = P.wrap(C)
  P.print_at_exit(profile_to)
end
M.C = C
M.ffi = ffi

-- The error points at the user's code: the first frame up the stack that is neither C nor a
-- file of the craft library (found by walking the stack, so tail calls inside the library, which
-- leave no frame, cannot shift the position). The level argument is accepted and ignored.
local function library_file(src)
  return src:find('[/\\]craft[/\\][^/\\]+%.lua$') or src:find('[/\\]craft[/\\][%w_]+[/\\][^/\\]+%.lua$')
    or src:find('[/\\]lua[/\\]craft[/\\].+%.lua$')   -- deeper folders (craft/cas/dims/...)
end
local function user_level()
  local level = 3                       -- 1: user_level, 2: check / argerror, 3: their caller
  while true do
    local info = debug.getinfo(level, 'S')
    if not info then return 2 end
    if info.what ~= 'C' and not library_file(info.source) then return level - 1 end
    level = level + 1
  end
end
M.user_level = user_level

function M.check(rc)
  if rc ~= 0 then
    error(ffi.string(C.craft_last_error()), user_level())
  end
end

-- Raise a craft-style error for bad Lua-side arguments, at the user's line.
function M.argerror(msg)
  error(msg, user_level())
end

-- Argument checks of the library's public functions. want(fname, what, v, kind, optional)
-- returns v when it is of the kind, else raises "<fname>: <what> must be <kind>, got <v>" at
-- the user's line. Kinds: string, number, integer, count (integer >= 0), positive (integer
-- >= 1), table, tensor, list (a table or a tensor), function, boolean, cdata; several joined
-- by '|'.
local function is_tensor(v) return type(v) == 'table' and type(rawget(v, '_c')) == 'cdata' end
local KINDS = {
  string = { 'a string', function(v) return type(v) == 'string' end },
  number = { 'a number', function(v) return type(v) == 'number' end },
  integer = { 'an integer', function(v) return type(v) == 'number' and v % 1 == 0 end },
  count = { 'an integer >= 0', function(v) return type(v) == 'number' and v % 1 == 0 and v >= 0 end },
  positive = { 'an integer >= 1', function(v) return type(v) == 'number' and v % 1 == 0 and v >= 1 end },
  table = { 'a table', function(v) return type(v) == 'table' and not is_tensor(v) end },
  tensor = { 'a tensor', is_tensor },
  list = { 'a list or a tensor', function(v) return type(v) == 'table' end },
  ['function'] = { 'a function', function(v) return type(v) == 'function' end },
  boolean = { 'a boolean', function(v) return type(v) == 'boolean' end },
  cdata = { 'a C array (cdata)', function(v) return type(v) == 'cdata' end },
}
function M.describe(v)
  if is_tensor(v) then
    local c = v._c
    local dims = {}
    for i = 0, c.ndim - 1 do dims[#dims + 1] = tostring(tonumber(c.shape[i])) end
    return ('a tensor [%s] %s'):format(table.concat(dims, ', '), M.DTYPE_NAMES[tonumber(c.dtype)] or '?')
  elseif type(v) == 'string' then
    return ('the string %q'):format(#v > 40 and v:sub(1, 40) .. '...' or v)
  elseif type(v) == 'number' or type(v) == 'boolean' then
    return tostring(v)
  elseif v == nil then
    return 'nil'
  end
  return 'a ' .. type(v)
end
-- 'a|b' -> the specs of a and b, parsed once per kind string (want runs on every op call)
local parsed = {}
local function specs_of(kind)
  local list = parsed[kind]
  if not list then
    list = {}
    for k in kind:gmatch('[^|]+') do list[#list + 1] = KINDS[k] or error('want: unknown kind ' .. k) end
    parsed[kind] = list
  end
  return list
end
-- want_items(fname, what, t, kind): t is a table and each t[i] is of the kind ("what[i]" in the error)
function M.want_items(fname, what, t, kind)
  M.want(fname, what, t, 'table')
  for i = 1, #t do M.want(fname, ('%s[%d]'):format(what, i), t[i], kind) end
  return t
end
function M.want(fname, what, v, kind, optional)
  if v == nil and optional then return v end
  local list = specs_of(kind)
  for i = 1, #list do if list[i][2](v) then return v end end
  local names = {}
  for i = 1, #list do names[i] = list[i][1] end
  error(('%s: %s must be %s, got %s'):format(fname, what, table.concat(names, ' or '), M.describe(v)),
    user_level())
end

M.DTYPES = { f32 = 0, f16 = 1, bf16 = 2, i64 = 3, i32 = 4, u8 = 5, f64 = 6, i8 = 7, bool = 8 }
M.DTYPE_NAMES = {}
for k, v in pairs(M.DTYPES) do M.DTYPE_NAMES[v] = k end
M.DTYPE_ALIASES = { float32 = 'f32', float = 'f32', float16 = 'f16', half = 'f16', bfloat16 = 'bf16',
  int64 = 'i64', long = 'i64', int32 = 'i32', int = 'i32', uint8 = 'u8', float64 = 'f64', double = 'f64',
  int8 = 'i8' }

function M.dtype_code(name)
  if name == nil then return 0 end
  if type(name) == 'number' then return name end
  local n = M.DTYPE_ALIASES[name] or name
  local code = M.DTYPES[n]
  if not code then
    M.argerror(('unknown dtype %q (known: f32 f16 bf16 f64 i64 i32 i8 u8 bool)'):format(tostring(name)))
  end
  return code
end

return M
