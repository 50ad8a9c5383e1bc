"""DMTF's own validators against the Redfish face (docs/redfish.md, "Validation").

- `rf_service_validator` (schema conformance of every resource reachable from the service
  root) must report 0 FAIL with Session and with Basic authentication. It reads DMTF's
  CSDL from `../shared/redfish/csdl` (or `$REDFISH_SCHEMA_DIR`) and never goes online
  (`--skipschema`).
- `rf_protocol_validator` (DSP0266 protocol rules) must report 0 FAIL over HTTPS, with a
  certificate made for this test run and passed as `--ca-bundle`. Over plain HTTP it must
  report exactly the two assertions that demand HTTPS.

The driver functions take the URL, credentials and CA bundle as parameters, so they can
be pointed at any deployment: `REDFISH_VALIDATE_URL` (+ `REDFISH_VALIDATE_USER`,
`REDFISH_VALIDATE_PASSWORD`, `REDFISH_CA_BUNDLE`) replaces the test server's HTTPS URL.
"""

import csv
import os
import pathlib
import re
import subprocess
import sys
import time

import pytest

from conftest import (
    ROOT,
    ROOT_PASSWORD,
    Server,
    _build,
    header_proxy,
    ok,
    server_proxy,
    unique,
    user_name,
    user_password,
)

SCHEMA_DIR = pathlib.Path(os.environ.get("REDFISH_SCHEMA_DIR", ROOT.parent / "shared" / "redfish" / "csdl"))
TOOLS = pathlib.Path(sys.executable).parent
VALIDATOR_TIMEOUT = 300

# Over plain HTTP these two judge the very requests the validator needs to succeed.
HTTPS_ONLY = {"SEC_BASIC_AUTH_OVER_HTTPS", "SEC_SESSION_CREATE_HTTPS_ONLY"}


def tool(name):
    path = TOOLS / name
    if not path.exists():
        pytest.fail(f"{path} is missing: pip install -r xmlrpc-tests/requirements.txt")
    return str(path)


def run_validator(args, cwd):
    """Runs a DMTF validator in `cwd`; returns (exit code, its output)."""
    # requests lets these override --ca-bundle and --no-cert-check (research §1.6).
    env = dict(os.environ)
    env.pop("REQUESTS_CA_BUNDLE", None)
    env.pop("CURL_CA_BUNDLE", None)
    res = subprocess.run(
        args,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        timeout=VALIDATOR_TIMEOUT,
        env=env,
        cwd=cwd,
    )
    return res.returncode, res.stdout.decode(errors="replace")


def service_validator(url, user, password, authtype, logdir):
    """Runs rf_service_validator; returns (exit code, {PASS, WARN, FAIL, NOT TESTED}, output)."""
    if not (SCHEMA_DIR / "Task_v1.xml").exists():
        pytest.fail(f"DMTF CSDL not found in {SCHEMA_DIR} (set REDFISH_SCHEMA_DIR)")
    code, out = run_validator(
        [
            tool("rf_service_validator"),
            "--rhost", url,
            "-u", user,
            "-p", password,
            "--authtype", authtype,
            "--schema_directory", str(SCHEMA_DIR),
            "--skipschema",
            "--logdir", str(logdir),
        ],
        logdir,
    )
    m = re.search(r"PASS\s*\|\s*WARN\s*\|\s*FAIL\s*\|\s*NOT TESTED\s*\|\s*\n[+-]+\n\|\s*(\d+)\s*\|\s*(\d+)\s*\|\s*(\d+)\s*\|\s*(\d+)", out)
    counts = dict(zip(["PASS", "WARN", "FAIL", "NOT TESTED"], map(int, m.groups()))) if m else {}
    return code, counts, out


def protocol_validator(url, user, password, report_dir, ca_bundle=None):
    """Runs rf_protocol_validator; returns (exit code, {result: count}, FAIL rows, output)."""
    args = [
        tool("rf_protocol_validator"),
        "-r", url,
        "-u", user,
        "-p", password,
        "--report-dir", str(report_dir),
        "--report-type", "tsv",
    ]
    if ca_bundle:
        args += ["--ca-bundle", str(ca_bundle)]
    code, out = run_validator(args, report_dir)
    counts, fails = {}, []
    for tsv in pathlib.Path(report_dir).glob("*.tsv"):
        with open(tsv, newline="") as f:
            for row in csv.reader(f, delimiter="\t"):
                if len(row) < 5 or row[0] == "Assertion":
                    continue
                counts[row[4]] = counts.get(row[4], 0) + 1
                if row[4] == "FAIL":
                    fails.append(row)
    return code, counts, fails, out


def make_certificate(directory):
    """A self-signed certificate for 127.0.0.1, made now. Returns (key+cert PEM, cert PEM)."""
    key, cert = directory / "key.pem", directory / "cert.pem"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            "-subj", "/CN=127.0.0.1",
            "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
            "-keyout", str(key), "-out", str(cert),
        ],
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        timeout=60,
    )
    return key.read_text() + cert.read_text(), cert


