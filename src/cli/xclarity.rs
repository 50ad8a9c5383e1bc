//! The XClarity job view of a XAPI task, both ways (pure logic; `tasks.rs` does the calls).
//!
//! Lenovo XClarity Administrator's `tasks` command shows jobs as JSON objects (`jobUID`,
//! `jobState`, `percentage`, `children`, …). A XAPI task holds most of that natively; what
//! has no XAPI field is kept in the task's `other_config` under keys `xclarity:<field>`
//! whose value is the field's JSON text, so a job created here comes back the same. The
//! table of both directions is in `docs/cli.md`.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use super::task::{TaskRecord, rfc3339};

/// The prefix of the `other_config` keys that hold XClarity fields.
pub const PREFIX: &str = "xclarity:";

/// Where an XClarity state that is finer than XAPI's status is kept (e.g. `Validating`,
/// which is `pending` in XAPI), as JSON text like every `xclarity:` value.
pub const STATE_KEY: &str = "xclarity:jobState";

/// Job fields computed from the task's own fields; never taken from `xclarity:` keys.
const NATIVE: &[&str] = &[
    "jobUID",
    "jobTitle",
    "jobState",
    "percentage",
    "children",
    "jobSummary",
    "createDate",
    "endDate",
];

/// Fields every job shows, with this value when the task has no `xclarity:` key for them.
/// The value is JSON text.
const DEFAULTED: &[(&str, &str)] = &[
    ("createdBy", "\"\""),
    ("targetUUID", "\"\""),
    ("jobCategory", "\"\""),
    ("logs", "[]"),
];

/// XClarity job states and the XAPI status each maps to. The first state for a status is
/// the one a task with no `xclarity:jobState` shows; the others are kept in
/// `xclarity:jobState` so that they round-trip.
pub const STATES: &[(&str, &str)] = &[
    ("Running", "pending"),
    ("Pending", "pending"),
    ("Initializing", "pending"),
    ("Validating", "pending"),
    ("Uploading", "pending"),
    ("Waiting", "pending"),
    ("Blocked", "pending"),
    ("Complete", "success"),
    ("CompleteWithWarnings", "success"),
    ("CompleteWithError", "failure"),
    ("CompleteWithErrors", "failure"),
    ("Cancelled", "cancelled"),
    ("Stopped", "cancelled"),
    ("Cancelling", "cancelling"),
];

/// A job state as given by a user: its canonical spelling and XAPI status, and whether it
/// must be kept in `xclarity:jobState` (it is not the status's default state).
#[derive(Debug, Clone, PartialEq)]
pub struct StateChange {
    pub job_state: &'static str,
    pub status: &'static str,
    pub keep: bool,
}

/// XClarity → XAPI. Case-insensitive, as XClarity users type states in any case.
pub fn parse_job_state(s: &str) -> Result<StateChange, String> {
    let (job_state, status) = STATES
        .iter()
        .find(|(j, _)| j.eq_ignore_ascii_case(s))
        .ok_or_else(|| {
            let all: Vec<&str> = STATES.iter().map(|(j, _)| *j).collect();
            format!("unknown jobState {s:?} (one of {})", all.join(", "))
        })?;
    Ok(StateChange {
        job_state,
        status,
        keep: default_job_state(status) != *job_state,
    })
}

/// XAPI status → the XClarity state shown when nothing finer is known.
pub fn default_job_state(status: &str) -> &'static str {
    STATES
        .iter()
        .find(|(_, s)| *s == status)
        .map_or("Running", |(j, _)| j)
}

/// The job state of a task: `xclarity:jobState` if it still agrees with the task's status
/// (a server-side change of status wins over a stale kept state), else `Cancelling` for a
/// pending task whose cancel was requested (xapi records the request without changing the
/// status), else the status's default state.
pub fn job_state(task: &TaskRecord) -> String {
    if let Some(kept) = task.other_config.get(STATE_KEY) {
        let kept = serde_json::from_str::<String>(kept).unwrap_or_else(|_| kept.clone());
        if let Ok(c) = parse_job_state(&kept)
            && c.status == task.status
        {
            return c.job_state.to_string();
        }
    }
    if task.status == "pending" && task.cancel_requested() {
        return "Cancelling".to_string();
    }
    default_job_state(&task.status).to_string()
}

/// XAPI progress (0–1) → XClarity percentage (whole number 0–100).
pub fn percentage(progress: f64) -> i64 {
    if progress.is_nan() {
        return 0;
    }
    (progress * 100.0).round().clamp(0.0, 100.0) as i64
}

/// XClarity percentage (0–100) → XAPI progress (0–1).
pub fn progress(v: &Value) -> Result<f64, String> {
    let p = match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
    .ok_or_else(|| format!("percentage must be a number from 0 to 100, not {v}"))?;
    if !(0.0..=100.0).contains(&p) {
        return Err(format!("percentage must be from 0 to 100, not {p}"));
    }
    Ok(p / 100.0)
}

