"""`xapi-taskd tasks`, XClarity's `tasks` command (docs/cli.md), as the real binary: a
client of the XClarity face's REST API (what pylxca speaks), checked against the server
independently over XML-RPC. Seed 000's examples (lxca_seed.py) are run as they are written,
with real job ids in place of the seed's 127 and 140.
"""

import json
import re
import subprocess

import pytest

from conftest import (
    BINARY, ROOT_PASSWORD, UUID_RE, Server, _build, ok, server_proxy, unique, user_name,
    user_password,
)
from lxca_seed import DEFAULT_STATE, SERVER_FIELDS, STATES, seed_job
from test_cli import CLI_TIMEOUT, jobs, one_line_error, run, session_count, uuid_of


def job_of(server, uid, *extra):
    got = jobs(run(server, "tasks", "-j", uid, *extra))
    assert len(got) == 1
    return got[0]


# --------------------------------------------------------------------------------------
# Seed 000's examples, each as written


def test_seed_list_all_and_by_id_with_and_without_children(server, proxy, root, new_task):
    parent = new_task(label=unique("top"))
    child = ok(server_proxy(server.url + "/", headers=[("task-id", parent)]).task.create(root, "kid", "k"))
    up, uc = uuid_of(proxy, root, parent), uuid_of(proxy, root, child)
    all_jobs = jobs(run(server, "tasks"))
    top = [j for j in all_jobs if j["jobUID"] == up]
    assert len(top) == 1
    assert uc not in [j["jobUID"] for j in all_jobs]  # under its parent only
    assert [c["jobUID"] for c in top[0]["children"]] == [uc]
    kid = top[0]["children"][0]
    assert kid["jobTitle"] == "kid" and kid["jobSummary"] == "k" and kid["children"] == []
    for field in ["jobUID", "jobState", "percentage", "children", "jobTitle", "createdBy",
                  "createDate", "endDate", "startDate", "jobSummary", "logs", "targetUUID",
                  "jobCategory"]:
        assert field in top[0], field
    # -j with the seed's spacing (two shell words), -c false.
    got = jobs(run(server, "tasks", "-j", f"{uc},", up, "-c", "false"))
    assert [j["jobUID"] for j in got] == [uc, up]
    assert all("children" not in j for j in got)
    assert job_of(server, up, "--children", "true")["children"][0]["jobUID"] == uc
    # What the command prints is what the REST face answers.
    assert all(isinstance(j, dict) for j in jobs(run(server, "tasks", "-c", "false")))


def test_seed_create_example_with_u_and_with_t(server, proxy, root):
    for option in ["-u", "-t"]:
        job = seed_job()
        args = ["-a", "create", "-u", json.dumps(job)] if option == "-u" else ["-t", json.dumps(job)]
        created = jobs(run(server, "tasks", *args))
        assert len(created) == 1
        c = created[0]
        assert re.fullmatch(UUID_RE, c["jobUID"])
        for k, v in job.items():
            if k not in SERVER_FIELDS:
                assert c[k] == v, (option, k)
        t = ok(proxy.task.get_by_uuid(root, c["jobUID"]))
        rec = ok(proxy.task.get_record(root, t))
        assert rec["name_label"] == job["jobTitleKey"] and rec["status"] == "pending"
        assert json.loads(rec["other_config"]["xclarity:jobSummary"]) == job["jobSummary"]


