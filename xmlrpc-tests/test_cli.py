"""Client subcommands (`watch`, `task-list`, `task-cancel`, `task-destroy`,
`task-param-list`) run as the real binary against the real server of conftest.

Tasks are prepared and checked independently over XML-RPC (the `proxy` and `root` fixtures),
so each test checks the client's effect on the server, not the client against itself.
XClarity's `tasks` command has its own file, test_xclarity_cli.py.
"""

import errno
import fcntl
import json
import os
import pty
import re
import select
import signal
import struct
import subprocess
import termios
import time

import pytest

from conftest import (
    BINARY, ROOT_PASSWORD, Server, Sessions, _build, fail, launch, ok,
    server_proxy, unique, user_name, user_password,
)

CLI_TIMEOUT = 30


# This module's own server (these fixtures override conftest's for this file): it also
# serves HTTPS, and its garbage collector is slowed down, so that no collection pass
# (every 30 s by default) lands between a test's update and its read.
@pytest.fixture(scope="module")
def server():
    srv = launch(["--gc-interval", "3600"], tls=True)
    try:
        yield srv
    finally:
        srv.cleanup()


@pytest.fixture(scope="module")
def url(server):
    return server.url + "/"


@pytest.fixture(scope="module")
def root(url):
    return Sessions(url)["root"]


@pytest.fixture(scope="module")
def tls_server(server):
    return server


def run(server, *args, user="root", password=ROOT_PASSWORD, env=None, timeout=CLI_TIMEOUT):
    """Runs `xapi-taskd <args> --url <server>` with the password in the environment."""
    e = dict(os.environ)
    e.pop("XAPI_TASKD_PASSWORD", None)
    if password is not None:
        e["XAPI_TASKD_PASSWORD"] = password
    e.update(env or {})
    cmd = [str(BINARY), args[0], "--url", server.url, "--user", user, *args[1:]]
    return subprocess.run(cmd, env=e, stdin=subprocess.DEVNULL, capture_output=True,
                          text=True, timeout=timeout)


def one_line_error(res, *needles):
    """A failed run: non-zero exit, nothing on stdout, one `error: …` line on stderr."""
    assert res.returncode != 0, res
    assert res.stdout == "", res.stdout
    lines = res.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), res.stderr
    assert "panicked" not in res.stderr
    for n in needles:
        assert n in lines[0], (n, lines[0])
    return lines[0]


def uuid_of(proxy, s, t):
    return ok(proxy.task.get_uuid(s, t))


def jobs(res):
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout)


def xe_records(text):
    """xe's record output → list of {bare field name: value}."""
    recs = []
    for block in text.strip("\n").split("\n\n"):
        rec = {}
        for line in block.splitlines():
            name, _, value = line.partition(": ")
            rec[re.sub(r" \((?: RO| RW|MRW|MRO|SRO|SRW)\)$", "", name.strip())] = value
        recs.append(rec)
    return recs


# --------------------------------------------------------------------------------------
# Connection


def test_wrong_password_is_one_line(server):
    one_line_error(run(server, "task-list", password="nope"), "SESSION_AUTHENTICATION_FAILED")


def test_no_password_and_no_terminal(server):
    one_line_error(run(server, "task-list", password=None), "XAPI_TASKD_PASSWORD")


def test_unreachable_server_is_one_line(server):
    res = subprocess.run([str(BINARY), "task-list", "--url", "http://127.0.0.1:1"],
                         env=dict(os.environ, XAPI_TASKD_PASSWORD="x"), capture_output=True,
                         text=True, timeout=CLI_TIMEOUT, stdin=subprocess.DEVNULL)
    one_line_error(res, "cannot talk to http://127.0.0.1:1/jsonrpc")


def test_bad_url_fails_before_login(server):
    res = subprocess.run([str(BINARY), "tasks", "--url", "ftp://x"], capture_output=True,
                         text=True, timeout=CLI_TIMEOUT, stdin=subprocess.DEVNULL)
    one_line_error(res, "--url must start with http:// or https://")


def session_count(proxy, root):
    """The number of live sessions (event.from's valid_ref_counts covers every table)."""
    return ok(proxy.event_from(root, ["task"], "", 0.0))["valid_ref_counts"]["session"]


def test_the_client_logs_out(server, proxy, root):
    """Every run logs in and out, errors included: its session does not outlive it."""
    before = session_count(proxy, root)
    assert run(server, "task-list").returncode == 0
    assert run(server, "task-cancel", "uuid=00000000-0000-0000-0000-0000000000dd").returncode == 1
    assert session_count(proxy, root) == before


