"""The XClarity (LXCA) face (docs/xclarity.md), black-box, driven by unmodified pylxca
4.2.0 from PyPI (`connect`, `tasks`, `disconnect`, and its own `requests` session for the
csvRequest monitor), over HTTP and HTTPS, against the real binary.

The face is one engine seen another way: a job made with pylxca is a task to the XenAPI
SDK and to Redfish at once, and an XAPI change is seen by pylxca at once.

Seed 000's examples (LXCA's `tasks` page) are in lxca_seed.py.
"""

import json
import logging
import os
import tempfile
import time

import pytest

from conftest import (
    ROOT_PASSWORD, launch, ok, sdk_session, server_proxy, unique, user_name, user_password,
)
from lxca_seed import SERVER_FIELDS, STATES, seed_job


def _import_pylxca():
    """pylxca configures logging on import: a DEBUG file `./pylxca.log` (every request line)
    on the root logger, disabling every logger that exists. Import it from a scratch
    directory, then give the rest of the suite its logging back."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    enabled = [lg for lg in logging.root.manager.loggerDict.values()
               if isinstance(lg, logging.Logger) and not lg.disabled]
    cwd = os.getcwd()
    os.chdir(tempfile.mkdtemp(prefix="pylxca-log-"))
    try:
        import pylxca as module  # a hard import: without pylxca these tests must fail, not skip
    finally:
        os.chdir(cwd)
        root.handlers[:] = handlers
        root.setLevel(level)
        for lg in enabled:
            lg.disabled = False
    return module


pylxca = _import_pylxca()
import requests  # noqa: E402 (pylxca's dependency; after the import above on purpose)
HTTPError = requests.exceptions.HTTPError
# The server's certificate is self-signed; pylxca never verifies (nor do these tests).
pytestmark = pytest.mark.filterwarnings("ignore:Unverified HTTPS request")


@pytest.fixture(scope="module")
def server():
    srv = launch(["--gc-interval", "3600"], tls=True)
    try:
        yield srv
    finally:
        srv.cleanup()


@pytest.fixture(scope="module", params=["http", "https"])
def base(request, server):
    return server.url if request.param == "http" else server.tls_url


def connect(base, user="root", pw=ROOT_PASSWORD):
    return pylxca.connect(url=base, user=user, pw=pw, noverify="True")


@pytest.fixture(scope="module")
def con(base):
    c = connect(base)
    assert c is not None
    yield c
    if c.get_session() is not None:
        pylxca.disconnect(c)


@pytest.fixture(scope="module")
def xapi(server):
    sdk = pytest.importorskip("XenAPI")
    s = sdk_session(sdk, server.url)
    s.xenapi.login_with_password("root", ROOT_PASSWORD, "1.0", "test_xclarity")
    yield s.xenapi
    s.xenapi.session.logout()


def create(con, job):
    r = pylxca.tasks(con, a="create", t=json.dumps(job))
    assert r.status_code == 201, r.text
    return r.json()["jobUID"]


def one(con, uid, children=True):
    got = pylxca.tasks(con, j=uid, c="true" if children else "false")["TaskList"]
    assert len(got) == 1
    return got[0]


def raw(con, method, path, **kw):
    """A request on pylxca's own `requests` session (its cookies and X-Csrf-Token)."""
    return con.get_session().request(method, con.get_url() + path, verify=False, timeout=15, **kw)


def lxca_error(resp, status):
    assert resp.status_code == status, (resp.status_code, resp.text)
    body = resp.json()
    assert body["result"] == "failed"
    return body["messages"][0]["text"]


def task_count(xapi):
    return len(xapi.task.get_all())


# --------------------------------------------------------------------------------------
# Sessions


def test_connect_with_right_and_wrong_passwords(base):
    assert connect(base, pw="wrong") is None
    c = connect(base)
    assert c is not None
    session = c.get_session()
    assert session.headers["X-Csrf-Token"] == session.cookies.get("csrf")
    pylxca.disconnect(c)


