//! The event fan-out rows: N connections each blocked in `event.from` on one task, then
//! one `task.set_progress`; each waiter's time from that send to its complete reply. The
//! limit is bare hyper holding the same connections and answering them all with the bytes
//! of a real event reply (docs/performance.md, Method).

use std::rc::Rc;
use std::time::{Duration, Instant};

use crate::Table;
use crate::client::{Conn, Request, Response, find, login, new_task, xml_call_typed};
use crate::procs::{Proc, cpu_ms, start_bare_fanout, start_ours};

/// Fan-out, with its own limit: the bare server holding the same number of connections
/// and answering them all with the bytes of a real event reply, no application work. Also
/// prints the CPU time each side spent in the round, which shows where the time goes.
pub async fn rows(table: &mut Table, fanouts: &[usize]) {
    let fresh = start_ours(false);
    let session = login(fresh.port).await;
    let task = new_task(fresh.port, &session, "fan-out", "").await;
    let (waiter, trigger) = fanout_calls(fresh.port, &session, &task, 0).await;
    let event_reply = fanout(&fresh, waiter, trigger, 1).await.sample;
    let bare_fan = start_bare_fanout(&event_reply);
    for (round, &n) in fanouts.iter().enumerate() {
        let (waiter, trigger) = fanout_calls(fresh.port, &session, &task, round + 1).await;
        let ours = fanout(&fresh, waiter.clone(), trigger.clone(), n).await;
        let bare = fanout(&bare_fan, waiter, trigger, n).await;
        println!(
            "# fan-out to {n}: CPU ms from the change to the last reply, server/client: xapi-taskd {:.0}/{:.0}, bare {:.0}/{:.0}",
            ours.cpu.0, ours.cpu.1, bare.cpu.0, bare.cpu.1
        );
        table.row([
            &format!("event.from fan-out to {n} waiters (ms after the change)"),
            &n.to_string(),
            &ours.to_string(),
            &bare.to_string(),
            "",
            &format!("p99 {:.1}× the limit's", ours.p99 / bare.p99),
        ]);
    }
}

/// With BENCH_PERF_CTL naming the control FIFO of a `perf record --control
/// fifo:FIFO --delay=-1`, records only the fan-out's answer phase (docs/performance.md).
fn perf_control(command: &str) {
    if let Ok(fifo) = std::env::var("BENCH_PERF_CTL") {
        let _ = std::fs::write(fifo, format!("{command}\n"));
    }
}

/// The two calls of a fan-out round against our server: the waiters' `event.from` on one
/// task from the current token, and the `set_progress` that wakes them (a value no earlier
/// round wrote: an identical write is not a change and wakes nobody).
pub async fn fanout_calls(
    port: u16,
    session: &str,
    task: &str,
    round: usize,
) -> (Vec<u8>, Vec<u8>) {
    let batch = Conn::open(port)
        .await
        .post("/", "text/xml", &xml_call_typed("event.from", &[session], "<array><data><value>task</value></data></array></value></param><param><value></value></param><param><value><double>0</double>"))
        .await;
    let s = String::from_utf8_lossy(&batch);
    let i =
        s.rfind("<name>token</name><value>").expect("token") + "<name>token</name><value>".len();
    let token = &s[i..i + 41];
    let waiter = xml_call_typed(
        "event.from",
        &[session],
        &format!(
            "<array><data><value>task/{task}</value></data></array></value></param><param><value>{token}</value></param><param><value><double>120</double>"
        ),
    );
    let trigger = xml_call_typed(
        "task.set_progress",
        &[session, task],
        &format!("<double>{}</double>", 1.0 / (round as f64 + 2.0)),
    );
    (waiter, trigger)
}

/// One fan-out round: `n` connections each block in the `waiter` call, then `trigger` is
/// sent on another connection, and each waiter's time from that send to its complete
/// reply is recorded.
async fn fanout(server: &Proc, waiter: Vec<u8>, trigger: Vec<u8>, n: usize) -> Fanout {
    fanout_via(server, server.port, waiter, trigger, n).await
}

/// [`fanout`] with the trigger sent to another server (a second front-end of a cluster).
pub async fn fanout_via(
    server: &Proc,
    trigger_port: u16,
    waiter: Vec<u8>,
    trigger: Vec<u8>,
    n: usize,
) -> Fanout {
    use std::cell::{Cell, RefCell};

    /// What the round's waiters share (one thread: Rc and cells).
    struct Round {
        body: Vec<u8>,
        start: Cell<Option<Instant>>,
        times: RefCell<Vec<f64>>,
        sample: RefCell<Option<Response>>,
        held: RefCell<Vec<Conn>>,
    }

    let port = server.port;
    let mut c = Conn::open(trigger_port).await;
    let round = Rc::new(Round {
        body: Request::xml(waiter).bytes(),
        start: Cell::new(None),
        times: RefCell::new(Vec::with_capacity(n)),
        sample: RefCell::new(None),
        held: RefCell::new(Vec::with_capacity(n)),
    });
    let local = tokio::task::LocalSet::new();
    // Each waiter sends its call as soon as its connection is open (inside the LocalSet):
    // a connection that stays silent while thousands of others are opened would meet the
    // server's request-head timeout. A waiter keeps its connection once answered, as a
    // real watcher does (it sends its next `event.from` on it): closing it at once would
    // put connection teardown, which costs as much kernel time as the reply, inside the
    // measured window.
    let waiters = {
        let round = round.clone();
        async move {
            for _ in 0..n {
                let mut conn = Conn::open(port).await;
                let round = round.clone();
                tokio::task::spawn_local(async move {
                    let reply = conn.send(&round.body).await;
                    let t0: Instant = round.start.get().expect("woken after the change");
                    round
                        .times
                        .borrow_mut()
                        .push(t0.elapsed().as_secs_f64() * 1000.0);
                    assert!(
                        find(&reply.body, b"<value>mod</value>").is_some(),
                        "a waiter got no event: {}",
                        String::from_utf8_lossy(&reply.body)
                    );
                    *round.sample.borrow_mut() = Some(reply);
                    round.held.borrow_mut().push(conn);
                });
            }
        }
    };
    local.run_until(waiters).await;
    local
        .run_until(async {
            // Let every waiter reach the server and block.
            tokio::time::sleep(Duration::from_millis(500 + n as u64 / 5)).await;
            perf_control("enable");
            round.start.set(Some(Instant::now()));
            c.post("/", "text/xml", &trigger).await;
        })
        .await;
    let cpu = (server.cpu_ms(), cpu_ms("self"));
    local.await;
    let cpu = (server.cpu_ms() - cpu.0, cpu_ms("self") - cpu.1);
    perf_control("disable");
    let round = Rc::try_unwrap(round).ok().expect("every waiter is done");
    drop(round.held);
    let mut t = round.times.into_inner();
    t.sort_by(f64::total_cmp);
    let pct = |p: f64| t[((t.len() as f64 - 1.0) * p) as usize];
    Fanout {
        p50: pct(0.5),
        p99: pct(0.99),
        max: t[t.len() - 1],
        cpu,
        sample: round.sample.into_inner().expect("a reply"),
    }
}

/// What a fan-out round measured: latencies in ms after the change, the CPU ms the server
/// and the client spent from the change until the last waiter had its reply, and one
/// waiter's reply.
pub struct Fanout {
    p50: f64,
    p99: f64,
    max: f64,
    cpu: (f64, f64),
    sample: Response,
}

impl std::fmt::Display for Fanout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "p50 {:.1}, p99 {:.1}, max {:.1}",
            self.p50, self.p99, self.max
        )
    }
}
