#!/usr/bin/env bash
# Runs every test of sk8: unit tests, the store suite on SQLite and Postgres, the HTTP, CLI and
# restart suites against the real daemon on both engines, the real-PySpark suite, and the
# Spark Connect suite (real Sail and Apache Spark servers, the real pyspark-client). It
# prepares what they need first: a pyspark venv (scripts/setup-spark.sh), a Sail and
# pyspark-client venv (scripts/setup-connect.sh), a moto venv for the S3 tests
# (scripts/setup-s3.sh), the sk8 Python package's venv with pytest, schemathesis, nbclient and
# Metaflow for the client suite (scripts/setup-clients.sh) and a reachable Postgres (the local cluster is
# started if it is down).
#
#   scripts/test.sh [nextest or cargo-test filters...]
# Postgres: SK8_TEST_DATABASE_URL or DATABASE_URL (default postgres://postgres@127.0.0.1:5432/postgres);
# each test creates and drops a database of its own there.
set -euo pipefail
cd "$(dirname "$0")/.."
say() { printf 'test.sh: %s\n' "$*" >&2; }

pg_url="${SK8_TEST_DATABASE_URL:-${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}}"
case "$pg_url" in postgres*) ;; *) pg_url="postgres://postgres@127.0.0.1:5432/postgres" ;; esac
export SK8_TEST_DATABASE_URL="$pg_url"

ensure_postgres() {
  if pg_isready -d "$pg_url" -q 2>/dev/null; then
    return
  fi
  if command -v pg_ctlcluster >/dev/null 2>&1 && [ -d /etc/postgresql ]; then
    say "Postgres is not answering at $pg_url: starting the local cluster"
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start || true
    for _ in $(seq 1 50); do pg_isready -d "$pg_url" -q 2>/dev/null && return; sleep 0.2; done
  fi
  say "no Postgres at $pg_url: start one, or point SK8_TEST_DATABASE_URL at a server where this user may CREATE DATABASE"
  exit 1
}

if [ -z "${SK8_TEST_SPARK_HOME:-}" ]; then
  SK8_TEST_SPARK_HOME="$(scripts/setup-spark.sh)"
  export SK8_TEST_SPARK_HOME
fi
if [ -z "${SK8_TEST_CONNECT_VENV:-}" ]; then
  SK8_TEST_CONNECT_VENV="$(scripts/setup-connect.sh)"
  export SK8_TEST_CONNECT_VENV
fi
if [ -z "${SK8_TEST_S3_VENV:-}" ]; then
  SK8_TEST_S3_VENV="$(scripts/setup-s3.sh)"
  export SK8_TEST_S3_VENV
fi
if [ -z "${SK8_TEST_CLIENTS_VENV:-}" ]; then
  SK8_TEST_CLIENTS_VENV="$(scripts/setup-clients.sh)"
  export SK8_TEST_CLIENTS_VENV
fi
ensure_postgres
say "Python client, its tests and the examples: $SK8_TEST_CLIENTS_VENV"
say "S3-compatible server (moto): $SK8_TEST_S3_VENV"
say "Spark: $SK8_TEST_SPARK_HOME; Spark Connect client and Sail: $SK8_TEST_CONNECT_VENV; Postgres: $pg_url"

if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace "$@"
else
  say "cargo-nextest not found: using cargo test"
  cargo test --workspace "$@"
fi
