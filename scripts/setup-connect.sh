#!/usr/bin/env bash
# Prepares what the Spark Connect side of sk8 uses locally: a Python venv with Sail (`pysail`, a
# Spark Connect server in Rust that starts in a fraction of a second) and the real Spark Connect
# client (`pyspark-client`, with pandas and pyarrow). Kept apart from scripts/setup-spark.sh's
# venv: `pyspark` and `pyspark-client` both install the `pyspark` package. Idempotent. Prints the
# venv's directory on its last line (its bin/ holds `sail` and `python`).
#
#   scripts/setup-connect.sh          # venv in $SK8_CONNECT_VENV, default ~/.cache/sk8/connect-venv
set -euo pipefail

PYSAIL_VERSION="${SK8_PYSAIL_VERSION:-0.7.2}"
CLIENT_VERSION="${SK8_PYSPARK_CLIENT_VERSION:-4.2.0}"
VENV="${SK8_CONNECT_VENV:-$HOME/.cache/sk8/connect-venv}"

say() { printf 'setup-connect: %s\n' "$*" >&2; }

installed() {
  "$VENV/bin/python" - "$PYSAIL_VERSION" "$CLIENT_VERSION" 2>/dev/null <<'PY'
import sys
from importlib.metadata import version
ok = version("pysail") == sys.argv[1] and version("pyspark-client") == sys.argv[2]
sys.exit(0 if ok else 1)
PY
}

if [ -x "$VENV/bin/python" ] && installed; then
  say "pysail $PYSAIL_VERSION and pyspark-client $CLIENT_VERSION already in $VENV"
else
  command -v python3 >/dev/null 2>&1 || { say "python3 is needed"; exit 1; }
  say "creating $VENV with pysail $PYSAIL_VERSION and pyspark-client $CLIENT_VERSION (about 200 MB)"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --disable-pip-version-check --progress-bar on \
    "pysail==$PYSAIL_VERSION" "pyspark-client==$CLIENT_VERSION" 'pandas<3' >&2
fi
echo "$VENV"
