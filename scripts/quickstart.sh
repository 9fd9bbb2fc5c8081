#!/usr/bin/env bash
# The main job: set up libtorch (idempotent), build (release, with the `torch` feature) and run
# the quickstart pipeline on the embedded data, then print Table 1 and the baselines. A second run
# is all cached.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cargo build --release --locked --features torch
bin=./target/release/s2r-pipe
$bin run pipelines/quickstart.yaml "$@"
$bin cat pipelines/quickstart.yaml stats.table1
for id in "eval[method=mf]" eval_darec eval_dqn_r eval_no_dyn "eval[method=popular]" "eval[method=random]"; do
    $bin cat pipelines/quickstart.yaml "$id.summary"
done
