"""Dispatch pipeline and error precedence.

xapi: ocaml/idl/ocaml_backend/gen_server.ml (generated dispatch_call: UTF-8 check, prefix
strip, name match incl. the `class_message` alias, parameter count with the session
excluded, unmarshal, Session_check, RBAC, the extension path for unknown methods,
system.listMethods and system.isAlive), ocaml/xapi/server_helpers.ml (do_dispatch: the
"No async mode" Fault); spec §1.5, §7.
"""

import pytest

from conftest import (
    DENIED_POOL_ADMIN,
    call_raw,
    fail,
    ok,
    random_ref,
    unique,
)


# ------------------------------------------------------------ unknown methods


@pytest.mark.parametrize(
    "name",
    ["foo.bar", "task.nosuch", "Task.get_record", "TASK.GET_RECORD", "task.set_resident_on",
     "session.get_all", "task", "task.get_record.x"],
)
def test_unknown_method_without_params(proxy, name):
    assert call_raw(proxy, name) == fail("MESSAGE_METHOD_UNKNOWN", name)


def test_unknown_method_with_bad_session(proxy):
    bad = random_ref()
    assert call_raw(proxy, "foo.bar", bad, "x") == fail("SESSION_INVALID", bad)


def test_unknown_method_as_root(proxy, root, new_task):
    t = new_task()
    assert call_raw(proxy, "foo.bar", root) == fail("MESSAGE_METHOD_UNKNOWN", "foo.bar")
    # set_resident_on exists in xapi_task.ml but is not in the class's message list
    assert call_raw(proxy, "task.set_resident_on", root, t, "OpaqueRef:NULL") == fail(
        "MESSAGE_METHOD_UNKNOWN", "task.set_resident_on"
    )


def test_unknown_method_as_read_only(proxy, sessions):
    assert call_raw(proxy, "task.nosuch", sessions["read-only"], "a", "b") == fail(
        "RBAC_PERMISSION_DENIED", "host.call_extension", DENIED_POOL_ADMIN
    )


def test_async_prefix_is_stripped_from_unknown_names(proxy, root):
    assert call_raw(proxy, "Async.foo.bar") == fail("MESSAGE_METHOD_UNKNOWN", "foo.bar")
    assert call_raw(proxy, "Async.foo.bar", root) == fail("MESSAGE_METHOD_UNKNOWN", "foo.bar")


def test_system_is_alive_echoes_its_first_param(proxy):
    # gen_server.ml: `if sscanf func "system.isAlive:%s" ... then Rpc.success (List.hd __params)`
    assert call_raw(proxy, "system.isAlive:probe", "hello") == {"Status": "Success", "Value": "hello"}


# ------------------------------------------------------------ parameter count


@pytest.mark.parametrize(
    "method,args,expected,received",
    [
        ("task.get_record", (), "1", "-1"),
        ("task.get_record", ("S",), "1", "0"),
        ("task.get_record", ("S", "T", "extra"), "1", "2"),
        ("task.create", ("S", "only-label"), "2", "1"),
        ("task.create", ("S", "a", "b", "c"), "2", "3"),
        ("task.get_all", ("S", "x"), "0", "1"),
        ("task.get_all", (), "0", "-1"),
        ("task.set_progress", ("S", "T"), "2", "1"),
        ("task.get_all_records_where", ("S",), "1", "0"),
        ("session.logout", (), "0", "-1"),
        ("session.get_record", ("S",), "1", "0"),
        ("task.add_to_other_config", ("S", "T", "k"), "3", "2"),
    ],
)
def test_parameter_count_mismatch_excludes_the_session(proxy, root, new_task, method, args, expected, received):
    t = new_task()
    args = tuple(root if a == "S" else t if a == "T" else a for a in args)
    assert call_raw(proxy, method, *args) == fail("MESSAGE_PARAMETER_COUNT_MISMATCH", method, expected, received)


def test_count_is_checked_before_the_session(proxy):
    bad = random_ref()
    assert proxy.task.get_record(bad) == fail("MESSAGE_PARAMETER_COUNT_MISMATCH", "task.get_record", "1", "0")
    assert proxy.task.create(bad, "x") == fail("MESSAGE_PARAMETER_COUNT_MISMATCH", "task.create", "2", "1")


def test_unmarshal_is_before_the_session_check(proxy, root, new_task):
    t = new_task()
    bad = random_ref()
    assert proxy.task.set_progress(bad, t, True) == fail(
        "INTERNAL_ERROR", "Failure(\"Expected float, got 'B(true)'\")"
    )
    assert proxy.task.set_progress(bad, t, 0.5) == fail("SESSION_INVALID", bad)


def test_session_param_of_wrong_type(proxy):
    assert proxy.task.get_all(5) == fail("INTERNAL_ERROR", "Failure(\"Expected string, got 'I(5)'\")")


