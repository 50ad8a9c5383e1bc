"""session class: login/logout, the session record and getters, the SDK's session handling.

xapi sources: ocaml/idl/datamodel.ml (Session), ocaml/xapi/xapi_session.ml,
ocaml/xapi/session_check.ml, spec §3.
"""

import datetime
import re
import xmlrpc.client

import pytest

from conftest import (
    ANY_REF,
    ANY_UUID,
    ROLES,
    ROOT_PASSWORD,
    XAPI_DATE,
    call_raw,
    fail,
    ok,
    random_ref,
    sdk_session,
    unique,
    user_name,
    user_password,
)

SESSION_FIELDS = [
    "uuid",
    "this_host",
    "this_user",
    "last_active",
    "pool",
    "other_config",
    "is_local_superuser",
    "subject",
    "validation_time",
    "auth_user_sid",
    "auth_user_name",
    "rbac_permissions",
    "tasks",
    "parent",
    "originator",
    "client_certificate",
]


# ---------------------------------------------------------------------- login


def test_login_two_args_gives_an_opaque_ref(proxy):
    s = ok(proxy.session.login_with_password("root", ROOT_PASSWORD))
    assert s == ANY_REF
    assert ok(proxy.session.get_auth_user_name(s, s)) == "root"
    assert ok(proxy.session.get_originator(s, s)) == ""


def test_login_three_args_version_is_ignored(proxy):
    s = ok(proxy.session.login_with_password("root", ROOT_PASSWORD, "1.0"))
    assert ok(proxy.session.get_originator(s, s)) == ""


def test_login_four_args_sets_originator(proxy):
    s = ok(proxy.session.login_with_password("root", ROOT_PASSWORD, "2.23", "my-originator"))
    assert ok(proxy.session.get_originator(s, s)) == "my-originator"


def test_login_five_args_extras_are_ignored(proxy):
    s = ok(proxy.session.login_with_password("root", ROOT_PASSWORD, "1.0", "orig5", "extra"))
    assert s == ANY_REF
    assert ok(proxy.session.get_originator(s, s)) == "orig5"


def test_login_every_login_is_a_new_session(proxy):
    a = ok(proxy.session.login_with_password("root", ROOT_PASSWORD))
    b = ok(proxy.session.login_with_password("root", ROOT_PASSWORD))
    assert a != b
    assert ok(proxy.session.get_uuid(a, a)) != ok(proxy.session.get_uuid(b, b))


@pytest.mark.parametrize(
    "args,received",
    [(("root",), "1"), ((), "0")],
)
def test_login_too_few_args(proxy, args, received):
    assert proxy.session.login_with_password(*args) == fail(
        "MESSAGE_PARAMETER_COUNT_MISMATCH", "session.login_with_password", "2", received
    )


def test_login_bad_password(proxy):
    assert proxy.session.login_with_password("root", "wrong") == fail(
        "SESSION_AUTHENTICATION_FAILED", "root", "Authentication failure"
    )


def test_login_bad_password_for_user(proxy):
    name = user_name("read-only")
    assert proxy.session.login_with_password(name, "wrong") == fail(
        "SESSION_AUTHENTICATION_FAILED", name, "Authentication failure"
    )


def test_login_unknown_user(proxy):
    assert proxy.session.login_with_password("no-such-user", "x", "1.0") == fail(
        "SESSION_AUTHENTICATION_FAILED", "no-such-user", "Authentication failure"
    )


def test_login_user_name_is_case_sensitive(proxy):
    assert proxy.session.login_with_password("Root", ROOT_PASSWORD) == fail(
        "SESSION_AUTHENTICATION_FAILED", "Root", "Authentication failure"
    )


def test_login_password_is_case_sensitive(proxy):
    assert proxy.session.login_with_password("root", ROOT_PASSWORD.upper())["ErrorDescription"][0] == (
        "SESSION_AUTHENTICATION_FAILED"
    )


