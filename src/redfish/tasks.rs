//! XAPI tasks as Redfish Tasks (Task v1.7.4, TaskService v1.3.0), task monitors, and
//! DELETE as `task.cancel`/`task.destroy`.
//!
//! The mapping is a pure function of the XAPI task record ([`TaskRecord::from_record`], shared with the other faces,
//! [`task_json`]), tested below. Reads and writes go through the XAPI pipeline, so the
//! Redfish face sees exactly what XML-RPC clients see, and its writes produce the same
//! events and obey the same ownership rule.
//!
//! Redfish allows one level of sub-tasks; XAPI allows any depth. Every descendant is
//! listed under its root task (`/Tasks/{root}/SubTasks/{uuid}`), and only root tasks are
//! members of `/Tasks`. A task whose parent was destroyed becomes a root.

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;

use hyper::StatusCode;
use hyper::header;
use serde_json::{Value as Json, json};

use super::auth::Caller;
use super::protocol::{self, Answer, TASK_EVENT};
use super::routes::CANCEL_MONITOR_PREFIX;
use crate::api::dispatch::Refusal;
use crate::api::dispatch::Service;
use crate::api::error::{ApiError, codes};
use crate::api::gc::Retention;
use crate::db::NULL_REF;
use crate::face::xapi::{TaskRecord, task_by_uuid, task_record, text, xapi};
use crate::json_out::{Array, Object};
use crate::wire::value::Value;

pub const SERVICE: &str = "/redfish/v1/TaskService";
pub const TASKS: &str = "/redfish/v1/TaskService/Tasks";
pub const MONITORS: &str = "/redfish/v1/TaskService/TaskMonitors";
pub const DELETE_ALL_COMPLETED: &str =
    "/redfish/v1/TaskService/Actions/TaskService.DeleteAllCompletedTasks";

/// XAPI status → (`TaskState`, `TaskStatus`). `TaskStatus` "shall not be set until the
/// task completes", hence `None` for unfinished tasks.
pub fn state(status: &str, cancel_requested: bool) -> (&'static str, Option<&'static str>) {
    match status {
        "success" => ("Completed", Some("OK")),
        "failure" => ("Exception", Some("Critical")),
        "cancelled" => ("Cancelled", Some("Warning")),
        "cancelling" => ("Cancelling", None),
        _ if cancel_requested => ("Cancelling", None),
        _ => ("Running", None),
    }
}

/// XAPI progress (any float) → `PercentComplete` 0..=100.
pub fn percent(progress: f64) -> i64 {
    if progress.is_nan() {
        return 0;
    }
    (progress * 100.0).round().clamp(0.0, 100.0) as i64
}

/// XAPI's `20261123T00:55:00Z` → Redfish's `2026-11-23T00:55:00+00:00`. `None` for the
/// epoch (XAPI's "never") or anything that does not look like an XAPI date.
pub fn redfish_date(xapi: &str) -> Option<String> {
    redfish_date_parts(xapi).map(|parts| parts.concat())
}

/// [`redfish_date`] in pieces of the XAPI text (for `json_out`, which joins them as it
/// writes).
fn redfish_date_parts(xapi: &str) -> Option<[&str; 8]> {
    let b = xapi.as_bytes();
    if b.len() != 18 || b[8] != b'T' || b[17] != b'Z' || xapi.starts_with("19700101") {
        return None;
    }
    if !b[..8].iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some([
        &xapi[0..4],
        "-",
        &xapi[4..6],
        "-",
        &xapi[6..8],
        "T",
        &xapi[9..17],
        "+00:00",
    ])
}

/// Whether an XAPI date's text is digits and `T:Z` (as the server writes every date), so
/// that [`redfish_date_parts`]' pieces of it are written without the escape scan.
fn date_plain(xapi: &str) -> bool {
    xapi.bytes()
        .all(|c| c.is_ascii_digit() || matches!(c, b'T' | b':' | b'Z'))
}

/// One TaskEvent message (members in key order, see [`write_task`]). `text` and the
/// other texts are our literals; `task_id` is written unscanned when `id_plain` says
/// the caller found it plain.
fn task_event(
    a: &mut Array<'_>,
    (id, task_id, id_plain): (&str, &str, bool),
    text: &str,
    severity: &str,
) {
    let (before, after) = text.split_once("%1").unwrap_or((text, ""));
    a.object(|m| {
        if id_plain {
            m.plain_of("Message", &[before, task_id, after]);
            m.array("MessageArgs", |args| args.plain_of(&[task_id]));
        } else {
            m.str_of("Message", &[before, task_id, after]);
            m.array("MessageArgs", |args| args.str(task_id));
        }
        m.plain_of("MessageId", &[TASK_EVENT, ".", id]);
        m.plain_of("MessageSeverity", &[severity]);
        m.plain_of("Resolution", &["None."]);
    });
}

