#!/bin/sh
# tests/crash_resume.sh BUILD_DIR: kill -9 during a checkpoint save, then resume, bit-identical.
# tests/crash/train.lua runs the CRAFT trainer for 8 steps with a checkpoint after every step.
# An uninterrupted run gives the reference weights. Then the same run is killed with SIGKILL
#   - half-way through writing the 3rd checkpoint's .tmp file,
#   - after the 5th checkpoint was written and fsynced but before its rename (step 4's is on disk),
#   - at a time drawn at random,
# (the first two stop exactly there through the CRAFT_TEST_SAVE_STALL hook in
# engine/safetensors_write.c), and resumed with `resume = true`. Each resumed run must end with
# weights bit-identical to the reference, the checkpoint left by the kill must be the last
# complete one, and a stale .tmp file must not disturb the resume. Ends with "N passed, N failed".
B=${1:-build}
CRAFT="$B/craft"
D=$(mktemp -d)
trap 'rm -rf "$D"' EXIT
passed=0; failed=0
ok() { passed=$((passed + 1)); }
bad() { failed=$((failed + 1)); echo "FAIL crash_resume: $*" >&2; }
step_of() {   # the step a checkpoint holds (its JSON "state" metadata)
    "$CRAFT" -e "print(require('craft.train.common').checkpoint_step('$1'))" 2>/dev/null
}

# the reference; also times the window from its first checkpoint to its end (for the random kill)
"$CRAFT" tests/crash/train.lua "$D/ref" >"$D/ref.out" 2>"$D/ref.err" &
pid=$!
n=0
while [ ! -e "$D/ref/checkpoint.safetensors" ] && [ $n -lt 1200 ] && kill -0 $pid 2>/dev/null; do sleep 0.02; n=$((n + 1)); done
t0=$(date +%s.%N)
wait $pid
dur=$(echo "$t0 $(date +%s.%N)" | awk '{ print $2 - $1 }')
ref=$(sed -n 's/^weights //p' "$D/ref.out")
[ -n "$ref" ] && ok || { bad "reference run failed: $(tail -n 3 "$D/ref.err")"; echo "$passed passed, $failed failed"; exit 1; }

# kill_at NAME STALL EXPECTED_STEP: run with the stall hook, kill -9 at the marker, check, resume
kill_at() {
    name=$1; stall=$2; want=$3; out="$D/$name"
    rm -f "$D/marker"
    CRAFT_TEST_SAVE_STALL="$stall:$D/marker" "$CRAFT" tests/crash/train.lua "$out" >/dev/null 2>"$D/$name.err" &
    pid=$!
    n=0
    while [ ! -e "$D/marker" ] && [ $n -lt 600 ] && kill -0 $pid 2>/dev/null; do sleep 0.1; n=$((n + 1)); done
    if [ ! -e "$D/marker" ]; then bad "$name: the save never reached the stall point"; kill -9 $pid 2>/dev/null; wait $pid 2>/dev/null; return; fi
    kill -9 $pid; wait $pid 2>/dev/null
    [ -e "$out/checkpoint.safetensors.tmp" ] && ok || bad "$name: no partial .tmp file was left (the kill missed the save)"
    got=$(step_of "$out/checkpoint.safetensors")
    [ "$got" = "$want" ] && ok || bad "$name: the checkpoint on disk holds step '$got', expected $want (the last complete one)"
    "$CRAFT" tests/crash/train.lua "$out" resume >"$D/$name.resume.out" 2>"$D/$name.resume.err"
    res=$(sed -n 's/^weights //p' "$D/$name.resume.out")
    ran=$(sed -n 's/^ran //p' "$D/$name.resume.out")
    [ "$ran" = "$((8 - want))" ] && ok || bad "$name: the resumed run trained '$ran' steps, expected $((8 - want)) (it did not start from the checkpoint)"
    [ "$res" = "$ref" ] && ok || bad "$name: resumed weights $res differ from the uninterrupted run's $ref ($(tail -n 2 "$D/$name.resume.err"))"
    [ ! -e "$out/checkpoint.safetensors.tmp" ] && ok || bad "$name: the .tmp file is still there after the resumed run"
}
kill_at mid_write mid:3 2
kill_at before_rename rename:5 4

# at a random moment of the training (after the first checkpoint exists, so that there is
# something to resume from; the delay is a random share of the reference run's time from its
# first checkpoint to its end)
out="$D/random"
"$CRAFT" tests/crash/train.lua "$out" >/dev/null 2>"$D/random.err" &
pid=$!
n=0
while [ ! -e "$out/checkpoint.safetensors" ] && [ $n -lt 1200 ] && kill -0 $pid 2>/dev/null; do sleep 0.02; n=$((n + 1)); done
delay=$(awk -v d="$dur" 'BEGIN { srand(); printf "%.3f", rand() * d * 0.9 }')
sleep "$delay"
kill -9 $pid 2>/dev/null; wait $pid 2>/dev/null
at=$(step_of "$out/checkpoint.safetensors")
"$CRAFT" tests/crash/train.lua "$out" resume >"$D/random.resume.out" 2>"$D/random.resume.err"
res=$(sed -n 's/^weights //p' "$D/random.resume.out")
ran=$(sed -n 's/^ran //p' "$D/random.resume.out")
[ "$ran" = "$((8 - at))" ] && ok || bad "random kill after ${delay}s: resumed from step $at but trained '$ran' steps"
echo "random kill ${delay}s after the first checkpoint (the reference took ${dur}s from there): resumed from step $at" >&2
[ "$res" = "$ref" ] && ok || bad "random kill after ${delay}s: resumed weights $res differ from $ref ($(tail -n 2 "$D/random.resume.err"))"

echo "$passed passed, $failed failed"
[ $failed -eq 0 ]
