#!/usr/bin/env bash
# The break-it campaign (issue 16), rerunnable: random kills of runs, concurrent runs beside a
# `cache gc` loop, corruption of objects and manifests, a fuzz loop through the real parsers
# (examples/fuzz.rs), YAML bombs, and ENOSPC on a small tmpfs where mounting is allowed.
#
#   bash scripts/faults.sh            # the full campaign (≥ 100 kills, 1M pipelines, 100k data files)
#   bash scripts/faults.sh --quick    # a small one (≤ 3 min; part of scripts/test.sh)
#
# Ends with `faults: K kills, R concurrent runs, F fuzz inputs, P panics, C corrupt, L lost` and
# exits 0 only when P, C and L are 0. P counts panics, crashes and hangs (of the CLI or the fuzz
# loop); C counts wrong results returned and corruption left behind; L counts runs that should
# have succeeded and did not, and results that went missing.
set -uo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

quick=0
[[ "${1:-}" == "--quick" ]] && quick=1
if ((quick)); then
    kills=20 rounds=3 corruptions=12 fuzz_pipelines=20000 fuzz_data=5000
    cargo build --locked --quiet --bin s2r-pipe --example fuzz
    fuzz="$root/target/debug/examples/fuzz"
else
    kills=${FAULTS_KILLS:-120} rounds=${FAULTS_ROUNDS:-10} corruptions=${FAULTS_CORRUPTIONS:-60}
    fuzz_pipelines=${FAULTS_PIPELINES:-1000000} fuzz_data=${FAULTS_DATA:-100000}
    cargo build --locked --quiet --bin s2r-pipe
    cargo build --locked --quiet --release --example fuzz
    fuzz="$root/target/release/examples/fuzz"
fi
bin="$root/target/debug/s2r-pipe"
started=$SECONDS

K=0 R=0 F=0 P=0 C=0 L=0
work=$(mktemp -d /tmp/s2r-faults.XXXXXX)
trap 'umount "$work/full" 2>/dev/null; rm -rf "$work"' EXIT
cd "$work"
export S2R_CACHE_DIR="$work/cache"
log="$work/log"

say() { printf '[faults %4ds] %s\n' $((SECONDS - started)) "$*"; }
lost() { L=$((L + 1)); say "LOST: $*"; tail -5 "$log" | sed 's/^/    /'; }
crashed() { P=$((P + 1)); say "CRASH: $*"; tail -5 "$log" | sed 's/^/    /'; }

cat >p.yaml <<'YAML'
name: faults
vars: {seeds: [1, 2, 3], n: 1000}
stages:
  a: {kind: util.sequence, matrix: {seed: "${seeds}"}, params: {n: "${n}", start: "${seed}", sleep_ms: 120}}
  b: {kind: util.sum, matrix: {seed: "${seeds}"}, inputs: {x: a.table}, params: {sleep_ms: 80}}
  total: {kind: util.sum, inputs: {x: b.table}, params: {sleep_ms: 40}}
YAML

# Many short stages: concurrent runs commit often, so a gc that races them would be caught.
cat >wide.yaml <<'YAML'
name: wide
vars: {seeds: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20], n: 100}
stages:
  a: {kind: util.sequence, matrix: {seed: "${seeds}"}, params: {n: "${n}", start: "${seed}"}}
  b: {kind: util.sum, matrix: {seed: "${seeds}"}, inputs: {x: a.table}}
  total: {kind: util.sum, inputs: {x: b.table}}
YAML

# Σ over seeds 1..3 of Σ_{i<n} (seed + i).
expected() { local n=$1; echo $((6 * n + 3 * n * (n - 1) / 2)); }

# Runs with n=$1 (must succeed) and checks `total` ($2: a tag for messages).
check() {
    local n=$1 tag=$2 out
    if ! "$bin" run p.yaml -q --set "n=$n" >"$log" 2>&1; then
        lost "$tag: run n=$n exited $?"
        return 1
    fi
    out=$("$bin" cat p.yaml total.table --set "n=$n" --format csv 2>>"$log")
    if [[ $? -ne 0 ]]; then
        if grep -q "corrupt object\|is missing" "$log"; then
            # Detected (and removed) on read: the next run rebuilds it.
            "$bin" run p.yaml -q --set "n=$n" >>"$log" 2>&1 || { lost "$tag: rebuild after a detected corruption"; return 1; }
            out=$("$bin" cat p.yaml total.table --set "n=$n" --format csv 2>>"$log") || { lost "$tag: cat after rebuild"; return 1; }
        else
            lost "$tag: cat n=$n failed"
            return 1
        fi
    fi
    if [[ "$(echo "$out" | tail -1)" != "$(expected "$n")" ]]; then
        C=$((C + 1))
        say "CORRUPT: $tag: total for n=$n is $(echo "$out" | tail -1), expected $(expected "$n")"
        return 1
    fi
}

