//! `tasks`: XClarity Administrator's `tasks` command over XAPI tasks, with its option
//! letters (`-j -c -a -u -t -h`) and its job JSON (mapping in `xclarity.rs`).

use std::collections::HashSet;

use serde_json::{Value, json};

use super::client::{CliError, Client, Connection};
use super::task::{TaskRecord, all_tasks, by_ref, ref_of_uuid};
use super::xclarity::{self, JobUpdate, NewJob, STATE_KEY};

/// Subtasks deeper than this are not followed (a guard against a reference cycle).
const MAX_DEPTH: usize = 64;

#[derive(Debug, Clone, Copy, PartialEq, clap::ValueEnum)]
pub enum Action {
    /// Request cancellation of the -j jobs.
    Cancel,
    /// Delete the -j jobs (a running one is deleted when it finishes, as in XAPI).
    Delete,
    /// Create the job given with -u (see -t), subtasks included.
    Create,
    /// Set jobState and/or percentage of the jobs listed in -u.
    Update,
}

#[derive(Debug, Clone, clap::Args)]
pub struct TasksArgs {
    #[command(flatten)]
    pub conn: Connection,
    /// Job ids (task uuids), comma-separated.
    #[arg(
        short = 'j',
        long = "jobUID",
        value_delimiter = ',',
        value_name = "IDS"
    )]
    pub job_uid: Vec<String>,
    /// Include subtasks (children): true or false.
    #[arg(short = 'c', long = "children", value_name = "BOOL", default_value_t = true,
          action = clap::ArgAction::Set)]
    pub children: bool,
    /// cancel, delete, create or update.
    #[arg(short = 'a', long = "action", value_enum)]
    pub action: Option<Action>,
    /// JSON: a job for create, [{"jobUID":…,"jobState":…,"percentage":…}] for update.
    #[arg(short = 'u', long = "updateList", value_name = "JSON")]
    pub update_list: Option<String>,
    /// Print the template of a job for create, then exit.
    #[arg(short = 't', long = "template")]
    pub template: bool,
}

/// What a checked command line asks for; everything is validated before logging in.
enum Plan {
    Template,
    List(Vec<String>),
    Cancel(Vec<String>),
    Delete(Vec<String>),
    Create(Vec<NewJob>),
    Update(Vec<JobUpdate>),
}

