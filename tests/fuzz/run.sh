#!/bin/sh
# tests/fuzz/run.sh DIR SECONDS: runs every fuzz target in DIR for SECONDS each on a scratch
# copy of its seed corpus (tests/fuzz/corpus/<name>), then replays the committed crash
# regressions (tests/fuzz/crashes/<name>/*). Prints one line per target and the executions done;
# ends with "N passed, N failed". FUZZ_TIMEOUT (default 20 s) is the per-input limit: raise it for long
# runs on a busy machine, where a starved process can exceed 20 s on any input.
D=${1:-build-fuzz}; S=${2:-5}
passed=0; failed=0
for f in "$D"/fuzz_*; do
    [ -x "$f" ] || continue
    case "$f" in *.log) continue ;; esac
    name=$(basename "$f" | sed 's/^fuzz_//')
    work="$D/corpus/$name"
    mkdir -p "$work"
    [ -d "tests/fuzz/corpus/$name" ] && cp -n tests/fuzz/corpus/$name/* "$work/" 2>/dev/null
    log="$D/fuzz_$name.log"
    "$f" -max_total_time="$S" -rss_limit_mb=2048 -timeout="${FUZZ_TIMEOUT:-20}" -print_final_stats=1 -artifact_prefix="$D/crash-$name-" "$work" >"$log" 2>&1
    rc=$?
    # a sanitizer report is a failure even where the runtime recovered and went on
    if grep -qE 'runtime error:|ERROR: (Address|Leak)Sanitizer' "$log"; then rc=1; fi
    execs=$(grep -E '^stat::number_of_executed_units' "$log" | awk '{print $2}')
    if [ $rc -eq 0 ] && [ -d "tests/fuzz/crashes/$name" ] && ls tests/fuzz/crashes/$name/* >/dev/null 2>&1; then
        "$f" -timeout="${FUZZ_TIMEOUT:-20}" tests/fuzz/crashes/$name/* >>"$log" 2>&1 || rc=$?
    fi
    if [ $rc -eq 0 ]; then
        passed=$((passed + 1)); printf 'fuzz %-14s ok    %s runs in %ss\n' "$name" "${execs:-?}" "$S"
    else
        failed=$((failed + 1)); printf 'fuzz %-14s FAIL  (see %s)\n' "$name" "$log"
        grep -E 'ERROR|SUMMARY|runtime error' "$log" | head -n 5 | sed 's/^/    /'
    fi
done
echo "$passed passed, $failed failed"
[ $failed -eq 0 ]
