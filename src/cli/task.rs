//! Task records as the client sees them: decoded from the JSON-RPC `task` record, with the
//! few helpers every view needs (finished or not, parent/child order, dates).

use std::collections::{BTreeMap, HashMap};

use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use time::macros::format_description;

use super::client::{CliError, Client, value_text};

/// xapi's null reference: `subtask_of` of a top-level task, `resident_on` of nothing.
pub const NULL_REF: &str = "OpaqueRef:NULL";

/// One task, the fields of xapi's public `task` record.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TaskRecord {
    pub r#ref: String,
    pub uuid: String,
    pub name_label: String,
    pub name_description: String,
    pub allowed_operations: Vec<String>,
    /// (task ref, operation) pairs: `cancel` here means a cancel was requested.
    pub current_operations: Vec<(String, String)>,
    /// xapi's date form, `20240101T12:34:56Z`.
    pub created: String,
    pub finished: String,
    pub status: String,
    pub resident_on: String,
    pub progress: f64,
    pub r#type: String,
    pub result: String,
    pub error_info: Vec<String>,
    pub other_config: BTreeMap<String, String>,
    pub subtask_of: String,
    pub subtasks: Vec<String>,
    pub backtrace: String,
}

impl TaskRecord {
    /// Decodes a record; missing fields get empty values (the server always sends them all,
    /// but a view should not fail on an older server).
    pub fn from_json(r#ref: &str, v: &Value) -> TaskRecord {
        let s = |k: &str| v.get(k).map(value_text).unwrap_or_default();
        let list = |k: &str| match v.get(k) {
            Some(Value::Array(a)) => a.iter().map(value_text).collect(),
            _ => vec![],
        };
        let map = |k: &str| match v.get(k) {
            Some(Value::Object(m)) => m.iter().map(|(k, v)| (k.clone(), value_text(v))).collect(),
            _ => vec![],
        };
        TaskRecord {
            r#ref: r#ref.to_string(),
            uuid: s("uuid"),
            name_label: s("name_label"),
            name_description: s("name_description"),
            allowed_operations: list("allowed_operations"),
            current_operations: map("current_operations"),
            created: s("created"),
            finished: s("finished"),
            status: s("status"),
            resident_on: s("resident_on"),
            progress: v.get("progress").and_then(number).unwrap_or(0.0),
            r#type: s("type"),
            result: s("result"),
            error_info: list("error_info"),
            other_config: map("other_config").into_iter().collect(),
            subtask_of: s("subtask_of"),
            subtasks: list("subtasks"),
            backtrace: s("backtrace"),
        }
    }

    /// Pending or cancelling: the task's owner has not finished it yet.
    pub fn is_unfinished(&self) -> bool {
        matches!(self.status.as_str(), "pending" | "cancelling")
    }

    /// A cancel was requested (xapi records it in `current_operations`, status unchanged).
    pub fn cancel_requested(&self) -> bool {
        self.current_operations.iter().any(|(_, op)| op == "cancel")
    }

    pub fn has_parent(&self) -> bool {
        !self.subtask_of.is_empty() && self.subtask_of != NULL_REF
    }
}

/// A number, or a number in a string (xapi's XML-RPC habit; harmless to accept here).
fn number(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

/// Every task, oldest first (then by uuid), so that listings are stable.
pub fn all_tasks(client: &Client) -> Result<Vec<TaskRecord>, CliError> {
    let all = client.call("task.get_all_records", vec![])?;
    let Value::Object(map) = all else {
        return Err(CliError::msg("task.get_all_records did not return a map"));
    };
    let mut tasks: Vec<TaskRecord> = map
        .iter()
        .map(|(r, v)| TaskRecord::from_json(r, v))
        .collect();
    sort_tasks(&mut tasks);
    Ok(tasks)
}

pub fn sort_tasks(tasks: &mut [TaskRecord]) {
    tasks.sort_by(|a, b| (&a.created, &a.uuid).cmp(&(&b.created, &b.uuid)));
}

/// The ref of the task with this uuid (`UUID_INVALID task <uuid>` if there is none).
pub fn ref_of_uuid(client: &Client, uuid: &str) -> Result<String, CliError> {
    let r = client.call("task.get_by_uuid", vec![json!(uuid)])?;
    Ok(value_text(&r))
}

/// Tasks by ref, for parent/child lookups.
pub fn by_ref(tasks: &[TaskRecord]) -> HashMap<&str, &TaskRecord> {
    tasks.iter().map(|t| (t.r#ref.as_str(), t)).collect()
}

/// Parses xapi's `20240101T12:34:56Z` (also accepts RFC 3339). None for the epoch, which
/// xapi uses for "not set" (`finished` of a pending task).
pub fn parse_xapi_date(s: &str) -> Option<OffsetDateTime> {
    let fmt = format_description!("[year][month][day]T[hour]:[minute]:[second]Z");
    let t = time::PrimitiveDateTime::parse(s, fmt)
        .map(|p| p.assume_utc())
        .or_else(|_| OffsetDateTime::parse(s, &Rfc3339))
        .ok()?;
    (t.unix_timestamp() > 0).then_some(t)
}

/// A date as RFC 3339 (`2024-01-01T12:34:56Z`), or "" when unset.
pub fn rfc3339(s: &str) -> String {
    parse_xapi_date(s)
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_decode() {
        let v = json!({
            "uuid": "u", "name_label": "n", "status": "pending", "progress": 0.25,
            "created": "20240101T12:34:56Z", "finished": "19700101T00:00:00Z",
            "other_config": {"a": "1"}, "current_operations": {"OpaqueRef:c": "cancel"},
            "subtask_of": "OpaqueRef:NULL", "subtasks": ["OpaqueRef:s"], "error_info": []
        });
        let t = TaskRecord::from_json("OpaqueRef:t", &v);
        assert_eq!(t.progress, 0.25);
        assert!(t.is_unfinished() && t.cancel_requested() && !t.has_parent());
        assert_eq!(t.other_config.get("a").map(String::as_str), Some("1"));
        assert_eq!(t.subtasks, vec!["OpaqueRef:s"]);
    }

    #[test]
    fn dates() {
        assert_eq!(rfc3339("20240101T12:34:56Z"), "2024-01-01T12:34:56Z");
        assert_eq!(rfc3339("19700101T00:00:00Z"), "");
        assert_eq!(rfc3339("garbage"), "");
        assert!(parse_xapi_date("2024-01-01T12:34:56Z").is_some());
    }
}
