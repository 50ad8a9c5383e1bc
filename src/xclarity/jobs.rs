//! `/tasks`: LXCA jobs as XAPI tasks. Reads and writes go through the XAPI pipeline with
//! the caller's session, so the face sees exactly what XML-RPC clients see, and its
//! writes produce the same events and obey the same ownership rule. The mapping itself is
//! in [`super::mapping`].
//!
//! - `GET /tasks[/{ids}]` always answers a JSON array (pylxca slices it); an unknown id is
//!   404, never an empty list. Without ids: the top-level jobs (tasks that are nobody's
//!   subtask, or whose parent is gone), oldest first, each with its `children` nested;
//!   `?compact=true` leaves `children` out.
//! - `POST /tasks` creates a job and all its `children` (any depth, bounded): the whole
//!   tree is checked first; should a create fail anyway (a quota), what was created is
//!   removed again, so a request creates all of its jobs or none.
//! - `DELETE /tasks/{ids}` deletes each job with its children. XAPI's `task.destroy` of an
//!   unfinished task only marks it (it is deleted when it completes); to an LXCA client a
//!   deleted job is gone, so this face hides marked tasks from every answer.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;

use hyper::StatusCode;
use hyper::header;
use serde_json::{Value as Json, json};

use super::mapping::{self, JobUpdate, NewJob, STATE_KEY, TaskFields};
use super::protocol::{self, Answer};
use super::routes::split_ids;
use super::sessions::Caller;
use super::{field, record_text, xapi, xapi_in};
use crate::api::dispatch::{RequestMeta, Service};
use crate::api::error::{ApiError, codes};
use crate::db::NULL_REF;
use crate::wire::value::Value;

/// Deepest subtask chain followed when a job is shown (XAPI cannot build cycles; this
/// only bounds the work if one ever appeared).
const MAX_DEPTH: usize = 64;

/// A task with its links, as the job view needs it.
#[derive(Debug, Clone)]
pub struct Node {
    pub r: String,
    pub fields: TaskFields,
    pub parent: String,
    /// In creation order.
    pub subtasks: Vec<String>,
    /// Marked by a deferred `task.destroy`: gone, as far as LXCA clients are concerned.
    pub deleted: bool,
}

impl Node {
    pub fn from_record(r: &str, rec: &Value) -> Node {
        let ops = |op: &str| {
            matches!(field(rec, "current_operations"),
                Some(Value::Struct(ops)) if ops.iter().any(|(_, v)| v.as_str() == Some(op)))
        };
        let refs = |name: &str| match field(rec, name) {
            Some(Value::Array(items)) => items
                .iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect(),
            _ => Vec::new(),
        };
        let other_config = match field(rec, "other_config") {
            Some(Value::Struct(m)) => m
                .iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                .collect(),
            _ => Vec::new(),
        };
        Node {
            r: r.to_string(),
            fields: TaskFields {
                uuid: record_text(rec, "uuid"),
                name_label: record_text(rec, "name_label"),
                name_description: record_text(rec, "name_description"),
                status: record_text(rec, "status"),
                cancel_requested: ops("cancel"),
                progress: match field(rec, "progress") {
                    Some(Value::Double(f)) => *f,
                    Some(Value::Int(i)) => *i as f64,
                    _ => 0.0,
                },
                created: record_text(rec, "created"),
                finished: record_text(rec, "finished"),
                other_config,
            },
            parent: record_text(rec, "subtask_of"),
            subtasks: refs("subtasks"),
            deleted: ops("destroy"),
        }
    }
}

/// Tasks as the job views need them, by ref: all of them (the list of every job), or only
/// the trees of the jobs a request names.
pub struct Tasks {
    pub by_ref: HashMap<String, Node>,
    /// jobUID → ref.
    by_uuid: HashMap<String, String>,
}

impl Tasks {
    /// Every task (for the list of all jobs).
    pub async fn all(svc: &Arc<Service>, caller: &Caller) -> Result<Tasks, ApiError> {
        let all = xapi(
            svc,
            "task.get_all_records",
            vec![Value::str(&caller.session_ref)],
        )
        .await?;
        let nodes = match all {
            Value::Struct(members) => members
                .iter()
                .map(|(r, rec)| Node::from_record(r, rec))
                .collect(),
            _ => Vec::new(),
        };
        Ok(Tasks::from_nodes(nodes))
    }

