//! The dispatch pipeline, in xapi's order (spec §1.5, `gen_server.ml`, `server_helpers.ml`):
//! the UTF-8 check of the parameters; the `Async.` prefix; method lookup (exact, then the
//! `class_message` alias); the parameter count (excluding the session); unmarshalling
//! (session first); the session check; async capability; RBAC; the call.
//!
//! The order matters: it decides which error a client sees when a call is wrong in more
//! than one way, and clients (and our tests) depend on that.

use std::borrow::Cow;
use std::sync::Arc;

use super::error::{ApiError, codes};
use super::event::Answer;
use super::handlers::Custom;
use super::marshal::{unmarshal_borrowed, unmarshal_str};
use super::rbac::{self, Caller};
use super::{Api, Handler, Message, event, implicit, session, task};
use crate::connection;
use std::panic::AssertUnwindSafe;

use futures_util::FutureExt;

use crate::db::backend::BackendError;
use crate::db::{Db, TaskRow, TaskStatus, Tx, new_ref, now};
use crate::users::UserStore;
use crate::wire::encode::{Codec, ReplyBuffer};
use crate::wire::value::Value;
use crate::wire::xmlchars;
use crate::wire::xmlrpc::value_fragment;

/// How often `session.last_active` is refreshed (xapi's `threshold_last_active`).
const LAST_ACTIVE_THRESHOLD_SECS: i64 = 600;

/// Everything a call may touch, shared by all connections behind one `Arc`.
pub struct Service {
    pub api: Api,
    pub db: Db,
    pub users: UserStore,
    /// Most unfinished (pending or cancelling) tasks at once; creating one more is
    /// `TOO_MANY_PENDING_TASKS` (xapi's code for the same refusal). The GC's cap only ever
    /// removes completed tasks, so without this a client could grow memory without bound.
    pub max_unfinished_tasks: usize,
    /// Sessions one user may hold (xapi: 500 per originator/user).
    pub max_sessions_per_user: usize,
    /// The garbage collector's rules (also shown by the Redfish TaskService).
    pub retention: crate::api::gc::Retention,
    /// Filter, event and login bounds (`limits.rs`).
    pub limits: super::limits::ApiLimits,
    /// Bounded password work (`login_guard.rs`).
    pub login_guard: super::login_guard::LoginGuard,
    /// The last `event.from` batch, shared by waiters that ask for the same one.
    pub event_batches: super::event::Batches,
    /// The shared deadline buckets of sleeping `event.from` calls.
    pub event_deadlines: super::event::Deadlines,
}

impl Service {
    /// Refuses a new task when the unfinished ones are at the global limit, or when it
    /// does not fit the task limits and its user's quotas (`db::quota`): one user
    /// filling their share leaves everyone else's untouched.
    pub fn check_task_room(
        &self,
        tables: &crate::db::Tables,
        task: &TaskRow,
    ) -> Result<(), ApiError> {
        if tables.unfinished_tasks() >= self.max_unfinished_tasks {
            return Err(ApiError::new(
                codes::TOO_MANY_PENDING_TASKS,
                Vec::<String>::new(),
            ));
        }
        tables.check_new_task(task).map_err(db_error)
    }
}

/// A decoded RPC call, independent of the wire format. The method name is the body's own
/// when the codec could borrow it.
#[derive(Debug, Clone)]
pub struct Call<'a> {
    pub method: Cow<'a, str>,
    pub params: Vec<Value>,
    /// Index of a parameter that was not valid UTF-8 on the wire.
    pub invalid_utf8_param: Option<usize>,
    /// The reader vouches that every parameter string passes the XML character rule
    /// (`MethodCall::chars_ok`, `JsonCall::chars_ok`: its own scans saw no byte that can
    /// start a refused character), so [`dispatch`] need not check them again. `false`
    /// (the rule is checked here) for every call a reader did not vouch for.
    pub chars_checked: bool,
}

