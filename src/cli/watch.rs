//! `watch [UUID…]`: a live view of tasks, driven by `event.from` (no polling).
//!
//! The first `event.from(["task"], "", 0.0)` returns every task as an `add` with its
//! snapshot and a token; a thread then waits on `event.from(…, token, 30.0)` and hands each
//! batch of changes to the main thread over a channel. The main thread owns the model and
//! the screen: on a terminal it redraws the whole block (one line per task, subtasks
//! indented under their parent) on every batch and once a second for the clocks; otherwise
//! it prints one plain line per change. It exits when every watched task has finished:
//! 0 if all succeeded, 1 if any failed, was cancelled or was destroyed first, 2 on error,
//! 130 on Ctrl-C (after logging out).

use std::collections::{HashMap, HashSet};
use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use time::OffsetDateTime;

use super::client::{CliError, Client, Connection, value_text};
use super::task::{TaskRecord, parse_xapi_date, sort_tasks};

/// How long one `event.from` waits on the server when nothing changes.
const EVENT_TIMEOUT: f64 = 30.0;
/// How often the terminal view refreshes its clocks (elapsed, ETA) without events.
const TICK: Duration = Duration::from_secs(1);
/// How often the terminal view checks the terminal's size.
const RESIZE_CHECK: Duration = Duration::from_secs(2);
const BAR_WIDTH: usize = 20;
const LABEL_WIDTH: usize = 28;

#[derive(Debug, Clone, clap::Args)]
pub struct WatchArgs {
    #[command(flatten)]
    pub conn: Connection,
    /// Task uuids to watch (default: every task unfinished at start).
    #[arg(value_name = "UUID")]
    pub uuids: Vec<String>,
}

/// One `event.from` result: (operation, ref, snapshot) triples and the next token.
struct Batch {
    events: Vec<(String, String, Option<TaskRecord>)>,
    token: String,
}

fn event_from(client: &Client, token: &str, timeout: f64) -> Result<Batch, CliError> {
    let v = client.call(
        "event.from",
        vec![json!(["task"]), json!(token), json!(timeout)],
    )?;
    let token = v.get("token").map(value_text).unwrap_or_default();
    let mut events = Vec::new();
    if let Some(Value::Array(es)) = v.get("events") {
        for e in es {
            if e.get("class").map(value_text).as_deref() != Some("task") {
                continue;
            }
            let op = e.get("operation").map(value_text).unwrap_or_default();
            let r = e.get("ref").map(value_text).unwrap_or_default();
            let snap = e
                .get("snapshot")
                .filter(|s| s.is_object())
                .map(|s| TaskRecord::from_json(&r, s));
            events.push((op, r, snap));
        }
    }
    Ok(Batch { events, token })
}

/// What is known of one task, plus the first sample of its progress for the ETA.
#[derive(Debug, Clone)]
struct Tracked {
    rec: TaskRecord,
    first: (Instant, f64),
}

/// The tasks the view knows, the watched ones (roots), and the watched ones destroyed
/// before they finished.
#[derive(Debug, Default)]
pub struct Model {
    tasks: HashMap<String, Tracked>,
    roots: Vec<String>,
    gone: HashSet<String>,
}

impl Model {
    fn apply(&mut self, op: &str, r: &str, snap: Option<TaskRecord>, now: Instant) {
        match (op, snap) {
            ("del", _) => {
                if let Some(t) = self.tasks.remove(r)
                    && t.rec.is_unfinished()
                    && self.roots.iter().any(|x| x == r)
                {
                    self.gone.insert(r.to_string());
                }
            }
            (_, Some(mut rec)) => {
                let prev = self.tasks.get(r);
                let first = prev.map_or((now, rec.progress), |t| t.first);
                if !rec.is_unfinished() && parse_xapi_date(&rec.finished).is_none() {
                    // A client's set_status does not set `finished` (as in xapi): stop the
                    // clock when the view first saw the task finished.
                    rec.finished = prev
                        .filter(|t| !t.rec.is_unfinished())
                        .map(|t| t.rec.finished.clone())
                        .unwrap_or_else(|| xapi_date(OffsetDateTime::now_utc()));
                }
                self.tasks.insert(r.to_string(), Tracked { rec, first });
            }
            _ => {}
        }
    }

