//! An XClarity (LXCA) job as a XAPI task, both ways: the 28 job states, the job fields,
//! and (in [`input`]) the checks of what a client sends. Pure logic, no I/O: the REST face (`jobs.rs`,
//! `csv.rs`) and the `xapi-taskd tasks` command line both use this one module, so they
//! cannot disagree. The tables are in `docs/xclarity.md`.
//!
//! A XAPI task holds a job's id, title, description, status, progress, dates and
//! children natively. Every job field with no XAPI column is kept in the task's
//! `other_config` under `xclarity:<field>`, whose value is **the field's JSON text**
//! (`xclarity:createdBy` = `"alice"`, `xclarity:logs` = `[{…}]`), one rule for every
//! field, so that any value comes back exactly as it was sent and XAPI clients can read
//! (and change) it as an ordinary map entry.

mod input;

use serde_json::{Map, Value as Json, json};

pub use crate::face::xapi::TaskRecord;
pub use input::{JobUpdate, NewJob, parse_job, parse_update};

/// The prefix of the `other_config` keys that hold job fields.
pub const PREFIX: &str = "xclarity:";
/// A job state finer than the XAPI status (e.g. `Validating`, which is `pending`).
pub const STATE_KEY: &str = "xclarity:jobState";
/// `jobTitle` when it differs from `name_label` (an empty title with a `jobTitleKey`:
/// the label then carries the key, so that XAPI clients see a name).
pub const TITLE_KEY: &str = "xclarity:jobTitle";
/// `jobSummary` when it is not a plain string (an object in seed 000).
pub const SUMMARY_KEY: &str = "xclarity:jobSummary";

/// Deepest job tree one `POST /tasks` may create (the job itself is depth 1), and the
/// levels of a tree that one answer shows (`GET /tasks`, the csvRequest steps): deeper
/// answers would pass the depth limits of JSON readers (serde_json's is 128 nestings, and
/// a job level is two).
pub const MAX_DEPTH: usize = 32;
/// Most jobs (the job and all its descendants) one `POST /tasks` may create.
pub const MAX_JOBS: usize = 500;

/// The 28 job states of LXCA (seed 000), exact spellings, each with the XAPI status it
/// maps onto. The first state of each status is the one a task shows when nothing finer
/// is kept; every other one is kept in [`STATE_KEY`]. Judgement calls: `Stopped*` is an
/// operator's stop (cancelled), `Interrupted*` did not run to its end (failure),
/// `Unknown` and `Investigating` are not finished (pending).
pub const STATES: [(&str, &str); 28] = [
    ("Running", "pending"),
    ("Pending", "pending"),
    ("Initializing", "pending"),
    ("Validating", "pending"),
    ("Uploading", "pending"),
    ("Waiting", "pending"),
    ("Blocked", "pending"),
    ("RunningWithWarning", "pending"),
    ("RunningWithError", "pending"),
    ("Investigating", "pending"),
    ("Unknown", "pending"),
    ("Cancelling", "cancelling"),
    ("Complete", "success"),
    ("CompleteWithWarning", "success"),
    ("Skipped", "success"),
    ("Resolved", "success"),
    ("CompleteWithError", "failure"),
    ("Aborted", "failure"),
    ("Expired", "failure"),
    ("Interrupted", "failure"),
    ("InterruptedWithWarning", "failure"),
    ("InterruptedWithError", "failure"),
    ("Cancelled", "cancelled"),
    ("CancelledWithWarning", "cancelled"),
    ("CancelledWithError", "cancelled"),
    ("Stopped", "cancelled"),
    ("StoppedWithWarning", "cancelled"),
    ("StoppedWithError", "cancelled"),
];

/// States in which a job has not started yet (csvRequest's `started` is false).
const NOT_STARTED: &[&str] = &["Pending", "Waiting", "Blocked"];

/// What a client sent is not a valid job or update: the text names the field (with its
/// place in the tree, `children[2].jobState: …`) and what was wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid(pub String);

