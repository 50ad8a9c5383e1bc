"""session.* through the XenAPI SDK and raw xmlrpc.client, and users managed with the CLI."""

import XenAPI

from harness import ROOT_PASSWORD, fail, ok, server, session_of  # noqa: F401

SESSION_FIELDS = [
    "uuid", "this_host", "this_user", "last_active", "pool", "other_config", "is_local_superuser",
    "subject", "validation_time", "auth_user_sid", "auth_user_name", "rbac_permissions", "tasks",
    "parent", "originator", "client_certificate",
]


def test_login_accepts_two_to_four_args_and_ignores_extras(server):
    p = server.proxy()
    for args in [("root", ROOT_PASSWORD), ("root", ROOT_PASSWORD, "1.0"),
                 ("root", ROOT_PASSWORD, "1.0", "tests"), ("root", ROOT_PASSWORD, "1.0", "tests", "extra")]:
        ref = ok(p.session.login_with_password(*args))
        assert ref.startswith("OpaqueRef:") and len(ref) == len("OpaqueRef:") + 36
    assert fail(p.session.login_with_password("root")) == [
        "MESSAGE_PARAMETER_COUNT_MISMATCH", "session.login_with_password", "2", "1"]


def test_bad_credentials(server):
    p = server.proxy()
    assert fail(p.session.login_with_password("root", "wrong")) == [
        "SESSION_AUTHENTICATION_FAILED", "root", "Authentication failure"]
    assert fail(p.session.login_with_password("nobody", "x")) == [
        "SESSION_AUTHENTICATION_FAILED", "nobody", "Authentication failure"]


def test_logout_invalidates_the_session(server):
    p = server.proxy()
    s = server.login()
    assert ok(p.session.logout(s)) == ""
    assert fail(p.task.get_all(s)) == ["SESSION_INVALID", s]
    assert fail(p.task.get_all("OpaqueRef:made-up")) == ["SESSION_INVALID", "OpaqueRef:made-up"]


def test_sdk_session_and_api_version(server):
    s = XenAPI.Session(server.url)
    s.xenapi.login_with_password("root", ROOT_PASSWORD, "1.0", "pytest")
    assert s.API_version == "2.23"
    rec = s.xenapi.session.get_record(s.handle)
    assert list(rec.keys()) == SESSION_FIELDS
    assert rec["originator"] == "pytest"
    assert rec["is_local_superuser"] is True and rec["auth_user_sid"] == "" and rec["rbac_permissions"] == []
    assert rec["auth_user_name"] == "root"
    assert rec["this_host"] == s.xenapi.host.get_all()[0]
    assert rec["this_user"] == "OpaqueRef:NULL" and rec["parent"] == "OpaqueRef:NULL"
    for f in SESSION_FIELDS:
        got = getattr(s.xenapi.session, "get_" + f)(s.handle)
        assert got == rec[f] or f in ("last_active", "validation_time"), f
    assert s.xenapi.session.get_by_uuid(rec["uuid"]) == s.handle
    s.xenapi.session.logout()


def test_sdk_logs_in_again_after_session_invalid(server):
    s = XenAPI.Session(server.url)
    s.xenapi.login_with_password("root", ROOT_PASSWORD)
    first = s.handle
    ok(server.proxy().session.logout(first))
    # The SDK sees SESSION_INVALID, logs in again with the remembered credentials, retries.
    assert isinstance(s.xenapi.task.get_all(), list)
    assert s.handle != first


def test_role_user_session_record(server):
    p = server.proxy()
    s = session_of(server, "vm-operator")
    rec = ok(p.session.get_record(s, s))
    assert rec["is_local_superuser"] is False
    assert rec["auth_user_name"] == "vm_operator"
    assert len(rec["auth_user_sid"]) == 36
    perms = rec["rbac_permissions"]
    assert perms[0] == "vm-operator"
    assert "task.add_to_other_config/key:applies_to" in perms
    assert "task.destroy/any" not in perms
    # The id is stable: a second login of the same user has the same sid.
    s2 = session_of(server, "vm-operator")
    assert ok(p.session.get_auth_user_sid(s2, s2)) == rec["auth_user_sid"]


def test_session_other_config_is_pool_admin_only(server):
    p = server.proxy()
    ro = session_of(server, "read-only")
    assert fail(p.session.add_to_other_config(ro, ro, "k", "v")) == [
        "RBAC_PERMISSION_DENIED", "session.add_to_other_config",
        "No permission in user session. (Roles with this permission: pool-admin)"]
    admin = session_of(server, "pool-admin")
    ok(p.session.add_to_other_config(admin, ro, "k", "v"))
    assert fail(p.session.add_to_other_config(admin, ro, "k", "w")) == [
        "MAP_DUPLICATE_KEY", "session", "other_config", ro, "k"]
    assert ok(p.session.get_other_config(ro, ro)) == {"k": "v"}
    ok(p.session.remove_from_other_config(admin, ro, "k"))
    ok(p.session.set_other_config(admin, ro, {"a": "1"}))
    assert ok(p.session.get_other_config(ro, ro)) == {"a": "1"}


def test_users_added_and_removed_while_running(server):
    p = server.proxy()
    assert fail(p.session.login_with_password("late", "late-pw"))[0] == "SESSION_AUTHENTICATION_FAILED"
    server.user_add("late", "read-only", "late-pw")
    s = ok(p.session.login_with_password("late", "late-pw"))
    assert ok(p.session.get_auth_user_name(s, s)) == "late"
    import subprocess
    from conftest import BINARY
    subprocess.run([str(BINARY), "user", "passwd", "late", "--data-dir", server.data_dir],
                   input="new-pw\n", text=True, check=True, capture_output=True, timeout=30)
    assert fail(p.session.login_with_password("late", "late-pw"))[0] == "SESSION_AUTHENTICATION_FAILED"
    ok(p.session.login_with_password("late", "new-pw"))
    listing = subprocess.run([str(BINARY), "user", "list", "--data-dir", server.data_dir],
                             text=True, check=True, capture_output=True, timeout=30).stdout
    assert any(line.startswith("late read-only ") for line in listing.splitlines())
    assert any(line.startswith("root local-superuser ") for line in listing.splitlines())
    subprocess.run([str(BINARY), "user", "remove", "late", "--data-dir", server.data_dir],
                   check=True, capture_output=True, timeout=30)
    assert fail(p.session.login_with_password("late", "new-pw"))[0] == "SESSION_AUTHENTICATION_FAILED"
    bad = subprocess.run([str(BINARY), "user", "add", "x", "--role", "superhero", "--data-dir", server.data_dir],
                         input="pw\n", text=True, capture_output=True, timeout=30)
    assert bad.returncode != 0 and "read-only" in bad.stderr
