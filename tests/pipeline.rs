//! The dispatch pipeline's order (spec §1.5): which error wins when a call is wrong in
//! several ways. Calls go through the dispatcher directly.

mod common;

use common::{call, login_root, s, start};
use xapi_taskd::api::dispatch::{self, Call, Reply, RequestMeta};
use xapi_taskd::wire::value::Value;

/// A new user `name` with `role`, logged in: its session.
async fn user_session(svc: &std::sync::Arc<dispatch::Service>, name: &str, role: &str) -> String {
    svc.users.add(name, role, "pw").expect("user");
    match call(svc, "session.login_with_password", vec![s(name), s("pw")]).await {
        Ok(Value::String(session)) => session,
        other => panic!("{name} logs in: {other:?}"),
    }
}

fn desc(items: &[&str]) -> Vec<String> {
    items.iter().map(|x| x.to_string()).collect()
}

#[tokio::test]
async fn invalid_utf8_is_reported_before_anything_else() {
    let srv = start().await;
    let c = Call {
        method: "no.such.method".into(),
        params: vec![s("a\u{FFFD}b")],
        invalid_utf8_param: Some(0),
        chars_checked: false,
    };
    let Reply::Envelope(Err(e)) = dispatch::dispatch(&srv.svc, c, &RequestMeta::default()).await
    else {
        panic!("expected a failure");
    };
    assert_eq!(e.code, "INVALID_VALUE");
    assert_eq!(e.params[0], "Invalid UTF-8 string in parameter");
}

#[tokio::test]
async fn count_is_checked_before_the_session_and_excludes_it() {
    let srv = start().await;
    assert_eq!(
        call(&srv.svc, "task.get_record", vec![]).await,
        Err(desc(&[
            "MESSAGE_PARAMETER_COUNT_MISMATCH",
            "task.get_record",
            "1",
            "-1"
        ]))
    );
    assert_eq!(
        call(&srv.svc, "task.get_record", vec![s("OpaqueRef:bad")]).await,
        Err(desc(&[
            "MESSAGE_PARAMETER_COUNT_MISMATCH",
            "task.get_record",
            "1",
            "0"
        ]))
    );
    // Async prefix stripped in the reported name.
    assert_eq!(
        call(&srv.svc, "Async.task.create", vec![s("x")]).await,
        Err(desc(&[
            "MESSAGE_PARAMETER_COUNT_MISMATCH",
            "task.create",
            "2",
            "0"
        ]))
    );
}

#[tokio::test]
async fn type_errors_come_before_the_session_check() {
    let srv = start().await;
    // The session is unmarshalled first; a non-string session is a type error even if
    // it would also be an invalid session.
    assert_eq!(
        call(&srv.svc, "task.get_all", vec![Value::Int(3)]).await,
        Err(desc(&[
            "INTERNAL_ERROR",
            "Failure(\"Expected string, got 'I(3)'\")"
        ]))
    );
    assert_eq!(
        call(
            &srv.svc,
            "task.set_progress",
            vec![s("OpaqueRef:nope"), s("OpaqueRef:t"), Value::Bool(true)]
        )
        .await,
        Err(desc(&[
            "INTERNAL_ERROR",
            "Failure(\"Expected float, got 'B(true)'\")"
        ]))
    );
    assert_eq!(
        call(&srv.svc, "task.get_all", vec![s("OpaqueRef:nope")]).await,
        Err(desc(&["SESSION_INVALID", "OpaqueRef:nope"]))
    );
}

#[tokio::test]
async fn async_without_async_mode_is_a_fault_after_the_session_check() {
    let srv = start().await;
    assert_eq!(
        call(&srv.svc, "Async.task.get_all", vec![s("OpaqueRef:nope")]).await,
        Err(desc(&["SESSION_INVALID", "OpaqueRef:nope"]))
    );
    let root = login_root(&srv.svc).await;
    assert_eq!(
        call(&srv.svc, "Async.task.get_all", vec![s(&root)]).await,
        Err(desc(&[
            "Fault",
            "No async mode for this operation (rpc: task.get_all)"
        ]))
    );
}

