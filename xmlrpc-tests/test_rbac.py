"""Roles, task ownership and protected other_config keys.

xapi sources: ocaml/xapi/taskHelper.ml (assert_op_valid: ownership by auth_user_sid,
otherwise permission task.destroy/any), ocaml/xapi/rbac.ml (check,
disallowed_permission_exn), ocaml/xapi/helpers.ml (set_map_with_rbac),
ocaml/idl/datamodel.ml (Task.Special.protected_keys, extra_permissions); spec §6, §9.6-7.
"""

import pytest

from conftest import (
    DENIED_ANY,
    DENIED_POOL_ADMIN,
    DENIED_VM_OP,
    ROLES,
    call_raw,
    fail,
    ok,
    random_ref,
    unique,
)

PRIVILEGED = ["pool-admin", "pool-operator"]  # hold task.destroy/any
UNPRIVILEGED = ["vm-power-admin", "vm-admin", "vm-operator", "client-cert", "read-only"]
VM_OP = ["pool-admin", "pool-operator", "vm-power-admin", "vm-admin", "vm-operator"]

# (method, args after the task ref)
MUTATORS = [
    ("task.set_progress", (0.5,)),
    ("task.set_status", ("success",)),
    ("task.set_result", ("r",)),
    ("task.set_error_info", (["E"],)),
    ("task.cancel", ()),
    ("task.destroy", ()),
    ("task.add_to_other_config", ("k", "v")),
    ("task.remove_from_other_config", ("k",)),
    ("task.set_other_config", ({"k": "v"},)),
]


def snapshot(proxy, s, t):
    rec = ok(proxy.task.get_record(s, t))
    rec.pop("created")
    rec.pop("finished")
    return rec


# ------------------------------------------------------ own and others' tasks


@pytest.mark.parametrize("role", ROLES)
def test_every_role_can_drive_its_own_task(proxy, sessions, role):
    s = sessions[role]
    t = ok(proxy.task.create(s, unique(role), ""))
    ok(proxy.task.set_progress(s, t, 0.5))
    ok(proxy.task.set_result(s, t, "<value></value>"))
    ok(proxy.task.set_error_info(s, t, ["X"]))
    ok(proxy.task.add_to_other_config(s, t, "k", "v"))
    ok(proxy.task.remove_from_other_config(s, t, "k"))
    ok(proxy.task.set_other_config(s, t, {"a": "b"}))
    ok(proxy.task.cancel(s, t))
    ok(proxy.task.destroy(s, t))
    assert ok(proxy.task.get_current_operations(s, t))["task"] == "destroy"
    ok(proxy.task.set_status(s, t, "success"))
    ok(proxy.task.destroy(s, t))
    assert proxy.task.get_record(s, t) == fail("HANDLE_INVALID", "task", t)


@pytest.mark.parametrize("method,args", MUTATORS)
def test_read_only_cannot_touch_others_task(proxy, sessions, root, method, args):
    t = ok(proxy.task.create(root, unique(), ""))
    ro = sessions["read-only"]
    before = snapshot(proxy, root, t)
    assert call_raw(proxy, method, ro, t, *args) == fail("RBAC_PERMISSION_DENIED", "task.destroy/any", DENIED_ANY)
    assert snapshot(proxy, root, t) == before


@pytest.mark.parametrize("role", UNPRIVILEGED)
def test_unprivileged_roles_cannot_touch_another_users_task(proxy, sessions, role):
    owner = "pool-admin" if role != "pool-admin" else "read-only"
    t = ok(proxy.task.create(sessions[owner], unique(), ""))
    s = sessions[role]
    for method, args in [("task.set_progress", (0.9,)), ("task.cancel", ()), ("task.destroy", ())]:
        assert call_raw(proxy, method, s, t, *args) == fail(
            "RBAC_PERMISSION_DENIED", "task.destroy/any", DENIED_ANY
        ), method
    assert ok(proxy.task.get_progress(s, t)) == 0.0
    assert ok(proxy.task.get_current_operations(s, t)) == {}


@pytest.mark.parametrize("role", PRIVILEGED + ["root"])
@pytest.mark.parametrize("method,args", MUTATORS)
def test_privileged_roles_can_touch_others_task(proxy, sessions, role, method, args):
    t = ok(proxy.task.create(sessions["read-only"], unique(), ""))
    ok(call_raw(proxy, method, sessions[role], t, *args))


