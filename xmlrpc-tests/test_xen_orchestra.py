"""Xen Orchestra's connector (npm `xen-api` 4.7.6) against the real binary.

The Node script `node/xo_test.mjs` connects the way Xen Orchestra does (login, pool record,
system.listMethods, event.inject, event.from loop), watches tasks to success, cancellation
and failure through events, runs an Async call, and disconnects. It runs once over
JSON-RPC and once over XML-RPC. The npm package is installed by .ci/run
(`npm ci` in xmlrpc-tests/node); the test is skipped only when Node itself is missing.
"""

import os
import pathlib
import shutil
import socket
import subprocess
import tempfile
import time

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
NODE_DIR = ROOT / "xmlrpc-tests" / "node"
BINARY = ROOT / "target" / "debug" / "xapi-taskd"
PASSWORD = "xo-test-root-password"


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def xo_server():
    if shutil.which("node") is None:
        pytest.skip("node is not installed")
    if not (NODE_DIR / "node_modules" / "xen-api").is_dir():
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=NODE_DIR, check=True, timeout=300)
    data = tempfile.mkdtemp(prefix="xo-test-")
    port = _free_port()
    env = dict(os.environ, XAPI_TASKD_ROOT_PASSWORD=PASSWORD)
    proc = subprocess.Popen(
        [str(BINARY), "serve", "--listen", f"127.0.0.1:{port}", "--data-dir", data],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.time() + 20
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            break
        except OSError:
            if proc.poll() is not None or time.time() > deadline:
                proc.kill()
                raise RuntimeError("server did not start: " + proc.stderr.read().decode())
            time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
    shutil.rmtree(data, ignore_errors=True)


@pytest.mark.parametrize("transport", ["json-rpc", "xml-rpc"])
def test_xen_orchestra_connector(xo_server, transport):
    result = subprocess.run(
        ["node", "xo_test.mjs", xo_server, "root", PASSWORD, transport],
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