/// The task's `Messages`: TaskStarted, then the TaskEvent message of its outcome; a
/// failure adds the XAPI error (code and parameters) as a message of its own.
fn write_messages(a: &mut Array<'_>, t: &TaskRecord, id_plain: bool) {
    let id = t.uuid.as_str();
    task_event(
        a,
        ("TaskStarted", id, id_plain),
        "The task with Id '%1' has started.",
        "OK",
    );
    match t.status.as_str() {
        "success" => task_event(
            a,
            ("TaskCompletedOK", id, id_plain),
            "The task with Id '%1' has completed.",
            "OK",
        ),
        "failure" => {
            task_event(
                a,
                ("TaskAborted", id, id_plain),
                "The task with Id '%1' has completed with errors.",
                "Critical",
            );
            if !t.error_info.is_empty() {
                let mut m = protocol::xapi_error_list_message(&t.error_info);
                if let Json::Object(o) = &mut m {
                    o.remove("@odata.type");
                }
                a.json(&m);
            }
        }
        "cancelled" => task_event(
            a,
            ("TaskCancelled", id, id_plain),
            "Work on the task with Id '%1' was halted prior to completion due to an explicit request.",
            "Warning",
        ),
        _ => {}
    }
}

/// The task's `Messages` as values.
pub fn messages(t: &TaskRecord) -> Vec<Json> {
    let mut out = Vec::new();
    Array::write(&mut out, |a| {
        write_messages(a, t, crate::json_out::plain(&t.uuid))
    });
    serde_json::from_slice(&out).expect("json_out writes JSON")
}

/// Where a task lives: `/Tasks/{uuid}` for a root, `/Tasks/{root}/SubTasks/{uuid}` for a
/// descendant.
pub fn task_uri(uuid: &str, root_uuid: Option<&str>) -> String {
    task_uri_parts(uuid, root_uuid).concat()
}

/// [`task_uri`] in pieces (for `json_out`).
fn task_uri_parts<'a>(uuid: &'a str, root_uuid: Option<&'a str>) -> [&'a str; 5] {
    match root_uuid {
        Some(root) => [TASKS, "/", root, "/SubTasks/", uuid],
        None => [TASKS, "/", uuid, "", ""],
    }
}

/// The task's own monitor (the Task's `TaskMonitor`), in pieces (for `json_out`).
fn monitor_uri_parts(uuid: &str) -> [&str; 3] {
    [MONITORS, "/", uuid]
}

/// The monitor of a DELETE that asked to cancel the task.
pub fn cancel_monitor_uri(uuid: &str) -> String {
    format!("{MONITORS}/{CANCEL_MONITOR_PREFIX}{uuid}")
}

/// The Task resource's `@odata.type`.
pub const TASK_TYPE: &str = "#Task.v1_7_4.Task";
/// The Task type's prepared protocol headers (every Task GET's, up to the ETag).
pub static TASK: protocol::Prepared = protocol::Prepared::new(TASK_TYPE);

/// The Task resource, written as JSON. `root_uuid` is the root's uuid when the task is a
/// sub-task. Members come in key order, as serde_json writes a `json!` object, so these
/// are the bytes the resource had when it was built as a value (a test checks the order).
pub fn write_task(out: &mut Vec<u8>, t: &TaskRecord, root_uuid: Option<&str>) {
    let (task_state, task_status) = state(&t.status, t.cancel_requested);
    let id = t.uuid.as_str();
    // The uuid (the server's hex and dashes) is in eight of the document's strings and the
    // root's in two; the rest of those strings are our literals. Scanned once here, they
    // are then copied without the escape scan (the scans were 2.4k instructions a GET).
    // Only the free texts (the name and description) are scanned as they are written.
    let id_plain = crate::json_out::plain(id);
    let uris_plain = id_plain && root_uuid.is_none_or(crate::json_out::plain);
    Object::write(out, |o| {
        let text = |o: &mut Object<'_>, key, parts: &[&str], plain: bool| {
            if plain {
                o.plain_of(key, parts)
            } else {
                o.str_of(key, parts)
            }
        };
        text(o, "@odata.id", &task_uri_parts(id, root_uuid), uris_plain);
        o.plain_of("@odata.type", &[TASK_TYPE]);
        // An empty Description is "not supported" to validators: omit it.
        if !t.name_description.is_empty() {
            o.str("Description", &t.name_description);
        }
        if t.is_completed()
            && let Some(end) = redfish_date_parts(&t.finished)
        {
            text(o, "EndTime", &end, date_plain(&t.finished));
        }
        o.bool("HidePayload", true);
        text(o, "Id", &[id], id_plain);
        o.array("Messages", |a| write_messages(a, t, id_plain));
        if t.name_label.is_empty() {
            text(o, "Name", &["Task ", id], id_plain);
        } else {
            o.str("Name", &t.name_label);
        }
        o.int("PercentComplete", percent(t.progress));
        if let Some(start) = redfish_date_parts(&t.created) {
            text(o, "StartTime", &start, date_plain(&t.created));
        }
        // "SubTasks shall not be present if this resource represents a sub-task."
        if root_uuid.is_none() {
            o.object("SubTasks", |sub| {
                text(sub, "@odata.id", &[TASKS, "/", id, "/SubTasks"], id_plain);
            });
        }
        // A cancelled task's monitor is gone (TaskService v1.3: "removed at that time").
        if t.status != "cancelled" {
            text(o, "TaskMonitor", &monitor_uri_parts(id), id_plain);
        }
        o.plain_of("TaskState", &[task_state]);
        if let Some(s) = task_status {
            o.plain_of("TaskStatus", &[s]);
        }
    });
}

