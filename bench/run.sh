#!/bin/sh
# bench/run.sh BUILD_DIR: runs every benchmark against its PyTorch peer in the same run and
# prints both timings and the ratio (peer time / craft time: above 1 means craft is faster).
# The peers run on CRAFT_PEER_PYTHON: by default the venv `sh tools/setup.sh --bench` makes
# (.venv-bench: PyTorch 2.x from PyPI with MKL and oneDNN, diffusers, transformers), else
# /usr/bin/python3. The peer's torch version, BLAS and thread count are printed first. A missing
# peer prints a "peer skipped: why" line instead of its rows, not a failure.
B=${1:-build}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-$(nproc)}
if [ -z "${CRAFT_PEER_PYTHON:-}" ]; then
    if [ -x .venv-bench/bin/python ]; then CRAFT_PEER_PYTHON=$(pwd)/.venv-bench/bin/python
    else CRAFT_PEER_PYTHON=/usr/bin/python3; fi
fi
export CRAFT_PEER_PYTHON
echo "craft benchmarks, $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, OMP_NUM_THREADS=$OMP_NUM_THREADS"
echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
echo "env: OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-unset} OPENBLAS_L2_SIZE=${OPENBLAS_L2_SIZE:-unset}"
if ! "$CRAFT_PEER_PYTHON" -c '
import re, sys, torch
torch.set_num_threads(int(sys.argv[1]))
blas = re.search(r"BLAS_INFO=(\w+)", torch.__config__.show())
print("peer:", sys.executable, "torch", torch.__version__, "BLAS", blas.group(1) if blas else "?",
      "threads", torch.get_num_threads())
if int(torch.__version__.split(".")[0]) < 2 or (blas and blas.group(1) == "generic"):
    print("note: a weak peer (torch < 2 or the reference BLAS); sh tools/setup.sh --bench makes the strong one")
' "$OMP_NUM_THREADS" 2>/dev/null; then
    echo "note: $CRAFT_PEER_PYTHON has no torch; peers are skipped (sh tools/setup.sh --bench makes .venv-bench)"
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
"$B/craft" bench/bench_sd15_unet.lua --batch 1 --size 64 --steps 1 --warmup 0 --precision bf16-mixed
echo
echo "== full-size SD 1.5 VAE decoder, batch 1, 64x64 latent -> 512x512 (bench/bench_sd15_vae.lua; about 2 minutes, ~2.3 GB)"
"$B/craft" bench/bench_sd15_vae.lua --batch 1 --size 64 --steps 1
echo
echo "== one full-size CRAFT step: SD 1.5 at 512x512, DDIM 2 steps (K = 1), CLIP ViT-L/14 + DINOv2-B reward, rank-8 LoRA (bench/bench_craft_step.lua; the first run writes 3.3 GB of random-weight models to build/fullsize; minutes, ~10 GB)"
"$B/craft" bench/bench_craft_step.lua --steps 2
