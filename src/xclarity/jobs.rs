//! `/tasks`: LXCA jobs as XAPI tasks. Reads and writes go through the XAPI pipeline with
//! the caller's session, so the face sees exactly what XML-RPC clients see, and its
//! writes produce the same events and obey the same ownership rule. The mapping itself is
//! in [`super::mapping`].
//!
//! - `GET /tasks[/{ids}]` always answers a JSON array (pylxca slices it); an unknown id is
//!   404, never an empty list. Without ids: the top-level jobs (tasks that are nobody's
//!   subtask, or whose parent is gone), oldest first, each with its `children` nested;
//!   `?compact=true` leaves `children` out. Trees are shown [`MAX_DEPTH`] levels deep (XAPI
//!   nests without bound; JSON readers have depth limits); in the list of all jobs, a
//!   subtree cut there continues as a top-level job, so every task is listed once. An
//!   answer naming ids is bounded too ([`MAX_REPEATED_JOBS`]).
//! - `POST /tasks` creates a job and all its `children` (any depth, bounded): the whole
//!   tree is checked first; should a create fail anyway (a quota), what was created is
//!   removed again, so a request creates all of its jobs or none.
//! - `DELETE /tasks/{ids}` deletes each job with its children. XAPI's `task.destroy` of an
//!   unfinished task only marks it (it is deleted when it completes); to an LXCA client a
//!   deleted job is gone, so this face hides marked tasks from every answer.

use std::collections::VecDeque;

// FxHash: keyed by refs and uuids the server made (see db's tables).
use rustc_hash::{FxHashMap, FxHashSet};
use std::sync::Arc;

use hyper::StatusCode;
use hyper::header;
use serde_json::{Value as Json, json};

use super::mapping::{self, JobUpdate, MAX_DEPTH, NewJob, STATE_KEY, TaskRecord};
use super::protocol::{self, Answer};
use super::routes::split_ids;
use super::sessions::Caller;
use crate::api::dispatch::Refusal;
use crate::api::dispatch::{RequestMeta, Service};
use crate::api::error::ApiError;
use crate::db::NULL_REF;
use crate::face::xapi::{task_by_uuid, task_record, xapi, xapi_in};
use crate::wire::value::Value;

/// Jobs an answer that names ids may hold beyond the tasks read for it. Naming a job
/// again (or a job and its own child) repeats its tree in the answer, which LXCA clients
/// may do; without a bound, one 37 KB request naming a 500-job tree 1,000 times made the
/// server build a 190 MB answer.
const MAX_REPEATED_JOBS: usize = 10_000;

/// Jobs rendered for one answer: what is left of its budget, and the subtrees cut at the
/// deepest level shown.
struct Render<'a> {
    left: usize,
    cut: Vec<&'a Node>,
}

/// A task with its ref, as the job view needs it.
#[derive(Debug, Clone)]
pub struct Node {
    pub r: String,
    pub fields: TaskRecord,
}

impl Node {
    pub fn from_record(r: &str, rec: &Value) -> Node {
        Node {
            r: r.to_string(),
            fields: TaskRecord::from_record(rec),
        }
    }

    /// Marked by a deferred `task.destroy`: gone, as far as LXCA clients are concerned.
    pub fn deleted(&self) -> bool {
        self.fields.destroy_requested
    }
}

/// Tasks as the job views need them, by ref: all of them (the list of every job), or only
/// the trees of the jobs a request names.
pub struct Tasks {
    /// Each task once (by ref), not deleted.
    nodes: Vec<Node>,
    /// The lookups of more than [`SMALL`] tasks; fewer are searched in `nodes`.
    index: Option<Index>,
}

/// Up to this many tasks are looked up by a search of the list: a GET of one job (the
/// hot read) built two hash maps for it, which cost 1.4k instructions of the request's
/// 36k; eight comparisons of a ref cost less than hashing it once.
const SMALL: usize = 8;