/// The Task resource as a value, for the answers that add to it (monitors).
pub fn task_json(t: &TaskRecord, root_uuid: Option<&str>) -> Json {
    let mut out = Vec::with_capacity(1024);
    write_task(&mut out, t, root_uuid);
    serde_json::from_slice(&out).expect("json_out writes JSON")
}

/// `TaskService` (v1.3.0): the GC's retention as `TaskAutoDeleteTimeoutMinutes`, and `Oldest`
/// because the GC keeps only the most recently finished completed tasks beyond its cap.
pub fn service_json(retention: &Retention) -> Json {
    let minutes = (retention.completed_task_timeout.max(0) + 59) / 60;
    json!({
        "@odata.type": "#TaskService.v1_3_0.TaskService",
        "@odata.id": SERVICE,
        "Id": "TaskService",
        "Name": "Task Service",
        "Description": "XAPI tasks of xapi-taskd",
        "CompletedTaskOverWritePolicy": "Oldest",
        "LifeCycleEventOnTaskStateChange": false,
        "ServiceEnabled": true,
        "DateTime": now_redfish(),
        "TaskAutoDeleteTimeoutMinutes": minutes,
        "Status": {"State": "Enabled", "Health": "OK"},
        "Tasks": {"@odata.id": TASKS},
        "Actions": {
            "#TaskService.DeleteAllCompletedTasks": {"target": DELETE_ALL_COMPLETED},
        },
    })
}

fn now_redfish() -> String {
    let t = time::OffsetDateTime::now_utc();
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}+00:00",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// The uuids of the root tasks among all task records (`task.get_all_records`): tasks
/// without a parent, or whose parent is gone.
pub fn root_uuids(all: &Value) -> Vec<String> {
    let Value::Struct(members) = all else {
        return Vec::new();
    };
    let refs: HashSet<&str> = members.iter().map(|(r, _)| r.as_str()).collect();
    members
        .iter()
        .filter(|(_, rec)| {
            let parent = text(rec, "subtask_of");
            parent.is_empty() || parent == NULL_REF || !refs.contains(parent.as_str())
        })
        .map(|(_, rec)| text(rec, "uuid"))
        .collect()
}

fn collection(id: &str, name: &str, members: Vec<String>) -> Json {
    let count = members.len();
    json!({
        "@odata.type": "#TaskCollection.TaskCollection",
        "@odata.id": id,
        "Name": name,
        "Members": members.into_iter().map(|m| json!({"@odata.id": m})).collect::<Vec<_>>(),
        "Members@odata.count": count,
    })
}

/// `GET /Tasks`: the root tasks.
pub async fn get_collection(svc: &Arc<Service>, caller: &Caller) -> Answer {
    let all = xapi(
        svc,
        "task.get_all_records",
        vec![Value::str(&caller.session_ref)],
    )
    .await;
    match all {
        Ok(all) => {
            let members = root_uuids(&all).iter().map(|u| task_uri(u, None)).collect();
            Answer::ok(collection(TASKS, "Task Collection", members))
        }
        Err(e) => protocol::from_api(TASKS, &e),
    }
}