def test_seed_multi_job_update_and_cancel_and_delete(server, proxy, root, new_task):
    a, b = new_task(), new_task()
    ua, ub = uuid_of(proxy, root, a), uuid_of(proxy, root, b)
    # The seed's update of jobs 127 and 140: this command updates both (pylxca, the
    # first only).
    out = jobs(run(server, "tasks", "-a", "update", "-u", json.dumps([
        {"jobUID": ua, "jobState": "CompleteWithWarning", "percentage": 100},
        {"jobUID": ub, "jobState": "Running", "percentage": 50}])))
    assert [(j["jobUID"], j["jobState"], j["percentage"]) for j in out] == [
        (ua, "CompleteWithWarning", 100), (ub, "Running", 50)]
    assert ok(proxy.task.get_status(root, a)) == "success"
    assert ok(proxy.task.get_progress(root, b)) == pytest.approx(0.5)
    assert out[0]["endDate"] >= out[0]["createDate"]
    # The seed's `tasks -a cancel -j 127, 140`, spacing and all.
    c, d = new_task(), new_task()
    uc, ud = uuid_of(proxy, root, c), uuid_of(proxy, root, d)
    out = jobs(run(server, "tasks", "-a", "cancel", "-j", f"{uc},", ud))
    assert [j["jobState"] for j in out] == ["Cancelling", "Cancelling"]
    for t in (c, d):
        assert list(ok(proxy.task.get_current_operations(root, t)).values()) == ["cancel"]
    # `tasks -a delete -j 127`: prints nothing; the completed job is gone.
    res = run(server, "tasks", "-a", "delete", "-j", ua)
    assert (res.returncode, res.stdout) == (0, "")
    assert proxy.task.get_status(root, a)["ErrorDescription"][0] == "HANDLE_INVALID"


def test_sample_template_is_printed_and_creates(server):
    res = subprocess.run([str(BINARY), "tasks", "-t"], capture_output=True, text=True, timeout=CLI_TIMEOUT)
    assert res.returncode == 0, res.stderr
    template = json.loads(res.stdout)
    assert {"jobTitle", "jobState", "percentage", "children"} <= set(template)
    created = jobs(run(server, "tasks", "-t", res.stdout))
    assert created[0]["jobTitle"] == template["jobTitle"]
    assert len(created[0]["children"]) == len(template["children"])


# --------------------------------------------------------------------------------------
# The mapping, both ways


@pytest.mark.parametrize("status", ["pending", "success", "failure", "cancelled", "cancelling"])
def test_xapi_statuses_as_jobs(server, proxy, root, new_task, status):
    t = new_task()
    ok(proxy.task.set_status(root, t, status))
    ok(proxy.task.set_progress(root, t, 0.37))
    job = job_of(server, uuid_of(proxy, root, t))
    assert job["jobState"] == DEFAULT_STATE[status] and job["percentage"] == 37


def test_all_28_states_through_the_command(server, proxy, root, new_task):
    tasks = [new_task() for _ in STATES]
    uuids = [uuid_of(proxy, root, t) for t in tasks]
    out = jobs(run(server, "tasks", "-a", "update", "-u", json.dumps(
        [{"jobUID": u, "jobState": state, "percentage": 64} for u, (state, _) in zip(uuids, STATES)])))
    assert [j["jobState"] for j in out] == [s for s, _ in STATES]
    for t, (state, status) in zip(tasks, STATES):
        assert ok(proxy.task.get_status(root, t)) == status, state
        kept = ok(proxy.task.get_other_config(root, t)).get("xclarity:jobState")
        assert kept == (None if DEFAULT_STATE[status] == state else json.dumps(state)), state
    # Read back fresh, and created in every state as children of one job.
    assert [j["jobState"] for j in jobs(run(server, "tasks", "-j", ",".join(uuids)))] == [s for s, _ in STATES]
    made = jobs(run(server, "tasks", "-a", "create", "-u", json.dumps(
        {"jobTitle": unique("28"), "children": [{"jobTitle": s, "jobState": s} for s, _ in STATES]})))
    assert [c["jobState"] for c in made[0]["children"]] == [s for s, _ in STATES]


def test_a_deep_tree_made_over_xapi_is_printed(server, proxy, root):
    """A chain of 70 subtasks (XAPI nests without bound): the command reads the face's
    answers, which nest at most 32 levels (JSON parsers, serde's among them, have depth
    limits), and the list holds every task of the chain."""
    refs = [ok(proxy.task.create(root, unique("chain"), ""))]
    for _ in range(69):
        sub = server_proxy(server.url + "/", [("subtask-of", refs[-1])])
        refs.append(ok(sub.task.create(root, unique("chain"), "")))
    uuids = {uuid_of(proxy, root, r) for r in refs}

    def every(js):
        for j in js:
            yield j["jobUID"]
            yield from every(j.get("children", []))

    top = uuid_of(proxy, root, refs[0])
    assert len(list(every(jobs(run(server, "tasks", "-j", top))))) == 32
    assert uuids <= set(every(jobs(run(server, "tasks"))))


