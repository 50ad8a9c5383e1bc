#!/usr/bin/env bash
# Benchmarks xapi-taskd against the bare-hyper limit and a stdlib-Python peer, side by
# side on this machine, and prints a table (see docs/performance.md). Takes a few
# minutes on 2 cores. Not part of the test command.
#   BENCH_SECS=3 BENCH_MAX_TASKS=1000000 BENCH_FANOUT=100,1000,10000 bench/run.sh
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked --bins --examples
# 10,000 event watchers need 10,000 sockets on each side.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
exec target/release/examples/bench
