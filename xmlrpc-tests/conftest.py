"""Shared harness of the black-box XML-RPC suite.

One real `xapi-taskd` binary is started per test session on a free port, with a fresh
temporary data directory, root's password from XAPI_TASKD_ROOT_PASSWORD and one user per
XAPI role added with the `user add` command. Tests talk to it over plain HTTP with
`xmlrpc.client`, `http.client` or the official XenAPI SDK.

Every expected value in this suite is what xapi itself does (xen-api source, see
/work/shared/spec/xapi-task-spec.md); the few places where the server deliberately
differs from xapi are marked as such in the tests that cover them.
"""

import atexit
import ctypes
import http.client
import os
import pathlib
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import uuid as uuidlib
import xmlrpc.client

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
BINARY = pathlib.Path(os.environ.get("XAPI_TASKD_BIN", ROOT / "target" / "debug" / "xapi-taskd"))
ROOT_PASSWORD = "root-pw-\u00e9t\u00e9"  # non-ASCII on purpose

# xapi's static roles, in its order (ocaml/idl/datamodel_roles.ml).
ROLES = [
    "pool-admin",
    "pool-operator",
    "vm-power-admin",
    "vm-admin",
    "vm-operator",
    "client-cert",
    "read-only",
]
START_TIMEOUT = 20.0
CLI_TIMEOUT = 30.0

# The text of RBAC_PERMISSION_DENIED's second parameter (ocaml/xapi/rbac.ml,
# disallowed_permission_exn), for the permissions this suite meets.
DENIED_ANY = "No permission in user session. (Roles with this permission: pool-admin, pool-operator)"
DENIED_VM_OP = (
    "No permission in user session. (Roles with this permission: "
    "pool-admin, pool-operator, vm-power-admin, vm-admin, vm-operator)"
)
DENIED_POOL_ADMIN = "No permission in user session. (Roles with this permission: pool-admin)"

REF_RE = r"OpaqueRef:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
UUID_RE = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"


def user_name(role):
    return "user-" + role


def user_password(role):
    return "pw-" + role + "-s3cret"


# --------------------------------------------------------------------------------------
# Matchers and small helpers


class Re:
    """Equal to any string that fully matches the regular expression."""

    def __init__(self, pattern):
        self.pattern = pattern
        self._re = re.compile(pattern, re.S)

    def __eq__(self, other):
        return isinstance(other, str) and self._re.fullmatch(other) is not None

    def __ne__(self, other):
        return not self.__eq__(other)

    def __hash__(self):
        return hash(self.pattern)

    def __repr__(self):
        return f"Re({self.pattern!r})"


ANY_REF = Re(REF_RE)
ANY_UUID = Re(UUID_RE)
XAPI_DATE = Re(r"\d{8}T\d{2}:\d{2}:\d{2}Z")


def fail(*description):
    """The raw XML-RPC reply of a failed call with this ErrorDescription."""
    return {"Status": "Failure", "ErrorDescription": list(description)}


def success(value):
    return {"Status": "Success", "Value": value}


def call_raw(proxy, method, *args):
    """Calls `method` (any wire name, dots and all) and returns the raw reply dict."""
    return getattr(proxy, method)(*args)


def ok(reply):
    """The Value of a successful raw reply (fails the test with the reply otherwise)."""
    assert isinstance(reply, dict) and reply.get("Status") == "Success", reply
    return reply["Value"]


def random_ref():
    return "OpaqueRef:" + str(uuidlib.uuid4())


def unique(prefix="t"):
    return f"{prefix}-{uuidlib.uuid4().hex[:12]}"


HTTP_TIMEOUT = 15.0


class TimeoutTransport(xmlrpc.client.Transport):
    """xmlrpc.client's Transport (persistent HTTP/1.1 connection) with a socket timeout,
    so that no call can hang the suite, and optional extra request headers."""

    def __init__(self, headers=(), timeout=HTTP_TIMEOUT):
        super().__init__(headers=list(headers))
        self.timeout = timeout

    def make_connection(self, host):
        conn = super().make_connection(host)
        conn.timeout = self.timeout
        return conn


