-- craft study: the blinded reader study (docs/reader_study.md).
--   craft study make RUN_DIR --out PACKET [--per-class N] [--methods a,b] [--real N] [--seed S]
--                    [--instructions FILE] [--force]
--   craft study scan PACKET
--   craft study score KEY_JSON RATINGS.json... [--out DIR] [--boot N] [--boot-seed S]
local M = {}

local USAGE = [[
usage: craft study make RUN_DIR --out PACKET [--per-class N] [--methods KEY,NAME,...] [--real N]
                        [--seed S] [--instructions FILE] [--force]
       craft study scan PACKET
       craft study score KEY_JSON RATINGS.json... [--out DIR] [--boot N] [--boot-seed S]
make:  writes PACKET/study.html (send it to the readers) and PACKET/key.json (keep it).
       --per-class N  trials per class (default: as many as every method has images for, at most 10)
       --methods      the methods to compare, by key or name (default: all of the run's)
       --real N       real test-split images added to each trial (default 0)
       --seed S       makes the packet reproducible (anyone with S and the run can rebuild the key)
scan:  checks a packet's page for anything that could unblind it.
score: un-blinds the ratings and writes DIR/index.html and CSVs (default DIR: RUN/study when
       the key's run directory exists); --boot N bootstrap resamples (default 2000).]]

local function parse(args, first, flags, values)
  local o, pos = {}, {}
  local i = first
  while args[i] do
    local a = args[i]
    if a == '-h' or a == '--help' then print(USAGE); return nil end
    if a:match('^%-%-') then
      local k = a:sub(3)
      if flags[k] then o[k] = true
      elseif values[k] then
        if args[i + 1] == nil then error(('craft study: %s needs a value\n%s'):format(a, USAGE), 0) end
        o[k] = args[i + 1]
        i = i + 1
      else
        error(('craft study: unknown option %s\n%s'):format(a, USAGE), 0)
      end
    else
      pos[#pos + 1] = a
    end
    i = i + 1
  end
  return o, pos
end

local function int_opt(o, k, min)
  if o[k] == nil then return nil end
  local n = tonumber(o[k])
  if not n or n % 1 ~= 0 or n < min then error(('craft study: --%s must be an integer >= %d, got %q'):format(k, min, o[k]), 0) end
  return n
end

local function make(args)
  local o, pos = parse(args, 2, { force = true },
    { out = true, ['per-class'] = true, methods = true, real = true, seed = true, instructions = true })
  if not o then return 0 end
  if #pos ~= 1 or not o.out then error(USAGE, 0) end
  local methods
  if o.methods then
    methods = {}
    for m in o.methods:gmatch('[^,]+') do methods[#methods + 1] = m:match('^%s*(.-)%s*$') end
  end
  local r = require('craft.study.make').packet { run = pos[1], out = o.out, per_class = int_opt(o, 'per-class', 1),
    methods = methods, real = int_opt(o, 'real', 0), seed = o.seed, instructions = o.instructions, force = o.force }
  local names = {}
  for _, c in ipairs(r.conditions) do names[#names + 1] = c.name end
  print(('packet %s: %d trials (%d per class), %d images each (%s), %d images in all'):format(r.packet, r.trials,
    r.per_class, #r.conditions, table.concat(names, ', '), r.images))
  print(('  %s (%.1f MB): send this to the readers'):format(r.html, r.html_bytes / 1e6))
  print(('  %s: keep this; it un-blinds the ratings'):format(r.key))
  return 0
end

local function scan_cmd(args)
  local o, pos = parse(args, 2, {}, {})
  if not o then return 0 end
  if #pos ~= 1 then error(USAGE, 0) end
  local key = require('craft.study.ratings').read_key(pos[1] .. '/key.json', 'craft study scan')
  local bare = require('craft.study.ratings').bare
  local ok, run = pcall(require('craft.io').read_json, key.run.dir .. '/run.json')
  if not ok then error('craft study scan: the key\'s run: ' .. bare(run), 0) end
  local rows
  ok, rows = pcall(require('craft.samples').read, key.run.dir .. '/samples')
  if not ok then error('craft study scan: the key\'s run: ' .. bare(rows), 0) end
  local f = io.open(pos[1] .. '/study.html', 'rb')
  if not f then error('craft study scan: no ' .. pos[1] .. '/study.html', 0) end
  local html = f:read('*a')
  f:close()
  local scan = require 'craft.study.scan'
  local findings, info = scan.page(html, scan.forbidden(run, rows))
  for _, fd in ipairs(findings) do print(('LEAK %s %q: ...%s...'):format(fd.what, fd.text, fd.context)) end
  if #findings > 0 then return 1 end
  print(('%s/study.html: no method name, key, kind or file name; %d images, all %d bytes, only IHDR/IDAT/IEND')
    :format(pos[1], info.images, info.bytes or 0))
  return 0
end

local function score(args)
  local o, pos = parse(args, 2, {}, { out = true, boot = true, ['boot-seed'] = true })
  if not o then return 0 end
  if #pos < 2 then error(USAGE, 0) end
  local files = {}
  for i = 2, #pos do files[#files + 1] = pos[i] end
  local r = require('craft.study.score').run { key = pos[1], ratings = files, out = o.out,
    boot = int_opt(o, 'boot', 1), boot_seed = int_opt(o, 'boot-seed', 0) }
  return r.ok and 0 or 1
end

function M.main(args)
  local sub = args[1]
  if sub == 'make' then return make(args)
  elseif sub == 'scan' then return scan_cmd(args)
  elseif sub == 'score' then return score(args)
  elseif sub == '-h' or sub == '--help' then print(USAGE); return 0
  end
  error(USAGE, 0)
end

return M
