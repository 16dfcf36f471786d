#!/usr/bin/env bash
# The Spark Connect gateway against the rig's anchors: the rig's workload (../shared/rig:
# 5M-row toArrow/toPandas, 50 small queries, ...) run side by side, interleaved, against one
# Apache Spark Connect server reached three ways: directly, through sk8's gateway, and through
# nginx grpc_pass. Results go in docs/benchmarks.md.
#
#   benches/gateway.sh [--reps N] [--rows N]     (defaults: 3 reps, 5,000,000 rows)
#
# Needs: the venvs of scripts/setup-spark.sh and scripts/setup-connect.sh (made if missing),
# Debian's nginx (installed with apt-get when missing and running as root), a release build of
# sk8 (built here, in $CARGO_TARGET_DIR or target/).
set -euo pipefail
cd "$(dirname "$0")/.."
say() { printf 'gateway-bench: %s\n' "$*" >&2; }

RIG="$(cd ../shared/rig && pwd)"
WORK="$(mktemp -d)"
HTTP=127.0.0.1:18481
GRPC=127.0.0.1:18482
NGINX=127.0.0.1:18483
cleanup() {
  [ -f "$WORK/nginx/nginx.pid" ] && kill "$(cat "$WORK/nginx/nginx.pid")" 2>/dev/null || true
  [ -n "${SK8_PID:-}" ] && kill "$SK8_PID" 2>/dev/null && wait "$SK8_PID" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

SPARK_HOME="$(scripts/setup-spark.sh)"
CONNECT_VENV="$(scripts/setup-connect.sh)"
if ! command -v nginx >/dev/null 2>&1; then
  say "installing nginx (the baseline proxy) with apt-get"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx >&2
fi
say "building sk8 (release)"
cargo build --release --bin sk8 >&2
SK8="${CARGO_TARGET_DIR:-target}/release/sk8"

cat >"$WORK/sk8.yaml" <<YAML
dataDir: $WORK/data
http: {addr: "$HTTP"}
gateway: {addr: "$GRPC", startTimeoutSeconds: 180}
backend:
  kind: local
  local: {sparkHome: "$SPARK_HOME", connectServer: spark}
log: {format: json}
YAML
"$SK8" serve --config "$WORK/sk8.yaml" 2>"$WORK/sk8.log" &
SK8_PID=$!
python3 "$RIG/wait_port.py" "${HTTP%:*}" "${HTTP##*:}" 30 >/dev/null

say "starting a session (Apache Spark's Connect server, local[2]; about 10 s)"
ID=$(curl -sf "http://$HTTP/v1/sessions" -H 'content-type: application/json' \
  -d '{"team": "bench", "env": "dev", "name": "gateway", "driver": {"memory": "2g"}}' |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
for _ in $(seq 1 180); do
  SESSION=$(curl -sf "http://$HTTP/v1/sessions/$ID")
  STATE=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["state"])' "$SESSION")
  [ "$STATE" = READY ] && break
  [ "$STATE" = FAILED ] && { say "the session failed: $SESSION"; exit 1; }
  sleep 1
done
ENDPOINT=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["endpoint"])' "$SESSION")
say "session $ID serves at $ENDPOINT"
"$RIG/start_nginx.sh" "$NGINX" "$ENDPOINT" "$WORK/nginx" >&2

# The server answers only its token (src/gateway/token.rs): sk8 sends it itself; the direct
# and nginx routes send it from the client, derived here from sk8's key like the gateway does.
# pyspark sends a token in plaintext only to the host "localhost".
TOKEN=$(python3 -c 'import hashlib,hmac,sys; key=open(sys.argv[1],"rb").read(); print(hmac.new(key, sys.argv[2].encode(), hashlib.sha256).hexdigest())' \
  "$WORK/data/gateway-upstream.key" "$ID")
ROUTES=(
  "direct=sc://localhost:${ENDPOINT##*:}/;token=$TOKEN"
  "sk8=sc://$GRPC/;x-sk8-session=$ID"
  "nginx=sc://localhost:${NGINX##*:}/;token=$TOKEN"
)

say "warming up: one small run of each route (not measured)"
"$CONNECT_VENV/bin/python" "$RIG/bench.py" --reps 1 --rows 1000000 "${ROUTES[@]}" >/dev/null 2>&1

say "running the rig's workload: direct, through sk8, through nginx (interleaved)"
"$CONNECT_VENV/bin/python" "$RIG/bench.py" "$@" "${ROUTES[@]}"