def test_privileged_effects_on_others_task(proxy, sessions):
    ro, op = sessions["read-only"], sessions["pool-operator"]
    t = ok(proxy.task.create(ro, unique(), ""))
    ok(proxy.task.set_progress(op, t, 0.75))
    ok(proxy.task.set_status(op, t, "success"))
    assert ok(proxy.task.get_progress(ro, t)) == 0.75
    ok(proxy.task.destroy(op, t))
    assert proxy.task.get_record(ro, t) == fail("HANDLE_INVALID", "task", t)


@pytest.mark.parametrize("role", ROLES)
def test_all_roles_can_read_all_tasks(proxy, sessions, root, role):
    t = ok(proxy.task.create(root, unique("readable"), "desc"))
    s = sessions[role]
    assert ok(proxy.task.get_record(s, t))["name_description"] == "desc"
    assert t in ok(proxy.task.get_all(s))
    assert t in ok(proxy.task.get_all_records(s))
    assert ok(proxy.task.get_by_uuid(s, ok(proxy.task.get_uuid(s, t)))) == t


def test_second_session_of_same_user_owns_the_task(proxy, sessions):
    a = sessions.login("read-only")
    b = sessions.login("read-only")
    t = ok(proxy.task.create(a, unique(), ""))
    ok(proxy.task.set_progress(b, t, 0.3))
    ok(proxy.task.cancel(b, t))
    assert ok(proxy.task.get_progress(a, t)) == 0.3


def test_other_user_with_same_role_does_not_own_the_task(proxy, sessions):
    t = ok(proxy.task.create(sessions["vm-operator"], unique(), ""))
    assert proxy.task.set_progress(sessions["vm-admin"], t, 0.1) == fail(
        "RBAC_PERMISSION_DENIED", "task.destroy/any", DENIED_ANY
    )


def test_after_logout_tasks_are_owned_by_nobody(proxy, sessions):
    a = sessions.login("read-only")
    t = ok(proxy.task.create(a, unique(), ""))
    ok(proxy.session.logout(a))
    b = sessions.login("read-only")
    assert ok(proxy.task.get_status(b, t)) == "pending"
    assert proxy.task.set_progress(b, t, 0.5) == fail("RBAC_PERMISSION_DENIED", "task.destroy/any", DENIED_ANY)
    assert proxy.task.destroy(b, t) == fail("RBAC_PERMISSION_DENIED", "task.destroy/any", DENIED_ANY)
    # pool-operator still can
    ok(proxy.task.set_status(sessions["pool-operator"], t, "success"))
    ok(proxy.task.destroy(sessions["pool-operator"], t))


def test_root_sessions_own_each_others_tasks(proxy, sessions):
    a = sessions.login("root")
    b = sessions.login("root")
    t = ok(proxy.task.create(a, unique(), ""))
    ok(proxy.task.set_progress(b, t, 0.6))
    assert ok(proxy.task.get_progress(a, t)) == 0.6


def test_user_cannot_touch_roots_task_and_root_can_touch_users(proxy, sessions, root):
    rt = ok(proxy.task.create(root, unique(), ""))
    vt = ok(proxy.task.create(sessions["vm-power-admin"], unique(), ""))
    assert proxy.task.cancel(sessions["vm-power-admin"], rt) == fail(
        "RBAC_PERMISSION_DENIED", "task.destroy/any", DENIED_ANY
    )
    ok(proxy.task.cancel(root, vt))


# ------------------------------------------------------- nonexistent refs


@pytest.mark.parametrize("method,args", MUTATORS)
def test_mutating_nonexistent_task(proxy, sessions, method, args):
    bad = random_ref()
    assert call_raw(proxy, method, sessions["read-only"], bad, *args) == fail(
        "RBAC_PERMISSION_DENIED", "task.destroy/any", DENIED_ANY
    )
    assert call_raw(proxy, method, sessions["pool-admin"], bad, *args) == fail("HANDLE_INVALID", "task", bad)
    assert call_raw(proxy, method, sessions["pool-operator"], bad, *args) == fail("HANDLE_INVALID", "task", bad)


