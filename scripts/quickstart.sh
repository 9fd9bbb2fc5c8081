#!/usr/bin/env bash
# The main job: set up libtorch (idempotent), build (release, with the `torch` feature) and run
# the quickstart pipeline on the embedded data; `run` prints Table 2's layout at the end, then
# Table 1 of the split and the α chosen on validation users. A second run is all cached.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cargo build --release --locked --features torch
bin=./target/release/s2r-pipe
$bin run pipelines/quickstart.yaml "$@"
$bin cat pipelines/quickstart.yaml stats.table1 "$@"
for id in "pick_s2r[seed=1]" "pick_s2r[seed=2]"; do
    $bin cat pipelines/quickstart.yaml "$id.choice" "$@"
done
