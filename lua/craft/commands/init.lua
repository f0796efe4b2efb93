-- The list of `craft <command>` subcommands: { name, one-line description }. Each lives in
-- lua/craft/commands/<name>.lua and exports main(args) -> exit code.
return {
  { 'repl', 'interactive session (the same as running craft with no arguments)' },
}
