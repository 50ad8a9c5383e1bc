//! What a client sends, checked and translated into XAPI terms before anything is
//! created or changed: the body of `POST /tasks` (a job tree) and of `PUT /tasks/{ids}`.
//! Every message names the field, with its place in the tree.

use std::collections::BTreeMap;

use serde_json::{Map, Value as Json, json};

use super::{
    Invalid, Kind, MAX_DEPTH, MAX_JOBS, PREFIX, STATE_KEY, SUMMARY_KEY, StateChange, TITLE_KEY,
    kind, parse_job_state, progress,
};

/// The fields `PUT /tasks/{id}` may change: the state and percentage (pylxca's update)
/// and LXCA's documented cancel callback.
const UPDATABLE: &[&str] = &[
    "jobUID",
    "jobState",
    "percentage",
    "cancelURL",
    "cancelRESTMethod",
    "cancelRESTBody",
    "expirationTimeOut",
];

/// Checks one stored field's value against its kind.
fn check(field: &str, v: &Json) -> Result<(), Invalid> {
    let ok = match kind(field) {
        None | Some(Kind::Server) | Some(Kind::Native) => true,
        Some(Kind::Text) => v.is_string(),
        Some(Kind::TextOrObject) => v.is_string() || v.is_object(),
        Some(Kind::List) => v.is_array(),
        Some(Kind::Bool) => v.is_boolean(),
        Some(Kind::Timeout) => v.as_i64().is_some_and(|t| t >= -1),
        Some(Kind::Weight) => v.as_f64().is_some_and(|w| w >= 0.0),
        Some(Kind::Method) => v.as_str().is_some_and(|m| {
            m.is_empty()
                || ["GET", "POST", "PUT", "DELETE"].contains(&m.to_ascii_uppercase().as_str())
        }),
    };
    if ok {
        return Ok(());
    }
    let wanted = match kind(field) {
        Some(Kind::Text) => "a string",
        Some(Kind::TextOrObject) => "an object or a string",
        Some(Kind::List) => "an array",
        Some(Kind::Bool) => "true or false",
        Some(Kind::Timeout) => "a whole number of seconds (-1 for never)",
        Some(Kind::Weight) => "a number from 0",
        _ => "one of GET, POST, PUT, DELETE",
    };
    Err(Invalid(format!("{field}: must be {wanted}, not {v}")))
}

/// The cancel-callback rule of LXCA (seed 000): a `cancelURL` needs a
/// `cancelRESTMethod`, and a PUT or POST callback needs a `cancelRESTBody`.
fn check_callback(obj: &Map<String, Json>) -> Result<(), Invalid> {
    let text = |k: &str| obj.get(k).and_then(Json::as_str).unwrap_or_default();
    if !text("cancelURL").is_empty() && text("cancelRESTMethod").is_empty() {
        return Err(Invalid(
            "cancelRESTMethod: is required with a cancelURL".into(),
        ));
    }
    let method = text("cancelRESTMethod").to_ascii_uppercase();
    let body = obj.get("cancelRESTBody").filter(|b| !b.is_null());
    if (method == "PUT" || method == "POST") && body.is_none() {
        return Err(Invalid(format!(
            "cancelRESTBody: is required when cancelRESTMethod is {method}"
        )));
    }
    Ok(())
}

/// A job to create, checked and translated into XAPI terms before any call is made.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct NewJob {
    /// `task.create`'s label and description.
    pub label: String,
    pub description: String,
    pub state: Option<StateChange>,
    pub progress: Option<f64>,
    /// The `xclarity:` keys (JSON text values), the kept state included.
    pub other_config: BTreeMap<String, String>,
    pub children: Vec<NewJob>,
}

impl NewJob {
    /// The job and all its descendants.
    pub fn count(&self) -> usize {
        1 + self.children.iter().map(NewJob::count).sum::<usize>()
    }
}

/// Parses the body of `POST /tasks` (pylxca's `t=`, seed 000's `-t`/`-u` object): one
/// job object with its `children` nested, at most [`MAX_DEPTH`] deep and [`MAX_JOBS`] in
/// all. `createdBy` defaults to `user`. Everything is checked before anything is created.
pub fn parse_job(v: &Json, user: &str) -> Result<NewJob, Invalid> {
    if !v.is_object() {
        return Err(Invalid(format!(
            "the job must be a JSON object (with jobTitle, jobState, children, …), not {}",
            short(v)
        )));
    }
    let mut count = 0;
    parse_node(v, user, "", 1, &mut count)
}

/// A value as it can be quoted in a message: JSON, cut to a readable length.
fn short(v: &Json) -> String {
    let s = v.to_string();
    if s.chars().count() > 60 {
        format!("{}…", s.chars().take(60).collect::<String>())
    } else {
        s
    }
}

