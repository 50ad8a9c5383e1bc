"""task class: record, getters, lookups, setters, cancel, destroy, other_config.

xapi sources: ocaml/idl/datamodel.ml (module Task), ocaml/xapi/xapi_task.ml,
ocaml/xapi/taskHelper.ml (make, status_is_completed), ocaml/xapi/exnHelper.ml (error
mapping), mirage/ocaml-rpc src/lib/rpc.ml (unmarshal errors); spec §4, §7, §9.
"""

import datetime
import xmlrpc.client

import pytest

from conftest import (
    ANY_UUID,
    Re,
    UUID_RE,
    call_raw,
    fail,
    header_proxy,
    ok,
    random_ref,
    unique,
)

TASK_FIELDS = [
    "uuid",
    "name_label",
    "name_description",
    "allowed_operations",
    "current_operations",
    "created",
    "finished",
    "status",
    "resident_on",
    "progress",
    "type",
    "result",
    "error_info",
    "other_config",
    "subtask_of",
    "subtasks",
    "backtrace",
]

# The key task.cancel writes: the ref of the cancel call's own (dummy) task,
# Ref.string_of (Dummy (uuid, "task.cancel")) in ocaml/xapi-types/ref.ml.
CANCEL_KEY = Re(r"DummyRef:\|" + UUID_RE + r"\|task\.cancel")


def ops(m):
    """current_operations with a cancel call's DummyRef key replaced by "<cancel-key>"."""
    return {("<cancel-key>" if k == CANCEL_KEY else k): v for k, v in m.items()}


def status_of(proxy, s, t):
    return ok(proxy.task.get_status(s, t))


# ------------------------------------------------------------------- record


def test_new_task_record(proxy, root, host_ref):
    before = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
    label = unique("label")
    t = ok(proxy.task.create(root, label, "a description"))
    rec = ok(proxy.task.get_record(root, t))
    assert list(rec) == TASK_FIELDS
    assert rec["uuid"] == ANY_UUID
    assert rec["name_label"] == label
    assert rec["name_description"] == "a description"
    assert rec["allowed_operations"] == []
    assert rec["current_operations"] == {}
    assert isinstance(rec["created"], xmlrpc.client.DateTime)
    assert rec["created"].value == Re(r"\d{8}T\d{2}:\d{2}:\d{2}Z")
    created = datetime.datetime.strptime(rec["created"].value, "%Y%m%dT%H:%M:%SZ").replace(
        tzinfo=datetime.timezone.utc
    )
    assert before - datetime.timedelta(seconds=5) <= created <= before + datetime.timedelta(seconds=60)
    assert isinstance(rec["finished"], xmlrpc.client.DateTime)
    assert rec["finished"].value == "19700101T00:00:00Z"
    assert rec["status"] == "pending"
    assert rec["resident_on"] == host_ref
    assert isinstance(rec["progress"], float) and rec["progress"] == 0.0
    assert rec["type"] == "<none/>"
    assert rec["result"] == ""
    assert rec["error_info"] == []
    assert rec["other_config"] == {}
    assert rec["subtask_of"] == "OpaqueRef:NULL"
    assert rec["subtasks"] == []
    assert rec["backtrace"] == "()"


def test_create_with_empty_strings(proxy, root):
    t = ok(proxy.task.create(root, "", ""))
    rec = ok(proxy.task.get_record(root, t))
    assert rec["name_label"] == "" and rec["name_description"] == ""


def test_create_keeps_unicode(proxy, root):
    label = "t\u00e2che \u2603 \U0001f600 <&>\"'"
    t = ok(proxy.task.create(root, label, "d\u00e9"))
    assert ok(proxy.task.get_name_label(root, t)) == label
    assert ok(proxy.task.get_name_description(root, t)) == "d\u00e9"