impl std::fmt::Display for Invalid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A job state as a client gave it: its canonical spelling, its XAPI status, and whether
/// it must be kept in [`STATE_KEY`] (it is not its status's default state).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StateChange {
    pub job_state: &'static str,
    pub status: &'static str,
    pub keep: bool,
}

/// jobState → XAPI. Case-insensitive (the canonical spelling is what is stored and shown).
pub fn parse_job_state(s: &str) -> Result<StateChange, Invalid> {
    let (job_state, status) = STATES
        .iter()
        .find(|(j, _)| j.eq_ignore_ascii_case(s))
        .copied()
        .ok_or_else(|| {
            let all: Vec<&str> = STATES.iter().map(|(j, _)| *j).collect();
            Invalid(format!(
                "jobState: unknown state {s:?} (one of {})",
                all.join(", ")
            ))
        })?;
    Ok(StateChange {
        job_state,
        status,
        keep: default_job_state(status) != job_state,
    })
}

/// XAPI status → the job state shown when nothing finer is known.
pub fn default_job_state(status: &str) -> &'static str {
    STATES
        .iter()
        .find(|(_, s)| *s == status)
        .map_or("Running", |(j, _)| j)
}

/// XAPI's completed statuses (`status_is_completed`).
pub fn is_completed(status: &str) -> bool {
    matches!(status, "success" | "failure" | "cancelled")
}

/// The value of `other_config` key `key` of a task.
fn config<'a>(task: &'a TaskRecord, key: &str) -> Option<&'a str> {
    task.other_config
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

/// The job state of a task: the kept state while it agrees with the task's status (a
/// status changed through XAPI wins over a stale kept state), else `Cancelling` for a
/// pending task whose cancel was requested, else the status's default.
pub fn job_state(task: &TaskRecord) -> &'static str {
    if let Some(kept) = config(task, STATE_KEY) {
        let kept = serde_json::from_str::<String>(kept).unwrap_or_else(|_| kept.to_string());
        if let Ok(c) = parse_job_state(&kept)
            && c.status == task.status
        {
            return c.job_state;
        }
    }
    if task.status == "pending" && task.cancel_requested {
        return "Cancelling";
    }
    default_job_state(&task.status)
}

/// XAPI progress (a fraction) → percentage, clamped to 0–100: a whole number when it is
/// one (the usual case, so integers round-trip exactly), else rounded to 1/10000 %.
pub fn percentage(progress: f64) -> Json {
    match percent(progress) {
        Percent::Whole(w) => json!(w),
        Percent::Fraction(f) => json!(f),
    }
}

/// [`percentage`]'s number, before it is a JSON value.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Percent {
    Whole(i64),
    Fraction(f64),
}

impl Percent {
    /// As serde_json writes the number (its own writers: the same digits as the value's).
    fn write(self, out: &mut Vec<u8>) {
        let written = match self {
            Percent::Whole(w) => serde_json::to_writer(&mut *out, &w),
            Percent::Fraction(f) => serde_json::to_writer(&mut *out, &f),
        };
        written.expect("writing to a Vec cannot fail");
    }
}

fn percent(progress: f64) -> Percent {
    if progress.is_nan() {
        return Percent::Whole(0);
    }
    let p = (progress * 100.0).clamp(0.0, 100.0);
    let whole = p.round();
    if (p - whole).abs() < 1e-6 {
        Percent::Whole(whole as i64)
    } else {
        Percent::Fraction((p * 10_000.0).round() / 10_000.0)
    }
}

/// Percentage (a number 0–100, or such a number as a string) → XAPI progress.
pub fn progress(v: &Json) -> Result<f64, Invalid> {
    let p = match v {
        Json::Number(n) => n.as_f64(),
        Json::String(s) => s.trim().parse::<f64>().ok(),
        _ => None,
    }
    .filter(|p| p.is_finite())
    .ok_or_else(|| {
        Invalid(format!(
            "percentage: must be a number from 0 to 100, not {v}"
        ))
    })?;
    if !(0.0..=100.0).contains(&p) {
        return Err(Invalid(format!(
            "percentage: must be from 0 to 100, not {p}"
        )));
    }
    Ok(p / 100.0)
}

