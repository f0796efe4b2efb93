#!/bin/sh
# tools/setup.sh: installs the Debian packages craft builds and tests with, when missing.
# Idempotent; needs root (or sudo) only when something is missing. Debian 12. Two OpenCL
# implementations for the OpenCL tests: PoCL and Mesa's rusticl (mesa-opencl-icd; its CPU device
# llvmpipe with RUSTICL_ENABLE=llvmpipe, which tests/run.sh sets).
set -e
PKGS="build-essential pkg-config libluajit-5.1-dev luajit libdnnl-dev ocl-icd-opencl-dev opencl-headers
pocl-opencl-icd mesa-opencl-icd clinfo libclblast-dev libstb-dev libcsv-dev libjansson-dev libzip-dev zlib1g-dev libedit-dev"
# extra tools for the test suite: clang's libFuzzer and sanitizer runtimes (+ its OpenMP), and
# headless Chromium to check that the HTML report renders
PKGS="$PKGS clang libclang-rt-dev libomp-dev chromium"
# Open MPI: data-parallel runs under mpirun / srun (engine/dist, docs/scaling.md; tests/mpi.sh)
PKGS="$PKGS openmpi-bin libopenmpi-dev"
BENCH=""
case " $* " in *" --bench "*) BENCH=1; PKGS="$PKGS python3-venv" ;; esac
missing=""
for p in $PKGS; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -z "$missing" ]; then
    echo "setup: all packages present"
else
    echo "setup: installing$missing"
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -qq
    $SUDO apt-get install -y -qq --no-install-recommends $missing
fi
[ -n "$BENCH" ] || exit 0

# --bench: every benchmark's PyTorch peer runs on the torch a user would pick: PyTorch 2.x from
# PyPI (MKL + oneDNN; Debian's python3-torch 1.13 is built on the reference BLAS and makes
# misleading peers), with the diffusers and transformers releases the fixture scripts were written
# against. A venv on Debian's python 3.11 at .venv-bench (CRAFT_BENCH_VENV puts it elsewhere: then
# point CRAFT_PEER_PYTHON at its bin/python). PyPI's Linux torch wheel brings CUDA libraries with
# it (about 5.6 GB in all); the peers run on the CPU.
ROOT=$(cd "$(dirname "$0")/.." && pwd)
VENV=${CRAFT_BENCH_VENV:-$ROOT/.venv-bench}
TORCH_PIN="torch==2.15.0"
PINNED="$TORCH_PIN numpy diffusers==0.27.2 transformers==4.38.2 huggingface_hub<0.26"
if [ -x "$VENV/bin/python" ] && "$VENV/bin/python" -c '
import diffusers, transformers, huggingface_hub, torch
assert diffusers.__version__ == "0.27.2" and transformers.__version__ == "4.38.2"
assert int(torch.__version__.split(".")[0]) >= 2' 2>/dev/null; then
    echo "setup: bench venv $VENV ready"
    exit 0
fi
echo "setup: making the bench venv $VENV ($PINNED from PyPI; several minutes, about 5.6 GB)"
rm -rf "$VENV"
/usr/bin/python3 -m venv "$VENV"
if ! "$VENV/bin/pip" install -q --disable-pip-version-check $PINNED; then
    echo "setup: pip could not install $PINNED into $VENV (is PyPI reachable?); bench peers will use /usr/bin/python3 or be skipped" >&2
    exit 1
fi
"$VENV/bin/python" -c 'import torch, diffusers; print("setup: bench venv: torch", torch.__version__, "diffusers", diffusers.__version__)'