verify_clean() {
    "$bin" cache verify >"$log" 2>&1
    local rc=$?
    if ((rc != 0)); then
        C=$((C + 1))
        say "CORRUPT: $1: cache verify exited $rc"
        tail -5 "$log" | sed 's/^/    /'
    fi
}

# 1. Random kills: SIGKILL, SIGINT or SIGTERM at a random moment of a run; every rerun exits 0
#    with the right total, and the store verifies clean at the end.
say "kills: $kills runs killed at random moments"
signals=(KILL INT TERM)
for ((i = 0; i < kills; i++)); do
    n=$((1000 + RANDOM % 6))
    "$bin" run p.yaml -q --set "n=$n" >"$log" 2>&1 &
    pid=$!
    sleep "0.$(printf '%03d' $((RANDOM % 700)))"
    sig=${signals[$((RANDOM % 3))]}
    kill -s "$sig" "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    rc=$?
    if ((rc == 101 || rc == 134 || rc == 139)); then crashed "run killed by SIG$sig exited $rc"; fi
    K=$((K + 1))
    check "$n" "after SIG$sig #$i"
done
verify_clean "after the kills"
"$bin" cache gc >"$log" 2>&1 || lost "gc after the kills"
leftovers=$(find cache/tmp -mindepth 1 | wc -l)
locks=$(find cache/locks -mindepth 1 | wc -l)
((leftovers == 0 && locks == 0)) || lost "gc left $leftovers temp entries and $locks lock files"

# 2. Four concurrent runs of one pipeline beside a gc loop: all succeed, each stage's result is
#    the same for all, nothing is lost.
say "concurrency: $rounds rounds of 4 concurrent runs beside a gc loop"
touch gc.on
(
    while [[ -e gc.on ]]; do
        "$bin" cache gc >>gc.log 2>&1 || echo "gc exited $?" >>gc.fail
        "$bin" cache gc --max-age 1h >>gc.log 2>&1 || echo "gc --max-age exited $?" >>gc.fail
    done
) &
gcpid=$!
for ((r = 0; r < rounds; r++)); do
    n=$((2000 + r))
    pids=()
    for j in 1 2 3 4; do
        "$bin" run wide.yaml -q --set "n=$n" --report "r$j.json" >"c$j.log" 2>&1 &
        pids+=($!)
    done
    for j in 0 1 2 3; do
        if ! wait "${pids[$j]}"; then
            cp "c$((j + 1)).log" "$log"
            lost "concurrent run $((j + 1)) of round $r"
        fi
        R=$((R + 1))
    done
    for j in 2 3 4; do
        if ! python3 - r1.json "r$j.json" <<'PY'
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:])
out = lambda r: {s["id"]: s.get("outputs") for s in r["stages"]}
sys.exit(0 if out(a) == out(b) else 1)
PY
        then
            C=$((C + 1))
            say "CORRUPT: round $r: run $j's outputs differ from run 1's"
        fi
    done
    # Σ over seeds 1..20 of Σ_{i<n} (seed + i), read back after the gc loop had its go.
    want=$((210 * n + 20 * n * (n - 1) / 2))
    got=$("$bin" cat wide.yaml total.table --set "n=$n" --format csv 2>>"$log" | tail -1)
    [[ "$got" == "$want" ]] || lost "round $r: total is '$got', expected $want"
done
rm -f gc.on
wait "$gcpid"
[[ -e gc.fail ]] && { cp gc.fail "$log"; lost "a gc beside the runs failed"; }
verify_clean "after the concurrent runs"

