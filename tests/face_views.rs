//! The REST faces read task records in the pipeline's view form (`Codec::View`) instead
//! of as a `Value` tree. Both readings must give the same `TaskRecord`, so the Redfish
//! Task document and the XClarity job written from it are the same bytes: checked here on
//! tasks with odd strings, unicode, a large `other_config`, every status, pending
//! cancels and destroys, error infos, results and sub-tasks.

mod common;

use std::sync::Arc;

use common::{call, login_root, s, start};
use xapi_taskd::api::dispatch::{self, Reply, RequestMeta, Service};
use xapi_taskd::face::xapi::{TaskRecord, task_record};
use xapi_taskd::wire::value::Value;

async fn get_record_tree(svc: &Arc<Service>, session: &str, r: &str) -> Value {
    match dispatch::dispatch(
        svc,
        dispatch::call("task.get_record", vec![s(session), s(r)]),
        &RequestMeta::default(),
    )
    .await
    {
        Reply::Envelope(Ok(v)) => v,
        other => panic!("{other:?}"),
    }
}

async fn create(
    svc: &Arc<Service>,
    session: &str,
    label: &str,
    desc: &str,
    parent: &str,
) -> String {
    let meta = RequestMeta {
        subtask_of: (!parent.is_empty()).then(|| parent.to_string()),
        ..RequestMeta::default()
    };
    match dispatch::dispatch(
        svc,
        dispatch::call("task.create", vec![s(session), s(label), s(desc)]),
        &meta,
    )
    .await
    {
        Reply::Envelope(Ok(Value::String(r))) => r,
        other => panic!("{other:?}"),
    }
}

async fn ok(svc: &Arc<Service>, method: &str, params: Vec<Value>) {
    call(svc, method, params)
        .await
        .unwrap_or_else(|e| panic!("{method}: {e:?}"));
}

#[tokio::test]
async fn the_view_reads_every_task_as_the_tree_does() {
    let srv = start().await;
    let svc = &srv.svc;
    let root = login_root(svc).await;
    let odd = [
        "plain",
        "",
        "quotes \" and \\ backslash / slash",
        "<xml> & 'apos' \t tab \n newline \r cr",
        "unicode é ü 中文 😀 \u{2028} \u{fffd}",
        "control \u{7f} del",
        "OpaqueRef:NULL",
    ];
    let mut tasks = Vec::new();
    for (i, label) in odd.iter().enumerate() {
        let desc = odd[(i + 1) % odd.len()];
        tasks.push(create(svc, &root, label, desc, "").await);
    }
    // Sub-tasks, two deep.
    let parent = tasks[0].clone();
    let child = create(svc, &root, "child", "c", &parent).await;
    let grandchild = create(svc, &root, "grandchild", "g", &child).await;
    tasks.push(child.clone());
    tasks.push(grandchild);
    // Every status, progress values, results and error infos.
    let statuses = ["pending", "success", "failure", "cancelling", "cancelled"];
    for (i, t) in tasks.iter().enumerate() {
        let p = [0.0, 0.333333333333, 1.0, 0.5, 1e-7][i % 5];
        ok(
            svc,
            "task.set_progress",
            vec![s(&root), s(t), Value::Double(p)],
        )
        .await;
        let k = format!("key {i} \"ü\"");
        ok(
            svc,
            "task.add_to_other_config",
            vec![s(&root), s(t), s(&k), s(odd[i % odd.len()])],
        )
        .await;
    }
    // A big other_config on one task.
    for j in 0..200 {
        let k = format!("k{j:03}/é");
        let v = "v".repeat(j);
        ok(
            svc,
            "task.add_to_other_config",
            vec![s(&root), s(&tasks[1]), s(&k), s(&v)],
        )
        .await;
    }
    ok(
        svc,
        "task.set_result",
        vec![s(&root), s(&tasks[2]), s("<value>ok</value> é")],
    )
    .await;
    ok(
        svc,
        "task.set_error_info",
        vec![
            s(&root),
            s(&tasks[3]),
            Value::Array(vec![s("INTERNAL_ERROR"), s("why \"é\""), s("")]),
        ],
    )
    .await;
    // A cancel asked of a pending task, and a destroy of an unfinished one (both marked
    // in `current_operations`).
    ok(svc, "task.cancel", vec![s(&root), s(&tasks[4])]).await;
    ok(svc, "task.destroy", vec![s(&root), s(&tasks[5])]).await;
    let finished = [
        (6, "cancelled"),
        (7, "cancelling"),
        (2, "success"),
        (3, "failure"),
    ];
    for (i, st) in finished {
        ok(svc, "task.set_status", vec![s(&root), s(&tasks[i]), s(st)]).await;
    }

    let mut seen_status = std::collections::BTreeSet::new();
    for t in &tasks {
        let tree = TaskRecord::from_record(&get_record_tree(svc, &root, t).await);
        let view = task_record(svc, &root, t)
            .await
            .expect("get_record")
            .expect("the task exists");
        assert_eq!(view, tree, "task {t}");
        assert!(!view.uuid.is_empty() && !view.created.is_empty());
        seen_status.insert(view.status.clone());
        // The documents written from either reading are the same bytes.
        for root_uuid in [None, Some("1b4e28ba-2fa1-11d2-883f-0016d3cca427")] {
            let (mut a, mut b) = (Vec::new(), Vec::new());
            xapi_taskd::redfish::tasks::write_task(&mut a, &view, root_uuid);
            xapi_taskd::redfish::tasks::write_task(&mut b, &tree, root_uuid);
            assert_eq!(a, b);
        }
        let job = |r: &TaskRecord| {
            serde_json::to_vec(&xapi_taskd::xclarity::mapping::job_json(r, None)).unwrap()
        };
        assert_eq!(job(&view), job(&tree));
        // …and the job written straight is serde_json's bytes of that tree.
        let mut written = Vec::new();
        xapi_taskd::xclarity::mapping::write_job(&mut written, &view, None).unwrap();
        assert_eq!(written, job(&tree));
    }
    assert_eq!(seen_status.len(), statuses.len(), "{seen_status:?}");
    let (root_ref, tasks_ref) = (&root, &tasks);
    let marked = |i: usize| async move {
        task_record(svc, root_ref, &tasks_ref[i])
            .await
            .unwrap()
            .unwrap()
    };
    assert!(marked(4).await.cancel_requested);
    assert!(marked(5).await.destroy_requested);
    assert_eq!(marked(1).await.other_config.len(), 201);
    assert_eq!(
        marked(3).await.error_info,
        ["INTERNAL_ERROR", "why \"é\"", ""]
    );
    assert_eq!(marked(8).await.subtask_of, child);
    assert_eq!(marked(7).await.subtasks.len(), 1);

    // A task that is gone is `None`, an invalid session an error, as for the tree.
    ok(
        svc,
        "task.set_status",
        vec![s(&root), s(&tasks[0]), s("success")],
    )
    .await;
    ok(svc, "task.destroy", vec![s(&root), s(&tasks[0])]).await;
    assert_eq!(task_record(svc, &root, &tasks[0]).await.unwrap(), None);
    let bad = task_record(svc, "OpaqueRef:not-a-session", &tasks[1]).await;
    assert_eq!(bad.unwrap_err().code, "SESSION_INVALID");
}