/// Runs the command and returns what it prints on stdout.
pub fn run(args: &TasksArgs) -> Result<String, CliError> {
    let plan = plan(args)?;
    if let Plan::Template = plan {
        return Ok(pretty(&xclarity::template()));
    }
    let client = Client::connect(&args.conn)?;
    match plan {
        Plan::Template => unreachable!("handled above"),
        Plan::List(ids) => {
            let tasks = all_tasks(&client)?;
            let jobs = if ids.is_empty() {
                roots(&tasks)
                    .into_iter()
                    .map(|t| job_tree(t, &tasks, args.children))
                    .collect()
            } else {
                ids.iter()
                    .map(|id| Ok(job_tree(find(&tasks, id)?, &tasks, args.children)))
                    .collect::<Result<Vec<_>, CliError>>()?
            };
            Ok(pretty(&Value::Array(jobs)))
        }
        Plan::Cancel(ids) => {
            let refs = resolve(&client, &ids)?;
            for r in &refs {
                client.call("task.cancel", vec![json!(r)])?;
            }
            let tasks = all_tasks(&client)?;
            let jobs: Vec<Value> = ids
                .iter()
                .filter_map(|id| find(&tasks, id).ok())
                .map(|t| job_tree(t, &tasks, args.children))
                .collect();
            Ok(pretty(&Value::Array(jobs)))
        }
        Plan::Delete(ids) => {
            let refs = resolve(&client, &ids)?;
            for r in &refs {
                client.call("task.destroy", vec![json!(r)])?;
            }
            Ok(String::new())
        }
        Plan::Create(jobs) => {
            let mut made = Vec::new();
            let mut created = Vec::new();
            for job in &jobs {
                match create(&client, job, None, &mut made) {
                    Ok(r) => created.push(r),
                    Err(e) => return Err(partial(&client, e, &made)),
                }
            }
            let tasks = all_tasks(&client)?;
            let out: Vec<Value> = created
                .iter()
                .filter_map(|r| tasks.iter().find(|t| &t.r#ref == r))
                .map(|t| job_tree(t, &tasks, args.children))
                .collect();
            Ok(pretty(&Value::Array(out)))
        }
        Plan::Update(updates) => {
            let ids: Vec<String> = updates.iter().map(|u| u.uid.clone()).collect();
            let refs = resolve(&client, &ids)?;
            for (u, r) in updates.iter().zip(&refs) {
                update(&client, u, r)?;
            }
            let tasks = all_tasks(&client)?;
            let out: Vec<Value> = ids
                .iter()
                .filter_map(|id| find(&tasks, id).ok())
                .map(|t| job_tree(t, &tasks, args.children))
                .collect();
            Ok(pretty(&Value::Array(out)))
        }
    }
}

fn plan(args: &TasksArgs) -> Result<Plan, CliError> {
    if args.template {
        if args.action.is_some() || args.update_list.is_some() || !args.job_uid.is_empty() {
            return Err(CliError::msg("-t/--template takes no other option"));
        }
        return Ok(Plan::Template);
    }
    let ids: Vec<String> = args
        .job_uid
        .iter()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect();
    let json = || -> Result<Value, CliError> {
        let text = args.update_list.as_deref().ok_or_else(|| {
            CliError::msg("this action needs -u/--updateList <JSON> (see -t for create)")
        })?;
        serde_json::from_str(text)
            .map_err(|e| CliError::msg(format!("invalid JSON in --updateList: {e}")))
    };
    let no_update_list = || -> Result<(), CliError> {
        match args.update_list {
            Some(_) => Err(CliError::msg(
                "-u/--updateList is only for -a create and -a update",
            )),
            None => Ok(()),
        }
    };
    let need_ids = |what: &str| -> Result<Vec<String>, CliError> {
        if ids.is_empty() {
            Err(CliError::msg(format!("-a {what} needs -j/--jobUID <ids>")))
        } else {
            Ok(ids.clone())
        }
    };
    match args.action {
        None => {
            no_update_list()?;
            Ok(Plan::List(ids))
        }
        Some(Action::Cancel) => {
            no_update_list()?;
            Ok(Plan::Cancel(need_ids("cancel")?))
        }
        Some(Action::Delete) => {
            no_update_list()?;
            Ok(Plan::Delete(need_ids("delete")?))
        }
        Some(Action::Create) => {
            if !ids.is_empty() {
                return Err(CliError::msg("-a create takes -u, not -j"));
            }
            let v = json()?;
            Ok(Plan::Create(
                xclarity::parse_create(&v, &args.conn.user)
                    .map_err(|e| CliError::msg(format!("--updateList: {e}")))?,
            ))
        }
        Some(Action::Update) => {
            if !ids.is_empty() {
                return Err(CliError::msg(
                    "-a update takes the jobUIDs inside -u, not -j",
                ));
            }
            let v = json()?;
            Ok(Plan::Update(xclarity::parse_update(&v).map_err(|e| {
                CliError::msg(format!("--updateList: {e}"))
            })?))
        }
    }
}

/// Every id resolved before anything is changed, so that one unknown id changes nothing.
fn resolve(client: &Client, ids: &[String]) -> Result<Vec<String>, CliError> {
    ids.iter().map(|id| ref_of_uuid(client, id)).collect()
}

/// The task with this uuid, or the error the server gives for an unknown uuid.
fn find<'a>(tasks: &'a [TaskRecord], uuid: &str) -> Result<&'a TaskRecord, CliError> {
    tasks
        .iter()
        .find(|t| t.uuid == uuid)
        .ok_or_else(|| CliError::Api {
            code: "UUID_INVALID".into(),
            params: vec!["task".into(), uuid.into()],
        })
}