def test_getters_on_nonexistent_task_are_handle_invalid_for_everyone(proxy, sessions):
    bad = random_ref()
    for role in ROLES:
        assert proxy.task.get_record(sessions[role], bad) == fail("HANDLE_INVALID", "task", bad)


# ------------------------------------------------------- protected keys


@pytest.mark.parametrize(
    "key,perm",
    [
        ("applies_to", "applies_to"),
        ("XenCenterUUID", "xencenteruuid"),
        ("XenCenterMeddlingActionTitle", "xencentermeddlingactiontitle"),
    ],
)
def test_read_only_cannot_add_or_remove_protected_key_on_own_task(proxy, sessions, key, perm):
    ro = sessions["read-only"]
    t = ok(proxy.task.create(ro, unique(), ""))
    assert proxy.task.add_to_other_config(ro, t, key, "v") == fail(
        "RBAC_PERMISSION_DENIED", "task.add_to_other_config/key:" + perm, DENIED_VM_OP
    )
    # removal is checked by key too, whether or not the key is present
    assert proxy.task.remove_from_other_config(ro, t, key) == fail(
        "RBAC_PERMISSION_DENIED", "task.remove_from_other_config/key:" + perm, DENIED_VM_OP
    )
    assert ok(proxy.task.get_other_config(ro, t)) == {}


@pytest.mark.parametrize("role", ["client-cert"])
def test_client_cert_cannot_add_protected_key(proxy, sessions, role):
    s = sessions[role]
    t = ok(proxy.task.create(s, unique(), ""))
    assert proxy.task.add_to_other_config(s, t, "applies_to", "v") == fail(
        "RBAC_PERMISSION_DENIED", "task.add_to_other_config/key:applies_to", DENIED_VM_OP
    )


@pytest.mark.parametrize("role", VM_OP + ["root"])
def test_vm_operator_and_up_may_use_protected_keys(proxy, sessions, role):
    s = sessions[role]
    t = ok(proxy.task.create(s, unique(), ""))
    ok(proxy.task.add_to_other_config(s, t, "applies_to", "vm1"))
    ok(proxy.task.add_to_other_config(s, t, "XenCenterUUID", "xc"))
    assert ok(proxy.task.get_other_config(s, t)) == {"applies_to": "vm1", "XenCenterUUID": "xc"}
    ok(proxy.task.remove_from_other_config(s, t, "applies_to"))
    assert ok(proxy.task.get_other_config(s, t)) == {"XenCenterUUID": "xc"}


def test_protected_keys_are_case_sensitive(proxy, sessions):
    ro = sessions["read-only"]
    t = ok(proxy.task.create(ro, unique(), ""))
    ok(proxy.task.add_to_other_config(ro, t, "Applies_To", "v"))
    ok(proxy.task.add_to_other_config(ro, t, "xencenteruuid", "v"))
    assert ok(proxy.task.get_other_config(ro, t)) == {"Applies_To": "v", "xencenteruuid": "v"}


def test_key_permission_is_checked_before_ownership(proxy, sessions, root):
    # add/remove: Rbac.check on the key permission runs before assert_op_valid
    t = ok(proxy.task.create(root, unique(), ""))
    ro = sessions["read-only"]
    assert proxy.task.add_to_other_config(ro, t, "applies_to", "v") == fail(
        "RBAC_PERMISSION_DENIED", "task.add_to_other_config/key:applies_to", DENIED_VM_OP
    )
    assert proxy.task.add_to_other_config(ro, t, "plain", "v") == fail(
        "RBAC_PERMISSION_DENIED", "task.destroy/any", DENIED_ANY
    )
    # set: ownership first (assert_can_modify_other_config), then the key diff
    assert proxy.task.set_other_config(ro, t, {"applies_to": "v"}) == fail(
        "RBAC_PERMISSION_DENIED", "task.destroy/any", DENIED_ANY
    )


def test_vm_operator_with_protected_key_on_others_task(proxy, sessions, root):
    # has the key permission but not task.destroy/any
    t = ok(proxy.task.create(root, unique(), ""))
    assert proxy.task.add_to_other_config(sessions["vm-operator"], t, "applies_to", "v") == fail(
        "RBAC_PERMISSION_DENIED", "task.destroy/any", DENIED_ANY
    )