def server_proxy(url, headers=()):
    return xmlrpc.client.ServerProxy(url, transport=TimeoutTransport(headers), allow_none=True)


def header_proxy(url, headers):
    """A ServerProxy whose requests carry extra HTTP headers (e.g. task-id)."""
    return server_proxy(url, headers.items())


def sdk_session(sdk_module, url):
    """A XenAPI.Session whose connection has a timeout."""
    return sdk_module.Session(url, transport=TimeoutTransport())


def xml_escape(s):
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def xml_call(method, *params):
    """A methodCall body; each param is the raw XML of a <value> element's content."""
    body = "".join(f"<param><value>{p}</value></param>" for p in params)
    return (
        f'<?xml version="1.0"?><methodCall><methodName>{xml_escape(method)}</methodName>'
        f"<params>{body}</params></methodCall>"
    ).encode()


class Raw:
    """Raw HTTP access to the server (http.client), for byte-level checks."""

    def __init__(self, url):
        parts = urllib.parse.urlsplit(url)
        self.host = parts.hostname
        self.port = parts.port

    def connection(self):
        return http.client.HTTPConnection(self.host, self.port, timeout=10)

    def request(self, method, path, body=None, headers=None):
        """One request on a fresh connection: (status, headers as a lower-cased dict, body bytes)."""
        conn = self.connection()
        try:
            conn.request(method, path, body=body, headers=headers or {})
            resp = conn.getresponse()
            data = resp.read()
            hdrs = {k.lower(): v for k, v in resp.getheaders()}
            return resp.status, hdrs, data
        finally:
            conn.close()

    def post(self, body, path="/", headers=None):
        h = {"Content-Type": "text/xml"}
        h.update(headers or {})
        return self.request("POST", path, body, h)

    def call(self, body, path="/"):
        """POSTs a methodCall body; returns the decoded reply (HTTP 200 asserted)."""
        status, _, data = self.post(body, path)
        assert status == 200, (status, data)
        return decode_response(data)


def decode_response(data):
    (value,), _ = xmlrpc.client.loads(data)
    return value


# --------------------------------------------------------------------------------------
# The server


def _build():
    if os.environ.get("XAPI_TASKD_SKIP_BUILD"):
        return
    cargo = shutil.which("cargo")
    if cargo is None:
        if BINARY.exists():
            return
        pytest.exit("cargo is not installed and %s does not exist" % BINARY, returncode=3)
    # XAPI_TASKD_CARGO_FEATURES=etcd builds the binary the cluster tests need.
    features = os.environ.get("XAPI_TASKD_CARGO_FEATURES")
    res = subprocess.run(
        [cargo, "build", "--quiet"] + (["--features", features] if features else []),
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        timeout=900,
    )
    if res.returncode != 0:
        pytest.exit("cargo build failed:\n" + res.stdout.decode(errors="replace"), returncode=3)