/// `GET /Tasks/{id}/SubTasks`: every descendant of the root `id`, found by following
/// the `subtasks` links down (work proportional to the tree, not to all tasks).
pub async fn get_subtasks(svc: &Arc<Service>, caller: &Caller, id: &str, uri: &str) -> Answer {
    let found = match find(svc, caller, id, None).await {
        Ok(Some(f)) if f.root_uuid.is_none() => f,
        Ok(_) => return protocol::not_found(uri),
        Err(e) => return protocol::from_api(uri, &e),
    };
    let mut members = Vec::new();
    let mut seen = HashSet::from([found.task_ref.clone()]);
    let mut queue: VecDeque<String> = found.view.subtasks.iter().cloned().collect();
    while let Some(r) = queue.pop_front() {
        if !seen.insert(r.clone()) {
            continue;
        }
        match record(svc, caller, &r).await {
            Ok(Some(v)) => {
                members.push(task_uri(&v.uuid, Some(id)));
                queue.extend(v.subtasks);
            }
            // Destroyed meanwhile: not a member any more.
            Ok(None) => {}
            Err(e) => return protocol::from_api(uri, &e),
        }
    }
    Answer::ok(collection(uri, "Sub-task Collection", members))
}

/// A task found by uuid, with the uuid of its root when it is a sub-task.
struct Found {
    task_ref: String,
    view: TaskRecord,
    root_uuid: Option<String>,
}

/// Deepest parent chain followed; XAPI cannot build cycles (a parent is set once, at
/// creation, to an existing task), this only bounds the work if one ever appeared.
const MAX_DEPTH: usize = 64;

/// `task.get_record`, with a task that no longer exists as `None`.
async fn record(
    svc: &Arc<Service>,
    caller: &Caller,
    r: &str,
) -> Result<Option<TaskRecord>, ApiError> {
    task_record(svc, &caller.session_ref, r).await
}

/// One task, found by uuid (`task.get_by_uuid` and `task.get_record` in one pass) and checked against
/// the path it was asked under: `parent` is the root uuid of a `/SubTasks/{id}` path. A
/// root task answers under `/Tasks/{id}`; a sub-task under its root (and, for
/// convenience, under `/Tasks/{id}` too, with its canonical `@odata.id`). The root is
/// found by following `subtask_of` up to the first task whose parent is gone.
async fn find(
    svc: &Arc<Service>,
    caller: &Caller,
    id: &str,
    parent: Option<&str>,
) -> Result<Option<Found>, ApiError> {
    find_as(svc, &caller.session_ref, id, parent)
        .await
        .map_err(Refusal::into_error)
}

/// [`find`] with a session not checked yet: the first read checks it, and says so when
/// it refuses it.
async fn find_as(
    svc: &Arc<Service>,
    session_ref: &str,
    id: &str,
    parent: Option<&str>,
) -> Result<Option<Found>, Refusal> {
    let Some((task_ref, view)) = task_by_uuid(svc, session_ref, id).await? else {
        return Ok(None);
    };
    let mut root_uuid = None;
    let mut up = view.subtask_of.clone();
    for _ in 0..MAX_DEPTH {
        if up.is_empty() || up == NULL_REF {
            break;
        }
        match task_record(svc, session_ref, &up)
            .await
            .map_err(Refusal::Task)?
        {
            Some(pv) => {
                root_uuid = Some(pv.uuid);
                up = pv.subtask_of;
            }
            None => break,
        }
    }
    if parent.is_some() && root_uuid.as_deref() != parent {
        return Ok(None);
    }
    Ok(Some(Found {
        task_ref,
        view,
        root_uuid,
    }))
}

/// `GET /Tasks/{id}` and `GET /Tasks/{root}/SubTasks/{id}`: always 200 (the Task
/// resource is for observers; the monitor is for the requester).
pub async fn get_task(
    svc: &Arc<Service>,
    caller: &Caller,
    id: &str,
    parent: Option<&str>,
    uri: &str,
) -> Answer {
    task_answer(find(svc, caller, id, parent).await, uri)
}

/// `GET /Tasks/{id}` with an `X-Auth-Token` not checked yet: the task's read checks it
/// (one pass through the pipeline instead of the check and then the read), and a token
/// it refuses is this request's 401, as the check's would have been.
pub async fn get_task_by_token(svc: &Arc<Service>, token: &str, id: &str, uri: &str) -> Answer {
    match find_as(svc, token, id, None).await {
        Err(Refusal::Session(_)) => protocol::unauthorized(),
        found => task_answer(found.map_err(Refusal::into_error), uri),
    }
}

/// The Task document of a task found (always 200: the Task resource is for observers;
/// the monitor is for the requester).
fn task_answer(found: Result<Option<Found>, ApiError>, uri: &str) -> Answer {
    match found {
        Ok(Some(f)) => {
            let mut out = Vec::with_capacity(1024);
            write_task(&mut out, &f.view, f.root_uuid.as_deref());
            Answer::ok_written(out, &TASK)
        }
        Ok(None) => protocol::not_found(uri),
        Err(e) => protocol::from_api(uri, &e),
    }
}