def test_login_with_wrong_types(proxy):
    assert proxy.session.login_with_password("root", 5) == fail(
        "INTERNAL_ERROR", "Failure(\"Expected string, got 'I(5)'\")"
    )
    # defaulted params are unmarshalled too (gen_server.ml unmarshall_default_params) ...
    assert proxy.session.login_with_password("root", ROOT_PASSWORD, 5) == fail(
        "INTERNAL_ERROR", "Failure(\"Expected string, got 'I(5)'\")"
    )
    # ... even before the password is checked
    assert proxy.session.login_with_password("root", "wrong", "1.0", True) == fail(
        "INTERNAL_ERROR", "Failure(\"Expected string, got 'B(true)'\")"
    )
    # extra params beyond the declared ones are ignored whatever their type
    assert ok(proxy.session.login_with_password("root", ROOT_PASSWORD, "1.0", "o", 5)) == ANY_REF


# --------------------------------------------------------------------- logout


def test_logout_then_use_is_session_invalid(proxy):
    s = ok(proxy.session.login_with_password("root", ROOT_PASSWORD))
    assert ok(proxy.session.logout(s)) == ""
    assert proxy.task.get_all(s) == fail("SESSION_INVALID", s)
    assert proxy.session.get_record(s, s) == fail("SESSION_INVALID", s)
    # a second logout: the session does not exist any more
    assert proxy.session.logout(s) == fail("SESSION_INVALID", s)


def test_logout_of_one_session_leaves_others(proxy, root):
    s = ok(proxy.session.login_with_password("root", ROOT_PASSWORD))
    ok(proxy.session.logout(s))
    assert isinstance(ok(proxy.task.get_all(root)), list)


def test_bad_session_strings_are_echoed_exactly(proxy):
    for bad in [random_ref(), "OpaqueRef:NULL", "garbage", ""]:
        assert proxy.task.get_all(bad) == fail("SESSION_INVALID", bad)


def test_logout_leaves_tasks_alone(proxy):
    s = ok(proxy.session.login_with_password("root", ROOT_PASSWORD))
    t = ok(proxy.task.create(s, unique(), ""))
    ok(proxy.session.logout(s))
    other = ok(proxy.session.login_with_password("root", ROOT_PASSWORD))
    assert ok(proxy.task.get_status(other, t)) == "pending"


# ------------------------------------------------------------ session record


def test_root_session_record(proxy, host_ref):
    before = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
    s = ok(proxy.session.login_with_password("root", ROOT_PASSWORD, "1.0", "rec-test"))
    rec = ok(proxy.session.get_record(s, s))
    assert list(rec) == SESSION_FIELDS
    assert rec["uuid"] == ANY_UUID
    assert rec["this_host"] == host_ref
    assert rec["this_user"] == "OpaqueRef:NULL"
    assert rec["pool"] is False
    assert rec["other_config"] == {}
    assert rec["is_local_superuser"] is True
    assert rec["subject"] == "OpaqueRef:NULL"
    assert rec["auth_user_sid"] == ""
    assert rec["auth_user_name"] == "root"
    assert rec["rbac_permissions"] == []
    assert rec["tasks"] == []
    assert rec["parent"] == "OpaqueRef:NULL"
    assert rec["originator"] == "rec-test"
    assert rec["client_certificate"] is False
    for f in ("last_active", "validation_time"):
        assert isinstance(rec[f], xmlrpc.client.DateTime)
        assert rec[f].value == XAPI_DATE
        when = datetime.datetime.strptime(rec[f].value, "%Y%m%dT%H:%M:%SZ").replace(
            tzinfo=datetime.timezone.utc
        )
        assert before - datetime.timedelta(seconds=5) <= when <= before + datetime.timedelta(seconds=60)


