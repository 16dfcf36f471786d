#!/usr/bin/env bash
# sk8's first five minutes: builds sk8, prepares a local Spark if there is none, starts
# `sk8 serve` on its embedded defaults (SQLite store, local backend, HTTP on 127.0.0.1:8080),
# runs the sample PySpark job examples/pi.yaml to SUCCEEDED, then keeps serving until Ctrl-C.
#
#   scripts/quickstart.sh          # stays up; try `sk8 list` in another terminal
#   scripts/quickstart.sh --once   # stops after the sample job (used by CI)
#
# The Spark it prepares is the venv sk8 finds by itself (~/.cache/sk8/spark-venv, see
# scripts/setup-spark.sh), so a `sk8 serve` started by hand later finds it too.
set -euo pipefail
cd "$(dirname "$0")/.."

once=false
[ "${1:-}" = "--once" ] && once=true
if [ -t 2 ]; then bold=$'\033[1m' plain=$'\033[0m'; else bold='' plain=''; fi
say() { printf '%squickstart:%s %s\n' "$bold" "$plain" "$*" >&2; }

if [ -n "${SPARK_HOME:-}" ]; then
  say "Spark: SPARK_HOME=$SPARK_HOME"
elif command -v spark-submit >/dev/null 2>&1; then
  say "Spark: $(command -v spark-submit)"
else
  # Not exported: sk8 finds this venv by itself, as it will when you run it by hand.
  say "Spark: $(scripts/setup-spark.sh)"
fi

say "building sk8 (cargo build; the first build takes a few minutes)"
cargo build --bin sk8
sk8=target/debug/sk8

addr="${SK8_HTTP_ADDR:-127.0.0.1:8080}"
export SK8_SERVER="http://$addr"
log="${TMPDIR:-/tmp}/sk8-quickstart.log"
say "starting 'sk8 serve' on its embedded defaults (log: $log)"
"$sk8" serve >"$log" 2>&1 &
pid=$!
trap 'kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null || true' EXIT

for _ in $(seq 1 100); do
  curl -fsS "$SK8_SERVER/readyz" >/dev/null 2>&1 && break
  if ! kill -0 "$pid" 2>/dev/null; then
    say "sk8 did not start; its log says:"
    cat "$log" >&2
    exit 1
  fi
  sleep 0.2
done
grep -E 'config:|store:|backend:|sk8 is ready' "$log" | sed 's/^/    /' >&2 || true

say "submitting the sample job: sk8 submit examples/pi.yaml --wait"
"$sk8" submit examples/pi.yaml --wait

# How to do all of this by hand, with the exact commands (the server address only when it is
# not sk8's default).
server_env=""
[ "$addr" = "127.0.0.1:8080" ] || server_env="SK8_HTTP_ADDR=$addr "
client_env=""
[ "$addr" = "127.0.0.1:8080" ] || client_env="SK8_SERVER=$SK8_SERVER "
client="cd $PWD && $client_env$sk8"
if $once; then
  say "done (sk8 stops with this script). To run it yourself ('cargo install --path .' puts"
  say "sk8 on your PATH):"
  say "  in one terminal:  cd $PWD && $server_env$sk8 serve"
  say "  in another:       $client submit examples/pi.yaml --wait"
  say "                    $client list"
  exit 0
fi
say "sk8 keeps serving at $SK8_SERVER (API: $SK8_SERVER/openapi.json); Ctrl-C stops it."
say "In another terminal:  $client list"
say "                      $client logs <id>      ($client events <id>)"
say "Later, without this script:  cd $PWD && $server_env$sk8 serve   (then the commands above)"
wait "$pid"
