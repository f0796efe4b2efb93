-- The list of `craft <command>` subcommands: { name, one-line description }. Each lives in
-- lua/craft/commands/<name>.lua and exports main(args) -> exit code.
return {
  { 'phantoms', 'write a phantom data set (PNGs + labels.csv with every ground-truth parameter)' },
  { 'repl', 'interactive session (the same as running craft with no arguments)' },
  { 'inspect', 'list the tensors (name, dtype, shape, bytes) and metadata of .safetensors files' },
  { 'devices', 'list the OpenCL platforms and devices (memory, fp16/fp64) craft can run on' },
  { 'study', 'blinded reader study: make a packet of images for clinicians to rank, score their ratings' },
}