/// What the HTTP request says beyond the call itself (spec §1.6).
#[derive(Debug, Clone, Default)]
pub struct RequestMeta {
    /// `task-id: <ref>`: the call runs inside that task (its new tasks become subtasks).
    pub task_id: Option<String>,
    /// `subtask-of: <ref>`: parent of the task an `Async.` call creates (and, our
    /// documented extension, of a `task.create`d task).
    pub subtask_of: Option<String>,
    /// `x-http-other-config-<key>: <value>` headers, copied into an `Async.` call's task
    /// as `other_config["http:<key>"]`.
    pub http_other_config: Vec<(String, String)>,
    /// The codec that will write the reply, when the caller is XML-RPC or JSON-RPC:
    /// records then come back already in that form ([`Value::Encoded`]). Callers that
    /// look into the result (the REST faces, tests) leave it `None`.
    pub codec: Option<Codec>,
    /// The reply's buffer, when the server lends it: a record that is the whole result
    /// is written straight into it (`record::result_record`).
    pub reply: ReplyBuffer,
}

/// The reply: the usual Status envelope, or a bare value (`system.listMethods`).
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    Envelope(Result<Value, ApiError>),
    Bare(Value),
}

/// Context handed to a message implementation.
pub struct Ctx<'a> {
    pub svc: &'a Arc<Service>,
    /// None only for `session.login_with_password`.
    pub caller: Option<Caller<'a>>,
    pub meta: &'a RequestMeta,
    pub msg: &'a Message,
    /// The database task the call runs in (`Async.` calls), if any.
    pub current_task: Option<String>,
}

impl Ctx<'_> {
    /// The caller of a session-taking message.
    pub fn caller(&self) -> &Caller<'_> {
        self.caller
            .as_ref()
            .expect("session-taking messages always have a caller")
    }
}

pub async fn dispatch(svc: &Arc<Service>, call: Call<'_>, meta: &RequestMeta) -> Reply {
    // xapi's dispatcher checks every parameter against its UTF8_XML validator: valid
    // UTF-8 and only characters XML can carry (`wire::xmlchars`). A string that passed
    // one face would otherwise break every XML-RPC reader that is sent it later.
    // The codecs' readers vouch for it when their own scans saw nothing suspect
    // (`chars_checked`): then this pass over every parameter would find nothing.
    let refused = call.invalid_utf8_param.or_else(|| {
        (!call.chars_checked)
            .then(|| call.params.iter().position(|p| !xmlchars::value_ok(p)))
            .flatten()
    });
    if let Some(i) = refused {
        let rendering = call
            .params
            .get(i)
            .map(Value::debug_rendering)
            .unwrap_or_default();
        return Reply::Envelope(Err(ApiError::new(
            codes::INVALID_VALUE,
            ["Invalid UTF-8 string in parameter".to_string(), rendering],
        )));
    }
    // gen_server.ml: `system.isAlive:<anything>` echoes its first parameter.
    if call.method.starts_with("system.isAlive:") {
        return Reply::Envelope(
            call.params
                .first()
                .cloned()
                .ok_or_else(|| ApiError::internal("Failure(\"hd\")")),
        );
    }
    if call.method == "system.listMethods" {
        let names = svc
            .api
            .list_methods()
            .into_iter()
            .map(Value::String)
            .collect();
        return Reply::Bare(Value::Array(names));
    }
    // A call is answered only once what it changed is durable: every write goes through
    // `Db::transact`, which returns only then (group commit: calls that wrote meanwhile
    // share the fsync).
    let wait = match guarded(run(svc, &call, meta), |e| e).await {
        Ok(Answer::Wait(wait)) => wait,
        Ok(Answer::Done(v)) => return Reply::Envelope(Ok(v)),
        Err(e) => return Reply::Envelope(Err(e)),
    };
    // A waiting `event.from` keeps only what its answer needs: the call goes first.
    drop(call);
    Reply::Envelope(guarded(wait.finish(svc, meta), |e| e).await)
}