    /// Only the jobs named by `ids` (404 for the first unknown or deleted one, before
    /// anything is changed) and, with `descendants`, all their descendants: work in
    /// proportion to those trees, not to all tasks (`task.get_by_uuid`, then
    /// `task.get_record` down the `subtasks` links).
    pub async fn named(
        svc: &Arc<Service>,
        caller: &Caller,
        ids: &[String],
        descendants: bool,
    ) -> Result<Tasks, Answer> {
        let s = Value::str(&caller.session_ref);
        let gone = |id: &str| protocol::not_found(&format!("Job {id}"));
        let mut nodes = Vec::new();
        let mut seen = HashSet::new();
        let mut queue = VecDeque::new();
        for id in ids {
            let r = match xapi(svc, "task.get_by_uuid", vec![s.clone(), Value::str(id)]).await {
                Ok(v) => v.as_str().unwrap_or_default().to_string(),
                Err(e) if e.code == codes::UUID_INVALID => return Err(gone(id)),
                Err(e) => return Err(protocol::from_api(&format!("Job {id}"), &e)),
            };
            let node = record(svc, &s, &r)
                .await
                .map_err(|e| protocol::from_api(&format!("Job {id}"), &e))?
                .filter(|n| !n.deleted)
                .ok_or_else(|| gone(id))?;
            if seen.insert(r) {
                queue.extend(node.subtasks.iter().cloned());
                nodes.push(node);
            }
        }
        while descendants && let Some(r) = queue.pop_front() {
            if !seen.insert(r.clone()) {
                continue;
            }
            let found = record(svc, &s, &r)
                .await
                .map_err(|e| protocol::from_api("A child job", &e))?;
            // Destroyed meanwhile, or deleted: not a child any more.
            if let Some(n) = found.filter(|n| !n.deleted) {
                queue.extend(n.subtasks.iter().cloned());
                nodes.push(n);
            }
        }
        Ok(Tasks::from_nodes(nodes))
    }

    /// The tasks among `nodes` that are not deleted.
    pub fn from_nodes(nodes: Vec<Node>) -> Tasks {
        let by_ref: HashMap<String, Node> = nodes
            .into_iter()
            .filter(|n| !n.deleted)
            .map(|n| (n.r.clone(), n))
            .collect();
        let by_uuid = by_ref
            .values()
            .map(|n| (n.fields.uuid.clone(), n.r.clone()))
            .collect();
        Tasks { by_ref, by_uuid }
    }

    /// The (not deleted, loaded) task with this jobUID.
    pub fn find(&self, uuid: &str) -> Option<&Node> {
        self.by_uuid.get(uuid).and_then(|r| self.by_ref.get(r))
    }

    /// Each id's task, or 404 naming the first unknown one: every id is resolved before
    /// anything is changed, so one unknown id changes nothing.
    pub fn resolve(&self, ids: &[String]) -> Result<Vec<&Node>, Answer> {
        ids.iter()
            .map(|id| {
                self.find(id)
                    .ok_or_else(|| protocol::not_found(&format!("Job {id}")))
            })
            .collect()
    }

    /// The children of a task that still exist, in creation order.
    pub fn children(&self, n: &Node) -> Vec<&Node> {
        n.subtasks
            .iter()
            .filter_map(|r| self.by_ref.get(r))
            .collect()
    }

    /// Top-level tasks: nobody's subtask, or their parent is gone; oldest first.
    pub fn roots(&self) -> Vec<&Node> {
        let mut roots: Vec<&Node> = self
            .by_ref
            .values()
            .filter(|n| n.parent == NULL_REF || !self.by_ref.contains_key(&n.parent))
            .collect();
        roots.sort_by(|a, b| {
            (&a.fields.created, &a.fields.uuid).cmp(&(&b.fields.created, &b.fields.uuid))
        });
        roots
    }

    /// The job of `n`, with its children's jobs nested (or none with `compact`).
    pub fn job(&self, n: &Node, compact: bool) -> Json {
        self.job_at(n, compact, 0)
    }

