#!/bin/sh
# bench/run.sh BUILD_DIR: runs every benchmark against its PyTorch peer in the same run and
# prints both timings and the ratio (peer time / craft time: above 1 means craft is faster).
# The peers need Debian's python3-torch (sh tools/setup.sh --bench).
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
