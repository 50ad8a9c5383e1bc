"""task.get_all_records_where / task.get_all_where and the filter language.

xapi: ocaml/database/db_filter_lex.mll, db_filter_parse.mly (grammar; `and`/`or` have
equal precedence, left-associative), db_filter.ml (Expression_error), ocaml/xapi/
exnHelper.ml (INVALID_VALUE [expr; Printexc.to_string exn]), ocaml/database/
db_cache_types.ml ("missing field"), gen_db_actions.ml (DB string forms); spec §4.8, §2.
"""

import pytest

from conftest import fail, ok, unique


def where(proxy, s, expr):
    return ok(proxy.task.get_all_records_where(s, expr))


def where_refs(proxy, s, expr):
    return ok(proxy.task.get_all_where(s, expr))


@pytest.fixture
def trio(proxy, root):
    """Three tasks with one fresh label: pending, success, and pending with progress 0.5."""
    label = unique("flt")
    a = ok(proxy.task.create(root, label, "A"))
    b = ok(proxy.task.create(root, label, "B"))
    c = ok(proxy.task.create(root, label, "C"))
    ok(proxy.task.set_status(root, b, "success"))
    ok(proxy.task.set_progress(root, c, 0.5))
    return label, a, b, c


def test_status_pending(proxy, root, trio):
    label, a, b, c = trio
    recs = where(proxy, root, 'field "status" = "pending"')
    assert a in recs and c in recs and b not in recs
    assert all(r["status"] == "pending" for r in recs.values())
    assert recs[a] == ok(proxy.task.get_record(root, a))


def test_label_and_not_pending(proxy, root, trio):
    label, a, b, c = trio
    expr = f'field "name__label" = "{label}" and not (field "status" = "pending")'
    assert list(where(proxy, root, expr)) == [b]
    assert where_refs(proxy, root, expr) == [b]


def test_label_only(proxy, root, trio):
    label, a, b, c = trio
    assert sorted(where_refs(proxy, root, f'field "name__label" = "{label}"')) == sorted([a, b, c])
    assert sorted(where(proxy, root, f'field "name__label" = "{label}"')) == sorted([a, b, c])


def test_true_and_false(proxy, root, trio):
    everything = where(proxy, root, "true")
    assert set(everything) == set(ok(proxy.task.get_all(root)))
    assert set(where_refs(proxy, root, "true")) == set(everything)
    assert where(proxy, root, "false") == {}
    assert where_refs(proxy, root, "false") == []


def test_progress_uses_db_string_form(proxy, root, trio):
    label, a, b, c = trio
    lab = f'field "name__label" = "{label}"'
    assert where_refs(proxy, root, f'{lab} and field "progress" = "0.5"') == [c]
    assert where_refs(proxy, root, f'{lab} and field "progress" = "0.50"') == []
    # %0.18g: 0 and 1 have no fraction, 0.1 shows its binary expansion
    assert sorted(where_refs(proxy, root, f'{lab} and field "progress" = "0"')) == sorted([a, b])
    ok(proxy.task.set_progress(root, a, 1.0))
    ok(proxy.task.set_progress(root, b, 0.1))
    assert where_refs(proxy, root, f'{lab} and field "progress" = "1"') == [a]
    assert where_refs(proxy, root, f'{lab} and field "progress" = "0.100000000000000006"') == [b]


def test_ref_column(proxy, root, trio):
    label, a, b, c = trio
    assert list(where(proxy, root, f'field "_ref" = "{a}"')) == [a]
    assert where_refs(proxy, root, f'field "_ref" = "{b}"') == [b]


def test_uuid_column(proxy, root, trio):
    label, a, b, c = trio
    u = ok(proxy.task.get_uuid(root, a))
    assert where_refs(proxy, root, f'field "uuid" = "{u}"') == [a]


def test_internal_session_column(proxy, sessions):
    s = sessions.login("root")
    t1 = ok(proxy.task.create(s, unique(), ""))
    t2 = ok(proxy.task.create(s, unique(), ""))
    assert sorted(where_refs(proxy, s, f'field "session" = "{s}"')) == sorted([t1, t2])
    # internal fields are still not in the records
    assert "session" not in where(proxy, s, f'field "session" = "{s}"')[t1]


