//! The Redfish face: DMTF's TaskService (with SessionService and a read-only
//! AccountService) over the same task database, under `/redfish/v1`.
//!
//! One engine, several faces: every read and write goes through the XAPI dispatch
//! pipeline ([`xapi`]) with the caller's XAPI session, so RBAC, the ownership rule,
//! events and the GC apply exactly as for XML-RPC and JSON-RPC clients, and a change made
//! through either face is visible to the other at once. See `docs/redfish.md`.
//!
//! Files, one concern each: [`routes`] (paths and methods), [`protocol`] (headers,
//! errors, XAPI error → HTTP), [`auth`] (tokens, Basic), [`sessions`], [`tasks`] (the
//! task mapping and monitors), [`service`] (service root, `$metadata`, roles).

mod auth;
pub mod protocol;
mod routes;
mod service;
pub mod sessions;
pub mod tasks;

use std::sync::Arc;

use bytes::Bytes;
use futures_util::future::BoxFuture;
use http_body_util::Full;
use hyper::{Request, Response, StatusCode};

use crate::api::dispatch::Service;
use crate::face::{BodyError, Conn, Face};
use crate::server::Limits;
use protocol::Answer;
use routes::Route;

/// This face, for the server's list of faces.
pub const FACE: Face = Face {
    name: "redfish",
    owns: |_, path, _| owns(path),
    handle: |svc, limits, req, _| -> BoxFuture<'_, Response<Full<Bytes>>> {
        Box::pin(handle(svc, limits, req))
    },
    body_error,
    head_too_large,
};

/// Whether `path` belongs to this face (`/redfish` and everything under `/redfish/`).
pub fn owns(path: &str) -> bool {
    path == "/redfish" || path.starts_with("/redfish/")
}

/// A body that could not be read: 413 with Base's `PayloadTooLarge`, or 408 (or 400)
/// with `GeneralError` (Base has no message for a body sent too slowly or cut off).
fn body_error(e: &BodyError, _: &Limits, _: Conn) -> Response<Full<Bytes>> {
    let (status, id) = body_error_message(e);
    protocol::finish(protocol::error(status, id, &[]), false, None)
}

fn body_error_message(e: &BodyError) -> (StatusCode, &'static str) {
    match e {
        BodyError::TooLarge => (StatusCode::PAYLOAD_TOO_LARGE, "PayloadTooLarge"),
        BodyError::Timeout => (StatusCode::REQUEST_TIMEOUT, "GeneralError"),
        BodyError::Broken(_) => (StatusCode::BAD_REQUEST, "GeneralError"),
    }
}

/// A request head over the server's limit: 431 with Base's `GeneralError` (the registry
/// has no message for a head too large; `HeaderInvalid` would name one header, and the
/// limit is on them all).
fn head_too_large(_: usize, _: &Limits, _: Conn) -> Response<Full<Bytes>> {
    let refused = protocol::error(
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
        "GeneralError",
        &[],
    );
    protocol::finish(refused, false, None)
}