    fn job_at(&self, n: &Node, compact: bool, depth: usize) -> Json {
        if compact {
            return mapping::job_json(&n.fields, None);
        }
        let children = if depth >= MAX_DEPTH {
            Vec::new()
        } else {
            self.children(n)
                .into_iter()
                .map(|c| self.job_at(c, false, depth + 1))
                .collect()
        };
        mapping::job_json(&n.fields, Some(children))
    }

    /// `n` and all its descendants, children before their parent.
    fn post_order<'a>(&'a self, n: &'a Node, out: &mut Vec<&'a Node>, depth: usize) {
        if depth < MAX_DEPTH {
            for c in self.children(n) {
                self.post_order(c, out, depth + 1);
            }
        }
        out.push(n);
    }
}

/// `GET /tasks` and `GET /tasks/{ids}`.
pub async fn get(
    svc: &Arc<Service>,
    caller: &Caller,
    ids: Option<&[String]>,
    compact: bool,
) -> Answer {
    let loaded = match ids {
        None => Tasks::all(svc, caller)
            .await
            .map_err(|e| protocol::from_api("The job list", &e)),
        Some(ids) => Tasks::named(svc, caller, ids, !compact).await,
    };
    let tasks = match loaded {
        Ok(t) => t,
        Err(a) => return a,
    };
    let nodes = match ids {
        None => tasks.roots(),
        Some(ids) => match tasks.resolve(ids) {
            Ok(n) => n,
            Err(a) => return a,
        },
    };
    Answer::ok(Json::Array(
        nodes.iter().map(|n| tasks.job(n, compact)).collect(),
    ))
}

/// `POST /tasks`: the job tree in the body, created in one request. 201 with the new
/// `jobUID` (and the client's `customUid`, which LXCA's response associates with it) and
/// `Location: /tasks/{jobUID}`.
pub async fn create(svc: &Arc<Service>, caller: &Caller, body: &Json) -> Answer {
    let job = match mapping::parse_job(body, &caller.user) {
        Ok(j) => j,
        Err(e) => return protocol::bad_request(&e.0),
    };
    // In a task of its own: should the client go away half-way (hyper then drops this
    // request's future), the tree is still finished, or undone, rather than left half-made.
    let (svc2, caller2) = (svc.clone(), caller.clone());
    let outcome = tokio::spawn(async move {
        let mut made = Vec::with_capacity(job.count());
        let result = create_tree(&svc2, &caller2, &job, &mut made).await;
        if result.is_err() {
            undo(&svc2, &caller2, &made).await;
        }
        result
    })
    .await;
    let root = match outcome {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => return protocol::from_api("The parent job", &e),
        Err(e) => {
            tracing::error!("a job create panicked: {e}");
            return protocol::from_api("The job", &ApiError::internal("job create failed"));
        }
    };
    let uuid = match xapi(
        svc,
        "task.get_uuid",
        vec![Value::str(&caller.session_ref), Value::str(&root)],
    )
    .await
    {
        Ok(v) => v.as_str().unwrap_or_default().to_string(),
        Err(e) => return protocol::from_api("The new job", &e),
    };
    let mut reply = json!({"jobUID": uuid});
    if let Some(c) = body.get("customUid").filter(|c| !c.is_null()) {
        reply["customUid"] = c.clone();
    }
    Answer::json(StatusCode::CREATED, reply).header(header::LOCATION, format!("/tasks/{uuid}"))
}

/// Creates `job`, then its children as its subtasks, depth first; every task made is
/// pushed on `made`, so that a failure can undo them. Returns the job's ref.
async fn create_tree(
    svc: &Arc<Service>,
    caller: &Caller,
    job: &NewJob,
    made: &mut Vec<String>,
) -> Result<String, ApiError> {
    // An explicit stack of (job, its parent's ref): no recursion in an async fn.
    let mut stack: Vec<(&NewJob, Option<String>)> = vec![(job, None)];
    let mut first = None;
    while let Some((j, parent)) = stack.pop() {
        let r = create_one(svc, caller, j, parent.as_deref(), made).await?;
        first.get_or_insert_with(|| r.clone());
        // Pushed in reverse so that children are created, and listed, in their order.
        for c in j.children.iter().rev() {
            stack.push((c, Some(r.clone())));
        }
    }
    Ok(first.unwrap_or_default())
}

