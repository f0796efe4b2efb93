#!/bin/sh
# tools/check_layers.sh BUILD_DIR: checks engine/'s layering (engine/README.md) two ways and
# prints one line per violation, then "N passed, N failed" (tests/run.sh runs it).
#  1. includes: a file may include only what its folder's row allows (core: core only; cpu,
#     cl, io, text, clinical, dist: core and their own folder; no back end includes another);
#  2. symbols: an object file of a folder may use (nm: undefined symbols) only symbols defined
#     in core or in its own folder; engine/backends.c, the back-end table, is the one place
#     that names the back ends, and main.c is the host.
# So core never reaches a back end, and no op file of one back end calls into another.
B=${1:-build}
cd "$(dirname "$0")/.." || exit 1
pass=0; fail=0
allowed() {   # folder, included folder -> 0 when allowed
    [ "$2" = core ] && return 0
    [ "$1" = "$2" ] && return 0
    return 1
}
for dir in core cpu cl io text clinical dist; do
    for f in engine/$dir/*.c engine/$dir/*.h; do
        [ -f "$f" ] || continue
        for inc in $(sed -n 's/^#include "\([a-z_]*\)\/[^"]*".*/\1/p' "$f"); do
            if allowed "$dir" "$inc"; then pass=$((pass + 1))
            else
                fail=$((fail + 1))
                may="core/"; [ "$dir" = core ] || may="core/ and $dir/"
                echo "FAIL include: $f includes $inc/ (engine/$dir may include $may)"
            fi
        done
    done
done
if [ ! -d "$B/obj/core" ]; then
    echo "FAIL symbols: no objects in $B/obj (build first: make BUILD=$B)"
    echo "$pass passed, $((fail + 1)) failed"
    exit 1
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
objs() {   # the objects of folder $1's current sources
    for c in engine/$1/*.c; do echo "$B/obj/$1/$(basename "$c" .c).o"; done
}
for dir in core cpu cl io text clinical dist; do
    nm -g --defined-only $(objs $dir) 2>/dev/null | awk 'NF == 3 { print $3 }' | sort -u > "$tmp/def.$dir"
done
for dir in core cpu cl io text clinical dist; do
    for o in $(objs $dir); do
        nm -u "$o" | awk '{ print $NF }' | sort -u > "$tmp/undef"
        for other in core cpu cl io text clinical dist; do
            [ "$other" = "$dir" ] && continue
            [ "$other" = core ] && continue
            bad=$(comm -12 "$tmp/undef" "$tmp/def.$other" | tr '\n' ' ')
            if [ -n "$bad" ]; then fail=$((fail + 1)); echo "FAIL symbols: $o ($dir) uses $other/'s $bad"
            else pass=$((pass + 1)); fi
        done
    done
done
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
