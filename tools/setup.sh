#!/bin/sh
# tools/setup.sh: installs the Debian packages craft builds and tests with, when missing.
# Idempotent; needs root (or sudo) only when something is missing. Debian 12.
set -e
PKGS="build-essential pkg-config libluajit-5.1-dev luajit libdnnl-dev ocl-icd-opencl-dev opencl-headers
pocl-opencl-icd clinfo libclblast-dev libstb-dev libcsv-dev libjansson-dev libzip-dev zlib1g-dev libedit-dev"
# extra tools for the test suite: clang's libFuzzer and sanitizer runtimes (+ its OpenMP), and
# headless Chromium to check that the HTML report renders
PKGS="$PKGS clang libclang-rt-dev libomp-dev chromium"
case " $* " in *" --bench "*) PKGS="$PKGS python3-torch python3-numpy" ;; esac
missing=""
for p in $PKGS; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -z "$missing" ]; then
    echo "setup: all packages present"
    exit 0
fi
echo "setup: installing$missing"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends $missing
