#!/bin/sh
# bench/run.sh BUILD_DIR: runs every benchmark against its PyTorch peer in the same run and
# prints both timings and the ratio (peer time / craft time: above 1 means craft is faster).
# The peers need Debian's python3-torch; the SD 1.5 UNet peer also needs diffusers, from the venv
# that `sh tools/setup.sh --bench` makes (.venv-bench, or CRAFT_PEER_PYTHON). A missing peer
# prints a "peer skipped: why" line instead of its rows, not a failure.
B=${1:-build}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-$(nproc)}
echo "craft benchmarks, $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, OMP_NUM_THREADS=$OMP_NUM_THREADS"
echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
echo "env: OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-unset} OPENBLAS_L2_SIZE=${OPENBLAS_L2_SIZE:-unset}"
if ! /usr/bin/python3 -c 'import torch' 2>/dev/null; then
    echo "note: /usr/bin/python3 has no torch; peers are skipped (sh tools/setup.sh --bench installs it)"
fi
for b in "$B"/bench_*; do
    [ -x "$b" ] || continue
    echo
    echo "== $(basename "$b")"
    "$b"
done
echo
echo "== tiny UNet train step (bench/tiny_unet.lua)"
"$B/craft" bench/tiny_unet.lua
echo
echo "== full-size SD 1.5 UNet, batch 1, 64x64 latent, 1 step (bench/bench_sd15_unet.lua; minutes, ~6.5 GB)"
CRAFT_PEER_PYTHON=${CRAFT_PEER_PYTHON:-.venv-bench/bin/python} "$B/craft" bench/bench_sd15_unet.lua --batch 1 --size 64 --steps 1 --warmup 0