/// XAPI date → RFC 3339 (`2024-01-01T12:00:00Z`); the epoch and anything unreadable → "".
pub fn rfc3339(xapi: &str) -> String {
    rfc3339_parts(xapi).map(|p| p.concat()).unwrap_or_default()
}

/// [`rfc3339`] in pieces of the XAPI text (joined as they are written), `None` for "".
fn rfc3339_parts(xapi: &str) -> Option<[&str; 8]> {
    let b = xapi.as_bytes();
    if b.len() != 18 || b[8] != b'T' || b[17] != b'Z' || xapi.starts_with("19700101") {
        return None;
    }
    // Slicing the text below needs char boundaries (a date is ASCII when it is one).
    if !xapi.is_ascii() {
        return None;
    }
    Some([
        &xapi[0..4],
        "-",
        &xapi[4..6],
        "-",
        &xapi[6..8],
        "T",
        &xapi[9..17],
        "Z",
    ])
}

/// The job fields and what a client may send in each. Fields not listed are kept as
/// they are sent (`xclarity:<field>`), so a newer LXCA field round-trips too.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    /// The server's: accepted on create and ignored (the server assigns it).
    Server,
    /// Mapped onto a XAPI column by hand (see [`parse_job`]).
    Native,
    Text,
    /// A string or an object (`cancelRESTBody`: a JSON body, or its text).
    TextOrObject,
    List,
    Bool,
    /// A whole number ≥ -1 (`expirationTimeOut`: -1 is "never").
    Timeout,
    /// A number ≥ 0.
    Weight,
    /// `GET`, `POST`, `PUT` or `DELETE` (or "" for none).
    Method,
}

const FIELDS: &[(&str, Kind)] = &[
    ("jobUID", Kind::Server),
    ("createDate", Kind::Server),
    ("endDate", Kind::Server),
    ("jobTitle", Kind::Native),
    ("jobSummary", Kind::Native),
    ("jobState", Kind::Native),
    ("percentage", Kind::Native),
    ("children", Kind::Native),
    ("jobTitleKey", Kind::Text),
    ("jobTitleBundle", Kind::Text),
    ("jobCategory", Kind::Text),
    ("createdBy", Kind::Text),
    ("startDate", Kind::Text),
    ("targetUUID", Kind::Text),
    ("cancelURL", Kind::Text),
    ("customUid", Kind::Text),
    ("predefinedUid", Kind::Text),
    ("stoppedBy", Kind::Text),
    ("uid", Kind::Text),
    ("cancelRESTBody", Kind::TextOrObject),
    ("args", Kind::List),
    ("logs", Kind::List),
    ("rebootPersistent", Kind::Bool),
    // Seed 000's own spelling; kept as its own field so that it round-trips.
    ("rebootPersistet", Kind::Bool),
    ("expirationTimeOut", Kind::Timeout),
    ("weight", Kind::Weight),
    ("cancelRESTMethod", Kind::Method),
];

fn kind(field: &str) -> Option<Kind> {
    FIELDS.iter().find(|(f, _)| *f == field).map(|(_, k)| *k)
}