/// Answers one Redfish request. Never panics on client input and never answers 500 for
/// a client's mistake.
pub async fn handle(
    svc: Arc<Service>,
    limits: &Limits,
    req: Request<Bytes>,
) -> Response<Full<Bytes>> {
    let head = req.method() == hyper::Method::HEAD;
    let conditional = matches!(*req.method(), hyper::Method::GET | hyper::Method::HEAD);
    let if_none_match = req
        .headers()
        .get(hyper::header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .filter(|_| conditional)
        .map(str::to_string);
    // The head's parts are borrowed from here on (copying the path and the method into
    // `String`s cost two allocations per request); the body is moved out of the way.
    let (parts, body) = req.into_parts();
    let mut answer = answer(&svc, limits, &parts, body).await;
    // Only a 401 asks whether a browser sent the request: the hot GETs never look.
    if answer.status == StatusCode::UNAUTHORIZED && protocol::from_browser(&parts.headers) {
        answer = protocol::without_challenge(answer);
    }
    protocol::finish(answer, head, if_none_match.as_deref())
}

async fn answer(
    svc: &Arc<Service>,
    _: &Limits,
    parts: &hyper::http::request::Parts,
    body: Bytes,
) -> Answer {
    let path = parts.uri.path();
    let method = parts.method.as_str();
    let Some(route) = Route::parse(path) else {
        return protocol::not_found(path);
    };
    // DSP0266: a request for an OData version we do not serve is refused with 412.
    if let Some(v) = parts
        .headers
        .get(const { hyper::header::HeaderName::from_static("odata-version") })
        && v.as_bytes() != b"4.0"
    {
        return protocol::error(
            StatusCode::PRECONDITION_FAILED,
            "HeaderInvalid",
            &["OData-Version"],
        );
    }
    // No `$` query options are implemented ($top, $skip, $expand, $select, $filter…):
    // 501, as DSP0266 asks for unsupported ones. Other parameters are ignored.
    if let Some(q) = parts.uri.query()
        && let Some(opt) = q
            .split('&')
            .map(|kv| kv.split('=').next().unwrap_or_default())
            .find(|k| k.starts_with('$') || k.starts_with("%24"))
    {
        return protocol::error(
            StatusCode::NOT_IMPLEMENTED,
            "QueryParameterUnsupported",
            &[opt],
        );
    }
    let effective = if method == "HEAD" { "GET" } else { method };
    if !route.allows(method) {
        return protocol::method_not_allowed(route.allow());
    }
    // A GET of a task with a token: the token is checked by the task's read (one pass
    // through the pipeline, `dispatch::task_by_uuid`, instead of the check and then the
    // read), a token it refuses answered 401 as the check's would be.
    if let Route::Task(id) = &route
        && effective == "GET"
        && let Some(token) = auth::token(&parts.headers)
    {
        return with_allow(tasks::get_task_by_token(svc, token, id, path).await, &route);
    }
    // A body must be declared JSON, before any credential is looked at: a browser
    // sends another site's form or `text/plain` POST with its cached Basic credentials
    // (see `protocol::is_json_type`). `route.allows` admits only POST with a body.
    if matches!(effective, "POST" | "PATCH" | "PUT") && !protocol::is_json_type(&parts.headers) {
        return protocol::not_json();
    }
    let caller = if route.is_public(method) {
        None
    } else {
        match auth::authenticate(svc, &parts.headers).await {
            Ok(c) => Some(c),
            Err(refused) => return refused,
        }
    };
    // `route.allows` above admits POST only on the login URIs and the action, and
    // DELETE only on sessions, tasks and monitors.
    let a = match (effective, caller.as_ref()) {
        ("GET", caller) => get(svc, &route, caller, path).await,
        ("POST", _) if matches!(route, Route::Sessions | Route::SessionsMembers) => {
            sessions::create(svc, &body).await
        }
        ("POST", Some(caller)) if route == Route::DeleteAllCompletedTasks => {
            tasks::delete_all_completed(svc, caller).await
        }
        ("DELETE", Some(caller)) => delete(svc, &route, caller, path).await,
        _ => protocol::method_not_allowed(route.allow()),
    };
    with_allow(a, &route)
}

/// A success answers with the methods its resource allows.
fn with_allow(mut a: Answer, r: &Route) -> Answer {
    if a.status.is_success() {
        a.allow = Some(r.allow_value());
    }
    a
}

async fn get(
    svc: &Arc<Service>,
    route: &Route,
    caller: Option<&auth::Caller>,
    uri: &str,
) -> Answer {
    let Some(caller) = caller else {
        return match route {
            Route::Versions => service::versions(),
            Route::ServiceRoot => service::service_root(),
            Route::OData => service::odata(),
            Route::Metadata => service::metadata(),
            _ => protocol::unauthorized(),
        };
    };
    match route {
        Route::SessionService => Answer::ok(sessions::service_json(&svc.retention)),
        Route::Sessions => sessions::collection(caller),
        Route::Session(id) => sessions::get(svc, caller, id).await,
        Route::AccountService => service::account_service(),
        Route::Roles => service::roles(),
        Route::Role(id) => service::role(id).unwrap_or_else(|| protocol::not_found(uri)),
        Route::TaskService => Answer::ok(tasks::service_json(&svc.retention)),
        Route::Tasks => tasks::get_collection(svc, caller).await,
        Route::Task(id) => tasks::get_task(svc, caller, id, None, uri).await,
        Route::SubTasks(id) => tasks::get_subtasks(svc, caller, id, uri).await,
        Route::SubTask(root, id) => tasks::get_task(svc, caller, id, Some(root), uri).await,
        Route::Monitor(id) => tasks::get_monitor(svc, caller, id, uri, tasks::monitor_answer).await,
        Route::CancelMonitor(id) => {
            tasks::get_monitor(svc, caller, id, uri, tasks::cancel_monitor_answer).await
        }
        _ => protocol::not_found(uri),
    }
}

async fn delete(svc: &Arc<Service>, route: &Route, caller: &auth::Caller, uri: &str) -> Answer {
    match route {
        Route::Session(id) => sessions::delete(svc, caller, id).await,
        Route::Task(id) => tasks::delete(svc, caller, id, None, false, uri).await,
        Route::Monitor(id) => tasks::delete(svc, caller, id, None, true, uri).await,
        Route::SubTask(root, id) => tasks::delete(svc, caller, id, Some(root), false, uri).await,
        _ => protocol::method_not_allowed(route.allow()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_body_too_large_is_payload_too_large() {
        assert_eq!(
            body_error_message(&BodyError::TooLarge),
            (StatusCode::PAYLOAD_TOO_LARGE, "PayloadTooLarge")
        );
        let msg = protocol::base_message("PayloadTooLarge", &[]);
        assert_eq!(
            msg["Message"],
            "The supplied payload exceeds the maximum size supported by the service."
        );
        assert_eq!(msg["MessageArgs"], serde_json::json!([]));
    }
}
