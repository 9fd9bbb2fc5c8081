#!/usr/bin/env bash
# CUDA vs CPU check, in two halves (the GPU machine has PyTorch's libraries but no Rust toolchain):
#
#   bash scripts/gpu-check.sh build   # here: builds with `--features cuda` and puts stripped
#                                     # binaries in .gpu/ (git-ignored; ~40 MB, carried to the
#                                     # GPU machine: `carry: [".gpu"]`)
#   bash scripts/gpu-check.sh run     # on the GPU machine, from the repository root
#
# `run` uses the machine's own libtorch (the first python3 that imports torch, or $TORCH_LIB) and
#   1. the stage tests with S2R_REQUIRE_CUDA=1, so `cuda_training_matches_cpu` must run there:
#      CPU and CUDA training of the same policy (initial weights, first TD loss, every iteration's
#      TD loss within 1 %, the same greedy sessions);
#   2. the quickstart with its `gpu: 1` stages on CUDA (a fresh cache), printing its table, to
#      compare with the CPU table in the README. Results differ from the CPU run's by float
#      rounding compounded over training, not by construction: initial weights and every random
#      draw are the CPU's (models are built on the CPU, then moved; sampling uses Rust RNGs).
set -euo pipefail
cd "$(dirname "$0")/.."

case "${1:-}" in
build)
    bash scripts/setup.sh
    export CARGO_TARGET_DIR=target/cuda
    cargo build --release --locked --features cuda
    tests=$(cargo test --release --locked -p s2r-stages --features s2r-stages/cuda --no-run --message-format=json \
        | python3 -c 'import json,sys
for l in sys.stdin:
    m = json.loads(l)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "s2r_stages" and m.get("executable"):
        print(m["executable"])' | tail -1)
    mkdir -p .gpu
    cp "$tests" .gpu/stage-tests
    cp target/cuda/release/s2r-pipe .gpu/s2r-pipe
    strip .gpu/stage-tests .gpu/s2r-pipe
    grep -qx '/.gpu/' .git/info/exclude 2>/dev/null || echo '/.gpu/' >> .git/info/exclude
    du -sh .gpu/*
    ;;
run)
    lib=${TORCH_LIB:-$(python3 -c 'import torch, os; print(os.path.join(os.path.dirname(torch.__file__), "lib"))')}
    nvidia=$(dirname "$(dirname "$lib")")/nvidia
    LD_LIBRARY_PATH="$lib:$(find "$nvidia" -maxdepth 3 -type d -name lib | paste -sd:)${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    export LD_LIBRARY_PATH S2R_REQUIRE_CUDA=1
    nvidia-smi --query-gpu=name,driver_version --format=csv,noheader || true
    .gpu/stage-tests --test-threads 1 --nocapture cuda_
    cache=$(mktemp -d)
    start=$(date +%s)
    .gpu/s2r-pipe run pipelines/quickstart.yaml --cache-dir "$cache"
    echo "quickstart on CUDA: $(($(date +%s) - start)) s"
    ;;
*)
    echo "usage: bash scripts/gpu-check.sh build|run" >&2
    exit 2
    ;;
esac
