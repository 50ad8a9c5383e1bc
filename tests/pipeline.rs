//! The dispatch pipeline's order (spec §1.5): which error wins when a call is wrong in
//! several ways. Calls go through the dispatcher directly.

mod common;

use common::{call, login_root, s, start};
use xapi_taskd::api::dispatch::{self, Call, Reply, RequestMeta};
use xapi_taskd::wire::value::Value;

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
