-- craft.cli: the `craft` command line. `craft` alone starts the REPL; `craft file.lua args...`
-- runs a recipe; `craft -e 'code'` runs code; `craft <command> ...` runs a subcommand from
-- lua/craft/commands/<command>.lua.
local M = {}

local USAGE = [==[
usage: craft [options] [recipe.lua [args...]]
       craft [options] <command> [args...]
options:
  -e CODE          run CODE (may be repeated; runs before a recipe)
  -i               start the REPL after running the recipe / code
  -t, --threads N  number of CPU threads (default: all cores)
  --device DEV     the current device: tensors, models, batches and optimiser state go there
                   (cpu, cl:0, ...; `craft devices` lists them; cl:auto: one per MPI rank)
  --precision P    fp32 (default) or bf16: matmul, linear, conv2d and attention that record no
                   gradient compute with bf16 operands and fp32 accumulation where the device
                   has bf16 kernels; bf16-mixed: recorded ones too, and their input gradients
                   (mixed-precision training); fp16: as bf16 with f16 operands, on OpenCL
                   devices (craft.set_precision; docs/backends.md)
  --guard          check every op's output and gradient for NaN/Inf
  -v, --version    print the version
  -h, --help       this help
commands:
%s
environment:
  CRAFT_PROFILE=1  at exit, print where the time went: each engine call (conv2d, linear, sdpa, ...)
                   with its count, total time and share of the wall time (=FILE: append it there)
With no recipe, command or -e, craft starts an interactive REPL (history in ~/.craft_history).]==]

local function list_commands()
  local lines = {}
  local dir
  for p in package.path:gmatch('[^;]+') do
    local d = p:match('^(.*)/%?%.lua$')
    if d then
      local f = io.open(d .. '/craft/commands/init.lua')
      if f then f:close(); dir = d .. '/craft/commands'; break end
    end
  end
  local ok, index = pcall(require, 'craft.commands')
  if ok then
    for _, c in ipairs(index) do lines[#lines + 1] = ('  %-16s %s'):format(c[1], c[2]) end
  end
  return table.concat(lines, '\n'), dir
end

local function run_chunk(chunk, name, args)
  local fn, err = loadstring(chunk, name)
  if not fn then error(err, 0) end
  return fn(unpack(args or {}))
end

-- A recipe runs with its folder and the repository's recipes/ on package.path (craft.repo), so it
-- requires its helpers and finds the repository's files from any working directory.
local function run_file(path, args)
  require('craft.repo').setup(path)
  local fn, err = loadfile(path)
  if not fn then
    local f = io.open(path)
    if not f then error('cannot open ' .. path .. ': no such file', 0) end
    f:close()
    error(err, 0)
  end
  _G.arg = { [0] = path }
  for i, a in ipairs(args) do _G.arg[i] = a end
  return fn(unpack(args))
end

function M.main(argv)
  -- started by mpirun / srun: join the job first (craft.dist; one rank of one otherwise)
  require 'craft.dist'
  local codes, interactive, script, rest = {}, false, nil, {}
  local i = 1
  while argv[i] do
    local a = argv[i]
    if script then rest[#rest + 1] = a
    elseif a == '-e' then
      i = i + 1
      if not argv[i] then error('-e needs an argument', 0) end
      codes[#codes + 1] = argv[i]
    elseif a == '-i' then interactive = true
    elseif a == '-t' or a == '--threads' then
      i = i + 1
      local n = tonumber(argv[i])
      if not n or n < 1 then error(a .. ' needs a positive number', 0) end
      require('craft.runtime').set_num_threads(n)
    elseif a == '--device' then
      i = i + 1
      if not argv[i] then error('--device needs an argument (cpu, cl:0, ...)', 0) end
      -- the current device of the whole run, checked now (a missing device fails here, not later);
      -- cl:auto is resolved on first use, once the MPI job is joined (craft.device)
      if argv[i] == 'cl:auto' then _G.CRAFT_DEVICE = argv[i]
      else
        local ok, err = pcall(require('craft.device').set_default, argv[i])
        if not ok then error('--device ' .. argv[i] .. ': ' .. tostring(err), 0) end
      end
    elseif a == '--precision' then
      i = i + 1
      if argv[i] ~= 'fp32' and argv[i] ~= 'bf16' and argv[i] ~= 'bf16-mixed' and argv[i] ~= 'fp16' then
        error('--precision needs fp32, bf16, bf16-mixed or fp16' .. (argv[i] and (', not ' .. argv[i]) or ''),
          0)
      end
      require('craft.autograd').set_precision(argv[i])
    elseif a == '--guard' then require('craft.runtime').set_numeric_guard(true)
    elseif a == '-v' or a == '--version' then
      print('craft ' .. require('craft.runtime').version() .. ' (' .. jit.version .. ')')
      return 0
    elseif a == '-h' or a == '--help' then
      print(USAGE:format((list_commands())))
      return 0
    elseif a:sub(1, 1) == '-' and #a > 1 then
      error('unknown option ' .. a .. ' (craft --help lists them)', 0)
    else
      script = a
    end
    i = i + 1
  end
  for k, c in ipairs(codes) do run_chunk(c, '=(command line ' .. k .. ')') end
  if script then
    local is_file = script:match('%.lua$') or script:find('/')
    if not is_file then
      local ok, index = pcall(require, 'craft.commands')
      local known = false
      if ok then for _, c in ipairs(index) do if c[1] == script then known = true end end end
      if known then
        local cmd = require('craft.commands.' .. script)
        local rc = cmd.main(rest)
        if interactive then require('craft.repl').run() end
        return rc or 0
      end
      local f = io.open(script)
      if f then f:close() else
        error(('%s is neither a file nor a command (craft --help lists the commands)'):format(script), 0)
      end
    end
    local r = run_file(script, rest)
    if interactive then require('craft.repl').run() end
    return type(r) == 'number' and r or 0
  end
  if #codes == 0 or interactive then require('craft.repl').run() end
  return 0
end

return M
