#!/bin/sh
# tests/report_render.sh [BUILD_DIR]: builds the synthetic report of tests/lua/test_report.lua
# and renders it with headless Chromium (Debian package `chromium`): --dump-dom must give a
# non-empty page with the report's sections, the console must show no JavaScript error, the
# page must hold no <script>, and the screenshot must be a real image. Skips (exit 0, a "skip"
# line) when chromium is not installed. Leaves the report and report.png in $OUT_DIR
# (default build/report_render) for a look.
B=${1:-build}
CRAFT=${CRAFT:-$B/craft}
OUT_DIR=${OUT_DIR:-$B/report_render}
mkdir -p "$OUT_DIR" && OUT_DIR=$(cd "$OUT_DIR" && pwd)   # chromium needs an absolute profile path
BROWSER=$(command -v chromium || command -v chromium-browser || true)
if [ -z "$BROWSER" ]; then
    echo "skip report_render: chromium is not installed (apt-get install -y chromium)"
    exit 0
fi
rm -rf "$OUT_DIR"
mkdir -p "$OUT_DIR"
fail() { echo "report_render FAILED: $*"; exit 1; }

CRAFT_REPORT_DIR="$OUT_DIR/report" "$CRAFT" tests/lua/run.lua tests/lua/test_report.lua > "$OUT_DIR/build.log" 2>&1 \
    || fail "building the report (see $OUT_DIR/build.log)"
PAGE="$OUT_DIR/report/index.html"
case "$PAGE" in /*) URL="file://$PAGE" ;; *) URL="$URL" ;; esac
[ -s "$PAGE" ] || fail "no $PAGE"
grep -qi '<script' "$PAGE" && fail "the report contains a <script>"

# A private profile and no network: the page must render from its own bytes.
FLAGS="--headless --disable-gpu --no-sandbox --no-first-run --user-data-dir=$OUT_DIR/profile --enable-logging=stderr --v=0"
timeout 120 "$BROWSER" $FLAGS --dump-dom "$URL" > "$OUT_DIR/dom.html" 2> "$OUT_DIR/dom.log" \
    || fail "chromium --dump-dom exited with an error (see $OUT_DIR/dom.log)"
timeout 120 "$BROWSER" $FLAGS --hide-scrollbars --window-size=1280,2600 --screenshot="$OUT_DIR/report.png" \
    "$URL" > /dev/null 2> "$OUT_DIR/shot.log" \
    || fail "chromium --screenshot exited with an error (see $OUT_DIR/shot.log)"

grep -E 'Uncaught|CONSOLE.*[Ee]rror' "$OUT_DIR/dom.log" "$OUT_DIR/shot.log" && fail "JavaScript error in the console"
size=$(wc -c < "$OUT_DIR/dom.html")
[ "$size" -gt 10000 ] || fail "the rendered DOM is nearly empty ($size bytes)"
for want in 'Low-alignment tail' 'CAS distributions' 'Checklist audit' 'Best and worst images' '<svg'; do
    grep -q "$want" "$OUT_DIR/dom.html" || fail "the rendered page lacks \"$want\""
done
[ -s "$OUT_DIR/report.png" ] || fail "no screenshot"
shot=$(wc -c < "$OUT_DIR/report.png")
[ "$shot" -gt 50000 ] || fail "the screenshot is suspiciously small ($shot bytes): blank page?"
echo "report_render ok: $PAGE rendered ($size bytes of DOM, screenshot $OUT_DIR/report.png, $shot bytes)"
echo "1 passed, 0 failed"
