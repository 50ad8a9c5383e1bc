//! XAPI as the REST faces call it: one call through the dispatch pipeline (as any XML-RPC
//! client would make it), the members of the records it answers, and a task record in
//! the terms the faces' mappings use. Redfish and XClarity both read tasks this way, so
//! the reading is written once (no face depends on another).

use std::sync::Arc;

use crate::api::dispatch::{self, Refusal, Reply, RequestMeta, Service, call, dispatch};
use crate::api::error::{ApiError, codes};
use crate::wire::encode::{Codec, Piece, ViewReader};
use crate::wire::value::Value;

/// One call through the XAPI pipeline, as any XML-RPC client would make it.
pub async fn xapi(svc: &Arc<Service>, method: &str, params: Vec<Value>) -> Result<Value, ApiError> {
    xapi_in(svc, method, params, &RequestMeta::default()).await
}

/// The same with request metadata (`subtask-of`, as the HTTP header would give it).
pub async fn xapi_in(
    svc: &Arc<Service>,
    method: &str,
    params: Vec<Value>,
    meta: &RequestMeta,
) -> Result<Value, ApiError> {
    match dispatch(svc, call(method, params), meta).await {
        Reply::Envelope(r) => r,
        Reply::Bare(v) => Ok(v),
    }
}

/// `task.get_record` of `task_ref` through the pipeline, read as a [`TaskRecord`]; a task
/// that no longer exists is `None`. The pipeline is asked for the record in
/// [`Codec::View`] form, which the mapping reads without building a `Value` tree; it is
/// the same call (session check, RBAC) as any client's, only the reply's form differs.
pub async fn task_record(
    svc: &Arc<Service>,
    session_ref: &str,
    task_ref: &str,
) -> Result<Option<TaskRecord>, ApiError> {
    let meta = RequestMeta {
        codec: Some(Codec::View),
        ..RequestMeta::default()
    };
    let params = vec![Value::str(session_ref), Value::str(task_ref)];
    match xapi_in(svc, "task.get_record", params, &meta).await {
        Ok(Value::Encoded(Codec::View, bytes)) => Ok(Some(TaskRecord::from_view(&bytes))),
        Ok(rec) => Ok(Some(TaskRecord::from_record(&rec))),
        Err(e) if e.code == codes::HANDLE_INVALID => Ok(None),
        Err(e) => Err(e),
    }
}

/// The task with uuid `uuid` and its record, as a session check, `task.get_by_uuid` and
/// `task.get_record` would give them, in one pass through the pipeline
/// ([`dispatch::task_by_uuid`], which says whether the session or the read refused); an
/// unknown uuid is `None`.
pub async fn task_by_uuid(
    svc: &Arc<Service>,
    session_ref: &str,
    uuid: &str,
) -> Result<Option<(String, TaskRecord)>, Refusal> {
    match dispatch::task_by_uuid(svc, session_ref, uuid, Some(Codec::View)).await {
        Ok((r, Value::Encoded(Codec::View, bytes))) => Ok(Some((r, TaskRecord::from_view(&bytes)))),
        Ok((r, rec)) => Ok(Some((r, TaskRecord::from_record(&rec)))),
        Err(Refusal::Task(e)) if e.code == codes::UUID_INVALID => Ok(None),
        Err(e) => Err(e),
    }
}

/// A struct member of an XAPI record.
pub fn field<'a>(record: &'a Value, name: &str) -> Option<&'a Value> {
    match record {
        Value::Struct(members) => members.iter().find(|(k, _)| k == name).map(|(_, v)| v),
        _ => None,
    }
}

/// A string (or date) member of an XAPI record; "" if absent.
pub fn text(record: &Value, name: &str) -> String {
    match field(record, name) {
        Some(Value::String(s)) | Some(Value::DateTime(s)) => s.clone(),
        _ => String::new(),
    }
}

/// The strings of a list member (refs, `error_info`); empty if absent.
fn texts(record: &Value, name: &str) -> Vec<String> {
    match field(record, name) {
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| v.as_str().unwrap_or_default().to_string())
            .collect(),
        _ => Vec::new(),
    }
}

/// The parts of an XAPI task record the faces' mappings use.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TaskRecord {
    pub uuid: String,
    pub name_label: String,
    pub name_description: String,
    pub status: String,
    /// `current_operations` holds a `cancel` (XAPI's `task.cancel` leaves `status` alone).
    pub cancel_requested: bool,
    /// `current_operations` holds a `destroy`: XAPI's `task.destroy` of an unfinished task
    /// only marks it, and it goes when it completes.
    pub destroy_requested: bool,
    pub progress: f64,
    /// XAPI dates (`20261123T00:55:00Z`); the epoch means "never".
    pub created: String,
    pub finished: String,
    pub result: String,
    pub error_info: Vec<String>,
    pub other_config: Vec<(String, String)>,
    pub subtask_of: String,
    /// In creation order.
    pub subtasks: Vec<String>,
}

impl TaskRecord {
    pub fn from_record(rec: &Value) -> TaskRecord {
        let op = |op: &str| {
            matches!(field(rec, "current_operations"),
                Some(Value::Struct(ops)) if ops.iter().any(|(_, v)| v.as_str() == Some(op)))
        };
        TaskRecord {
            uuid: text(rec, "uuid"),
            name_label: text(rec, "name_label"),
            name_description: text(rec, "name_description"),
            status: text(rec, "status"),
            cancel_requested: op("cancel"),
            destroy_requested: op("destroy"),
            progress: match field(rec, "progress") {
                Some(Value::Double(f)) => *f,
                Some(Value::Int(i)) => *i as f64,
                _ => 0.0,
            },
            created: text(rec, "created"),
            finished: text(rec, "finished"),
            result: text(rec, "result"),
            error_info: texts(rec, "error_info"),
            other_config: match field(rec, "other_config") {
                Some(Value::Struct(m)) => m
                    .iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                    .collect(),
                _ => Vec::new(),
            },
            subtask_of: text(rec, "subtask_of"),
            subtasks: texts(rec, "subtasks"),
        }
    }