@pytest.mark.parametrize("role", ROLES)
def test_user_session_record(proxy, sessions, server, role):
    s = sessions[role]
    rec = ok(proxy.session.get_record(s, s))
    assert list(rec) == SESSION_FIELDS
    assert rec["is_local_superuser"] is False
    assert rec["auth_user_name"] == user_name(role)
    assert rec["auth_user_sid"] == ANY_UUID
    if user_name(role) in server.user_ids:
        assert rec["auth_user_sid"] == server.user_ids[user_name(role)]
    perms = rec["rbac_permissions"]
    assert perms[0] == role
    assert len(perms) == len(set(perms))
    # every role may use every task message and getter (spec §6.5)
    for p in ["task.create", "task.destroy", "task.cancel", "task.get_record", "task.set_progress",
              "session.logout", "session.get_record"]:
        assert p in perms, p
    assert ("task.destroy/any" in perms) == (role in ("pool-admin", "pool-operator"))
    assert ("task.add_to_other_config/key:applies_to" in perms) == (
        role in ("pool-admin", "pool-operator", "vm-power-admin", "vm-admin", "vm-operator")
    )
    assert ("session.set_other_config" in perms) == (role == "pool-admin")
    assert ("host.call_extension" in perms) == (role == "pool-admin")


def test_auth_user_sid_is_stable_per_user(proxy, sessions):
    a = sessions.login("vm-admin")
    b = sessions.login("vm-admin")
    c = sessions.login("vm-operator")
    sid_a = ok(proxy.session.get_auth_user_sid(a, a))
    assert sid_a == ok(proxy.session.get_auth_user_sid(b, b))
    assert sid_a != ok(proxy.session.get_auth_user_sid(c, c))


@pytest.fixture(scope="module")
def getter_session(sessions):
    s = sessions.login("root", "1.0", "getters")
    ok(sessions.proxy.task.create(s, unique(), ""))
    return s


@pytest.mark.parametrize("field", SESSION_FIELDS)
def test_session_getter_equals_record_field(proxy, root, getter_session, field):
    s = getter_session
    rec = ok(proxy.session.get_record(s, s))
    got = ok(call_raw(proxy, "session.get_" + field, root, s))
    if isinstance(got, xmlrpc.client.DateTime):
        assert got.value == rec[field].value
    else:
        assert got == rec[field]


def test_any_session_may_read_another_session(proxy, sessions, root):
    ro = sessions["read-only"]
    assert ok(proxy.session.get_auth_user_name(ro, root)) == "root"
    assert ok(proxy.session.get_is_local_superuser(ro, root)) is True


def test_session_get_by_uuid(proxy, root):
    u = ok(proxy.session.get_uuid(root, root))
    assert ok(proxy.session.get_by_uuid(root, u)) == root
    missing = "00000000-0000-0000-0000-000000000000"
    assert proxy.session.get_by_uuid(root, missing) == fail("UUID_INVALID", "session", missing)


def test_session_getter_on_bad_ref(proxy, root):
    bad = random_ref()
    assert proxy.session.get_record(root, bad) == fail("HANDLE_INVALID", "session", bad)
    assert proxy.session.get_uuid(root, bad) == fail("HANDLE_INVALID", "session", bad)


def test_session_tasks_lists_own_tasks(proxy):
    s = ok(proxy.session.login_with_password("root", ROOT_PASSWORD))
    t1 = ok(proxy.task.create(s, unique(), ""))
    t2 = ok(proxy.task.create(s, unique(), ""))
    assert sorted(ok(proxy.session.get_tasks(s, s))) == sorted([t1, t2])
    ok(proxy.task.set_status(s, t1, "success"))
    ok(proxy.task.destroy(s, t1))
    assert ok(proxy.session.get_tasks(s, s)) == [t2]


def test_session_has_no_get_all(proxy, root):
    # not in expose_get_all_messages_for (ocaml/idl/datamodel.ml): an unknown method with
    # a parameter goes to the extension path, so root gets MESSAGE_METHOD_UNKNOWN.
    assert proxy.session.get_all(root) == fail("MESSAGE_METHOD_UNKNOWN", "session.get_all")
    assert proxy.session.get_all_records(root) == fail("MESSAGE_METHOD_UNKNOWN", "session.get_all_records")


