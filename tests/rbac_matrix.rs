//! The RBAC matrix, generated from the datamodel: every message `Api::build` knows (explicit
//! and implicit; also under its `class_message` alias, and as `Async.` where it has an async
//! mode) × every role and the local superuser × the caller's own object and another user's,
//! called on the real binary over HTTP (JSON-RPC, one user per role made with `user add`).
//!
//! The expected answer of each cell is computed from the table alone: the permission the
//! call needs (`rbac::permission_for`: the wire name, or `<wire>/key:<key>` for a protected
//! `other_config` key; the alias needs a permission of its own name, which no role holds),
//! the roles that hold it (`Api::roles_for`), and xapi's ownership rule for the explicit task
//! messages that take a task (another user's task needs `task.destroy/any`; `set_other_config`
//! then needs the `add_to_other_config/key:` permission of each protected key it adds). A
//! denial must be exactly `RBAC_PERMISSION_DENIED [permission; text]` with the text computed
//! by `rbac::denied`; anything allowed must succeed. The test fails on any cell where the
//! server and the table disagree, and says which.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value as Json, json};
use xapi_taskd::api::datamodel::{ROLE_NAMES, TASK_PROTECTED_KEYS, Ty};
use xapi_taskd::api::rbac::{self, Caller};
use xapi_taskd::api::{Api, Handler, Message};

const BIN: &str = env!("CARGO_BIN_EXE_xapi-taskd");
const ROOT_PASSWORD: &str = "matrix-root-pw";

fn password(role: &str) -> String {
    format!("pw-{role}")
}

struct Server {
    child: Child,
    endpoint: String,
    agent: ureq::Agent,
    _dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    /// `xapi-taskd serve` on a free port and a fresh data directory, with one user per role.
    fn start() -> Server {
        let dir = tempfile::tempdir().unwrap();
        for role in ROLE_NAMES {
            let mut add = Command::new(BIN)
                .args([
                    "user",
                    "add",
                    &format!("user-{role}"),
                    "--role",
                    role,
                    "--data-dir",
                ])
                .arg(dir.path())
                .stdin(Stdio::piped())
                .stdout(Stdio::null())
                .spawn()
                .unwrap();
            writeln!(add.stdin.take().unwrap(), "{}", password(role)).unwrap();
            assert!(add.wait().unwrap().success(), "user add {role}");
        }
        // In memory: RBAC does not depend on durability, and 2,500 cells of fsyncs would
        // only slow the test down.
        let mut child = Command::new(BIN)
            .args([
                "serve",
                "--ephemeral",
                "--listen",
                "127.0.0.1:0",
                "--gc-interval",
                "86400",
                "--data-dir",
            ])
            .arg(dir.path())
            .env("XAPI_TASKD_ROOT_PASSWORD", ROOT_PASSWORD)
            .env("XAPI_TASKD_LOG", "warn")
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let url = loop {
            let line = lines.next().expect("the server exited").unwrap();
            if let Some(url) = line.strip_prefix("xapi-taskd listening on ") {
                break url.to_string();
            }
        };
        std::thread::spawn(move || lines.for_each(drop));
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(30)))
            .build()
            .into();
        Server {
            child,
            endpoint: format!("{url}/jsonrpc"),
            agent,
            _dir: dir,
        }
    }

    /// One JSON-RPC call: the result, or the error as xapi's description list.
    fn rpc(&self, method: &str, params: Vec<Json>) -> Result<Json, Vec<String>> {
        let body = json!({"jsonrpc": "2.0", "method": method, "params": params, "id": 1});
        let mut resp = self
            .agent
            .post(&self.endpoint)
            .header("Content-Type", "application/json")
            .send(body.to_string())
            .unwrap_or_else(|e| panic!("{method}: {e}"));
        let text = resp.body_mut().read_to_string().unwrap();
        let reply: Json = serde_json::from_str(&text).unwrap();
        match reply.get("error") {
            Some(e) => {
                let mut d = vec![e["message"].as_str().unwrap_or_default().to_string()];
                for p in e["data"].as_array().into_iter().flatten() {
                    d.push(p.as_str().unwrap_or_default().to_string());
                }
                Err(d)
            }
            None => Ok(reply["result"].clone()),
        }
    }

    fn ok(&self, method: &str, params: Vec<Json>) -> Json {
        self.rpc(method, params)
            .unwrap_or_else(|e| panic!("{method}: {e:?}"))
    }

    fn login(&self, who: &Who) -> String {
        let (user, pw) = match who.role {
            None => ("root".to_string(), ROOT_PASSWORD.to_string()),
            Some(role) => (format!("user-{role}"), password(role)),
        };
        self.ok(
            "session.login_with_password",
            vec![json!(user), json!(pw), json!("1.0"), json!("matrix")],
        )
        .as_str()
        .unwrap()
        .to_string()
    }
}

/// A caller: a role's user, or root (the local superuser).
struct Who {
    role: Option<&'static str>,
    session: String,
}