/// Runs a call with a panic guard: a bug in one call answers `INTERNAL_ERROR` (in the
/// reply, or in its task for `Async.` calls) and the connection and server carry on.
/// Not an `async fn`: an `async fn` keeps its argument and the future it awaits side by
/// side, so each such wrapper doubles the size of the call's future, which is moved into
/// place once per request.
fn guarded<T, E>(
    call: impl std::future::Future<Output = Result<T, E>>,
    refusal: fn(ApiError) -> E,
) -> impl std::future::Future<Output = Result<T, E>> {
    AssertUnwindSafe(call).catch_unwind().map(move |r| {
        r.unwrap_or_else(|_| {
            tracing::error!("a call panicked; answered INTERNAL_ERROR");
            Err(refusal(ApiError::internal("internal error in xapi-taskd")))
        })
    })
}

/// Errors that may only mean "not in this front-end's cache yet" (a shared store whose
/// reads are served from the cache without a sync first).
const MISS_CODES: [&str; 3] = [
    codes::SESSION_INVALID,
    codes::HANDLE_INVALID,
    codes::UUID_INVALID,
];

async fn run(svc: &Arc<Service>, call: &Call<'_>, meta: &RequestMeta) -> Result<Answer, ApiError> {
    // The message is looked up once, for the sync's decision and for the call.
    let (is_async, name) = match call.method.strip_prefix("Async.") {
        Some(rest) => (true, rest),
        None => (false, &*call.method),
    };
    let found = svc.api.lookup(name);
    let writes = match found.map(|(m, _)| m.handler) {
        Some(Handler::Custom(c)) => c.writes(),
        Some(Handler::Implicit(i)) => i.writes(),
        None => false,
    };
    let step = Named {
        is_async,
        name,
        found,
    };
    synced(svc, writes, || run_synced(svc, call, step, meta)).await
}

/// A call's method as [`run`] looked it up: `Async.` or not, the name without that
/// prefix, and the message with whether it was named by its alias.
#[derive(Clone, Copy)]
struct Named<'a> {
    is_async: bool,
    name: &'a str,
    found: Option<(&'a Message, bool)>,
}

/// Runs `step` (a call's pipeline after its parsing) against a current database.
async fn synced<T, E, F>(svc: &Service, writes: bool, mut step: impl FnMut() -> F) -> Result<T, E>
where
    E: Refused,
    F: std::future::Future<Output = Result<T, E>>,
{
    let unreachable = |e: crate::db::backend::BackendError| {
        ApiError::internal(format!("the cluster store is not reachable: {e}"))
    };
    // With a shared store, a read first catches up with everything acknowledged
    // anywhere (read-your-writes across front-ends: per call, or per client connection,
    // as `etcd-reads` says); a front-end that cannot prove it is current answers with an
    // error rather than stale data. A write needs no such sync: its decision is checked
    // against the store when it commits.
    let mut synced_now = false;
    if !writes {
        synced_now = svc
            .db
            .sync(connection::synced())
            .await
            .map_err(|e| E::from(unreachable(e)))?;
        if synced_now {
            connection::mark_synced();
        }
    }
    let result = step().await;
    // Without that sync now (a write, or a read served from the cache), a miss is never
    // final from the cache alone (a login on another front-end a moment ago): sync, and
    // once more.
    if svc.db.is_shared()
        && !synced_now
        && let Err(e) = &result
        && MISS_CODES.contains(&e.error().code)
    {
        if let Err(u) = svc.db.sync_now().await {
            return Err(e.like(unreachable(u)));
        }
        return step().await;
    }
    result
}

/// An error of a pipeline step: an [`ApiError`], or one that also says which of the
/// calls a face made as one ([`Refusal`]) refused.
trait Refused: From<ApiError> {
    fn error(&self) -> &ApiError;
    /// `e`, at the same place as this error.
    fn like(&self, e: ApiError) -> Self;
}

impl Refused for ApiError {
    fn error(&self) -> &ApiError {
        self
    }
    fn like(&self, e: ApiError) -> Self {
        e
    }
}

