"""Subtasks through the HTTP headers `task-id` and `subtask-of`.

xapi: ocaml/xapi/context.ml (of_http_req: a `task-id` header makes the call run inside
that task, from_forwarded_task looks its name up in the DB, so a missing task is
HANDLE_INVALID), ocaml/xapi/xapi_task.ml (create: subtask_of = the call's task),
ocaml/xapi/xapi_task.ml (destroy does not cascade); spec §1.6, §4.3, §4.5.

`subtask-of` on task.create is a documented extension of this server (docs/architecture.md,
"Differences from xapi"): xapi only honours it for tasks it creates for Async calls.
"""

import pytest

from conftest import fail, header_proxy, ok, random_ref, unique


def complete(proxy, s, t):
    ok(proxy.task.set_status(s, t, "success"))


@pytest.mark.parametrize("header", ["task-id", "subtask-of", "Task-Id"])
def test_header_makes_a_subtask(url, proxy, root, new_task, header):
    parent = new_task()
    child = ok(header_proxy(url, {header: parent}).task.create(root, unique("child"), ""))
    assert ok(proxy.task.get_subtask_of(root, child)) == parent
    assert ok(proxy.task.get_subtasks(root, parent)) == [child]
    assert ok(proxy.task.get_record(root, parent))["subtasks"] == [child]
    # the parent itself is untouched otherwise
    assert ok(proxy.task.get_subtask_of(root, parent)) == "OpaqueRef:NULL"
    assert ok(proxy.task.get_status(root, parent)) == "pending"


def test_several_children_and_grandchildren(url, proxy, root, new_task):
    parent = new_task()
    hp = header_proxy(url, {"task-id": parent})
    c1 = ok(hp.task.create(root, unique("c1"), ""))
    c2 = ok(hp.task.create(root, unique("c2"), ""))
    grandchild = ok(header_proxy(url, {"task-id": c1}).task.create(root, unique("gc"), ""))
    assert sorted(ok(proxy.task.get_subtasks(root, parent))) == sorted([c1, c2])
    assert ok(proxy.task.get_subtasks(root, c1)) == [grandchild]
    assert ok(proxy.task.get_subtasks(root, c2)) == []
    assert ok(proxy.task.get_subtask_of(root, grandchild)) == c1


def test_child_belongs_to_the_calling_session(url, proxy, sessions, root, new_task):
    parent = new_task()
    ro = sessions["read-only"]
    child = ok(header_proxy(url, {"task-id": parent}).task.create(ro, unique(), ""))
    # the read-only user owns the child: it may modify it
    ok(proxy.task.set_progress(ro, child, 0.5))
    assert ok(proxy.task.get_subtask_of(ro, child)) == parent


def test_destroying_the_child_removes_it_from_subtasks(url, proxy, root, new_task):
    parent = new_task()
    hp = header_proxy(url, {"task-id": parent})
    c1 = ok(hp.task.create(root, unique(), ""))
    c2 = ok(hp.task.create(root, unique(), ""))
    complete(proxy, root, c1)
    ok(proxy.task.destroy(root, c1))
    assert ok(proxy.task.get_subtasks(root, parent)) == [c2]


def test_destroying_a_pending_child_keeps_it(url, proxy, root, new_task):
    parent = new_task()
    child = ok(header_proxy(url, {"task-id": parent}).task.create(root, unique(), ""))
    ok(proxy.task.destroy(root, child))
    assert ok(proxy.task.get_subtasks(root, parent)) == [child]


def test_destroying_the_parent_leaves_the_child_dangling(url, proxy, root, new_task):
    parent = new_task()
    child = ok(header_proxy(url, {"task-id": parent}).task.create(root, unique(), ""))
    complete(proxy, root, parent)
    ok(proxy.task.destroy(root, parent))
    assert proxy.task.get_record(root, parent) == fail("HANDLE_INVALID", "task", parent)
    # no cascade: the child lives on and still points at the vanished parent
    rec = ok(proxy.task.get_record(root, child))
    assert rec["subtask_of"] == parent
    assert rec["status"] == "pending"


