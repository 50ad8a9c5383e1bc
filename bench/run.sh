#!/usr/bin/env bash
# Benchmarks xapi-taskd against the bare-hyper limit and a stdlib-Python peer, side by
# side on this machine, and prints a table (see docs/performance.md). Takes a few
# minutes on 2 cores. Not part of the test command.
#   BENCH_SECS=3 BENCH_MAX_TASKS=1000000 BENCH_FANOUT=100,1000,10000 bench/run.sh
# With etcd installed (Debian etcd-server) and protoc (protobuf-compiler), it ends with the
# cluster rows: a 3-member etcd and two front-ends on this machine (BENCH_ONLY=cluster
# runs those alone).
set -euo pipefail
cd "$(dirname "$0")/.."
features=()
if command -v protoc >/dev/null 2>&1; then
  features=(--features etcd)
fi
cargo build --release --locked --bins --examples "${features[@]}"
# 10,000 event watchers need 10,000 sockets on each side.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
exec target/release/examples/bench