impl Who {
    fn name(&self) -> &str {
        self.role.unwrap_or("root")
    }

    /// What `rbac::allowed` needs to know of the caller.
    fn caller(&self) -> Caller<'_> {
        Caller {
            session_ref: self.session.as_str().into(),
            auth_user_sid: String::new(),
            is_local_superuser: self.role.is_none(),
            role: self.role.map(str::to_string),
        }
    }
}

/// Whose object a cell acts on.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Owner {
    Own,
    Other,
}

/// How a message is called in a cell.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Spelling {
    Wire,
    Alias,
    Async,
}

/// xapi's ownership rule (`TaskHelper.assert_op_valid`) applies to the explicit task
/// messages that act on a task (docs/api.md: destroy, cancel, set_*, other_config).
fn checks_ownership(m: &Message) -> bool {
    m.class.name == "task"
        && matches!(m.handler, Handler::Custom(_))
        && matches!(m.params.first().map(|p| p.ty), Some(Ty::Ref("task")))
}

/// Whether a message acts on a task or a session, which have owners (pool and host do not).
fn takes_object(m: &Message) -> bool {
    m.params.iter().any(|p| {
        matches!(p.ty, Ty::Ref("task" | "session"))
            || (p.name == "uuid" && matches!(m.class.name, "task" | "session"))
    })
}

/// The answer the table predicts: `None` = allowed, else the exact denial.
fn expected(
    api: &Api,
    m: &Message,
    who: &Who,
    owner: Owner,
    key: Option<&str>,
    spelling: Spelling,
) -> Option<Vec<String>> {
    let caller = who.caller();
    let deny = |perm: &str| {
        (!rbac::allowed(api, &caller, perm)).then(|| rbac::denied(api, perm).description())
    };
    let perm = match spelling {
        Spelling::Alias => m.wire.replacen('.', "_", 1).to_lowercase(),
        _ => rbac::permission_for(&m.wire, m.map_keys_roles, key),
    };
    if let Some(d) = deny(&perm) {
        return Some(d);
    }
    if checks_ownership(m)
        && owner == Owner::Other
        && let Some(d) = deny("task.destroy/any")
    {
        return Some(d);
    }
    if m.wire == "task.set_other_config"
        && let Some(k) = key
    {
        let add = api.lookup("task.add_to_other_config").unwrap().0;
        return deny(&rbac::permission_for(
            &add.wire,
            add.map_keys_roles,
            Some(k),
        ));
    }
    None
}

/// The objects one cell uses.
struct Objects {
    task: String,
    task_uuid: String,
    session: String,
    session_uuid: String,
    pool: String,
    pool_uuid: String,
    host: String,
    host_uuid: String,
}

/// Arguments for `m`, by parameter name and type. `key` is the map key to use (a protected
/// one, or one no earlier cell used, so that `add_to_other_config` on a shared session
/// never meets its own key).
fn args(m: &Message, o: &Objects, key: &str) -> Vec<Json> {
    m.params
        .iter()
        .map(|p| match (p.name, p.ty) {
            (_, Ty::Ref("task")) => json!(o.task),
            (_, Ty::Ref("session")) => json!(o.session),
            (_, Ty::Ref("pool")) => json!(o.pool),
            (_, Ty::Ref("host")) => json!(o.host),
            ("uuid", _) => json!(match m.class.name {
                "session" => &o.session_uuid,
                "pool" => &o.pool_uuid,
                "host" => &o.host_uuid,
                _ => &o.task_uuid,
            }),
            ("expr", _) => json!("true"),
            ("key", _) => json!(key),
            ("token", _) => json!(""),
            ("timeout", _) => json!(0.0),
            ("class", _) => json!("task"),
            ("ref", _) => json!(o.task),
            ("classes", _) => json!(["task"]),
            (_, Ty::Map(..)) => json!({ key: "v" }),
            (_, Ty::Set(_)) => json!(["E"]),
            (_, Ty::Float) => json!(0.5),
            (_, Ty::Int) => json!(1),
            (_, Ty::Bool) => json!(true),
            (_, Ty::Enum(e)) => json!(e.values[0].0),
            _ => json!("x"),
        })
        .collect()
}