def _die_with_parent():
    """preexec_fn: the server gets SIGKILL if the test process dies (Linux only)."""
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        PR_SET_PDEATHSIG = 1
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except Exception:
        pass


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """A real `xapi-taskd serve` process. `extra_args` are added to its command line;
    `tls=True` also serves HTTPS (`tls_url`); `data_dir` chooses the data directory (a
    fresh temporary one by default). `start()` may be called again after `stop()` or
    `kill()`: the same data directory and ports are reused (a restart)."""

    def __init__(self, extra_args=(), tls=False, data_dir=None):
        self.data_dir = data_dir or tempfile.mkdtemp(prefix="xapi-taskd-pytest-")
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.extra_args = list(extra_args)
        self.tls_port = free_port() if tls else None
        self.tls_url = f"https://127.0.0.1:{self.tls_port}" if tls else None
        self.proc = None
        self.stdout_lines = []
        self._stderr_path = self.data_dir + ".stderr"
        self._stderr = None
        self.user_ids = {}

    def start(self):
        env = dict(os.environ, XAPI_TASKD_ROOT_PASSWORD=ROOT_PASSWORD)
        self._stderr = open(self._stderr_path, "wb")
        kwargs = {}
        if sys.platform.startswith("linux"):
            kwargs["preexec_fn"] = _die_with_parent
        args = [str(BINARY), "serve", "--listen", f"127.0.0.1:{self.port}", "--data-dir", self.data_dir]
        if self.tls_port:
            args += ["--tls-listen", f"127.0.0.1:{self.tls_port}"]
        self.stdout_lines = []
        self.proc = subprocess.Popen(
            args + self.extra_args,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            **kwargs,
        )
        atexit.register(self.stop)
        # Collect stdout in the background so the pipe never fills up.
        ready = threading.Event()

        def reader():
            for line in self.proc.stdout:
                text = line.decode(errors="replace").rstrip("\n")
                self.stdout_lines.append(text)
                if "listening on" in text:
                    ready.set()

        threading.Thread(target=reader, daemon=True).start()
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"xapi-taskd exited with code {self.proc.returncode} before accepting connections.\n"
                    f"stdout: {self.stdout_lines}\nstderr:\n{self.stderr()}"
                )
            try:
                # Every listener: the HTTPS one is bound just after the HTTP one.
                for port in filter(None, (self.port, self.tls_port)):
                    socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(
                    f"xapi-taskd did not accept connections on port {self.port} within {START_TIMEOUT}s.\n"
                    f"stdout: {self.stdout_lines}\nstderr:\n{self.stderr()}"
                )
            time.sleep(0.05)
        ready.wait(timeout=2)

    def stderr(self):
        try:
            with open(self._stderr_path, "rb") as f:
                return f.read().decode(errors="replace")[-8000:]
        except OSError:
            return ""

    def cli(self, *args, stdin=None, check=True):
        res = subprocess.run(
            [str(BINARY), "user", *args, "--data-dir", self.data_dir],
            input=(stdin or "").encode(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            timeout=CLI_TIMEOUT,
        )
        if check and res.returncode != 0:
            raise RuntimeError(
                f"xapi-taskd user {' '.join(args)} failed ({res.returncode}): "
                f"{res.stdout.decode(errors='replace')}{res.stderr.decode(errors='replace')}"
            )
        return res

    def add_user(self, name, role, password):
        res = self.cli("add", name, "--role", role, stdin=password + "\n")
        m = re.search(UUID_RE, res.stdout.decode(errors="replace"))
        if m:
            self.user_ids[name] = m.group(0)
        return res

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        if self._stderr is not None and not self._stderr.closed:
            self._stderr.close()

    def kill(self):
        """SIGKILL: a crash, nothing is flushed or closed."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        if self._stderr is not None and not self._stderr.closed:
            self._stderr.close()

    def cleanup(self):
        self.stop()
        shutil.rmtree(self.data_dir, ignore_errors=True)
        try:
            os.unlink(self._stderr_path)
        except OSError:
            pass


_ETCD = []


def cluster_config():
    """With XAPI_TASKD_TEST_STORE=etcd, the configuration that makes a server a front-end
    of a real 3-member etcd cluster (one cluster per test session, a key prefix per
    server): how .ci/run runs the black-box suite against cluster mode. None otherwise."""
    if os.environ.get("XAPI_TASKD_TEST_STORE") != "etcd":
        return None
    import etcd_cluster

    if not _ETCD:
        _ETCD.append(etcd_cluster.EtcdCluster(3).start())
        atexit.register(_ETCD[0].cleanup)
    eps = ", ".join(f'"{u}"' for u in _ETCD[0].urls)
    return f'store = "etcd"\netcd-endpoints = [{eps}]\netcd-prefix = "/{unique("bb")}/"\n'


def launch(extra_args=(), tls=False, config=None, users=ROLES, data_dir=None):
    """A started server of its own with one user per role in `users`; `config` is the
    text of its data directory's xapi-taskd.toml. The caller cleans it up."""
    _build()
    if not BINARY.exists():
        pytest.exit(f"{BINARY} does not exist after cargo build", returncode=3)
    srv = Server(extra_args=extra_args, tls=tls, data_dir=data_dir)
    try:
        if config is not None:
            with open(os.path.join(srv.data_dir, "xapi-taskd.toml"), "w") as f:
                f.write(config)
        srv.start()
        for role in users:
            srv.add_user(user_name(role), role, user_password(role))
    except BaseException:
        srv.cleanup()
        raise
    return srv


@pytest.fixture(scope="session")
def server():
    # The shared server never runs its task GC during the suite, so that no pass (every
    # 30 s by default) can remove a completed task between a test's writes and its reads
    # (the cap on completed tasks, `max-tasks`, would). The GC rules are tested on servers
    # of their own with short timeouts.
    srv = launch(["--gc-interval", "86400"], config=cluster_config())
    try:
        yield srv
    finally:
        srv.cleanup()


@pytest.fixture
def fresh():
    """Starts servers of a test's own (`fresh(extra_args, tls=, config=, users=)`, no
    users by default), for tests that restart, kill or reconfigure them."""
    servers = []

    def make(extra_args=(), tls=False, config=None, users=(), data_dir=None):
        srv = launch(extra_args, tls=tls, config=config, users=users, data_dir=data_dir)
        servers.append(srv)
        return srv

    yield make
    for srv in servers:
        srv.cleanup()


def login(url, user="root", password=ROOT_PASSWORD):
    """A new session (each login costs an argon2 hash: prefer `sessions` where it fits)."""
    return ok(server_proxy(url).session.login_with_password(user, password))


@pytest.fixture(scope="session")
def url(server):
    return server.url + "/"


@pytest.fixture
def proxy(url):
    """A raw xmlrpc.client proxy: replies are the raw {'Status': …} dicts."""
    p = server_proxy(url)
    yield p
    p("close")()


@pytest.fixture
def raw(server):
    return Raw(server.url)


class Sessions:
    """Logs in lazily and caches one session per user (logins cost an argon2 hash)."""

    def __init__(self, url):
        self.url = url
        self.proxy = server_proxy(url)
        self._cache = {}

    def login(self, role="root", *extra):
        """A fresh session for `role` ('root' or one of ROLES)."""
        if role == "root":
            name, pw = "root", ROOT_PASSWORD
        else:
            name, pw = user_name(role), user_password(role)
        return ok(self.proxy.session.login_with_password(name, pw, *extra))

    def __getitem__(self, role):
        if role not in self._cache:
            self._cache[role] = self.login(role)
        return self._cache[role]


@pytest.fixture(scope="session")
def sessions(url, server):
    """sessions['root'], sessions['read-only'], …: shared sessions — never log them out."""
    return Sessions(url)


@pytest.fixture(scope="session")
def root(sessions):
    return sessions["root"]


@pytest.fixture(scope="session")
def host_ref(url, root):
    p = server_proxy(url)
    hosts = ok(p.host.get_all(root))
    assert len(hosts) == 1
    return hosts[0]


@pytest.fixture
def new_task(proxy, root):
    """Factory: creates a task (as root unless a session is given) and returns its ref."""

    def make(session=None, label=None, description="", p=None):
        return ok((p or proxy).task.create(session or root, label or unique(), description))

    return make


@pytest.fixture(scope="session")
def sdk_module():
    return pytest.importorskip("XenAPI")


@pytest.fixture(scope="session")
def sdk(sdk_module, server):
    """The official SDK, logged in as root (shared: do not log it out)."""
    s = sdk_session(sdk_module, server.url)
    s.xenapi.login_with_password("root", ROOT_PASSWORD, "1.0", "xmlrpc-tests")
    yield s
    try:
        s.xenapi.session.logout()
    except Exception:
        pass
