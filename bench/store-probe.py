#!/usr/bin/env python3
"""What a given xapi-taskd binary does with a damaged store and with a disk that fills and
frees (issue 14, items 6 and 7); the figures in docs/security.md, Store, come from it.

    bench/store-probe.py BINARY damage      # 300 tasks, then 39 single-bit flips + whole-file damage
    bench/store-probe.py BINARY diskfull    # a 16 MiB tmpfs (root), filled then freed

Each damaged variant is started once: it is refused (exit status and last stderr line),
crashes (exit 101), or serves, and then its task records are compared with the intact
store's ("identical" or "DIFFERENT"). Plain xmlrpc.client, loopback, free ports.
"""

import collections
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import xmlrpc.client

BIN = os.path.abspath(sys.argv[1])
PW = "probe-pw"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(data, port, extra=(), log=subprocess.PIPE):
    env = dict(os.environ, XAPI_TASKD_ROOT_PASSWORD=PW)
    p = subprocess.Popen(
        [BIN, "serve", "--listen", f"127.0.0.1:{port}", "--data-dir", data, *extra],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=log,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if p.poll() is not None:
            return p, False
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return p, True
        except OSError:
            time.sleep(0.05)
    p.kill()
    return p, False


def session(port):
    x = xmlrpc.client.ServerProxy(f"http://127.0.0.1:{port}/")
    return x, x.session.login_with_password("root", PW)["Value"]


def records(port):
    x, s = session(port)
    return x.task.get_all_records(s)["Value"]


def damage_probe():
    base = tempfile.mkdtemp(prefix="probe-base-")
    port = free_port()
    p, up = start(base, port)
    assert up, "the binary does not start"
    x, s = session(port)
    for i in range(300):
        x.task.create(s, f"t{i}", "x" * 200)
    p.terminate()
    p.wait(10)
    reference = None
    outcomes = collections.Counter()

    def variant(name, damage, counted=True):
        nonlocal reference
        d = tempfile.mkdtemp(prefix="probe-")
        shutil.rmtree(d)
        shutil.copytree(base, d)
        f = os.path.join(d, "store.redb")
        damage(f)
        port = free_port()
        p, up = start(d, port)
        if up:
            recs = records(port)
            p.terminate()
            p.wait(10)
            if reference is None:
                reference = recs
            same = recs == reference
            outcome = "served identical" if same else "served DIFFERENT"
            print(f"{name:14} served {len(recs)} tasks, {'identical' if same else 'DIFFERENT'}")
        else:
            err = p.stderr.read().decode(errors="replace").strip().splitlines()
            outcome = "crashed (101)" if p.returncode == 101 else f"refused (exit {p.returncode})"
            print(f"{name:14} exit {p.returncode}: {err[-1][:160] if err else ''}")
        shutil.rmtree(d, ignore_errors=True)
        if counted:
            outcomes[outcome] += 1

    def flip(frac):
        def f(path):
            b = bytearray(open(path, "rb").read())
            b[int(len(b) * frac)] ^= 0x10
            open(path, "wb").write(b)

        return f

    print("store size", os.path.getsize(os.path.join(base, "store.redb")))
    variant("intact", lambda f: None, counted=False)
    variant("truncated", lambda f: os.truncate(f, os.path.getsize(f) // 2), counted=False)
    variant("zeroed", lambda f: open(f, "r+b").write(b"\0" * os.path.getsize(f)), counted=False)
    for i in range(1, 40):
        variant(f"bitflip@{i / 40:.3f}", flip(i / 40))
    variant("0-byte", lambda f: open(f, "wb").close(), counted=False)
    variant("missing", os.unlink, counted=False)
    print("39 bit flips:", dict(outcomes))
    shutil.rmtree(base, ignore_errors=True)


def diskfull_probe(extra):
    mnt = tempfile.mkdtemp(prefix="probe-fullfs-")
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", mnt], check=True)
    port = free_port()
    log = open(mnt + ".log", "wb")
    try:
        p, up = start(mnt, port, extra, log)
        assert up, "the binary does not start"
        x, s = session(port)
        x.task.create(s, "before", "")
        with open(os.path.join(mnt, "filler"), "wb") as f:
            try:
                while True:
                    f.write(b"\0" * 65536)
                    f.flush()
            except OSError as e:
                print("disk full:", e)
        for i in range(2):
            t = time.monotonic()
            r = x.task.create(s, f"while-full-{i}", "x" * 250_000)
            print(f"write while full: {time.monotonic() - t:.1f}s {r.get('Status')} {r.get('ErrorDescription', '')}"[:300])
        os.unlink(os.path.join(mnt, "filler"))
        print("disk freed")
        t = time.monotonic()
        recovered = None
        while time.monotonic() - t < 90:
            r = x.task.create(s, "after", "")
            if r.get("Status") == "Success":
                recovered = time.monotonic() - t
                break
            print(f"  +{time.monotonic() - t:.1f}s: {r.get('ErrorDescription')}"[:200])
        print("first durable write after freeing:", f"{recovered:.1f}s" if recovered is not None else "never (90 s)")
        p.kill()
        p.wait()
        p, up = start(mnt, port, extra, log)
        labels = sorted(r["name_label"] for r in records(port).values())
        print("after kill -9 and a restart:", labels)
        p.terminate()
        p.wait()
    finally:
        subprocess.run(["umount", "-l", mnt])
        os.rmdir(mnt)


if __name__ == "__main__":
    if sys.argv[2] == "damage":
        damage_probe()
    else:
        diskfull_probe(sys.argv[3:])