/// The XClarity job of a task. `children` is the already mapped subtasks, or None to leave
/// the field out (`-c false`).
pub fn job_of_task(task: &TaskRecord, children: Option<Vec<Value>>) -> Value {
    let mut job = Map::new();
    for (key, value) in &task.other_config {
        let Some(field) = key.strip_prefix(PREFIX) else {
            continue;
        };
        if field.is_empty() || NATIVE.contains(&field) {
            continue;
        }
        let v = serde_json::from_str(value).unwrap_or_else(|_| Value::String(value.clone()));
        job.insert(field.to_string(), v);
    }
    for (field, default) in DEFAULTED {
        if !job.contains_key(*field) {
            let v = serde_json::from_str(default).unwrap_or(Value::Null);
            job.insert(field.to_string(), v);
        }
    }
    job.insert("jobUID".into(), json!(task.uuid));
    job.insert("jobTitle".into(), json!(task.name_label));
    job.insert("jobSummary".into(), json!(task.name_description));
    job.insert("jobState".into(), json!(job_state(task)));
    job.insert("percentage".into(), json!(percentage(task.progress)));
    job.insert("createDate".into(), json!(rfc3339(&task.created)));
    let end = if task.is_unfinished() {
        String::new()
    } else {
        rfc3339(&task.finished)
    };
    job.insert("endDate".into(), json!(end));
    if let Some(children) = children {
        job.insert("children".into(), Value::Array(children));
    }
    Value::Object(job)
}

/// A job to create (`tasks -a create -u …`), checked and translated before any call.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct NewJob {
    pub title: String,
    pub summary: String,
    pub state: Option<StateChange>,
    pub progress: Option<f64>,
    /// The `xclarity:` keys (JSON text values), `xclarity:jobState` included when kept.
    pub other_config: BTreeMap<String, String>,
    pub children: Vec<NewJob>,
}

/// Parses `-u` for create: one job object or an array of them. `createdBy` defaults to
/// `user`. `jobUID`, `createDate` and `endDate` are the server's to set and are ignored.
pub fn parse_create(v: &Value, user: &str) -> Result<Vec<NewJob>, String> {
    match v {
        Value::Array(jobs) if !jobs.is_empty() => {
            jobs.iter().map(|j| parse_new_job(j, user, "")).collect()
        }
        Value::Object(_) => Ok(vec![parse_new_job(v, user, "")?]),
        _ => Err("for create, --updateList must be a job object (see --template)".into()),
    }
}

fn parse_new_job(v: &Value, user: &str, path: &str) -> Result<NewJob, String> {
    let Value::Object(obj) = v else {
        return Err(format!("{}a job must be a JSON object, not {v}", at(path)));
    };
    let text = |k: &str| -> Result<String, String> {
        match obj.get(k) {
            None | Some(Value::Null) => Ok(String::new()),
            Some(Value::String(s)) => Ok(s.clone()),
            Some(other) => Err(format!("{}{k} must be a string, not {other}", at(path))),
        }
    };
    let mut job = NewJob {
        title: text("jobTitle")?,
        summary: text("jobSummary")?,
        ..NewJob::default()
    };
    if job.title.is_empty() {
        return Err(format!("{}jobTitle is required", at(path)));
    }
    if let Some(s) = obj.get("jobState") {
        let s = s
            .as_str()
            .ok_or_else(|| format!("{}jobState must be a string", at(path)))?;
        let change = parse_job_state(s).map_err(|e| format!("{}{e}", at(path)))?;
        if change.keep {
            job.other_config
                .insert(STATE_KEY.into(), json!(change.job_state).to_string());
        }
        job.state = Some(change);
    }
    if let Some(p) = obj.get("percentage") {
        job.progress = Some(progress(p).map_err(|e| format!("{}{e}", at(path)))?);
    }
    for (k, v) in obj {
        if NATIVE.contains(&k.as_str()) || k == "jobUID" {
            continue;
        }
        if k.is_empty() {
            return Err(format!("{}empty field name", at(path)));
        }
        job.other_config
            .insert(format!("{PREFIX}{k}"), v.to_string());
    }
    let created_by = format!("{PREFIX}createdBy");
    job.other_config
        .entry(created_by)
        .or_insert_with(|| json!(user).to_string());
    match obj.get("children") {
        None | Some(Value::Null) => {}
        Some(Value::Array(children)) => {
            for (i, c) in children.iter().enumerate() {
                let here = format!("{path}children[{i}].");
                job.children.push(parse_new_job(c, user, &here)?);
            }
        }
        Some(other) => {
            return Err(format!(
                "{}children must be an array, not {other}",
                at(path)
            ));
        }
    }
    Ok(job)
}