    /// The same reading as [`TaskRecord::from_record`], from a record's [`Codec::View`]
    /// pieces: a member that is not the expected shape reads as absent, as there.
    pub fn from_view(bytes: &[u8]) -> TaskRecord {
        let mut t = TaskRecord::default();
        let mut r = ViewReader::new(bytes);
        if r.next() != Some(Piece::BeginStruct) {
            return t;
        }
        while let Some(Piece::Member(name)) = r.next() {
            let Some(first) = r.next() else { break };
            match name.0 {
                b"uuid" => t.uuid = text_of(&mut r, first),
                b"name_label" => t.name_label = text_of(&mut r, first),
                b"name_description" => t.name_description = text_of(&mut r, first),
                b"status" => t.status = text_of(&mut r, first),
                b"created" => t.created = text_of(&mut r, first),
                b"finished" => t.finished = text_of(&mut r, first),
                b"result" => t.result = text_of(&mut r, first),
                b"subtask_of" => t.subtask_of = text_of(&mut r, first),
                b"error_info" => t.error_info = texts_of(&mut r, first),
                b"subtasks" => t.subtasks = texts_of(&mut r, first),
                b"progress" => match first {
                    Piece::Double(f) => t.progress = f,
                    Piece::Int(i) => t.progress = i as f64,
                    other => r.skip_rest(other),
                },
                b"other_config" => {
                    t.other_config = struct_of(&mut r, first, |v| {
                        v.map_or_else(String::new, str::to_string)
                    })
                }
                b"current_operations" => {
                    let ops = struct_of(&mut r, first, |v| v.unwrap_or_default());
                    t.cancel_requested = ops.iter().any(|(_, op)| *op == "cancel");
                    t.destroy_requested = ops.iter().any(|(_, op)| *op == "destroy");
                }
                _ => r.skip_rest(first),
            }
        }
        t
    }

    /// Finished: success, failure or cancelled (XAPI's `status_is_completed`).
    pub fn is_completed(&self) -> bool {
        matches!(self.status.as_str(), "success" | "failure" | "cancelled")
    }
}

/// A value read as `text` reads it: a string or a date, else "".
fn text_of<'a>(r: &mut ViewReader<'a>, first: Piece<'a>) -> String {
    match first {
        Piece::String(s) | Piece::DateTime(s) => s.as_str().to_string(),
        other => {
            r.skip_rest(other);
            String::new()
        }
    }
}

/// A value read as `texts` reads it: an array's strings ("" for any other item).
fn texts_of<'a>(r: &mut ViewReader<'a>, first: Piece<'a>) -> Vec<String> {
    let mut items = Vec::new();
    if first != Piece::BeginArray {
        r.skip_rest(first);
        return items;
    }
    while let Some(p) = r.next() {
        match p {
            Piece::EndArray => break,
            Piece::String(s) => items.push(s.as_str().to_string()),
            other => {
                r.skip_rest(other);
                items.push(String::new());
            }
        }
    }
    items
}

/// A struct's members, each value given to `value` as its string (`None` if it is not
/// one); empty if the value is not a struct.
fn struct_of<'a, V>(
    r: &mut ViewReader<'a>,
    first: Piece<'a>,
    value: impl Fn(Option<&'a str>) -> V,
) -> Vec<(String, V)> {
    let mut members = Vec::new();
    if first != Piece::BeginStruct {
        r.skip_rest(first);
        return members;
    }
    while let Some(Piece::Member(name)) = r.next() {
        let Some(p) = r.next() else { break };
        let v = match p {
            Piece::String(s) => Some(s.as_str()),
            other => {
                r.skip_rest(other);
                None
            }
        };
        members.push((name.as_str().to_string(), value(v)));
    }
    members
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_task_record_is_read_member_by_member() {
        let s = |v: &str| Value::String(v.into());
        let rec = Value::Struct(vec![
            ("uuid".into(), s("u")),
            ("name_label".into(), s("n")),
            ("status".into(), s("pending")),
            ("progress".into(), Value::Double(0.25)),
            (
                "created".into(),
                Value::DateTime("20261123T00:55:00Z".into()),
            ),
            (
                "current_operations".into(),
                Value::Struct(vec![("OpaqueRef:a".into(), s("destroy"))]),
            ),
            ("error_info".into(), Value::Array(vec![s("E"), s("p")])),
            (
                "other_config".into(),
                Value::Struct(vec![("k".into(), s("v"))]),
            ),
            ("subtasks".into(), Value::Array(vec![s("OpaqueRef:c")])),
        ]);
        let t = TaskRecord::from_record(&rec);
        assert_eq!((t.uuid.as_str(), t.name_label.as_str()), ("u", "n"));
        assert_eq!(t.progress, 0.25);
        assert_eq!(t.created, "20261123T00:55:00Z");
        assert!(t.destroy_requested && !t.cancel_requested && !t.is_completed());
        assert_eq!(t.error_info, ["E", "p"]);
        assert_eq!(t.other_config, [("k".to_string(), "v".to_string())]);
        assert_eq!(t.subtasks, ["OpaqueRef:c"]);
        assert_eq!(t.name_description, "");
        assert_eq!(
            TaskRecord::from_record(&Value::Int(1)),
            TaskRecord::default()
        );
    }
}
