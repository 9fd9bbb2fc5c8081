#!/usr/bin/env bash
# Side-by-side benchmarks for issue 14 (docs/design.md §8), printed as Markdown tables:
#   1. no-op rerun of the quickstart and of a generated 100-stage DAG with the binary the README
#      builds (the lean `s2r-pipe` beside its torch worker), vs `dvc repro` and `snakemake` on the
#      same 100-stage DAG;
#   2. 100 trivial stages (50 sources, 50 stages reading one each), cold, submit → done, through
#      `--executor in-process`, `process` and `slurm`, and the same DAG through Snakemake's own
#      Slurm executor (snakemake-executor-plugin-slurm) on the same single-node Slurm.
#
# Needs: target/release/s2r-pipe and s2r-pipe-worker (bash scripts/quickstart.sh builds both),
# a warm quickstart cache (S2R_BENCH_QS_CACHE, default ./cache), a running Slurm
# (bash scripts/setup-slurm.sh). Installs dvc, snakemake and the Slurm plugin from PyPI into
# target/bench-venv. REPEATS (default 5) sets the no-op repeats (the median is reported).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BIN=${S2R_BENCH_BIN:-$ROOT/target/release/s2r-pipe}
[ -x "$BIN" ] && [ -x "$ROOT/target/release/s2r-pipe-worker" ] || {
    echo "bench-executors: build first: bash scripts/quickstart.sh" >&2
    exit 1
}
REPEATS=${REPEATS:-5}
VENV=$ROOT/target/bench-venv
if [ ! -x "$VENV/bin/snakemake" ] || [ ! -x "$VENV/bin/dvc" ]; then
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q dvc snakemake snakemake-executor-plugin-slurm
fi
export PATH=$VENV/bin:$PATH
W=$(mktemp -d "$ROOT/target/bench-XXXX")
trap 'rm -rf "$W"' EXIT

now() { date +%s.%N; }
# median of the wall times of REPEATS runs of "$@"
median_of() {
    local ts=()
    for _ in $(seq "$REPEATS"); do
        local t0
        t0=$(now)
        "$@" >/dev/null 2>&1
        ts+=("$(echo "$(now) - $t0" | bc -l)")
    done
    printf '%s\n' "${ts[@]}" | sort -g | awk '{a[NR]=$1} END {printf "%.3f", a[int((NR+1)/2)]}'
}

# --- the 100-stage DAG of benches/engine.rs: 10 sequences, then 90 sums reading their
# predecessor, a pseudo-random earlier stage and the first stage.
python3 - "$W" <<'PY'
import os, sys
w = sys.argv[1]
n, roots = 100, 10
deps = {}
for i in range(n):
    if i >= roots:
        b = ((i * 0x9E3779B97F4A7C15) % (1 << 64) >> 33) % i
        deps[i] = [i - 1, b, 0]
os.makedirs(f"{w}/s2r", exist_ok=True)
with open(f"{w}/s2r/p100.yaml", "w") as f:
    f.write("name: gen\nstages:\n")
    for i in range(n):
        if i < roots:
            f.write(f"  s{i}: {{kind: util.sequence, params: {{n: {5 + i % 7}, start: {i}}}}}\n")
        else:
            xs = ", ".join(f"s{d}.table" for d in deps[i])
            f.write(f"  s{i}: {{kind: util.sum, inputs: {{x: [{xs}]}}}}\n")
# DVC: one stage per node, the same edges (outputs are small text files).
os.makedirs(f"{w}/dvc", exist_ok=True)
with open(f"{w}/dvc/dvc.yaml", "w") as f:
    f.write("stages:\n")
    for i in range(n):
        f.write(f"  s{i}:\n")
        if i < roots:
            f.write(f"    cmd: seq {i} {i + 4 + i % 7} > out/s{i}.txt\n")
        else:
            ins = " ".join(f"out/s{d}.txt" for d in deps[i])
            f.write(f"    cmd: cat {ins} | awk '{{s+=$1}} END {{print s}}' > out/s{i}.txt\n")
            f.write("    deps:\n" + "".join(f"      - out/s{d}.txt\n" for d in sorted(set(deps[i]))))
        f.write(f"    outs:\n      - out/s{i}.txt\n")
