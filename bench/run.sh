#!/usr/bin/env bash
# Benchmarks xapi-taskd against the bare-hyper limit and a stdlib-Python peer, side by
# side on this machine, with the benchmark's own client and with wrk, and counts what a
# request costs each server (callgrind, perf stat, strace); prints one table (see
# docs/performance.md). Takes about a quarter of an hour on 2 cores. Not part of the
# test command. With etcd installed (Debian etcd-server) and protoc (protobuf-compiler),
# it ends with the cluster rows: a 3-member etcd and front-ends on this machine
# (BENCH_ONLY=cluster runs those alone).
#   BENCH_ONLY=driver,wrk,fanout,counts,cluster BENCH_SECS=3 BENCH_WRK_SECS=4 \
#   BENCH_MAX_TASKS=1000000 BENCH_FANOUT=100,1000,10000 BENCH_COUNT_REQUESTS=2000 bench/run.sh
set -euo pipefail
cd "$(dirname "$0")/.."
only="${BENCH_ONLY:-driver,wrk,fanout,counts,cluster}"
# The tools, from Debian, if missing: wrk for the wrk rows, valgrind, perf and strace for
# the counts.
need=()
case ",$only," in *,wrk,*|*,counts,*) command -v wrk >/dev/null || need+=(wrk) ;; esac
case ",$only," in
  *,counts,*)
    command -v valgrind >/dev/null || need+=(valgrind)
    command -v strace >/dev/null || need+=(strace)
    command -v perf >/dev/null || need+=(linux-perf)
    ;;
esac
if [ "${#need[@]}" -gt 0 ]; then
  apt-get install -y "${need[@]}" >/dev/null || {
    apt-get update >/dev/null && apt-get install -y "${need[@]}" >/dev/null
  }
fi
features=()
if command -v protoc >/dev/null 2>&1; then
  features=(--features etcd)
fi
cargo build --release --locked --bins --examples "${features[@]}"
# 10,000 event watchers need 10,000 sockets on each side.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
exec target/release/examples/bench
