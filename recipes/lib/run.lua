-- recipes/lib/run.lua: the run options the experiment recipes share.
--   seeds(args, default) -> the training seeds: --seeds 0,1,2; with --tune, tuning seeds 100 and up
--     (as many as the default has), so that recipe choices never see the reported seeds
--   jobs(args) -> --jobs N, else the number of CPU cores (at most 4): worker processes
local M = {}

function M.seeds(args, default)
  local r = {}
  if args.seeds and args.seeds ~= '' then
    for s in tostring(args.seeds):gmatch('%d+') do r[#r + 1] = tonumber(s) end
  else
    for i, s in ipairs(default) do r[i] = args.tune and (100 + i - 1) or s end
  end
  if args.tune then
    for _, s in ipairs(r) do
      if s < 100 then error(('--tune runs use tuning seeds (100 and up), got %d'):format(s), 0) end
    end
  end
  return r
end

function M.jobs(args)
  if args.jobs and args.jobs > 0 then return args.jobs end
  local f = io.popen('nproc 2>/dev/null')
  local n = f and tonumber(f:read('*l')) or 1
  if f then f:close() end
  return math.max(1, math.min(n, 4))
end

return M