#[tokio::test]
async fn unknown_methods_follow_the_extension_path() {
    let srv = start().await;
    assert_eq!(
        call(&srv.svc, "task.frobnicate", vec![]).await,
        Err(desc(&["MESSAGE_METHOD_UNKNOWN", "task.frobnicate"]))
    );
    assert_eq!(
        call(&srv.svc, "task.frobnicate", vec![s("OpaqueRef:nope")]).await,
        Err(desc(&["SESSION_INVALID", "OpaqueRef:nope"]))
    );
    let root = login_root(&srv.svc).await;
    assert_eq!(
        call(&srv.svc, "Async.task.frobnicate", vec![s(&root)]).await,
        Err(desc(&["MESSAGE_METHOD_UNKNOWN", "task.frobnicate"]))
    );
}

#[tokio::test]
async fn alias_names_work_for_the_superuser() {
    let srv = start().await;
    let root = login_root(&srv.svc).await;
    let t = call(
        &srv.svc,
        "task_create",
        vec![s(&root), s("via alias"), s("")],
    )
    .await
    .unwrap();
    let label = call(&srv.svc, "task.get_name_label", vec![s(&root), t])
        .await
        .unwrap();
    assert_eq!(label, s("via alias"));
}

#[tokio::test]
async fn list_methods_is_bare_and_complete() {
    let srv = start().await;
    let reply = dispatch::dispatch(
        &srv.svc,
        dispatch::call("system.listMethods", vec![]),
        &RequestMeta::default(),
    )
    .await;
    let Reply::Bare(Value::Array(names)) = reply else {
        panic!("listMethods must be bare");
    };
    let names: Vec<&str> = names.iter().filter_map(Value::as_str).collect();
    for want in [
        "session.login_with_password",
        "task.create",
        "task.get_all_records_where",
        "pool.get_master",
        "host.get_API_version_minor",
    ] {
        assert!(names.contains(&want), "{want} missing");
    }
    assert!(!names.iter().any(|n| n.starts_with("Async.")));
}

#[tokio::test]
async fn system_is_alive_echoes_its_first_parameter() {
    let srv = start().await;
    assert_eq!(
        call(&srv.svc, "system.isAlive:probe", vec![s("hello")]).await,
        Ok(s("hello"))
    );
    assert_eq!(
        call(&srv.svc, "system.isAlive:", vec![]).await,
        Err(desc(&["INTERNAL_ERROR", "Failure(\"hd\")"]))
    );
}

#[tokio::test]
async fn unfinished_tasks_are_bounded() {
    let srv = common::start_with_task_limit(2).await;
    let root = login_root(&srv.svc).await;
    let a = call(&srv.svc, "task.create", vec![s(&root), s("a"), s("")])
        .await
        .unwrap();
    call(&srv.svc, "task.create", vec![s(&root), s("b"), s("")])
        .await
        .unwrap();
    assert_eq!(
        call(&srv.svc, "task.create", vec![s(&root), s("c"), s("")]).await,
        Err(desc(&["TOO_MANY_PENDING_TASKS"]))
    );
    assert_eq!(
        call(&srv.svc, "Async.task.cancel", vec![s(&root), a.clone()]).await,
        Err(desc(&["TOO_MANY_PENDING_TASKS"]))
    );
    // Finishing one makes room again.
    call(&srv.svc, "task.set_status", vec![s(&root), a, s("success")])
        .await
        .unwrap();
    assert!(
        call(&srv.svc, "task.create", vec![s(&root), s("c"), s("")])
            .await
            .is_ok()
    );
}

/// A tree as the view form gives it: a task's record (`task.get_record`, an `event.from`
/// snapshot of a task) holds only the members the REST faces read, in the same order.
fn task_views(method: &str, tree: Value) -> Value {
    use xapi_taskd::api::record::VIEW_TASK_MEMBERS;
    let only_read = |v: Value| match v {
        Value::Struct(members) => Value::Struct(
            members
                .into_iter()
                .filter(|(k, _)| VIEW_TASK_MEMBERS.contains(&&**k))
                .collect(),
        ),
        other => other,
    };
    match (method, tree) {
        ("task.get_record", t) => only_read(t),
        ("event.from", Value::Struct(members)) => Value::Struct(
            members
                .into_iter()
                .map(|(k, v)| match (k.as_ref(), v) {
                    ("events", Value::Array(events)) => {
                        let events = events.into_iter().map(|e| match e {
                            Value::Struct(fields) => {
                                let task = fields.iter().any(|(k, v)| {
                                    k == "class" && *v == Value::String("task".into())
                                });
                                Value::Struct(
                                    fields
                                        .into_iter()
                                        .map(|(k, v)| match (k.as_ref(), task) {
                                            ("snapshot", true) => (k, only_read(v)),
                                            _ => (k, v),
                                        })
                                        .collect(),
                                )
                            }
                            other => other,
                        });
                        (k, Value::Array(events.collect()))
                    }
                    (_, v) => (k, v),
                })
                .collect(),
        ),
        (_, t) => t,
    }
}