/// Ref → place in `nodes`, and jobUID → place.
struct Index {
    by_ref: FxHashMap<String, usize>,
    by_uuid: FxHashMap<String, usize>,
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
        Tasks::named_as(svc, &caller.session_ref, ids, descendants, true).await
    }

    /// [`Tasks::named`] with a session that is `checked` already or not: if not, the
    /// first job's read checks it (one pass through the pipeline), and a session it
    /// refuses is the request's 401, as the face's own check's would have been.
    pub async fn named_as(
        svc: &Arc<Service>,
        session_ref: &str,
        ids: &[String],
        descendants: bool,
        mut checked: bool,
    ) -> Result<Tasks, Answer> {
        let s = Value::str(session_ref);
        let gone = |id: &str| protocol::not_found(&format!("Job {id}"));
        let mut nodes = Vec::new();
        let mut seen = FxHashSet::default();
        let mut queue = VecDeque::new();
        for id in ids {
            let (r, fields) = task_by_uuid(svc, session_ref, id)
                .await
                .map_err(|e| match e {
                    Refusal::Session(_) if !checked => protocol::unauthorized(),
                    e => protocol::from_api(&format!("Job {id}"), &e.into_error()),
                })?
                .ok_or_else(|| gone(id))?;
            checked = true;
            let node = Some(Node {
                r: r.clone(),
                fields,
            })
            .filter(|n| !n.deleted())
            .ok_or_else(|| gone(id))?;
            if seen.insert(r) {
                queue.extend(node.fields.subtasks.iter().cloned());
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
            if let Some(n) = found.filter(|n| !n.deleted()) {
                queue.extend(n.fields.subtasks.iter().cloned());
                nodes.push(n);
            }
        }
        Ok(Tasks::from_nodes(nodes))
    }

    /// The tasks among `nodes` that are not deleted; a ref given twice is its last node
    /// (as a map's insert would keep it).
    pub fn from_nodes(nodes: Vec<Node>) -> Tasks {
        let mut kept: Vec<Node> = Vec::with_capacity(nodes.len());
        let mut by_ref: FxHashMap<String, usize> = FxHashMap::default();
        let big = nodes.len() > SMALL;
        for n in nodes.into_iter().filter(|n| !n.deleted()) {
            let at = if big {
                by_ref.get(&n.r).copied()
            } else {
                kept.iter().position(|k| k.r == n.r)
            };
            match at {
                Some(i) => kept[i] = n,
                None => {
                    if big {
                        by_ref.insert(n.r.clone(), kept.len());
                    }
                    kept.push(n);
                }
            }
        }
        let index = big.then(|| Index {
            by_uuid: kept
                .iter()
                .enumerate()
                .map(|(i, n)| (n.fields.uuid.clone(), i))
                .collect(),
            by_ref,
        });
        Tasks { nodes: kept, index }
    }

    /// How many tasks were loaded.
    fn count(&self) -> usize {
        self.nodes.len()
    }

    /// The loaded task with this ref.
    pub fn get(&self, r: &str) -> Option<&Node> {
        match &self.index {
            Some(ix) => ix.by_ref.get(r).map(|&i| &self.nodes[i]),
            None => self.nodes.iter().find(|n| n.r == r),
        }
    }

    /// The (not deleted, loaded) task with this jobUID.
    pub fn find(&self, uuid: &str) -> Option<&Node> {
        match &self.index {
            Some(ix) => ix.by_uuid.get(uuid).map(|&i| &self.nodes[i]),
            None => self.nodes.iter().find(|n| n.fields.uuid == uuid),
        }
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
        n.fields
            .subtasks
            .iter()
            .filter_map(|r| self.get(r))
            .collect()
    }

    /// Top-level tasks: nobody's subtask, or their parent is gone; oldest first.
    pub fn roots(&self) -> Vec<&Node> {
        let mut roots: Vec<&Node> = self
            .nodes
            .iter()
            .filter(|n| {
                let parent = &n.fields.subtask_of;
                parent == NULL_REF || self.get(parent).is_none()
            })
            .collect();
        roots.sort_by(|a, b| {
            (&a.fields.created, &a.fields.uuid).cmp(&(&b.fields.created, &b.fields.uuid))
        });
        roots
    }

    /// Every job, for `GET /tasks`: the top-level jobs, oldest first, each with its
    /// children nested; a subtree below the deepest level shown follows as a top-level job
    /// of its own, so that each task is listed once. (`compact`: the top-level jobs alone.)
    /// Each job is written as its JSON document ([`mapping::write_job`]).
    pub fn list_all(&self, compact: bool) -> Vec<Vec<u8>> {
        // Each task once: the budget is only reached if the links ever formed a cycle.
        let mut r = Render {
            left: self.count(),
            cut: Vec::new(),
        };
        let mut out: Vec<Vec<u8>> = self
            .roots()
            .into_iter()
            .filter_map(|n| self.job_at(n, compact, 1, &mut r))
            .collect();
        let mut next = 0;
        while let Some(&n) = r.cut.get(next) {
            next += 1;
            out.extend(self.job_at(n, compact, 1, &mut r));
        }
        out
    }

    /// The jobs named by `ids`, in their order (404 for an unknown one). The answer holds
    /// at most as many jobs as the tasks read for it, or [`MAX_REPEATED_JOBS`]: 400 beyond.
    pub fn list_named(&self, ids: &[String], compact: bool) -> Result<Vec<Vec<u8>>, Answer> {
        let budget = self.count().max(MAX_REPEATED_JOBS);
        let mut r = Render {
            left: budget,
            cut: Vec::new(),
        };
        let too_many = || {
            protocol::bad_request(&format!(
                "the answer would hold more than {budget} jobs, as the jobs named repeat each \
                 other's trees: name each job once (its children come with it), or ask with \
                 compact=true"
            ))
        };
        self.resolve(ids)?
            .into_iter()
            .map(|n| self.job_at(n, compact, 1, &mut r).ok_or_else(too_many))
            .collect()
    }

    /// The job of `n` (at `level`, 1 at the top) with its children's jobs nested down to
    /// [`MAX_DEPTH`] levels, the subtrees below that put in `r.cut`; none with `compact`.
    /// None once the budget is spent.
    fn job_at<'a>(
        &'a self,
        n: &'a Node,
        compact: bool,
        level: usize,
        r: &mut Render<'a>,
    ) -> Option<Vec<u8>> {
        // A job without children is about 600 bytes.
        let mut out = Vec::with_capacity(1024);
        self.write_job_at(&mut out, n, compact, level, r)?;
        Some(out)
    }

    fn write_job_at<'a>(
        &'a self,
        out: &mut Vec<u8>,
        n: &'a Node,
        compact: bool,
        level: usize,
        r: &mut Render<'a>,
    ) -> Option<()> {
        r.left = r.left.checked_sub(1)?;
        if compact {
            return mapping::write_job(out, &n.fields, None);
        }
        let kids = self.children(n);
        let mut children = |out: &mut Vec<u8>| {
            out.push(b'[');
            if level >= MAX_DEPTH {
                r.cut.extend(kids.iter().copied());
            } else {
                for (i, c) in kids.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    self.write_job_at(out, c, false, level + 1, r)?;
                }
            }
            out.push(b']');
            Some(())
        };
        mapping::write_job(out, &n.fields, Some(&mut children))
    }

    /// The `tops` and all their descendants, however deep, each once, children before
    /// their parent (the order a delete takes).
    fn post_order<'a>(&'a self, tops: &[&'a Node]) -> Vec<&'a Node> {
        let mut out = Vec::new();
        let mut seen = FxHashSet::default();
        // (node, its children are already out): an explicit stack, as trees made over
        // XAPI have no depth bound.
        let mut stack: Vec<(&Node, bool)> = tops.iter().rev().map(|n| (*n, false)).collect();
        while let Some((n, children_out)) = stack.pop() {
            if children_out {
                out.push(n);
            } else if seen.insert(n.r.as_str()) {
                stack.push((n, true));
                stack.extend(self.children(n).into_iter().rev().map(|c| (c, false)));
            }
        }
        out
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
    answer(loaded, ids, compact)
}

/// `GET /tasks/{ids}` with a session not checked yet (see [`Tasks::named_as`]); `ids` is
/// not empty.
pub async fn get_named_unchecked(
    svc: &Arc<Service>,
    session_ref: &str,
    ids: &[String],
    compact: bool,
) -> Answer {
    let loaded = Tasks::named_as(svc, session_ref, ids, !compact, false).await;
    answer(loaded, Some(ids), compact)
}

/// The jobs of a `GET /tasks` answer, from the tasks loaded for it.
fn answer(loaded: Result<Tasks, Answer>, ids: Option<&[String]>, compact: bool) -> Answer {
    let tasks = match loaded {
        Ok(t) => t,
        Err(a) => return a,
    };
    let jobs = match ids {
        None => tasks.list_all(compact),
        Some(ids) => match tasks.list_named(ids, compact) {
            Ok(j) => j,
            Err(a) => return a,
        },
    };
    Answer::ok_written(json_array(&jobs))
}

/// The JSON array of documents already written.
fn json_array(items: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::with_capacity(items.iter().map(|i| i.len() + 1).sum::<usize>() + 2);
    out.push(b'[');
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(item);
    }
    out.push(b']');
    out
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

/// `DELETE /tasks/{ids}`: each job with all its descendants however deep (children
/// first), by XAPI's `task.destroy` (ownership decides who may: 403 otherwise).
pub async fn delete(svc: &Arc<Service>, caller: &Caller, ids: &[String]) -> Answer {
    let tasks = match Tasks::named(svc, caller, ids, true).await {
        Ok(t) => t,
        Err(a) => return a,
    };
    let nodes = match tasks.resolve(ids) {
        Ok(n) => n,
        Err(a) => return a,
    };
    let session = Value::str(&caller.session_ref);
    for n in tasks.post_order(&nodes) {
        if let Err(e) = xapi(svc, "task.destroy", vec![session.clone(), Value::str(&n.r)]).await {
            return protocol::from_api(&format!("Job {}", n.fields.uuid), &e);
        }
    }
    Answer::success()
}

/// `task.get_record` of `r` as a node; a task that no longer exists is `None`.
async fn record(svc: &Arc<Service>, session: &Value, r: &str) -> Result<Option<Node>, ApiError> {
    let session = session.as_str().unwrap_or_default();
    Ok(task_record(svc, session, r).await?.map(|fields| Node {
        r: r.to_string(),
        fields,
    }))
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

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// Task `i` of a tree given as (parent index) per task; refs `r<i>`, uuids `u<i>`.
    fn tree(parents: &[Option<usize>]) -> Tasks {
        let nodes = parents
            .iter()
            .enumerate()
            .map(|(i, p)| Node {
                r: format!("r{i}"),
                fields: TaskRecord {
                    uuid: format!("u{i}"),
                    status: "pending".into(),
                    created: format!("20260101T00:00:{:02}Z", i % 60),
                    subtask_of: p.map_or(NULL_REF.to_string(), |p| format!("r{p}")),
                    subtasks: (0..parents.len())
                        .filter(|c| parents[*c] == Some(i))
                        .map(|c| format!("r{c}"))
                        .collect(),
                    ..TaskRecord::default()
                },
            })
            .collect();
        Tasks::from_nodes(nodes)
    }

    /// `n` tasks, each a subtask of the one before.
    pub(in crate::xclarity) fn chain(n: usize) -> Tasks {
        let parents: Vec<Option<usize>> = (0..n).map(|i| i.checked_sub(1)).collect();
        tree(&parents)
    }

    /// The written jobs, read back by serde_json.
    fn parsed(jobs: Vec<Vec<u8>>) -> Vec<Json> {
        jobs.iter()
            .map(|j| serde_json::from_slice(j).expect("a JSON document"))
            .collect()
    }

    /// (jobUID, level) of every job in `jobs`, children included.
    fn levels(jobs: &[Json], level: usize, out: &mut Vec<(String, usize)>) {
        for j in jobs {
            out.push((j["jobUID"].as_str().unwrap().to_string(), level));
            if let Some(Json::Array(c)) = j.get("children") {
                levels(c, level + 1, out);
            }
        }
    }

    #[test]
    fn a_deep_chain_is_listed_once_and_readable_by_json_parsers() {
        let tasks = chain(100);
        let all = parsed(tasks.list_all(false));
        let mut got = Vec::new();
        levels(&all, 1, &mut got);
        let mut ids: Vec<&str> = got.iter().map(|(u, _)| u.as_str()).collect();
        ids.sort_unstable();
        let mut want: Vec<String> = (0..100).map(|i| format!("u{i}")).collect();
        want.sort_unstable();
        assert_eq!(ids, want, "every task once");
        assert_eq!(got.iter().map(|(_, l)| *l).max(), Some(MAX_DEPTH));
        // The levels below the cut follow as top-level jobs, in order: 0, 32, 64, 96.
        let tops: Vec<&str> = all.iter().map(|j| j["jobUID"].as_str().unwrap()).collect();
        assert_eq!(tops, ["u0", "u32", "u64", "u96"]);
        // serde_json (our own `tasks` command) reads the answer back.
        let text = Json::Array(all).to_string();
        assert!(serde_json::from_str::<Json>(&text).is_ok());
        // By id: the tree, as deep as a POST may create it.
        let named = parsed(tasks.list_named(&["u0".into()], false).unwrap());
        let mut got = Vec::new();
        levels(&named, 1, &mut got);
        assert_eq!(got.len(), MAX_DEPTH);
        assert!(serde_json::from_str::<Json>(&Json::Array(named).to_string()).is_ok());
        // Compact: the top-level jobs alone.
        assert_eq!(tasks.list_all(true).len(), 1);
    }

    #[test]
    fn a_delete_reaches_every_descendant_children_first() {
        let tasks = chain(200);
        let top = tasks.resolve(&["u0".into()]).unwrap();
        let order: Vec<&str> = tasks
            .post_order(&top)
            .iter()
            .map(|n| n.r.as_str())
            .collect();
        let want: Vec<String> = (0..200).rev().map(|i| format!("r{i}")).collect();
        assert_eq!(order, want);
        // Named twice, or with a descendant: each task once, still children first.
        let t = tree(&[None, Some(0), Some(1), Some(0)]);
        let ids: Vec<String> = ["u1", "u0", "u1"].map(String::from).into();
        let order: Vec<&str> = t
            .post_order(&t.resolve(&ids).unwrap())
            .iter()
            .map(|n| n.r.as_str())
            .collect();
        assert_eq!(order, ["r2", "r1", "r3", "r0"]);
    }

    #[test]
    fn naming_a_tree_many_times_cannot_multiply_the_answer() {
        // A job with 60 children: named twice, answered twice.
        let mut parents = vec![None];
        parents.extend(std::iter::repeat_n(Some(0), 60));
        let tasks = tree(&parents);
        let twice = parsed(
            tasks
                .list_named(&["u0".into(), "u0".into()], false)
                .unwrap(),
        );
        assert_eq!(twice.len(), 2);
        assert_eq!(twice[1]["children"].as_array().unwrap().len(), 60);
        // Named 1,000 times it would be 61,000 jobs: refused, naming the way out.
        let many = vec!["u0".to_string(); 1000];
        let refused = tasks.list_named(&many, false).unwrap_err();
        assert_eq!(refused.status, StatusCode::BAD_REQUEST);
        let text = refused.body["messages"][0]["text"].as_str().unwrap();
        assert!(text.contains("name each job once"), "{text}");
        // Compact, each id is one job.
        assert_eq!(tasks.list_named(&many, true).unwrap().len(), 1000);
    }
}