fn parse_node(
    v: &Json,
    user: &str,
    path: &str,
    depth: usize,
    count: &mut usize,
) -> Result<NewJob, Invalid> {
    let at = |e: Invalid| Invalid(format!("{path}{}", e.0));
    let Json::Object(obj) = v else {
        return Err(Invalid(format!(
            "{}: a job must be a JSON object, not {}",
            path.trim_end_matches('.'),
            short(v)
        )));
    };
    *count += 1;
    if *count > MAX_JOBS {
        return Err(Invalid(format!(
            "too many jobs in one request (at most {MAX_JOBS}, children included)"
        )));
    }
    if depth > MAX_DEPTH {
        return Err(Invalid(format!(
            "{}: children nested too deep (at most {MAX_DEPTH} levels)",
            path.trim_end_matches('.')
        )));
    }
    let text = |k: &str| -> Result<Option<String>, Invalid> {
        match obj.get(k) {
            None | Some(Json::Null) => Ok(None),
            Some(Json::String(s)) => Ok(Some(s.clone())),
            Some(other) => Err(at(Invalid(format!(
                "{k}: must be a string, not {}",
                short(other)
            )))),
        }
    };
    let mut job = NewJob::default();
    for (k, v) in obj {
        if k.is_empty() {
            return Err(at(Invalid("a field name must not be empty".into())));
        }
        if v.is_null() || matches!(kind(k), Some(Kind::Server | Kind::Native)) {
            continue;
        }
        check(k, v).map_err(at)?;
        job.other_config
            .insert(format!("{PREFIX}{k}"), v.to_string());
    }
    check_callback(obj).map_err(at)?;

    // jobTitle → name_label; an empty title with a key: the key as the label, and the
    // empty title kept so that it comes back as it was sent.
    let title = text("jobTitle")?;
    let key = text("jobTitleKey")?.unwrap_or_default();
    job.label = match title.as_deref() {
        Some(t) if !t.is_empty() => t.to_string(),
        _ => key,
    };
    if job.label != title.clone().unwrap_or_default() {
        job.other_config.insert(
            TITLE_KEY.into(),
            json!(title.unwrap_or_default()).to_string(),
        );
    }
    // jobSummary → name_description: a string as it is; an object's descriptionText for
    // XAPI readers, and the whole object kept.
    match obj.get("jobSummary") {
        None | Some(Json::Null) => {}
        Some(Json::String(s)) => job.description = s.clone(),
        Some(summary @ Json::Object(o)) => {
            job.description = o.get("descriptionText").map(plain_text).unwrap_or_default();
            job.other_config
                .insert(SUMMARY_KEY.into(), summary.to_string());
        }
        Some(other) => {
            return Err(at(Invalid(format!(
                "jobSummary: must be an object or a string, not {}",
                short(other)
            ))));
        }
    }
    match obj.get("jobState") {
        None | Some(Json::Null) => {}
        Some(Json::String(s)) => {
            let c = parse_job_state(s).map_err(at)?;
            if c.keep {
                job.other_config
                    .insert(STATE_KEY.into(), json!(c.job_state).to_string());
            }
            job.state = Some(c);
        }
        Some(other) => {
            return Err(at(Invalid(format!(
                "jobState: must be a string, not {}",
                short(other)
            ))));
        }
    }
    if let Some(p) = obj.get("percentage").filter(|p| !p.is_null()) {
        job.progress = Some(progress(p).map_err(at)?);
    }
    job.other_config
        .entry(format!("{PREFIX}createdBy"))
        .or_insert_with(|| json!(user).to_string());
    match obj.get("children") {
        None | Some(Json::Null) => {}
        Some(Json::Array(children)) => {
            for (i, c) in children.iter().enumerate() {
                let here = format!("{path}children[{i}].");
                job.children
                    .push(parse_node(c, user, &here, depth + 1, count)?);
            }
        }
        Some(other) => {
            return Err(at(Invalid(format!(
                "children: must be an array of jobs, not {}",
                short(other)
            ))));
        }
    }
    Ok(job)
}

/// LXCA's formatted text (a string, or an array of `{text, format, link}` pieces) as
/// plain text.
fn plain_text(v: &Json) -> String {
    match v {
        Json::String(s) => s.clone(),
        Json::Array(parts) => parts
            .iter()
            .map(|p| match p {
                Json::String(s) => s.clone(),
                other => other
                    .get("text")
                    .and_then(Json::as_str)
                    .unwrap_or_default()
                    .to_string(),
            })
            .collect(),
        _ => String::new(),
    }
}