/// Records a reply's codec gets straight from the row (`RequestMeta::codec`) are byte for
/// byte the records built as values and then written, in both codecs, for every class,
/// for `get_all_records`, in `event.from` snapshots, and with characters each codec
/// escapes.
#[tokio::test]
async fn encoded_records_are_the_records_written() {
    use xapi_taskd::wire::encode::{Codec, view_value};
    use xapi_taskd::wire::{jsonrpc, xmlrpc};

    let srv = start().await;
    let root = login_root(&srv.svc).await;
    let alice = user_session(&srv.svc, "alice", "vm-operator").await;
    let label = "a <label> & \"quotes\"\t\\ é€😀";
    let Ok(Value::String(task)) =
        call(&srv.svc, "task.create", vec![s(&root), s(label), s("d\n")]).await
    else {
        panic!("task.create");
    };
    for (method, params) in [
        (
            "task.add_to_other_config",
            vec![s(&root), s(&task), s("k<&>"), s("v\"\\")],
        ),
        (
            "task.set_error_info",
            vec![s(&root), s(&task), Value::Array(vec![s("E"), s("<p>")])],
        ),
        (
            "task.set_progress",
            vec![s(&root), s(&task), Value::Double(0.125)],
        ),
    ] {
        call(&srv.svc, method, params).await.expect(method);
    }
    let Ok(Value::String(child)) =
        call(&srv.svc, "task.create", vec![s(&root), s("c"), s("")]).await
    else {
        panic!("task.create");
    };
    let first = |v: Value| match v {
        Value::Array(items) => items.into_iter().next().expect("one"),
        other => panic!("{other:?}"),
    };
    let pool = first(
        call(&srv.svc, "pool.get_all", vec![s(&root)])
            .await
            .unwrap(),
    );
    let host = first(
        call(&srv.svc, "host.get_all", vec![s(&root)])
            .await
            .unwrap(),
    );
    let calls = [
        ("task.get_record", vec![s(&root), s(&task)]),
        ("task.get_record", vec![s(&root), s(&child)]),
        ("session.get_record", vec![s(&root), s(&root)]),
        ("session.get_record", vec![s(&alice), s(&alice)]),
        ("pool.get_record", vec![s(&root), pool]),
        ("host.get_record", vec![s(&root), host]),
        ("task.get_all_records", vec![s(&root)]),
        ("session.get_all_records", vec![s(&root)]),
        ("task.get_record", vec![s(&root), s("OpaqueRef:gone")]),
        (
            "event.from",
            vec![
                s(&root),
                Value::Array(vec![s("task"), s("session")]),
                s(""),
                Value::Double(0.0),
            ],
        ),
    ];
    for (method, params) in calls {
        for codec in [Codec::XmlRpc, Codec::JsonRpc, Codec::View] {
            let reply = |codec: Option<Codec>| {
                let params = params.clone();
                let svc = srv.svc.clone();
                async move {
                    let meta = RequestMeta {
                        codec,
                        ..RequestMeta::default()
                    };
                    match dispatch::dispatch(&svc, dispatch::call(method, params), &meta).await {
                        Reply::Envelope(r) => r,
                        Reply::Bare(v) => Ok(v),
                    }
                }
            };
            let (tree, encoded) = (reply(None).await, reply(Some(codec)).await);
            if method.ends_with("get_record") && tree.is_ok() {
                assert!(
                    matches!(encoded, Ok(Value::Encoded(c, _)) if c == codec),
                    "{method}: {encoded:?}"
                );
            }
            let mut bytes = (Vec::new(), Vec::new());
            match codec {
                Codec::XmlRpc => {
                    xmlrpc::write_response(&mut bytes.0, &tree);
                    xmlrpc::write_response(&mut bytes.1, &encoded);
                }
                Codec::JsonRpc => {
                    let id = jsonrpc::Id::Int(7);
                    jsonrpc::write_response(&mut bytes.0, jsonrpc::Version::V2, &id, &tree);
                    jsonrpc::write_response(&mut bytes.1, jsonrpc::Version::V2, &id, &encoded);
                }
                // The REST faces' form: it reads back as the tree, member for member (a
                // task's view holds only the members the faces read, in the tree's order).
                Codec::View => {
                    let back = match &encoded {
                        Ok(Value::Encoded(Codec::View, b)) => Ok(view_value(b).expect("whole")),
                        other => other.clone(),
                    };
                    let tree = tree.map(|t| task_views(method, t));
                    assert_eq!(back, tree, "{method} {codec:?}");
                    continue;
                }
            }
            assert_eq!(
                String::from_utf8_lossy(&bytes.1),
                String::from_utf8_lossy(&bytes.0),
                "{method} {codec:?}"
            );
        }
    }
}