def test_login_is_exactly_200_with_cookies_and_bad_credentials_are_401(base):
    r = requests.post(base + "/sessions", json={"UserId": "root", "password": ROOT_PASSWORD},
                      verify=False, timeout=15)
    assert r.status_code == 200 and r.json()["result"] == "success"
    cookies = r.raw.headers.getlist("Set-Cookie")
    session = [c for c in cookies if c.startswith("lxca_session=OpaqueRef:")]
    csrf = [c for c in cookies if c.startswith("csrf=")]
    assert len(session) == 1 and len(csrf) == 1, cookies
    assert "HttpOnly" in session[0] and "HttpOnly" not in csrf[0]
    # Secure only on the TLS listener: a Secure cookie never comes back over plain HTTP.
    secure = base.startswith("https:")
    assert all(("; Secure" in c) == secure for c in cookies), cookies
    bad = requests.post(base + "/sessions", json={"UserId": "root", "password": "nope"},
                        verify=False, timeout=15)
    assert "not valid" in lxca_error(bad, 401)
    assert "SESSION_AUTHENTICATION_FAILED" in bad.json()["messages"][0]["explanation"]
    assert "lxca_session" not in bad.headers.get("Set-Cookie", "")
    assert "UserId" in lxca_error(requests.post(base + "/sessions", json={"user": "x"},
                                                verify=False, timeout=15), 400)


def test_aicc_answers_appliance_json(con):
    r = raw(con, "GET", "/aicc")
    assert r.status_code == 200 and r.json()["appliance"]["status"] == "Normal"


def test_an_lxca_session_is_an_xapi_session(con, server):
    ref = con.get_session().cookies.get("lxca_session")
    p = server_proxy(server.url + "/")
    rec = ok(p.session.get_record(ref, ref))
    assert rec["originator"] == "xclarity" and rec["auth_user_name"] == "root"


def test_disconnect_ends_the_session_and_the_old_cookie_is_refused(base, server):
    c = connect(base)
    cookies = dict(c.get_session().cookies)
    headers = {"X-Csrf-Token": cookies["csrf"]}
    ref = cookies["lxca_session"]
    assert pylxca.disconnect(c) is True
    replay = requests.get(base + "/tasks", cookies=cookies, headers=headers, verify=False,
                          timeout=15)
    lxca_error(replay, 401)
    # A job read (whose session check is the read's own) is refused the same way, before
    # anything is said about the job.
    for path in ["/tasks/1", "/tasks/1,2?compact=true"]:
        named = requests.get(base + path, cookies=cookies, verify=False, timeout=15)
        assert (named.status_code, named.json()) == (401, replay.json())
    again = requests.delete(base + "/sessions", cookies=cookies, headers=headers, verify=False,
                            timeout=15)
    lxca_error(again, 401)
    assert server_proxy(server.url + "/").task.get_all(ref)["ErrorDescription"][0] == "SESSION_INVALID"


def test_state_changes_need_the_csrf_token(con, xapi):
    s = con.get_session()
    before = task_count(xapi)
    r = requests.post(con.get_url() + "/tasks", json={"jobTitle": "no token"},
                      cookies=dict(s.cookies), verify=False, timeout=15)
    assert "CSRF" in lxca_error(r, 403)
    r = requests.post(con.get_url() + "/tasks", json={"jobTitle": "bad token"},
                      cookies=dict(s.cookies), headers={"X-Csrf-Token": "0" * 64},
                      verify=False, timeout=15)
    lxca_error(r, 403)
    assert task_count(xapi) == before
    # Reads need no token.
    assert requests.get(con.get_url() + "/tasks", cookies=dict(s.cookies), verify=False,
                        timeout=15).status_code == 200


def test_no_session_is_401_with_a_message_body(base):
    for method, path in [("GET", "/tasks"), ("GET", "/aicc"), ("POST", "/tasks"),
                         ("GET", "/csvRequest/jobs/x"), ("DELETE", "/sessions")]:
        r = requests.request(method, base + path, json={}, verify=False, timeout=15)
        assert "valid session" in lxca_error(r, 401)


# --------------------------------------------------------------------------------------
# Jobs


