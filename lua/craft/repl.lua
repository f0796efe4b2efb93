-- craft.repl: the interactive session. Line editing and history through libedit's readline
-- interface; expressions are printed (tensors readably); errors are printed and the session
-- goes on; incomplete statements continue on the next line.
local ffi = require 'ffi'
local M = {}

ffi.cdef [[
char *readline(const char *prompt);
void add_history(const char *line);
int read_history(const char *filename);
int write_history(const char *filename);
void free(void *p);
]]

local function try_readline()
  local ok = pcall(function() return ffi.C.readline end)
  return ok
end

local function reader()
  local interactive = require('craft.runtime').isatty(0)
  if interactive and try_readline() then
    local home = os.getenv('HOME')
    local hist = home and (home .. '/.craft_history')
    if hist then ffi.C.read_history(hist) end
    return function(prompt)
      local p = ffi.C.readline(prompt)
      if p == nil then return nil end
      local s = ffi.string(p)
      ffi.C.free(p)
      if s:match('%S') then
        ffi.C.add_history(s)
        if hist then ffi.C.write_history(hist) end
      end
      return s
    end, true
  end
  return function(prompt)
    if interactive then io.write(prompt); io.flush() end
    return io.read('*l')
  end, interactive
end

local function show(...)
  local n = select('#', ...)
  if n == 0 then return end
  local parts = {}
  for i = 1, n do
    local v = select(i, ...)
    parts[i] = tostring(v)
  end
  print(table.concat(parts, '\t'))
end

-- Compiles a line: first as an expression to print (parenthesised, so that an error inside a
-- call is reported at stdin:1 rather than lost to a tail call), then as an expression list,
-- then as a statement.
local function compile(src)
  local fn = loadstring('return (' .. src .. ')', '=stdin')
  if fn then return fn end
  fn = loadstring('return ' .. src, '=stdin')
  if fn then return fn end
  return loadstring(src, '=stdin')
end

function M.run()
  local craft = require 'craft'
  _G.craft = craft
  local read, interactive = reader()
  if interactive then
    print(('craft %s, %s. `craft` is loaded; Ctrl-D quits.'):format(craft.version, jit.version))
  end
  local buffer = nil
  while true do
    local line = read(buffer and '>> ' or 'craft> ')
    if line == nil then
      if interactive then io.write('\n') end
      break
    end
    local src = buffer and (buffer .. '\n' .. line) or line
    local fn, err = compile(src)
    if not fn and err and err:match("'<eof>'$") then
      buffer = src
    else
      buffer = nil
      if not fn then
        io.stderr:write('error: ', err, '\n')
      else
        local r = { pcall(fn) }
        if r[1] then show(unpack(r, 2, table.maxn(r)))
        else io.stderr:write('error: ', tostring(r[2]), '\n') end
      end
    end
  end
end

return M
