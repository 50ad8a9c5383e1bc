//! The event fan-out rows: N connections each blocked in `event.from` on one task, then
//! one `task.set_progress`; each waiter's time from that send to its complete reply. The
//! limit is bare hyper holding the same connections and answering them all with the bytes
//! of a real event reply (docs/performance.md, Method).

use std::rc::Rc;
use std::time::{Duration, Instant};

use crate::Table;
use crate::client::{Conn, Request, Response, find, login, new_task, xml_call_typed};
use crate::procs::{
    Proc, cpu_ms, start_bare_fanout, start_bare_under, start_ours, start_ours_under,
};

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

/// The fan-out's count rows (`BENCH_ONLY=counts`, docs/performance.md): one round to `n`
/// waiters with the server under callgrind, its counters zeroed just before the change
/// and dumped after the last reply, so the figure is the answer phase alone (the change
/// itself, one `set_progress`, is a few dozen instructions per waiter at 1,000); then a
/// round with `perf stat` counting CPU time, page faults, context switches and syscalls
/// over the same phase (at `n` and at 10,000 waiters). Ours and the fan-out limit, per
/// woken waiter.
pub async fn count_rows(table: &mut Table, n: usize, dir: &std::path::Path, kernel: bool) {
    use crate::counts::{callgrind, callgrind_control, dump_instructions};
    let setup = start_ours(false);
    let session = login(setup.port).await;
    let task = new_task(setup.port, &session, "fan-out", "").await;
    let (waiter, trigger) = fanout_calls(setup.port, &session, &task, 0).await;
    let event_reply = fanout(&setup, waiter, trigger, 1).await.sample;
    // The limit answers any `event.from` and `set_progress` body: it gets these.
    let setup_calls = fanout_calls(setup.port, &session, &task, 1).await;
    let calls_on = async |server: &Proc, bare: bool| {
        if bare {
            return setup_calls.clone();
        }
        let session = login(server.port).await;
        let task = new_task(server.port, &session, "fan-out", "").await;
        fanout_calls(server.port, &session, &task, 1).await
    };
    let mut ir = Vec::new();
    for bare in [false, true] {
        let out = dir.join(format!("fanout-{}", if bare { "bare" } else { "ours" }));
        let server = if bare {
            start_bare_under(&[&event_reply, &event_reply], &callgrind(&out))
        } else {
            start_ours_under(false, &callgrind(&out))
        };
        let (waiter, trigger) = calls_on(&server, bare).await;
        let pid = server.pid();
        fanout_hooked(&server, server.port, waiter, trigger, n, &|start| {
            callgrind_control(if start { "-z" } else { "-d" }, pid)
        })
        .await;
        ir.push(dump_instructions(&out) / n as f64);
    }
    table.row([
        &format!("event.from fan-out to {n}: instructions / woken waiter (callgrind)"),
        &n.to_string(),
        &format!("{:.0}", ir[0]),
        &format!("{:.0}", ir[1]),
        "",
        &format!("{:.2}× the limit's (+{:.0})", ir[0] / ir[1], ir[0] - ir[1]),
    ]);
    if !kernel {
        return;
    }
    // The kernel's side is measured without valgrind, so also at 10,000 waiters.
    for n in [n, 10_000] {
        let mut kernel = Vec::new();
        for bare in [false, true] {
            let server = if bare {
                start_bare_fanout(&event_reply)
            } else {
                start_ours(false)
            };
            let (waiter, trigger) = calls_on(&server, bare).await;
            kernel.push(phase_kernel_counts(&server, waiter, trigger, n).await);
        }
        table.row([
            &format!(
                "event.from fan-out to {n}: CPU µs, page faults, context switches, syscalls / woken waiter"
            ),
            &n.to_string(),
            &kernel[0].to_string(),
            &kernel[1].to_string(),
            "",
            &format!("CPU {:.2}× the limit's", kernel[0].cpu_us / kernel[1].cpu_us),
        ]);
    }
}