/// What refused a [`task_by_uuid`]: its session check (the session's character rule,
/// the sync, the check itself: what the faces' own authentication call refused, and
/// answer 401), or the task's read after it.
#[derive(Debug, Clone, PartialEq)]
pub enum Refusal {
    Session(ApiError),
    Task(ApiError),
}

impl Refusal {
    pub fn into_error(self) -> ApiError {
        match self {
            Refusal::Session(e) | Refusal::Task(e) => e,
        }
    }
}

/// The sync comes before the session check.
impl From<ApiError> for Refusal {
    fn from(e: ApiError) -> Refusal {
        Refusal::Session(e)
    }
}

impl Refused for Refusal {
    fn error(&self) -> &ApiError {
        match self {
            Refusal::Session(e) | Refusal::Task(e) => e,
        }
    }
    fn like(&self, e: ApiError) -> Self {
        match self {
            Refusal::Session(_) => Refusal::Session(e),
            Refusal::Task(_) => Refusal::Task(e),
        }
    }
}

/// A face's session check, `task.get_by_uuid` and then `task.get_record` of the ref it
/// gives, as one pass through the pipeline, for the REST faces' `GET` of a task by its
/// id: the same checks in the same order as the three calls made one after the other
/// (the session's character rule, the sync, the session check; then the uuid's
/// character rule, each message's RBAC check, the lookup), so the same first error, with
/// the reads under one read of the database (the task cannot go between them). Answers
/// the task's ref and its record, in `codec`'s form as `get_record` would. An entry point
/// rather than a datamodel message: it is not an XAPI call, and as a function no wire
/// can name it (nothing to hide from XML-RPC, `system.listMethods` or docs/api.md).
pub async fn task_by_uuid(
    svc: &Arc<Service>,
    session_ref: &str,
    uuid: &str,
    codec: Option<Codec>,
) -> Result<(String, Value), Refusal> {
    let (Some((by_uuid, _)), Some((get_record, _))) = (
        svc.api.lookup("task.get_by_uuid"),
        svc.api.lookup("task.get_record"),
    ) else {
        return Err(Refusal::Task(ApiError::internal(
            "task messages missing from the datamodel",
        )));
    };
    let refused_chars = |s: &str| {
        ApiError::new(
            codes::INVALID_VALUE,
            [
                "Invalid UTF-8 string in parameter".to_string(),
                Value::str(s).debug_rendering(),
            ],
        )
    };
    if !xmlchars::string_ok(session_ref) {
        return Err(Refusal::Session(refused_chars(session_ref)));
    }
    // The panic guard every other call has: a bug answers INTERNAL_ERROR, not a dropped
    // connection (and it is the read's, not the session's, so no 401).
    let pass = synced(svc, false, move || async move {
        let caller = check_session(&svc.db, session_ref)
            .await
            .map_err(Refusal::Session)?;
        let task = |e| Refusal::Task(e);
        if !xmlchars::string_ok(uuid) {
            return Err(task(refused_chars(uuid)));
        }
        let allowed = |msg: &Message| {
            rbac::check_named(&svc.api, &caller, || {
                rbac::permission_for(&msg.wire, msg.map_keys_roles, None)
            })
            .map_err(task)
        };
        allowed(by_uuid)?;
        let tables = svc.db.read();
        let r = tables
            .ref_by_uuid("task", uuid)
            .ok_or_else(|| task(ApiError::new(codes::UUID_INVALID, ["task", uuid])))?;
        // The second call's session check is the first's: the same read.
        allowed(get_record)?;
        let row = tables
            .row("task", r)
            .ok_or_else(|| task(ApiError::handle_invalid("task", r)))?;
        let rec = super::record::reply_record(codec, get_record.class, row, None);
        Ok((r.to_string(), rec))
    });
    guarded(pass, Refusal::Task).await
}