# --------------------------------------------------------------------------------------
# Errors: one line, nothing changed


def test_unknown_ids_are_one_line_and_change_nothing(server, proxy, root, new_task):
    t = new_task()
    u = uuid_of(proxy, root, t)
    bad = "00000000-0000-0000-0000-0000000000bb"
    one_line_error(run(server, "tasks", "-j", bad), f"error: HTTP 404: Job {bad} was not found.")
    one_line_error(run(server, "tasks", "-a", "cancel", "-j", f"{u},{bad}"), "HTTP 404")
    assert ok(proxy.task.get_current_operations(root, t)) == {}
    one_line_error(run(server, "tasks", "-a", "update", "-u", json.dumps(
        [{"jobUID": u, "percentage": 50}, {"jobUID": bad, "percentage": 5}])), "HTTP 404")
    assert ok(proxy.task.get_progress(root, t)) == 0.0


def test_bad_input_fails_before_login(server, proxy, root):
    before = len(ok(proxy.task.get_all(root)))
    count = session_count(proxy, root)
    for args, needle in [
        (["-a", "create", "-u", "{not json"], "error: invalid JSON in --updateList: "),
        (["-a", "create", "-u", '{"jobTitle": 7}'], "jobTitle: must be a string"),
        (["-t", '{"children": [{}, {"jobState": "Done"}]}'], "children[1].jobState: unknown state"),
        (["-a", "update", "-u", '[{"jobUID": "x", "jobState": "Done"}]'], "unknown state"),
        (["-a", "update", "-u", '[{"jobUID": "x", "percentage": 101}]'], "0 to 100"),
        (["-a", "update", "-u", '[{"percentage": 1}]'], "jobUID (a string) is required"),
        (["-a", "cancel"], "needs -j"),
    ]:
        one_line_error(run(server, "tasks", *args, password=None), needle)
    assert len(ok(proxy.task.get_all(root))) == before
    assert session_count(proxy, root) == count


def test_role_denied_and_wrong_password(server, proxy, root, new_task):
    t = new_task()
    u = uuid_of(proxy, root, t)
    ro = dict(user=user_name("read-only"), password=user_password("read-only"))
    one_line_error(run(server, "tasks", "-a", "delete", "-j", u, **ro),
                   "error: HTTP 403: ", "RBAC_PERMISSION_DENIED: task.destroy/any")
    one_line_error(run(server, "tasks", "-a", "update", "-u",
                       json.dumps([{"jobUID": u, "percentage": 50}]), **ro), "RBAC_PERMISSION_DENIED")
    assert ok(proxy.task.get_status(root, t)) == "pending"
    assert ok(proxy.task.get_progress(root, t)) == 0.0
    one_line_error(run(server, "tasks", password="nope"), "HTTP 401", "SESSION_AUTHENTICATION_FAILED")


def test_the_command_logs_out_of_its_lxca_session(server, proxy, root):
    before = session_count(proxy, root)
    assert run(server, "tasks", "-c", "false").returncode == 0
    assert run(server, "tasks", "-j", "nope").returncode == 1
    assert session_count(proxy, root) == before


def test_help_uses_xclaritys_letters():
    res = subprocess.run([str(BINARY), "tasks", "-h"], capture_output=True, text=True, timeout=CLI_TIMEOUT)
    assert res.returncode == 0
    for opt in ["-j, --jobUID", "-c, --children", "-a, --action", "-u, --updateList", "-t, --template"]:
        assert opt in res.stdout, opt


def test_a_create_refused_half_way_leaves_nothing():
    """A server limit hit by the third job of a tree: one line with the error, and the
    server removed the two it had created."""
    _build()
    srv = Server(extra_args=["--max-pending-tasks", "2"])
    try:
        srv.start()
        job = {"jobTitle": "big", "children": [{"jobTitle": "a"}, {"jobTitle": "b"}]}
        one_line_error(run(srv, "tasks", "-a", "create", "-u", json.dumps(job)),
                       "error: HTTP 503: ", "TOO_MANY_PENDING_TASKS")
        p = server_proxy(srv.url + "/")
        s = ok(p.session.login_with_password("root", ROOT_PASSWORD))
        assert ok(p.task.get_all(s)) == []
    finally:
        srv.cleanup()