/// Context switches and syscalls per woken waiter during the answer phase only: `perf
/// stat` attached to the server, enabled and disabled through its control FIFO around it.
async fn phase_kernel_counts(
    server: &Proc,
    waiter: Vec<u8>,
    trigger: Vec<u8>,
    n: usize,
) -> PhaseCounts {
    use std::process::{Command, Stdio};
    let tmp = std::env::temp_dir();
    let (ctl, ack, out) = (
        tmp.join(format!("bench-fan-ctl-{}", server.port)),
        tmp.join(format!("bench-fan-ack-{}", server.port)),
        tmp.join(format!("bench-fan-stat-{}.csv", server.port)),
    );
    for fifo in [&ctl, &ack] {
        let _ = std::fs::remove_file(fifo);
        let made = Command::new("mkfifo").arg(fifo).status();
        assert!(made.is_ok_and(|s| s.success()), "mkfifo");
    }
    let mut perf = Command::new("perf")
        .args(["stat", "-x", ",", "--delay=-1", "-o"])
        .arg(&out)
        .arg(format!(
            "--control=fifo:{},{}",
            ctl.display(),
            ack.display()
        ))
        .args([
            "-e",
            "task-clock,page-faults,context-switches,raw_syscalls:sys_enter",
        ])
        .args(["-p", &server.pid().to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("perf (Debian's linux-perf)");
    // perf opens the FIFOs once it has attached; a write before that would block.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let acks = {
        use std::os::unix::fs::OpenOptionsExt;
        std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(&ack)
            .expect("perf's ack FIFO")
    };
    // Each command is waited for until perf acknowledges it (at most 2 s): a short
    // phase would otherwise be over before perf has enabled its counters.
    let command = |c: &str| {
        use std::io::Read;
        let _ = std::fs::write(&ctl, format!("{c}\n"));
        let mut got = Vec::new();
        let until = Instant::now() + Duration::from_secs(2);
        while !got.ends_with(b"ack\n") && Instant::now() < until {
            let mut buf = [0u8; 16];
            match (&acks).read(&mut buf) {
                Ok(n) if n > 0 => got.extend_from_slice(&buf[..n]),
                _ => std::thread::sleep(Duration::from_millis(1)),
            }
        }
    };
    fanout_hooked(server, server.port, waiter, trigger, n, &|start| {
        command(if start { "enable" } else { "disable" })
    })
    .await;
    // SAFETY: kill has no memory-safety preconditions; the pid is our own child's.
    unsafe { libc::kill(perf.id() as i32, libc::SIGINT) };
    let _ = perf.wait();
    let _ = std::fs::remove_file(&ctl);
    let _ = std::fs::remove_file(&ack);
    let text = std::fs::read_to_string(&out).unwrap_or_default();
    let _ = std::fs::remove_file(&out);
    let count = |event: &str| {
        text.lines()
            .find(|l| l.contains(event))
            .and_then(|l| l.split(',').next()?.trim().parse::<f64>().ok())
            .unwrap_or(f64::NAN)
            / n as f64
    };
    PhaseCounts {
        // task-clock is in ms.
        cpu_us: count("task-clock") * 1000.0,
        faults: count("page-faults"),
        switches: count("context-switches"),
        syscalls: count("raw_syscalls:sys_enter"),
    }
}

/// What the server's kernel side of a fan-out's answer phase cost, per woken waiter.
struct PhaseCounts {
    cpu_us: f64,
    faults: f64,
    switches: f64,
    syscalls: f64,
}

impl std::fmt::Display for PhaseCounts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:.1}, {:.2}, {:.2}, {:.2}",
            self.cpu_us, self.faults, self.switches, self.syscalls
        )
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
    fanout_hooked(server, trigger_port, waiter, trigger, n, &|start| {
        perf_control(if start { "enable" } else { "disable" })
    })
    .await
}

/// [`fanout_via`] with `phase(true)` called just before the change is sent and
/// `phase(false)` once the last waiter has its reply: the instruments' window.
async fn fanout_hooked(
    server: &Proc,
    trigger_port: u16,
    waiter: Vec<u8>,
    trigger: Vec<u8>,
    n: usize,
    phase: &dyn Fn(bool),
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
    let trigger_ms = local
        .run_until(async {
            // Let every waiter reach the server and block: until the server has been
            // idle for a while (under valgrind that takes many seconds).
            tokio::time::sleep(Duration::from_millis(500 + n as u64 / 5)).await;
            let mut cpu = server.cpu_ms();
            loop {
                tokio::time::sleep(Duration::from_millis(300)).await;
                let now = server.cpu_ms();
                if now - cpu < 20.0 {
                    break;
                }
                cpu = now;
            }
            phase(true);
            let t0 = Instant::now();
            round.start.set(Some(t0));
            c.post("/", "text/xml", &trigger).await;
            t0.elapsed().as_secs_f64() * 1000.0
        })
        .await;
    let cpu = (server.cpu_ms(), cpu_ms("self"));
    local.await;
    let cpu = (server.cpu_ms() - cpu.0, cpu_ms("self") - cpu.1);
    phase(false);
    let round = Rc::try_unwrap(round).ok().expect("every waiter is done");
    drop(round.held);
    let mut t = round.times.into_inner();
    t.sort_by(f64::total_cmp);
    let pct = |p: f64| t[((t.len() as f64 - 1.0) * p) as usize];
    Fanout {
        first: t[0],
        trigger: trigger_ms,
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
    /// The first waiter's reply and the change's own reply (ms after it was sent): the
    /// cluster rows split a cross-front-end round with them (the change's path to the
    /// waiters' server, then that server answering them).
    #[cfg_attr(not(feature = "etcd"), allow(dead_code))]
    pub first: f64,
    #[cfg_attr(not(feature = "etcd"), allow(dead_code))]
    pub trigger: f64,
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