async fn create_one(
    svc: &Arc<Service>,
    caller: &Caller,
    job: &NewJob,
    parent: Option<&str>,
    made: &mut Vec<String>,
) -> Result<String, ApiError> {
    let session = Value::str(&caller.session_ref);
    let meta = RequestMeta {
        subtask_of: parent.map(str::to_string),
        ..RequestMeta::default()
    };
    let r = xapi_in(
        svc,
        "task.create",
        vec![
            session.clone(),
            Value::str(&job.label),
            Value::str(&job.description),
        ],
        &meta,
    )
    .await?;
    let r = r.as_str().unwrap_or_default().to_string();
    made.push(r.clone());
    let task = Value::str(&r);
    if !job.other_config.is_empty() {
        let map = job
            .other_config
            .iter()
            .map(|(k, v)| (k.clone(), Value::str(v)))
            .collect();
        xapi(
            svc,
            "task.set_other_config",
            vec![session.clone(), task.clone(), Value::Struct(map)],
        )
        .await?;
    }
    if let Some(p) = job.progress {
        xapi(
            svc,
            "task.set_progress",
            vec![session.clone(), task.clone(), Value::Double(p)],
        )
        .await?;
    }
    if let Some(state) = job.state.filter(|s| s.status != "pending") {
        xapi(
            svc,
            "task.set_status",
            vec![session, task, Value::str(state.status)],
        )
        .await?;
    }
    Ok(r)
}

/// Removes the tasks of a create that failed half-way, children first: each is made
/// completed (so that `task.destroy` deletes it rather than marking it), then destroyed.
async fn undo(svc: &Arc<Service>, caller: &Caller, made: &[String]) {
    let session = Value::str(&caller.session_ref);
    for r in made.iter().rev() {
        let task = Value::str(r);
        let failed = xapi(
            svc,
            "task.set_status",
            vec![session.clone(), task.clone(), Value::str("failure")],
        )
        .await;
        let destroyed = xapi(svc, "task.destroy", vec![session.clone(), task]).await;
        if let Err(e) = failed.and(destroyed) {
            tracing::warn!("could not remove task {r} of a failed job create: {e}");
        }
    }
}

/// `PUT /tasks` `{"action": "cancel", "list": [ids]}`: XAPI's `task.cancel` of each
/// (which records the request; the job shows `Cancelling` until its owner finishes it).
/// Ids are trimmed (pylxca splits `"127, 140"` on the comma only).
pub async fn cancel(svc: &Arc<Service>, caller: &Caller, body: &Json) -> Answer {
    let Json::Object(obj) = body else {
        return protocol::bad_request(
            "the body must be a JSON object: {\"action\": \"cancel\", \"list\": [job ids]}",
        );
    };
    match obj.get("action").and_then(Json::as_str) {
        Some(a) if a.eq_ignore_ascii_case("cancel") => {}
        Some(a) if a.eq_ignore_ascii_case("delete") => {
            return protocol::bad_request(
                "action: deleting with PUT /tasks is not supported (use DELETE /tasks/{job_list})",
            );
        }
        _ => return protocol::bad_request("action: must be \"cancel\""),
    }
    let Some(Json::Array(list)) = obj.get("list") else {
        return protocol::bad_request("list: must be an array of job ids");
    };
    let mut text = Vec::with_capacity(list.len());
    for v in list {
        match v {
            Json::String(s) => text.push(s.clone()),
            Json::Number(n) => text.push(n.to_string()),
            other => return protocol::bad_request(&format!("list: {other} is not a job id")),
        }
    }
    if text.is_empty() {
        return protocol::bad_request("list: names no job");
    }
    let ids = match split_ids(&text.join(",")) {
        Ok(ids) => ids,
        Err(e) => return protocol::bad_request(&format!("list: {e}")),
    };
    each_job(svc, caller, &ids, |svc, caller, node| {
        let params = vec![Value::str(&caller.session_ref), Value::str(&node.r)];
        Box::pin(async move {
            xapi(svc, "task.cancel", params)
                .await
                .map(|_| ())
                .map_err(|e| protocol::from_api(&format!("Job {}", node.fields.uuid), &e))
        })
    })
    .await
}