@pytest.fixture(scope="module")
def busy_task(sessions):
    """A task with every field away from its default (that the API can change)."""
    p, s = sessions.proxy, sessions["root"]
    parent = ok(p.task.create(s, unique("parent"), ""))
    t = ok(header_proxy(sessions.url, {"task-id": parent}).task.create(s, unique("busy"), "desc"))
    ok(p.task.set_progress(s, t, 0.25))
    ok(p.task.set_result(s, t, "<value>r</value>"))
    ok(p.task.set_error_info(s, t, ["CODE", "p1"]))
    ok(p.task.add_to_other_config(s, t, "k", "v"))
    ok(p.task.cancel(s, t))
    ok(p.task.set_status(s, t, "failure"))
    return t


@pytest.mark.parametrize("field", TASK_FIELDS)
def test_task_getter_equals_record_field(proxy, root, busy_task, field):
    rec = ok(proxy.task.get_record(root, busy_task))
    got = ok(call_raw(proxy, "task.get_" + field, root, busy_task))
    if isinstance(got, xmlrpc.client.DateTime):
        assert got.value == rec[field].value
    else:
        assert got == rec[field]
        assert type(got) is type(rec[field])


def test_busy_task_record(proxy, root, busy_task):
    rec = ok(proxy.task.get_record(root, busy_task))
    assert rec["progress"] == 0.25
    assert rec["result"] == "<value>r</value>"
    assert rec["error_info"] == ["CODE", "p1"]
    assert rec["other_config"] == {"k": "v"}
    assert rec["status"] == "failure"
    assert list(rec["current_operations"].values()) == ["cancel"]
    assert rec["subtask_of"] != "OpaqueRef:NULL"
    # Deliberately unlike xapi: set_status to a completed status stamps `finished`
    # (docs/architecture.md, differences).
    assert rec["finished"].value >= rec["created"].value


@pytest.mark.parametrize("field", TASK_FIELDS + ["record"])
@pytest.mark.parametrize("bad", ["ref", "OpaqueRef:NULL", "not-a-ref", ""])
def test_getter_on_bad_ref_is_handle_invalid(proxy, root, field, bad):
    ref = random_ref() if bad == "ref" else bad
    assert call_raw(proxy, "task.get_" + field, root, ref) == fail("HANDLE_INVALID", "task", ref)


def test_getter_on_a_session_ref_is_handle_invalid(proxy, root):
    assert proxy.task.get_record(root, root) == fail("HANDLE_INVALID", "task", root)


# ------------------------------------------------------------------- lookups


def test_get_by_uuid(proxy, root, new_task):
    t = new_task()
    u = ok(proxy.task.get_uuid(root, t))
    assert ok(proxy.task.get_by_uuid(root, u)) == t


@pytest.mark.parametrize("u", ["3d2b1a90-0000-4000-8000-000000000000", "not-a-uuid", ""])
def test_get_by_uuid_unknown(proxy, root, u):
    assert proxy.task.get_by_uuid(root, u) == fail("UUID_INVALID", "task", u)


def test_get_by_uuid_of_a_session_is_uuid_invalid(proxy, root):
    u = ok(proxy.session.get_uuid(root, root))
    assert proxy.task.get_by_uuid(root, u) == fail("UUID_INVALID", "task", u)


def test_get_by_name_label(proxy, root, new_task):
    label = unique("same")
    a = new_task(label=label)
    b = new_task(label=label)
    new_task(label=label + "-longer")
    new_task(label=label.upper())
    assert sorted(ok(proxy.task.get_by_name_label(root, label))) == sorted([a, b])
    assert ok(proxy.task.get_by_name_label(root, unique("nothing"))) == []
    assert ok(proxy.task.get_by_name_label(root, label[:-1])) == []


def test_get_all_and_get_all_records(proxy, root, new_task):
    a, b = new_task(), new_task()
    refs = ok(proxy.task.get_all(root))
    assert a in refs and b in refs
    assert len(refs) == len(set(refs))
    recs = ok(proxy.task.get_all_records(root))
    assert set(recs) == set(refs)
    ra = ok(proxy.task.get_record(root, a))
    assert recs[a]["uuid"] == ra["uuid"]
    assert list(recs[a]) == TASK_FIELDS
    assert recs[a]["name_label"] == ra["name_label"]
    ok(proxy.task.set_status(root, a, "success"))
    ok(proxy.task.destroy(root, a))
    refs = ok(proxy.task.get_all(root))
    assert a not in refs and b in refs
    assert a not in ok(proxy.task.get_all_records(root))


