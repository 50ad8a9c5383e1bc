#!/usr/bin/env bash
# The long fuzzing run (docs/security.md, Fuzzing): each target for ${1:-1200} seconds in
# turn, with cargo-fuzz (nightly, AddressSanitizer, optimised), niced, one core, going on
# after a finding (fork mode) so that one run reports every kind of crash it meets.
# Corpora grow in ${FUZZ_WORK:-/tmp/xapi-taskd-fuzz}/<target>, seeded from fuzz/corpus;
# findings land in fuzz/artifacts/<target>/, logs in the work directory.
set -euo pipefail
cd "$(dirname "$0")"
secs="${1:-1200}"
work="${FUZZ_WORK:-/tmp/xapi-taskd-fuzz}"
targets=(xmlrpc_call jsonrpc_call filter redfish_body)
nice -n 19 cargo +nightly fuzz build
for t in "${targets[@]}"; do
  mkdir -p "$work/$t" "artifacts/$t"
  start=$(date +%s)
  nice -n 19 cargo +nightly fuzz run "$t" "$work/$t" "corpus/$t" -- \
    -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
    -fork=1 -ignore_crashes=1 -ignore_timeouts=1 -ignore_ooms=1 \
    > "$work/$t.log" 2>&1 || true
  end=$(date +%s)
  execs=$(grep -oE "^#[0-9]+" "$work/$t.log" | tail -n 1 | tr -d '#')
  crashes=$(ls "artifacts/$t" | wc -l)
  echo "$t: $((end - start)) s, ${execs:-?} executions, corpus $(ls "$work/$t" | wc -l), artifacts $crashes"
done
