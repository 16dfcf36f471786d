#!/usr/bin/env bash
# Prepares a local Spark for sk8's local backend: a Python venv with pyspark from PyPI (its
# wheel carries Spark's jars and bin/spark-submit). Idempotent: a venv that already has the
# pinned version is reused. Prints the SPARK_HOME to use on its last line.
#
#   scripts/setup-spark.sh            # venv in $SK8_SPARK_VENV, default ~/.cache/sk8/spark-venv
set -euo pipefail

PYSPARK_VERSION="${SK8_PYSPARK_VERSION:-4.3.0}"
VENV="${SK8_SPARK_VENV:-$HOME/.cache/sk8/spark-venv}"

say() { printf 'setup-spark: %s\n' "$*" >&2; }

# A JDK, not only a JRE: Spark runs on the JVM, and the tests compile clients/java with javac.
ensure_java() {
  if command -v java >/dev/null 2>&1 && command -v javac >/dev/null 2>&1; then
    return
  fi
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    say "no JDK found: installing a headless JDK with apt-get (Spark runs on the JVM; clients/java is compiled)"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq default-jdk-headless >&2
  else
    say "Spark needs Java 17 or newer and the tests need javac: install a JDK (e.g. 'sudo apt-get install default-jdk-headless') and rerun"
    exit 1
  fi
}

ensure_pyspark() {
  local python="$VENV/bin/python"
  # pyarrow and pandas: Python UDFs of Spark Connect sessions run in this Python.
  if [ -x "$python" ] && [ "$("$python" -c 'import pyarrow, pandas, pyspark; print(pyspark.__version__)' 2>/dev/null)" = "$PYSPARK_VERSION" ]; then
    say "pyspark $PYSPARK_VERSION already in $VENV"
    return
  fi
  command -v python3 >/dev/null 2>&1 || { say "python3 is needed to install pyspark"; exit 1; }
  say "creating $VENV with pyspark $PYSPARK_VERSION, pyarrow and pandas (about 600 MB; the first time takes a minute or two)"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --disable-pip-version-check --progress-bar on \
    "pyspark==$PYSPARK_VERSION" pyarrow 'pandas<3' >&2
}

ensure_java
ensure_pyspark
"$VENV/bin/python" -c 'import os, pyspark; print(os.path.dirname(pyspark.__file__))'