def test_session_is_checked_before_rbac_and_handle(proxy, new_task):
    t = new_task()
    bad = random_ref()
    assert proxy.task.destroy(bad, t) == fail("SESSION_INVALID", bad)
    assert proxy.task.destroy(bad, random_ref()) == fail("SESSION_INVALID", bad)


# ------------------------------------------------------------------- Async


def test_async_without_async_variant(proxy, root, new_task):
    t = new_task()
    assert call_raw(proxy, "Async.task.get_record", root, t) == fail(
        "Fault", "No async mode for this operation (rpc: task.get_record)"
    )


def test_async_count_mismatch_comes_first(proxy):
    assert call_raw(proxy, "Async.task.get_record") == fail(
        "MESSAGE_PARAMETER_COUNT_MISMATCH", "task.get_record", "1", "-1"
    )


def test_async_session_check_comes_before_the_fault(proxy, new_task):
    bad = random_ref()
    assert call_raw(proxy, "Async.task.get_record", bad, new_task()) == fail("SESSION_INVALID", bad)


def test_async_unmarshal_comes_before_the_fault(proxy, root, new_task):
    assert call_raw(proxy, "Async.task.set_progress", root, new_task(), True) == fail(
        "INTERNAL_ERROR", "Failure(\"Expected float, got 'B(true)'\")"
    )


def test_async_of_login_has_no_async_variant(proxy):
    from conftest import ROOT_PASSWORD

    assert call_raw(proxy, "Async.session.login_with_password", "root", ROOT_PASSWORD) == fail(
        "Fault", "No async mode for this operation (rpc: session.login_with_password)"
    )


# ------------------------------------------------------------------- aliases


def test_underscore_alias_for_root(proxy, root):
    t = ok(call_raw(proxy, "task_create", root, "via-alias", "d"))
    assert ok(proxy.task.get_name_label(root, t)) == "via-alias"
    assert ok(call_raw(proxy, "task_get_record", root, t))["name_description"] == "d"
    ok(call_raw(proxy, "task_set_progress", root, t, 0.5))
    assert ok(call_raw(proxy, "task_get_progress", root, t)) == 0.5
    assert t in ok(call_raw(proxy, "task_get_all", root))
    assert ok(call_raw(proxy, "session_get_auth_user_name", root, root)) == "root"


def test_event_from_alias(proxy, root):
    # XenAPI users call session.xenapi.event_from(...) because `from` is a Python keyword
    res = ok(call_raw(proxy, "event_from", root, ["task"], "", 0.0))
    assert set(res) >= {"events", "valid_ref_counts", "token"}
    assert isinstance(res["events"], list)


def test_alias_count_mismatch_uses_the_name_as_sent(proxy):
    assert call_raw(proxy, "task_get_record") == fail(
        "MESSAGE_PARAMETER_COUNT_MISMATCH", "task_get_record", "1", "-1"
    )


def test_alias_through_the_sdk(sdk):
    t = sdk.xenapi.task_create("sdk-alias", "")
    assert sdk.xenapi.task.get_name_label(t) == "sdk-alias"
    res = sdk.xenapi.event_from(["task"], "", 0.0)
    assert "token" in res


def test_alias_rbac_for_pool_admin(proxy, sessions, root):
    t = ok(proxy.task.create(root, unique(), ""))
    assert call_raw(proxy, "task_get_record", sessions["pool-admin"], t) == fail(
        "RBAC_PERMISSION_DENIED", "task_get_record", "No permission in user session. (Roles with this permission: )"
    )


def test_system_list_methods(proxy):
    methods = proxy.system.listMethods()
    assert isinstance(methods, list)
    for m in ["session.login_with_password", "session.logout", "task.create", "task.destroy",
              "task.cancel", "task.get_record", "task.get_all_records", "task.set_other_config",
              "task.get_backtrace", "event.from"]:
        assert m in methods, m
    assert len(methods) == len(set(methods))
    assert not any(m.startswith("Async.") for m in methods)
    assert "task.set_resident_on" not in methods


def test_alias_permission_is_lower_cased(proxy, sessions, host_ref):
    # rbac.ml permission_of_action: String.lowercase_ascii of the name as sent
    assert call_raw(proxy, "host_get_API_version_major", sessions["read-only"], host_ref) == fail(
        "RBAC_PERMISSION_DENIED", "host_get_api_version_major",
        "No permission in user session. (Roles with this permission: )",
    )
    assert ok(call_raw(proxy, "host.get_API_version_major", sessions["read-only"], host_ref)) == "2"


def test_unknown_method_with_non_string_first_param(proxy):
    # gen_server.ml: `let session_id = ref_session_of_rpc session_id_rpc in` on the extension path
    assert call_raw(proxy, "foo.bar", 5) == fail("INTERNAL_ERROR", "Failure(\"Expected string, got 'I(5)'\")")


def test_async_alias_reports_the_alias_name(proxy, root, new_task):
    assert call_raw(proxy, "Async.task_get_record", root, new_task()) == fail(
        "Fault", "No async mode for this operation (rpc: task_get_record)"
    )