def test_session_other_config_as_pool_admin(proxy, sessions):
    s = sessions.login("pool-admin")
    assert ok(proxy.session.add_to_other_config(s, s, "k", "v")) == ""
    assert ok(proxy.session.get_other_config(s, s)) == {"k": "v"}
    assert proxy.session.add_to_other_config(s, s, "k", "w") == fail(
        "MAP_DUPLICATE_KEY", "session", "other_config", s, "k"
    )
    ok(proxy.session.set_other_config(s, s, {"a": "1", "b": "2"}))
    assert ok(proxy.session.get_other_config(s, s)) == {"a": "1", "b": "2"}
    ok(proxy.session.remove_from_other_config(s, s, "a"))
    ok(proxy.session.remove_from_other_config(s, s, "not-there"))
    assert ok(proxy.session.get_other_config(s, s)) == {"b": "2"}


def test_session_other_config_as_root(proxy, root):
    s = ok(proxy.session.login_with_password("root", ROOT_PASSWORD))
    ok(proxy.session.set_other_config(root, s, {"x": "y"}))
    assert ok(proxy.session.get_record(s, s))["other_config"] == {"x": "y"}


# ------------------------------------------------------------ pool and host


def test_pool_and_host_singletons(proxy, root, host_ref):
    pools = ok(proxy.pool.get_all(root))
    assert len(pools) == 1 and pools[0] == ANY_REF
    pool = pools[0]
    assert ok(proxy.pool.get_master(root, pool)) == host_ref
    prec = ok(proxy.pool.get_record(root, pool))
    assert prec["master"] == host_ref
    assert ok(proxy.pool.get_by_uuid(root, prec["uuid"])) == pool
    assert ok(proxy.pool.get_all_records(root)) == {pool: prec}
    hrec = ok(proxy.host.get_record(root, host_ref))
    assert ok(proxy.host.get_by_uuid(root, hrec["uuid"])) == host_ref
    assert ok(proxy.host.get_by_name_label(root, hrec["name_label"])) == [host_ref]
    assert ok(proxy.host.get_name_label(root, host_ref)) == hrec["name_label"]
    assert list(ok(proxy.host.get_all_records(root))) == [host_ref]
    bad = random_ref()
    assert proxy.host.get_record(root, bad) == fail("HANDLE_INVALID", "host", bad)
    assert proxy.pool.get_record(root, bad) == fail("HANDLE_INVALID", "pool", bad)
    assert proxy.pool.get_by_uuid(root, "nope") == fail("UUID_INVALID", "pool", "nope")
    assert proxy.host.get_by_uuid(root, "nope") == fail("UUID_INVALID", "host", "nope")


def test_host_api_version(proxy, sessions, host_ref):
    ro = sessions["read-only"]
    assert ok(proxy.host.get_API_version_major(ro, host_ref)) == "2"
    assert ok(proxy.host.get_API_version_minor(ro, host_ref)) == "23"


# ------------------------------------------------------------------------ SDK


def test_sdk_login_and_call(sdk_module, server):
    s = sdk_session(sdk_module, server.url)
    s.xenapi.login_with_password("root", ROOT_PASSWORD, "1.0", "sdk-test")
    try:
        assert s.handle == ANY_REF
        t = s.xenapi.task.create("sdk-task", "made by the SDK")
        rec = s.xenapi.task.get_record(t)
        assert rec["name_label"] == "sdk-task"
        assert rec["name_description"] == "made by the SDK"
        assert s.xenapi.session.get_originator(s.handle) == "sdk-test"
    finally:
        s.xenapi.session.logout()


def test_sdk_login_two_args(sdk_module, server):
    s = sdk_session(sdk_module, server.url)
    s.xenapi.login_with_password("root", ROOT_PASSWORD)
    try:
        assert s.xenapi.session.get_is_local_superuser(s.handle) is True
    finally:
        s.xenapi.session.logout()


def test_sdk_login_failure(sdk_module, server):
    s = sdk_session(sdk_module, server.url)
    with pytest.raises(sdk_module.Failure) as e:
        s.xenapi.login_with_password("root", "wrong", "1.0", "x")
    assert e.value.details == ["SESSION_AUTHENTICATION_FAILED", "root", "Authentication failure"]


def test_sdk_failure_details(sdk, sdk_module):
    bad = random_ref()
    with pytest.raises(sdk_module.Failure) as e:
        sdk.xenapi.task.get_record(bad)
    assert e.value.details == ["HANDLE_INVALID", "task", bad]