def run_url(url, *args):
    e = dict(os.environ, XAPI_TASKD_PASSWORD=ROOT_PASSWORD)
    return subprocess.run([str(BINARY), args[0], "--url", url, *args[1:]], env=e,
                          stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          timeout=CLI_TIMEOUT)


def test_https_with_insecure(tls_server):
    created = jobs(run_url(tls_server.tls_url, "tasks", "--insecure", "-a", "create", "-u",
                           '{"jobTitle": "over TLS"}'))
    u = created[0]["jobUID"]
    res = run_url(tls_server.tls_url, "task-list", "--insecure", "--minimal")
    assert res.returncode == 0 and u in res.stdout, res.stderr
    # The same task over plain HTTP: it really went to this server, over TLS.
    assert u in run_url(tls_server.url, "task-list", "--minimal").stdout


def test_https_self_signed_fails_clearly_without_insecure(tls_server):
    res = run_url(tls_server.tls_url, "task-list")
    line = one_line_error(res, "cannot talk to " + tls_server.tls_url, "--insecure")
    assert "certificate" in line.lower() or "issuer" in line.lower(), line


# --------------------------------------------------------------------------------------
# xe style


def test_task_list_is_xes_format(server, proxy, root, new_task):
    label = unique("xe")
    t = new_task(label=label, description="a description")
    ok(proxy.task.set_progress(root, t, 0.5))
    u = uuid_of(proxy, root, t)
    res = run(server, "task-list")
    assert res.returncode == 0, res.stderr
    block = (
        f"uuid ( RO)                : {u}\n"
        f"          name-label ( RO): {label}\n"
        f"    name-description ( RO): a description\n"
        f"              status ( RO): pending\n"
        f"            progress ( RO): 0.5\n"
    )
    assert block + "\n" in res.stdout
    # Every task, each record followed by a blank line.
    assert res.stdout.count("uuid ( RO)") == len(ok(proxy.task.get_all(root)))
    assert res.stdout.endswith("\n\n")


def test_task_list_params_filters_and_minimal(server, proxy, root, new_task):
    label = unique("flt")
    a, b = new_task(label=label), new_task(label=label)
    ok(proxy.task.set_status(root, b, "success"))
    ua, ub = uuid_of(proxy, root, a), uuid_of(proxy, root, b)
    res = run(server, "task-list", f"name-label={label}", "params=uuid,status")
    recs = xe_records(res.stdout)
    assert sorted(recs, key=lambda r: r["uuid"]) == sorted(
        [{"uuid": ua, "status": "pending"}, {"uuid": ub, "status": "success"}], key=lambda r: r["uuid"])
    res = run(server, "task-list", f"name-label={label}", "status=success", "--minimal")
    assert res.stdout == ub + "\n"
    # xe prints OCaml floats: 0 is "0."
    res = run(server, "task-list", f"uuid={ua}", "params=progress")
    assert res.stdout == "progress ( RO)    : 0.\n\n"


def test_task_param_list_shows_every_field(server, proxy, root, new_task):
    parent = new_task(label=unique("parent"))
    child = ok(server_proxy(server.url + "/", headers=[("task-id", parent)]).task.create(root, "child", ""))
    ok(proxy.task.add_to_other_config(root, child, "k", "v"))
    ok(proxy.task.set_error_info(root, child, ["E1", "e2"]))
    uc, up = uuid_of(proxy, root, child), uuid_of(proxy, root, parent)
    host_uuid = ok(proxy.host.get_uuid(root, ok(proxy.host.get_all(root))[0]))
    res = run(server, "task-param-list", f"uuid={uc}")
    assert res.returncode == 0, res.stderr
    names = [line.split(": ")[0].strip() for line in res.stdout.strip().splitlines()]
    assert names == [
        "uuid ( RO)", "name-label ( RO)", "name-description ( RO)", "subtask_of ( RO)",
        "subtasks ( RO)", "resident-on ( RO)", "status ( RO)", "progress ( RO)", "type ( RO)",
        "result ( RO)", "created ( RO)", "finished ( RO)", "error_info ( RO)",
        "allowed_operations ( RO)", "current_operations ( RO)", "other-config (MRW)"]
    rec = xe_records(res.stdout)[0]
    assert rec["uuid"] == uc and rec["subtask_of"] == up and rec["resident-on"] == host_uuid
    assert rec["error_info"] == "E1; e2" and rec["other-config"] == "k: v"
    assert re.fullmatch(r"\d{8}T\d\d:\d\d:\d\dZ", rec["created"])
    assert xe_records(run(server, "task-param-list", f"uuid={up}").stdout)[0]["subtasks"] == uc


