#!/bin/sh
# bench/gpu.sh: one command for a machine with a GPU. Within about 8 minutes it
#   1. installs what it needs: the build's libraries (apt-get where it can reach a registry, or
#      the bundle --pack made, for machines that reach none), the GPU vendor's OpenCL ICD (on
#      NVIDIA the driver's libnvidia-opencl.so.1 is often there without /etc/OpenCL/vendors/
#      nvidia.icd: it writes one), and PoCL's CUDA device as a fallback when no vendor ICD answers;
#   2. builds craft and the OpenCL tests;
#   3. runs the OpenCL op tests (test_cl, test_cl_conv, test_cl_nn, test_cl_ops, test_cl_sync, test_cl_f16,
#      test_cl_fused, test_cl_gemm) on every GPU;
#   4. times, on the first GPU device, craft against PyTorch on the same GPU: the tiny-UNet train
#      step (bench/tiny_unet.lua vs bench/peer_tiny_unet.py) and the SD 1.5 UNet at 512 px (64x64
#      latent, random weights): forward, and forward + backward with gradient checkpointing
#      (bench/bench_sd15_unet.lua vs bench/peer_sd15_unet.py, which needs diffusers);
#   5. prints the table side by side and appends it to docs/performance.md.
#
#   sh bench/gpu.sh [--dry-run] [--no-append] [--device cl:N] [--build-dir DIR]
#                   [--budget SECONDS] [--out DIR]
#   sh bench/gpu.sh --pack
#
# --dry-run exercises every step on PoCL (the CPU as an OpenCL device) with tiny shapes in
#   seconds, appends nothing, and ends with an "N passed, M failed" line; `make test` runs it.
# --device tests and times that one device, GPU or not (default: every GPU device is tested and
#   the first is timed, the vendor's driver before PoCL's CUDA device).
# --budget: every step runs under `timeout` within it (480 s); a step that runs out is reported,
#   the rest still run.
# --out DIR also copies the table (table.md) and every log and JSON (gpu-logs.tar.gz) to DIR, for
#   a machine whose working tree does not come back.
# --pack, for machines that reach no package registry (the GPU machines lent here): run it on a
#   Debian 12 machine with tools/setup.sh's packages (and PyPI for the wheels); it writes
#   build/gpu-bundle.tar.xz (about 16 MB): the headers and libraries craft builds against, taken
#   from the installed packages, diffusers' wheel for the SD peer, and
#   ../shared/bench/torch_tiny_unet.py (the tiny-UNet peer's model). Bring that one file along
#   (the device tool: carry build/gpu-bundle.tar.xz, run `sh bench/gpu.sh --out $OUT` with a
#   600 s timeout); gpu.sh unpacks it, keeps only the libraries the machine lacks and builds
#   against it. CRAFT_GPU_BUNDLE names another path.
# Environment: CRAFT_PEER_PYTHON (python3), CRAFT_PEER_DEVICE (cuda), CRAFT_GPU_TINY_ARGS and
# CRAFT_GPU_SD_ARGS (the benches' shapes and step counts); CRAFT_GPU_BUNDLE_KEEP=1 keeps every
# library of the bundle even where the machine has its own (to try the bundle anywhere).
set -u
cd "$(dirname "$0")/.." || exit 2
ROOT=$(pwd)
DRY=""; APPEND=1; B=build; DEVICE=""; BUDGET=480; PACK=""; OUTDIR=""
while [ $# -gt 0 ]; do
    case "$1" in
    --dry-run) DRY=1; APPEND="" ;;
    --no-append) APPEND="" ;;
    --pack) PACK=1 ;;
    --device) DEVICE=$2; shift ;;
    --build-dir) B=$2; shift ;;
    --budget) BUDGET=$2; shift ;;
    --out) OUTDIR=$2; shift ;;
    -h|--help) sed -n '2,/^set -u/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "gpu.sh: unknown argument $1 (--help)" >&2; exit 2 ;;
    esac
    shift
done
START=$(date +%s)
NPROC=$(nproc 2>/dev/null || echo 2)
mkdir -p "$B/gpu" || exit 2
W=$(cd "$B/gpu" && pwd)
BUNDLE_TAR=${CRAFT_GPU_BUNDLE:-$B/gpu-bundle.tar.xz}
MULTIARCH=x86_64-linux-gnu
export POCL_CACHE_DIR="${POCL_CACHE_DIR:-/tmp/craft-pocl-cache}"
export CRAFT_LUA_PATH="$ROOT/lua/?.lua;$ROOT/lua/?/init.lua${CRAFT_LUA_PATH:+;$CRAFT_LUA_PATH}"   # any --build-dir