/// `event.from` waiters with the same subscriptions and token, at the same database
/// generation, share one written batch (a fan-out builds it once): the shared bytes are
/// the ones each would have been written alone, and nothing else is shared — another
/// codec, another subscription, another token, a later generation, or a session that is
/// gone.
#[tokio::test]
async fn event_batches_are_shared_only_when_identical() {
    use xapi_taskd::wire::encode::Codec;
    use xapi_taskd::wire::xmlrpc;
    let srv = start().await;
    let (one, two) = (login_root(&srv.svc).await, login_root(&srv.svc).await);
    let Ok(Value::String(task)) =
        call(&srv.svc, "task.create", vec![s(&one), s("watched"), s("")]).await
    else {
        panic!("task.create");
    };
    let from = |session: &str, classes: &[&str], token: &str, codec: Option<Codec>| {
        let params = vec![
            s(session),
            Value::Array(classes.iter().map(|c| s(c)).collect()),
            s(token),
            Value::Double(0.0),
        ];
        let svc = srv.svc.clone();
        async move {
            let meta = RequestMeta {
                codec,
                ..RequestMeta::default()
            };
            match dispatch::dispatch(&svc, dispatch::call("event.from", params), &meta).await {
                Reply::Envelope(r) => r,
                Reply::Bare(v) => Ok(v),
            }
        }
    };
    let token_of = |v: &Value| match v {
        Value::Struct(m) => m.iter().find(|(k, _)| k == "token").unwrap().1.clone(),
        other => panic!("{other:?}"),
    };
    let written = |r: &Result<Value, xapi_taskd::api::error::ApiError>| {
        let mut out = Vec::new();
        xmlrpc::write_response(&mut out, r);
        String::from_utf8(out).unwrap()
    };
    let start_token = token_of(&from(&one, &["task"], "", None).await.unwrap());
    let start_token = start_token.as_str().unwrap();
    call(
        &srv.svc,
        "task.set_progress",
        vec![s(&one), s(&task), Value::Double(0.5)],
    )
    .await
    .unwrap();
    let xml = Some(Codec::XmlRpc);
    let a = from(&one, &["task"], start_token, xml).await;
    let b = from(&two, &["task"], start_token, xml).await;
    let (Ok(Value::Encoded(_, a_bytes)), Ok(Value::Encoded(_, b_bytes))) = (&a, &b) else {
        panic!("{a:?} {b:?}");
    };
    assert_eq!(
        a_bytes.as_ptr(),
        b_bytes.as_ptr(),
        "the second waiter shares the batch"
    );
    // The bytes are those of the batch written alone.
    let alone = from(&two, &["task"], start_token, None).await;
    assert_eq!(written(&b), written(&alone));
    assert!(written(&b).contains("<name>progress</name><value><double>0.5</double>"));
    // Another codec, subscription or token: a batch of its own.
    for (classes, token, codec) in [
        (&["task"][..], start_token, Some(Codec::JsonRpc)),
        (&["task", "session"][..], start_token, xml),
        (&["task"][..], "", xml),
    ] {
        let other = from(&two, classes, token, codec).await;
        let Ok(Value::Encoded(_, bytes)) = &other else {
            panic!("{other:?}");
        };
        assert_ne!(
            bytes.as_ptr(),
            a_bytes.as_ptr(),
            "{classes:?} {token:?} {codec:?}"
        );
    }
    // A later generation: not the kept batch, and the new change is in it.
    call(
        &srv.svc,
        "task.set_progress",
        vec![s(&one), s(&task), Value::Double(0.75)],
    )
    .await
    .unwrap();
    let later = from(&two, &["task"], start_token, xml).await;
    assert!(
        written(&later).contains("<double>0.75</double>"),
        "{later:?}"
    );
    // A waiter whose session is gone is refused, shared batch or not.
    let again = from(&one, &["task"], start_token, xml).await;
    assert!(matches!(again, Ok(Value::Encoded(..))));
    call(&srv.svc, "session.logout", vec![s(&one)])
        .await
        .unwrap();
    let gone = from(&one, &["task"], start_token, xml).await;
    assert_eq!(gone.unwrap_err().code, "SESSION_INVALID");
    // A logout leaves the generation where it is (sessions are not evented), but the
    // session count in `valid_ref_counts` moved: not the kept batch.
    let after = from(&two, &["task"], start_token, xml).await;
    let Ok(Value::Encoded(_, after_bytes)) = &after else {
        panic!("{after:?}");
    };
    let sessions = |text: &str| {
        let at = text.find("<name>session</name>").expect("a session count");
        text[at..].split("</int>").next().unwrap().to_string()
    };
    let before_logout = written(&later);
    let now = String::from_utf8(after_bytes.to_vec()).unwrap();
    assert_ne!(sessions(&now), sessions(&before_logout), "{now}");
    assert_eq!(
        written(&after),
        written(&from(&two, &["task"], start_token, None).await)
    );
}