@pytest.mark.parametrize("header", ["task-id", "subtask-of"])
def test_nonexistent_parent_is_handle_invalid(url, proxy, root, header):
    bad = random_ref()
    label = unique("orphan")
    assert header_proxy(url, {header: bad}).task.create(root, label, "") == fail("HANDLE_INVALID", "task", bad)
    assert ok(proxy.task.get_by_name_label(root, label)) == []


def test_no_header_means_null_parent(proxy, root, new_task):
    t = new_task()
    assert ok(proxy.task.get_subtask_of(root, t)) == "OpaqueRef:NULL"
    assert ok(proxy.task.get_subtasks(root, t)) == []


def test_headers_on_other_calls_do_not_create_tasks(url, proxy, root, new_task):
    parent = new_task()
    hp = header_proxy(url, {"task-id": parent})
    assert ok(hp.task.get_status(root, parent)) == "pending"
    ok(hp.task.set_progress(root, parent, 0.5))
    assert ok(proxy.task.get_subtasks(root, parent)) == []
    assert ok(proxy.task.get_progress(root, parent)) == 0.5


# ---------------------------------------------------------------------------------------
# `task-id` on calls other than task.create. Context.of_http_req runs for every dispatched
# call (server_helpers.ml do_dispatch) and, when the header is present, builds the context
# with from_forwarded_task, which reads the task's name_label from the DB.


def test_nonexistent_task_id_header_fails_any_call(url, root):
    bad = random_ref()
    hp = header_proxy(url, {"task-id": bad})
    assert hp.task.get_all(root) == fail("HANDLE_INVALID", "task", bad)
    from conftest import ROOT_PASSWORD

    assert hp.session.login_with_password("root", ROOT_PASSWORD) == fail("HANDLE_INVALID", "task", bad)


def test_null_task_id_header_is_handle_invalid(url, proxy, root):
    # Ref.of_string "OpaqueRef:NULL" is Null, not a dummy: the DB lookup of its name fails
    label = unique("nullparent")
    assert header_proxy(url, {"task-id": "OpaqueRef:NULL"}).task.create(root, label, "") == fail(
        "HANDLE_INVALID", "task", "OpaqueRef:NULL"
    )
    assert ok(proxy.task.get_by_name_label(root, label)) == []


def test_cancel_inside_a_task_uses_that_task_as_key(url, proxy, root, new_task):
    # xapi_task.ml cancel: current_operations := [(Ref.string_of (Context.get_task_id __context), `cancel)]
    t = new_task()
    caller = new_task()
    ok(header_proxy(url, {"task-id": caller}).task.cancel(root, t))
    assert ok(proxy.task.get_current_operations(root, t)) == {caller: "cancel"}


def test_a_task_id_header_does_not_grant_ownership(url, proxy, sessions, root, new_task):
    # Deliberate difference from xapi: taskHelper.ml assert_op_valid treats the task a call
    # runs in (`Context.get_task_id __context = task_id`) as owned, so in xapi anyone who
    # knows a task ref can act on it by sending `task-id: <ref>`. xapi-taskd keeps the
    # ownership rule (docs/architecture.md, "Differences from xapi").
    t = new_task()
    ro = sessions["read-only"]
    denied = fail(
        "RBAC_PERMISSION_DENIED", "task.destroy/any",
        "No permission in user session. (Roles with this permission: pool-admin, pool-operator)")
    assert proxy.task.set_progress(ro, t, 0.5) == denied
    assert header_proxy(url, {"task-id": t}).task.set_progress(ro, t, 0.5) == denied
    assert ok(proxy.task.get_progress(root, t)) == 0.0


def test_http_other_config_headers_are_not_applied_by_task_create(url, proxy, root):
    # xapi_task.ml create calls Context.make without http_other_config (spec §4.3)
    t = ok(header_proxy(url, {"x-http-other-config-foo": "bar"}).task.create(root, unique(), ""))
    assert ok(proxy.task.get_other_config(root, t)) == {}
