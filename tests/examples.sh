#!/bin/sh
# tests/examples.sh [BUILD_DIR]: runs every examples/NN_*.lua at smoke size, each from a scratch
# working directory outside the repository (a recipe must find its helpers and the repository's
# files from anywhere), and counts one pass per example that exits 0 and prints its
# "example ok:" line (each example asserts its own result before printing it). Logs in
# BUILD_DIR/examples/.
B=${1:-build}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
CRAFT=$(cd "$B" && pwd)/craft
LOGS=$(cd "$B" && pwd)/examples
rm -rf "$LOGS" && mkdir -p "$LOGS"
pass=0; fail=0
for ex in "$ROOT"/examples/[0-9][0-9]_*.lua; do
    name=$(basename "$ex" .lua)
    work=$(mktemp -d)
    start=$(date +%s)
    (cd "$work" && "$CRAFT" "$ex" --smoke) > "$LOGS/$name.log" 2>&1
    rc=$?
    secs=$(( $(date +%s) - start ))
    if [ "$rc" -eq 0 ] && grep -q '^example ok:' "$LOGS/$name.log"; then
        pass=$((pass + 1)); echo "ok   $name (${secs}s)"
    else
        fail=$((fail + 1)); echo "FAIL $name (exit $rc, ${secs}s; log: $LOGS/$name.log)"
        tail -n 5 "$LOGS/$name.log" | sed 's/^/    /'
    fi
    rm -rf "$work"
done
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
