#!/usr/bin/env bash
# Prepares the S3-compatible server the object-store tests talk to: a Python venv with moto's
# server mode from PyPI (`moto_server`, an in-memory S3 API on a port of the caller's choice).
# Idempotent: a venv that already has the pinned version is reused. Prints the venv's directory
# on its last line (its bin/ holds `moto_server`).
#
#   scripts/setup-s3.sh               # venv in $SK8_S3_VENV, default ~/.cache/sk8/s3-venv
set -euo pipefail

MOTO_VERSION="${SK8_MOTO_VERSION:-5.2.5}"
VENV="${SK8_S3_VENV:-$HOME/.cache/sk8/s3-venv}"

say() { printf 'setup-s3: %s\n' "$*" >&2; }

installed() {
  "$VENV/bin/python" - "$MOTO_VERSION" 2>/dev/null <<'PY'
import sys
from importlib.metadata import version
sys.exit(0 if version("moto") == sys.argv[1] and version("flask") else 1)
PY
}

if [ -x "$VENV/bin/moto_server" ] && installed; then
  say "moto $MOTO_VERSION already in $VENV"
else
  command -v python3 >/dev/null 2>&1 || { say "python3 is needed"; exit 1; }
  say "creating $VENV with moto[server] $MOTO_VERSION (about 60 MB)"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --disable-pip-version-check --progress-bar off \
    "moto[s3,server]==$MOTO_VERSION" >&2
fi
echo "$VENV"
