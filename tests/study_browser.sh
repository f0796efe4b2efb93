#!/bin/sh
# tests/study_browser.sh [BUILD_DIR]: the blinded reader study end to end in headless Chromium.
# A smoke run (recipes/quickstart.lua --smoke) -> `craft study make` (4 methods + 1 real image
# per trial, 2 draws per class) -> the packet scanned for any method name, key, kind or file
# name (by grep, independently of craft's own scan) and for image sizes / chunks -> two readers
# complete the study in Chromium through the page's test hook (tests/study/driver.js; "Dr A"
# reloads the page half-way and must resume where it was) -> the ratings file the Download
# button produces -> a truncated copy, an edited copy, a duplicate and a ratings file of
# another packet added -> `craft study score`: one line per bad file, and the numbers equal the
# hand-computed ones (tests/study/check_scores.lua) -> the experiment report links the study.
# Skips (a "skip" line, exit 0) when chromium is not installed. Leaves everything in $OUT_DIR
# (default build/study_browser).
B=${1:-build}
CRAFT=${CRAFT:-$B/craft}
OUT_DIR=${OUT_DIR:-$B/study_browser}
BROWSER=$(command -v chromium || command -v chromium-browser || true)
if [ -z "$BROWSER" ]; then
    echo "skip study_browser: chromium is not installed (apt-get install -y chromium)" >&2
    echo "0 passed, 0 failed"
    exit 0
fi
rm -rf "$OUT_DIR"
mkdir -p "$OUT_DIR" && OUT_DIR=$(cd "$OUT_DIR" && pwd)   # chromium needs absolute paths
CRAFT=$(cd "$(dirname "$CRAFT")" && pwd)/$(basename "$CRAFT")
passed=0; failed=0
ok() { passed=$((passed + 1)); }
bad() { failed=$((failed + 1)); echo "FAIL study_browser: $*" >&2; }
check() { if eval "$1"; then ok; else bad "$2"; fi; }
finish() { echo "$passed passed, $failed failed"; [ "$failed" -eq 0 ]; exit $?; }

RUN="$OUT_DIR/run"
"$CRAFT" recipes/quickstart.lua --smoke --out "$RUN" > "$OUT_DIR/run.log" 2>&1 || { bad "the smoke run failed (see $OUT_DIR/run.log)"; finish; }
METHODS=$("$CRAFT" -e "local r = require('craft.io').read_json('$RUN/run.json'); local k = {}; for i = 1, math.min(4, #r.methods) do k[i] = r.methods[i].key end; print(table.concat(k, ','))")
case "$METHODS" in *,*,*,*) ;; *) bad "the smoke run has fewer than 4 methods ($METHODS)"; finish ;; esac
PK="$OUT_DIR/packet"
"$CRAFT" study make "$RUN" --out "$PK" --per-class 2 --real 1 --methods "$METHODS" --seed browser-test > "$OUT_DIR/make.log" 2>&1 \
    || { bad "study make failed: $(cat "$OUT_DIR/make.log")"; finish; }
PAGE="$PK/study.html"
check '[ -s "$PAGE" ] && [ -s "$PK/key.json" ]' "no packet"

# ---- blinding, checked by grep: the page without its base64 payloads holds no method word
sed -E 's#data:image/png;base64,[A-Za-z0-9+/=]+#data:image/png;base64,#g' "$PAGE" > "$OUT_DIR/page_text.html"
"$CRAFT" -e "
  local r = require('craft.io').read_json('$RUN/run.json')
  for _, m in ipairs(r.methods) do print('w ' .. m.name); print('w ' .. m.key); print('w ' .. m.kind) end
  for _, row in ipairs(require('craft.samples').read('$RUN/samples')) do
    print('s ' .. row.file); print('s ' .. row.file:match('[^/]+$')); print('s ' .. row.file:match('[^/]+$'):gsub('%.png$', ''))
  end" > "$OUT_DIR/forbidden.txt"
