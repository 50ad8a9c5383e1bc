"""The durable store's integrity, against the real binary (issue 14, items 6 and 7).

- A damaged store (truncated, zeroed, a flipped bit in a row, or garbage) is refused at
  start with exit status 1 and a message naming the file, what is wrong and what to do —
  never a crash (redb's "entered unreachable code", exit 101) and never altered rows.
- A store that is missing or 0 bytes long beside an identity.json that says the data
  directory had one is refused, unless the operator passes --allow-empty-store.
- The disk fills, then frees (a real tmpfs): calls made while it is full are answered
  INTERNAL_ERROR when their durable wait times out, and once it frees, writes are durable
  again without a restart — including the changes made while it was full, which a kill -9
  then proves.
- `xapi-taskd store check / backup / restore` on a real data directory.
"""

import os
import subprocess
import tempfile
import time

import pytest

from conftest import BINARY, CLI_TIMEOUT, START_TIMEOUT, login, ok, server_proxy

# The server waits this long for a commit before answering INTERNAL_ERROR.
DURABLE_TIMEOUT = 2


def labels(url, session):
    p = server_proxy(url)
    return sorted(r["name_label"] for r in ok(p.task.get_all_records(session)).values())


def populated(fresh, n=20, extra_args=()):
    """A stopped server whose store holds tasks label-0 … label-(n-1)."""
    srv = fresh(list(extra_args))
    p = server_proxy(srv.url)
    s = login(srv.url)
    for i in range(n):
        ok(p.task.create(s, f"label-{i}", "a task that must not be lost " * 4))
    srv.stop()
    return srv


def start_fails(srv, *extra):
    """Starts the server's binary on its data directory; it must exit without serving.
    Returns (exit status, stderr)."""
    res = subprocess.run(
        [str(BINARY), "serve", "--listen", f"127.0.0.1:{srv.port}", "--data-dir", srv.data_dir, *extra],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        timeout=START_TIMEOUT,
        env=dict(os.environ, XAPI_TASKD_LOG="warn"),
    )
    return res.returncode, res.stderr.decode(errors="replace")


def store_file(srv):
    return os.path.join(srv.data_dir, "store.redb")


def flip_bit_in(path, needle):
    """Flips one bit inside every copy of `needle` (a row's bytes; old copies of its page
    may linger in free pages, so the live one is among them)."""
    data = bytearray(open(path, "rb").read())
    at = data.find(needle)
    assert at >= 0, f"{needle!r} is not in {path}"
    while at >= 0:
        data[at + 2] ^= 0x01  # "label-3" -> "lacel-3": still valid JSON, an altered row
        at = data.find(needle, at + 1)
    with open(path, "wb") as f:
        f.write(data)


