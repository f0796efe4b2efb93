#!/bin/sh
# tests/device_quickstart.sh BUILD_DIR: `craft --device cl:0 recipes/quickstart.lua --smoke` against
# the same run on the CPU. The OpenCL run must end its table with "device: cl:0 <name>, kernels
# launched: N" (N > 0), keep every model, optimiser state, training loss and generated batch of
# every job on cl:0 (each job's result.json records where they were), and give the CPU's table
# within the tolerances docs/backends.md states ("The quickstart on an OpenCL device"); the
# checks are tests/device_quickstart.lua. Skips (0 passed) without an OpenCL device.
# CRAFT_QS_PRECISION=fp16 runs the cl:0 side with --precision fp16 (by hand: it is not part of
# make test; docs/backends.md records the result).
B=${1:-build}
CRAFT="$B/craft"
export POCL_CACHE_DIR=${POCL_CACHE_DIR:-/tmp/craft-pocl-cache}
ncl=$("$CRAFT" devices 2>/dev/null | grep -cE '^  cl:[0-9]+ ')
if [ "$ncl" -eq 0 ]; then
    echo "skip device_quickstart: no OpenCL device" >&2
    echo "0 passed, 0 failed"
    exit 0
fi
D=$(mktemp -d)
trap 'rm -rf "$D"' EXIT
fail() { echo "FAIL device_quickstart: $*" >&2; echo "0 passed, 1 failed"; exit 1; }
"$CRAFT" recipes/quickstart.lua --smoke --out "$D/cpu" >"$D/cpu.out" 2>"$D/cpu.err" ||
    fail "the CPU run failed: $(tail -n 5 "$D/cpu.err")"
"$CRAFT" --device cl:0 ${CRAFT_QS_PRECISION:+--precision "$CRAFT_QS_PRECISION"} recipes/quickstart.lua --smoke \
    --out "$D/cl" >"$D/cl.out" 2>"$D/cl.err" ||
    fail "the cl:0 run failed: $(tail -n 5 "$D/cl.err")"
"$CRAFT" tests/device_quickstart.lua "$D/cpu" "$D/cl"
