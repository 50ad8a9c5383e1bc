//! Issue 14 item 3 measured at the lock itself: while large filters scan 3,000 tasks, how
//! long does a writer wait for the database's write lock? (The black-box version, with
//! the 273 KB filter and real clients, is `xmlrpc-tests/test_hardening.py`.)

mod common;

use std::time::{Duration, Instant};

use common::{ROOT_PASSWORD, call, s};
use xapi_taskd::config::Settings;
use xapi_taskd::serve::open_service;
use xapi_taskd::wire::value::Value;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_filter_scan_never_holds_the_write_lock_off_for_long() {
    let dir = tempfile::tempdir().unwrap();
    let mut settings = Settings::defaults(dir.path().to_path_buf());
    settings.ephemeral = true;
    let (svc, _) = open_service(&settings, Some(ROOT_PASSWORD)).unwrap();
    let root = call(
        &svc,
        "session.login_with_password",
        vec![s("root"), s(ROOT_PASSWORD)],
    )
    .await
    .unwrap();
    for i in 0..3000 {
        call(
            &svc,
            "task.create",
            vec![root.clone(), s(&format!("t-{i}")), s("")],
        )
        .await
        .unwrap();
    }
    // The largest filter the defaults accept: 2,001 terms, 31 KB.
    let filter = format!(
        "{}field \"name__label\" = \"t-9\"",
        "field \"name__label\" = \"t-7\" or ".repeat(1000)
    );
    let scanner = {
        let (svc, root) = (svc.clone(), root.clone());
        tokio::spawn(async move {
            let started = Instant::now();
            for _ in 0..2 {
                let found = call(
                    &svc,
                    "task.get_all_records_where",
                    vec![root.clone(), s(&filter)],
                )
                .await
                .unwrap();
                let Value::Struct(members) = found else {
                    panic!("a struct of records")
                };
                assert_eq!(members.len(), 2);
            }
            started.elapsed()
        })
    };
    // A writer, off the runtime: each acquisition of the write lock, timed.
    let db_svc = svc.clone();
    let writer = std::thread::spawn(move || {
        let mut worst = Duration::ZERO;
        let mut tries = 0;
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            let t = Instant::now();
            drop(db_svc.db.memory_mut());
            worst = worst.max(t.elapsed());
            tries += 1;
            std::thread::sleep(Duration::from_millis(1));
            if db_svc.db.is_stopping() {
                break;
            }
        }
        (worst, tries)
    });
    let scans = scanner.await.unwrap();
    svc.db.begin_shutdown();
    let (worst, tries) = writer.join().unwrap();
    println!("2 scans in {scans:?}; worst write-lock wait {worst:?} over {tries} tries");
    assert!(tries > 10, "the writer ran during the scans");
    // One chunk is ~16k term evaluations (~1 ms optimised, a few ms in a debug build);
    // before chunking, the writer waited for a whole scan (about a second).
    assert!(worst < Duration::from_millis(100), "{worst:?}");
}
