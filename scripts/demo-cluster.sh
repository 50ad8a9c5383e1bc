#!/usr/bin/env bash
# A local demo of cluster mode: three etcd members and three xapi-taskd front-ends on
# loopback ports of their own (never 2379/2380), data in a temporary directory, all
# stopped on Ctrl-C.
#   scripts/demo-cluster.sh [FRONT_ENDS]     (needs Debian's etcd-server and protoc)
set -euo pipefail
cd "$(dirname "$0")/.."
n="${1:-3}"
command -v etcd >/dev/null || { echo "needs etcd: apt-get install etcd-server" >&2; exit 1; }
cargo build --release --locked --features etcd --bin xapi-taskd
dir="$(mktemp -d /tmp/xapi-taskd-demo-XXXXXX)"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$dir"
}
trap cleanup EXIT INT TERM

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

cluster="" ; clients=()
for i in 1 2 3; do
  cp=$(free_port); pp=$(free_port)
  clients+=("http://127.0.0.1:$cp"); peers[$i]=$pp; cports[$i]=$cp
  cluster+="${cluster:+,}m$i=http://127.0.0.1:$pp"
done
for i in 1 2 3; do
  etcd --name "m$i" --data-dir "$dir/m$i" \
    --listen-client-urls "http://127.0.0.1:${cports[$i]}" --advertise-client-urls "http://127.0.0.1:${cports[$i]}" \
    --listen-peer-urls "http://127.0.0.1:${peers[$i]}" --initial-advertise-peer-urls "http://127.0.0.1:${peers[$i]}" \
    --initial-cluster "$cluster" --initial-cluster-state new --initial-cluster-token "demo-$$" \
    --pre-vote --logger zap --log-outputs "$dir/m$i.log" &
  pids+=($!)
done
endpoints=$(IFS=,; echo "${clients[*]}")
for e in "${clients[@]}"; do
  for _ in $(seq 100); do curl -fs "$e/health" >/dev/null 2>&1 && break; sleep 0.1; done
done
password="${XAPI_TASKD_ROOT_PASSWORD:-demo-root-password}"
for i in $(seq "$n"); do
  port=$(free_port)
  mkdir -p "$dir/fe$i"
  XAPI_TASKD_ROOT_PASSWORD="$password" target/release/xapi-taskd serve --data-dir "$dir/fe$i" \
    --listen "127.0.0.1:$port" --store etcd --etcd-endpoints "$endpoints" --etcd-prefix /demo/ \
    >"$dir/fe$i.log" 2>&1 &
  pids+=($!)
  echo "front-end $i: http://127.0.0.1:$port"
done
echo "etcd: $endpoints (prefix /demo/); root's password: $password"
echo "users: target/release/xapi-taskd user add NAME --role ROLE --store etcd --etcd-endpoints $endpoints --etcd-prefix /demo/"
echo "status: target/release/xapi-taskd cluster status --store etcd --etcd-endpoints $endpoints --etcd-prefix /demo/"
echo "Ctrl-C stops everything."
wait