pass=0; fail=0
ok()   { pass=$((pass + 1)); printf 'ok    %s\n' "$*"; }
bad()  { fail=$((fail + 1)); printf 'FAIL  %s\n' "$*"; }
note() { printf '      %s\n' "$*"; }
left() { echo $((BUDGET - ($(date +%s) - START))); }
# capped CAP LOG CMD...: CMD under timeout min(CAP, budget left - 5 s), output to LOG; returns its
# status (124: ran out of time). Under `make asan`, LeakSanitizer's own tracer sometimes crashes
# at exit (google/sanitizers#1353: not a leak report); such a run is repeated once, as
# tests/run.sh does for its own runs, and the repeat must pass on its own.
capped() {
    cap=$1; log=$2; shift 2
    l=$(( $(left) - 5 ))
    [ "$l" -lt "$cap" ] && cap=$l
    if [ "$cap" -le 0 ]; then echo "no time left in the ${BUDGET} s budget" > "$log"; return 124; fi
    timeout -k 5 "$cap" "$@" > "$log" 2>&1
    crc=$?
    if [ "$crc" -ne 0 ] && grep -q 'Tracer caught signal' "$log" &&
       grep -q 'LeakSanitizer has encountered a fatal error' "$log"; then
        note "$(basename "$log" .log): LeakSanitizer's tracer crashed at exit; running it again"
        l=$(( $(left) - 5 ))
        [ "$l" -lt "$cap" ] && cap=$l
        [ "$cap" -gt 0 ] || return 124
        timeout -k 5 "$cap" "$@" > "$log" 2>&1
        crc=$?
    fi
    return "$crc"
}
last_line() { grep -v '^[[:space:]]*$' "$1" 2>/dev/null | tail -n 1; }

# ---- --pack: the offline bundle -------------------------------------------------------------------
if [ -n "$PACK" ]; then
    set -e
    [ -x "$B/craft" ] || make -j"$NPROC" BUILD="$B" "$B/craft" "$B/tests/test_cl"
    S=$B/gpu-bundle; rm -rf "$S"; mkdir -p "$S/prefix/usr/lib/$MULTIARCH" "$S/wheels"
    # headers of the packages craft builds against
    for p in libdnnl-dev opencl-c-headers libclblast-dev libluajit-5.1-dev libstb-dev libcsv-dev \
             libjansson-dev libzip-dev libedit-dev zlib1g-dev; do
        dpkg -L "$p" | grep -E '^/usr/include/.+\.(h|hpp|hh)$' | while read -r f; do
            mkdir -p "$S/prefix$(dirname "$f")"; cp "$f" "$S/prefix$f"
        done
    done
    # the libraries: each -l name and the dlopen'ed OpenCL loader and CLBlast, with what they need
    # (glibc, libstdc++, libgcc_s and libgomp come with the machine's compiler)
    L=$S/prefix/usr/lib/$MULTIARCH
    for n in dnnl zip z jansson csv stb luajit-5.1 edit OpenCL clblast; do
        f=$(readlink -f "/usr/lib/$MULTIARCH/lib$n.so")
        [ -f "$f" ] || { echo "gpu.sh --pack: no /usr/lib/$MULTIARCH/lib$n.so (sh tools/setup.sh)" >&2; exit 1; }
        for g in "$f" $(ldd "$f" | awk '/=> \//{print $3}'); do
            soname=$(objdump -p "$g" 2>/dev/null | awk '/SONAME/{print $2}')
            [ -n "$soname" ] || soname=$(basename "$g")
            case "$soname" in libc.so*|libm.so*|libpthread*|libdl.so*|librt.so*|ld-linux*|libstdc++*|libgcc_s*|libgomp*) continue ;; esac
            [ -f "$L/$soname" ] || cp -L "$g" "$L/$soname"
        done
        ln -sf "$(objdump -p "$f" | awk '/SONAME/{print $2}')" "$L/lib$n.so"
    done
    tiny=${CRAFT_TINY_UNET_PEER:-../shared/bench/torch_tiny_unet.py}
    if [ -f "$tiny" ]; then cp "$tiny" "$S/torch_tiny_unet.py"; else echo "gpu.sh --pack: warning: no $tiny (the tiny-UNet peer will be skipped)" >&2; fi
    # diffusers for the SD 1.5 peer (the GPU image has torch, transformers and huggingface_hub >= 1.32)
    # shellcheck disable=SC2086
    python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        --platform manylinux_2_28_x86_64 -d "$S/wheels" ${CRAFT_GPU_WHEELS:-diffusers==0.42.1 importlib_metadata==10.2.0} ||
        echo "gpu.sh --pack: warning: pip could not fetch the wheels (the SD 1.5 peer needs diffusers there)" >&2
    (cd "$S" && find . -type f | sort > MANIFEST)
    tar -C "$S" -cJf "$B/gpu-bundle.tar.xz" .
    echo "gpu.sh --pack: wrote $B/gpu-bundle.tar.xz ($(du -h "$B/gpu-bundle.tar.xz" | cut -f1), $(wc -l < "$S/MANIFEST") files)"
    exit 0