/// Tasks that are nobody's subtask (or whose parent is gone).
fn roots(tasks: &[TaskRecord]) -> Vec<&TaskRecord> {
    let refs: HashSet<&str> = tasks.iter().map(|t| t.r#ref.as_str()).collect();
    tasks
        .iter()
        .filter(|t| !t.has_parent() || !refs.contains(t.subtask_of.as_str()))
        .collect()
}

/// The job of `t`, with its subtasks as `children` when asked for.
fn job_tree(t: &TaskRecord, tasks: &[TaskRecord], children: bool) -> Value {
    let index = by_ref(tasks);
    fn go(
        t: &TaskRecord,
        index: &std::collections::HashMap<&str, &TaskRecord>,
        children: bool,
        depth: usize,
    ) -> Value {
        if !children {
            return xclarity::job_of_task(t, None);
        }
        // The parent's `subtasks` order is creation order (created times are whole
        // seconds, so they cannot order siblings made in the same second).
        let kids: Vec<&TaskRecord> = if depth >= MAX_DEPTH {
            vec![]
        } else {
            t.subtasks
                .iter()
                .filter_map(|r| index.get(r.as_str()).copied())
                .collect()
        };
        let mapped = kids
            .into_iter()
            .map(|k| go(k, index, children, depth + 1))
            .collect();
        xclarity::job_of_task(t, Some(mapped))
    }
    go(t, &index, children, 0)
}

/// Creates one job and its children (as XAPI subtasks: `task.create` inside the parent
/// task, xapi's `task-id` header); returns the new task's ref.
///
/// `made` collects every task created, so that a failure half-way can say what exists.
fn create(
    client: &Client,
    job: &NewJob,
    parent: Option<&str>,
    made: &mut Vec<String>,
) -> Result<String, CliError> {
    let r = client.call_in(
        "task.create",
        vec![json!(job.title), json!(job.summary)],
        parent,
    )?;
    let r = super::client::value_text(&r);
    made.push(r.clone());
    if !job.other_config.is_empty() {
        client.call(
            "task.set_other_config",
            vec![json!(r), json!(job.other_config)],
        )?;
    }
    if let Some(p) = job.progress {
        client.call("task.set_progress", vec![json!(r), json!(p)])?;
    }
    if let Some(state) = &job.state
        && state.status != "pending"
    {
        client.call("task.set_status", vec![json!(r), json!(state.status)])?;
    }
    for child in &job.children {
        create(client, child, Some(&r), made)?;
    }
    Ok(r)
}

/// A create that failed after creating some tasks: the error, plus their uuids (still one
/// line), so that the operator can finish or delete them.
fn partial(client: &Client, e: CliError, made: &[String]) -> CliError {
    if made.is_empty() {
        return e;
    }
    let uuids: Vec<String> = made
        .iter()
        .map(|r| {
            client
                .call("task.get_uuid", vec![json!(r)])
                .map(|u| super::client::value_text(&u))
                .unwrap_or_else(|_| r.clone())
        })
        .collect();
    CliError::msg(format!(
        "{e} (created before the failure: {})",
        uuids.join(",")
    ))
}

fn update(client: &Client, u: &JobUpdate, r: &str) -> Result<(), CliError> {
    if let Some(p) = u.progress {
        client.call("task.set_progress", vec![json!(r), json!(p)])?;
    }
    if let Some(state) = &u.state {
        // The finer state first, so that a watcher never sees a stale kept state with the
        // new status.
        client.call(
            "task.remove_from_other_config",
            vec![json!(r), json!(STATE_KEY)],
        )?;
        if state.keep {
            client.call(
                "task.add_to_other_config",
                vec![
                    json!(r),
                    json!(STATE_KEY),
                    json!(json!(state.job_state).to_string()),
                ],
            )?;
        }
        client.call("task.set_status", vec![json!(r), json!(state.status)])?;
    }
    Ok(())
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

    #[test]
    fn xclarity_option_letters() {
        let a = parse(&["-j", "a,b", "-c", "false"]).unwrap();
        assert_eq!(a.job_uid, vec!["a", "b"]);
        assert!(!a.children);
        assert!(parse(&[]).unwrap().children);
        let a = parse(&["--jobUID", "a", "--action", "cancel"]).unwrap();
        assert_eq!(a.action, Some(Action::Cancel));
        let a = parse(&["-a", "update", "-u", "[]"]).unwrap();
        assert_eq!(a.update_list.as_deref(), Some("[]"));
        assert!(parse(&["-t"]).unwrap().template);
        assert!(parse(&["-a", "explode"]).is_err());
        assert!(parse(&["-c", "maybe"]).is_err());
        let help = parse(&["-h"]).unwrap_err();
        assert_eq!(help.kind(), clap::error::ErrorKind::DisplayHelp);
    }

    #[test]
    fn plans_are_checked_before_login() {
        let err = |args: &[&str]| match plan(&parse(args).unwrap()) {
            Err(e) => e.to_string(),
            Ok(_) => panic!("{args:?} accepted"),
        };
        assert!(err(&["-a", "cancel"]).contains("needs -j"));
        assert!(err(&["-a", "create"]).contains("needs -u"));
        assert!(
            err(&["-a", "update", "-u", "{oops"]).starts_with("invalid JSON in --updateList: ")
        );
        assert!(err(&["-u", "[]"]).contains("only for"));
        assert!(err(&["-t", "-j", "x"]).contains("template"));
        assert!(
            err(&[
                "-a",
                "update",
                "-u",
                "[{\"jobUID\":\"x\",\"jobState\":\"Nope\"}]"
            ])
            .contains("unknown jobState")
        );
        assert!(matches!(plan(&parse(&["-t"]).unwrap()), Ok(Plan::Template)));
    }

    #[test]
    fn trees_nest_subtasks() {
        let t = |r: &str, u: &str, parent: &str, subs: &[&str]| TaskRecord {
            r#ref: r.into(),
            uuid: u.into(),
            status: "pending".into(),
            subtask_of: parent.into(),
            subtasks: subs.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        };
        let tasks = vec![
            t("R1", "u1", "OpaqueRef:NULL", &["R2"]),
            t("R2", "u2", "R1", &[]),
            t("R3", "u3", "R-gone", &[]),
        ];
        let rs: Vec<&str> = roots(&tasks).iter().map(|t| t.uuid.as_str()).collect();
        assert_eq!(rs, vec!["u1", "u3"]);
        let tree = job_tree(&tasks[0], &tasks, true);
        assert_eq!(tree["children"][0]["jobUID"], "u2");
        assert!(job_tree(&tasks[0], &tasks, false).get("children").is_none());
        assert_eq!(
            find(&tasks, "nope").unwrap_err().to_string(),
            "UUID_INVALID task nope"
        );
    }
}
