-- craft.repo: the repository a recipe runs in, so that a recipe works from any working directory.
-- `craft recipe.lua` (craft.cli) records the recipe and puts its folder and the repository's
-- recipes/ on package.path, so recipes `require` their helpers (`require 'lib.args'`); paths the
-- recipe names inside the repository (models/builtin/..., recipes/knowledge/..., ../shared/data)
-- go through repo.path:
--
--   local repo = require 'craft.repo'
--   repo.root()                           -- /path/to/craft (nil: no checkout found)
--   repo.path('models/builtin/sd-tiny')   -- that folder, wherever craft was started
--   repo.recipe()                         -- the running recipe's absolute path
--
-- The repository is the nearest folder above the recipe that holds lua/craft/init.lua (a recipe
-- inside a craft checkout uses that checkout), else the checkout the Lua library itself was
-- loaded from. Paths the user gives on the command line stay relative to the working directory.
local runtime = require 'craft.runtime'

local M = {}

local recipe_path, root_cache

-- normalize(p): '.' and '..' resolved and repeated slashes folded (no symlinks are followed)
function M.normalize(p)
  require('craft.core').want('repo.normalize', 'path', p, 'string')
  local abs = p:sub(1, 1) == '/'
  local parts = {}
  for seg in p:gmatch('[^/]+') do
    if seg == '..' then
      if #parts > 0 and parts[#parts] ~= '..' then parts[#parts] = nil
      elseif not abs then parts[#parts + 1] = '..' end
    elseif seg ~= '.' then
      parts[#parts + 1] = seg
    end
  end
  local s = table.concat(parts, '/')
  if abs then return '/' .. s end
  return s ~= '' and s or '.'
end

-- absolute(p): p against the working directory
function M.absolute(p)
  require('craft.core').want('repo.absolute', 'path', p, 'string')
  if p:sub(1, 1) == '/' then return M.normalize(p) end
  local cwd = runtime.cwd() or os.getenv('PWD') or '.'
  return M.normalize(cwd .. '/' .. p)
end

local function exists(p)
  local f = io.open(p, 'rb')
  if f then f:close(); return true end
  return false
end

local function dirname(p) return p:match('^(.*)/[^/]*$') or '.' end

-- the nearest folder at or above dir that is a craft checkout
local function checkout_above(dir)
  local d = dir
  while d and d ~= '' do
    if exists(d .. '/lua/craft/init.lua') then return d end
    if d == '/' then return nil end
    d = dirname(d)
    if d == '' then d = '/' end
  end
  return nil
end

-- the checkout the library was loaded from (…/lua/craft/repo.lua -> …)
local function library_checkout()
  local src = debug.getinfo(1, 'S').source
  local file = src:sub(1, 1) == '@' and src:sub(2) or nil
  if not file then return nil end
  local top = M.absolute(file):match('^(.*)/lua/craft/repo%.lua$')
  if top and exists(top .. '/recipes') then return top end
  return nil
end

-- root() -> the repository's absolute path, or nil
function M.root()
  if root_cache == nil then
    root_cache = (recipe_path and checkout_above(dirname(recipe_path))) or library_checkout() or false
  end
  return root_cache or nil
end

-- recipe() -> the absolute path of the running recipe (nil in the REPL or with -e)
function M.recipe() return recipe_path end

-- path(rel) -> rel inside the repository: relative to the working directory when that is the
-- repository itself (so names and messages read as before), absolute otherwise. An absolute rel,
-- or no repository, leaves rel as it is.
function M.path(rel)
  require('craft.core').want('repo.path', 'path', rel, 'string')
  local root = M.root()
  if rel:sub(1, 1) == '/' or not root then return rel end
  local cwd = runtime.cwd()
  if cwd and M.normalize(cwd) == root then return rel end
  return M.normalize(root .. '/' .. rel)
end

-- setup(path): what `craft recipe.lua` does before running it: records the recipe and puts its
-- folder and the repository's recipes/ on package.path, after the library's own entries.
function M.setup(path)
  require('craft.core').want('repo.setup', 'path', path, 'string')
  recipe_path = M.absolute(path)
  root_cache = nil
  local dirs = { dirname(recipe_path) }
  local root = M.root()
  if root and M.normalize(root .. '/recipes') ~= dirs[1] then dirs[#dirs + 1] = root .. '/recipes' end
  local add = {}
  for _, d in ipairs(dirs) do
    local e1, e2 = d .. '/?.lua', d .. '/?/init.lua'
    if not package.path:find(e1, 1, true) then add[#add + 1] = e1 .. ';' .. e2 end
  end
  if #add == 0 then return end
  -- after the library's entries (its ?.lua and ?/init.lua), so a recipe folder cannot shadow craft
  local src = debug.getinfo(1, 'S').source:sub(2)
  local lib = src:match('^(.*)/craft/repo%.lua$')
  local entries, placed = {}, false
  for e in package.path:gmatch('[^;]+') do
    entries[#entries + 1] = e
    if not placed and lib and e == lib .. '/?/init.lua' then
      entries[#entries + 1] = table.concat(add, ';')
      placed = true
    end
  end
  if not placed then table.insert(entries, 1, table.concat(add, ';')) end
  package.path = table.concat(entries, ';') .. ';'
end

return M