/// The REST faces' one-pass read of a task by uuid gives what their session check
/// (`session.get_uuid`), `task.get_by_uuid` and `task.get_record` give one after the
/// other (the first error, and whether the session check gave it, else the last call's
/// answer), for good and bad sessions, unknown and refused uuids, every codec.
#[tokio::test]
async fn a_task_by_uuid_is_the_two_calls_in_one() {
    use xapi_taskd::api::dispatch::Refusal;
    use xapi_taskd::wire::encode::Codec;

    let srv = start().await;
    let root = login_root(&srv.svc).await;
    let alice = user_session(&srv.svc, "alice", "read-only").await;
    let Ok(Value::String(task)) =
        call(&srv.svc, "task.create", vec![s(&root), s("a <t> é"), s("")]).await
    else {
        panic!("task.create");
    };
    let Ok(Value::String(uuid)) = call(&srv.svc, "task.get_uuid", vec![s(&root), s(&task)]).await
    else {
        panic!("task.get_uuid");
    };
    let gone = login_root(&srv.svc).await;
    call(&srv.svc, "session.logout", vec![s(&gone)])
        .await
        .expect("logout");
    let cases = [
        (root.as_str(), uuid.as_str()),
        (alice.as_str(), uuid.as_str()),
        (root.as_str(), "no-such-uuid"),
        (alice.as_str(), "no-such-uuid"),
        (gone.as_str(), uuid.as_str()),
        ("OpaqueRef:nonsense", "no-such-uuid"),
        (root.as_str(), "bad\u{1}uuid"),
        ("bad\u{1}session", uuid.as_str()),
    ];
    let mut seen_ok = 0;
    for (session, id) in cases {
        for codec in [None, Some(Codec::View), Some(Codec::XmlRpc)] {
            let meta = RequestMeta {
                codec,
                ..RequestMeta::default()
            };
            let three = async {
                let check = dispatch::dispatch(
                    &srv.svc,
                    dispatch::call("session.get_uuid", vec![s(session), s(session)]),
                    &meta,
                )
                .await;
                if let Reply::Envelope(Err(e)) = check {
                    return Err(Refusal::Session(e));
                }
                let one = dispatch::dispatch(
                    &srv.svc,
                    dispatch::call("task.get_by_uuid", vec![s(session), s(id)]),
                    &meta,
                )
                .await;
                let Reply::Envelope(Ok(Value::String(r))) = one else {
                    let Reply::Envelope(Err(e)) = one else {
                        panic!("{one:?}")
                    };
                    return Err(Refusal::Task(e));
                };
                let rec = dispatch::dispatch(
                    &srv.svc,
                    dispatch::call("task.get_record", vec![s(session), s(&r)]),
                    &meta,
                )
                .await;
                match rec {
                    Reply::Envelope(rec) => rec.map(|rec| (r, rec)).map_err(Refusal::Task),
                    other => panic!("{other:?}"),
                }
            }
            .await;
            let one = dispatch::task_by_uuid(&srv.svc, session, id, codec).await;
            assert_eq!(one, three, "{session} {id} {codec:?}");
            seen_ok += usize::from(one.is_ok());
        }
    }
    // Both sessions read the task, in each codec; everything else is refused.
    assert_eq!(seen_ok, 6);
}