/// `GET` on a monitor: `answer` ([`monitor_answer`] or [`cancel_monitor_answer`]) for
/// the task as it is now; 404 once the task is gone.
pub async fn get_monitor(
    svc: &Arc<Service>,
    caller: &Caller,
    id: &str,
    uri: &str,
    answer: fn(&TaskRecord, Option<&str>, &str) -> Answer,
) -> Answer {
    match find(svc, caller, id, None).await {
        Ok(Some(f)) => answer(&f.view, f.root_uuid.as_deref(), uri),
        Ok(None) => protocol::not_found(uri),
        Err(e) => protocol::from_api(uri, &e),
    }
}

/// A task's own monitor, for the task in a given state (pure, for tests): 202 while it
/// runs; when it is done, the outcome as the original request would have answered it
/// ([`outcome`]); 404 once it is cancelled (TaskService v1.3: the monitor "shall be
/// removed at that time").
pub fn monitor_answer(view: &TaskRecord, root: Option<&str>, uri: &str) -> Answer {
    match outcome(view, root) {
        Some(done) => done,
        None if view.status == "cancelled" => protocol::not_found(uri),
        None => accepted(view, root, uri),
    }
}

/// The answer of a DELETE that cancels task `view`, and of its monitor (pure, for
/// tests). That DELETE is an asynchronous request of its own: it is done when the task
/// is, and a client following it must then get a success, not the 404 of the task's
/// removed monitor (sushy raises on it, redfishtool exits 5). So: 202 while the task is
/// cancelling; 200 with the Task once it is cancelled; if its owner finished it
/// otherwise, the outcome the task's monitor gives. 404 while no cancel was asked for.
pub fn cancel_monitor_answer(view: &TaskRecord, root: Option<&str>, uri: &str) -> Answer {
    if view.status == "cancelled" {
        return Answer::ok(task_json(view, root));
    }
    if !view.cancel_requested && view.status != "cancelling" {
        return protocol::not_found(uri);
    }
    outcome(view, root).unwrap_or_else(|| accepted(view, root, uri))
}

/// A finished operation's answer, as if the request had been synchronous: 200 with the
/// Task (and XAPI's result) for success, an error for failure (400; 500 for
/// `INTERNAL_ERROR`). `None` while the task runs, and for a cancelled task (the
/// monitors differ there).
fn outcome(view: &TaskRecord, root: Option<&str>) -> Option<Answer> {
    match view.status.as_str() {
        "success" => {
            let mut body = task_json(view, root);
            body["Oem"] = json!({"Xapi": {"Result": view.result}});
            Some(Answer::ok(body))
        }
        "failure" => {
            let status =
                if view.error_info.first().map(String::as_str) == Some(codes::INTERNAL_ERROR) {
                    StatusCode::INTERNAL_SERVER_ERROR
                } else {
                    StatusCode::BAD_REQUEST
                };
            let mut info = vec![protocol::base_message("GeneralError", &[])];
            info.extend(messages(view).into_iter().skip(1));
            Some(Answer::json(status, protocol::error_body(info)))
        }
        _ => None,
    }
}

/// A 202 for a task still under way, polled at `monitor` (its `Location`, a path: DMTF's
/// `redfish` joins it to its base URL). The body is the Task without `@odata.id`:
/// sushy's `TaskMonitor.from_response` polls the body's `@odata.id` instead of
/// `Location` when there is one, and the Task resource answers 200 at once.
/// `Content-Location` names that Task resource instead (RFC 9110 §8.7: the body is a
/// representation of it). No `Retry-After`: DSP0266 makes it optional, and no value
/// suits all three client libraries (sushy hands a number of seconds to `time.sleep` as
/// a string, redfishtool cannot subtract an HTTP-date from its naive clock); without it
/// each of them polls every second.
fn accepted(view: &TaskRecord, root: Option<&str>, monitor: &str) -> Answer {
    let mut body = task_json(view, root);
    let task_uri = body.as_object_mut().and_then(|o| o.remove("@odata.id"));
    let answer =
        Answer::json(StatusCode::ACCEPTED, body).header(header::LOCATION, monitor.to_string());
    match task_uri {
        Some(Json::String(t)) => answer.header(header::CONTENT_LOCATION, t),
        _ => answer,
    }
}

