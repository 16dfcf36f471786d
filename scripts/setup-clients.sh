#!/usr/bin/env bash
# Prepares what the client-side suites use (tests/clients.rs): a Python venv with the `sk8`
# package from clients/python (editable), its test runner (pytest), Sail and the real Spark Connect
# client (for sessions), schemathesis (the OpenAPI check against the live daemon), and what the
# examples run on: nbclient + ipykernel (the Jupyter notebook, headless) and Metaflow (the
# feature pipeline, local run). Idempotent: a venv whose pinned versions match is reused. Prints
# the venv's directory on its last line (its bin/ holds `python`, `pytest`, `sail`).
#
#   scripts/setup-clients.sh          # venv in $SK8_CLIENTS_VENV, default ~/.cache/sk8/clients-venv
set -euo pipefail
cd "$(dirname "$0")/.."

PYSAIL_VERSION="${SK8_PYSAIL_VERSION:-0.7.2}"
CLIENT_VERSION="${SK8_PYSPARK_CLIENT_VERSION:-4.2.0}"
PYTEST_VERSION=9.2.0
SCHEMATHESIS_VERSION=4.32.5
NBCLIENT_VERSION=0.11.0
IPYKERNEL_VERSION=7.4.0
METAFLOW_VERSION=2.19.39
VENV="${SK8_CLIENTS_VENV:-$HOME/.cache/sk8/clients-venv}"

say() { printf 'setup-clients: %s\n' "$*" >&2; }

pins=(
  "pysail==$PYSAIL_VERSION" "pyspark-client==$CLIENT_VERSION" 'pandas<3'
  "pytest==$PYTEST_VERSION" "schemathesis==$SCHEMATHESIS_VERSION"
  "nbclient==$NBCLIENT_VERSION" "ipykernel==$IPYKERNEL_VERSION" "metaflow==$METAFLOW_VERSION"
)

installed() {
  "$VENV/bin/python" - "$PWD/clients/python/src" "${pins[@]}" 2>/dev/null <<'PY'
import os
import sys
from importlib.metadata import version
for pin in sys.argv[2:]:
    if "==" in pin:
        name, want = pin.split("==")
        if version(name) != want:
            sys.exit(1)
import sk8
# The editable install must be this checkout's clients/python, not another clone's.
sys.exit(0 if os.path.realpath(sk8.__file__).startswith(os.path.realpath(sys.argv[1]) + "/") else 1)
PY
}

if [ -x "$VENV/bin/python" ] && installed; then
  say "client venv up to date in $VENV"
else
  command -v python3 >/dev/null 2>&1 || { say "python3 is needed"; exit 1; }
  if [ ! -x "$VENV/bin/python" ]; then
    say "creating $VENV (about 300 MB: Sail, pyspark-client, schemathesis, nbclient, Metaflow)"
    python3 -m venv "$VENV"
  fi
  say "installing the pinned tools and this checkout's clients/python (editable) into $VENV"
  "$VENV/bin/pip" install --disable-pip-version-check --progress-bar off "${pins[@]}" >&2
  "$VENV/bin/pip" install --disable-pip-version-check --progress-bar off -e clients/python >&2
fi
echo "$VENV"