leaks=0
while IFS= read -r line; do
    kind=${line%% *}; word=${line#* }
    if [ "$kind" = w ]; then grep -qiwF -- "$word" "$OUT_DIR/page_text.html" && { echo "  leak: method word '$word'" >&2; leaks=$((leaks + 1)); }
    else grep -qiF -- "$word" "$OUT_DIR/page_text.html" && { echo "  leak: file name '$word'" >&2; leaks=$((leaks + 1)); }
    fi
done < "$OUT_DIR/forbidden.txt"
nwords=$(wc -l < "$OUT_DIR/forbidden.txt")
check '[ "$leaks" -eq 0 ] && [ "$nwords" -gt 20 ]' "the page names a method or a file ($leaks leaks of $nwords words)"
check '! grep -qi craft "$OUT_DIR/page_text.html"' "the page names the program (and so the method CRAFT)"
# every embedded image: the same byte size, only IHDR/IDAT/IEND
mkdir -p "$OUT_DIR/images"
grep -oE 'data:image/png;base64,[A-Za-z0-9+/=]+' "$PAGE" | sed 's#data:image/png;base64,##' > "$OUT_DIR/images/all.b64"
nimg=$(wc -l < "$OUT_DIR/images/all.b64")
sizes=$(while IFS= read -r b; do printf '%s' "$b" | base64 -d | wc -c; done < "$OUT_DIR/images/all.b64" | sort -u | wc -l)
check '[ "$nimg" -eq 30 ] && [ "$sizes" -eq 1 ]' "images: $nimg embedded (30 expected), $sizes distinct byte sizes (1 expected)"
chunks=$(head -n 1 "$OUT_DIR/images/all.b64" | base64 -d | grep -aoE 'IHDR|IDAT|IEND|tEXt|iTXt|zTXt|tIME|eXIf|pHYs|gAMA|sRGB|iCCP' | tr '\n' ' ')
check '[ "$chunks" = "IHDR IDAT IEND " ]' "the first image's chunks are '$chunks'"
"$CRAFT" study scan "$PK" > "$OUT_DIR/scan.log" 2>&1
check '[ $? -eq 0 ]' "craft study scan finds a leak: $(cat "$OUT_DIR/scan.log")"

# ---- two readers in Chromium
FLAGS="--headless --disable-gpu --no-sandbox --no-first-run --enable-logging=stderr --v=0 --virtual-time-budget=30000"
drive() {   # drive PAGE KEY READER NAME [STOP_AFTER]
    "$CRAFT" tests/study/drive_page.lua "$1" "$2" "$3" "$OUT_DIR/$4.html" $5 || { bad "drive_page for $3"; return 1; }
    timeout 120 "$BROWSER" $FLAGS --user-data-dir="$OUT_DIR/profile_$4" --dump-dom "file://$OUT_DIR/$4.html" \
        > "$OUT_DIR/$4.dom" 2> "$OUT_DIR/$4.log" || { bad "chromium failed for $3 (see $OUT_DIR/$4.log)"; return 1; }
    if "$CRAFT" tests/study/extract.lua "$OUT_DIR/$4.dom" driver-error > "$OUT_DIR/$4.error"; then
        bad "the driver failed for $3: $(cat "$OUT_DIR/$4.error")"; return 1
    fi
    grep -E 'Uncaught|CONSOLE.*[Ee]rror' "$OUT_DIR/$4.log" && { bad "JavaScript error for $3"; return 1; }
    "$CRAFT" tests/study/extract.lua "$OUT_DIR/$4.dom" download "$OUT_DIR/$4.json" || { bad "no ratings download for $3"; return 1; }
    "$CRAFT" tests/study/extract.lua "$OUT_DIR/$4.dom" hook "$OUT_DIR/$4.hook.json"
    cmp -s "$OUT_DIR/$4.json" "$OUT_DIR/$4.hook.json" || { bad "the downloaded file differs from the hook's ratings for $3"; return 1; }
    ok
}
drive "$PAGE" "$PK/key.json" "Dr A" a 2
"$CRAFT" tests/study/extract.lua "$OUT_DIR/a.dom" log > "$OUT_DIR/a.driver.json"
# Chromium runs headless on virtual time (--virtual-time-budget), so the driver's pause before its
# reload is no real pause: on a loaded machine the reload has come back without the page's
# localStorage at all (both loads at the intro, the reader's progress gone; a lost write, not a
# wrong resume). Such a run is repeated once with a fresh profile, and the repeat must pass on
# its own (its drive replaces the first one's count).
if grep -q '"loads":\[{"view":"intro","done":null},{"view":"intro","done":null}\]' "$OUT_DIR/a.driver.json"; then
    echo "    study_browser: Dr A's reload came back without localStorage; running Dr A again" >&2
    passed=$((passed - 1))
    rm -rf "$OUT_DIR/profile_a"
    drive "$PAGE" "$PK/key.json" "Dr A" a 2
    "$CRAFT" tests/study/extract.lua "$OUT_DIR/a.dom" log > "$OUT_DIR/a.driver.json"
fi
drive "$PAGE" "$PK/key.json" "Dr B" b
check 'grep -q "\"before_reload\":2" "$OUT_DIR/a.driver.json" && grep -q "\"resumed_at\":3" "$OUT_DIR/a.driver.json"' \
    "Dr A did not resume at trial 3 after the reload: $(cat "$OUT_DIR/a.driver.json")"
check 'grep -q "\"rater\": \"Dr A\"" "$OUT_DIR/a.json" && [ "$(grep -c "\"trial\":" "$OUT_DIR/a.json")" -eq 6 ]' "Dr A's file lacks the reader or 6 trials"

# a ratings file of another packet of the same run
"$CRAFT" study make "$RUN" --out "$OUT_DIR/packet2" --per-class 1 --real 1 --methods "$METHODS" --seed another > /dev/null 2>&1
drive "$OUT_DIR/packet2/study.html" "$OUT_DIR/packet2/key.json" "Dr C" other

# damaged copies
head -c 1500 "$OUT_DIR/a.json" > "$OUT_DIR/truncated.json"
sed '0,/"ms": [0-9]*/s//"ms": 987654/' "$OUT_DIR/b.json" > "$OUT_DIR/edited.json"
cp "$OUT_DIR/a.json" "$OUT_DIR/a_again.json"

# ---- scoring
"$CRAFT" study score "$PK/key.json" "$OUT_DIR/a.json" "$OUT_DIR/b.json" "$OUT_DIR/truncated.json" "$OUT_DIR/edited.json" \
    "$OUT_DIR/a_again.json" "$OUT_DIR/other.json" --out "$RUN/study" --boot 400 > "$OUT_DIR/score.out" 2> "$OUT_DIR/score.err"
check '[ $? -eq 0 ]' "study score failed: $(cat "$OUT_DIR/score.err")"
line_for() { grep -c "^craft study score: $OUT_DIR/$1: .*$2" "$OUT_DIR/score.err"; }
check '[ "$(line_for truncated.json "not a complete JSON file")" -eq 1 ]' "no line for the truncated file"
check '[ "$(line_for edited.json "does not match its checksum")" -eq 1 ]' "no line for the edited file"
check '[ "$(line_for a_again.json "the same ratings as")" -eq 1 ]' "no line for the duplicate"
check '[ "$(line_for other.json "ratings for packet")" -eq 1 ]' "no line for the other packet's ratings"
nlines=$(grep -c '^craft study score:' "$OUT_DIR/score.err")
check '[ "$nlines" -eq 4 ]' "$nlines problem lines, 4 expected: $(cat "$OUT_DIR/score.err")"
"$CRAFT" tests/study/check_scores.lua "$PK/key.json" "$RUN/study" > "$OUT_DIR/check.out" 2>&1
cat "$OUT_DIR/check.out" | grep FAIL >&2
p=$(sed -n 's/^\([0-9]*\) passed, \([0-9]*\) failed$/\1/p' "$OUT_DIR/check.out")
f=$(sed -n 's/^\([0-9]*\) passed, \([0-9]*\) failed$/\2/p' "$OUT_DIR/check.out")
if [ -n "$p" ]; then passed=$((passed + p)); failed=$((failed + f)); else bad "check_scores.lua: $(cat "$OUT_DIR/check.out")"; fi
check '[ -s "$RUN/study/index.html" ] && ! grep -qi "<script" "$RUN/study/index.html"' "no results page, or it has a script"
check 'grep -q "href=\"../study/index.html\"" "$RUN/report/index.html"' "the experiment report does not link the study"
finish