/// `DELETE` on a Task, sub-task or task monitor: an unfinished task gets XAPI's
/// `task.cancel`, answered as its cancel monitor answers now (202 with `Location` that
/// monitor while the owner has not finished the task; XAPI's cancel only asks); a
/// finished one `task.destroy` (204). XAPI's ownership rule decides who may (403
/// otherwise). The monitor of a cancelled task is gone (404), as its `GET` says.
pub async fn delete(
    svc: &Arc<Service>,
    caller: &Caller,
    id: &str,
    parent: Option<&str>,
    monitor: bool,
    uri: &str,
) -> Answer {
    let (task_ref, view) = match find(svc, caller, id, parent).await {
        Ok(Some(f)) if !(monitor && f.view.status == "cancelled") => (f.task_ref, f.view),
        Ok(_) => return protocol::not_found(uri),
        Err(e) => return protocol::from_api(uri, &e),
    };
    let session = Value::str(&caller.session_ref);
    if view.is_completed() {
        return match xapi(svc, "task.destroy", vec![session, Value::str(&task_ref)]).await {
            Ok(_) => Answer::empty(StatusCode::NO_CONTENT),
            Err(e) => protocol::from_api(uri, &e),
        };
    }
    if let Err(e) = xapi(
        svc,
        "task.cancel",
        vec![session.clone(), Value::str(&task_ref)],
    )
    .await
    {
        return protocol::from_api(uri, &e);
    }
    // Answer from the task as it is now (its owner may already have finished it).
    match find(svc, caller, id, None).await {
        Ok(Some(f)) => {
            cancel_monitor_answer(&f.view, f.root_uuid.as_deref(), &cancel_monitor_uri(id))
        }
        Ok(None) => Answer::empty(StatusCode::NO_CONTENT),
        Err(e) => protocol::from_api(uri, &e),
    }
}