async fn run_synced(
    svc: &Arc<Service>,
    call: &Call<'_>,
    step: Named<'_>,
    meta: &RequestMeta,
) -> Result<Answer, ApiError> {
    let Named {
        is_async,
        name,
        found,
    } = step;
    let Some((msg, alias)) = found else {
        return unknown_method(svc, name, &call.params)
            .await
            .map(Answer::Done);
    };

    let received = call.params.len() as i64 - i64::from(msg.session);
    let required = msg.required_params() as i64;
    let count_ok = if msg.has_defaults() {
        received >= required
    } else {
        received == required
    };
    if !count_ok {
        return Err(ApiError::new(
            codes::MESSAGE_PARAMETER_COUNT_MISMATCH,
            [name.to_string(), required.to_string(), received.to_string()],
        ));
    }

    let (session_arg, rest) = if msg.session {
        (Some(unmarshal_str(&call.params[0])?), &call.params[1..])
    } else {
        (None, &call.params[..])
    };
    let args = arguments(msg, rest)?;

    let caller = match &session_arg {
        Some(s) => Some(check_session(&svc.db, s).await?),
        None => None,
    };

    if is_async && !msg.is_async {
        return Err(ApiError::new(
            codes::FAULT,
            [format!("No async mode for this operation (rpc: {name})")],
        ));
    }
    let current_task = context_task(svc, meta)?;
    if is_async {
        let caller = caller.expect("async-capable messages take a session");
        let args = args.into_owned();
        let task = spawn_async(svc, &call.method, msg, alias, caller, args, meta).await;
        return task.map(Answer::Done);
    }

    let ctx = Ctx {
        svc,
        caller,
        meta,
        msg,
        current_task,
    };
    authorize_and_call(&ctx, alias, args).await
}

/// The call's arguments in their datamodel types (`marshal::unmarshal`), in order, with
/// the defaults of the parameters not sent. Borrowed from the call when each one sent is
/// already in its type's form and none is missing (nearly every call): then neither the
/// vector nor its strings are copied.
fn arguments<'a>(msg: &Message, sent: &'a [Value]) -> Result<Cow<'a, [Value]>, ApiError> {
    let mut owned: Option<Vec<Value>> = None;
    for (i, p) in msg.params.iter().enumerate() {
        let v = match sent.get(i) {
            Some(v) => unmarshal_borrowed(&p.ty, v)?,
            None => Cow::Owned(Value::str(p.default.unwrap_or_default())),
        };
        match (&mut owned, v) {
            (Some(args), v) => args.push(v.into_owned()),
            (None, Cow::Borrowed(_)) => {}
            (None, Cow::Owned(v)) => {
                // Those before it were borrowed: each is its own unmarshalled form.
                let mut args = Vec::with_capacity(msg.params.len());
                args.extend_from_slice(&sent[..i]);
                args.push(v);
                owned = Some(args);
            }
        }
    }
    Ok(match owned {
        Some(args) => Cow::Owned(args),
        // Every parameter was sent.
        None => Cow::Borrowed(&sent[..msg.params.len()]),
    })
}

/// The task a call runs in, from the `task-id` header (xapi's `Context.of_http_req` →
/// `from_forwarded_task`): it must exist, else `HANDLE_INVALID ["task"; ref]`, whatever
/// the call (`OpaqueRef:NULL` included). xapi's non-database `DummyRef:` refs are taken as
/// they are.
fn context_task(svc: &Service, meta: &RequestMeta) -> Result<Option<String>, ApiError> {
    match meta.task_id.as_deref() {
        None => Ok(None),
        Some(t) if t.starts_with("DummyRef:") => Ok(Some(t.to_string())),
        Some(t) if svc.db.read().task(t).is_some() => Ok(Some(t.to_string())),
        Some(t) => Err(ApiError::handle_invalid("task", t)),
    }
}