def test_get_all_includes_other_users_tasks(proxy, sessions):
    ro = sessions["read-only"]
    t = ok(proxy.task.create(sessions["vm-admin"], unique(), ""))
    assert t in ok(proxy.task.get_all(ro))
    assert ok(proxy.task.get_record(ro, t))["status"] == "pending"


# ------------------------------------------------------------------ setters


def test_set_status_any_transition(proxy, root, new_task):
    t = new_task()
    ok(proxy.task.set_progress(root, t, 0.4))
    finished = "19700101T00:00:00Z"
    previous = "pending"
    for st in ["success", "pending", "cancelling", "cancelled", "failure", "pending", "success"]:
        assert ok(proxy.task.set_status(root, t, st)) == ""
        rec = ok(proxy.task.get_record(root, t))
        assert rec["status"] == st
        # set_status writes the status and, deliberately unlike xapi (which leaves the
        # epoch), stamps `finished` when the task goes from unfinished to completed
        # (docs/architecture.md); any other change keeps `finished` as it was.
        completes = previous in ("pending", "cancelling") and st in ("success", "failure", "cancelled")
        if completes:
            assert rec["finished"].value >= max(finished, rec["created"].value)
        else:
            assert rec["finished"].value == finished
        finished, previous = rec["finished"].value, st
        assert rec["progress"] == 0.4
        assert rec["allowed_operations"] == []
        assert rec["current_operations"] == {}
        assert rec["result"] == ""
        assert rec["error_info"] == []


@pytest.mark.parametrize("given,stored", [("SUCCESS", "success"), ("Pending", "pending"),
                                          ("cAnCeLlEd", "cancelled")])
def test_set_status_is_case_insensitive(proxy, root, new_task, given, stored):
    t = new_task()
    ok(proxy.task.set_status(root, t, given))
    assert status_of(proxy, root, t) == stored


@pytest.mark.parametrize("value", ["done", "", "success ", 1, True])
def test_set_status_unknown_value(proxy, root, new_task, value):
    t = new_task()
    assert proxy.task.set_status(root, t, value) == fail("INTERNAL_ERROR", 'Failure("Unknown tag/contents")')
    assert status_of(proxy, root, t) == "pending"


@pytest.mark.parametrize("value", [0.5, 2.5, -1.0, 1e21, 0.1])
def test_set_progress_no_range_check(proxy, root, new_task, value):
    t = new_task()
    assert ok(proxy.task.set_progress(root, t, value)) == ""
    rec = ok(proxy.task.get_record(root, t))
    assert rec["progress"] == value
    assert rec["status"] == "pending"


@pytest.mark.parametrize("value,stored", [(1, 1.0), (-3, -3.0), ("0.75", 0.75)])
def test_set_progress_accepts_int_and_numeric_string(proxy, root, new_task, value, stored):
    # rpc.ml float_of_rpc: Float | Int | Int32 | String (float_of_string)
    t = new_task()
    ok(proxy.task.set_progress(root, t, value))
    got = ok(proxy.task.get_progress(root, t))
    assert isinstance(got, float) and got == stored


def test_set_progress_bool_is_internal_error(proxy, root, new_task):
    t = new_task()
    assert proxy.task.set_progress(root, t, True) == fail(
        "INTERNAL_ERROR", "Failure(\"Expected float, got 'B(true)'\")"
    )
    assert ok(proxy.task.get_progress(root, t)) == 0.0


def test_set_progress_array_is_internal_error(proxy, root, new_task):
    t = new_task()
    assert proxy.task.set_progress(root, t, ["a"]) == fail(
        "INTERNAL_ERROR", "Failure(\"Expected float, got '[S(a)]'\")"
    )


def test_set_result(proxy, root, new_task):
    t = new_task()
    for v in ["<value>OpaqueRef:x</value>", "", "plain \u00e9 text"]:
        ok(proxy.task.set_result(root, t, v))
        assert ok(proxy.task.get_result(root, t)) == v
    assert status_of(proxy, root, t) == "pending"