def tls_server(extra_args=()):
    """A started server with HTTPS on a certificate made now: (server, cert PEM path).
    The caller cleans it up."""
    _build()
    srv = Server(extra_args=extra_args, tls=True)
    try:
        pem, cert = make_certificate(pathlib.Path(srv.data_dir))
        # The server uses the certificate it finds instead of generating one.
        (pathlib.Path(srv.data_dir) / "xapi-ssl.pem").write_text(pem)
        srv.start()
    except BaseException:
        srv.cleanup()
        raise
    return srv, cert


def seed_tasks(url):
    """One task in every state the mapping distinguishes, and a sub-task tree."""
    p = server_proxy(url)
    root = ok(p.session.login_with_password("root", ROOT_PASSWORD))
    parent = ok(p.task.create(root, unique("validator-parent"), "a parent task"))
    child = ok(header_proxy(url, {"subtask-of": parent}).task.create(root, unique("child"), ""))
    ok(header_proxy(url, {"subtask-of": child}).task.create(root, unique("grandchild"), ""))
    ok(p.task.set_progress(root, parent, 0.4))
    cancel_requested = ok(p.task.create(root, unique("cancel-requested"), ""))
    ok(p.task.cancel(root, cancel_requested))
    cancelled = ok(p.task.create(root, unique("cancelled"), ""))
    ok(p.task.set_status(root, cancelled, "cancelled"))
    ro = ok(p.session.login_with_password(user_name("read-only"), user_password("read-only")))
    target = ok(p.task.create(ro, unique("target"), ""))
    done = ok(getattr(p, "Async.task.add_to_other_config")(root, target, "k", "v"))
    failed = ok(getattr(p, "Async.task.add_to_other_config")(ro, target, "applies_to", "vm"))
    deadline = time.time() + 10
    for job in (done, failed):
        while ok(p.task.get_status(root, job)) == "pending" and time.time() < deadline:
            time.sleep(0.02)


@pytest.fixture(scope="module")
def target():
    """(https url, http url, CA bundle): a server of our own with HTTPS, or the deployment
    named by REDFISH_VALIDATE_URL."""
    if os.environ.get("REDFISH_VALIDATE_URL"):
        yield (os.environ["REDFISH_VALIDATE_URL"], None, os.environ.get("REDFISH_CA_BUNDLE"))
        return
    srv, cert = tls_server()
    try:
        srv.add_user(user_name("read-only"), "read-only", user_password("read-only"))
        seed_tasks(srv.url + "/")
        yield (srv.tls_url, srv.url, cert)
    finally:
        srv.cleanup()


def credentials(role="root"):
    if os.environ.get("REDFISH_VALIDATE_URL"):
        return os.environ["REDFISH_VALIDATE_USER"], os.environ["REDFISH_VALIDATE_PASSWORD"]
    if role == "root":
        return "root", ROOT_PASSWORD
    return user_name(role), user_password(role)


@pytest.mark.parametrize(
    "authtype,role",
    [("Session", "root"), ("Basic", "read-only")],
)
def test_service_validator_reports_no_failure(target, authtype, role, tmp_path):
    url = target[0]
    user, password = credentials(role)
    code, counts, out = service_validator(url, user, password, authtype, tmp_path)
    print(f"rf_service_validator {authtype} as {user}: {counts}")
    assert counts, out[-3000:]
    assert counts["FAIL"] == 0 and code == 0, out[-6000:]
    # It must have seen the tasks, sub-tasks and sessions, not just the root.
    assert "/SubTasks/" in out and "/TaskService/Tasks/" in out, out[-3000:]
    assert counts["PASS"] > 150, counts


def test_protocol_validator_over_https_reports_no_failure(target, tmp_path):
    url, _, ca = target
    user, password = credentials()
    code, counts, fails, out = protocol_validator(url, user, password, tmp_path, ca_bundle=ca)
    print(f"rf_protocol_validator {url}: {counts}")
    assert counts, out[-3000:]
    assert fails == [] and code == 0, "\n".join("\t".join(r) for r in fails) or out[-3000:]
    assert counts.get("PASS", 0) > 150, counts


def test_protocol_validator_over_http_fails_only_the_https_rules(target, tmp_path):
    http_url = target[1]
    if http_url is None:
        pytest.skip("an external deployment was given")
    user, password = credentials()
    code, counts, fails, out = protocol_validator(http_url, user, password, tmp_path)
    print(f"rf_protocol_validator {http_url}: {counts}")
    assert {r[0] for r in fails} == HTTPS_ONLY, "\n".join("\t".join(r) for r in fails) or out[-3000:]
    assert counts.get("PASS", 0) > 150, counts
