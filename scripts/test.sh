#!/usr/bin/env bash
# The test command: sets up what it needs (idempotent), then runs every test.
#   1. the engine and stages without libtorch (fast: this is what most changes touch);
#   2. the libtorch glue with the `torch` feature (tch =0.24.0 against the venv from setup.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo test --workspace --locked
bash scripts/setup.sh
cargo test --workspace --locked --features torch -p s2r-stages