def test_set_error_info(proxy, root, new_task):
    t = new_task()
    ok(proxy.task.set_error_info(root, t, ["VM_BAD_POWER_STATE", "OpaqueRef:x", "halted", "running"]))
    assert ok(proxy.task.get_error_info(root, t)) == ["VM_BAD_POWER_STATE", "OpaqueRef:x", "halted", "running"]
    ok(proxy.task.set_error_info(root, t, []))
    assert ok(proxy.task.get_error_info(root, t)) == []
    assert status_of(proxy, root, t) == "pending"


def test_set_error_info_wrong_type(proxy, root, new_task):
    t = new_task()
    assert proxy.task.set_error_info(root, t, "x") == fail(
        "INTERNAL_ERROR", "Failure(\"Expecting Rpc.Enum, but found 'S(x)'\")"
    )


def test_create_wrong_types(proxy, root):
    assert proxy.task.create(root, 5, "d") == fail("INTERNAL_ERROR", "Failure(\"Expected string, got 'I(5)'\")")
    assert proxy.task.create(root, "l", True) == fail(
        "INTERNAL_ERROR", "Failure(\"Expected string, got 'B(true)'\")"
    )
    assert proxy.task.create(root, 1.5, "d") == fail(
        "INTERNAL_ERROR", "Failure(\"Expected string, got 'F(1.5)'\")"
    )


def test_ref_param_with_wrong_type(proxy, root):
    assert proxy.task.get_record(root, 7) == fail("INTERNAL_ERROR", "Failure(\"Expected string, got 'I(7)'\")")


# ------------------------------------------------------------------- cancel


def test_cancel_pending_task(proxy, root, new_task):
    t = new_task()
    assert ok(proxy.task.cancel(root, t)) == ""
    rec = ok(proxy.task.get_record(root, t))
    assert rec["status"] == "pending"
    assert ops(rec["current_operations"]) == {"<cancel-key>": "cancel"}
    assert rec["allowed_operations"] == []
    assert rec["finished"].value == "19700101T00:00:00Z"


@pytest.mark.parametrize("status", ["success", "failure", "cancelled", "cancelling"])
def test_cancel_never_fails_on_state(proxy, root, new_task, status):
    t = new_task()
    ok(proxy.task.set_status(root, t, status))
    assert ok(proxy.task.cancel(root, t)) == ""
    rec = ok(proxy.task.get_record(root, t))
    assert rec["status"] == status
    assert list(rec["current_operations"].values()) == ["cancel"]


def test_cancel_twice_replaces_the_map(proxy, root, new_task):
    t = new_task()
    ok(proxy.task.cancel(root, t))
    first = ok(proxy.task.get_current_operations(root, t))
    ok(proxy.task.cancel(root, t))
    second = ok(proxy.task.get_current_operations(root, t))
    assert len(first) == 1 and len(second) == 1
    assert ops(second) == {"<cancel-key>": "cancel"}
    assert list(first) != list(second)  # a new dummy task per call


# ------------------------------------------------------------------ destroy


@pytest.mark.parametrize("status", ["success", "failure", "cancelled"])
def test_destroy_completed_task_deletes_it(proxy, root, new_task, status):
    t = new_task()
    ok(proxy.task.set_status(root, t, status))
    assert ok(proxy.task.destroy(root, t)) == ""
    assert proxy.task.get_record(root, t) == fail("HANDLE_INVALID", "task", t)
    assert t not in ok(proxy.task.get_all(root))
    assert proxy.task.destroy(root, t) == fail("HANDLE_INVALID", "task", t)


@pytest.mark.parametrize("status", ["pending", "cancelling"])
def test_destroy_unfinished_task_only_marks_it(proxy, root, new_task, status):
    t = new_task()
    ok(proxy.task.set_status(root, t, status))
    assert ok(proxy.task.destroy(root, t)) == ""
    rec = ok(proxy.task.get_record(root, t))
    assert rec["status"] == status
    assert rec["current_operations"] == {"task": "destroy"}
    assert proxy.task.destroy(root, t) == fail("MAP_DUPLICATE_KEY", "task", "current_operations", t, "task")
    assert ok(proxy.task.get_current_operations(root, t)) == {"task": "destroy"}


