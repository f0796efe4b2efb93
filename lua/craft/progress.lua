-- craft.progress: a one-line progress bar with rate and ETA, on stderr. Quiet when stderr is
-- not a terminal unless CRAFT_PROGRESS=1 (then it prints a line every 10 %), and on every rank
-- but 0 of a data-parallel run (craft.dist).
--   local bar = craft.progress(total, 'training')
--   for i = 1, total do ...; bar:update(i, {loss = l}) end
--   bar:done()
local runtime = require 'craft.runtime'
local now = runtime.now

local function clock(s)
  if s ~= s or s == math.huge then return '--:--' end
  s = math.floor(s + 0.5)
  local h, m = math.floor(s / 3600), math.floor(s / 60) % 60
  if h > 0 then return ('%d:%02d:%02d'):format(h, m, s % 60) end
  return ('%d:%02d'):format(m, s % 60)
end

local Bar = {}
Bar.__index = Bar
-- P.watch, when set, is called at most once a second from every bar's update (a worker of a
-- parallel experiment uses it to stop when the experiment that started it is gone)
local P = {}
local last_watch = 0

local function new(total, label)
  local tty = runtime.isatty(2)
  local forced = os.getenv('CRAFT_PROGRESS') == '1'
  local root = require('craft.dist').is_root()
  return setmetatable({ total = total, label = label or '', t0 = now(), last = -1, tty = tty,
    enabled = (tty or forced) and root, last_decile = -1 }, Bar)
end

function Bar:update(i, extra)
  if P.watch then
    local tw = now()
    if tw - last_watch >= 1 then last_watch = tw; P.watch() end
  end
  if not self.enabled then return end
  local t = now()
  if self.tty and t - self.last < 0.1 and i < self.total then return end
  self.last = t
  local el = t - self.t0
  local rate = i / math.max(el, 1e-9)
  local frac = self.total > 0 and i / self.total or 1
  local eta = rate > 0 and (self.total - i) / rate or math.huge
  local parts = {}
  if extra then
    local keys = {}
    for k in pairs(extra) do keys[#keys + 1] = k end
    table.sort(keys)
    for _, k in ipairs(keys) do
      local v = extra[k]
      parts[#parts + 1] = type(v) == 'number' and ('%s %.4g'):format(k, v) or (k .. ' ' .. tostring(v))
    end
  end
  local width = 24
  local filled = math.floor(frac * width)
  local line = ('%s [%s%s] %3d%% %d/%d %.2f/s eta %s %s'):format(self.label, ('='):rep(filled),
    (' '):rep(width - filled), math.floor(frac * 100), i, self.total, rate, clock(eta),
    table.concat(parts, ' '))
  if self.tty then
    io.stderr:write('\r', line, '\27[K')
  else
    local decile = math.floor(frac * 10)
    if decile > self.last_decile then self.last_decile = decile; io.stderr:write(line, '\n') end
  end
end

function Bar:done(msg)
  if not self.enabled then return end
  local el = now() - self.t0
  if self.tty then io.stderr:write('\r\27[K') end
  io.stderr:write(('%s: %d in %s%s\n'):format(self.label, self.total, clock(el), msg and (', ' .. msg) or ''))
end

P.new = new
return setmetatable(P, { __call = function(_, total, label) return new(total, label) end })