/// What `PUT /tasks/{id}` changes on each job.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct JobUpdate {
    pub state: Option<StateChange>,
    pub progress: Option<f64>,
    /// Cancel-callback fields to store: (`xclarity:` key, JSON text).
    pub set: Vec<(String, String)>,
}

/// Parses the body of `PUT /tasks/{ids}`: pylxca's update `{"jobUID", "jobState",
/// "percentage"}` and LXCA's cancel callback (`cancelURL`, `cancelRESTMethod`,
/// `cancelRESTBody`, `expirationTimeOut`), any subset but not none. A `jobUID` in the
/// body must be one of the `ids` of the path.
pub fn parse_update(v: &Json, ids: &[String]) -> Result<JobUpdate, Invalid> {
    let Json::Object(obj) = v else {
        return Err(Invalid(format!(
            "the update must be a JSON object (jobState, percentage, cancelURL, …), not {}",
            short(v)
        )));
    };
    if let Some(k) = obj.keys().find(|k| !UPDATABLE.contains(&k.as_str())) {
        return Err(Invalid(format!(
            "{k}: cannot be changed (an update changes {})",
            UPDATABLE[1..].join(", ")
        )));
    }
    match obj.get("jobUID") {
        None | Some(Json::Null) => {}
        Some(Json::String(u)) if ids.iter().any(|i| i == u.trim()) => {}
        Some(other) => {
            return Err(Invalid(format!(
                "jobUID: {} is not the job of the request's path ({})",
                short(other),
                ids.join(",")
            )));
        }
    }
    let mut update = JobUpdate::default();
    match obj.get("jobState") {
        None | Some(Json::Null) => {}
        Some(Json::String(s)) => update.state = Some(parse_job_state(s)?),
        Some(other) => {
            return Err(Invalid(format!(
                "jobState: must be a string, not {}",
                short(other)
            )));
        }
    }
    if let Some(p) = obj.get("percentage").filter(|p| !p.is_null()) {
        update.progress = Some(progress(p)?);
    }
    for k in &UPDATABLE[3..] {
        if let Some(v) = obj.get(*k).filter(|v| !v.is_null()) {
            check(k, v)?;
            update.set.push((format!("{PREFIX}{k}"), v.to_string()));
        }
    }
    check_callback(obj)?;
    if update.state.is_none() && update.progress.is_none() && update.set.is_empty() {
        return Err(Invalid(
            "nothing to update (give jobState, percentage or a cancel callback)".into(),
        ));
    }
    Ok(update)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xclarity::mapping::tests::task;
    use crate::xclarity::mapping::{TaskRecord, job_json};

    /// What the server stores for `job`, read back as a task.
    fn stored_task(job: &NewJob, status: &str) -> TaskRecord {
        TaskRecord {
            name_label: job.label.clone(),
            name_description: job.description.clone(),
            progress: job.progress.unwrap_or(0.0),
            other_config: job
                .other_config
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            ..task(status)
        }
    }

    #[test]
    fn every_field_round_trips() {
        let input = json!({
            "jobTitle": "", "jobTitleKey": "com.lenovo.job.title", "jobTitleBundle": "com.lenovo.bundle",
            "jobSummary": {"descriptionText": [{"text": "Deploy "}, {"text": "rack 4"}],
                           "descriptionBundleKey": "k", "severity": "Informational"},
            "jobState": "CompleteWithWarning", "percentage": 30, "createdBy": "alice",
            "targetUUID": "T-1", "jobCategory": "OSDeployment", "startDate": "2024-01-01T00:00:00Z",
            "logs": [{"logText": "", "logDate": "", "args": [], "severity": ""}],
            "args": ["a", "b"], "cancelURL": "/x", "cancelRESTMethod": "PUT",
            "cancelRESTBody": {"stop": true}, "expirationTimeOut": -1, "customUid": "c-7",
            "predefinedUid": "p", "rebootPersistet": false, "stoppedBy": "", "uid": "9",
            "weight": 2.5, "someFutureField": {"x": 1},
            "jobUID": "ignored", "createDate": "ignored", "endDate": "ignored",
            "children": [{"jobTitle": "step", "jobState": "Validating"}]
        });
        let job = parse_job(&input, "root").unwrap();
        assert_eq!(job.label, "com.lenovo.job.title");
        assert_eq!(job.description, "Deploy rack 4");
        assert_eq!(job.state.unwrap().status, "success");
        assert_eq!(job.progress, Some(0.3));
        assert_eq!(job.children.len(), 1);
        assert_eq!(
            job.children[0].other_config["xclarity:createdBy"],
            "\"root\""
        );
        for k in ["jobUID", "createDate", "endDate", "children", "percentage"] {
            assert!(
                !job.other_config.contains_key(&format!("{PREFIX}{k}")),
                "{k}"
            );
        }
        assert_eq!(job.other_config[STATE_KEY], "\"CompleteWithWarning\"");
        assert_eq!(job.other_config[TITLE_KEY], "\"\"");
        let out = job_json(&stored_task(&job, "success"), Some(vec![]));
        let Json::Object(inp) = &input else { panic!() };
        for (k, v) in inp {
            if ["jobUID", "createDate", "endDate", "children"].contains(&k.as_str()) {
                continue;
            }
            assert_eq!(&out[k], v, "{k}");
        }
        assert_eq!(out["jobUID"], "u-1");
        assert_eq!(out["createDate"], "2024-01-01T12:00:00Z");
        assert_eq!(out["endDate"], "2024-01-01T12:05:00Z");
        assert_eq!(out["children"], json!([]));
    }

    #[test]
    fn bad_jobs_are_explained_with_their_place_in_the_tree() {
        let e = |v: Json| parse_job(&v, "root").unwrap_err().0;
        assert!(
            e(Json::Null).contains("must be a JSON object"),
            "{}",
            e(Json::Null)
        );
        assert!(e(json!([])).contains("must be a JSON object"));
        assert!(e(json!({"jobTitle": 1})).starts_with("jobTitle: must be a string"));
        assert!(e(json!({"percentage": 200})).contains("0 to 100"));
        assert!(e(json!({"jobSummary": 3})).starts_with("jobSummary:"));
        assert!(e(json!({"logs": "x"})).starts_with("logs: must be an array"));
        assert!(e(json!({"rebootPersistent": "yes"})).contains("true or false"));
        assert!(e(json!({"expirationTimeOut": -5})).contains("-1 for never"));
        assert!(e(json!({"cancelRESTMethod": "PATCH"})).contains("one of GET"));
        assert!(e(json!({"cancelURL": "/c"})).contains("cancelRESTMethod: is required"));
        assert!(
            e(json!({"cancelURL": "/c", "cancelRESTMethod": "POST"})).contains("cancelRESTBody")
        );
        assert!(e(json!({"children": {}})).starts_with("children: must be an array"));
        let third = e(json!({"children": [{}, {}, {"jobState": "Done"}]}));
        assert!(
            third.starts_with("children[2].jobState: unknown state"),
            "{third}"
        );
        let deep = e(json!({"children": [{"children": [{"children": [5]}]}]}));
        assert!(
            deep.starts_with("children[0].children[0].children[0]: a job must be"),
            "{deep}"
        );
    }

    #[test]
    fn trees_are_bounded() {
        let mut v = json!({"jobTitle": "leaf"});
        for _ in 0..MAX_DEPTH - 1 {
            v = json!({"children": [v]});
        }
        assert!(parse_job(&v, "u").is_ok());
        let too_deep = json!({"children": [v]});
        assert!(
            parse_job(&too_deep, "u")
                .unwrap_err()
                .0
                .contains("too deep")
        );
        let wide = json!({"children": vec![json!({}); MAX_JOBS]});
        assert!(
            parse_job(&wide, "u")
                .unwrap_err()
                .0
                .contains("too many jobs")
        );
        let ok = json!({"children": vec![json!({}); MAX_JOBS - 1]});
        assert_eq!(parse_job(&ok, "u").unwrap().count(), MAX_JOBS);
    }

    #[test]
    fn updates() {
        let ids = vec!["127".to_string()];
        let u = parse_update(
            &json!({"jobUID": "127", "jobState": "Complete", "percentage": 100}),
            &ids,
        )
        .unwrap();
        assert_eq!(u.state.unwrap().status, "success");
        assert_eq!(u.progress, Some(1.0));
        let cb = parse_update(
            &json!({"cancelURL": "/stop", "cancelRESTMethod": "DELETE", "expirationTimeOut": 60}),
            &ids,
        )
        .unwrap();
        assert_eq!(cb.set.len(), 3);
        assert!(
            cb.set
                .contains(&("xclarity:cancelURL".into(), "\"/stop\"".into()))
        );
        let e = |v: Json| parse_update(&v, &ids).unwrap_err().0;
        assert!(e(Json::Null).contains("must be a JSON object"));
        assert!(e(json!({"jobUID": "127"})).contains("nothing to update"));
        assert!(e(json!({"jobUID": "140", "percentage": 5})).contains("not the job"));
        assert!(e(json!({"jobTitle": "x"})).starts_with("jobTitle: cannot be changed"));
        assert!(e(json!({"jobState": "Nope"})).contains("unknown state"));
        assert!(e(json!({"percentage": 101})).contains("0 to 100"));
        assert!(e(json!({"expirationTimeOut": "soon"})).contains("whole number"));
    }
}
