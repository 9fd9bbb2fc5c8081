#!/usr/bin/env bash
# Idempotent set-up of libtorch for the `torch` feature (tch =0.24.0 ↔ libtorch 2.11.0).
#
# PyPI has no CPU-only torch wheel for Linux and the full one pulls ~2.6 GB of CUDA packages; tch
# on CPU needs only libtorch_cpu.so, libcudart and libcupti, so we install torch without its
# dependencies into a project-local venv and point LIBTORCH at it through the `.libtorch` symlink
# (see .cargo/config.toml). A second run does nothing.
set -euo pipefail
cd "$(dirname "$0")/.."

TORCH_VERSION=2.11.0
VENV=.venv
marker="$VENV/.s2r-torch-$TORCH_VERSION"

if [[ ! -f "$marker" ]]; then
    echo "setup: installing torch $TORCH_VERSION (no deps) into $VENV" >&2
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check --no-deps \
        "torch==$TORCH_VERSION" nvidia-cuda-runtime==13.0.96 nvidia-cuda-cupti==13.0.85
    touch "$marker"
fi

site=$("$VENV/bin/python3" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
if [[ ! -f "$site/torch/lib/libtorch_cpu.so" ]]; then
    echo "setup: $site/torch/lib/libtorch_cpu.so is missing; remove $VENV and rerun" >&2
    exit 1
fi
target="$site/torch"
if [[ "$(readlink .libtorch 2>/dev/null || true)" != "$target" ]]; then
    ln -sfn "$target" .libtorch
fi
echo "setup: libtorch ready at .libtorch -> $target" >&2
