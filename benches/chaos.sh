#!/usr/bin/env bash
# The chaos suite at a longer load than the test suite's: 3 replicas on Postgres, 2 fake
# clusters, kill -9 / SIGSTOP of the lease holder, a Postgres restart and stop, one cluster
# frozen and one cut off (tests/chaos.rs). Prints the failover times and the final tally
# (accepted, stored, duplicated, deleted early, cap, HTTP answers); docs/benchmarks.md has them.
# Usage: benches/chaos.sh [seconds]   (default 120; needs Postgres, see SK8_TEST_DATABASE_URL)
set -euo pipefail
cd "$(dirname "$0")/.."
export SK8_CHAOS_SECONDS="${1:-120}"
export SK8_TEST_DATABASE_URL="${SK8_TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
cargo test --test chaos -- --nocapture 2>&1 | grep -E '^chaos:|test result|panicked'
