//! `tasks`: XClarity Administrator's `tasks` command (seed 000: pylxca's `tasks`), with its
//! option letters (`-j -c -a -u -t -h`), as a client of LXCA's REST API ([`super::lxca`]):
//! it works against xapi-taskd's XClarity face and against a real LXCA appliance, and
//! prints jobs exactly as the REST face answers them. What it sends is checked first with
//! the face's own mapping ([`crate::xclarity::mapping`]), before any password prompt.

use serde_json::{Value, json};

use super::client::{CliError, Connection};
use super::lxca::Lxca;
use crate::xclarity::mapping;

#[derive(Debug, Clone, Copy, PartialEq, clap::ValueEnum)]
pub enum Action {
    /// Request cancellation of the -j jobs.
    Cancel,
    /// Delete the -j jobs and their children.
    Delete,
    /// Create the job given with -u or -t, its children included.
    Create,
    /// Set jobState and/or percentage of the jobs listed in -u.
    Update,
}

#[derive(Debug, Clone, clap::Args)]
pub struct TasksArgs {
    #[command(flatten)]
    pub conn: Connection,
    /// Job ids, comma-separated (`-j 127,140` or, as in XClarity's examples, `-j 127, 140`).
    #[arg(short = 'j', long = "jobUID", value_name = "IDS", num_args = 1..)]
    pub job_uid: Vec<String>,
    /// Include subtasks (children): true or false.
    #[arg(short = 'c', long = "children", value_name = "BOOL", default_value_t = true,
          action = clap::ArgAction::Set)]
    pub children: bool,
    /// cancel, delete, create or update.
    #[arg(short = 'a', long = "action", value_enum)]
    pub action: Option<Action>,
    /// JSON: a job for create, [{"jobUID":…,"jobState":…,"percentage":…}, …] for update.
    #[arg(short = 'u', long = "updateList", value_name = "JSON")]
    pub update_list: Option<String>,
    /// JSON: the job to create (as pylxca's t=); alone, without a value, prints a sample.
    #[arg(short = 't', long = "template", value_name = "JSON", num_args = 0..=1,
          default_missing_value = "")]
    pub template: Option<String>,
}

/// What a checked command line asks for; everything is validated before logging in.
#[derive(Debug)]
enum Plan {
    Sample,
    List(Option<Vec<String>>),
    Cancel(Vec<String>),
    Delete(Vec<String>),
    Create(Value),
    /// (jobUID, the body of its `PUT /tasks/{jobUID}`)
    Update(Vec<(String, Value)>),
}

/// Runs the command and returns what it prints on stdout.
pub fn run(args: &TasksArgs) -> Result<String, CliError> {
    let plan = plan(args)?;
    if let Plan::Sample = plan {
        return Ok(pretty(&sample()));
    }
    let lxca = Lxca::connect(&args.conn)?;
    let compact = if args.children { "" } else { "?compact=true" };
    let get = |ids: &[String]| -> Result<Value, CliError> {
        Ok(lxca
            .call("GET", &format!("/tasks/{}{compact}", path_ids(ids)), None)?
            .body)
    };
    match plan {
        Plan::Sample => unreachable!("handled above"),
        Plan::List(None) => Ok(pretty(
            &lxca.call("GET", &format!("/tasks{compact}"), None)?.body,
        )),
        Plan::List(Some(ids)) => Ok(pretty(&get(&ids)?)),
        Plan::Cancel(ids) => {
            lxca.call(
                "PUT",
                "/tasks",
                Some(&json!({"action": "cancel", "list": ids})),
            )?;
            Ok(pretty(&get(&ids)?))
        }
        Plan::Delete(ids) => {
            lxca.call("DELETE", &format!("/tasks/{}", path_ids(&ids)), None)?;
            Ok(String::new())
        }
        Plan::Create(job) => {
            let a = lxca.call("POST", "/tasks", Some(&job))?;
            // The new job's id: the body's jobUID, else the Location header.
            let uid = a.body["jobUID"].as_str().map(str::to_string).or_else(|| {
                a.location
                    .and_then(|l| l.rsplit('/').next().map(str::to_string))
            });
            match uid {
                Some(uid) => Ok(pretty(&get(&[uid])?)),
                None => Ok(pretty(&a.body)),
            }
        }
        Plan::Update(updates) => {
            let ids: Vec<String> = updates.iter().map(|(id, _)| id.clone()).collect();
            // Every job must exist before any is changed (one GET names them all).
            get(&ids)?;
            for (id, body) in &updates {
                lxca.call(
                    "PUT",
                    &format!("/tasks/{}", path_ids(std::slice::from_ref(id))),
                    Some(body),
                )?;
            }
            Ok(pretty(&get(&ids)?))
        }
    }
}

