"""task.*: every field and message, xapi's semantics (spec §4), filters, subtasks, pool/host."""

import xmlrpc.client

import pytest
import XenAPI

from harness import ROOT_PASSWORD, fail, ok, root, server, with_headers  # noqa: F401

TASK_FIELDS = [
    "uuid", "name_label", "name_description", "allowed_operations", "current_operations", "created",
    "finished", "status", "resident_on", "progress", "type", "result", "error_info", "other_config",
    "subtask_of", "subtasks", "backtrace",
]


@pytest.fixture
def sdk(server):
    s = XenAPI.Session(server.url)
    s.xenapi.login_with_password("root", ROOT_PASSWORD)
    yield s.xenapi
    s.xenapi.session.logout()


def test_new_task_record_is_xapis(sdk):
    t = sdk.task.create("label", "description")
    rec = sdk.task.get_record(t)
    assert list(rec.keys()) == TASK_FIELDS
    assert rec["name_label"] == "label" and rec["name_description"] == "description"
    assert rec["allowed_operations"] == [] and rec["current_operations"] == {}
    assert isinstance(rec["created"], xmlrpc.client.DateTime) and rec["created"].value.endswith("Z")
    assert rec["finished"].value == "19700101T00:00:00Z"
    assert rec["status"] == "pending"
    assert rec["resident_on"] == sdk.host.get_all()[0]
    assert rec["progress"] == 0.0 and isinstance(rec["progress"], float)
    assert rec["type"] == "<none/>" and rec["result"] == "" and rec["error_info"] == []
    assert rec["other_config"] == {} and rec["subtask_of"] == "OpaqueRef:NULL"
    assert rec["subtasks"] == [] and rec["backtrace"] == "()"
    for f in TASK_FIELDS:
        assert getattr(sdk.task, "get_" + f)(t) == rec[f], f
    assert sdk.task.get_by_uuid(rec["uuid"]) == t
    assert t in sdk.task.get_by_name_label("label")
    assert t in sdk.task.get_all()
    assert sdk.task.get_all_records()[t]["uuid"] == rec["uuid"]


def test_lookups_of_missing_objects(root):
    p, s = root
    assert fail(p.task.get_record(s, "OpaqueRef:nope")) == ["HANDLE_INVALID", "task", "OpaqueRef:nope"]
    assert fail(p.task.get_status(s, "garbage")) == ["HANDLE_INVALID", "task", "garbage"]
    assert fail(p.task.get_by_uuid(s, "00000000-0000-0000-0000-000000000000")) == [
        "UUID_INVALID", "task", "00000000-0000-0000-0000-000000000000"]
    assert ok(p.task.get_by_name_label(s, "no such label")) == []
    # Internal fields have no getters.
    assert fail(p.task.get_session(s, "x"))[0] == "MESSAGE_METHOD_UNKNOWN"


def test_setters_store_anything_and_touch_nothing_else(sdk):
    t = sdk.task.create("s", "")
    for status in ["success", "pending", "cancelling", "CANCELLED", "Failure"]:
        sdk.task.set_status(t, status)
        assert sdk.task.get_status(t) == status.lower()
    rec = sdk.task.get_record(t)
    # `finished` was stamped by the completion (deliberately unlike xapi, see
    # docs/architecture.md); progress is untouched.
    assert rec["finished"].value >= rec["created"].value and rec["progress"] == 0.0
    for v in [2.5, -1.0, 0.25]:
        sdk.task.set_progress(t, v)
        assert sdk.task.get_progress(t) == v
    sdk.task.set_result(t, "<value>OpaqueRef:x</value>")
    assert sdk.task.get_result(t) == "<value>OpaqueRef:x</value>"
    sdk.task.set_error_info(t, ["CODE", "p1", "p2"])
    assert sdk.task.get_error_info(t) == ["CODE", "p1", "p2"]


def test_type_errors_as_xapi(root):
    p, s = root
    t = ok(p.task.create(s, "types", ""))
    assert fail(p.task.set_progress(s, t, True)) == ["INTERNAL_ERROR", "Failure(\"Expected float, got 'B(true)'\")"]
    assert fail(p.task.set_status(s, t, "done")) == ["INTERNAL_ERROR", 'Failure("Unknown tag/contents")']
    assert fail(p.task.set_error_info(s, t, "x")) == ["INTERNAL_ERROR", "Failure(\"Expecting Rpc.Enum, but found 'S(x)'\")"]
    assert fail(p.task.create(s, 1, "")) == ["INTERNAL_ERROR", "Failure(\"Expected string, got 'I(1)'\")"]
    # ints and numeric strings are floats too
    ok(p.task.set_progress(s, t, 1))
    ok(p.task.set_progress(s, t, "0.5"))
    assert ok(p.task.get_progress(s, t)) == 0.5