def test_the_seed_job_is_created_and_every_field_round_trips(con, xapi):
    job = seed_job()
    r = pylxca.tasks(con, a="create", t=json.dumps(job))
    assert r.status_code == 201
    reply = r.json()
    uid = reply["jobUID"]
    assert reply["customUid"] == "my-job-7" and r.headers["Location"] == f"/tasks/{uid}"
    got = one(con, uid)
    for k, v in job.items():
        if k not in SERVER_FIELDS:
            assert got[k] == v, k
    assert got["children"] == [] and got["endDate"] == ""
    assert got["createDate"] != job["createDate"]  # the server's clock
    # To XAPI: a task whose label is the title key (the title is empty), whose description
    # is the summary's text, with the other fields in documented xclarity: keys.
    t = xapi.task.get_by_uuid(uid)
    rec = xapi.task.get_record(t)
    assert rec["name_label"] == job["jobTitleKey"]
    assert rec["name_description"] == "Update firmware on node 1"
    assert rec["status"] == "pending"
    oc = rec["other_config"]
    assert json.loads(oc["xclarity:jobSummary"]) == job["jobSummary"]
    assert oc["xclarity:jobTitle"] == '""' and oc["xclarity:createdBy"] == '"USERID"'
    assert oc["xclarity:rebootPersistet"] == "true"


def test_list_get_with_and_without_children(con, xapi):
    job = {"jobTitle": unique("parent"), "children": [
        {"jobTitle": "c1", "children": [{"jobTitle": "g1"}, {"jobTitle": "g2"}]},
        {"jobTitle": "c2", "jobState": "Complete", "percentage": 100}]}
    uid = create(con, job)
    listed = pylxca.tasks(con)["TaskList"]
    top = [j for j in listed if j["jobUID"] == uid]
    assert len(top) == 1
    tree = top[0]
    assert [c["jobTitle"] for c in tree["children"]] == ["c1", "c2"]
    assert [g["jobTitle"] for g in tree["children"][0]["children"]] == ["g1", "g2"]
    assert tree["children"][1]["jobState"] == "Complete" and tree["children"][1]["endDate"]
    # Subtasks appear under their parent only.
    kids = {c["jobUID"] for c in tree["children"]}
    assert not kids & {j["jobUID"] for j in listed}
    assert one(con, uid) == tree
    compact = pylxca.tasks(con, j=uid, c="false")["TaskList"][0]
    assert "children" not in compact and compact["jobUID"] == uid
    assert all("children" not in j for j in pylxca.tasks(con, c="false")["TaskList"])
    # Several ids (the seed's spacing), in the order asked.
    c1 = tree["children"][0]["jobUID"]
    assert [j["jobUID"] for j in pylxca.tasks(con, j=f"{c1}, {uid}")["TaskList"]] == [c1, uid]
    # The tree is XAPI's: subtask links both ways.
    t = xapi.task.get_by_uuid(uid)
    assert [xapi.task.get_name_label(s) for s in xapi.task.get_subtasks(t)] == ["c1", "c2"]
    c1_ref = xapi.task.get_by_uuid(c1)
    assert xapi.task.get_subtask_of(c1_ref) == t and len(xapi.task.get_subtasks(c1_ref)) == 2


def test_update_the_seeds_way(con, xapi):
    uid = create(con, {"jobTitle": unique("upd")})
    assert pylxca.tasks(con, a="update", u=str([{"jobUID": uid, "jobState": "Validating",
                                                  "percentage": 42}])) == 200
    t = xapi.task.get_by_uuid(uid)
    assert xapi.task.get_status(t) == "pending" and xapi.task.get_progress(t) == pytest.approx(0.42)
    got = one(con, uid)
    assert (got["jobState"], got["percentage"], got["endDate"]) == ("Validating", 42, "")
    # pylxca sends only the first entry of a multi-job update (seed 000's example of 127
    # and 140): the second job is untouched.
    other = create(con, {"jobTitle": unique("upd2")})
    assert pylxca.tasks(con, a="update", u=str([
        {"jobUID": uid, "jobState": "CompleteWithWarning", "percentage": 100},
        {"jobUID": other, "jobState": "Complete", "percentage": 100}])) == 200
    got = one(con, uid)
    assert got["jobState"] == "CompleteWithWarning" and got["percentage"] == 100
    assert got["endDate"] >= got["createDate"]  # the completion stamped `finished`
    assert xapi.task.get_status(t) == "success"
    assert one(con, other)["jobState"] == "Running"