/// Waits for an `Async.` call's task to finish; its error_info (empty on success).
fn async_outcome(server: &Server, root: &str, task: &str) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let status = server.ok("task.get_status", vec![json!(root), json!(task)]);
        if status != "pending" {
            let info = server.ok("task.get_error_info", vec![json!(root), json!(task)]);
            return info
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_str().unwrap().to_string())
                .collect();
        }
        assert!(
            Instant::now() < deadline,
            "Async task {task} never finished"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn every_message_every_role_own_and_others_object_answers_as_the_table_says() {
    let api = Api::build();
    let server = Server::start();
    let mut callers: Vec<Who> = ROLE_NAMES
        .iter()
        .map(|r| Who {
            role: Some(r),
            session: String::new(),
        })
        .chain([Who {
            role: None,
            session: String::new(),
        }])
        .collect();
    for who in &mut callers {
        who.session = server.login(who);
    }
    let root = callers.last().unwrap().session.clone();
    let read_only = callers[ROLE_NAMES.len() - 1].session.clone();
    let pool = server.ok("pool.get_all", vec![json!(root)])[0]
        .as_str()
        .unwrap()
        .to_string();
    let host = server.ok("host.get_all", vec![json!(root)])[0]
        .as_str()
        .unwrap()
        .to_string();
    let uuid_of = |class: &str, r: &str| {
        server
            .ok(&format!("{class}.get_uuid"), vec![json!(root), json!(r)])
            .as_str()
            .unwrap()
            .to_string()
    };
    let (pool_uuid, host_uuid) = (uuid_of("pool", &pool), uuid_of("host", &host));

    let (mut cells, mut denied, mut failures) = (0, 0, Vec::new());
    for m in api.messages.iter().filter(|m| m.session) {
        // The protected keys are cells of their own for the messages that have them.
        let mut keys: Vec<Option<&str>> = vec![None];
        if !m.map_keys_roles.is_empty() || m.wire == "task.set_other_config" {
            keys.push(Some(TASK_PROTECTED_KEYS[0].0));
        }
        let owners: &[Owner] = if takes_object(m) {
            &[Owner::Own, Owner::Other]
        } else {
            &[Owner::Own]
        };
        let mut spellings = vec![Spelling::Wire, Spelling::Alias];
        if m.is_async {
            spellings.push(Spelling::Async);
        }
        for who in &callers {
            for &owner in owners {
                for &key in &keys {
                    for &spelling in &spellings {
                        // Calls that end or register their session get one of their own.
                        let fresh = m.class.name == "event" || m.wire == "session.logout";
                        let session = if fresh {
                            server.login(who)
                        } else {
                            who.session.clone()
                        };
                        let other = if who.role.is_none() {
                            &read_only
                        } else {
                            &root
                        };
                        let owner_session = if owner == Owner::Own { &session } else { other };
                        let task = server
                            .ok(
                                "task.create",
                                vec![json!(owner_session), json!("matrix"), json!("")],
                            )
                            .as_str()
                            .unwrap()
                            .to_string();
                        let objects = Objects {
                            task_uuid: server
                                .ok("task.get_uuid", vec![json!(root), json!(task)])
                                .as_str()
                                .unwrap()
                                .to_string(),
                            task,
                            session_uuid: server
                                .ok("session.get_uuid", vec![json!(root), json!(owner_session)])
                                .as_str()
                                .unwrap()
                                .to_string(),
                            session: owner_session.clone(),
                            pool: pool.clone(),
                            pool_uuid: pool_uuid.clone(),
                            host: host.clone(),
                            host_uuid: host_uuid.clone(),
                        };
                        let mut params = vec![json!(session)];
                        let unique = format!("k{cells}");
                        params.extend(args(m, &objects, key.unwrap_or(&unique)));
                        let method = match spelling {
                            Spelling::Wire => m.wire.clone(),
                            Spelling::Alias => m.wire.replacen('.', "_", 1),
                            Spelling::Async => format!("Async.{}", m.wire),
                        };
                        let got = match (spelling, server.rpc(&method, params)) {
                            (Spelling::Async, Ok(t)) => {
                                let info = async_outcome(&server, &root, t.as_str().unwrap());
                                if info.is_empty() {
                                    Ok(Json::Null)
                                } else {
                                    Err(info)
                                }
                            }
                            (_, r) => r,
                        };
                        let want = expected(&api, m, who, owner, key, spelling);
                        cells += 1;
                        let agrees = match (&want, &got) {
                            (Some(d), Err(e)) => d == e,
                            (None, Ok(_)) => true,
                            // Without a registration, event.next answers that; RBAC came first.
                            (None, Err(e)) => {
                                m.wire == "event.next" && e[0] == "SESSION_NOT_REGISTERED"
                            }
                            (Some(_), Ok(_)) => false,
                        };
                        denied += usize::from(want.is_some());
                        if !agrees {
                            failures.push(format!(
                                "{method} as {} on {owner:?} object{}: table says {}, server says {got:?}",
                                who.name(),
                                key.map(|k| format!(" with key {k}")).unwrap_or_default(),
                                want.map_or("allowed".to_string(), |d| format!("{d:?}")),
                            ));
                        }
                    }
                }
            }
        }
    }
    eprintln!(
        "RBAC matrix: {cells} cells, {denied} denied, {} allowed",
        cells - denied
    );
    assert!(
        failures.is_empty(),
        "{} of {cells} cells disagree with the table:\n{}",
        failures.len(),
        failures.join("\n")
    );
    // The matrix covers what it claims: every message with a session, and real denials
    // of each kind (role, ownership, protected key, alias).
    assert!(cells > 1500, "{cells}");
    assert!(denied > 500 && cells - denied > 500, "{denied} of {cells}");
}
