#!/usr/bin/env bash
# The Spark Connect gateway side by side with other gRPC proxies, in front of the same Spark
# Connect server: direct, through sk8's gateway, through nginx `grpc_pass`, and through any
# other proxy given on the command line; over a Sail server and Apache Spark's own, in turn.
# benches/gateway_routes.py measures (big toArrow time, proxy CPU s/GB, tiny-query p50/p99,
# concurrent throughput, RSS), interleaved, with per-rep ratios to direct. Results go in
# docs/benchmarks.md.
#
#   benches/gateway.sh [--servers sail,spark] [--proxy 'NAME=COMMAND']... [--no-nginx]
#                      [gateway_routes.py options: --reps N --rows N --tiny N --clients N ...]
#
# A --proxy COMMAND is run with bash, its placeholders replaced: {listen} (host:port to serve
# plaintext HTTP/2 on), {upstream} (the server's host:port), {token} (the server's bearer
# token, for a proxy that presents its own) and {dir} (a scratch directory). It must stay in
# the foreground (exec it), and pass the client's `authorization` metadata on or present
# {token} itself. Example: --proxy 'peer=/opt/peer/run.sh {listen} {upstream} {token} {dir}'.
#
# Needs: the venvs of scripts/setup-spark.sh and scripts/setup-connect.sh (made if missing),
# Debian's nginx (installed with apt-get when missing and running as root), a release build of
# sk8 (built here, in $CARGO_TARGET_DIR or target/), ../shared/rig (nginx's config).
set -euo pipefail
cd "$(dirname "$0")/.."
say() { printf 'gateway-bench: %s\n' "$*" >&2; }

RIG="$(cd "${SK8_RIG:-../shared/rig}" && pwd)"
WORK="$(mktemp -d)"
HTTP=127.0.0.1:18481
GRPC=127.0.0.1:18482
NGINX=127.0.0.1:18483
FIRST_PROXY_PORT=18490

SERVERS=sail,spark
NGINX_ON=1
PROXIES=()
PASS=()
while [ $# -gt 0 ]; do
  case "$1" in
    --servers) SERVERS=$2; shift 2 ;;
    --proxy) PROXIES+=("$2"); shift 2 ;;
    --no-nginx) NGINX_ON=0; shift ;;
    *) PASS+=("$1"); shift ;;
  esac
done

PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  [ -f "$WORK/nginx/nginx.pid" ] && kill "$(cat "$WORK/nginx/nginx.pid")" 2>/dev/null || true
  [ -n "${ID:-}" ] && curl -sf -X DELETE "http://$HTTP/v1/sessions/$ID" >/dev/null || true
  [ -n "${SK8_PID:-}" ] && kill "$SK8_PID" 2>/dev/null && wait "$SK8_PID" 2>/dev/null || true
  # The session's server runs in its own process group (it outlives a restart of sk8).
  [ -n "${SERVER_GROUP:-}" ] && kill -- "-$SERVER_GROUP" 2>/dev/null || true
  PIDS=() ID="" SK8_PID="" SERVER_GROUP=""
}
trap 'cleanup; rm -rf "$WORK"' EXIT

SPARK_HOME="$(scripts/setup-spark.sh)"
CONNECT_VENV="$(scripts/setup-connect.sh)"
if [ "$NGINX_ON" = 1 ] && ! command -v nginx >/dev/null 2>&1; then
  say "installing nginx (the baseline proxy) with apt-get"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx >&2
fi
say "building sk8 (release)"
cargo build --release --bin sk8 >&2
SK8="${CARGO_TARGET_DIR:-target}/release/sk8"

# The pid of the process listening on a port.
listener() {
  ss -Hltnp "sport = :$1" | sed -n 's/.*pid=\([0-9]*\).*/\1/p' | head -n 1
}