/// Step 8 and 9: RBAC, then the message itself. For `Async.` calls this runs inside the
/// task, so a denial lands in the task's `error_info` (xapi's behaviour).
async fn authorize_and_call(
    ctx: &Ctx<'_>,
    alias: bool,
    args: Cow<'_, [Value]>,
) -> Result<Answer, ApiError> {
    let msg = ctx.msg;
    if let Some(caller) = &ctx.caller {
        rbac::check_named(&ctx.svc.api, caller, || {
            if alias {
                // The alias spelling needs a permission of its own name, which no role has.
                msg.wire.replacen('.', "_", 1).to_lowercase()
            } else {
                let key = msg
                    .params
                    .iter()
                    .position(|p| p.name == "key")
                    .and_then(|i| args[i].as_str());
                rbac::permission_for(&msg.wire, msg.map_keys_roles, key)
            }
        })?;
    }
    match msg.handler {
        Handler::Implicit(imp) => implicit::call(ctx, imp, &args).await.map(Answer::Done),
        Handler::Custom(custom) => call_custom(ctx, custom, &args).await,
    }
}

/// `Async.<class>.<message>` (spec §4.6): creates a pending task owned by the caller,
/// named after the wire name as sent, returns its ref at once, and runs the call in the
/// background inside that task. Unlike xapi, task and event messages get a real task too
/// (xapi hands out an unusable `DummyRef` for them).
async fn spawn_async(
    svc: &Arc<Service>,
    wire_as_sent: &str,
    msg: &Message,
    alias: bool,
    caller: Caller<'_>,
    args: Vec<Value>,
    meta: &RequestMeta,
) -> Result<Value, ApiError> {
    let task_ref = svc
        .db
        .transact(|tx| {
            if tx.session_fixed(&caller.session_ref).is_none() {
                return Err(ApiError::new(
                    codes::SESSION_INVALID,
                    [&*caller.session_ref],
                ));
            }
            let host = &tx.untracked().host_ref;
            let mut task = TaskRow::new(wire_as_sent, "", &caller.session_ref, host);
            if let Some(parent) = meta.subtask_of.as_deref()
                && tx.task(parent).is_some()
            {
                task.subtask_of = parent.into();
            }
            task.other_config = meta
                .http_other_config
                .iter()
                .map(|(k, v)| (format!("http:{k}"), v.clone()))
                .collect();
            svc.check_task_room(tx.untracked(), &task)?;
            let r = new_ref();
            tx.insert_task(r.clone(), task);
            tx.claim(&r);
            Ok(r)
        })
        .await?;
    let svc = svc.clone();
    let wire = msg.wire.clone();
    // The task keeps the result as a value (its `result` field is an XML fragment,
    // whatever the caller's codec).
    let meta = RequestMeta {
        codec: None,
        ..meta.clone()
    };
    let task = task_ref.clone();
    let caller = caller.into_owned();
    tokio::spawn(async move {
        let Some((msg, _)) = svc.api.lookup(&wire) else {
            return;
        };
        let ctx = Ctx {
            svc: &svc,
            caller: Some(caller),
            meta: &meta,
            msg,
            current_task: Some(task.clone()),
        };
        let call = async {
            let answer = authorize_and_call(&ctx, alias, Cow::Owned(args)).await?;
            answer.finish(&svc, &meta).await
        };
        let outcome = crate::db::backend::deferring_durability(guarded(call, |e| e)).await;
        if let Err(e) = complete_task(&svc.db, &task, outcome).await {
            tracing::error!("cannot complete task {task}: {e}");
        }
    });
    Ok(Value::String(task_ref))
}

