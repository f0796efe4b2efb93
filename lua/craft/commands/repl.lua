return { main = function() require('craft.repl').run(); return 0 end }