def test_other_internal_columns(proxy, root, trio):
    label, a, b, c = trio
    lab = f'field "name__label" = "{label}"'
    assert sorted(where_refs(proxy, root, f'{lab} and field "externalpid" = "-1"')) == sorted([a, b, c])
    assert sorted(where_refs(proxy, root, f'{lab} and field "forwarded" = "false"')) == sorted([a, b, c])


def test_other_db_string_forms(proxy, root, trio):
    label, a, b, c = trio
    lab = f'field "name__label" = "{label}"'
    every = sorted([a, b, c])
    assert sorted(where_refs(proxy, root, f'{lab} and field "type" = "<none/>"')) == every
    # b's set_status to success stamped `finished` (unlike xapi, docs/architecture.md).
    assert sorted(where_refs(proxy, root, f'{lab} and field "finished" = "19700101T00:00:00Z"')) == sorted([a, c])
    assert sorted(where_refs(proxy, root, f'{lab} and field "subtask_of" = "OpaqueRef:NULL"')) == every
    assert sorted(where_refs(proxy, root, f'{lab} and field "name__description" = "B"')) == [b]
    assert sorted(where_refs(proxy, root, f'{lab} and field "backtrace" = "()"')) == every


def test_literal_on_the_left(proxy, root, trio):
    label, a, b, c = trio
    assert sorted(where_refs(proxy, root, f'"{label}" = field "name__label"')) == sorted([a, b, c])
    assert set(where_refs(proxy, root, '"x" = "x"')) == set(ok(proxy.task.get_all(root)))
    assert where_refs(proxy, root, '"x" = "y"') == []


def test_and_or_have_equal_precedence_left_assoc(proxy, root, trio):
    label, a, b, c = trio
    # (a or b) and success  -> b only; with the usual precedence it would be a and b
    expr = f'field "_ref" = "{a}" or field "_ref" = "{b}" and field "status" = "success"'
    assert where_refs(proxy, root, expr) == [b]
    expr = f'field "status" = "success" and field "_ref" = "{b}" or field "_ref" = "{a}"'
    assert sorted(where_refs(proxy, root, expr)) == sorted([a, b])


def test_not_binds_looser_than_and(proxy, root, trio, new_task):
    # db_filter_parse.mly declares `%right LNOT` before `%left LAND LOR`; in ocamlyacc
    # later declarations bind tighter, so `not A and B` is `not (A and B)`.
    label, a, b, c = trio
    other = new_task(label=unique("other"))
    expr = f'not field "status" = "pending" and field "name__label" = "{label}"'
    got = where_refs(proxy, root, expr)
    assert b in got and other in got
    assert a not in got and c not in got
    # with parentheses it is the other reading
    expr = f'(not field "status" = "pending") and field "name__label" = "{label}"'
    assert where_refs(proxy, root, expr) == [b]


def test_whitespace(proxy, root, trio):
    label, a, b, c = trio
    expr = f'\n\tfield   "_ref"=\t"{a}"  '
    assert where_refs(proxy, root, expr) == [a]


@pytest.mark.parametrize(
    "expr,text",
    [
        ('field "status" =', "Stdlib.Parsing.Parse_error"),
        ("", "Stdlib.Parsing.Parse_error"),
        ('field "status" = "pending" and', "Stdlib.Parsing.Parse_error"),
        ('(true', "Stdlib.Parsing.Parse_error"),
        ("true false", "Stdlib.Parsing.Parse_error"),
        ("TRUE", 'Failure("lexing: empty token")'),
        ('field "status" == "pending"', "Stdlib.Parsing.Parse_error"),
        ("field 'status' = 'pending'", 'Failure("lexing: empty token")'),
        ('field "status" = "pending', 'Failure("lexing: empty token")'),
        ('field "status" != "pending"', 'Failure("lexing: empty token")'),
    ],
)
def test_parse_errors(proxy, root, trio, expr, text):
    assert proxy.task.get_all_records_where(root, expr) == fail("INVALID_VALUE", expr, text)
    assert proxy.task.get_all_where(root, expr) == fail("INVALID_VALUE", expr, text)


