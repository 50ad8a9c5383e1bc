#!/usr/bin/env bash
# The fuzz targets, briefly: builds them and runs each for ${1:-12} seconds from the
# committed corpus (fuzz/corpus/<target>) plus a scratch corpus; any finding (a panic, a
# failed property, a timeout) fails the run and leaves the input in fuzz/artifacts/.
# .ci/run calls this.
#
# It builds with cargo-fuzz's own instrumentation flags (coverage and compare tracing,
# `--cfg fuzzing`, debug assertions) but no sanitizer and no optimisation, with plain
# cargo on the stable toolchain: CI then needs neither nightly nor `cargo install
# cargo-fuzz`, and a clean build takes about as long as the server's own debug build.
# Long runs use cargo-fuzz with AddressSanitizer (docs/security.md, Fuzzing).
set -euo pipefail
cd "$(dirname "$0")"
secs="${1:-12}"
host=$(rustc -vV | sed -n 's/^host: //p')
export RUSTFLAGS="-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares --cfg fuzzing -Cdebug-assertions"
# --target keeps the flags off build scripts, as cargo-fuzz does.
cargo build --locked --quiet --target "$host" --bins
mkdir -p artifacts
for t in xmlrpc_call jsonrpc_call filter redfish_body; do
  scratch=$(mktemp -d)
  echo "-- $t (${secs}s)"
  if ! "${CARGO_TARGET_DIR:-target}/$host/debug/$t" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 \
      -print_final_stats=1 -artifact_prefix="artifacts/$t-" "$scratch" "corpus/$t" \
      2> "artifacts/$t.log"; then
    tail -n 40 "artifacts/$t.log"
    rm -rf "$scratch"
    echo "fuzz target $t found something: see fuzz/artifacts/" >&2
    exit 1
  fi
  grep -E "stat::number_of_executed_units|stat::new_units_added" "artifacts/$t.log" | tr '\n' ' '
  echo
  rm -rf "$scratch" "artifacts/$t.log"
done
