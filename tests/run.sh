#!/bin/sh
# tests/run.sh BUILD_DIR: runs every C test binary and the Lua test suite, sums their
# "N passed, N failed" lines, and ends with the total. A binary that crashes or prints no
# summary counts as one failure.
B=${1:-build}
export POCL_CACHE_DIR=${POCL_CACHE_DIR:-/tmp/craft-pocl-cache}
# Mesa's rusticl offers its CPU device (llvmpipe) only when asked; a second OpenCL
# implementation to run the OpenCL tests on (tools/setup.sh installs mesa-opencl-icd)
export RUSTICL_ENABLE=${RUSTICL_ENABLE:-llvmpipe}
export CRAFT_SHARED_DATA=${CRAFT_SHARED_DATA:-$(cd "$(dirname "$0")/../.." && pwd)/shared/data}
total_p=0; total_f=0; bad=""
run_one() {
    name=$1; shift
    start=$(date +%s)
    out=$("$@" 2>"$B/tests/$name.stderr")
    rc=$?
    # LeakSanitizer's own stop-the-world tracer sometimes segfaults at exit ("Tracer caught
    # signal 11", google/sanitizers#1353): not a leak report. Such a run is repeated once, and
    # the repeat must pass on its own.
    if [ "$rc" -ne 0 ] && grep -q 'Tracer caught signal' "$B/tests/$name.stderr" &&
       grep -q 'LeakSanitizer has encountered a fatal error' "$B/tests/$name.stderr"; then
        echo "    $name: LeakSanitizer's tracer crashed at exit; running it again" >&2
        out=$("$@" 2>"$B/tests/$name.stderr")
        rc=$?
    fi
    line=$(printf '%s\n' "$out" | grep -E '^[0-9]+ passed, [0-9]+ failed' | tail -n 1)
    p=$(printf '%s' "$line" | sed -n 's/^\([0-9]*\) passed.*/\1/p')
    f=$(printf '%s' "$line" | sed -n 's/^[0-9]* passed, \([0-9]*\) failed.*/\1/p')
    [ -n "$p" ] || { p=0; f=1; }
    if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then f=1; fi
    total_p=$((total_p + p)); total_f=$((total_f + f))
    secs=$(( $(date +%s) - start ))
    if [ "$f" -ne 0 ]; then
        bad="$bad $name"
        printf '%-28s FAILED  %s passed, %s failed (exit %s, %ss)\n' "$name" "$p" "$f" "$rc" "$secs"
        grep -E 'FAIL|error|Error' "$B/tests/$name.stderr" | head -n 20 | sed 's/^/    /'
        # scripts that report on stdout (bench/gpu.sh's "FAIL  step: why" lines and their detail)
        printf '%s\n' "$out" | grep -E -A 3 '^FAIL' | head -n 20 | sed 's/^/    /'
    else
        printf '%-28s ok      %s passed (%ss)\n' "$name" "$p" "$secs"
    fi
    grep -E '^skip' "$B/tests/$name.stderr" | sed 's/^/    /'
}
mkdir -p "$B/tests"
# the OpenCL tests run once on every OpenCL device (none: once, printing a skip line)
ncl=$("$B/craft" devices 2>/dev/null | grep -cE '^  cl:[0-9]+ ')
for t in "$B"/tests/test_*; do
    case "$t" in *.stderr) continue ;; esac
    [ -x "$t" ] || continue
    tname=$(basename "$t")   # not "name": run_one sets that
    case "$tname" in
    test_cl*)
        if [ "$ncl" -gt 0 ]; then
            i=0
            while [ "$i" -lt "$ncl" ]; do
                run_one "$tname@cl:$i" env CRAFT_TEST_DEVICE="cl:$i" "$t"
                i=$((i + 1))
            done
            continue
        fi ;;
    esac
    run_one "$tname" "$t"
    # the bf16 test again as a CPU without AVX512-BF16 sees it: the setting computes fp32
    case "$tname" in test_bf16|test_bf16_mixed)
        run_one "$tname@avx512_core" env ONEDNN_MAX_CPU_ISA=AVX512_CORE "$t" ;;
    esac
    # the conv tests again with a 16 MB Winograd scratchpad cap: tall images run in bands of rows
    [ "$tname" = test_conv_norm ] && run_one "test_conv_norm@wino_bands" env CRAFT_CONV_WINOGRAD=16 "$t"
done
run_one layers sh tools/check_layers.sh "$B"
# bench/gpu.sh end to end on PoCL with tiny shapes (install, build, the cl tests, both benches
# and their peers where torch is importable, the table): seconds
run_one gpu_dry_run sh bench/gpu.sh --dry-run --build-dir "$B"
run_one lua "$B/craft" tests/lua/run.lua
run_one report_render sh tests/report_render.sh "$B"
run_one study_browser sh tests/study_browser.sh "$B"
run_one crash_resume sh tests/crash_resume.sh "$B"
run_one mpi sh tests/mpi.sh "$B"
# the quickstart's smoke run with --device cl:0 against the CPU's (skipped without OpenCL)
run_one device_quickstart sh tests/device_quickstart.sh "$B"
run_one examples sh tests/examples.sh "$B"
if [ -n "$FUZZ_DIR" ] && ls "$FUZZ_DIR"/fuzz_* >/dev/null 2>&1; then
    run_one fuzz sh tests/fuzz/run.sh "$FUZZ_DIR" "${FUZZ_SECONDS:-5}"
fi
echo
[ -n "$bad" ] && echo "failed:$bad"
echo "$total_p passed, $total_f failed"
[ "$total_f" -eq 0 ]