/// Where one member of a job comes from. Nothing is copied: the texts are the task's,
/// or our literals (a job's parts were five allocations, the percentage a JSON value).
enum Part<'a> {
    /// A kept `xclarity:*` value ([`stored`]).
    Stored(&'a str),
    Text(&'a str),
    /// One of our literals (a job state, a default's ""): written without the escape
    /// scan.
    Ours(&'static str),
    /// A date's RFC 3339 pieces ([`rfc3339_parts`]; `None` is ""), and whether they are
    /// plain text (digits and `-T:Z`, as every date the server writes).
    Date(Option<[&'a str; 8]>, bool),
    Percent(Percent),
    EmptyList,
    /// The mapped subtasks (left out with `?compact=true`).
    Children,
}

/// A member's name: one of the job fields of our list (plain text), or a kept field's
/// name, which a client chose.
#[derive(Clone, Copy)]
enum Key<'a> {
    Ours(&'static str),
    Kept(&'a str),
}

impl<'a> Key<'a> {
    fn as_str(self) -> &'a str {
        match self {
            Key::Ours(k) => k,
            Key::Kept(k) => k,
        }
    }
}

/// A date part: its pieces, and whether the text is digits and `T:Z` only.
fn date(xapi: &str) -> Part<'_> {
    let plain = xapi
        .bytes()
        .all(|c| c.is_ascii_digit() || matches!(c, b'T' | b':' | b'Z'));
    Part::Date(rfc3339_parts(xapi), plain)
}

/// The members of the job of a task, in key order (serde_json's map order, so the
/// document written from them is the one serde_json writes from [`job_json`]'s tree):
/// the mapped fields, the kept `xclarity:*` fields, and the defaults of those not kept.
fn job_parts<'a>(task: &'a TaskRecord, children: bool) -> Vec<(Key<'a>, Part<'a>)> {
    let kept_or = |key: &str, text: &'a str| -> Part<'a> {
        match config(task, key) {
            Some(v) => Part::Stored(v),
            None => Part::Text(text),
        }
    };
    let end = if is_completed(&task.status) {
        date(&task.finished)
    } else {
        Part::Ours("")
    };
    // Every member of a job, listed in key order (sorting them per job cost more than
    // writing them). The mapped ones are never kept (`Server` or `Native` fields, skipped
    // below); the defaults are the values of fields every job shows while the task keeps
    // none, and a kept field takes its default's place or its own.
    let mut parts: Vec<(Key<'a>, Part<'a>)> = Vec::with_capacity(24);
    if children {
        parts.push((Key::Ours("children"), Part::Children));
    }
    parts.extend([
        (Key::Ours("createDate"), date(&task.created)),
        (Key::Ours("createdBy"), Part::Ours("")), // default
        (Key::Ours("endDate"), end),
        (Key::Ours("jobCategory"), Part::Ours("")), // default
        (Key::Ours("jobState"), Part::Ours(job_state(task))),
        (
            Key::Ours("jobSummary"),
            kept_or(SUMMARY_KEY, &task.name_description),
        ),
        (Key::Ours("jobTitle"), kept_or(TITLE_KEY, &task.name_label)),
        (Key::Ours("jobUID"), Part::Text(&task.uuid)),
        (Key::Ours("logs"), Part::EmptyList), // default
        (
            Key::Ours("percentage"),
            Part::Percent(percent(task.progress)),
        ),
        // default: XAPI has no start time; the job started when it was created.
        (Key::Ours("startDate"), date(&task.created)),
        (Key::Ours("targetUUID"), Part::Ours("")), // default
    ]);
    debug_assert!(parts.windows(2).all(|w| w[0].0.as_str() < w[1].0.as_str()));
    for (key, value) in &task.other_config {
        let Some(field) = key.strip_prefix(PREFIX) else {
            continue;
        };
        if field.is_empty() || matches!(kind(field), Some(Kind::Server | Kind::Native)) {
            continue;
        }
        // As a map's insert: a member of the same name (a default) is replaced.
        match parts.binary_search_by(|(f, _)| f.as_str().cmp(field)) {
            Ok(at) => parts[at].1 = Part::Stored(value),
            Err(at) => parts.insert(at, (Key::Kept(field), Part::Stored(value))),
        }
    }
    parts
}

/// The job of a task. `children` are the already mapped subtasks, or None to leave the
/// field out (`?compact=true`).
pub fn job_json(task: &TaskRecord, children: Option<Vec<Json>>) -> Json {
    let with_children = children.is_some();
    let mut children = children.unwrap_or_default();
    let mut job = Map::new();
    for (field, part) in job_parts(task, with_children) {
        let value = match part {
            Part::Stored(v) => stored(v),
            Part::Text(t) => Json::String(t.to_string()),
            Part::Ours(t) => Json::String(t.to_string()),
            Part::Date(d, _) => Json::String(d.map(|p| p.concat()).unwrap_or_default()),
            Part::Percent(p) => match p {
                Percent::Whole(w) => json!(w),
                Percent::Fraction(f) => json!(f),
            },
            Part::EmptyList => json!([]),
            Part::Children => Json::Array(std::mem::take(&mut children)),
        };
        job.insert(field.as_str().to_string(), value);
    }
    Json::Object(job)
}

/// Writes a job's `children` array; `None` when the answer's budget is spent.
pub type WriteChildren<'a> = &'a mut dyn FnMut(&mut Vec<u8>) -> Option<()>;

/// [`job_json`]'s document written straight into `out`, the same bytes as
/// `serde_json::to_vec(&job_json(…))` without building the tree (tests compare). With
/// `children`, it writes the children's array in its place; its `None` (a budget spent)
/// stops the writing and is returned.
pub fn write_job(
    out: &mut Vec<u8>,
    task: &TaskRecord,
    children: Option<WriteChildren<'_>>,
) -> Option<()> {
    use crate::json_out::{plain_string_of, string, string_of};
    let parts = job_parts(task, children.is_some());
    let mut children = children;
    out.push(b'{');
    for (i, (field, part)) in parts.into_iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        // Our own names and literals need no escape scan; the client's texts do.
        match field {
            Key::Ours(k) => plain_string_of(out, &[k]),
            Key::Kept(k) => string(out, k),
        }
        out.push(b':');
        match part {
            Part::Stored(v) => write_stored(out, v),
            Part::Text(t) => string(out, t),
            Part::Ours(t) => plain_string_of(out, &[t]),
            Part::Date(Some(p), true) => plain_string_of(out, &p),
            Part::Date(Some(p), false) => string_of(out, &p),
            Part::Date(None, _) => out.extend_from_slice(b"\"\""),
            Part::Percent(p) => p.write(out),
            Part::EmptyList => out.extend_from_slice(b"[]"),
            Part::Children => {
                if let Some(write) = children.as_mut() {
                    write(out)?;
                }
            }
        }
    }
    out.push(b'}');
    Some(())
}

/// [`stored`]'s value as serde_json writes it. A kept plain string (a JSON string with
/// nothing serde_json escapes: most kept fields) is already those bytes.
fn write_stored(out: &mut Vec<u8>, value: &str) {
    let b = value.as_bytes();
    let plain = b.len() >= 2
        && b[0] == b'"'
        && b[b.len() - 1] == b'"'
        && !b[1..b.len() - 1]
            .iter()
            .any(|&c| c < 0x20 || c == b'"' || c == b'\\');
    if plain {
        out.extend_from_slice(b);
    } else {
        crate::json_out::value(out, &stored(value));
    }
}

/// A stored value: its JSON, or (written by hand through XAPI, not JSON) the text itself.
fn stored(value: &str) -> Json {
    serde_json::from_str(value).unwrap_or_else(|_| Json::String(value.to_string()))
}

/// Whether a job in this state has started (csvRequest's `started`).
pub fn has_started(job_state: &str) -> bool {
    !NOT_STARTED.contains(&job_state)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A task as the job tests start from (also `input.rs`'s).
    pub(super) fn task(status: &str) -> TaskRecord {
        TaskRecord {
            uuid: "u-1".into(),
            name_label: "title".into(),
            name_description: "summary".into(),
            status: status.into(),
            created: "20240101T12:00:00Z".into(),
            finished: "20240101T12:05:00Z".into(),
            ..Default::default()
        }
    }

    #[test]
    fn all_28_states_round_trip_with_their_exact_spelling() {
        assert_eq!(STATES.len(), 28);
        let mut defaults = 0;
        for (state, status) in STATES {
            let c = parse_job_state(state).unwrap();
            assert_eq!((c.job_state, c.status), (state, status));
            defaults += usize::from(!c.keep);
            // Stored as the server would, read back: the same state.
            let mut t = task(status);
            if c.keep {
                t.other_config = vec![(STATE_KEY.into(), json!(state).to_string())];
            }
            assert_eq!(job_state(&t), state);
            assert_eq!(
                parse_job_state(&state.to_lowercase()).unwrap().job_state,
                state
            );
        }
        assert_eq!(defaults, 5, "one default state per XAPI status");
        for (status, state) in [
            ("pending", "Running"),
            ("cancelling", "Cancelling"),
            ("success", "Complete"),
            ("failure", "CompleteWithError"),
            ("cancelled", "Cancelled"),
        ] {
            assert_eq!(default_job_state(status), state);
        }
        // The CLI's old misspellings are refused, with the list of the right ones.
        for wrong in ["CompleteWithWarnings", "CompleteWithErrors", "Done"] {
            let e = parse_job_state(wrong).unwrap_err().0;
            assert!(
                e.contains("unknown state") && e.contains("CompleteWithWarning,"),
                "{e}"
            );
        }
    }

    #[test]
    fn written_jobs_are_serde_jsons_bytes() {
        let kept = [
            ("xclarity:createdBy", r#""alice""#),
            ("xclarity:targetUUID", r#""with \"escapes\" \u00e9 \n""#),
            (
                "xclarity:logs",
                r#"[{"msg":"a","n":1.0,"big":1e300,"neg":-0}, {"z":null,"a":[true]}]"#,
            ),
            (
                "xclarity:cancelRESTBody",
                r#"{ "b" : 1 , "a" : "x" , "a" : "dup" }"#,
            ),
            ("xclarity:weight", "12.50"),
            ("xclarity:uid", "not json at all: é 😀 \u{1} \""),
            ("xclarity:customUid", r#""""#),
            ("xclarity:stoppedBy", r#""ctl \u0001""#),
            ("xclarity:jobUID", r#""ignored: the server's""#),
            ("xclarity:", r#""empty field""#),
            ("xclarity:zzzNewerField", r#"{"kept":["as","sent"]}"#),
            ("xclarity:jobTitle", r#"{"an":"object title"}"#),
            ("xclarity:jobState", r#""Validating""#),
            ("other:key", "v"),
            // A kept field's name is the client's: escaped as any text of theirs.
            ("xclarity:quo\"te\\d", r#""named oddly""#),
        ];
        let mut tasks = Vec::new();
        for status in ["pending", "success", "failure", "cancelling", "cancelled"] {
            for n in [0, 3, kept.len()] {
                let mut t = task(status);
                t.name_label = "title \"q\" é\t".into();
                t.progress = [0.0, 0.125, 1.0 / 3.0][n % 3];
                t.other_config = kept[..n]
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect();
                tasks.push(t);
            }
        }
        let mut unfinished = task("pending");
        unfinished.created = "19700101T00:00:00Z".into();
        unfinished.cancel_requested = true;
        tasks.push(unfinished);
        for t in &tasks {
            let want = serde_json::to_vec(&job_json(t, None)).unwrap();
            let mut got = Vec::new();
            write_job(&mut got, t, None).unwrap();
            assert_eq!(
                String::from_utf8_lossy(&got),
                String::from_utf8_lossy(&want)
            );
            // With children, written in their place.
            let kids = vec![job_json(&tasks[0], None), job_json(&tasks[1], Some(vec![]))];
            let want = serde_json::to_vec(&job_json(t, Some(kids.clone()))).unwrap();
            let mut got = Vec::new();
            let mut children = |out: &mut Vec<u8>| {
                crate::json_out::value(out, &Json::Array(kids.clone()));
                Some(())
            };
            write_job(&mut got, t, Some(&mut children)).unwrap();
            assert_eq!(
                String::from_utf8_lossy(&got),
                String::from_utf8_lossy(&want)
            );
            // A spent budget stops the writing.
            assert_eq!(
                write_job(&mut Vec::new(), t, Some(&mut |_: &mut Vec<u8>| None)),
                None
            );
        }
        // The kept fields are there, with their kept values.
        let full = job_json(&tasks[2], None);
        assert_eq!(full["createdBy"], "alice");
        assert_eq!(full["cancelRESTBody"]["a"], "dup");
        assert_eq!(full["jobTitle"]["an"], "object title");
        assert_eq!(full["zzzNewerField"]["kept"][1], "sent");
        assert_eq!(full["uid"], "not json at all: é 😀 \u{1} \"");
        assert_eq!(full["jobState"], "Validating");
        assert_eq!(full["jobUID"], "u-1");
        assert!(full.get("").is_none());
    }

    #[test]
    fn a_stale_kept_state_yields_to_the_status() {
        let mut t = task("pending");
        t.other_config = vec![(STATE_KEY.into(), json!("Validating").to_string())];
        assert_eq!(job_state(&t), "Validating");
        t.status = "success".into();
        assert_eq!(job_state(&t), "Complete");
        let mut c = task("pending");
        c.cancel_requested = true;
        assert_eq!(job_state(&c), "Cancelling");
    }

    #[test]
    fn percentage_and_progress() {
        assert_eq!(percentage(0.0), json!(0));
        assert_eq!(percentage(1.0), json!(100));
        assert_eq!(percentage(1.5), json!(100));
        assert_eq!(percentage(-2.0), json!(0));
        assert_eq!(percentage(f64::NAN), json!(0));
        assert_eq!(percentage(0.125), json!(12.5));
        for p in 0..=100 {
            assert_eq!(percentage(progress(&json!(p)).unwrap()), json!(p));
        }
        assert_eq!(progress(&json!("50")).unwrap(), 0.5);
        assert!(progress(&json!(101)).unwrap_err().0.contains("0 to 100"));
        assert!(progress(&json!(-1)).is_err());
        assert!(progress(&json!(true)).is_err());
        assert!(progress(&json!("NaN")).is_err());
    }

    #[test]
    fn defaults_and_unfinished_jobs() {
        let out = job_json(&task("pending"), None);
        assert_eq!(out["jobTitle"], "title");
        assert_eq!(out["jobSummary"], "summary");
        assert_eq!(out["jobState"], "Running");
        assert_eq!(out["endDate"], "", "no endDate while unfinished");
        assert_eq!(out["startDate"], "2024-01-01T12:00:00Z");
        assert_eq!(out["createdBy"], "");
        assert_eq!(out["logs"], json!([]));
        assert!(out.get("children").is_none());
        // A hand-written non-JSON value comes back as a string; native fields win.
        let mut t = task("success");
        t.other_config = vec![
            ("xclarity:note".into(), "plain text".into()),
            ("xclarity:jobState".into(), "\"Running\"".into()),
            ("xclarity:percentage".into(), "7".into()),
        ];
        let out = job_json(&t, None);
        assert_eq!(out["note"], "plain text");
        assert_eq!(out["jobState"], "Complete");
        assert_eq!(out["percentage"], 0);
        // A completed task whose finished is the epoch (a real xapi's set_status).
        let mut t = task("success");
        t.finished = "19700101T00:00:00Z".into();
        assert_eq!(job_json(&t, None)["endDate"], "");
    }

    #[test]
    fn dates() {
        assert_eq!(rfc3339("20261123T00:55:07Z"), "2026-11-23T00:55:07Z");
        assert_eq!(rfc3339("19700101T00:00:00Z"), "");
        assert_eq!(rfc3339("garbage"), "");
    }
}