def test_cancel_callback_fields_are_an_update_too(con):
    uid = create(con, {"jobTitle": unique("cb")})
    r = raw(con, "PUT", f"/tasks/{uid}", json={"cancelURL": "/stop", "cancelRESTMethod": "DELETE",
                                               "expirationTimeOut": 600})
    assert r.status_code == 200, r.text
    got = one(con, uid)
    assert (got["cancelURL"], got["cancelRESTMethod"], got["expirationTimeOut"]) == ("/stop", "DELETE", 600)
    assert "cannot be changed" in lxca_error(raw(con, "PUT", f"/tasks/{uid}", json={"jobTitle": "x"}), 400)


def test_cancel_with_the_seeds_spacing(con, xapi):
    a, b = create(con, {"jobTitle": unique("c")}), create(con, {"jobTitle": unique("c")})
    assert pylxca.tasks(con, j=f"{a}, {b}", a="cancel") == 200
    for uid in (a, b):
        t = xapi.task.get_by_uuid(uid)
        assert list(xapi.task.get_current_operations(t).values()) == ["cancel"]
        assert xapi.task.get_status(t) == "pending"
        assert one(con, uid)["jobState"] == "Cancelling"
    # The owner finishes the cancelled job through XAPI: LXCA sees it Cancelled at once.
    xapi.task.set_status(xapi.task.get_by_uuid(a), "cancelled")
    assert one(con, a)["jobState"] == "Cancelled"
    assert "DELETE /tasks" in lxca_error(raw(con, "PUT", "/tasks", json={"action": "delete", "list": [a]}), 400)


def test_delete_a_job_and_its_children(con, xapi):
    uid = create(con, {"jobTitle": unique("del"), "jobState": "Complete",
                       "children": [{"jobTitle": "k", "jobState": "Complete"}]})
    kid = one(con, uid)["children"][0]["jobUID"]
    before = task_count(xapi)
    assert pylxca.tasks(con, j=uid, a="delete") == 200
    assert task_count(xapi) == before - 2
    for u in (uid, kid):
        with pytest.raises(xapi_failure()):
            xapi.task.get_by_uuid(u)
    # An unfinished job: XAPI only marks it (it goes when it finishes); to LXCA it is gone.
    running = create(con, {"jobTitle": unique("del-running")})
    assert pylxca.tasks(con, j=running, a="delete") == 200
    t = xapi.task.get_by_uuid(running)
    assert "destroy" in xapi.task.get_current_operations(t).values()
    assert running not in {j["jobUID"] for j in pylxca.tasks(con)["TaskList"]}
    lxca_error(raw(con, "GET", f"/tasks/{running}"), 404)
    xapi.task.set_status(t, "success")


def xapi_failure():
    return pytest.importorskip("XenAPI").Failure


def test_unknown_ids_are_404_and_change_nothing(con, xapi):
    uid = create(con, {"jobTitle": unique("known")})
    bad = "00000000-0000-0000-0000-0000000000bb"
    calls = [
        lambda: pylxca.tasks(con, j=bad),
        lambda: pylxca.tasks(con, j=f"{uid},{bad}"),
        lambda: pylxca.tasks(con, j=f"{uid}, {bad}", a="cancel"),
        lambda: pylxca.tasks(con, j=f"{uid},{bad}", a="delete"),
        lambda: pylxca.tasks(con, a="update", u=str([{"jobUID": bad, "percentage": 5}])),
        lambda: pylxca.tasks(con, j="127"),
    ]
    for call in calls:
        with pytest.raises(HTTPError) as e:
            call()
        assert e.value.response.status_code == 404
        assert "was not found" in e.value.response.json()["messages"][0]["text"]
    t = xapi.task.get_by_uuid(uid)
    assert xapi.task.get_current_operations(t) == {}
    assert xapi.task.get_status(t) == "pending"


