//! `task-list`, `task-cancel`, `task-destroy`, `task-param-list`: xe's task commands, in
//! xe's `key=value` argument style and with its output format, for people with `xe` habits.
//!
//! The formats follow xen-api's CLI server (read, not copied): `records.ml` `task_record`
//! gives the field names and how each is shown, `cli_operations.ml` the default fields of
//! `task-list` and the `( RO)`/`(MRW)` suffixes, `cli_printer.ml` the record layout (the
//! first name padded on the right, the others on the left, one blank line after a record).

use std::collections::HashMap;

use serde_json::{Value, json};

use super::client::{CliError, Client, Connection, value_text};
use super::task::{NULL_REF, TaskRecord, all_tasks, ref_of_uuid};

/// What xe shows for a reference that names no object.
const NOT_IN_DATABASE: &str = "<not in database>";

/// `task-list`'s default fields (`cli_operations.ml`, the task entry of `gen_cmds`).
const LIST_DEFAULT: &[&str] = &[
    "uuid",
    "name-label",
    "name-description",
    "status",
    "progress",
];

/// Arguments of the xe-style commands: connection options, then `key=value` pairs.
#[derive(Debug, Clone, clap::Args)]
pub struct XeArgs {
    #[command(flatten)]
    pub conn: Connection,
    /// Print only the uuids, comma-separated (xe's --minimal).
    #[arg(long)]
    pub minimal: bool,
    /// key=value pairs: uuid=<uuid>; for task-list also params=<f1,f2|all> and field=value
    /// filters (e.g. status=pending).
    #[arg(value_name = "KEY=VALUE")]
    pub params: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum XeCommand {
    List,
    Cancel,
    Destroy,
    ParamList,
}

/// Runs one command and returns what it prints on stdout.
pub fn run(cmd: XeCommand, args: &XeArgs) -> Result<String, CliError> {
    let params = parse_params(&args.params)?;
    // Check the arguments before asking for a password.
    match cmd {
        XeCommand::List => {}
        XeCommand::Cancel | XeCommand::Destroy | XeCommand::ParamList => {
            only_uuid(&params)?;
        }
    }
    let client = Client::connect(&args.conn)?;
    match cmd {
        XeCommand::List => {
            let tasks = all_tasks(&client)?;
            let lookup = Lookup::new(&client, &tasks)?;
            let selected = choose_fields(&params);
            let filters: Vec<(&str, &str)> = params
                .iter()
                .filter(|(k, _)| k != "params")
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            let mut records = Vec::new();
            for t in &tasks {
                let fields = task_fields(t, &lookup);
                let keep = filters.iter().all(|(k, v)| has_value(&fields, k, v));
                if keep {
                    records.push(select(fields, selected.as_deref()));
                }
            }
            if args.minimal {
                Ok(minimal(&records))
            } else {
                Ok(records
                    .iter()
                    .map(|r| multi_line_record(r) + "\n")
                    .collect())
            }
        }
        XeCommand::Cancel | XeCommand::Destroy => {
            let r = ref_of_uuid(&client, &params[0].1)?;
            let method = if cmd == XeCommand::Cancel {
                "task.cancel"
            } else {
                "task.destroy"
            };
            client.call(method, vec![json!(r)])?;
            Ok(String::new())
        }
        XeCommand::ParamList => {
            let r = ref_of_uuid(&client, &params[0].1)?;
            let v = client.call("task.get_record", vec![json!(r)])?;
            let t = TaskRecord::from_json(&r, &v);
            let tasks = all_tasks(&client)?;
            let lookup = Lookup::new(&client, &tasks)?;
            Ok(multi_line_record(&task_fields(&t, &lookup)) + "\n")
        }
    }
}

/// `key=value` pairs, in order. A word without `=` is an error, as in xe.
pub fn parse_params(words: &[String]) -> Result<Vec<(String, String)>, CliError> {
    words
        .iter()
        .map(|w| match w.split_once('=') {
            Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
            _ => Err(CliError::msg(format!(
                "expected key=value, got {w:?} (for example uuid=<task uuid>)"
            ))),
        })
        .collect()
}

fn only_uuid(params: &[(String, String)]) -> Result<(), CliError> {
    if let Some((k, _)) = params.iter().find(|(k, _)| k != "uuid") {
        return Err(CliError::msg(format!(
            "unknown parameter {k:?} (only uuid=…)"
        )));
    }
    match params {
        [(_, v)] if !v.is_empty() => Ok(()),
        [] => Err(CliError::msg("missing uuid=<task uuid>")),
        _ => Err(CliError::msg("give uuid=<task uuid> once")),
    }
}

/// The fields to show: `params=a,b`, `params=all` (every field) or task-list's defaults.
fn choose_fields(params: &[(String, String)]) -> Option<Vec<String>> {
    match params.iter().rev().find(|(k, _)| k == "params") {
        Some((_, v)) if v == "all" => None,
        Some((_, v)) => Some(v.split(',').map(str::to_string).collect()),
        None => Some(LIST_DEFAULT.iter().map(|s| s.to_string()).collect()),
    }
}

fn select(fields: Vec<(String, String)>, names: Option<&[String]>) -> Vec<(String, String)> {
    match names {
        None => fields,
        Some(names) => fields
            .into_iter()
            .filter(|(n, _)| names.iter().any(|x| x == bare(n)))
            .collect(),
    }
}

/// Refs to uuids, for `subtask_of`, `subtasks` and `resident-on`.
pub struct Lookup {
    uuids: HashMap<String, String>,
}

impl Lookup {
    fn new(client: &Client, tasks: &[TaskRecord]) -> Result<Lookup, CliError> {
        let mut uuids: HashMap<String, String> = tasks
            .iter()
            .map(|t| (t.r#ref.clone(), t.uuid.clone()))
            .collect();
        if let Value::Object(hosts) = client.call("host.get_all_records", vec![])? {
            for (r, h) in hosts {
                if let Some(u) = h.get("uuid") {
                    uuids.insert(r, value_text(u));
                }
            }
        }
        Ok(Lookup { uuids })
    }

    pub fn from_pairs(pairs: &[(&str, &str)]) -> Lookup {
        Lookup {
            uuids: pairs
                .iter()
                .map(|(r, u)| (r.to_string(), u.to_string()))
                .collect(),
        }
    }

    fn uuid(&self, r: &str) -> String {
        match self.uuids.get(r) {
            Some(u) if r != NULL_REF => u.clone(),
            _ => NOT_IN_DATABASE.to_string(),
        }
    }
}

/// A task as xe shows it: (name with its access suffix, value), in `records.ml`'s order.
pub fn task_fields(t: &TaskRecord, lookup: &Lookup) -> Vec<(String, String)> {
    let ro = |name: &str, v: String| (format!("{name} ( RO)"), v);
    let semi = |xs: &[String]| xs.join("; ");
    vec![
        ro("uuid", t.uuid.clone()),
        ro("name-label", t.name_label.clone()),
        ro("name-description", t.name_description.clone()),
        ro("subtask_of", lookup.uuid(&t.subtask_of)),
        ro(
            "subtasks",
            semi(
                &t.subtasks
                    .iter()
                    .map(|r| lookup.uuid(r))
                    .collect::<Vec<_>>(),
            ),
        ),
        ro("resident-on", lookup.uuid(&t.resident_on)),
        ro("status", t.status.clone()),
        ro("progress", ocaml_string_of_float(t.progress)),
        ro("type", t.r#type.clone()),
        ro("result", t.result.clone()),
        ro("created", t.created.clone()),
        ro("finished", t.finished.clone()),
        ro("error_info", semi(&t.error_info)),
        ro("allowed_operations", semi(&t.allowed_operations)),
        ro(
            "current_operations",
            semi(
                &t.current_operations
                    .iter()
                    .map(|(_, op)| op.clone())
                    .collect::<Vec<_>>(),
            ),
        ),
        (
            "other-config (MRW)".to_string(),
            t.other_config
                .iter()
                .map(|(k, v)| format!("{k}: {v}"))
                .collect::<Vec<_>>()
                .join("; "),
        ),
    ]
}

/// The field name without xe's access suffix (`uuid ( RO)` → `uuid`).
fn bare(name: &str) -> &str {
    name.split_once(" (").map_or(name, |(n, _)| n)
}

/// OCaml's `string_of_float`: `%.12g`, plus a `.` when that looks like an integer
/// (`0.` for zero, `1.` for one), which is how xe prints `progress`.
pub fn ocaml_string_of_float(f: f64) -> String {
    let s = crate::printf::format_g(f, 12);
    if s.chars().all(|c| c.is_ascii_digit() || c == '-') {
        s + "."
    } else {
        s
    }
}

/// One record in xe's layout: names padded to the longest + 4, the first on the right,
/// the rest on the left, `name: value` per line, a newline at the end.
pub fn multi_line_record(fields: &[(String, String)]) -> String {
    let width = 4 + fields
        .iter()
        .map(|(n, _)| n.chars().count())
        .max()
        .unwrap_or(0);
    let mut out = String::new();
    for (i, (name, value)) in fields.iter().enumerate() {
        let pad = " ".repeat(width.saturating_sub(name.chars().count()));
        if i == 0 {
            out.push_str(&format!("{name}{pad}: {value}\n"));
        } else {
            out.push_str(&format!("{pad}{name}: {value}\n"));
        }
    }
    out
}

/// `--minimal`: the first field of each record, commas in values escaped, on one line.
pub fn minimal(records: &[Vec<(String, String)>]) -> String {
    let values: Vec<String> = records
        .iter()
        .filter_map(|r| r.first())
        .map(|(_, v)| v.replace('\\', "\\\\").replace(',', "\\,"))
        .collect();
    values.join(",") + "\n"
}

/// For `field=value` filters: does the record's field (by bare name) have this value?
fn has_value(fields: &[(String, String)], key: &str, value: &str) -> bool {
    fields.iter().any(|(n, v)| bare(n) == key && v == value)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> TaskRecord {
        TaskRecord {
            r#ref: "OpaqueRef:t".into(),
            uuid: "0b1f".into(),
            name_label: "backup".into(),
            status: "pending".into(),
            progress: 0.5,
            subtask_of: NULL_REF.into(),
            subtasks: vec!["OpaqueRef:s".into(), "OpaqueRef:gone".into()],
            resident_on: "OpaqueRef:h".into(),
            created: "20240101T12:34:56Z".into(),
            finished: "19700101T00:00:00Z".into(),
            error_info: vec!["A".into(), "b".into()],
            other_config: [("k".to_string(), "v".to_string()), ("x".into(), "y".into())]
                .into_iter()
                .collect(),
            current_operations: vec![("OpaqueRef:c".into(), "cancel".into())],
            ..Default::default()
        }
    }

    #[test]
    fn floats_as_ocaml_prints_them() {
        assert_eq!(ocaml_string_of_float(0.0), "0.");
        assert_eq!(ocaml_string_of_float(1.0), "1.");
        assert_eq!(ocaml_string_of_float(0.5), "0.5");
        assert_eq!(ocaml_string_of_float(1.0 / 3.0), "0.333333333333");
        assert_eq!(ocaml_string_of_float(1e-5), "1e-05");
    }

    #[test]
    fn list_record_layout_is_xes() {
        let lookup = Lookup::from_pairs(&[("OpaqueRef:s", "5ub"), ("OpaqueRef:h", "h05t")]);
        let fields = select(
            task_fields(&sample(), &lookup),
            choose_fields(&[]).as_deref(),
        );
        assert_eq!(
            multi_line_record(&fields),
            "uuid ( RO)                : 0b1f\n\
             \x20         name-label ( RO): backup\n\
             \x20   name-description ( RO): \n\
             \x20             status ( RO): pending\n\
             \x20           progress ( RO): 0.5\n"
        );
    }

    #[test]
    fn every_field_is_shown_as_xe_does() {
        let lookup = Lookup::from_pairs(&[("OpaqueRef:s", "5ub"), ("OpaqueRef:h", "h05t")]);
        let fields = task_fields(&sample(), &lookup);
        let get = |n: &str| {
            fields
                .iter()
                .find(|(name, _)| bare(name) == n)
                .map(|(_, v)| v.as_str())
                .unwrap()
        };
        assert_eq!(get("subtask_of"), NOT_IN_DATABASE);
        assert_eq!(get("subtasks"), "5ub; <not in database>");
        assert_eq!(get("resident-on"), "h05t");
        assert_eq!(get("error_info"), "A; b");
        assert_eq!(get("current_operations"), "cancel");
        assert_eq!(get("other-config"), "k: v; x: y");
        assert_eq!(get("created"), "20240101T12:34:56Z");
        assert_eq!(fields.last().unwrap().0, "other-config (MRW)");
        assert_eq!(fields.len(), 16);
        assert!(has_value(&fields, "status", "pending"));
        assert!(!has_value(&fields, "status", "success"));
    }

    #[test]
    fn params_and_minimal() {
        let p = parse_params(&["uuid=a=b".into(), "status=".into()]).unwrap();
        assert_eq!(
            p,
            vec![("uuid".into(), "a=b".into()), ("status".into(), "".into())]
        );
        assert!(parse_params(&["uuid".into()]).is_err());
        assert!(parse_params(&["=x".into()]).is_err());
        assert!(only_uuid(&[]).is_err());
        assert!(only_uuid(&[("name".into(), "x".into())]).is_err());
        assert!(only_uuid(&[("uuid".into(), "x".into())]).is_ok());
        let recs = vec![
            vec![("uuid ( RO)".to_string(), "a,b".to_string())],
            vec![("uuid ( RO)".to_string(), "c".to_string())],
        ];
        assert_eq!(minimal(&recs), "a\\,b,c\n");
        assert_eq!(minimal(&[]), "\n");
    }
}
