-- recipes/knowledge/init.lua: finds and loads the knowledge artifacts (docs/knowledge.md).
--
--   local knowledge = require 'knowledge'     -- in a recipe (recipes/ is on package.path: craft.repo)
--   local knowledge = dofile 'recipes/knowledge/init.lua' -- the same, from anywhere with a path
--   local K = knowledge.get('cxr')             -- phantoms: modality name (or 'phantoms_cxr')
--   local K = knowledge.get('pneumoniamnist')  -- real sets: data-set name, alias or file path
--   knowledge.names()                          -- the canonical names, sorted
--   knowledge.path('derm')                     -- the file get() loads
--
-- Once this file has been loaded any way it registers itself as package.loaded['knowledge'] (and
-- 'recipes.knowledge', its name from the repository root), so later requires return it.
-- get() loads the file afresh on every call, so a caller may edit the table it gets.
local M = {}

-- the folder holding this file, so get() works whatever the working directory
local DIR = (function()
  local src = debug.getinfo(1, 'S').source
  local d = src:sub(1, 1) == '@' and src:sub(2):match('^(.*)[/\\]') or nil
  return d or 'recipes/knowledge'
end)()

local FILES = {
  phantoms_cxr = 'phantoms_cxr.lua',
  phantoms_fundus = 'phantoms_fundus.lua',
  phantoms_derm = 'phantoms_derm.lua',
  phantoms_histo = 'phantoms_histo.lua',
  pneumoniamnist = 'pneumoniamnist.lua',
  retinamnist = 'retinamnist.lua',
  ham10000 = 'ham10000.lua',
}

local ALIASES = {
  cxr = 'phantoms_cxr', fundus = 'phantoms_fundus', derm = 'phantoms_derm', histo = 'phantoms_histo',
  ['phantoms:cxr'] = 'phantoms_cxr', ['phantoms:fundus'] = 'phantoms_fundus',
  ['phantoms:derm'] = 'phantoms_derm', ['phantoms:histo'] = 'phantoms_histo',
  ham = 'ham10000', ['ham10000-mel-nv'] = 'ham10000', ham10000_mel_nv = 'ham10000',
  ham10000_mel_nv_28 = 'ham10000',
}

-- name -> canonical name, or nil. Accepts a canonical name, an alias, or a data path whose last
-- component (or the folder above it) names a data set: '../shared/data/pneumoniamnist/pneumoniamnist.npz'.
function M.resolve(name)
  if type(name) ~= 'string' then return nil end
  local n = name:lower()
  if FILES[n] then return n end
  if ALIASES[n] then return ALIASES[n] end
  local base = n:match('([^/\\]+)$') or n
  base = base:gsub('%.lua$', ''):gsub('%.npz$', ''):gsub('_%d+$', '')
  if FILES[base] then return base end
  if ALIASES[base] then return ALIASES[base] end
  local parent = n:match('([^/\\]+)[/\\][^/\\]+$')
  if parent and (FILES[parent] or ALIASES[parent]) then return FILES[parent] and parent or ALIASES[parent] end
  return nil
end

function M.names()
  local r = {}
  for k in pairs(FILES) do r[#r + 1] = k end
  table.sort(r)
  return r
end

function M.path(name)
  local key = M.resolve(name)
  if not key then
    error(('knowledge: no artifacts for %q (known: %s; or a modality: cxr, fundus, derm, histo)'):format(
      tostring(name), table.concat(M.names(), ', ')), 2)
  end
  return DIR .. '/' .. FILES[key], key
end

function M.get(name)
  local ok, p = pcall(M.path, name)
  if not ok then error(p, 2) end
  return dofile(p)
end

-- every artifact: { canonical name -> table }
function M.all()
  local r = {}
  for _, k in ipairs(M.names()) do r[k] = M.get(k) end
  return r
end

M.dir = DIR
package.loaded['knowledge'] = package.loaded['knowledge'] or M
package.loaded['recipes.knowledge'] = package.loaded['recipes.knowledge'] or M
return M