@pytest.mark.parametrize("body,needle", [
    ("{not json", "not valid JSON"),
    ("null", "must be a JSON object"),
    ("[]", "must be a JSON object"),
    ('{"jobTitle": 5}', "jobTitle: must be a string"),
    ('{"jobState": "Done"}', 'jobState: unknown state "Done"'),
    ('{"percentage": 101}', "percentage: must be from 0 to 100"),
    ('{"percentage": "lots"}', "percentage: must be a number"),
    ('{"logs": "x"}', "logs: must be an array"),
    ('{"children": [{}, {}, {"jobState": "Nope"}]}', "children[2].jobState: unknown state"),
    ('{"children": [{"percentage": -1}]}', "children[0].percentage"),
    ('{"cancelURL": "/c"}', "cancelRESTMethod: is required"),
])
def test_bad_jobs_are_400_naming_the_problem_and_create_nothing(con, xapi, body, needle):
    before = task_count(xapi)
    r = raw(con, "POST", "/tasks", data=body)
    assert needle in lxca_error(r, 400)
    assert task_count(xapi) == before


def test_pylxcas_create_with_u_posts_null_and_is_refused(con, xapi):
    before = task_count(xapi)
    with pytest.raises(HTTPError) as e:
        pylxca.tasks(con, a="create", u=str([{"jobTitle": "via -u"}]))
    assert e.value.response.status_code == 400
    assert "not null" in e.value.response.json()["messages"][0]["text"]
    assert task_count(xapi) == before


def test_trees_are_bounded(con, xapi):
    deep = {"jobTitle": "leaf"}
    for _ in range(40):
        deep = {"jobTitle": "level", "children": [deep]}
    before = task_count(xapi)
    assert "too deep" in lxca_error(raw(con, "POST", "/tasks", json=deep), 400)
    wide = {"jobTitle": "wide", "children": [{}] * 600}
    assert "too many jobs" in lxca_error(raw(con, "POST", "/tasks", json=wide), 400)
    assert task_count(xapi) == before


def test_bad_updates_and_cancels_are_400(con):
    uid = create(con, {"jobTitle": unique("bad-upd")})
    for body, needle in [(None, "no body"), ({"jobState": "Done"}, "unknown state"),
                         ({"percentage": 150}, "0 to 100"), ({}, "nothing to update"),
                         ({"jobUID": "other", "percentage": 1}, "not the job")]:
        r = raw(con, "PUT", f"/tasks/{uid}", **({} if body is None else {"json": body}))
        assert needle in lxca_error(r, 400), body
    for body, needle in [({"action": "stop", "list": [uid]}, "action"),
                         ({"action": "cancel", "list": uid}, "list"),
                         ({"action": "cancel", "list": []}, "names no job"),
                         ({"action": "cancel", "list": [uid, " "]}, "empty id")]:
        assert needle in lxca_error(raw(con, "PUT", "/tasks", json=body), 400), body
    assert "compact" in lxca_error(raw(con, "GET", "/tasks?compact=maybe"), 400)
    lxca_error(raw(con, "PATCH", "/tasks", json={}), 405)


def test_no_role_is_403(base, con, xapi):
    uid = create(con, {"jobTitle": unique("root's")})
    ro = connect(base, user_name("read-only"), user_password("read-only"))
    try:
        for call in [lambda: pylxca.tasks(ro, j=uid, a="delete"),
                     lambda: pylxca.tasks(ro, j=uid, a="cancel"),
                     lambda: pylxca.tasks(ro, a="update", u=str([{"jobUID": uid, "percentage": 9}]))]:
            with pytest.raises(HTTPError) as e:
                call()
            assert e.value.response.status_code == 403
            assert "RBAC_PERMISSION_DENIED" in e.value.response.json()["messages"][0]["explanation"]
        # Reading is every role's.
        assert pylxca.tasks(ro, j=uid)["TaskList"][0]["jobUID"] == uid
        # Their own job defaults createdBy to them.
        mine = create(ro, {"jobTitle": unique("ro's")})
        assert one(ro, mine)["createdBy"] == user_name("read-only")
    finally:
        pylxca.disconnect(ro)
    t = xapi.task.get_by_uuid(uid)
    assert xapi.task.get_progress(t) == 0.0 and xapi.task.get_current_operations(t) == {}