def test_destroy_after_cancel_adds_to_the_map(proxy, root, new_task):
    t = new_task()
    ok(proxy.task.cancel(root, t))
    ok(proxy.task.destroy(root, t))
    assert ops(ok(proxy.task.get_current_operations(root, t))) == {"<cancel-key>": "cancel", "task": "destroy"}


def test_cancel_after_destroy_replaces_the_map(proxy, root, new_task):
    t = new_task()
    ok(proxy.task.destroy(root, t))
    ok(proxy.task.cancel(root, t))
    assert ops(ok(proxy.task.get_current_operations(root, t))) == {"<cancel-key>": "cancel"}
    # the marker is gone, so destroy can add it again
    ok(proxy.task.destroy(root, t))
    assert ops(ok(proxy.task.get_current_operations(root, t))) == {"<cancel-key>": "cancel", "task": "destroy"}


def test_marked_task_is_deleted_by_destroy_once_completed(proxy, root, new_task):
    t = new_task()
    ok(proxy.task.destroy(root, t))
    ok(proxy.task.set_status(root, t, "success"))
    ok(proxy.task.destroy(root, t))
    assert proxy.task.get_status(root, t) == fail("HANDLE_INVALID", "task", t)


# ------------------------------------------------------------- other_config


def test_other_config_add_remove_set(proxy, root, new_task):
    t = new_task()
    assert ok(proxy.task.add_to_other_config(root, t, "a", "1")) == ""
    ok(proxy.task.add_to_other_config(root, t, "b", "2"))
    assert ok(proxy.task.get_other_config(root, t)) == {"a": "1", "b": "2"}
    assert proxy.task.add_to_other_config(root, t, "a", "9") == fail(
        "MAP_DUPLICATE_KEY", "task", "other_config", t, "a"
    )
    # even with the same value
    assert proxy.task.add_to_other_config(root, t, "a", "1") == fail(
        "MAP_DUPLICATE_KEY", "task", "other_config", t, "a"
    )
    assert ok(proxy.task.remove_from_other_config(root, t, "a")) == ""
    assert ok(proxy.task.remove_from_other_config(root, t, "missing")) == ""
    assert ok(proxy.task.get_other_config(root, t)) == {"b": "2"}
    assert ok(proxy.task.set_other_config(root, t, {"x": "y", "z": "\u00e9"})) == ""
    assert ok(proxy.task.get_other_config(root, t)) == {"x": "y", "z": "\u00e9"}
    ok(proxy.task.set_other_config(root, t, {}))
    assert ok(proxy.task.get_other_config(root, t)) == {}


def test_other_config_on_completed_task(proxy, root, new_task):
    t = new_task()
    ok(proxy.task.set_status(root, t, "success"))
    ok(proxy.task.add_to_other_config(root, t, "after", "done"))
    assert ok(proxy.task.get_other_config(root, t)) == {"after": "done"}


def test_set_other_config_wrong_type(proxy, root, new_task):
    t = new_task()
    assert proxy.task.set_other_config(root, t, "x") == fail(
        "INTERNAL_ERROR", "Failure(\"Expecting Rpc.Dict, but found 'S(x)'\")"
    )


def test_other_config_on_bad_ref(proxy, root):
    bad = random_ref()
    assert proxy.task.add_to_other_config(root, bad, "k", "v") == fail("HANDLE_INVALID", "task", bad)
    assert proxy.task.remove_from_other_config(root, bad, "k") == fail("HANDLE_INVALID", "task", bad)
    assert proxy.task.set_other_config(root, bad, {}) == fail("HANDLE_INVALID", "task", bad)


# ------------------------------------------------------------ bad refs


@pytest.mark.parametrize(
    "method,args",
    [
        ("task.destroy", ()),
        ("task.cancel", ()),
        ("task.set_status", ("success",)),
        ("task.set_progress", (0.5,)),
        ("task.set_result", ("r",)),
        ("task.set_error_info", (["e"],)),
    ],
)
def test_mutators_on_bad_ref_as_root(proxy, root, method, args):
    bad = random_ref()
    assert call_raw(proxy, method, root, bad, *args) == fail("HANDLE_INVALID", "task", bad)


