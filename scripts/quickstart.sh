#!/usr/bin/env bash
# The main job: build (release) and run the quickstart pipeline on the embedded data, then print
# Table 1 of the split. A second run is all cached.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked
./target/release/s2r-pipe run pipelines/quickstart.yaml "$@"
./target/release/s2r-pipe cat pipelines/quickstart.yaml stats.table1
