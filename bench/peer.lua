-- bench/peer.lua: the python the Lua benchmarks' PyTorch peers run on (bench_common.h has the
-- same rule for the C ones): CRAFT_PEER_PYTHON (bench/run.sh sets it), else the venv that
-- `sh tools/setup.sh --bench` makes (.venv-bench: PyTorch 2.x from PyPI), else /usr/bin/python3.
--   local peer_python = dofile('bench/peer.lua').python()
local M = {}

function M.python()
  local py = os.getenv('CRAFT_PEER_PYTHON')
  if py and py ~= '' then return py end
  local f = io.open('.venv-bench/bin/python')
  if f then f:close(); return '.venv-bench/bin/python' end
  return '/usr/bin/python3'
end

return M
