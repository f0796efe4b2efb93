-- bench/common.lua: what the Lua benchmarks share (bench_common.h is the C side):
--   local B = dofile('bench/common.lua')
--   local args = B.args({ batch = 1, steps = 1 }, { 'no-peer', 'tiny' })   -- defaults, switches
--   local py = B.peer_python()
local M = {}

-- The python the PyTorch peers run on: CRAFT_PEER_PYTHON (bench/run.sh sets it), else the venv
-- `sh tools/setup.sh --bench` makes (.venv-bench: PyTorch 2.x from PyPI), else /usr/bin/python3.
function M.peer_python()
  local py = os.getenv('CRAFT_PEER_PYTHON')
  if py and py ~= '' then return py end
  local f = io.open('.venv-bench/bin/python')
  if f then f:close(); return '.venv-bench/bin/python' end
  return '/usr/bin/python3'
end

-- The script's command line (the global `arg`): `--name value` pairs (numbers when they read as
-- numbers) over `defaults`, and the switches named in `switches` (`--no-peer` -> args.no_peer).
function M.args(defaults, switches)
  local args, is_switch = {}, {}
  for k, v in pairs(defaults or {}) do args[k] = v end
  for _, s in ipairs(switches or {}) do is_switch[s] = true end
  local i = 1
  while arg[i] do
    local name = arg[i]:match('^%-%-(.+)')
    if not name then error(('%s: unexpected argument %q'):format(arg[0] or 'bench', arg[i]), 0) end
    if is_switch[name] then args[(name:gsub('%-', '_'))] = true
    else
      if arg[i + 1] == nil then error(('%s: --%s needs a value'):format(arg[0] or 'bench', name), 0) end
      args[(name:gsub('%-', '_'))] = tonumber(arg[i + 1]) or arg[i + 1]
      i = i + 1
    end
    i = i + 1
  end
  return args
end

-- The last non-blank line of a file ('' when it cannot be read): why a peer failed, from its log.
function M.last_line(path)
  local f = io.open(path)
  if not f then return '' end
  local last = ''
  for l in f:lines() do if l:match('%S') then last = l end end
  f:close()
  return last
end

-- x quoted for sh
function M.shell_quote(x) return "'" .. tostring(x):gsub("'", "'\\''") .. "'" end

-- Runs `py script args --json TMP` (args: the rest of the command line, already quoted), its output
-- to a log: the peer's JSON table, or nil and why (its exit status and the log's last line).
function M.run_peer(py, script, args)
  local tmp, log = os.tmpname(), os.tmpname()
  local rc = os.execute(('%s %s %s --json %s > %s 2>&1'):format(M.shell_quote(py), script, args, tmp, log))
  local res, why
  if rc == 0 then
    local ok, r = pcall(require('craft.io').read_json, tmp)
    if ok then res = r else why = 'its JSON could not be read: ' .. tostring(r) end
  else
    if type(rc) == 'number' and rc > 255 then rc = math.floor(rc / 256) end   -- a wait status (Lua 5.1)
    why = ('%s exited with %s: %s'):format(script, tostring(rc), M.last_line(log))
  end
  os.remove(tmp); os.remove(log)
  return res, why
end

-- The peer's python when it exists and imports every module in `modules` (a list), else nil and
-- why (the "peer skipped: why" line).
function M.peer_ready(modules)
  local py = M.peer_python()
  if py:find('/', 1, true) then
    local f = io.open(py)
    if not f then return nil, py .. ' does not exist (sh tools/setup.sh --bench makes .venv-bench)' end
    f:close()
  end
  local log = os.tmpname()
  local quoted = "'" .. py:gsub("'", "'\\''") .. "'"
  local ok = os.execute(('%s -c "import %s" > %s 2>&1'):format(quoted, table.concat(modules, ', '), log)) == 0
  local why = not ok and M.last_line(log)
  os.remove(log)
  if not ok then
    local names = #modules > 1 and table.concat(modules, ', ', 1, #modules - 1) .. ' and ' .. modules[#modules]
      or modules[1]
    return nil, ('%s cannot import %s (%s; sh tools/setup.sh --bench)'):format(py, names, why)
  end
  return py
end

return M