    /// Chooses the watched tasks after the first batch: the given uuids (each must exist),
    /// or every unfinished task that is not a subtask of another unfinished one.
    fn choose_roots(&mut self, uuids: &[String]) -> Result<(), CliError> {
        let mut recs: Vec<TaskRecord> = self.tasks.values().map(|t| t.rec.clone()).collect();
        sort_tasks(&mut recs);
        if uuids.is_empty() {
            let unfinished: HashSet<&str> = recs
                .iter()
                .filter(|t| t.is_unfinished())
                .map(|t| t.r#ref.as_str())
                .collect();
            self.roots = recs
                .iter()
                .filter(|t| t.is_unfinished() && !unfinished.contains(t.subtask_of.as_str()))
                .map(|t| t.r#ref.clone())
                .collect();
        } else {
            for u in uuids {
                let t = recs
                    .iter()
                    .find(|t| &t.uuid == u)
                    .ok_or_else(|| CliError::Api {
                        code: "UUID_INVALID".into(),
                        params: vec!["task".into(), u.clone()],
                    })?;
                if !self.roots.contains(&t.r#ref) {
                    self.roots.push(t.r#ref.clone());
                }
            }
        }
        Ok(())
    }

    /// Every watched task has finished or is gone.
    fn done(&self) -> bool {
        self.roots.iter().all(|r| match self.tasks.get(r) {
            Some(t) => !t.rec.is_unfinished(),
            None => true,
        })
    }

    /// Watched tasks that did not succeed (failed, cancelled or gone).
    fn failed(&self) -> usize {
        self.roots
            .iter()
            .filter(|r| match self.tasks.get(*r) {
                Some(t) => t.rec.status != "success",
                None => true,
            })
            .count()
    }

    /// (depth, ref) in display order: each watched task, then its subtasks, depth first.
    /// Children are found through their `subtask_of`, so a new subtask shows up with its
    /// own `add` event.
    fn rows(&self) -> Vec<(usize, String)> {
        let mut children: HashMap<&str, Vec<&TaskRecord>> = HashMap::new();
        for t in self.tasks.values() {
            children
                .entry(t.rec.subtask_of.as_str())
                .or_default()
                .push(&t.rec);
        }
        // Siblings in their parent's `subtasks` order (creation order), then any the parent
        // does not list yet.
        for (parent, v) in children.iter_mut() {
            let order = self.tasks.get(*parent).map(|p| &p.rec.subtasks);
            let pos = |t: &TaskRecord| {
                order
                    .and_then(|o| o.iter().position(|r| r == &t.r#ref))
                    .unwrap_or(usize::MAX)
            };
            v.sort_by(|a, b| (pos(a), &a.created, &a.uuid).cmp(&(pos(b), &b.created, &b.uuid)));
        }
        let mut out = Vec::new();
        let mut seen = HashSet::new();
        fn walk<'a>(
            r: &'a str,
            depth: usize,
            children: &HashMap<&str, Vec<&'a TaskRecord>>,
            seen: &mut HashSet<&'a str>,
            out: &mut Vec<(usize, String)>,
        ) {
            if !seen.insert(r) {
                return;
            }
            out.push((depth, r.to_string()));
            if let Some(kids) = children.get(r) {
                for k in kids {
                    walk(&k.r#ref, depth + 1, children, seen, out);
                }
            }
        }
        for r in &self.roots {
            walk(r, 0, &children, &mut seen, &mut out);
        }
        out
    }

    /// The display lines (terminal view).
    fn lines(&self, now: Instant, wall: OffsetDateTime, width: usize) -> Vec<String> {
        self.rows()
            .into_iter()
            .map(|(depth, r)| {
                let line = match self.tasks.get(&r) {
                    Some(t) => task_line(&t.rec, depth, eta(t, now, wall), wall, true),
                    None => gone_line(depth),
                };
                truncate(&line, width)
            })
            .collect()
    }
}

/// xapi's date form, `20240101T12:34:56Z`.
fn xapi_date(t: OffsetDateTime) -> String {
    let fmt = time::macros::format_description!("[year][month][day]T[hour]:[minute]:[second]Z");
    t.format(fmt).unwrap_or_default()
}

/// Seconds until done, from the progress rate seen since the task was first seen, or
/// (before the progress moved) from the rate since it was created. None if unknown.
fn eta(t: &Tracked, now: Instant, wall: OffsetDateTime) -> Option<u64> {
    let p = t.rec.progress;
    let (t0, p0) = t.first;
    let since_first = now.duration_since(t0).as_secs_f64();
    let since_created = parse_xapi_date(&t.rec.created)
        .map(|c| (wall - c).as_seconds_f64().max(0.0))
        .unwrap_or(0.0);
    eta_from(p, p0, since_first, since_created)
}

/// The pure part of [`eta`].
pub fn eta_from(p: f64, p0: f64, since_first: f64, since_created: f64) -> Option<u64> {
    if !(0.0..1.0).contains(&p) {
        return (p >= 1.0).then_some(0);
    }
    let secs = if p > p0 && since_first > 0.0 {
        (1.0 - p) * since_first / (p - p0)
    } else if p > 0.0 && since_created > 0.0 {
        (1.0 - p) * since_created / p
    } else {
        return None;
    };
    secs.is_finite().then(|| secs.round() as u64)
}

/// `h:mm:ss`.
pub fn clock(secs: u64) -> String {
    format!("{}:{:02}:{:02}", secs / 3600, secs / 60 % 60, secs % 60)
}

/// `[#####---------------]`, progress clamped to 0–1.
pub fn bar(progress: f64) -> String {
    let p = if progress.is_nan() {
        0.0
    } else {
        progress.clamp(0.0, 1.0)
    };
    let full = (p * BAR_WIDTH as f64).round() as usize;
    format!("[{}{}]", "#".repeat(full), "-".repeat(BAR_WIDTH - full))
}

/// One task's line: label (indented by depth), bar, percent, status, elapsed, then ETA for
/// an unfinished task or the result/error of a finished one.
pub fn task_line(
    t: &TaskRecord,
    depth: usize,
    eta: Option<u64>,
    wall: OffsetDateTime,
    with_bar: bool,
) -> String {
    let indent = "  ".repeat(depth);
    let label_width = LABEL_WIDTH.saturating_sub(indent.len()).max(8);
    let mut label: String = t.name_label.chars().take(label_width).collect();
    if label.is_empty() {
        label = t.uuid.chars().take(8).collect();
    }
    let pct = (t.progress.clamp(0.0, 1.0) * 100.0).round() as u64;
    let created = parse_xapi_date(&t.created);
    let end = if t.is_unfinished() {
        Some(wall)
    } else {
        parse_xapi_date(&t.finished).or(Some(wall))
    };
    let elapsed = match (created, end) {
        (Some(c), Some(e)) => (e - c).whole_seconds().max(0) as u64,
        _ => 0,
    };
    let status = if t.status == "pending" && t.cancel_requested() {
        "cancelling"
    } else {
        t.status.as_str()
    };
    let tail = match t.status.as_str() {
        "pending" | "cancelling" => match eta {
            Some(s) => format!("ETA {}", clock(s)),
            None => "ETA -:--:--".to_string(),
        },
        "success" if t.result.is_empty() => "done".to_string(),
        "success" => format!("result: {}", t.result),
        "failure" if t.error_info.is_empty() => "failed".to_string(),
        "failure" => format!("error: {}", t.error_info.join(" ")),
        "cancelled" => "cancelled".to_string(),
        _ => String::new(),
    };
    let bar = if with_bar {
        format!("{} ", bar(t.progress))
    } else {
        String::new()
    };
    let line = format!(
        "{indent}{label:<label_width$} {bar}{pct:>3}% {status:<10} {}  {tail}",
        clock(elapsed)
    );
    line.replace(['\n', '\r'], " ")
}

fn gone_line(depth: usize) -> String {
    format!("{}(task destroyed before it finished)", "  ".repeat(depth))
}

/// Cuts a line to the terminal width (a wrapped line would break the redraw).
fn truncate(s: &str, width: usize) -> String {
    if s.chars().count() <= width {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(width.saturating_sub(1)).collect();
        t.push('~');
        t
    }
}

/// The terminal's (columns, rows): `COLUMNS`/`LINES`, else `stty size` on /dev/tty, else
/// 80×24.
fn terminal_size() -> (usize, usize) {
    let env = |k: &str| std::env::var(k).ok().and_then(|v| v.parse::<usize>().ok());
    let stty = || -> Option<(usize, usize)> {
        let tty = std::fs::File::open("/dev/tty").ok()?;
        let out = std::process::Command::new("stty")
            .arg("size")
            .stdin(tty)
            .stderr(std::process::Stdio::null())
            .output()
            .ok()?;
        let s = String::from_utf8(out.stdout).ok()?;
        let mut it = s.split_whitespace().map(|x| x.parse::<usize>().ok());
        let rows = it.next()??;
        let cols = it.next()??;
        (rows > 0 && cols > 0).then_some((cols, rows))
    };
    let (c, r) = stty().unwrap_or((80, 24));
    (
        env("COLUMNS").unwrap_or(c).max(20),
        env("LINES").unwrap_or(r).max(3),
    )
}

/// The terminal view: redraws its block of lines in place.
struct Screen {
    drawn: usize,
    width: usize,
    height: usize,
}

impl Screen {
    fn draw(&mut self, out: &mut dyn Write, header: &str, lines: &[String]) -> std::io::Result<()> {
        let mut buf = String::new();
        if self.drawn > 0 {
            // Back to the first line of the block, column 1.
            buf.push_str(&format!("\x1b[{}F", self.drawn));
        }
        let room = self.height.saturating_sub(2).max(1);
        let mut shown: Vec<String> = vec![truncate(header, self.width)];
        if lines.len() > room {
            shown.extend(lines[..room - 1].iter().cloned());
            shown.push(format!("… {} more", lines.len() - (room - 1)));
        } else {
            shown.extend(lines.iter().cloned());
        }
        for l in &shown {
            buf.push_str("\x1b[2K");
            buf.push_str(l);
            buf.push('\n');
        }
        // Clear whatever an earlier, longer block left below.
        buf.push_str("\x1b[J");
        self.drawn = shown.len();
        out.write_all(buf.as_bytes())?;
        out.flush()
    }
}

/// Plain output: one line per task each time what it shows (status, percent, result)
/// changes; the clocks alone do not make a new line.
#[derive(Default)]
struct Plain {
    last: HashMap<String, String>,
}

impl Plain {
    fn print(
        &mut self,
        out: &mut dyn Write,
        model: &Model,
        wall: OffsetDateTime,
    ) -> std::io::Result<()> {
        for (depth, r) in model.rows() {
            let (key, line) = match model.tasks.get(&r) {
                Some(t) => {
                    let key = format!(
                        "{} {} {:.4} {} {}",
                        t.rec.status,
                        t.rec.cancel_requested(),
                        t.rec.progress,
                        t.rec.result,
                        t.rec.error_info.join(" ")
                    );
                    let eta = eta(t, Instant::now(), wall);
                    let line = format!(
                        "{} {}",
                        t.rec.uuid,
                        task_line(&t.rec, depth, eta, wall, false)
                    );
                    (key, line)
                }
                None => ("gone".to_string(), format!("{r} {}", gone_line(0))),
            };
            if self.last.get(&r) != Some(&key) {
                writeln!(out, "{}", line.trim_end())?;
                self.last.insert(r, key);
            }
        }
        out.flush()
    }
}

/// Set by the Ctrl-C handler. The logout it does wakes the event thread with
/// `SESSION_INVALID`; that is the interruption, not an error to report.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

pub fn run(args: &WatchArgs) -> ExitCode {
    match watch(args) {
        Ok(code) => code,
        Err(_) if INTERRUPTED.load(Ordering::SeqCst) => ExitCode::from(130),
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

fn watch(args: &WatchArgs) -> Result<ExitCode, CliError> {
    let client = Arc::new(Client::connect(&args.conn)?);
    // Ctrl-C is how a watch is often left: log out first (the session would otherwise
    // live until the server's session timeout), then exit 130 as shells expect. A second
    // Ctrl-C exits at once, in case the logout hangs on an unreachable server.
    let on_interrupt = Arc::clone(&client);
    let _ = ctrlc::set_handler(move || {
        if !INTERRUPTED.swap(true, Ordering::SeqCst) {
            on_interrupt.logout();
        }
        let _ = writeln!(std::io::stderr());
        std::process::exit(130);
    });
    let result = watch_with(&client, args);
    // Also wakes the event thread's pending event.from (SESSION_INVALID), which ends it.
    client.logout();
    result
}

fn watch_with(client: &Arc<Client>, args: &WatchArgs) -> Result<ExitCode, CliError> {
    let mut model = Model::default();
    // Timeout 0: the current tasks and a token at once, even when there are no tasks.
    let first = event_from(client, "", 0.0)?;
    let now = Instant::now();
    for (op, r, snap) in first.events {
        model.apply(&op, &r, snap, now);
    }
    model.choose_roots(&args.uuids)?;
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let io = |e: std::io::Error| CliError::msg(format!("cannot write to stdout: {e}"));
    if model.roots.is_empty() {
        writeln!(out, "no unfinished tasks").map_err(io)?;
        return Ok(ExitCode::SUCCESS);
    }

    let (tx, rx) = mpsc::channel::<Result<Batch, CliError>>();
    let events_client = Arc::clone(client);
    let mut token = first.token;
    std::thread::spawn(move || {
        loop {
            let batch = event_from(&events_client, &token, EVENT_TIMEOUT);
            let stop = batch.is_err();
            if let Ok(b) = &batch {
                token = b.token.clone();
            }
            if tx.send(batch).is_err() || stop {
                return;
            }
        }
    });

    let tty = std::io::stdout().is_terminal();
    let (width, height) = if tty { terminal_size() } else { (80, 24) };
    let mut screen = Screen {
        drawn: 0,
        width,
        height,
    };
    // The size is read again every few seconds, so that a resized terminal is followed
    // (no signal handler: a short-lived `stty` is all it takes).
    let mut sized_at = Instant::now();
    let mut plain = Plain::default();
    let header = |m: &Model| {
        let n = m.roots.len();
        let running = m
            .roots
            .iter()
            .filter(|r| m.tasks.get(*r).is_some_and(|t| t.rec.is_unfinished()))
            .count();
        format!(
            "watching {n} task{} ({running} running) on {}   Ctrl-C to stop",
            if n == 1 { "" } else { "s" },
            args.conn.url
        )
    };
    loop {
        let wall = OffsetDateTime::now_utc();
        let now = Instant::now();
        if tty {
            if now.duration_since(sized_at) >= RESIZE_CHECK {
                (screen.width, screen.height) = terminal_size();
                sized_at = now;
            }
            let lines = model.lines(now, wall, screen.width);
            screen.draw(&mut out, &header(&model), &lines).map_err(io)?;
        } else {
            plain.print(&mut out, &model, wall).map_err(io)?;
        }
        if model.done() {
            break;
        }
        let batch = if tty {
            match rx.recv_timeout(TICK) {
                Ok(b) => b,
                Err(mpsc::RecvTimeoutError::Timeout) => continue,
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    return Err(CliError::msg("the event stream stopped"));
                }
            }
        } else {
            rx.recv()
                .map_err(|_| CliError::msg("the event stream stopped"))?
        };
        let batch = batch?;
        let now = Instant::now();
        for (op, r, snap) in batch.events {
            model.apply(&op, &r, snap, now);
        }
    }
    let failed = model.failed();
    let total = model.roots.len();
    let gone = model.gone.len();
    let summary = if failed == 0 {
        format!(
            "all {total} watched task{} succeeded",
            if total == 1 { "" } else { "s" }
        )
    } else if gone > 0 {
        format!(
            "{failed} of {total} watched tasks did not succeed ({gone} destroyed before finishing)"
        )
    } else {
        format!("{failed} of {total} watched tasks did not succeed")
    };
    writeln!(out, "{summary}").map_err(io)?;
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(r: &str, uuid: &str, status: &str, progress: f64, parent: &str) -> TaskRecord {
        TaskRecord {
            r#ref: r.into(),
            uuid: uuid.into(),
            name_label: format!("task {uuid}"),
            status: status.into(),
            progress,
            subtask_of: parent.into(),
            created: "20240101T12:00:00Z".into(),
            finished: "20240101T12:01:30Z".into(),
            ..Default::default()
        }
    }

    fn wall() -> OffsetDateTime {
        parse_xapi_date("20240101T12:02:00Z").unwrap()
    }

    #[test]
    fn bars_clocks_and_eta() {
        assert_eq!(bar(0.0), format!("[{}]", "-".repeat(20)));
        assert_eq!(bar(0.5), format!("[{}{}]", "#".repeat(10), "-".repeat(10)));
        assert_eq!(bar(2.0), format!("[{}]", "#".repeat(20)));
        assert_eq!(clock(3725), "1:02:05");
        // Half done in 60 s since first seen from 0: 60 s to go.
        assert_eq!(eta_from(0.5, 0.0, 60.0, 600.0), Some(60));
        // Not moved since first seen: estimate from creation.
        assert_eq!(eta_from(0.25, 0.25, 10.0, 30.0), Some(90));
        assert_eq!(eta_from(0.0, 0.0, 10.0, 30.0), None);
        assert_eq!(eta_from(1.0, 0.0, 10.0, 30.0), Some(0));
    }

    #[test]
    fn lines_show_state_and_outcome() {
        let mut t = rec("R", "u1", "pending", 0.42, "OpaqueRef:NULL");
        let l = task_line(&t, 0, Some(75), wall(), true);
        assert!(l.contains("task u1"), "{l}");
        assert!(
            l.contains(&format!(
                "[{}{}]  42% pending",
                "#".repeat(8),
                "-".repeat(12)
            )),
            "{l}"
        );
        assert!(l.contains("0:02:00  ETA 0:01:15"), "{l}");
        t.status = "failure".into();
        t.error_info = vec!["VM_FAILED".into(), "x".into()];
        let l = task_line(&t, 1, None, wall(), true);
        assert!(l.starts_with("  task u1"), "{l}");
        assert!(l.contains("0:01:30  error: VM_FAILED x"), "{l}");
        t.status = "success".into();
        t.result = "<value>OpaqueRef:x</value>".into();
        assert!(
            task_line(&t, 0, None, wall(), false).ends_with("result: <value>OpaqueRef:x</value>")
        );
        assert_eq!(truncate("abcdef", 4), "abc~");
    }

    #[test]
    fn model_follows_events_and_knows_when_done() {
        let now = Instant::now();
        let mut m = Model::default();
        m.apply(
            "add",
            "A",
            Some(rec("A", "a", "pending", 0.0, "OpaqueRef:NULL")),
            now,
        );
        m.apply("add", "B", Some(rec("B", "b", "pending", 0.0, "A")), now);
        m.apply(
            "add",
            "C",
            Some(rec("C", "c", "success", 1.0, "OpaqueRef:NULL")),
            now,
        );
        m.choose_roots(&[]).unwrap();
        // Unfinished top-level tasks only; the subtask is shown under its parent.
        assert_eq!(m.roots, vec!["A"]);
        assert_eq!(m.rows(), vec![(0, "A".to_string()), (1, "B".to_string())]);
        assert!(!m.done());
        m.apply(
            "mod",
            "A",
            Some(rec("A", "a", "success", 1.0, "OpaqueRef:NULL")),
            now,
        );
        assert!(m.done());
        assert_eq!(m.failed(), 0);

        let mut m = Model::default();
        m.apply(
            "add",
            "A",
            Some(rec("A", "a", "pending", 0.0, "OpaqueRef:NULL")),
            now,
        );
        m.apply(
            "add",
            "C",
            Some(rec("C", "c", "success", 1.0, "OpaqueRef:NULL")),
            now,
        );
        m.choose_roots(&["a".into(), "c".into()]).unwrap();
        m.apply("del", "A", None, now);
        assert!(m.done());
        assert_eq!(m.failed(), 1);
        assert!(m.gone.contains("A"));
        let err = Model::default().choose_roots(&["zz".into()]).unwrap_err();
        assert_eq!(err.to_string(), "UUID_INVALID task zz");
    }

    #[test]
    fn the_screen_redraws_in_place() {
        let mut s = Screen {
            drawn: 0,
            width: 80,
            height: 24,
        };
        let mut out = Vec::new();
        s.draw(&mut out, "h", &["a".into(), "b".into()]).unwrap();
        assert_eq!(
            String::from_utf8_lossy(&out),
            "\x1b[2Kh\n\x1b[2Ka\n\x1b[2Kb\n\x1b[J"
        );
        out.clear();
        s.draw(&mut out, "h", &["a".into()]).unwrap();
        assert!(String::from_utf8_lossy(&out).starts_with("\x1b[3F"));
        let mut small = Screen {
            drawn: 0,
            width: 80,
            height: 5,
        };
        out.clear();
        let many: Vec<String> = (0..10).map(|i| i.to_string()).collect();
        small.draw(&mut out, "h", &many).unwrap();
        assert!(String::from_utf8_lossy(&out).contains("… 8 more"));
        assert_eq!(small.drawn, 4);
    }
}