def test_cancel_never_fails_and_only_records_the_request(sdk):
    t = sdk.task.create("c", "")
    sdk.task.cancel(t)
    ops = sdk.task.get_current_operations(t)
    assert list(ops.values()) == ["cancel"]
    assert sdk.task.get_status(t) == "pending"
    sdk.task.set_status(t, "success")
    sdk.task.cancel(t)  # completed: still no error
    assert sdk.task.get_status(t) == "success"


def test_destroy_semantics(root):
    p, s = root
    t = ok(p.task.create(s, "d", ""))
    ok(p.task.destroy(s, t))  # pending: only marked
    assert ok(p.task.get_current_operations(s, t)) == {"task": "destroy"}
    assert fail(p.task.destroy(s, t)) == ["MAP_DUPLICATE_KEY", "task", "current_operations", t, "task"]
    ok(p.task.cancel(s, t))  # replaces the whole map, the destroy marker is lost
    assert list(ok(p.task.get_current_operations(s, t)).values()) == ["cancel"]
    ok(p.task.set_status(s, t, "failure"))
    ok(p.task.destroy(s, t))  # completed: deleted at once
    assert fail(p.task.get_record(s, t)) == ["HANDLE_INVALID", "task", t]


def test_other_config(root):
    p, s = root
    t = ok(p.task.create(s, "oc", ""))
    ok(p.task.add_to_other_config(s, t, "k", "v"))
    assert fail(p.task.add_to_other_config(s, t, "k", "v")) == ["MAP_DUPLICATE_KEY", "task", "other_config", t, "k"]
    ok(p.task.remove_from_other_config(s, t, "missing"))
    ok(p.task.remove_from_other_config(s, t, "k"))
    ok(p.task.set_other_config(s, t, {"a": "1", "b": "2"}))
    assert ok(p.task.get_other_config(s, t)) == {"a": "1", "b": "2"}


def test_subtasks_from_headers(server, root):
    p, s = root
    parent = ok(p.task.create(s, "parent", ""))
    child = ok(with_headers(server, {"task-id": parent}).task.create(s, "child", ""))
    other = ok(with_headers(server, {"subtask-of": parent}).task.create(s, "child2", ""))
    assert ok(p.task.get_subtask_of(s, child)) == parent
    assert sorted(ok(p.task.get_subtasks(s, parent))) == sorted([child, other])
    assert fail(with_headers(server, {"subtask-of": "OpaqueRef:gone"}).task.create(s, "x", "")) == [
        "HANDLE_INVALID", "task", "OpaqueRef:gone"]
    ok(p.task.set_status(s, child, "success"))
    ok(p.task.destroy(s, child))
    assert ok(p.task.get_subtasks(s, parent)) == [other]
    ok(p.task.set_status(s, parent, "success"))
    ok(p.task.destroy(s, parent))
    assert ok(p.task.get_subtask_of(s, other)) == parent  # dangling, as in xapi


def test_filters(root):
    p, s = root
    a = ok(p.task.create(s, "filter-a", ""))
    b = ok(p.task.create(s, "filter-b", ""))
    ok(p.task.set_status(s, b, "success"))
    ok(p.task.set_progress(s, b, 0.5))
    where = lambda e: ok(p.task.get_all_records_where(s, e))  # noqa: E731
    assert set(where('field "name__label" = "filter-a"')) == {a}
    assert set(where('field "name__label" = "filter-b" and not (field "status" = "pending")')) == {b}
    assert set(where('field "progress" = "0.5" and field "name__label" = "filter-b"')) == {b}
    assert set(where(f'field "_ref" = "{a}"')) == {a}
    assert a in where('field "session" = "%s"' % s)
    assert where("false") == {}
    assert {a, b} <= set(where("true"))
    assert set(ok(p.task.get_all_where(s, 'field "name__label" = "filter-a"'))) == {a}
    assert where('field "name__label" = "filter-a"')[a]["name_label"] == "filter-a"
    assert fail(p.task.get_all_where(s, "field")) == ["INVALID_VALUE", "field", "Stdlib.Parsing.Parse_error"]
    assert fail(p.task.get_all_where(s, "TRUE")) == ["INVALID_VALUE", "TRUE", 'Failure("lexing: empty token")']
    assert fail(p.task.get_all_where(s, 'field "nope" = "x"')) == ["INTERNAL_ERROR", "missing field", "nope", ""]


def test_pool_and_host_singletons(sdk):
    pools = sdk.pool.get_all()
    hosts = sdk.host.get_all()
    assert len(pools) == 1 and len(hosts) == 1
    pool = sdk.pool.get_record(pools[0])
    assert sdk.pool.get_master(pools[0]) == hosts[0] == pool["master"]
    assert sdk.pool.get_by_uuid(pool["uuid"]) == pools[0]
    assert list(sdk.pool.get_all_records().keys()) == pools
    host = sdk.host.get_record(hosts[0])
    assert host["API_version_major"] == "2" and host["API_version_minor"] == "23"
    assert sdk.host.get_API_version_major(hosts[0]) == "2"
    assert host["enabled"] is True
    assert sdk.host.get_by_name_label(host["name_label"]) == hosts
