#!/usr/bin/env bash
# Idempotent: a project-local venv with moto's S3 server, the real S3-compatible server the remote
# cache tests start on 127.0.0.1 (`.venv-moto/bin/moto_server`).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=.venv-moto
if [[ ! -x "$VENV/bin/moto_server" ]]; then
    echo "setup: installing moto[server] into $VENV" >&2
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check "moto[server]==5.2.5"
fi
echo "setup: moto server at $VENV/bin/moto_server" >&2