fn plan(args: &TasksArgs) -> Result<Plan, CliError> {
    // `-j 127, 140` arrives as two words ("127," and "140"): every word, every comma.
    let ids: Vec<String> = args
        .job_uid
        .iter()
        .flat_map(|w| w.split(','))
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect();
    let parse = |what: &str, text: &str| -> Result<Value, CliError> {
        serde_json::from_str(text)
            .map_err(|e| CliError::msg(format!("invalid JSON in {what}: {e}")))
    };
    let need_ids = |what: &str| -> Result<Vec<String>, CliError> {
        if ids.is_empty() {
            Err(CliError::msg(format!("-a {what} needs -j/--jobUID <ids>")))
        } else {
            Ok(ids.clone())
        }
    };
    let template = args.template.as_deref();
    let nothing_else = |what: &str| -> Result<(), CliError> {
        if args.update_list.is_some() || template.is_some() {
            return Err(CliError::msg(format!(
                "{what} takes no -u/--updateList or -t/--template"
            )));
        }
        Ok(())
    };
    match (args.action, template) {
        (None, Some("")) if ids.is_empty() && args.update_list.is_none() => Ok(Plan::Sample),
        (None | Some(Action::Create), Some(t)) if !t.is_empty() => {
            if !ids.is_empty() || args.update_list.is_some() {
                return Err(CliError::msg(
                    "create takes one job: -t <JSON> (or -u), no -j",
                ));
            }
            create(&parse("--template", t)?, &args.conn.user)
        }
        (None, Some(_)) => Err(CliError::msg(
            "-t/--template alone prints a sample job; with a JSON value it creates that job",
        )),
        (None, None) => {
            nothing_else("listing")?;
            Ok(Plan::List((!ids.is_empty()).then_some(ids)))
        }
        (Some(Action::Cancel), _) => {
            nothing_else("-a cancel")?;
            Ok(Plan::Cancel(need_ids("cancel")?))
        }
        (Some(Action::Delete), _) => {
            nothing_else("-a delete")?;
            Ok(Plan::Delete(need_ids("delete")?))
        }
        (Some(Action::Create), _) => {
            if !ids.is_empty() {
                return Err(CliError::msg("-a create takes -u (or -t), not -j"));
            }
            let text = args.update_list.as_deref().ok_or_else(|| {
                CliError::msg(
                    "-a create needs the job: -u <JSON> or -t <JSON> (-t alone prints a sample)",
                )
            })?;
            create(&parse("--updateList", text)?, &args.conn.user)
        }
        (Some(Action::Update), _) => {
            if !ids.is_empty() {
                return Err(CliError::msg(
                    "-a update takes the jobUIDs inside -u, not -j",
                ));
            }
            let text = args
                .update_list
                .as_deref()
                .ok_or_else(|| CliError::msg("-a update needs -u/--updateList <JSON>"))?;
            updates(&parse("--updateList", text)?)
        }
    }
}

/// A job to create, checked by the face's own rules (so an invalid one never reaches a
/// server, and both disagree on nothing).
fn create(job: &Value, user: &str) -> Result<Plan, CliError> {
    mapping::parse_job(job, user).map_err(|e| CliError::msg(format!("the job: {e}")))?;
    Ok(Plan::Create(job.clone()))
}

/// `-u` for update: a list of `{"jobUID", …}` (one object is accepted too). pylxca sends
/// only the first entry; this command updates every one.
fn updates(v: &Value) -> Result<Plan, CliError> {
    let items: Vec<&Value> = match v {
        Value::Array(a) if !a.is_empty() => a.iter().collect(),
        Value::Object(_) => vec![v],
        _ => {
            return Err(CliError::msg(
                "--updateList: for update, a list [{\"jobUID\": …, \"jobState\": …, \"percentage\": …}]",
            ));
        }
    };
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items.into_iter().enumerate() {
        let uid = match item.get("jobUID") {
            Some(Value::String(s)) if !s.trim().is_empty() => s.trim().to_string(),
            Some(Value::Number(n)) => n.to_string(),
            _ => {
                return Err(CliError::msg(format!(
                    "--updateList[{i}]: jobUID (a string) is required"
                )));
            }
        };
        mapping::parse_update(item, std::slice::from_ref(&uid))
            .map_err(|e| CliError::msg(format!("--updateList[{i}]: {e}")))?;
        out.push((uid, item.clone()));
    }
    Ok(Plan::Update(out))
}