# 3. Corruption of objects and manifests, then run: every problem is detected and repaired.
say "corruption: $corruptions rounds"
modes=(flip truncate delete dir edit-manifest swap-manifest foreign flip-leaf)
for ((i = 0; i < corruptions; i++)); do
    n=$((3000 + i % 4))
    check "$n" "before corruption $i" || continue
    mode=${modes[$((i % ${#modes[@]}))]}
    mapfile -t objs < <(find cache/objects -name '*.parquet' | sort)
    mapfile -t ents < <(find cache/entries -name '*.json' | sort)
    obj=${objs[$((RANDOM % ${#objs[@]}))]}
    ent=${ents[$((RANDOM % ${#ents[@]}))]}
    case $mode in
        flip) python3 -c "import sys; p=sys.argv[1]; b=bytearray(open(p,'rb').read()); b[len(b)//2]^=1; open(p,'wb').write(b)" "$obj" ;;
        truncate) truncate -s 1000 "$obj" ;;
        delete) rm -f "$obj" ;;
        dir) rm -f "$obj" && mkdir -p "$obj/x" ;;
        edit-manifest) sed -i 's/"seconds": /"seconds": 1/' "$ent" ;;
        swap-manifest)
            other=${objs[$((RANDOM % ${#objs[@]}))]}
            h1=$(grep -o '"hash": "[0-9a-f]*"' "$ent" | head -1 | cut -d'"' -f4)
            h2=$(basename "$other" .parquet)
            [[ -n "$h1" ]] && sed -i "s/$h1/$h2/" "$ent"
            ;;
        foreign)
            echo mine >cache/objects/notes.txt
            mkdir -p cache/objects/zz && echo mine >cache/objects/zz/readme
            ;;
        flip-leaf)
            leaf=$("$bin" path p.yaml total.table --set "n=$n" 2>/dev/null)
            [[ -n "$leaf" ]] && python3 -c "import sys; p=sys.argv[1]; b=bytearray(open(p,'rb').read()); b[10]^=0x80; open(p,'wb').write(b)" "$leaf"
            ;;
    esac
    if ((i % 2)); then "$bin" cache verify >"$log" 2>&1; fi # half the time verify first
    check "$n" "after $mode #$i"
done
verify_clean "after the corruption rounds"

# 4. YAML bombs and hostile params: a clear error (exit 2) within seconds, never a crash.
say "bombs"
python3 - <<'PY'
lol = 'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n'
prev = 'a'
for c in 'bcdefghi':
    lol += f'{c}: &{c} [' + ','.join(['*' + prev] * 9) + ']\n'
    prev = c
open('bomb-laughs.yaml', 'w').write(lol + 'stages:\n  x: {kind: util.sequence, params: {n: *i}}\n')
open('bomb-flow.yaml', 'w').write('stages: ' + '[' * 100000 + ']' * 100000 + '\n')
open('bomb-block.yaml', 'w').write('stages:\n  a:\n    params:\n' + ''.join(' ' * (6 + i) + '- \n' for i in range(5000)))
axis = '[' + ','.join(str(i) for i in range(1000)) + ']'
open('bomb-matrix.yaml', 'w').write('stages:\n  a: {kind: util.sequence, matrix: {x: %s, y: %s, z: %s}}\n' % (axis, axis, axis))
open('bomb-alloc.yaml', 'w').write('stages:\n  a: {kind: util.sequence, params: {n: 100000000000}}\n')
open('bomb-overflow.yaml', 'w').write('stages:\n  a: {kind: util.sequence, params: {n: 3, start: 9223372036854775807}}\n')
open('bomb-binary.yaml', 'wb').write(bytes(range(256)) * 64)
open('bomb-empty.yaml', 'w').write('')
open('bomb-key.yaml', 'w').write('stages:\n  ' + 'k' * 1000000 + ': {kind: util.sequence}\n')
PY
for f in bomb-*.yaml; do
    timeout 20 "$bin" run "$f" -q >"$log" 2>&1
    rc=$?
    if ((rc != 2)); then crashed "$f: exit $rc (expected 2 within 20 s)"; fi
done

# 5. ENOSPC on a 2 MB tmpfs: clear errors, no partial entries, full recovery with room again.
if mkdir -p full && mount -t tmpfs -o size=2m tmpfs full 2>/dev/null; then
    say "enospc: a 2 MB tmpfs"
    cat >big.yaml <<'YAML'
stages:
  small: {kind: util.sequence, params: {n: 10}}
  big: {kind: util.sequence, params: {n: 2000000, step: 7919}}
YAML
    S2R_CACHE_DIR="$work/full/cache" "$bin" run big.yaml -q >"$log" 2>&1
    rc=$?
    ((rc == 1)) && grep -qi "no space" "$log" || lost "enospc: expected a failed stage naming ENOSPC (exit $rc)"
    S2R_CACHE_DIR="$work/full/cache" "$bin" cache verify >"$log" 2>&1 || { C=$((C + 1)); say "CORRUPT: verify after ENOSPC"; }
    umount full && mount -t tmpfs -o size=64m tmpfs full
    S2R_CACHE_DIR="$work/full/cache" "$bin" run big.yaml -q >"$log" 2>&1 || lost "enospc: no recovery with room"
    umount full
else
    say "enospc: skipped (this machine does not allow mounting a tmpfs)"
fi

# 6. The fuzz loop, in-process through the real parsers.
say "fuzz: $fuzz_pipelines pipeline files, $fuzz_data ratings/anime files"
(cd "$root" && "$fuzz" --pipelines "$fuzz_pipelines" --data "$fuzz_data" --out "$work/fuzz" --seed "${FAULTS_SEED:-1}") >"$work/fuzz.log" 2>&1
frc=$?
tail -3 "$work/fuzz.log"
line=$(grep '^fuzz:' "$work/fuzz.log" | tail -1)
if [[ -z "$line" ]]; then
    crashed "the fuzz loop died (exit $frc)"
else
    F=$(echo "$line" | sed -E 's/^fuzz: ([0-9]+) inputs.*/\1/')
    fp=$(echo "$line" | sed -E 's/.* ([0-9]+) panics.*/\1/')
    fs=$(echo "$line" | sed -E 's/.* ([0-9]+) slow.*/\1/')
    P=$((P + fp + fs))
fi

say "done in $((SECONDS - started)) s"
echo "faults: $K kills, $R concurrent runs, $F fuzz inputs, $P panics, $C corrupt, $L lost"
((P == 0 && C == 0 && L == 0))
