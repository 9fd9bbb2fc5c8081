#!/usr/bin/env bash
# The test command: sets up what it needs (idempotent), then runs every test.
#   1. moto's S3 server in .venv-moto for the remote-cache tests (a real server on 127.0.0.1);
#   2. the engine and stages without libtorch (fast: what most changes touch), then the quick
#      break-it campaign (scripts/faults.sh --quick: kills, concurrent runs beside gc, corruption,
#      YAML bombs, ENOSPC where a tmpfs can be mounted, a fuzz loop through the parsers);
#   3. a real single-node Slurm (scripts/setup-slurm.sh: Debian's slurm-wlm and munge) for the
#      Slurm executor's tests (tests/slurm.rs), which then must find it (S2R_REQUIRE_SLURM=1);
#   4. everything again with the `torch` feature (tch =0.24.0 against the venv from setup.sh):
#      the libtorch glue, DARec, and the pipelines that use them.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup-moto.sh
# Chromium for the report's browser test (the test says SKIPPED where it cannot be installed).
if ! command -v chromium >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then
    (apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium) >target/apt-chromium.log 2>&1 ||
        echo "test.sh: could not install chromium (see target/apt-chromium.log); the browser test will be skipped"
fi
bash scripts/setup-slurm.sh
export S2R_REQUIRE_SLURM=1
cargo test --workspace --locked
bash scripts/faults.sh --quick
bash scripts/setup.sh
cargo test --workspace --locked --features torch