def truncate_half(path):
    os.truncate(path, os.path.getsize(path) // 2)


def zero(path):
    n = os.path.getsize(path)
    with open(path, "r+b") as f:
        f.write(b"\0" * n)


def garbage(path):
    n = os.path.getsize(path)
    with open(path, "wb") as f:
        f.write(bytes((i * 7919) % 251 for i in range(n)))


@pytest.mark.parametrize(
    "damage",
    [
        pytest.param(lambda f: flip_bit_in(f, b"label-3"), id="bit-flipped"),
        pytest.param(truncate_half, id="truncated"),
        pytest.param(zero, id="zeroed"),
        pytest.param(garbage, id="garbage"),
    ],
)
def test_a_damaged_store_is_refused_with_what_to_do(fresh, damage):
    srv = populated(fresh)
    damage(store_file(srv))
    status, err = start_fails(srv)
    assert status == 1, (status, err)
    assert "panicked" not in err, err
    assert f"{store_file(srv)} is damaged" in err, err
    assert "xapi-taskd store restore FILE" in err, err
    # `store check` says the same, with exit status 1.
    res = subprocess.run(
        [str(BINARY), "store", "check", "--data-dir", srv.data_dir],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        timeout=CLI_TIMEOUT,
    )
    assert res.returncode == 1, res
    assert b"is damaged" in res.stderr, res


@pytest.mark.parametrize("how", ["0-byte", "missing"])
def test_an_empty_store_beside_a_used_identity_is_refused_unless_allowed(fresh, how):
    srv = populated(fresh)
    if how == "0-byte":
        open(store_file(srv), "wb").close()
    else:
        os.unlink(store_file(srv))
    status, err = start_fails(srv)
    assert status == 1, (status, err)
    expected = "is empty (0 bytes)" if how == "0-byte" else "is missing"
    assert f"{store_file(srv)} {expected}, but identity.json shows" in err, err
    assert "--allow-empty-store" in err, err
    # The operator decides to begin again: the server starts, empty; and from then on the
    # new store is the one expected.
    srv.extra_args.append("--allow-empty-store")
    srv.start()
    assert labels(srv.url, login(srv.url)) == []
    srv.stop()
    srv.extra_args.remove("--allow-empty-store")
    srv.start()
    srv.stop()


def test_an_ephemeral_directory_may_become_durable(fresh):
    srv = fresh(["--ephemeral"])
    srv.stop()
    assert not os.path.exists(store_file(srv))
    srv.extra_args.remove("--ephemeral")
    srv.start()  # no store was ever kept here: a new one is expected
    p = server_proxy(srv.url)
    s = login(srv.url)
    ok(p.task.create(s, "kept", ""))
    srv.stop()
    os.unlink(store_file(srv))
    status, err = start_fails(srv)
    assert status == 1 and "is missing, but identity.json shows" in err, (status, err)


def store_cli(srv, *args):
    return subprocess.run(
        [str(BINARY), "store", *args, "--data-dir", srv.data_dir],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        timeout=CLI_TIMEOUT,
    )


def test_store_check_backup_restore(fresh, tmp_path):
    srv = populated(fresh, n=5)
    res = store_cli(srv, "check")
    assert res.returncode == 0, res
    assert b"sound; 5 tasks (5 unfinished), 1 sessions" in res.stdout, res
    backup = tmp_path / "backup.redb"

    # Not while the server runs: it holds the store.
    srv.start()
    res = store_cli(srv, "backup", str(backup))
    assert res.returncode == 1 and b"is a server running" in res.stderr, res
    assert not backup.exists()
    s = login(srv.url)
    srv.stop()

    res = store_cli(srv, "backup", str(backup))
    assert res.returncode == 0, res
    assert b"backed up 5 tasks" in res.stdout, res
    res = store_cli(srv, "check", str(backup))
    assert res.returncode == 0 and b"sound; 5 tasks" in res.stdout, res

    # Later changes, then the store is damaged: restore the backup.
    srv.start()
    ok(server_proxy(srv.url).task.create(s, "after the backup", ""))
    srv.stop()
    zero(store_file(srv))
    res = store_cli(srv, "restore", str(backup))
    assert res.returncode == 0, res
    assert b"restored 5 tasks" in res.stdout and b"store.redb.replaced-" in res.stdout, res
    srv.start()
    # The backup's state: its tasks, and the session of then still logged in.
    assert labels(srv.url, s) == sorted(f"label-{i}" for i in range(5))
    srv.stop()
    kept = [n for n in os.listdir(srv.data_dir) if n.startswith("store.redb.replaced-")]
    assert len(kept) == 1, kept


# --------------------------------------------------------------------------------------
# The disk fills, then frees


@pytest.fixture
def small_disk():
    """A 16 MiB tmpfs of the test's own (root only), unmounted afterwards."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mnt = tempfile.mkdtemp(prefix="xapi-taskd-fullfs-")
    res = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", mnt], capture_output=True)
    if res.returncode != 0:
        os.rmdir(mnt)
        pytest.skip(f"cannot mount a tmpfs here: {res.stderr.decode(errors='replace')}")
    yield mnt
    subprocess.run(["umount", "-l", mnt], check=False)
    os.rmdir(mnt)


def fill(path):
    """Writes zeros to `path` until the filesystem is full."""
    with open(path, "wb") as f:
        try:
            while True:
                f.write(b"\0" * 65536)
                f.flush()
        except OSError as e:
            assert e.errno == 28, e  # ENOSPC


def test_writes_recover_when_a_full_disk_frees_without_a_restart(fresh, small_disk):
    # Rows larger than the default per-field cap, so that one commit needs new pages.
    srv = fresh(
        ["--durable-timeout", str(DURABLE_TIMEOUT), "--max-task-field-bytes", "300000",
         "--max-task-bytes", "600000"],
        data_dir=small_disk,
    )
    p = server_proxy(srv.url)
    s = login(srv.url)
    ok(p.task.create(s, "before", ""))
    token = ok(p.event_from(s, ["task"], "", 0.0))["token"]

    filler = os.path.join(small_disk, "filler")
    fill(filler)
    # Large rows, so that the commit needs new pages the full disk cannot give.
    big = "x" * 250_000
    for i in range(2):
        start = time.monotonic()
        reply = p.task.create(s, f"while-full-{i}", big)
        waited = time.monotonic() - start
        assert reply["Status"] == "Failure", reply
        code, text = reply["ErrorDescription"][:2]
        assert code == "INTERNAL_ERROR", reply
        assert "could not be made durable" in text and "No space left on device" in text, reply
        assert DURABLE_TIMEOUT - 0.5 <= waited < DURABLE_TIMEOUT + 10, waited
    # Reads still answer at once.
    assert "while-full-1" in labels(srv.url, s)

    os.unlink(filler)
    deadline = time.monotonic() + 30
    while True:
        reply = p.task.create(s, "after", "")
        if reply["Status"] == "Success":
            break
        assert time.monotonic() < deadline, f"writes did not recover: {reply}"
    # A crash now loses nothing: the changes made while the disk was full were committed
    # by the recovery, not only the one after it.
    srv.kill()
    srv.start()
    assert labels(srv.url, s) == ["after", "before", "while-full-0", "while-full-1"]
    # An event token from before the outage still works.
    batch = ok(p.event_from(s, ["task"], token, 0.0))
    added = sorted(e["snapshot"]["name_label"] for e in batch["events"] if e["operation"] == "add")
    assert added == ["after", "while-full-0", "while-full-1"]
    srv.stop()
