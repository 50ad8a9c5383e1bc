//! SessionService and Sessions: Redfish login (`POST`), the caller's session, logout
//! (`DELETE`). Each Redfish session is an XAPI session (see [`super::auth`]).
//!
//! XAPI offers clients no way to list all sessions (`session` has no `get_all`), so the
//! Sessions collection lists the session the caller authenticated with, when it is a
//! token session; Basic requests see an empty collection (they have no Redfish session).
//! A session can be read or deleted by its own user, or by an Administrator
//! (root or pool-admin) who knows its Id.

use std::sync::Arc;

use hyper::StatusCode;
use hyper::header::{self, HeaderName};
use serde_json::{Value as Json, json};

use super::auth::{self, Caller};
use super::protocol::{self, Answer};
use super::tasks::redfish_date;
use crate::api::dispatch::Service;
use crate::api::gc::Retention;
use crate::face::xapi::{field, xapi};
use crate::wire::value::Value;

pub const SERVICE: &str = "/redfish/v1/SessionService";
pub const SESSIONS: &str = "/redfish/v1/SessionService/Sessions";

fn text(rec: &Value, name: &str) -> String {
    match field(rec, name) {
        Some(Value::String(s)) | Some(Value::DateTime(s)) => s.clone(),
        _ => String::new(),
    }
}

pub fn service_json(retention: &Retention) -> Json {
    json!({
        "@odata.type": "#SessionService.v1_2_0.SessionService",
        "@odata.id": SERVICE,
        "Id": "SessionService",
        "Name": "Session Service",
        "Description": "XAPI sessions",
        "ServiceEnabled": true,
        "SessionTimeout": retention.session_timeout.clamp(30, 86_400),
        "Status": {"State": "Enabled", "Health": "OK"},
        "Sessions": {"@odata.id": SESSIONS},
    })
}

/// A Session resource from an XAPI session record.
pub fn session_json(rec: &Value) -> Json {
    let id = text(rec, "uuid");
    let mut j = json!({
        "@odata.type": "#Session.v1_8_0.Session",
        "@odata.id": format!("{SESSIONS}/{id}"),
        "Id": id,
        "Name": "User Session",
        "UserName": text(rec, "auth_user_name"),
        "SessionType": "Redfish",
    });
    if let Some(t) = redfish_date(&text(rec, "validation_time")) {
        j["CreatedTime"] = json!(t);
    }
    j
}

/// `GET /Sessions`: the caller's own token session.
pub fn collection(caller: &Caller) -> Answer {
    let mut members = Vec::new();
    if !caller.basic {
        members.push(json!({"@odata.id": format!("{SESSIONS}/{}", text(&caller.record, "uuid"))}));
    }
    Answer::ok(json!({
        "@odata.type": "#SessionCollection.SessionCollection",
        "@odata.id": SESSIONS,
        "Name": "Session Collection",
        "Members@odata.count": members.len(),
        "Members": members,
    }))
}

/// `POST /Sessions` (or `/Sessions/Members`) with `{"UserName", "Password"}`: logs in
/// through `session.login_with_password`; 201 with `X-Auth-Token` and `Location`.
pub async fn create(svc: &Arc<Service>, body: &[u8]) -> Answer {
    let (user, password) = match credentials(body) {
        Ok(c) => c,
        Err(answer) => return answer,
    };
    let token = match auth::login(svc, &user, &password, auth::ORIGINATOR_SESSION).await {
        Ok(t) => t,
        Err(e) => return protocol::from_api(SESSIONS, &e),
    };
    let caller = match auth::check(svc, &token, false).await {
        Ok(c) => c,
        Err(e) => return protocol::from_api(SESSIONS, &e),
    };
    let body = session_json(&caller.record);
    let location = body["@odata.id"].as_str().unwrap_or_default().to_string();
    Answer::json(StatusCode::CREATED, body)
        .header(header::LOCATION, location)
        .header(HeaderName::from_static("x-auth-token"), token)
}

/// `UserName` and `Password` from a `POST /Sessions` body, or the 400 answer saying what is
/// wrong with it (the password's value is never echoed).
pub fn credentials(body: &[u8]) -> Result<(String, String), Answer> {
    let Ok(j) = serde_json::from_slice::<Json>(body) else {
        return Err(protocol::error(
            StatusCode::BAD_REQUEST,
            "MalformedJSON",
            &[],
        ));
    };
    let mut creds = Vec::new();
    for name in ["UserName", "Password"] {
        match j.get(name) {
            Some(Json::String(s)) => creds.push(s.clone()),
            None => {
                return Err(protocol::error(
                    StatusCode::BAD_REQUEST,
                    "PropertyMissing",
                    &[name],
                ));
            }
            Some(other) => {
                let shown = if name == "Password" {
                    "(hidden)".to_string()
                } else {
                    other.to_string()
                };
                return Err(protocol::error(
                    StatusCode::BAD_REQUEST,
                    "PropertyValueTypeError",
                    &[&shown, name],
                ));
            }
        }
    }
    let password = creds.pop().unwrap_or_default();
    let user = creds.pop().unwrap_or_default();
    Ok((user, password))
}

/// The session with Redfish Id (= XAPI uuid) `id`, if the caller may see it.
async fn find(svc: &Arc<Service>, caller: &Caller, id: &str) -> Result<(String, Value), Answer> {
    let uri = format!("{SESSIONS}/{id}");
    let session = Value::str(&caller.session_ref);
    let r = xapi(
        svc,
        "session.get_by_uuid",
        vec![session.clone(), Value::str(id)],
    )
    .await
    .map_err(|e| protocol::from_api(&uri, &e))?;
    let rec = xapi(svc, "session.get_record", vec![session, r.clone()])
        .await
        .map_err(|e| protocol::from_api(&uri, &e))?;
    let mine = text(&rec, "auth_user_name") == caller.user_name();
    if !mine && !caller.is_admin() {
        return Err(protocol::error(
            StatusCode::FORBIDDEN,
            "InsufficientPrivilege",
            &[],
        ));
    }
    Ok((r.as_str().unwrap_or_default().to_string(), rec))
}

pub async fn get(svc: &Arc<Service>, caller: &Caller, id: &str) -> Answer {
    match find(svc, caller, id).await {
        Ok((_, rec)) => Answer::ok(session_json(&rec)),
        Err(a) => a,
    }
}

/// `DELETE /Sessions/{id}`: `session.logout` of that session (logging out is done *with*
/// the session, as in XAPI).
pub async fn delete(svc: &Arc<Service>, caller: &Caller, id: &str) -> Answer {
    let (r, _) = match find(svc, caller, id).await {
        Ok(x) => x,
        Err(a) => return a,
    };
    match auth::logout(svc, &r).await {
        Ok(()) => Answer::empty(StatusCode::NO_CONTENT),
        Err(e) => protocol::from_api(&format!("{SESSIONS}/{id}"), &e),
    }
}
