"""RBAC per role, task ownership and protected other_config keys (spec §6)."""

from harness import fail, ok, root, server, session_of  # noqa: F401

DESTROY_ANY = ["RBAC_PERMISSION_DENIED", "task.destroy/any",
               "No permission in user session. (Roles with this permission: pool-admin, pool-operator)"]
VM_OP_ROLES = "pool-admin, pool-operator, vm-power-admin, vm-admin, vm-operator"


def test_read_only_cannot_touch_another_users_task(server):
    p = server.proxy()
    owner = session_of(server, "read-only")
    t = ok(p.task.create(owner, "owned", ""))
    intruder = server.login("other_ro", "other_ro-pw")
    for call in [lambda: p.task.set_progress(intruder, t, 0.5), lambda: p.task.cancel(intruder, t),
                 lambda: p.task.destroy(intruder, t), lambda: p.task.set_status(intruder, t, "success"),
                 lambda: p.task.add_to_other_config(intruder, t, "k", "v")]:
        assert fail(call()) == DESTROY_ANY
    # ... but can read it, like everything else.
    assert ok(p.task.get_record(intruder, t))["name_label"] == "owned"
    # The owner, and any other session of the same user, can act on it.
    ok(p.task.set_progress(owner, t, 0.3))
    ok(p.task.set_progress(session_of(server, "read-only"), t, 0.4))


def test_pool_operator_and_root_act_on_any_task_and_lower_roles_do_not(server, root):
    p, s = root
    owner = session_of(server, "read-only")
    t = ok(p.task.create(owner, "victim", ""))
    ok(p.task.set_progress(session_of(server, "pool-operator"), t, 0.1))
    ok(p.task.set_progress(session_of(server, "pool-admin"), t, 0.2))
    ok(p.task.set_progress(s, t, 0.3))
    for role in ["vm-power-admin", "vm-admin", "vm-operator", "client-cert"]:
        assert fail(p.task.set_progress(session_of(server, role), t, 0.9)) == DESTROY_ANY, role


def test_tasks_of_a_logged_out_session_belong_to_nobody(server):
    p = server.proxy()
    s1 = session_of(server, "vm-admin")
    t = ok(p.task.create(s1, "orphan", ""))
    ok(p.session.logout(s1))
    assert fail(p.task.cancel(session_of(server, "vm-admin"), t)) == DESTROY_ANY
    ok(p.task.cancel(session_of(server, "pool-operator"), t))


def test_missing_task_ref_rbac_before_handle(server):
    p = server.proxy()
    assert fail(p.task.destroy(session_of(server, "read-only"), "OpaqueRef:none")) == DESTROY_ANY
    assert fail(p.task.destroy(session_of(server, "pool-admin"), "OpaqueRef:none")) == [
        "HANDLE_INVALID", "task", "OpaqueRef:none"]


def test_protected_keys(server):
    p = server.proxy()
    ro = session_of(server, "read-only")
    t = ok(p.task.create(ro, "keys", ""))
    assert fail(p.task.add_to_other_config(ro, t, "applies_to", "x")) == [
        "RBAC_PERMISSION_DENIED", "task.add_to_other_config/key:applies_to",
        f"No permission in user session. (Roles with this permission: {VM_OP_ROLES})"]
    ok(p.task.add_to_other_config(ro, t, "applies_to_not", "fine"))
    ok(p.task.add_to_other_config(ro, t, "xencenteruuid", "case differs: ordinary key"))
    vo = session_of(server, "vm-operator")
    t2 = ok(p.task.create(vo, "keys2", ""))
    ok(p.task.add_to_other_config(vo, t2, "XenCenterUUID", "u"))
    ok(p.task.remove_from_other_config(vo, t2, "XenCenterUUID"))


def test_set_other_config_diff_rule(server, root):
    p, s = root
    ro = session_of(server, "read-only")
    t = ok(p.task.create(ro, "diff", ""))
    ok(p.task.set_other_config(s, t, {"applies_to": "vm1", "plain": "1"}))  # root sets the protected key
    # read-only may pass the protected entry through unchanged while changing others
    ok(p.task.set_other_config(ro, t, {"applies_to": "vm1", "plain": "2"}))
    assert fail(p.task.set_other_config(ro, t, {"applies_to": "vm2", "plain": "2"}))[:2] == [
        "RBAC_PERMISSION_DENIED", "task.add_to_other_config/key:applies_to"]
    assert fail(p.task.set_other_config(ro, t, {"plain": "2"}))[:2] == [
        "RBAC_PERMISSION_DENIED", "task.remove_from_other_config/key:applies_to"]
    assert ok(p.task.get_other_config(ro, t)) == {"applies_to": "vm1", "plain": "2"}


def test_alias_names_are_for_the_local_superuser(server, root):
    p, s = root
    assert isinstance(ok(getattr(p, "task_get_all")(s)), list)
    admin = session_of(server, "pool-admin")
    desc = fail(getattr(p, "task_get_all")(admin))
    assert desc[:2] == ["RBAC_PERMISSION_DENIED", "task_get_all"]


def test_unknown_methods_go_through_the_extension_check(server, root):
    p, s = root
    assert fail(p.task.frobnicate()) == ["MESSAGE_METHOD_UNKNOWN", "task.frobnicate"]
    assert fail(p.task.frobnicate("OpaqueRef:bad")) == ["SESSION_INVALID", "OpaqueRef:bad"]
    assert fail(p.task.frobnicate(session_of(server, "read-only"))) == [
        "RBAC_PERMISSION_DENIED", "host.call_extension",
        "No permission in user session. (Roles with this permission: pool-admin)"]
    assert fail(p.task.frobnicate(s)) == ["MESSAGE_METHOD_UNKNOWN", "task.frobnicate"]