/// `POST …/Actions/TaskService.DeleteAllCompletedTasks` (TaskService v1.3): XAPI's
/// `task.destroy` on every completed task. Those the caller may not destroy (other users'
/// tasks without `task.destroy/any`) are kept, and the answer says how many.
pub async fn delete_all_completed(svc: &Arc<Service>, caller: &Caller) -> Answer {
    let session = Value::str(&caller.session_ref);
    let all = match xapi(svc, "task.get_all_records", vec![session.clone()]).await {
        Ok(Value::Struct(members)) => members,
        Ok(_) => Vec::new(),
        Err(e) => return protocol::from_api(DELETE_ALL_COMPLETED, &e),
    };
    let mut kept = 0usize;
    for (r, rec) in &all {
        if !TaskRecord::from_record(rec).is_completed() {
            continue;
        }
        match xapi(svc, "task.destroy", vec![session.clone(), Value::str(r)]).await {
            Ok(_) => {}
            Err(e) if e.code == codes::RBAC_PERMISSION_DENIED => kept += 1,
            // Destroyed meanwhile, by someone else or the GC.
            Err(e) if e.code == codes::HANDLE_INVALID => {}
            Err(e) => return protocol::from_api(DELETE_ALL_COMPLETED, &e),
        }
    }
    let mut info = vec![protocol::base_message("Success", &[])];
    if kept > 0 {
        info.push(protocol::xapi_error_list_message(&[
            codes::RBAC_PERMISSION_DENIED.to_string(),
            "task.destroy/any".to_string(),
            format!("{kept} completed tasks of other users were kept"),
        ]));
    }
    Answer::ok(json!({ "@Message.ExtendedInfo": info }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(status: &str) -> TaskRecord {
        TaskRecord {
            uuid: "0b5e1f9c-6c1e-4a3c-9d7e-6f1a2b3c4d5e".into(),
            name_label: "Async.VM.clone".into(),
            name_description: "".into(),
            status: status.into(),
            cancel_requested: false,
            progress: 0.5,
            created: "20261123T00:55:00Z".into(),
            finished: "19700101T00:00:00Z".into(),
            result: "".into(),
            error_info: vec![],
            subtask_of: NULL_REF.into(),
            subtasks: vec![],
            ..TaskRecord::default()
        }
    }

    /// The written Task is what serde_json writes for the same document (members in key
    /// order, its escaping), for every status, with and without a root, description,
    /// errors, and characters JSON escapes: the bytes the resource had as a `json!` value.
    #[test]
    fn written_tasks_are_serde_jsons_bytes() {
        for status in ["pending", "cancelling", "success", "failure", "cancelled"] {
            for root in [None, Some("root-uuid")] {
                let mut v = view(status);
                v.finished = "20261123T01:00:00Z".into();
                if status == "failure" {
                    v.error_info = vec!["E\"".into(), "p\n".into()];
                }
                for (label, description) in [("", ""), ("a \"b\" \\ \u{1} é", "d")] {
                    v.name_label = label.into();
                    v.name_description = description.into();
                    let mut out = Vec::new();
                    write_task(&mut out, &v, root);
                    let value: Json = serde_json::from_slice(&out).expect("JSON");
                    assert_eq!(
                        String::from_utf8(out).unwrap(),
                        serde_json::to_string(&value).unwrap(),
                        "{status} {root:?} {label:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn status_maps_to_state_and_health() {
        assert_eq!(state("pending", false), ("Running", None));
        assert_eq!(state("pending", true), ("Cancelling", None));
        assert_eq!(state("cancelling", false), ("Cancelling", None));
        assert_eq!(state("success", false), ("Completed", Some("OK")));
        assert_eq!(state("failure", false), ("Exception", Some("Critical")));
        assert_eq!(state("cancelled", true), ("Cancelled", Some("Warning")));
    }

    #[test]
    fn progress_is_clamped_and_rounded() {
        assert_eq!(percent(0.0), 0);
        assert_eq!(percent(0.456), 46);
        assert_eq!(percent(1.0), 100);
        assert_eq!(percent(7.0), 100);
        assert_eq!(percent(-1.0), 0);
        assert_eq!(percent(f64::NAN), 0);
    }

    #[test]
    fn dates_convert_and_the_epoch_is_never() {
        assert_eq!(
            redfish_date("20261123T00:55:07Z").as_deref(),
            Some("2026-11-23T00:55:07+00:00")
        );
        assert_eq!(redfish_date("19700101T00:00:00Z"), None);
        assert_eq!(redfish_date("garbage"), None);
    }

    #[test]
    fn running_task_json() {
        let j = task_json(&view("pending"), None);
        assert_eq!(j["@odata.type"], "#Task.v1_7_4.Task");
        assert_eq!(
            j["@odata.id"],
            "/redfish/v1/TaskService/Tasks/0b5e1f9c-6c1e-4a3c-9d7e-6f1a2b3c4d5e"
        );
        assert_eq!(j["Id"], "0b5e1f9c-6c1e-4a3c-9d7e-6f1a2b3c4d5e");
        assert_eq!(j["Name"], "Async.VM.clone");
        assert_eq!(j["TaskState"], "Running");
        assert_eq!(j["PercentComplete"], 50);
        assert_eq!(j["StartTime"], "2026-11-23T00:55:00+00:00");
        assert!(j.get("EndTime").is_none());
        assert!(j.get("TaskStatus").is_none());
        assert_eq!(
            j["TaskMonitor"],
            "/redfish/v1/TaskService/TaskMonitors/0b5e1f9c-6c1e-4a3c-9d7e-6f1a2b3c4d5e"
        );
        assert!(
            j["SubTasks"]["@odata.id"]
                .as_str()
                .unwrap()
                .ends_with("/SubTasks")
        );
        assert_eq!(j["Messages"][0]["MessageId"], "TaskEvent.1.0.5.TaskStarted");
        assert_eq!(j["Messages"].as_array().unwrap().len(), 1);
    }

    #[test]
    fn finished_tasks_have_end_time_status_and_outcome_message() {
        let mut v = view("success");
        v.finished = "20261123T01:00:00Z".into();
        let j = task_json(&v, None);
        assert_eq!(j["TaskState"], "Completed");
        assert_eq!(j["TaskStatus"], "OK");
        assert_eq!(j["EndTime"], "2026-11-23T01:00:00+00:00");
        assert_eq!(
            j["Messages"][1]["MessageId"],
            "TaskEvent.1.0.5.TaskCompletedOK"
        );

        // A record whose `finished` is XAPI's epoch (never finished): no EndTime.
        let j = task_json(&view("success"), None);
        assert!(j.get("EndTime").is_none());

        let mut v = view("failure");
        v.error_info = vec!["VM_BAD_POWER_STATE".into(), "OpaqueRef:x".into()];
        let j = task_json(&v, None);
        assert_eq!(j["TaskState"], "Exception");
        assert_eq!(j["TaskStatus"], "Critical");
        assert_eq!(j["Messages"][1]["MessageId"], "TaskEvent.1.0.5.TaskAborted");
        assert_eq!(
            j["Messages"][2]["MessageId"],
            "XapiTask.1.0.0.VM_BAD_POWER_STATE"
        );
        assert_eq!(j["Messages"][2]["MessageArgs"][0], "OpaqueRef:x");

        let j = task_json(&view("cancelled"), None);
        assert_eq!(j["TaskStatus"], "Warning");
        assert_eq!(
            j["Messages"][1]["MessageId"],
            "TaskEvent.1.0.5.TaskCancelled"
        );
        assert!(j.get("TaskMonitor").is_none());
    }

    #[test]
    fn subtasks_live_under_their_root_and_have_no_subtasks_link() {
        let j = task_json(&view("pending"), Some("root-uuid"));
        assert_eq!(
            j["@odata.id"],
            "/redfish/v1/TaskService/Tasks/root-uuid/SubTasks/0b5e1f9c-6c1e-4a3c-9d7e-6f1a2b3c4d5e"
        );
        assert!(j.get("SubTasks").is_none());
    }

    #[test]
    fn roots_are_tasks_without_a_living_parent() {
        let rec = |uuid: &str, parent: &str| {
            Value::Struct(vec![
                ("uuid".into(), Value::str(uuid)),
                ("subtask_of".into(), Value::str(parent)),
            ])
        };
        let all = Value::Struct(vec![
            ("OpaqueRef:a".into(), rec("a", NULL_REF)),
            ("OpaqueRef:b".into(), rec("b", "OpaqueRef:a")),
            ("OpaqueRef:c".into(), rec("c", "OpaqueRef:b")),
            ("OpaqueRef:d".into(), rec("d", "OpaqueRef:gone")),
        ]);
        assert_eq!(root_uuids(&all), vec!["a".to_string(), "d".to_string()]);
    }

    fn has(a: &Answer, name: &str, value: &str) -> bool {
        a.headers.iter().any(|(n, v)| n == name && v == value)
    }

    fn body(a: &Answer) -> &Json {
        match &a.body {
            protocol::Body::Json(j) => j,
            other => panic!("a JSON body, not {other:?}"),
        }
    }

    #[test]
    fn monitor_answers_follow_the_task() {
        let uri = "/redfish/v1/TaskService/TaskMonitors/x";
        let running = monitor_answer(&view("pending"), None, uri);
        assert_eq!(running.status, StatusCode::ACCEPTED);
        assert!(has(&running, "location", uri));
        // Where the Task resource is, since the body may not say it (sushy).
        let task = "/redfish/v1/TaskService/Tasks/0b5e1f9c-6c1e-4a3c-9d7e-6f1a2b3c4d5e";
        assert!(has(&running, "content-location", task));
        assert!(body(&running).get("@odata.id").is_none());
        assert_eq!(body(&running)["Id"], "0b5e1f9c-6c1e-4a3c-9d7e-6f1a2b3c4d5e");
        // No value of Retry-After suits sushy and redfishtool both.
        assert!(!running.headers.iter().any(|(n, _)| n == "retry-after"));
        let done = monitor_answer(&view("success"), None, uri);
        assert_eq!(done.status, StatusCode::OK);
        assert_eq!(body(&done)["@odata.id"], task);
        let mut v = view("failure");
        v.error_info = vec!["INTERNAL_ERROR".into()];
        assert_eq!(
            monitor_answer(&v, None, uri).status,
            StatusCode::INTERNAL_SERVER_ERROR
        );
        v.error_info = vec!["VM_BAD_POWER_STATE".into()];
        assert_eq!(
            monitor_answer(&v, None, uri).status,
            StatusCode::BAD_REQUEST
        );
        assert_eq!(
            monitor_answer(&view("cancelled"), None, uri).status,
            StatusCode::NOT_FOUND
        );
    }

    #[test]
    fn a_cancel_is_followed_to_a_success() {
        let uri = "/redfish/v1/TaskService/TaskMonitors/cancel-x";
        // No cancel asked for: no such monitor.
        assert_eq!(
            cancel_monitor_answer(&view("pending"), None, uri).status,
            StatusCode::NOT_FOUND
        );
        let mut asked = view("pending");
        asked.cancel_requested = true;
        let cancelling = cancel_monitor_answer(&asked, None, uri);
        assert_eq!(cancelling.status, StatusCode::ACCEPTED);
        assert!(has(&cancelling, "location", uri));
        assert_eq!(body(&cancelling)["TaskState"], "Cancelling");
        assert!(body(&cancelling).get("@odata.id").is_none());
        assert_eq!(
            cancel_monitor_answer(&view("cancelling"), None, uri).status,
            StatusCode::ACCEPTED
        );
        // Cancelled: the DELETE succeeded (where the task's own monitor is gone).
        asked.status = "cancelled".into();
        let done = cancel_monitor_answer(&asked, None, uri);
        assert_eq!(done.status, StatusCode::OK);
        assert_eq!(body(&done)["TaskState"], "Cancelled");
        assert!(body(&done)["@odata.id"].is_string());
        // The owner finished it anyway: what the task's monitor says.
        asked.status = "success".into();
        assert_eq!(
            cancel_monitor_answer(&asked, None, uri).status,
            StatusCode::OK
        );
        asked.status = "failure".into();
        asked.error_info = vec!["VM_BAD_POWER_STATE".into()];
        assert_eq!(
            cancel_monitor_answer(&asked, None, uri).status,
            StatusCode::BAD_REQUEST
        );
        assert_eq!(
            cancel_monitor_uri("x"),
            "/redfish/v1/TaskService/TaskMonitors/cancel-x"
        );
    }
}
