"""Xen Orchestra's connector (npm `xen-api` 4.7.6) against the real binary.

The Node script `node/xo_test.mjs` connects the way Xen Orchestra does (login, pool record,
system.listMethods, event.inject, event.from loop), watches tasks to success, cancellation
and failure through events, runs an Async call, and disconnects. It runs once over
JSON-RPC and once over XML-RPC. The npm package is installed by .ci/run
(`npm ci` in xmlrpc-tests/node); the test is skipped only when Node itself is missing.
"""

import pathlib
import shutil
import subprocess

import pytest

from harness import ROOT_PASSWORD, start_server, stop_server

NODE_DIR = pathlib.Path(__file__).resolve().parent / "node"


@pytest.fixture(scope="module")
def xo_server():
    if shutil.which("node") is None:
        pytest.skip("node is not installed")
    if not (NODE_DIR / "node_modules" / "xen-api").is_dir():
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=NODE_DIR, check=True, timeout=300)
    srv = start_server()
    yield srv.url
    stop_server(srv)


@pytest.mark.parametrize("transport", ["json-rpc", "xml-rpc"])
def test_xen_orchestra_connector(xo_server, transport):
    result = subprocess.run(
        ["node", "xo_test.mjs", xo_server, "root", ROOT_PASSWORD, transport],
        cwd=NODE_DIR,
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "XO-TEST OK" in result.stdout
    for step in [
        "connected and got the pool record",
        "watchTask resolved with the decoded result (OpaqueRef:result-ref)",
        "watchTask rejected for the cancelled task",
        "watchTask rejected with the task error",
        "callAsync resolved (void result)",
    ]:
        assert "ok - " + step in result.stdout