/// Ids for a path: comma-separated, each percent-encoded beyond the unreserved characters.
fn path_ids(ids: &[String]) -> String {
    ids.iter()
        .map(|id| {
            id.bytes()
                .map(|b| {
                    if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                        (b as char).to_string()
                    } else {
                        format!("%{b:02X}")
                    }
                })
                .collect::<String>()
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// What `tasks -t` prints: a job to fill in for `tasks -t <JSON>` or `-a create -u <JSON>`.
fn sample() -> Value {
    json!({
        "jobTitle": "Update firmware",
        "jobSummary": {"descriptionText": "Update the firmware of the rack servers"},
        "jobCategory": "Firmware",
        "targetUUID": "",
        "jobState": "Pending",
        "percentage": 0,
        "logs": [],
        "children": [
            {"jobTitle": "Update server 1", "jobState": "Pending", "percentage": 0, "children": []}
        ]
    })
}

fn pretty(v: &Value) -> String {
    serde_json::to_string_pretty(v).unwrap_or_else(|_| v.to_string()) + "\n"
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct T {
        #[command(flatten)]
        a: TasksArgs,
    }

    fn parse(args: &[&str]) -> Result<TasksArgs, clap::Error> {
        T::try_parse_from(std::iter::once("tasks").chain(args.iter().copied())).map(|t| t.a)
    }

    fn planned(args: &[&str]) -> Result<Plan, String> {
        plan(&parse(args).map_err(|e| e.to_string())?).map_err(|e| e.to_string())
    }

    #[test]
    fn xclarity_option_letters() {
        let a = parse(&["-j", "a,b", "-c", "false"]).unwrap();
        assert_eq!(a.job_uid, vec!["a,b"]);
        assert!(!a.children);
        assert!(parse(&[]).unwrap().children);
        let a = parse(&["--jobUID", "a", "--action", "cancel"]).unwrap();
        assert_eq!(a.action, Some(Action::Cancel));
        assert_eq!(parse(&["-t"]).unwrap().template.as_deref(), Some(""));
        assert_eq!(
            parse(&["-t", "{}"]).unwrap().template.as_deref(),
            Some("{}")
        );
        assert!(parse(&["-a", "explode"]).is_err());
        assert!(parse(&["-c", "maybe"]).is_err());
        assert_eq!(
            parse(&["-h"]).unwrap_err().kind(),
            clap::error::ErrorKind::DisplayHelp
        );
    }

    #[test]
    fn ids_with_the_seeds_spacing() {
        let Ok(Plan::Cancel(ids)) = planned(&["-a", "cancel", "-j", "127,", "140"]) else {
            panic!()
        };
        assert_eq!(ids, vec!["127", "140"]);
        let Ok(Plan::List(Some(ids))) = planned(&["-j", "127, 140"]) else {
            panic!()
        };
        assert_eq!(ids, vec!["127", "140"]);
    }

    #[test]
    fn plans_are_checked_before_login() {
        let err = |args: &[&str]| planned(args).unwrap_err();
        assert!(err(&["-a", "cancel"]).contains("needs -j"));
        assert!(err(&["-a", "create"]).contains("needs the job"));
        assert!(
            err(&["-a", "update", "-u", "{oops"]).starts_with("invalid JSON in --updateList: ")
        );
        assert!(err(&["-u", "[]"]).contains("takes no -u"));
        assert!(err(&["-t", "-j", "x"]).contains("sample"));
        assert!(
            err(&[
                "-a",
                "update",
                "-u",
                r#"[{"jobUID":"x","jobState":"Nope"}]"#
            ])
            .contains("unknown state")
        );
        assert!(err(&["-a", "update", "-u", r#"[{"jobState":"Complete"}]"#]).contains("jobUID"));
        assert!(err(&["-a", "create", "-u", r#"{"percentage": 101}"#]).contains("0 to 100"));
        assert!(matches!(planned(&["-t"]), Ok(Plan::Sample)));
        assert!(matches!(planned(&["-t", "{}"]), Ok(Plan::Create(_))));
        assert!(matches!(
            planned(&["-a", "create", "-t", "{}"]),
            Ok(Plan::Create(_))
        ));
        assert!(matches!(
            planned(&["-a", "create", "-u", "{}"]),
            Ok(Plan::Create(_))
        ));
        let Ok(Plan::Update(u)) = planned(&[
            "-a",
            "update",
            "-u",
            r#"[{"jobUID":"127","percentage":50},{"jobUID":"140","jobState":"Complete"}]"#,
        ]) else {
            panic!()
        };
        assert_eq!(u.len(), 2, "every entry, not only the first");
    }

    #[test]
    fn the_sample_is_a_valid_job_and_ids_are_path_safe() {
        assert!(mapping::parse_job(&sample(), "root").is_ok());
        assert_eq!(
            path_ids(&["a b".into(), "c/d".into(), "7".into()]),
            "a%20b,c%2Fd,7"
        );
    }
}