/// xapi's `TaskHelper.complete`/`failed`: only a task still pending is completed, so a
/// client that already set a status keeps it. `result` is the value as an XML-RPC
/// fragment (for every transport, as xapi), `error_info` the error's description;
/// `TASK_CANCELLED` ends as `cancelled`. All fields change in one write, so no reader
/// sees a finished status without its result.
pub async fn complete_task(
    db: &Db,
    task_ref: &str,
    outcome: Result<Value, ApiError>,
) -> Result<(), BackendError> {
    let finished = now();
    let finish = |tx: &mut Tx<'_>, outcome: &Result<Value, ApiError>| {
        let Some(t) = tx.task(task_ref) else {
            return Ok(());
        };
        if t.status != TaskStatus::Pending {
            return Ok(());
        }
        let mut t = t.clone();
        t.allowed_operations.clear();
        t.finished = finished;
        t.progress = 1.0;
        match outcome {
            Ok(v) => {
                t.result = value_fragment(v).into();
                t.status = TaskStatus::Success;
            }
            Err(e) => {
                t.status = if e.code == codes::TASK_CANCELLED {
                    TaskStatus::Cancelled
                } else {
                    TaskStatus::Failure
                };
                t.error_info = e.description().into();
            }
        }
        tx.update_task(task_ref, t).map(|_| ())
    };
    db.transact(|tx| {
        // A result over the task limits (say `Async.task.get_all_records` of many tasks)
        // fails the task with the reason instead of leaving it pending for ever.
        if let Err(e) = finish(tx, &outcome) {
            let _ = finish(tx, &Err(db_error(e)));
        }
        Ok::<_, BackendError>(())
    })
    .await
}

async fn call_custom(ctx: &Ctx<'_>, custom: Custom, args: &[Value]) -> Result<Answer, ApiError> {
    let done = match custom {
        Custom::SessionLogin => session::login(ctx, args).await,
        Custom::SessionLogout => session::logout(ctx).await,
        Custom::TaskCreate => task::create(ctx, args).await,
        Custom::TaskDestroy => task::destroy(ctx, args).await,
        Custom::TaskCancel => task::cancel(ctx, args).await,
        Custom::TaskSetStatus => task::set_status(ctx, args).await,
        Custom::TaskSetProgress => task::set_progress(ctx, args).await,
        Custom::TaskSetResult => task::set_result(ctx, args).await,
        Custom::TaskSetErrorInfo => task::set_error_info(ctx, args).await,
        Custom::TaskAddToOtherConfig => task::add_to_other_config(ctx, args).await,
        Custom::TaskRemoveFromOtherConfig => task::remove_from_other_config(ctx, args).await,
        Custom::TaskSetOtherConfig => task::set_other_config(ctx, args).await,
        Custom::EventRegister => event::register(ctx, args),
        Custom::EventUnregister => event::unregister(ctx, args),
        Custom::EventNext => event::next(ctx).await,
        Custom::EventFrom => return event::from(ctx, args).await,
        Custom::EventGetCurrentId => event::get_current_id(ctx),
        Custom::EventInject => event::inject(ctx, args).await,
    };
    done.map(Answer::Done)
}

/// Session check (xapi's `session_check.ml`): `SESSION_INVALID [ref as sent]` for an
/// unknown ref; otherwise refresh `last_active` when it is older than the threshold, and
/// copy out what access checks need.
pub async fn check_session<'a>(db: &Db, session_ref: &'a str) -> Result<Caller<'a>, ApiError> {
    let t = now();
    let (caller, stale) = {
        let tables = db.read();
        let s = tables
            .session(session_ref)
            .ok_or_else(|| ApiError::new(codes::SESSION_INVALID, [session_ref]))?;
        (
            caller_of(session_ref, s),
            t - s.last_active > LAST_ACTIVE_THRESHOLD_SECS,
        )
    };
    if stale {
        // Never a blind write: a session logged out meanwhile must stay logged out.
        db.transact(|tx| {
            if let Some(s) = tx.session(session_ref)
                && t - s.last_active > LAST_ACTIVE_THRESHOLD_SECS
            {
                let mut s = s.fields();
                s.last_active = t;
                tx.put_session(session_ref.to_string(), s);
            }
            Ok::<_, ApiError>(())
        })
        .await?;
    }
    Ok(caller)
}