def test_task_cancel_requests_cancellation(server, proxy, root, new_task):
    t = new_task()
    res = run(server, "task-cancel", f"uuid={uuid_of(proxy, root, t)}")
    assert (res.returncode, res.stdout, res.stderr) == (0, "", "")
    assert list(ok(proxy.task.get_current_operations(root, t)).values()) == ["cancel"]


def test_task_destroy(server, proxy, root, new_task):
    t = new_task()
    ok(proxy.task.set_status(root, t, "success"))
    res = run(server, "task-destroy", f"uuid={uuid_of(proxy, root, t)}")
    assert (res.returncode, res.stdout, res.stderr) == (0, "", "")
    assert proxy.task.get_status(root, t) == fail("HANDLE_INVALID", "task", t)


@pytest.mark.parametrize("cmd", ["task-cancel", "task-destroy", "task-param-list"])
def test_xe_unknown_uuid_and_bad_arguments(server, cmd):
    u = "00000000-0000-0000-0000-0000000000aa"
    one_line_error(run(server, cmd, f"uuid={u}"), f"error: UUID_INVALID task {u}")
    one_line_error(run(server, cmd), "missing uuid=")
    one_line_error(run(server, cmd, "uuid"), "expected key=value")
    one_line_error(run(server, cmd, "name=x"), "unknown parameter")


def test_xe_role_denied(server, proxy, root, new_task):
    t = new_task()
    u = uuid_of(proxy, root, t)
    res = run(server, "task-cancel", f"uuid={u}", user=user_name("read-only"),
              password=user_password("read-only"))
    one_line_error(res, "error: RBAC_PERMISSION_DENIED task.destroy/any")
    assert ok(proxy.task.get_current_operations(root, t)) == {}


# --------------------------------------------------------------------------------------
# watch


def test_watch_plain_lines_until_success(server, proxy, root, new_task):
    t = new_task(label=unique("plain"))
    u = uuid_of(proxy, root, t)
    e = dict(os.environ, XAPI_TASKD_PASSWORD=ROOT_PASSWORD)
    p = subprocess.Popen([str(BINARY), "watch", "--url", server.url, u], env=e,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         stdin=subprocess.DEVNULL)
    try:
        first = p.stdout.readline()
        assert first.startswith(u) and " 0% pending" in first, first
        ok(proxy.task.set_progress(root, t, 0.5))
        assert " 50% pending" in p.stdout.readline()
        ok(proxy.task.set_result(root, t, "the result"))
        ok(proxy.task.set_progress(root, t, 1.0))
        ok(proxy.task.set_status(root, t, "success"))
        out, err = p.communicate(timeout=CLI_TIMEOUT)
    finally:
        p.kill()
    assert p.returncode == 0, err
    assert "\x1b" not in out  # no terminal codes in plain mode
    assert out.splitlines()[-2].endswith("result: the result")
    assert out.splitlines()[-1] == "all 1 watched task succeeded"


def test_watch_exits_non_zero_when_a_task_fails(server, proxy, root, new_task):
    t = new_task()
    ok(proxy.task.set_error_info(root, t, ["VM_FAILED", "boom"]))
    ok(proxy.task.set_status(root, t, "failure"))
    res = run(server, "watch", uuid_of(proxy, root, t))
    assert res.returncode == 1
    assert "error: VM_FAILED boom" in res.stdout
    assert res.stdout.splitlines()[-1] == "1 of 1 watched tasks did not succeed"


def test_watch_unknown_uuid(server):
    bad = "00000000-0000-0000-0000-0000000000cc"
    res = run(server, "watch", bad)
    assert res.returncode == 2
    one_line_error(res, f"UUID_INVALID task {bad}")


ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