def test_sdk_api_version(sdk):
    # XenAPI.py: pool.get_all()[0] -> pool.get_master -> host.get_API_version_major/minor
    assert sdk.API_version == "2.23"


def test_sdk_relogin_after_session_invalid(sdk_module, server, proxy):
    s = sdk_session(sdk_module, server.url)
    s.xenapi.login_with_password("root", ROOT_PASSWORD, "1.0", "relogin")
    first = s.handle
    # the server forgets the session behind the SDK's back
    ok(proxy.session.logout(first))
    assert proxy.task.get_all(first) == fail("SESSION_INVALID", first)
    # the SDK sees SESSION_INVALID, logs in again with the remembered params and retries
    t = s.xenapi.task.create("after-relogin", "")
    assert s.handle != first and s.handle == ANY_REF
    assert s.xenapi.task.get_name_label(t) == "after-relogin"
    assert s.xenapi.session.get_originator(s.handle) == "relogin"
    s.xenapi.session.logout()


def test_sdk_raw_path_shows_session_invalid(sdk_module, server):
    s = sdk_session(sdk_module, server.url)
    bad = random_ref()
    # falls through XenAPI.Session.__getattr__ to ServerProxy: the raw reply
    assert s.task.get_all(bad) == fail("SESSION_INVALID", bad)


def test_sdk_user_login(sdk_module, server):
    s = sdk_session(sdk_module, server.url)
    s.xenapi.login_with_password(user_name("vm-admin"), user_password("vm-admin"))
    try:
        perms = s.xenapi.session.get_rbac_permissions(s.handle)
        assert perms[0] == "vm-admin"
        t = s.xenapi.task.create("user-task", "")
        s.xenapi.task.set_progress(t, 0.5)
        assert s.xenapi.task.get_progress(t) == 0.5
    finally:
        s.xenapi.session.logout()


# ------------------------------------------------------------- user management


def test_user_added_while_running_can_log_in_at_once(server, proxy):
    name = unique("newuser")
    server.add_user(name, "vm-operator", "first-pw")
    s = ok(proxy.session.login_with_password(name, "first-pw"))
    assert ok(proxy.session.get_rbac_permissions(s, s))[0] == "vm-operator"
    assert ok(proxy.session.get_auth_user_name(s, s)) == name

    server.cli("passwd", name, stdin="second-pw\n")
    assert proxy.session.login_with_password(name, "first-pw") == fail(
        "SESSION_AUTHENTICATION_FAILED", name, "Authentication failure"
    )
    s2 = ok(proxy.session.login_with_password(name, "second-pw"))
    assert ok(proxy.session.get_auth_user_sid(s2, s2)) == ok(proxy.session.get_auth_user_sid(s, s))

    listing = server.cli("list").stdout.decode()
    assert re.search(r"^" + re.escape(name) + r"\s+vm-operator\b", listing, re.M), listing

    server.cli("remove", name)
    assert proxy.session.login_with_password(name, "second-pw") == fail(
        "SESSION_AUTHENTICATION_FAILED", name, "Authentication failure"
    )
    assert name not in server.cli("list").stdout.decode()


def test_cli_rejects_unknown_role_and_duplicates(server):
    res = server.cli("add", unique("u"), "--role", "super-admin", stdin="pw\n", check=False)
    assert res.returncode != 0
    res = server.cli("add", user_name("read-only"), "--role", "read-only", stdin="pw\n", check=False)
    assert res.returncode != 0


def test_session_add_to_other_config_puts_the_new_entry_first(proxy, root):
    # db_cache_types.ml add_to_map prepends (see test_task.py)
    s = ok(proxy.session.login_with_password("root", ROOT_PASSWORD))
    ok(proxy.session.add_to_other_config(root, s, "first", "1"))
    ok(proxy.session.add_to_other_config(root, s, "second", "2"))
    assert list(ok(proxy.session.get_other_config(root, s)).items()) == [("second", "2"), ("first", "1")]
    assert proxy.session.add_to_other_config(root, s, "", "x") == fail("INTERNAL_ERROR", "Db_exn.Empty_key_in_map")