# Snakemake: the same DAG.
os.makedirs(f"{w}/smk", exist_ok=True)
with open(f"{w}/smk/Snakefile", "w") as f:
    f.write(f"rule all:\n    input: [f'out/s{{i}}.txt' for i in range({n})]\n\n")
    for i in range(n):
        f.write(f"rule s{i}:\n")
        if i < roots:
            f.write(f"    output: 'out/s{i}.txt'\n    shell: 'seq {i} {i + 4 + i % 7} > {{output}}'\n\n")
        else:
            ins = ", ".join(f"'out/s{d}.txt'" for d in sorted(set(deps[i])))
            f.write(f"    input: {ins}\n    output: 'out/s{i}.txt'\n")
            f.write("    shell: \"cat {input} | awk '{{s+=$1}} END {{print s}}' > {output}\"\n\n")
# The executor DAG: 50 sources, 50 stages reading one each.
with open(f"{w}/s2r/wide.yaml", "w") as f:
    f.write("name: wide\nstages:\n")
    for i in range(50):
        f.write(f"  a{i}: {{kind: util.sequence, params: {{n: 5, start: {i}}}}}\n")
        f.write(f"  b{i}: {{kind: util.sum, inputs: {{x: a{i}.table}}}}\n")
os.makedirs(f"{w}/smk-slurm", exist_ok=True)
with open(f"{w}/smk-slurm/Snakefile", "w") as f:
    f.write("rule all:\n    input: expand('out/b{i}.txt', i=range(50))\n\n")
    f.write("rule a:\n    output: 'out/a{i}.txt'\n    resources: cpus_per_task=1, mem_mb=100, runtime=5\n")
    f.write("    shell: 'seq {wildcards.i} $(({wildcards.i}+4)) > {output}'\n\n")
    f.write("rule b:\n    input: 'out/a{i}.txt'\n    output: 'out/b{i}.txt'\n    resources: cpus_per_task=1, mem_mb=100, runtime=5\n")
    f.write("    shell: \"awk '{{s+=$1}} END {{print s}}' {input} > {output}\"\n")
PY

echo "## No-op reruns (median of $REPEATS, whole process)"
echo
echo "| tool | DAG | no-op rerun |"
echo "|---|---|---:|"
QS_CACHE=${S2R_BENCH_QS_CACHE:-$ROOT/cache}
if [ -d "$QS_CACHE/entries" ]; then
    "$BIN" -q --cache-dir "$QS_CACHE" run pipelines/quickstart.yaml >/dev/null
    echo "| s2r-pipe (README build) | quickstart, 59 stages | $(median_of "$BIN" -q --cache-dir "$QS_CACHE" run pipelines/quickstart.yaml) s |"
fi
(cd "$W/s2r" && "$BIN" -q --cache-dir cache run p100.yaml >/dev/null)
echo "| s2r-pipe (README build) | generated, 100 stages | $(cd "$W/s2r" && median_of "$BIN" -q --cache-dir cache run p100.yaml) s |"
(cd "$W/dvc" && mkdir -p out && dvc init -q --no-scm && dvc config core.analytics false && dvc repro -q >/dev/null 2>&1)
echo "| dvc repro $(dvc --version) | generated, 100 stages | $(cd "$W/dvc" && median_of dvc repro -q) s |"
(cd "$W/smk" && snakemake -q -j 2 >/dev/null 2>&1)
echo "| snakemake $(snakemake --version) | generated, 100 stages | $(cd "$W/smk" && median_of snakemake -q -j 2) s |"

echo
echo "## 100 trivial stages, cold, submit → done (50 sources + 50 readers)"
echo
echo "| executor | wall | per stage |"
echo "|---|---:|---:|"
one() { # label, command…
    local label=$1
    shift
    local t0 t
    t0=$(now)
    "$@" >"$W/last.log" 2>&1 || { echo "bench-executors: $label failed:" >&2; tail -20 "$W/last.log" >&2; exit 1; }
    t=$(echo "$(now) - $t0" | bc -l)
    printf '| %s | %.1f s | %.0f ms |\n' "$label" "$t" "$(echo "$t * 1000 / 100" | bc -l)"
}
cd "$W/s2r"
one "s2r-pipe in-process" "$BIN" -q --cache-dir c1 run wide.yaml --executor in-process
one "s2r-pipe process" "$BIN" -q --cache-dir c2 run wide.yaml --executor process
one "s2r-pipe slurm (poll 0.5 s)" "$BIN" -q --cache-dir "$W/s2r/c3" run wide.yaml --executor slurm
cd "$W/smk-slurm"
one "snakemake $(snakemake --version) + slurm plugin $(pip show snakemake-executor-plugin-slurm 2>/dev/null | awk '/^Version/{print $2}'), first check after 1 s" \
    snakemake -j 100 --executor slurm --slurm-init-seconds-before-status-checks 1 --slurm-status-command squeue \
    --default-resources slurm_partition=debug