/// Every write of a call with a session depends on that session: a write from a session
/// whose logout was acknowledged (here or, with a shared store, anywhere) is refused.
pub fn require_caller(ctx: &Ctx<'_>, tx: &mut Tx<'_>) -> Result<(), ApiError> {
    let r: &str = &ctx.caller().session_ref;
    match tx.session_fixed(r) {
        Some(_) => Ok(()),
        None => Err(ApiError::new(codes::SESSION_INVALID, [r])),
    }
}

fn caller_of<'a>(session_ref: &'a str, s: &crate::db::SessionRow) -> Caller<'a> {
    Caller {
        session_ref: Cow::Borrowed(session_ref),
        auth_user_sid: s.auth_user_sid.clone(),
        is_local_superuser: s.is_local_superuser,
        role: s.role.clone(),
    }
}

/// An unknown method: without parameters `MESSAGE_METHOD_UNKNOWN`; with parameters xapi
/// treats it as a possible host extension call: session check, then RBAC for
/// `host.call_extension`, then `MESSAGE_METHOD_UNKNOWN` (`xapi_extensions.ml`).
async fn unknown_method(svc: &Service, name: &str, params: &[Value]) -> Result<Value, ApiError> {
    if let Some(first) = params.first() {
        let caller = check_session(&svc.db, unmarshal_str(first)?).await?;
        rbac::check(&svc.api, &caller, "host.call_extension")?;
    }
    Err(ApiError::new(codes::MESSAGE_METHOD_UNKNOWN, [name]))
}

/// Convenience for tests and callers that hold the call pieces separately.
pub fn call(method: &str, params: Vec<Value>) -> Call<'_> {
    Call {
        method: Cow::Borrowed(method),
        params,
        invalid_utf8_param: None,
        chars_checked: false,
    }
}

/// Converts a database error into the XAPI error xapi's `exnHelper.ml` would send.
pub fn db_error(e: crate::db::DbError) -> ApiError {
    match e {
        crate::db::DbError::MissingRow(table, r) => ApiError::handle_invalid(table, &r),
        crate::db::DbError::DuplicateKey(table, field, r, key) => ApiError::new(
            codes::MAP_DUPLICATE_KEY,
            [table.to_string(), field.to_string(), r, key],
        ),
        crate::db::DbError::EmptyKey => ApiError::internal("Db_exn.Empty_key_in_map"),
        // xapi's `value_not_supported fld v reason`; the value itself is not echoed (it
        // may be a megabyte), its size is.
        crate::db::DbError::TooLarge {
            field,
            bytes,
            limit,
        } => {
            let option = if field == "task" {
                "max-task-bytes"
            } else {
                "max-task-field-bytes"
            };
            ApiError::new(
                codes::VALUE_NOT_SUPPORTED,
                [
                    field.to_string(),
                    format!("{bytes} bytes"),
                    format!("longer than the limit of {limit} bytes ({option})"),
                ],
            )
        }
        crate::db::DbError::TooManyPending => {
            ApiError::new(codes::TOO_MANY_PENDING_TASKS, Vec::<String>::new())
        }
        crate::db::DbError::UserQuota { user, bytes, limit } => ApiError::new(
            codes::VALUE_NOT_SUPPORTED,
            [
                "task".to_string(),
                format!("{bytes} bytes"),
                format!(
                    "the tasks of user {user} would hold more than {limit} bytes \
                     (max-task-bytes-per-user)"
                ),
            ],
        ),
    }
}

#[cfg(test)]
mod tests {
    /// The future of a call is built and moved into hyper's slot for every request, so
    /// its size is paid per request (it was 5.9 KB when each `async fn` wrapper doubled
    /// it; see `guarded`).
    #[test]
    fn a_calls_future_stays_small() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        let _in_runtime = rt.enter();
        let (_dir, svc) = crate::serve::ephemeral_service();
        let meta = super::RequestMeta::default();
        let call = super::dispatch(&svc, super::call("task.get_record", vec![]), &meta);
        let size = std::mem::size_of_val(&call);
        assert!(size <= 1536, "the dispatch future is {size} bytes");
    }
}