def test_all_28_states_map_onto_xapi_and_back(con, xapi):
    assert len(STATES) == 28
    uid = create(con, {"jobTitle": unique("states")})
    t = xapi.task.get_by_uuid(uid)
    for state, status in STATES:
        assert pylxca.tasks(con, a="update", u=str([{"jobUID": uid, "jobState": state}])) == 200
        assert xapi.task.get_status(t) == status, state
        assert one(con, uid)["jobState"] == state
    # Created in each state, too.
    for state, status in STATES:
        made = create(con, {"jobTitle": unique("st"), "jobState": state})
        assert xapi.task.get_status(xapi.task.get_by_uuid(made)) == status
        assert one(con, made)["jobState"] == state


# --------------------------------------------------------------------------------------
# csvRequest monitor


def test_csv_request_monitor_of_a_task_tree(con, xapi):
    uid = create(con, {"jobTitle": "bulk", "jobTitleKey": "k.bulk", "targetUUID": "DEV-1",
                       "percentage": 40, "children": [
                           {"jobTitle": "node 1", "jobState": "Complete", "percentage": 100,
                            "children": [{"jobTitle": "flash", "jobState": "Complete",
                                          "percentage": 100}]},
                           {"jobTitle": "node 2", "jobState": "Pending"}]})
    # Through pylxca's own requests session, as a script would.
    r = con.get_session().get(con.get_url() + "/csvRequest/jobs/" + uid, verify=False, timeout=15)
    assert r.status_code == 200
    m = r.json()
    assert m["progress"] == 40.0 and m["status"] == "INCOMPLETE"
    res = m["results"][0]
    assert res["result"] == "INCOMPLETE" and res["uuid"] == "DEV-1" and res["messageID"] == "k.bulk"
    assert res["resultShortDescription"] == "bulk"
    assert isinstance(res["taskid"], int) and res["taskid"] == int(uid.replace("-", "")[:12], 16)
    assert isinstance(res["time_spent"], int) and res["time_spent"] >= 0
    st = res["status"]
    assert st["state"] == "Running" and st["percentage"] == 40.0
    n1, n2 = st["substatus"]
    assert (n1["shortDescription"], n1["completed"], n1["started"], n1["status"]["state"]) == \
        ("node 1", True, True, "Complete")
    assert (n2["completed"], n2["started"], n2["status"]["state"]) == (False, False, "Pending")
    flash = n1["status"]["substatus"][0]
    assert flash["shortDescription"] == "flash" and flash["progress"] == 100.0
    assert flash["status"]["substatus"] == []
    # Finished: COMPLETE, with the outcome.
    xapi.task.set_status(xapi.task.get_by_uuid(uid), "success")
    m = raw(con, "GET", f"/csvRequest/jobs/{uid}").json()
    assert m["status"] == "COMPLETE" and m["results"][0]["result"] == "SUCCESS"
    # Any task tree, including one made over XAPI.
    t = xapi.task.create(unique("xapi-made"), "")
    m = raw(con, "GET", f"/csvRequest/jobs/{xapi.task.get_uuid(t)}").json()
    assert m["results"][0]["status"]["substatus"] == []
    assert "was not found" in lxca_error(raw(con, "GET", "/csvRequest/jobs/nope"), 404)


# --------------------------------------------------------------------------------------
# Trees made over XAPI (any depth) and the size of an answer


def xapi_chain(server, length, prefix):
    """A chain of `length` tasks, each a subtask of the one before (XAPI's `subtask-of`
    header; a POST to /tasks cannot nest this deep): their (refs, uuids), root first."""
    p = server_proxy(server.url + "/")
    s = ok(p.session.login_with_password("root", ROOT_PASSWORD))
    refs = []
    for i in range(length):
        proxy = server_proxy(server.url + "/", {"subtask-of": refs[-1]}.items()) if refs else p
        refs.append(ok(proxy.task.create(s, f"{prefix}-{i}", "")))
    return refs, [ok(p.task.get_uuid(s, r)) for r in refs]