/// `PUT /tasks/{ids}`: pylxca's update (`jobState`, `percentage`) and LXCA's cancel
/// callback, on each job. Progress first, then the kept finer state, then the status, so
/// that a watcher never sees a new status with a stale kept state.
pub async fn update(svc: &Arc<Service>, caller: &Caller, ids: &[String], body: &Json) -> Answer {
    let u = match mapping::parse_update(body, ids) {
        Ok(u) => u,
        Err(e) => return protocol::bad_request(&e.0),
    };
    each_job(svc, caller, ids, |svc, caller, node| {
        let u = u.clone();
        Box::pin(async move {
            update_one(svc, caller, &node.r, &u)
                .await
                .map_err(|e| protocol::from_api(&format!("Job {}", node.fields.uuid), &e))
        })
    })
    .await
}

async fn update_one(
    svc: &Arc<Service>,
    caller: &Caller,
    r: &str,
    u: &JobUpdate,
) -> Result<(), ApiError> {
    let s = || Value::str(&caller.session_ref);
    let t = || Value::str(r);
    if let Some(p) = u.progress {
        xapi(svc, "task.set_progress", vec![s(), t(), Value::Double(p)]).await?;
    }
    let mut set: Vec<(String, Option<String>)> = u
        .set
        .iter()
        .map(|(k, v)| (k.clone(), Some(v.clone())))
        .collect();
    if let Some(state) = u.state {
        let kept = state.keep.then(|| json!(state.job_state).to_string());
        set.push((STATE_KEY.to_string(), kept));
    }
    for (key, value) in set {
        xapi(
            svc,
            "task.remove_from_other_config",
            vec![s(), t(), Value::str(&key)],
        )
        .await?;
        if let Some(v) = value {
            xapi(
                svc,
                "task.add_to_other_config",
                vec![s(), t(), Value::str(&key), Value::str(&v)],
            )
            .await?;
        }
    }
    if let Some(state) = u.state {
        xapi(
            svc,
            "task.set_status",
            vec![s(), t(), Value::str(state.status)],
        )
        .await?;
    }
    Ok(())
}

/// `DELETE /tasks/{ids}`: each job with all its children (children first), by XAPI's
/// `task.destroy` (ownership decides who may: 403 otherwise).
pub async fn delete(svc: &Arc<Service>, caller: &Caller, ids: &[String]) -> Answer {
    let tasks = match Tasks::named(svc, caller, ids, true).await {
        Ok(t) => t,
        Err(a) => return a,
    };
    let nodes = match tasks.resolve(ids) {
        Ok(n) => n,
        Err(a) => return a,
    };
    let mut doomed = Vec::new();
    for n in nodes {
        tasks.post_order(n, &mut doomed, 0);
    }
    let session = Value::str(&caller.session_ref);
    let mut seen = HashSet::new();
    for n in doomed {
        if !seen.insert(n.r.as_str()) {
            continue;
        }
        if let Err(e) = xapi(svc, "task.destroy", vec![session.clone(), Value::str(&n.r)]).await {
            return protocol::from_api(&format!("Job {}", n.fields.uuid), &e);
        }
    }
    Answer::success()
}

/// `task.get_record` of `r` as a node; a task that no longer exists is `None`.
async fn record(svc: &Arc<Service>, session: &Value, r: &str) -> Result<Option<Node>, ApiError> {
    match xapi(svc, "task.get_record", vec![session.clone(), Value::str(r)]).await {
        Ok(rec) => Ok(Some(Node::from_record(r, &rec))),
        Err(e) if e.code == codes::HANDLE_INVALID => Ok(None),
        Err(e) => Err(e),
    }
}

type JobAction<'a> = futures_util::future::BoxFuture<'a, Result<(), Answer>>;

/// Resolves every id first (404 for an unknown one, before any change), then applies
/// `action` to each job in turn; the first failure is the answer.
async fn each_job<F>(svc: &Arc<Service>, caller: &Caller, ids: &[String], action: F) -> Answer
where
    F: for<'a> Fn(&'a Arc<Service>, &'a Caller, Node) -> JobAction<'a>,
{
    let tasks = match Tasks::named(svc, caller, ids, false).await {
        Ok(t) => t,
        Err(a) => return a,
    };
    let nodes: Vec<Node> = match tasks.resolve(ids) {
        Ok(n) => n.into_iter().cloned().collect(),
        Err(a) => return a,
    };
    for n in nodes {
        if let Err(a) = action(svc, caller, n).await {
            return a;
        }
    }
    Answer::success()
}