# ------------------------------------------------------------ async variants


@pytest.mark.parametrize(
    "method,args",
    [
        ("task.get_record", ("REF",)),
        ("task.get_status", ("REF",)),
        ("task.get_all", ()),
        ("task.get_all_records_where", ("true",)),
        ("task.create", ("l", "d")),
        ("task.destroy", ("REF",)),
        ("task.set_status", ("REF", "success")),
        ("task.set_progress", ("REF", 0.5)),
        ("task.set_result", ("REF", "r")),
        ("task.set_error_info", ("REF", [])),
        ("session.get_record", ("SELF",)),
    ],
)
def test_async_of_message_without_async_variant(proxy, root, new_task, method, args):
    t = new_task()
    args = tuple(t if a == "REF" else root if a == "SELF" else a for a in args)
    before = ok(proxy.task.get_record(root, t))
    assert call_raw(proxy, "Async." + method, root, *args) == fail(
        "Fault", f"No async mode for this operation (rpc: {method})"
    )
    # nothing happened
    after = ok(proxy.task.get_record(root, t))
    assert after["status"] == before["status"] and after["progress"] == before["progress"]
    assert after["result"] == before["result"]


# ------------------------------------------------------- map order and keys
#
# ocaml/database/db_cache_types.ml add_to_map:
#   Schema.Value.Pairs ((key, value) :: List.filter (fun (k, _) -> k <> key) t)
# (gen_db_actions.ml uses it, via AddMapLegacy, for every add_to_<map>): a new entry goes
# to the FRONT of the stored list, and maps are written out in stored order.


def test_add_to_other_config_puts_the_new_entry_first(proxy, root, new_task):
    t = new_task()
    for k, v in [("k", "v"), ("k2", "v2"), ("a", "1")]:
        ok(proxy.task.add_to_other_config(root, t, k, v))
    assert list(ok(proxy.task.get_other_config(root, t)).items()) == [("a", "1"), ("k2", "v2"), ("k", "v")]
    assert list(ok(proxy.task.get_record(root, t))["other_config"].items()) == [
        ("a", "1"), ("k2", "v2"), ("k", "v")]


def test_set_other_config_keeps_the_given_order(proxy, root, new_task):
    t = new_task()
    ok(proxy.task.set_other_config(root, t, {"z": "1", "b": "2", "m": "3"}))
    assert list(ok(proxy.task.get_other_config(root, t)).items()) == [("z", "1"), ("b", "2"), ("m", "3")]
    ok(proxy.task.remove_from_other_config(root, t, "b"))
    assert list(ok(proxy.task.get_other_config(root, t)).items()) == [("z", "1"), ("m", "3")]


def test_re_added_key_moves_to_the_front(proxy, root, new_task):
    t = new_task()
    ok(proxy.task.set_other_config(root, t, {"z": "1", "b": "2", "m": "3"}))
    ok(proxy.task.remove_from_other_config(root, t, "b"))
    ok(proxy.task.add_to_other_config(root, t, "b", "9"))
    assert list(ok(proxy.task.get_other_config(root, t)).items()) == [("b", "9"), ("z", "1"), ("m", "3")]


def test_destroy_marker_goes_before_the_cancel_entry(proxy, root, new_task):
    t = new_task()
    ok(proxy.task.cancel(root, t))
    ok(proxy.task.destroy(root, t))
    assert list(ops(ok(proxy.task.get_current_operations(root, t))).items()) == [
        ("task", "destroy"), ("<cancel-key>", "cancel")]


def test_empty_map_key_exact_error(proxy, root, new_task):
    # Db_exn (library xapi_schema, wrapped false): Printexc gives "Db_exn.Empty_key_in_map"
    t = new_task()
    assert proxy.task.add_to_other_config(root, t, "", "v") == fail("INTERNAL_ERROR", "Db_exn.Empty_key_in_map")
    assert proxy.task.set_other_config(root, t, {"": "v"}) == fail("INTERNAL_ERROR", "Db_exn.Empty_key_in_map")
    assert ok(proxy.task.get_other_config(root, t)) == {}
