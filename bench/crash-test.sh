#!/usr/bin/env bash
# The crash test, many times: concurrent clients create, update, finish and destroy
# tasks; the server is killed with SIGKILL at a random moment and restarted; every
# acknowledged change must be there (xmlrpc-tests/test_durability.py). CI runs 3 rounds;
# this runs ${1:-200} against the release build.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds="${1:-200}"
cargo build --release --locked --quiet
venv=target/pyvenv
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
"$venv/bin/pip" install --quiet --disable-pip-version-check -r xmlrpc-tests/requirements.txt
XAPI_TASKD_BIN="$PWD/target/release/xapi-taskd" XAPI_TASKD_SKIP_BUILD=1 CRASH_ROUNDS="$rounds" \
  "$venv/bin/python" -m pytest -q -s xmlrpc-tests/test_durability.py -k kill_9
