#!/usr/bin/env bash
# The main job: set up libtorch (idempotent), build, and run the quickstart pipeline on the
# embedded data; `run` prints Table 2's layout at the end, then Table 1 of the split and the α
# chosen on validation users. A second run is all cached.
#
# Two binaries: `s2r-pipe`, built without libtorch (plans, validates, finds cache hits and runs
# every non-torch stage without loading it), and `s2r-pipe-worker` beside it, the same program
# built with the `torch` feature, to which `s2r-pipe` hands the stages that run libtorch.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cargo build --release --locked --features torch
cp -f target/release/s2r-pipe target/release/s2r-pipe-worker
cargo build --release --locked
bin=./target/release/s2r-pipe
$bin run pipelines/quickstart.yaml "$@"
$bin cat pipelines/quickstart.yaml stats.table1 "$@"
for id in "pick_s2r[seed=1]" "pick_s2r[seed=2]"; do
    $bin cat pipelines/quickstart.yaml "$id.choice" "$@"
done