def nested_jobs(jobs, depth=1):
    """(jobUID, depth) of every job in `jobs` and in their children."""
    for j in jobs:
        yield j["jobUID"], depth
        yield from nested_jobs(j.get("children", []), depth + 1)


def test_a_tree_deeper_than_a_post_can_make_is_listed_whole_and_deleted_whole(con, server, xapi):
    refs, uuids = xapi_chain(server, 70, unique("deep"))
    # The list of all jobs holds every task of the chain exactly once, however deep:
    # a subtree below the deepest level shown continues as a top-level job.
    listed = list(nested_jobs(pylxca.tasks(con)["TaskList"]))
    seen = [u for u, _ in listed if u in set(uuids)]
    assert sorted(seen) == sorted(uuids)
    assert max(d for _, d in listed) <= 32
    # Asked by id, the tree is shown as deep as a POST may create (32 levels).
    got = [d for _, d in nested_jobs(pylxca.tasks(con, j=uuids[0])["TaskList"])]
    assert len(got) == 32 and max(got) == 32
    # A delete takes the whole tree, however deep: nothing of it is left unmarked.
    assert pylxca.tasks(con, j=uuids[0], a="delete") == 200
    left = [r for r in refs if "destroy" not in xapi.task.get_current_operations(r).values()]
    assert left == []
    assert not set(uuids) & {u for u, _ in nested_jobs(pylxca.tasks(con)["TaskList"])}


def test_naming_a_job_many_times_cannot_multiply_the_answer(con, xapi):
    uid = create(con, {"jobTitle": unique("fan"), "children": [{"jobTitle": "c"}] * 60})
    # The same id twice is answered twice (small repeats are harmless) ...
    twice = pylxca.tasks(con, j=f"{uid},{uid}")["TaskList"]
    assert [j["jobUID"] for j in twice] == [uid, uid] and len(twice[1]["children"]) == 60
    # ... but 1,000 times would be 61,000 jobs for one short request: refused.
    r = raw(con, "GET", "/tasks/" + ",".join([uid] * 1000))
    assert "name each job once" in lxca_error(r, 400)
    # Without children each id is one job, as many as the ids.
    assert len(pylxca.tasks(con, j=",".join([uid] * 1000), c="false")["TaskList"]) == 1000


# --------------------------------------------------------------------------------------
# One engine: the other faces see the same jobs


def test_a_pylxca_job_is_a_task_to_the_sdk_and_to_redfish(con, xapi, server):
    uid = create(con, {"jobTitle": unique("cross"), "jobSummary": "seen everywhere",
                       "percentage": 25, "children": [{"jobTitle": "step"}]})
    t = xapi.task.get_by_uuid(uid)
    rec = xapi.task.get_record(t)
    assert rec["name_description"] == "seen everywhere" and rec["progress"] == 0.25
    rf = requests.get(f"{server.url}/redfish/v1/TaskService/Tasks/{uid}",
                      auth=("root", ROOT_PASSWORD), timeout=15)
    assert rf.status_code == 200
    assert (rf.json()["Name"], rf.json()["PercentComplete"], rf.json()["TaskState"]) == \
        (rec["name_label"], 25, "Running")
    subs = requests.get(f"{server.url}/redfish/v1/TaskService/Tasks/{uid}/SubTasks",
                        auth=("root", ROOT_PASSWORD), timeout=15).json()
    assert subs["Members@odata.count"] == 1
    # An XAPI set_progress is seen by pylxca at once, and so is a completion.
    xapi.task.set_progress(t, 0.75)
    assert one(con, uid)["percentage"] == 75
    xapi.task.set_status(t, "failure")
    got = one(con, uid)
    assert got["jobState"] == "CompleteWithError" and got["endDate"]
    # A Redfish DELETE of a running task (a cancel) shows in LXCA as Cancelling.
    kid = got["children"][0]["jobUID"]
    requests.delete(f"{server.url}/redfish/v1/TaskService/Tasks/{kid}",
                    auth=("root", ROOT_PASSWORD), timeout=15)
    assert one(con, kid)["jobState"] == "Cancelling"