fn at(path: &str) -> String {
    if path.is_empty() {
        String::new()
    } else {
        format!("{}: ", path.trim_end_matches('.'))
    }
}

/// One entry of `-u` for update: `{"jobUID": …, "jobState": …, "percentage": …}`.
#[derive(Debug, Clone, PartialEq)]
pub struct JobUpdate {
    pub uid: String,
    pub state: Option<StateChange>,
    pub progress: Option<f64>,
}

/// Parses `-u` for update: an array of updates (one object is accepted too).
pub fn parse_update(v: &Value) -> Result<Vec<JobUpdate>, String> {
    let items: Vec<&Value> = match v {
        Value::Array(a) if !a.is_empty() => a.iter().collect(),
        Value::Object(_) => vec![v],
        _ => {
            return Err(
                "for update, --updateList must be [{\"jobUID\": …, \"jobState\": …, \"percentage\": …}]"
                    .into(),
            );
        }
    };
    items
        .into_iter()
        .enumerate()
        .map(|(i, item)| {
            let Value::Object(obj) = item else {
                return Err(format!("[{i}]: an update must be a JSON object"));
            };
            if let Some(k) = obj
                .keys()
                .find(|k| !["jobUID", "jobState", "percentage"].contains(&k.as_str()))
            {
                return Err(format!(
                    "[{i}]: update changes jobState and percentage only, not {k}"
                ));
            }
            let uid = obj
                .get("jobUID")
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .ok_or_else(|| format!("[{i}]: jobUID (a string) is required"))?
                .to_string();
            let state = match obj.get("jobState") {
                None => None,
                Some(Value::String(s)) => {
                    Some(parse_job_state(s).map_err(|e| format!("[{i}]: {e}"))?)
                }
                Some(other) => {
                    return Err(format!("[{i}]: jobState must be a string, not {other}"));
                }
            };
            let progress = match obj.get("percentage") {
                None => None,
                Some(p) => Some(progress(p).map_err(|e| format!("[{i}]: {e}"))?),
            };
            if state.is_none() && progress.is_none() {
                return Err(format!(
                    "[{i}]: nothing to update (give jobState and/or percentage)"
                ));
            }
            Ok(JobUpdate {
                uid,
                state,
                progress,
            })
        })
        .collect()
}