def test_unknown_column(proxy, root, trio):
    assert proxy.task.get_all_records_where(root, 'field "nosuch" = "x"') == fail(
        "INTERNAL_ERROR", "missing field", "nosuch", ""
    )
    assert proxy.task.get_all_where(root, 'field "name_label" = "x"') == fail(
        "INTERNAL_ERROR", "missing field", "name_label", ""
    )


def test_where_wrong_type(proxy, root):
    assert proxy.task.get_all_where(root, 5) == fail("INTERNAL_ERROR", "Failure(\"Expected string, got 'I(5)'\")")


@pytest.mark.parametrize("role", ["read-only", "client-cert"])
def test_any_role_may_filter(proxy, sessions, trio, role):
    label, a, b, c = trio
    assert sorted(where_refs(proxy, sessions[role], f'field "name__label" = "{label}"')) == sorted([a, b, c])


def test_pool_and_host_where(proxy, root, host_ref):
    assert ok(proxy.host.get_all_where(root, "true")) == [host_ref]
    assert list(ok(proxy.host.get_all_records_where(root, f'field "_ref" = "{host_ref}"'))) == [host_ref]
    assert ok(proxy.pool.get_all_where(root, "false")) == []


def test_sets_and_maps_use_sexpr_form(proxy, root, new_task):
    # gen_db_actions.ml / string_marshall_helper.ml: sets ('a' 'b'), maps (('k' 'v') ...),
    # sExpr.ml escapes ' and \ with a backslash; maps in stored order (add_to prepends).
    t = new_task()
    ok(proxy.task.set_error_info(root, t, ["it's", "b\\c"]))
    assert where_refs(proxy, root, f'field "_ref" = "{t}" and field "error_info" = "(\'it\\\'s\' \'b\\\\c\')"') == [t]
    ok(proxy.task.add_to_other_config(root, t, "k", "v"))
    assert where_refs(proxy, root, f'field "_ref" = "{t}" and field "other_config" = "((\'k\' \'v\'))"') == [t]
    ok(proxy.task.destroy(root, t))
    assert where_refs(proxy, root, f'field "_ref" = "{t}" and field "current_operations" = "((\'task\' \'destroy\'))"') == [t]
    assert t in where_refs(proxy, root, 'field "allowed_operations" = "()"')
    u = new_task()
    assert u in where_refs(proxy, root, 'field "error_info" = "()"')
    assert t not in where_refs(proxy, root, 'field "error_info" = "()"')


def test_large_float_db_form(proxy, root, new_task):
    t = new_task()
    ok(proxy.task.set_progress(root, t, 1e21))
    assert where_refs(proxy, root, f'field "_ref" = "{t}" and field "progress" = "1e+21"') == [t]
    ok(proxy.task.set_progress(root, t, -2.5))
    assert where_refs(proxy, root, f'field "_ref" = "{t}" and field "progress" = "-2.5"') == [t]


def test_map_db_form_is_in_stored_order(proxy, root, new_task):
    # add_to_map (db_cache_types.ml) prepends the new pair
    t = new_task()
    ok(proxy.task.add_to_other_config(root, t, "k", "v"))
    ok(proxy.task.add_to_other_config(root, t, "k2", "v2"))
    assert where_refs(proxy, root, f'field "_ref" = "{t}" and field "other_config" = "((\'k2\' \'v2\') (\'k\' \'v\'))"') == [t]
    assert where_refs(proxy, root, f'field "_ref" = "{t}" and field "other_config" = "((\'k\' \'v\') (\'k2\' \'v2\'))"') == []


@pytest.mark.parametrize("value", [0.25, 1e-7, 123456789012345678.0, 5e-324, 1 / 3, float("inf")])
def test_float_db_form_is_percent_018g(proxy, root, new_task, value):
    t = new_task()
    ok(proxy.task.set_progress(root, t, value))
    form = "%0.18g" % value
    assert where_refs(proxy, root, f'field "_ref" = "{t}" and field "progress" = "{form}"') == [t]