# Starts sk8 with a session on a server of kind $1; sets SK8_PID, ID, ENDPOINT, SERVER_PID
# and SERVER_GROUP.
start_session() {
  rm -rf "$WORK/data"
  cat >"$WORK/sk8.yaml" <<YAML
dataDir: $WORK/data
http: {addr: "$HTTP"}
gateway: {addr: "$GRPC", startTimeoutSeconds: 180}
backend:
  kind: local
  local: {sparkHome: "$SPARK_HOME", connectServer: $1, sail: "$CONNECT_VENV/bin/sail"}
log: {format: json}
YAML
  "$SK8" serve --config "$WORK/sk8.yaml" 2>"$WORK/sk8-$1.log" &
  SK8_PID=$!
  python3 "$RIG/wait_port.py" "${HTTP%:*}" "${HTTP##*:}" 30 >/dev/null
  say "starting a session on a $1 server"
  ID=$(curl -sf "http://$HTTP/v1/sessions" -H 'content-type: application/json' \
    -d '{"team": "bench", "env": "dev", "name": "gateway", "driver": {"memory": "2g"}}' |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
  local session state
  for _ in $(seq 1 180); do
    session=$(curl -sf "http://$HTTP/v1/sessions/$ID")
    state=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["state"])' "$session")
    [ "$state" = READY ] && break
    [ "$state" = FAILED ] && { say "the session failed: $session"; exit 1; }
    sleep 1
  done
  ENDPOINT=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["endpoint"])' "$session")
  SERVER_PID=$(listener "${ENDPOINT##*:}")
  SERVER_GROUP=$(ps -o pgid= -p "$SERVER_PID" | tr -d ' ')
  say "session $ID serves at $ENDPOINT (pid $SERVER_PID)"
}

bench_server() {
  start_session "$1"
  # The server answers only its token (src/gateway/token.rs): sk8 sends it itself; the other
  # routes send it from the client, derived here from sk8's key like the gateway does.
  # pyspark sends a token in plaintext only to the host "localhost".
  local token
  token=$(python3 -c 'import hashlib,hmac,sys; key=open(sys.argv[1],"rb").read(); print(hmac.new(key, sys.argv[2].encode(), hashlib.sha256).hexdigest())' \
    "$WORK/data/gateway-upstream.key" "$ID")
  local routes=(
    "direct=sc://localhost:${ENDPOINT##*:}/;token=$token"
    "sk8=sc://$GRPC/;x-sk8-session=$ID@self:$SK8_PID"
  )
  if [ "$NGINX_ON" = 1 ]; then
    "$RIG/start_nginx.sh" "$NGINX" "$ENDPOINT" "$WORK/nginx" >&2
    routes+=("nginx=sc://localhost:${NGINX##*:}/;token=$token@tree:$(cat "$WORK/nginx/nginx.pid")")
  fi
  local port=$FIRST_PROXY_PORT spec name command
  for spec in "${PROXIES[@]}"; do
    name=${spec%%=*}
    command=${spec#*=}
    mkdir -p "$WORK/$name"
    command=${command//\{listen\}/127.0.0.1:$port}
    command=${command//\{upstream\}/$ENDPOINT}
    command=${command//\{token\}/$token}
    command=${command//\{dir\}/$WORK/$name}
    bash -c "exec $command" >"$WORK/$name.log" 2>&1 &
    PIDS+=($!)
    python3 "$RIG/wait_port.py" 127.0.0.1 "$port" 60 >/dev/null ||
      { say "$name did not listen on $port: $(tail -n 5 "$WORK/$name.log")"; exit 1; }
    routes+=("$name=sc://localhost:$port/;token=$token@tree:$!")
    port=$((port + 1))
  done
  say "$1 server: measuring ${routes[*]%%=*}"
  echo "### $1 server"
  "$CONNECT_VENV/bin/python" benches/gateway_routes.py --warm-up --server-pid "$SERVER_PID" \
    "${PASS[@]}" "${routes[@]}"
  cleanup
}

for server in ${SERVERS//,/ }; do
  bench_server "$server"
done
