//! `GET /csvRequest/jobs/{job_id}`: LXCA's monitor of a bulk management request (seed
//! 004), for any job tree. `{job_id}` is a jobUID; `results` holds that job, its children
//! are the steps of `results[0].status.substatus`, their children the steps of their own
//! `status.substatus`, and so on down the tree, [`MAX_DEPTH`] levels at most.
//!
//! `taskid` is an Integer in seed 004 while our ids are uuids: it is the job's uuid's
//! first 12 hex digits read as a number (48 bits; JSON-safe, stable for the life of the
//! task and computable by any client from the jobUID; two tasks share one with odds of
//! about n²/2⁴⁹, ~10⁻⁸ for 1,000 tasks). The jobUID stays the key.

use serde_json::{Value as Json, json};

use super::jobs::{Node, Tasks};
use super::mapping::{self, MAX_DEPTH, TaskRecord};

/// The seed-004 object of `node`'s tree at time `now` (seconds since the epoch).
pub fn monitor(tasks: &Tasks, node: &Node, now: i64) -> Json {
    let job = mapping::job_json(&node.fields, None);
    let pct = percent(&job);
    let done = mapping::is_completed(&node.fields.status);
    let (status, result) = outcome(&node.fields.status);
    let text = |k: &str| {
        job.get(k)
            .and_then(Json::as_str)
            .unwrap_or_default()
            .to_string()
    };
    let args = match job.get("args") {
        Some(Json::Array(a)) => Json::Array(a.clone()),
        _ => json!([]),
    };
    json!({
        "progress": pct,
        "status": status,
        "results": [{
            "messageBundle": text("jobTitleBundle"),
            "messageID": text("jobTitleKey"),
            "messageParameters": args,
            "progress": pct,
            "result": if done { result } else { "INCOMPLETE" },
            "resultShortDescription": node.fields.name_label,
            "resultLongDescription": node.fields.name_description,
            "status": {
                "description": [{
                    "messageBundle": text("jobTitleBundle"),
                    "messageID": text("jobTitleKey"),
                }],
                "percentage": pct,
                "state": job["jobState"],
                "substatus": steps(tasks, node, 1),
            },
            "taskid": taskid(&node.fields.uuid),
            "time_spent": time_spent(&node.fields, now),
            "uuid": text("targetUUID"),
        }],
    })
}

/// The steps of `node`'s children (`node` being at `level`, the job at 1), each with its
/// own children's steps, down to [`MAX_DEPTH`] levels in all.
fn steps(tasks: &Tasks, node: &Node, level: usize) -> Vec<Json> {
    if level >= MAX_DEPTH {
        return Vec::new();
    }
    tasks
        .children(node)
        .into_iter()
        .map(|c| {
            let job = mapping::job_json(&c.fields, None);
            let text = |k: &str| {
                job.get(k)
                    .and_then(Json::as_str)
                    .unwrap_or_default()
                    .to_string()
            };
            let state = job["jobState"].as_str().unwrap_or_default().to_string();
            let pct = percent(&job);
            json!({
                "id": c.fields.uuid,
                "completed": mapping::is_completed(&c.fields.status),
                "started": mapping::has_started(&state),
                "progress": pct,
                "shortDescription": c.fields.name_label,
                "longDescription": c.fields.name_description,
                "messageBundle": text("jobTitleBundle"),
                "messageID": text("jobTitleKey"),
                "userAction": "",
                "status": {
                    "percentage": pct,
                    "state": state,
                    "substatus": steps(tasks, c, level + 1),
                },
            })
        })
        .collect()
}

/// The job's percentage as a double (seed 004's `progress`).
fn percent(job: &Json) -> f64 {
    job["percentage"].as_f64().unwrap_or(0.0)
}

/// (`status`, `result`) of a finished request, by XAPI status. Seed 004 shows only
/// `INCOMPLETE`; the finished words are ours.
fn outcome(status: &str) -> (&'static str, &'static str) {
    match status {
        "success" => ("COMPLETE", "SUCCESS"),
        "failure" => ("COMPLETE", "FAILED"),
        "cancelled" => ("COMPLETE", "CANCELLED"),
        _ => ("INCOMPLETE", "INCOMPLETE"),
    }
}

/// The integer id of a task: its uuid's first 12 hex digits as a number.
pub fn taskid(uuid: &str) -> u64 {
    let hex: String = uuid
        .chars()
        .filter(char::is_ascii_hexdigit)
        .take(12)
        .collect();
    u64::from_str_radix(&hex, 16).unwrap_or(0)
}

/// Milliseconds from creation to the end (or to `now`, while it runs).
fn time_spent(t: &TaskRecord, now: i64) -> i64 {
    let Some(created) = unix(&t.created) else {
        return 0;
    };
    let end = if mapping::is_completed(&t.status) {
        unix(&t.finished).filter(|f| *f >= created).unwrap_or(now)
    } else {
        now
    };
    (end - created).max(0) * 1000
}

/// An XAPI date (`20240101T12:00:00Z`) in seconds since the epoch; None for the epoch.
fn unix(xapi: &str) -> Option<i64> {
    let fmt = time::macros::format_description!("[year][month][day]T[hour]:[minute]:[second]Z");
    let t = time::PrimitiveDateTime::parse(xapi, &fmt).ok()?;
    let secs = t.assume_utc().unix_timestamp();
    (secs > 0).then_some(secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn taskids_come_from_the_uuid() {
        assert_eq!(
            taskid("0b5e1f9c-6c1e-4a3c-9d7e-6f1a2b3c4d5e"),
            0x0b5e1f9c6c1e
        );
        assert_eq!(
            taskid("ffffffff-ffff-4fff-8fff-ffffffffffff"),
            0xffff_ffff_ffff
        );
        assert!(taskid("ffffffff-ffff-4fff-8fff-ffffffffffff") < (1 << 53));
    }

    #[test]
    fn time_spent_runs_to_the_end_or_now() {
        let mut t = TaskRecord {
            status: "pending".into(),
            created: "20240101T12:00:00Z".into(),
            finished: "19700101T00:00:00Z".into(),
            ..Default::default()
        };
        let created = unix(&t.created).unwrap();
        assert_eq!(time_spent(&t, created + 7), 7000);
        t.status = "success".into();
        t.finished = "20240101T12:00:03Z".into();
        assert_eq!(time_spent(&t, created + 100), 3000);
        // Finished with no stamp (the epoch): the clock runs to now.
        t.finished = "19700101T00:00:00Z".into();
        assert_eq!(time_spent(&t, created + 9), 9000);
        assert_eq!(unix("garbage"), None);
    }

    #[test]
    fn steps_nest_as_deep_as_a_job_tree_and_json_parsers_read_them() {
        let tasks = crate::xclarity::jobs::tests::chain(40);
        let top = tasks.find("u0").unwrap();
        let m = monitor(&tasks, top, 0);
        let mut levels = 1;
        let mut status = &m["results"][0]["status"];
        while let Some(step) = status["substatus"].as_array().and_then(|s| s.first()) {
            levels += 1;
            status = &step["status"];
        }
        assert_eq!(levels, mapping::MAX_DEPTH);
        assert!(serde_json::from_str::<Json>(&m.to_string()).is_ok());
    }

    #[test]
    fn outcomes() {
        assert_eq!(outcome("pending"), ("INCOMPLETE", "INCOMPLETE"));
        assert_eq!(outcome("cancelling"), ("INCOMPLETE", "INCOMPLETE"));
        assert_eq!(outcome("success"), ("COMPLETE", "SUCCESS"));
        assert_eq!(outcome("failure").1, "FAILED");
    }
}