class Pty:
    """The command in a pseudo-terminal of 120×30; collects everything it writes."""

    def __init__(self, argv, env):
        self.pid, self.fd = pty.fork()
        if self.pid == 0:  # child
            os.execve(argv[0], argv, env)
        fcntl.ioctl(self.fd, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 120, 0, 0))
        self.out = b""

    def read_until(self, predicate, timeout=15.0):
        deadline = time.monotonic() + timeout
        while not predicate(self.text()):
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError("timed out; screen output so far:\n" + self.text())
            r, _, _ = select.select([self.fd], [], [], left)
            if r:
                try:
                    chunk = os.read(self.fd, 65536)
                except OSError as e:
                    if e.errno == errno.EIO:  # the child closed the terminal
                        chunk = b""
                    else:
                        raise
                if not chunk:
                    if not predicate(self.text()):
                        raise AssertionError("EOF; output:\n" + self.text())
                    return
                self.out += chunk

    def text(self):
        return self.out.decode(errors="replace")

    def wait(self, timeout=15.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                return os.waitstatus_to_exitcode(status)
            try:
                self.read_until(lambda _: False, timeout=0.1)
            except AssertionError:
                pass
        os.kill(self.pid, signal.SIGKILL)
        raise AssertionError("did not exit; output:\n" + self.text())

    def close(self):
        try:
            os.kill(self.pid, signal.SIGKILL)
            os.waitpid(self.pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass
        os.close(self.fd)


def bars(text, label):
    """The percentages shown for `label`, in the order they were drawn."""
    return [int(m) for m in re.findall(r"(?m)^ *" + re.escape(label) + r"\s+\[[#-]{20}\]\s+(\d+)%", ANSI.sub("", text))]


def test_watch_in_a_terminal_bars_advance_and_it_exits(server, proxy, root, new_task):
    label = unique("tty")
    t = new_task(label=label)
    child = ok(server_proxy(server.url + "/", headers=[("task-id", t)]).task.create(root, "sub-" + label, ""))
    env = dict(os.environ, XAPI_TASKD_PASSWORD=ROOT_PASSWORD, TERM="xterm")
    env.pop("COLUMNS", None)
    env.pop("LINES", None)
    term = Pty([str(BINARY), "watch", "--url", server.url, uuid_of(proxy, root, t)], env)
    try:
        term.read_until(lambda s: bars(s, label)[-1:] == [0] and "sub-" + label in s)
        # The subtask is indented under its parent.
        screen = ANSI.sub("", term.text())
        assert re.search(r"\n" + re.escape(label) + r" .*\n  sub-" + re.escape(label), screen), screen
        for p in (0.25, 0.6):
            ok(proxy.task.set_progress(root, t, p))
            term.read_until(lambda s, p=p: bars(s, label)[-1:] == [round(p * 100)])
        ok(proxy.task.set_progress(root, child, 1.0))
        term.read_until(lambda s: bars(s, "sub-" + label)[-1:] == [100])
        assert "ETA" in ANSI.sub("", term.text())
        assert "\x1b[" in term.text()  # redrawn in place, not appended
        ok(proxy.task.set_progress(root, t, 1.0))
        ok(proxy.task.set_status(root, t, "success"))
        code = term.wait()
        assert code == 0, term.text()
        seen = bars(term.text(), label)
        assert seen == sorted(seen) and {0, 25, 60, 100} <= set(seen), seen
        assert "all 1 watched task succeeded" in term.text()
    finally:
        term.close()


def test_password_prompt_without_echo(server, proxy, root, new_task):
    """Without XAPI_TASKD_PASSWORD the password is asked for on the terminal, not echoed."""
    u = uuid_of(proxy, root, new_task(label=unique("prompt")))
    env = dict(os.environ, TERM="xterm")
    env.pop("XAPI_TASKD_PASSWORD", None)
    term = Pty([str(BINARY), "task-list", "--url", server.url, f"uuid={u}", "--minimal"], env)
    try:
        term.read_until(lambda s: "Password for root: " in s)
        os.write(term.fd, (ROOT_PASSWORD + "\n").encode())
        assert term.wait() == 0, term.text()
        assert u in term.text()
        assert ROOT_PASSWORD not in term.text()
    finally:
        term.close()


def test_watch_says_when_a_task_is_destroyed_before_it_finished():
    """A watched task that disappears unfinished (here: the server's collector removes a
    stalled pending task) counts as not succeeded, and the view says so."""
    _build()
    srv = Server(extra_args=["--pending-task-timeout", "2", "--gc-interval", "0.2"])
    try:
        srv.start()
        p = server_proxy(srv.url + "/")
        s = ok(p.session.login_with_password("root", ROOT_PASSWORD))
        t = ok(p.task.create(s, "stalls", ""))
        res = run(srv, "watch", ok(p.task.get_uuid(s, t)))
        assert res.returncode == 1, res
        assert "(task destroyed before it finished)" in res.stdout
        assert res.stdout.splitlines()[-1] == (
            "1 of 1 watched tasks did not succeed (1 destroyed before finishing)")
    finally:
        srv.cleanup()


def test_watch_ctrl_c_logs_out(server, proxy, root, new_task):
    t = new_task(label=unique("ctrlc"))
    before = session_count(proxy, root)
    env = dict(os.environ, XAPI_TASKD_PASSWORD=ROOT_PASSWORD, TERM="xterm")
    term = Pty([str(BINARY), "watch", "--url", server.url, uuid_of(proxy, root, t)], env)
    try:
        term.read_until(lambda s: "ETA" in s)
        assert session_count(proxy, root) == before + 1
        os.write(term.fd, b"\x03")  # Ctrl-C: SIGINT from the terminal
        assert term.wait() == 130, term.text()
        assert session_count(proxy, root) == before
    finally:
        term.close()
