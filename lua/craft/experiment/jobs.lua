-- craft.experiment.jobs: an experiment's independent work as jobs, run side by side.
-- A job is one (method, training seed): adapt the generator, generate, evaluate; it writes its
-- folder (RUN/<method key>/s<seed>/) and ends with done.json. A method that starts from another
-- (m.from) depends on that method's job of the same seed. With cfg.jobs > 1 the jobs run in
-- worker processes (the same craft binary and recipe, told which job to run by the environment
-- variable CRAFT_EXPERIMENT_JOB), at most cfg.jobs at a time; with 1 they run here, in order.
-- Every job runs on one thread either way, so the numbers do not depend on cfg.jobs.
-- With cfg.reuse a job whose done.json records the same specification is not run again.
-- Under MPI (craft.dist) there are no workers: every rank runs every job here, in order, each on
-- its share of the job's batches and images (forking a worker from an MPI process is not safe).
local core = require 'craft.core'
local io_ = require 'craft.io'
local argerror = core.argerror

local M = {}

M.ENV = 'CRAFT_EXPERIMENT_JOB'
M.PARENT_ENV = 'CRAFT_EXPERIMENT_PARENT'

local function exists(p) local f = io.open(p) if f then f:close() return true end return false end
local function say(fmt, ...) io.stderr:write(('[%s] '):format(os.date('%H:%M:%S')), fmt:format(...), '\n') end
local function sh_quote(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end

-- The plain-data part of a value (functions, tensors and cycles dropped): what a job's
-- specification compares on.
local function plain(v, seen)
  local t = type(v)
  if t == 'number' or t == 'string' or t == 'boolean' then return v end
  if t ~= 'table' or require('craft.tensor').is_tensor(v) then return nil end
  seen = seen or {}
  if seen[v] then return nil end
  seen[v] = true
  local r = {}
  for k, x in pairs(v) do
    if type(k) == 'string' and k:sub(1, 1) ~= '_' then r[k] = plain(x, seen) end
    if type(k) == 'number' then r[k] = plain(x, seen) end
  end
  seen[v] = nil
  return r
end
M.plain = plain

-- plan(cfg) -> jobs in dependency order: {key, dir, method = m, seed, deps = {keys}, spec}
function M.plan(cfg)
  local jobs, by_name = {}, {}
  for _, m in ipairs(cfg.methods) do by_name[m.name] = m end
  for _, m in ipairs(cfg.methods) do
    if m.from and not by_name[m.from] then
      argerror(('experiment: method %q starts from %q, which is not among the methods'):format(m.name,
        m.from))
    end
    for _, seed in ipairs(cfg.train_seeds) do
      local key = ('%s/s%d'):format(m.key, seed)
      local deps = {}
      if m.from then deps[1] = ('%s/s%d'):format(by_name[m.from].key, seed) end
      local spec = io_.encode_json(plain { method = m, seed = seed, generate = cfg.generate, tune = cfg.tune
        or false,
        from = m.from and plain(by_name[m.from]) or false })
      jobs[#jobs + 1] = { key = key, dir = cfg.out .. '/' .. key, method = m, seed = seed, deps = deps,
        spec = spec,
        cost = m.cost or 1 }
    end
  end
  -- dependencies come first in the list (a method may start from a later-listed one)
  local order, placed = {}, {}
  local function place(j, stack)
    if placed[j.key] then return end
    if stack[j.key] then argerror('experiment: methods start from each other in a circle: ' .. j.key) end
    stack[j.key] = true
    for _, d in ipairs(j.deps) do
      for _, o in ipairs(jobs) do if o.key == d then place(o, stack) end end
    end
    stack[j.key] = nil
    placed[j.key] = true
    order[#order + 1] = j
  end
  for _, j in ipairs(jobs) do place(j, {}) end
  -- priority: a job's own cost plus everything waiting on it, so that a job many others depend on
  -- (TI + LoRA of a seed) starts before costlier jobs that nothing waits for
  for k = #order, 1, -1 do
    local j = order[k]
    j.priority = j.cost
    for _, o in ipairs(order) do
      for _, d in ipairs(o.deps) do if d == j.key then j.priority = j.priority + o.priority end end
    end
  end
  return order
end

function M.find(jobs, key)
  for _, j in ipairs(jobs) do if j.key == key then return j end end
end

-- done(job) -> the job's done.json table when it finished with the same specification
function M.done(job)
  local p = job.dir .. '/done.json'
  if not exists(p) then return nil end
  local ok, d = pcall(io_.read_json, p)
  if ok and type(d) == 'table' and d.spec == job.spec then return d end
  return nil
end

local function self_pid()
  local f = io.popen('echo $PPID')
  local pid = f and tonumber(f:read('*l'))
  if f then f:close() end
  return pid
end

-- lock(dir) -> release(): one experiment per run folder. Two experiments writing one folder would
-- run the same jobs twice and race on their files; the second is refused, naming the first's pid.
-- A lock left by a process that is gone is taken over.
function M.lock(dir)
  core.want('jobs.lock', 'dir', dir, 'string')
  local path = dir .. '/.experiment.lock'
  local f = io.open(path)
  if f then
    local pid = tonumber(f:read('*l') or '')
    f:close()
    local alive = pid and io.open('/proc/' .. pid .. '/stat')
    if alive then
      alive:close()
      argerror(('experiment: %s is in use by another experiment (pid %d); '
        .. 'wait for it, stop it, or give another --out'):format(dir, pid))
    end
  end
  local me = self_pid()
  local w = assert(io.open(path, 'w'))
  w:write(tostring(me or 0), '\n')
  w:close()
  return function() os.remove(path) end
end

-- In a worker: stop when the experiment that started it has gone (it was interrupted), checked
-- from the progress bars' updates (craft.progress.watch) once a second.
function M.watch_parent()
  local pid = tonumber(os.getenv(M.PARENT_ENV) or '')
  if not pid then return end
  require('craft.progress').watch = function()
    local f = io.open('/proc/' .. pid .. '/stat')
    if f then f:close() else
      io.stderr:write(('experiment worker: the experiment (pid %d) is gone; stopping\n'):format(pid))
      os.exit(3)
    end
  end
end

-- the craft binary running this process, and the recipe with its arguments
local function self_command()
  local f = io.popen('readlink /proc/$PPID/exe 2>/dev/null')
  local exe = f and f:read('*l')
  if f then f:close() end
  local a = rawget(_G, 'arg')
  if not exe or exe == '' or type(a) ~= 'table' or type(a[0]) ~= 'string' then return nil end
  -- the recipe by its absolute path: a worker must find it whatever its working directory
  local parts = { sh_quote(exe), '-t', '1' }
  -- the same current device as this process (--device, craft.set_default_device, cfg.device)
  local dev = require('craft.device').default()
  if dev ~= 'cpu' then parts[#parts + 1] = '--device'; parts[#parts + 1] = sh_quote(dev) end
  -- and the same compute precision (--precision, craft.set_precision)
  local prec = require('craft.autograd').precision()
  if prec ~= 'fp32' then parts[#parts + 1] = '--precision'; parts[#parts + 1] = prec end
  parts[#parts + 1] = sh_quote(require('craft.repo').absolute(a[0]))
  for i = 1, #a do parts[#parts + 1] = sh_quote(a[i]) end
  return table.concat(parts, ' ')
end

local function tail_of(path, n)
  local f = io.open(path)
  if not f then return '(no log)' end
  local lines = {}
  for l in f:lines() do lines[#lines + 1] = l; if #lines > n then table.remove(lines, 1) end end
  f:close()
  return table.concat(lines, '\n')
end

local function in_process(jobs, exec, todo)
  local prev = require('craft.runtime').num_threads()
  for _, j in ipairs(jobs) do
    if todo[j.key] then
      require('craft.runtime').set_num_threads(1)
      local ok, err = pcall(exec, j)
      require('craft.runtime').set_num_threads(prev)
      if not ok then error(err, 0) end
    end
  end
end

-- run(cfg, jobs, exec): exec(job) is what a job does (in this process or a worker's). Returns the
-- set of job keys that ran in worker processes (their device work is not in this process's count).
function M.run(cfg, jobs, exec)
  local dist = require 'craft.dist'
  local todo, n_todo = {}, 0
  for _, j in ipairs(jobs) do
    if cfg.reuse and M.done(j) then
      if dist.is_root() then say('%s: reusing the finished job in %s', j.key, j.dir) end
    else
      todo[j.key] = true
      n_todo = n_todo + 1
      os.remove(j.dir .. '/done.json')
    end
  end
  if n_todo == 0 then return {} end
  local N = math.min(cfg.jobs or 1, n_todo)
  if dist.active() then
    if N > 1 and dist.is_root() then
      say('experiment: %d jobs one after another, each across the %d ranks (no worker processes under MPI)',
        n_todo, dist.size())
    end
    N = 1
  end
  local cmd = N > 1 and self_command()
  if N > 1 and not cmd then
    say('experiment: cannot find the craft binary or the recipe to start workers; running the jobs here')
    N = 1
  end
  if N <= 1 then in_process(jobs, exec, todo); return {} end

  say('experiment: %d jobs, %d at a time (one thread each)', n_todo, N)
  local my_pid = self_pid()
  local running, finished, t_start = {}, {}, os.time()
  for _, j in ipairs(jobs) do if not todo[j.key] then finished[j.key] = true end end
  local function ready(j)
    if not todo[j.key] or running[j.key] or finished[j.key] then return false end
    for _, d in ipairs(j.deps) do if not finished[d] then return false end end
    return true
  end
  local function kill_all()
    for _, r in pairs(running) do
      os.execute(('pkill -TERM -P %d 2>/dev/null; kill -TERM %d 2>/dev/null'):format(r.pid, r.pid))
    end
  end
  local n_done, n_running, in_workers = 0, 0, {}
  while n_done < n_todo do
    -- start the ready jobs with the most work behind them first
    local cand = {}
    for _, j in ipairs(jobs) do if ready(j) then cand[#cand + 1] = j end end
    table.sort(cand, function(a, b)
      if a.priority ~= b.priority then return a.priority > b.priority end return a.key < b.key
    end)
    for _, j in ipairs(cand) do
      if n_running >= N then break end
      os.execute('mkdir -p ' .. sh_quote(j.dir))
      local log, rc = j.dir .. '/worker.log', j.dir .. '/worker.rc'
      os.remove(rc)
      -- CRAFT_PROGRESS=1: the worker's progress bars write a line every 10 % to its log
      local line = ('CRAFT_PROGRESS=1 %s=%s %s=%d %s > %s 2>&1; echo $? > %s'):format(M.ENV, sh_quote(j.key),
        M.PARENT_ENV, my_pid or 0,
        cmd, sh_quote(log), sh_quote(rc))
      local p = io.popen('sh -c ' .. sh_quote(line) .. ' >/dev/null 2>&1 & echo $!')
      local pid = tonumber(p:read('*l'))
      p:close()
      running[j.key] = { pid = pid, rc = rc, log = log, t0 = os.time(), job = j }
      n_running = n_running + 1
    end
    os.execute('sleep 0.5')
    for key, r in pairs(running) do
      local f = io.open(r.rc)
      local code = f and tonumber(f:read('*l'))
      if f then f:close() end
      if code then
        running[key] = nil
        n_running = n_running - 1
        if code ~= 0 or not exists(r.job.dir .. '/done.json') then
          kill_all()
          error(('experiment: job %s failed (exit %d); the end of its log (%s):\n%s'):format(key, code, r.log,
            tail_of(r.log, 12)), 0)
        end
        finished[key] = true
        in_workers[key] = true
        n_done = n_done + 1
        say('%s done in %.1f min (%d/%d jobs, %.1f min so far)', key, (os.time() - r.t0) / 60, n_done, n_todo,
          (os.time() - t_start) / 60)
      end
    end
  end
  return in_workers
end

return M
