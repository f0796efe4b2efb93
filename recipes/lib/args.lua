-- recipes/lib/args.lua: a recipe's command line. parse(arg, defaults, usage) -> table:
-- `--key value` sets key (numbers become numbers), a `--flag` listed in defaults with the value
-- false becomes true; anything else is an error that prints the usage line.
return function(argv, defaults, usage)
  local r = {}
  for k, v in pairs(defaults) do r[k] = v end
  local i = 1
  while argv[i] do
    local a = argv[i]
    local key = a:match('^%-%-([%w_%-]+)$')
    if not key then error('usage: ' .. usage, 0) end
    key = key:gsub('%-', '_')
    if defaults[key] == false then
      r[key] = true; i = i + 1
    elseif argv[i + 1] ~= nil and defaults[key] ~= nil then
      r[key] = tonumber(argv[i + 1]) or argv[i + 1]; i = i + 2
    else
      error(('unknown or incomplete option %s; usage: %s'):format(a, usage), 0)
    end
  end
  return r
end