def test_set_other_config_diff_rule(proxy, sessions):
    ro, op = sessions["read-only"], sessions["pool-operator"]
    t = ok(proxy.task.create(ro, unique(), ""))
    # someone allowed puts a protected entry on the read-only user's task
    ok(proxy.task.add_to_other_config(op, t, "applies_to", "vm1"))
    ok(proxy.task.add_to_other_config(op, t, "other", "x"))

    # passing the protected entry through unchanged is fine, other keys change freely
    ok(proxy.task.set_other_config(ro, t, {"applies_to": "vm1", "foo": "bar"}))
    assert ok(proxy.task.get_other_config(ro, t)) == {"applies_to": "vm1", "foo": "bar"}

    # changing it needs the add_to permission
    assert proxy.task.set_other_config(ro, t, {"applies_to": "vm2", "foo": "bar"}) == fail(
        "RBAC_PERMISSION_DENIED", "task.add_to_other_config/key:applies_to", DENIED_VM_OP
    )
    # removing it needs the remove_from permission
    assert proxy.task.set_other_config(ro, t, {"foo": "baz"}) == fail(
        "RBAC_PERMISSION_DENIED", "task.remove_from_other_config/key:applies_to", DENIED_VM_OP
    )
    # adding another protected key needs its own add_to permission
    assert proxy.task.set_other_config(
        ro, t, {"applies_to": "vm1", "XenCenterMeddlingActionTitle": "t"}
    ) == fail("RBAC_PERMISSION_DENIED", "task.add_to_other_config/key:xencentermeddlingactiontitle", DENIED_VM_OP)
    # nothing changed by the refused calls
    assert ok(proxy.task.get_other_config(ro, t)) == {"applies_to": "vm1", "foo": "bar"}

    # vm-operator-level users may do all of it (on a task they may modify)
    ok(proxy.task.set_other_config(op, t, {"XenCenterUUID": "u"}))
    assert ok(proxy.task.get_other_config(ro, t)) == {"XenCenterUUID": "u"}


# ------------------------------------------------------- session other_config


@pytest.mark.parametrize("role", [r for r in ROLES if r != "pool-admin"])
def test_session_other_config_needs_pool_admin(proxy, sessions, role):
    s = sessions[role]
    assert proxy.session.set_other_config(s, s, {"a": "b"}) == fail(
        "RBAC_PERMISSION_DENIED", "session.set_other_config", DENIED_POOL_ADMIN
    )
    assert proxy.session.add_to_other_config(s, s, "a", "b") == fail(
        "RBAC_PERMISSION_DENIED", "session.add_to_other_config", DENIED_POOL_ADMIN
    )
    assert proxy.session.remove_from_other_config(s, s, "a") == fail(
        "RBAC_PERMISSION_DENIED", "session.remove_from_other_config", DENIED_POOL_ADMIN
    )
    assert ok(proxy.session.get_other_config(s, s)) == {}


# ------------------------------------------------- unknown methods, aliases


@pytest.mark.parametrize("role", [r for r in ROLES if r != "pool-admin"])
def test_unknown_method_with_params_needs_call_extension(proxy, sessions, role):
    assert call_raw(proxy, "foo.bar", sessions[role]) == fail(
        "RBAC_PERMISSION_DENIED", "host.call_extension", DENIED_POOL_ADMIN
    )


def test_unknown_method_with_params_as_pool_admin(proxy, sessions):
    assert call_raw(proxy, "foo.bar", sessions["pool-admin"], "x") == fail("MESSAGE_METHOD_UNKNOWN", "foo.bar")


@pytest.mark.parametrize("role", ROLES)
def test_underscore_alias_only_for_local_superuser(proxy, sessions, root, role):
    t = ok(proxy.task.create(root, unique("alias"), ""))
    assert call_raw(proxy, "task_get_record", sessions[role], t) == fail(
        "RBAC_PERMISSION_DENIED", "task_get_record", "No permission in user session. (Roles with this permission: )"
    )
    assert ok(call_raw(proxy, "task_get_record", root, t))["uuid"] == ok(proxy.task.get_uuid(root, t))