def test_a_job_completed_by_its_client_outlives_gc_passes(fresh):
    """Issue 11 item 7: completing through the face stamps `finished`, so the GC keeps the
    job `completed-task-timeout` after that (65 min by default) instead of removing it at
    its next pass, as it did while `finished` stayed at the epoch."""
    srv = fresh(["--gc-interval", "0.2"])
    c = connect(srv.url)
    try:
        uid = create(c, {"jobTitle": "done soon"})
        assert pylxca.tasks(c, a="update", u=str([{"jobUID": uid, "jobState": "Complete"}])) == 200
        time.sleep(2)  # ten passes
        got = one(c, uid)
        assert got["jobState"] == "Complete" and got["endDate"] >= got["createDate"]
    finally:
        pylxca.disconnect(c)


def test_create_fails_half_way_and_leaves_nothing(fresh):
    """A quota hit by the third job of a tree: 503, and the two created are removed."""
    srv = fresh(["--max-pending-tasks", "2"])
    c = connect(srv.url)
    try:
        p = server_proxy(srv.url + "/")
        s = ok(p.session.login_with_password("root", ROOT_PASSWORD))
        with pytest.raises(HTTPError) as e:
            pylxca.tasks(c, a="create", t=json.dumps({"jobTitle": "big", "children": [{}, {}]}))
        assert e.value.response.status_code == 503
        assert "TOO_MANY_PENDING_TASKS" in e.value.response.json()["messages"][0]["explanation"]
        assert ok(p.task.get_all(s)) == []
        # Within the quota it works.
        assert create(c, {"jobTitle": "small", "children": [{}]})
    finally:
        pylxca.disconnect(c)


# --------------------------------------------------------------------------------------
# Routing: XML-RPC keeps every other POST, and XML posts on LXCA's paths


def test_xml_rpc_still_answers_on_lxcas_paths_and_everywhere_else(server):
    for path in ["/sessions", "/tasks", "/", "/RPC2"]:
        p = server_proxy(server.url + path)
        s = ok(p.session.login_with_password("root", ROOT_PASSWORD))
        assert ok(p.task.get_all(s)) is not None
        ok(p.session.logout(s))
    # A JSON body to an XML-RPC path is XML-RPC's to refuse, as before.
    r = requests.post(server.url + "/", json={"UserId": "root"}, timeout=15)
    assert r.headers["Content-Type"].startswith("text/xml")
    assert b"XMLRPC_UNMARSHAL_FAILURE" in r.content
    # And LXCA's paths with anything but XML are the face's.
    r = requests.get(server.url + "/tasks/", timeout=15)
    assert r.status_code == 401 and r.headers["Content-Type"].startswith("application/json")
    lxca_error(requests.get(server.url + "/csvRequest", timeout=15), 404)


def test_a_client_that_goes_away_mid_create_leaves_all_or_nothing(server, xapi):
    """The tree is made in a task of its own: a client that closes its connection while
    the jobs are being created does not leave half a tree behind."""
    import socket
    login = requests.post(server.url + "/sessions", json={"UserId": "root", "password": ROOT_PASSWORD},
                          timeout=15)
    cookie = "; ".join(f"{k}={v}" for k, v in login.cookies.items())
    body = json.dumps({"jobTitle": unique("gone"), "children": [{"jobTitle": "c"}] * 150}).encode()
    before = task_count(xapi)
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(b"POST /tasks HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
                     + f"Cookie: {cookie}\r\nX-Csrf-Token: {login.cookies['csrf']}\r\n".encode()
                     + f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
        time.sleep(0.05)
    deadline = time.monotonic() + 30
    last = None
    while time.monotonic() < deadline:
        n = task_count(xapi) - before
        if n == last and n in (0, 151):
            break
        last = n
        time.sleep(0.5)
    assert task_count(xapi) - before in (0, 151)