/// What `tasks -t` prints: a job to fill in for `tasks -a create -u`.
pub fn template() -> Value {
    json!({
        "jobTitle": "Update firmware",
        "jobSummary": "Update the firmware of the rack servers",
        "createdBy": "operator",
        "jobCategory": "Firmware",
        "targetUUID": "",
        "jobState": "Pending",
        "percentage": 0,
        "logs": [],
        "children": [
            {
                "jobTitle": "Update server 1",
                "jobSummary": "",
                "jobState": "Pending",
                "percentage": 0,
                "children": []
            }
        ]
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(status: &str) -> TaskRecord {
        TaskRecord {
            r#ref: "OpaqueRef:t".into(),
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
    fn states_map_both_ways() {
        for (status, state) in [
            ("pending", "Running"),
            ("success", "Complete"),
            ("failure", "CompleteWithError"),
            ("cancelled", "Cancelled"),
            ("cancelling", "Cancelling"),
        ] {
            assert_eq!(job_state(&task(status)), state);
            let c = parse_job_state(state).unwrap();
            assert_eq!((c.status, c.keep), (status, false), "{state}");
        }
        for state in [
            "Pending",
            "Initializing",
            "Validating",
            "Uploading",
            "Waiting",
        ] {
            let c = parse_job_state(state).unwrap();
            assert_eq!((c.status, c.keep), ("pending", true), "{state}");
        }
        assert_eq!(parse_job_state("complete").unwrap().job_state, "Complete");
        let err = parse_job_state("Done").unwrap_err();
        assert!(
            err.contains("unknown jobState") && err.contains("Validating"),
            "{err}"
        );
    }

    #[test]
    fn kept_states_round_trip_unless_stale() {
        let mut t = task("pending");
        t.other_config
            .insert(STATE_KEY.into(), json!("Validating").to_string());
        assert_eq!(job_state(&t), "Validating");
        // The server finished the task: the kept in-progress state no longer applies.
        t.status = "success".into();
        assert_eq!(job_state(&t), "Complete");
        // A cancel request on a pending task shows as Cancelling.
        let mut c = task("pending");
        c.current_operations = vec![("OpaqueRef:x".into(), "cancel".into())];
        assert_eq!(job_state(&c), "Cancelling");
    }

    #[test]
    fn percentage_and_progress() {
        assert_eq!(percentage(0.0), 0);
        assert_eq!(percentage(0.425), 43);
        assert_eq!(percentage(1.0), 100);
        assert_eq!(percentage(1.5), 100);
        assert_eq!(percentage(f64::NAN), 0);
        for p in 0..=100 {
            assert_eq!(percentage(progress(&json!(p)).unwrap()), p);
        }
        assert_eq!(progress(&json!("50")).unwrap(), 0.5);
        assert!(progress(&json!(101)).is_err());
        assert!(progress(&json!(-1)).is_err());
        assert!(progress(&json!(true)).is_err());
    }

    #[test]
    fn a_created_job_round_trips_through_other_config() {
        let input = json!({
            "jobTitle": "Deploy", "jobSummary": "deploy the OS", "jobState": "Validating",
            "percentage": 30, "createdBy": "alice", "targetUUID": "T-1", "jobCategory": "OS",
            "logs": [{"msg": "started"}], "args": ["a", "b"], "cancelURL": "/x",
            "jobUID": "ignored", "createDate": "ignored",
            "children": [{"jobTitle": "step"}]
        });
        let jobs = parse_create(&input, "root").unwrap();
        let j = &jobs[0];
        assert_eq!(j.state.as_ref().unwrap().status, "pending");
        assert_eq!(j.progress, Some(0.3));
        assert_eq!(j.children.len(), 1);
        assert_eq!(
            j.children[0]
                .other_config
                .get("xclarity:createdBy")
                .unwrap(),
            "\"root\""
        );
        assert!(!j.other_config.contains_key("xclarity:jobUID"));
        assert!(!j.other_config.contains_key("xclarity:children"));
        // What the server would store, read back as a job.
        let mut t = task("pending");
        t.name_label = j.title.clone();
        t.name_description = j.summary.clone();
        t.progress = j.progress.unwrap();
        t.other_config = j.other_config.clone();
        let out = job_of_task(&t, Some(vec![]));
        for key in [
            "jobTitle",
            "jobSummary",
            "jobState",
            "percentage",
            "createdBy",
            "targetUUID",
            "jobCategory",
            "logs",
            "args",
            "cancelURL",
        ] {
            assert_eq!(out[key], input[key], "{key}");
        }
        assert_eq!(out["jobUID"], "u-1");
        assert_eq!(out["createDate"], "2024-01-01T12:00:00Z");
        assert_eq!(out["endDate"], "");
        assert_eq!(out["children"], json!([]));
    }

    #[test]
    fn job_defaults_and_finished_tasks() {
        let out = job_of_task(&task("failure"), None);
        assert_eq!(out["jobState"], "CompleteWithError");
        assert_eq!(out["endDate"], "2024-01-01T12:05:00Z");
        assert_eq!(out["createdBy"], "");
        assert_eq!(out["logs"], json!([]));
        assert!(out.get("children").is_none());
        // A hand-written non-JSON value comes back as a string; native fields win.
        let mut t = task("success");
        t.other_config
            .insert("xclarity:note".into(), "plain text".into());
        t.other_config
            .insert("xclarity:jobTitle".into(), "\"fake\"".into());
        let out = job_of_task(&t, None);
        assert_eq!(out["note"], "plain text");
        assert_eq!(out["jobTitle"], "title");
    }

    #[test]
    fn bad_input_is_explained() {
        let e = |v: Value| parse_create(&v, "root").unwrap_err();
        assert!(e(json!([])).contains("job object"));
        assert!(e(json!({"jobSummary": "x"})).contains("jobTitle is required"));
        assert!(e(json!({"jobTitle": 1})).contains("jobTitle must be a string"));
        assert!(e(json!({"jobTitle": "a", "percentage": 200})).contains("0 to 100"));
        let child = e(json!({"jobTitle": "a", "children": [{"jobTitle": "b", "jobState": "x"}]}));
        assert!(
            child.starts_with("children[0]: unknown jobState"),
            "{child}"
        );
        let u = |v: Value| parse_update(&v).unwrap_err();
        assert!(u(json!("x")).contains("must be"));
        assert!(u(json!([{"jobState": "Complete"}])).contains("jobUID"));
        assert!(u(json!([{"jobUID": "a"}])).contains("nothing to update"));
        assert!(u(json!([{"jobUID": "a", "jobTitle": "b"}])).contains("not jobTitle"));
        let ok = parse_update(&json!([{"jobUID": "a", "jobState": "Complete", "percentage": 100}]))
            .unwrap();
        assert_eq!(ok[0].state.as_ref().unwrap().status, "success");
        assert_eq!(ok[0].progress, Some(1.0));
    }

    #[test]
    fn the_template_is_a_valid_create() {
        let jobs = parse_create(&template(), "root").unwrap();
        assert_eq!(jobs[0].children.len(), 1);
    }
}