fi

mkdir -p "$W"
rm -f "$W"/*.json "$W"/*.log "$W"/meta.txt
meta() { printf '%s\t%s\n' "$1" "$2" >> "$W/meta.txt"; }
echo "bench/gpu.sh$([ -n "$DRY" ] && echo ' --dry-run'), $(date -u +%Y-%m-%dT%H:%MZ), $NPROC cores, budget ${BUDGET} s"
meta date "$(date -u +%Y-%m-%d)"
meta cpu "$(grep -m1 'model name' /proc/cpuinfo 2>/dev/null | cut -d: -f2 | sed 's/^ //')"
meta mode "$([ -n "$DRY" ] && echo dry-run || echo full)"

# ---- 1. install -----------------------------------------------------------------------------------
LJC=""   # LuaJIT's include folder when building against the bundle
if [ -z "$DRY" ] && [ -f "$BUNDLE_TAR" ]; then
    P=$(cd "$(dirname "$BUNDLE_TAR")" && pwd)/gpu-bundle
    rm -rf "$P"; mkdir -p "$P"
    tar -C "$P" -xJf "$BUNDLE_TAR" 2> "$W/untar.log" ||   # no xz there: Python's tarfile reads it
        python3 -c 'import sys, tarfile; tarfile.open(sys.argv[1]).extractall(sys.argv[2])' "$BUNDLE_TAR" "$P" ||
        { bad "install: cannot unpack $BUNDLE_TAR ($(last_line "$W/untar.log"))"; echo; echo "$pass passed, $fail failed"; exit 1; }
    L=$P/prefix/usr/lib/$MULTIARCH
    # keep only the libraries the machine lacks; the link names then point at the machine's own
    kept=""
    for f in "$L"/*.so.*; do
        so=$(basename "$f")
        sys=""
        [ -n "${CRAFT_GPU_BUNDLE_KEEP:-}" ] || sys=$(ldconfig -p 2>/dev/null | awk -v s="$so" '$1 == s {print $NF; exit}')
        if [ -n "$sys" ]; then
            rm -f "$f"
            for ln in "$L"/*.so; do [ "$(readlink "$ln")" = "$so" ] && ln -sf "$sys" "$ln"; done
        else
            kept="$kept $so"
        fi
    done
    export CPATH="$P/prefix/usr/include:$P/prefix/usr/include/$MULTIARCH:$P/prefix/usr/include/stb${CPATH:+:$CPATH}"
    export LIBRARY_PATH="$L${LIBRARY_PATH:+:$LIBRARY_PATH}"
    export LD_LIBRARY_PATH="$L${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    LJC="-I$P/prefix/usr/include/luajit-2.1"
    ok "install: bundle $BUNDLE_TAR unpacked; libraries from it:${kept:- none (the machine has them all)}"
    if [ -d "$P/wheels" ] && ls "$P"/wheels/*.whl > /dev/null 2>&1; then
        PY=${CRAFT_PEER_PYTHON:-python3}
        if ! "$PY" -c 'import diffusers' > /dev/null 2>&1; then
            if "$PY" -m pip install -q --no-index --no-deps --no-compile --target "$P/site" "$P"/wheels/*.whl > "$W/pip.log" 2>&1; then
                export PYTHONPATH="$P/site${PYTHONPATH:+:$PYTHONPATH}"
                note "diffusers installed from the bundle into $P/site"
            else
                note "pip could not install the bundle's wheels: $(last_line "$W/pip.log")"
            fi
        fi
    fi
    [ -f "$P/torch_tiny_unet.py" ] && export CRAFT_TINY_UNET_PEER="$P/torch_tiny_unet.py"
elif [ -z "$DRY" ]; then
    # a machine with a package registry: the build's packages (tools/setup.sh's list, less the test tools)
    PKGS="build-essential pkg-config libluajit-5.1-dev libdnnl-dev ocl-icd-opencl-dev opencl-headers
clinfo libclblast-dev libstb-dev libcsv-dev libjansson-dev libzip-dev zlib1g-dev libedit-dev pocl-opencl-icd"
    missing=""
    if command -v dpkg-query > /dev/null; then
        for p in $PKGS; do
            dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
        done
    fi
    if [ -z "$missing" ]; then
        ok "install: the build's packages are present"
    else
        SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
        if capped 240 "$W/apt.log" sh -c "DEBIAN_FRONTEND=noninteractive $SUDO apt-get update -qq &&
                DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing"; then
            ok "install: apt-get installed$missing"
        else
            bad "install: apt-get could not install$missing ($(last_line "$W/apt.log")); without a registry, bring build/gpu-bundle.tar.xz (--pack)"
        fi
    fi
else
    ok "install: dry run, nothing installed (PoCL and the build's packages are already here)"
fi

# the vendor's OpenCL ICD: the NVIDIA driver's library without its /etc/OpenCL/vendors entry
if [ -z "$DRY" ]; then
    nv=$(ldconfig -p 2>/dev/null | awk '/libnvidia-opencl\.so\.1 /{print $NF; exit}')
    [ -n "$nv" ] || nv=$(find /usr/local/nvidia /usr/lib/$MULTIARCH /usr/lib64 /usr/lib /usr/local/lib -maxdepth 3 \
                         -name 'libnvidia-opencl.so.1' 2>/dev/null | head -n 1)
    if [ -n "$nv" ]; then
        nvdir=$(dirname "$nv")
        export LD_LIBRARY_PATH="$nvdir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
        if grep -qs 'libnvidia-opencl' /etc/OpenCL/vendors/*.icd; then
            ok "install: NVIDIA OpenCL ICD already registered ($nv)"
        elif mkdir -p /etc/OpenCL/vendors 2>/dev/null && echo "$nv" > /etc/OpenCL/vendors/nvidia.icd 2>/dev/null; then
            ok "install: wrote /etc/OpenCL/vendors/nvidia.icd -> $nv"
        else   # not root: a private vendors folder with the machine's ICDs and NVIDIA's
            mkdir -p "$W/vendors"; cp /etc/OpenCL/vendors/*.icd "$W/vendors/" 2>/dev/null
            echo "$nv" > "$W/vendors/nvidia.icd"
            export OCL_ICD_VENDORS="$W/vendors"
            ok "install: NVIDIA ICD in $W/vendors (OCL_ICD_VENDORS; /etc/OpenCL/vendors is not writable)"
        fi
    else
        note "no libnvidia-opencl.so.1 here (not an NVIDIA machine, or the driver has no OpenCL)"
    fi
    # the ICD loader itself: the system's, the bundle's, or CUDA's copy
    have_loader=""
    ldconfig -p 2>/dev/null | grep -q 'libOpenCL\.so\.1 ' && have_loader=1
    for d in $(echo "${LD_LIBRARY_PATH:-}" | tr ':' ' '); do [ -e "$d/libOpenCL.so.1" ] && have_loader=1; done
    if [ -z "$have_loader" ]; then
        for d in /usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib; do
            [ -e "$d/libOpenCL.so.1" ] && { export LD_LIBRARY_PATH="$d${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"; note "OpenCL ICD loader: CUDA's ($d)"; break; }
        done
    fi
fi

# ---- 2. build -------------------------------------------------------------------------------------
TESTS="test_cl test_cl_conv test_cl_nn test_cl_ops test_cl_sync test_cl_f16 test_cl_fused test_cl_gemm"
targets="$B/craft"; for t in $TESTS; do targets="$targets $B/tests/$t"; done
if [ -n "$DRY" ] && [ -x "$B/craft" ] && [ -x "$B/tests/test_cl_ops" ]; then
    ok "build: dry run, $B is built (make test built it)"
elif if [ -n "$LJC" ]; then
         # shellcheck disable=SC2086
         capped 300 "$W/build.log" make -j"$NPROC" BUILD="$B" "LUAJIT_CFLAGS=$LJC" LUAJIT_LIBS=-lluajit-5.1 $targets
     else
         # shellcheck disable=SC2086
         capped 300 "$W/build.log" make -j"$NPROC" BUILD="$B" $targets
     fi; then
    ok "build: make $targets ($(( $(date +%s) - START )) s since start)"
else
    bad "build failed: $(last_line "$W/build.log") (log: $W/build.log)"
    echo; echo "$pass passed, $fail failed"; exit 1
fi

# ---- 3. devices and the OpenCL op tests -----------------------------------------------------------
list_devices() {   # prints "cl:N<TAB>gpu|other<TAB>platform<TAB>description" per OpenCL device
    "$B/craft" devices 2>/dev/null | awk '
        /^platform [0-9]+: / { sub(/^platform [0-9]+: /, ""); plat = $0; next }
        /^  cl:[0-9]+ / { name = $1; d = $0; sub(/^  cl:[0-9]+ +/, "", d)
                          printf "%s\t%s\t%s\t%s\n", name, (d ~ /, GPU\)$/ ? "gpu" : "other"), plat, d }'
}
list_devices > "$W/devices.txt"
if [ -n "$DEVICE" ]; then   # the one device asked for, GPU or not
    awk -F'\t' -v d="$DEVICE" '$1 == d' "$W/devices.txt" > "$W/gpus.txt"
elif [ -n "$DRY" ]; then
    # PoCL's devices stand in for the GPUs (else the first OpenCL device there is)
    awk -F'\t' '$3 ~ /Portable Computing Language/' "$W/devices.txt" > "$W/gpus.txt"
    [ -s "$W/gpus.txt" ] || head -n 1 "$W/devices.txt" > "$W/gpus.txt"
    if [ ! -s "$W/gpus.txt" ]; then
        echo "skip: bench/gpu.sh --dry-run: no OpenCL device (sh tools/setup.sh installs PoCL)" >&2
        echo; echo "$pass passed, $fail failed"; exit 0
    fi
else
    awk -F'\t' '$2 == "gpu"' "$W/devices.txt" > "$W/gpus.txt"
    if [ ! -s "$W/gpus.txt" ]; then
        # PoCL's CUDA device as the fallback, where this PoCL was built with it
        pc=$(find /usr/lib/$MULTIARCH /usr/lib64 /usr/lib /usr/local/lib "${P:-/nonexistent}" -maxdepth 4 \
             -name 'libpocl-devices-cuda.so' 2>/dev/null | head -n 1)
        if [ -n "$pc" ]; then
            export POCL_DEVICES=cuda
            list_devices > "$W/devices.txt"
            awk -F'\t' '$2 == "gpu"' "$W/devices.txt" > "$W/gpus.txt"
            note "no vendor OpenCL GPU; PoCL's CUDA device ($pc, POCL_DEVICES=cuda)"
        fi
    fi
fi
if [ ! -s "$W/gpus.txt" ]; then
    if [ -n "$DEVICE" ]; then what="device $DEVICE"; elif [ -n "$DRY" ]; then what="PoCL device"; else what="GPU device"; fi
    bad "no OpenCL $what; craft devices says:"
    "$B/craft" devices 2>&1 | sed 's/^/      /'
    echo; echo "$pass passed, $fail failed"; exit 1
fi
while IFS="$(printf '\t')" read -r dev _kind plat desc; do
    ok "device $dev: $desc [$plat]"
    meta "device $dev" "$desc [$plat]"
done < "$W/gpus.txt"
for dev in $(cut -f1 "$W/gpus.txt"); do
    for t in $TESTS; do
        log="$W/$t@$dev.log"
        capped 120 "$log" env CRAFT_TEST_DEVICE="$dev" "$B/tests/$t"
        rc=$?
        line=$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$log" | tail -n 1)
        meta "test $t@$dev" "${line:-no summary (exit $rc)}"
        case "$rc:$line" in
        0:*" 0 failed"*) ok "$t on $dev: $line" ;;
        124:*) bad "$t on $dev: ran out of time (log: $log)" ;;
        *) bad "$t on $dev: ${line:-no summary} (exit $rc; log: $log)"; grep -E 'FAIL' "$log" | head -n 5 | sed 's/^/      /' ;;
        esac
    done
done

# ---- 4. craft against PyTorch on the same GPU -----------------------------------------------------
if [ -z "$DEVICE" ]; then   # the vendor's driver before PoCL's CUDA device
    DEVICE=$(awk -F'\t' '$3 !~ /Portable Computing Language/ {print $1; exit}' "$W/gpus.txt")
    [ -n "$DEVICE" ] || DEVICE=$(head -n 1 "$W/gpus.txt" | cut -f1)
fi
meta bench_device "$DEVICE"
if [ -n "$DRY" ]; then
    TINY="--batch 1 --size 8 --steps 1 --warmup 0"
    SD="--tiny --size 16 --steps 1 --warmup 0"
    PY=${CRAFT_PEER_PYTHON:-}
    if [ -z "$PY" ]; then for c in /usr/bin/python3 python3; do "$c" -c 'import torch' > /dev/null 2>&1 && { PY=$c; break; }; done; fi
    PDEV=cpu
else
    TINY=${CRAFT_GPU_TINY_ARGS:-"--batch 16 --size 32 --steps 10 --warmup 3"}
    SD=${CRAFT_GPU_SD_ARGS:-"--size 64 --steps 3 --warmup 1"}
    PY=${CRAFT_PEER_PYTHON:-python3}
    PDEV=${CRAFT_PEER_DEVICE:-cuda}
fi
meta tiny_args "$TINY"; meta sd_args "$SD"
peer_ok=""
if [ -z "$PY" ]; then
    note "peers skipped: no python with torch"
elif "$PY" -c "import torch, sys; d = '$PDEV'; sys.exit(0 if d == 'cpu' or torch.cuda.is_available() else 1)" > "$W/peer_check.log" 2>&1; then
    peer_ok=1
    meta peer "$("$PY" -c "import torch; d = '$PDEV'; print('torch', torch.__version__, 'on', torch.cuda.get_device_name() if d.startswith('cuda') else 'cpu')" 2>/dev/null)"
else
    note "peers skipped: $PY's torch has no $PDEV device ($(last_line "$W/peer_check.log"))"
fi

bench_step() {   # bench_step NAME CAP CMD...: one timed run, which writes $W/NAME.json
    name=$1; cap=$2; shift 2
    if capped "$cap" "$W/$name.log" "$@" && [ -s "$W/$name.json" ]; then
        ok "$name ($(tail -n 1 "$W/$name.log" | cut -c1-100))"
    else
        rc=$?
        [ "$rc" -eq 124 ] && why="ran out of time" || why=$(last_line "$W/$name.log")
        bad "$name: $why (log: $W/$name.log)"
        meta "failed $name" "$why"
    fi
}
bench_step tiny_craft 90 "$B/craft" bench/tiny_unet.lua --device "$DEVICE" --no-peer $TINY --json "$W/tiny_craft.json"
if [ -n "$peer_ok" ]; then
    bench_step tiny_peer 90 "$PY" bench/peer_tiny_unet.py --device "$PDEV" --threads "$NPROC" $TINY --json "$W/tiny_peer.json"
fi
if [ -n "$peer_ok" ] && "$PY" -c 'import diffusers' > "$W/diffusers_check.log" 2>&1; then
    # shellcheck disable=SC2086
    bench_step sd_peer 120 "$PY" bench/peer_sd15_unet.py --device "$PDEV" --threads "$NPROC" $SD --json "$W/sd_peer.json"
elif [ -n "$peer_ok" ]; then
    note "SD 1.5 peer skipped: $PY cannot import diffusers ($(last_line "$W/diffusers_check.log"))"
    meta "sd_peer_skipped" "no diffusers"
fi
bench_step sd_craft 240 "$B/craft" bench/bench_sd15_unet.lua --device "$DEVICE" --no-peer $SD --json "$W/sd_craft.json"

# ---- 5. the table ---------------------------------------------------------------------------------
echo
if [ -n "$APPEND" ]; then
    "$B/craft" bench/gpu_table.lua "$W" --append docs/performance.md | tee "$W/table.md" && note "appended to docs/performance.md"
else
    "$B/craft" bench/gpu_table.lua "$W" | tee "$W/table.md"
fi
[ -s "$W/table.md" ] || bad "the table could not be made"
echo
echo "$(( $(date +%s) - START )) s in all"
echo "$pass passed, $fail failed" | tee "$W/summary.txt"
if [ -n "$OUTDIR" ]; then
    mkdir -p "$OUTDIR" && cp "$W/table.md" "$OUTDIR/" 2>/dev/null
    tar -C "$W" -czf "$OUTDIR/gpu-logs.tar.gz" --exclude=vendors . 2>/dev/null && note "table and logs copied to $OUTDIR"
fi
[ "$fail" -eq 0 ]
