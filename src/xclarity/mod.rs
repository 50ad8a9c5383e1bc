//! The XClarity face: Lenovo XClarity Administrator's (LXCA) REST API for jobs, as
//! unmodified pylxca 4.2.0 uses it (`connect`, `tasks`, `disconnect`), plus LXCA's
//! `csvRequest` job monitor, at LXCA's paths at the root (`/sessions`, `/aicc`, `/tasks`,
//! `/csvRequest/jobs/{id}`). See `docs/xclarity.md`.
//!
//! One engine, several faces: every read and write goes through the XAPI dispatch
//! pipeline ([`xapi`]) with the caller's XAPI session (an LXCA session *is* one), so
//! users, RBAC, the ownership rule, events, durability and the GC apply exactly as for
//! XML-RPC, and a job made here is a task to every other client at once.
//!
//! Files, one concern each: [`routes`] (paths, methods, what this face owns),
//! [`protocol`] (message bodies, cookies, XAPI error → HTTP), [`sessions`] (login,
//! cookies, CSRF, `/aicc`), [`mapping`] (job ↔ task, the 28 states, validation; shared
//! with the `tasks` command line), [`jobs`] (`/tasks`), [`csv`] (the csvRequest monitor).

mod csv;
mod jobs;
pub mod mapping;
mod protocol;
mod routes;
mod sessions;

use std::sync::Arc;

use bytes::Bytes;
use futures_util::future::BoxFuture;
use http_body_util::Full;
use hyper::{Method, Request, Response, StatusCode};
use serde_json::Value as Json;

use crate::api::dispatch::Service;
use crate::face::{BodyError, Conn, Face};
use crate::server::Limits;
use protocol::Answer;
use routes::{BadPath, Route};

/// This face, for the server's list of faces.
pub const FACE: Face = Face {
    name: "xclarity",
    owns: routes::owns,
    handle,
    body_error,
    head_too_large,
};

fn handle<'a>(
    svc: Arc<Service>,
    _: &'a Limits,
    req: Request<Bytes>,
    conn: Conn,
) -> BoxFuture<'a, Response<Full<Bytes>>> {
    Box::pin(async move { protocol::finish(answer(&svc, req).await, conn) })
}

/// A body that could not be read within the server's limits, as an LXCA message.
fn body_error(e: &BodyError, limits: &Limits, conn: Conn) -> Response<Full<Bytes>> {
    let answer = match e {
        BodyError::TooLarge => protocol::error(
            StatusCode::PAYLOAD_TOO_LARGE,
            &format!(
                "The request body is larger than {} bytes.",
                limits.max_body_bytes
            ),
            "",
            "Send a smaller request (fewer jobs at once).",
        ),
        BodyError::Timeout => protocol::error(
            StatusCode::REQUEST_TIMEOUT,
            "The request body did not arrive in time.",
            "",
            "Send the request again.",
        ),
        BodyError::Broken(why) => {
            protocol::bad_request(&format!("the request body could not be read: {why}"))
        }
    };
    protocol::finish(answer, conn)
}

/// A request head over the server's limit, as an LXCA message (status 431).
fn head_too_large(size: usize, limits: &Limits, conn: Conn) -> Response<Full<Bytes>> {
    let refused = protocol::error(
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
        "The request head is too large.",
        &format!(
            "The request line and headers are {size} bytes; at most {} are accepted.",
            limits.max_header_bytes
        ),
        "Send fewer or shorter headers (cookies), or a shorter URI (fewer job ids at once).",
    );
    protocol::finish(refused, conn)
}

async fn answer(svc: &Arc<Service>, req: Request<Bytes>) -> Answer {
    let route = match Route::parse(req.uri().path()) {
        Ok(r) => r,
        Err(BadPath::NotFound) => {
            return protocol::not_found(&format!("The resource {}", req.uri().path()));
        }
        Err(BadPath::BadIds(e)) => return protocol::bad_request(&e),
    };
    let method = req.method().clone();
    if !route.allows(method.as_str()) {
        return protocol::method_not_allowed(route.allow());
    }
    // Before any password work: a body this face cannot read is refused for free.
    if (method == Method::POST || method == Method::PUT)
        && let Err(a) = json_content_type(req.headers())
    {
        return a;
    }
    let compact = match compact(req.uri().query()) {
        Ok(c) => c,
        Err(a) => return a,
    };
    // A GET of named jobs: the session cookie is checked by the first job's read (one
    // pass through the pipeline, `dispatch::task_by_uuid`, instead of the check and then
    // the read), a session it refuses answered 401 as the check's would be.
    if let Route::TaskList(ids) = &route
        && method == Method::GET
        && !ids.is_empty()
        && let Some(session_ref) = sessions::cookie(req.headers(), sessions::SESSION_COOKIE)
    {
        return jobs::get_named_unchecked(svc, session_ref, ids, compact).await;
    }
    let login = route == Route::Sessions && method == Method::POST;
    let caller = if login {
        None
    } else {
        match sessions::authenticate(svc, req.headers()).await {
            Ok(c) => Some(c),
            Err(a) => return a,
        }
    };
    if let Some(c) = &caller
        && method != Method::GET
        && let Err(a) = sessions::check_csrf(req.headers(), c)
    {
        return a;
    }
    let body = if method == Method::POST || method == Method::PUT {
        match parse_json(req.body()) {
            Ok(b) => b,
            Err(a) => return a,
        }
    } else {
        Json::Null
    };
    let Some(caller) = caller else {
        return sessions::login(svc, &body).await;
    };
    match (&route, method) {
        (Route::Sessions, _) => sessions::logout(svc, &caller).await,
        (Route::Aicc, _) => sessions::aicc(svc, &caller).await,
        (Route::Tasks, Method::GET) => jobs::get(svc, &caller, None, compact).await,
        (Route::Tasks, Method::POST) => jobs::create(svc, &caller, &body).await,
        (Route::Tasks, _) => jobs::cancel(svc, &caller, &body).await,
        (Route::TaskList(ids), Method::GET) => jobs::get(svc, &caller, Some(ids), compact).await,
        (Route::TaskList(ids), Method::PUT) => jobs::update(svc, &caller, ids, &body).await,
        (Route::TaskList(ids), _) => jobs::delete(svc, &caller, ids).await,
        (Route::CsvJob(id), _) => csv_job(svc, &caller, id).await,
    }
}

/// `?compact=true` (pylxca's `c='false'`): jobs without their children. The only query
/// parameter pylxca sends; others are ignored.
fn compact(query: Option<&str>) -> Result<bool, Answer> {
    let Some(v) = query
        .unwrap_or_default()
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == "compact")
        .map(|(_, v)| v)
    else {
        return Ok(false);
    };
    match v.to_ascii_lowercase().as_str() {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(protocol::bad_request(&format!(
            "compact: must be true or false, not {v:?}"
        ))),
    }
}

async fn csv_job(svc: &Arc<Service>, caller: &sessions::Caller, id: &str) -> Answer {
    let tasks = match jobs::Tasks::named(svc, caller, &[id.to_string()], true).await {
        Ok(t) => t,
        Err(a) => return a,
    };
    match tasks.find(id) {
        Some(n) => Answer::ok(csv::monitor(&tasks, n, crate::db::now())),
        None => protocol::not_found(&format!("Job {id}")),
    }
}

/// A POST or PUT body must say it is JSON: `application/json` or `application/…+json`,
/// any parameters (RFC 8259 defines none; `charset` has no effect), any case. Anything
/// else is 415 with an LXCA message, a missing `Content-Type` too: pylxca sends
/// `application/json; charset=utf-8` on every request and Lenovo's Ruby client
/// `application/json` on every body, so only other clients omit it, and a body without
/// a type is one a browser page may send to another site with no CORS pre-flight (as it
/// may a form or `text/plain`). XML POSTs never get here: they are XML-RPC's
/// (`routes::owns`).
fn json_content_type(headers: &hyper::HeaderMap) -> Result<(), Answer> {
    let sent = headers
        .get(hyper::header::CONTENT_TYPE)
        .map(|v| v.as_bytes());
    if sent.is_some_and(is_json) {
        return Ok(());
    }
    let explanation = match sent {
        Some(v) => format!(
            "The request's Content-Type is {:?}.",
            String::from_utf8_lossy(v)
        ),
        None => "The request has no Content-Type header.".to_string(),
    };
    Err(protocol::error(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "The request body must be JSON.",
        &explanation,
        "Send the body as JSON with the header Content-Type: application/json.",
    ))
}

/// Whether a `Content-Type` value names JSON (its media type, before any parameter).
fn is_json(content_type: &[u8]) -> bool {
    let mime = content_type
        .split(|&b| b == b';')
        .next()
        .unwrap_or_default();
    let mime = mime.trim_ascii();
    mime.eq_ignore_ascii_case(b"application/json")
        || mime.len() > b"application/+json".len()
            && mime[..b"application/".len()].eq_ignore_ascii_case(b"application/")
            && mime[mime.len() - b"+json".len()..].eq_ignore_ascii_case(b"+json")
            && !mime[b"application/".len()..].contains(&b'/')
}

/// The body as JSON. An empty body, bad JSON or a body that is not UTF-8 is a 400
/// naming the problem.
fn parse_json(bytes: &Bytes) -> Result<Json, Answer> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(protocol::bad_request(
            "the request has no body (a JSON object is expected)",
        ));
    }
    serde_json::from_slice(bytes)
        .map_err(|e| protocol::bad_request(&format!("the request body is not valid JSON: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// "root:pw", "root:wrong".
    const ROOT: &str = "Basic cm9vdDpwdw==";
    const WRONG: &str = "Basic cm9vdDp3cm9uZw==";

    async fn service() -> (tempfile::TempDir, Arc<Service>) {
        crate::serve::ephemeral_service()
    }

    fn request(method: &str, uri: &str, headers: &[(&str, &str)], body: &str) -> Request<Bytes> {
        let mut b = Request::builder().method(method).uri(uri);
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(Bytes::from(body.to_string())).expect("request")
    }

    fn text(a: &Answer) -> &str {
        a.body["messages"][0]["text"].as_str().unwrap_or_default()
    }

    const JSON: (&str, &str) = ("content-type", "application/json");

    #[test]
    fn json_content_types() {
        for ok in [
            "application/json",
            "Application/JSON; charset=utf-8",
            " application/json ;charset=\"UTF-8\"",
            "application/vnd.lenovo+json",
            "application/merge-patch+JSON",
        ] {
            assert!(is_json(ok.as_bytes()), "{ok}");
        }
        for refused in [
            "application/x-www-form-urlencoded",
            "text/plain",
            "multipart/form-data; boundary=x",
            "text/json",
            "application/+json",
            "text/x+json",
            "application/a/b+json",
            "application/jsonx",
            "",
        ] {
            assert!(!is_json(refused.as_bytes()), "{refused}");
        }
    }

    #[tokio::test]
    async fn bodies_that_are_not_json_are_415_before_any_login() {
        let (_dir, svc) = service().await;
        let form = ("content-type", "application/x-www-form-urlencoded");
        let login = r#"{"UserId": "root", "password": "pw"}"#;
        let a = answer(&svc, request("POST", "/sessions", &[form], login)).await;
        assert_eq!(a.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
        assert_eq!(text(&a), "The request body must be JSON.");
        assert!(a.cookies.is_empty(), "no session for a refused login");
        let a = answer(&svc, request("POST", "/sessions", &[], login)).await;
        assert_eq!(a.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
        // A PUT with a form body and good Basic credentials changes nothing either.
        let auth = ("authorization", ROOT);
        let cancel = r#"{"action": "cancel", "list": ["x"]}"#;
        let a = answer(&svc, request("PUT", "/tasks", &[auth, form], cancel)).await;
        assert_eq!(a.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
        // JSON (with pylxca's charset) is accepted; GET and DELETE carry no body to type.
        let json = ("content-type", "application/json; charset=utf-8");
        let a = answer(&svc, request("POST", "/sessions", &[json], login)).await;
        assert_eq!(a.status, StatusCode::OK);
        let a = answer(&svc, request("GET", "/tasks", &[auth], "")).await;
        assert_eq!(a.status, StatusCode::OK);
        let a = answer(&svc, request("DELETE", "/tasks/nope", &[auth], "")).await;
        assert_eq!(a.status, StatusCode::NOT_FOUND);
    }

    #[tokio::test]
    async fn basic_credentials_work_without_a_cookie_or_a_csrf_token() {
        let (_dir, svc) = service().await;
        let auth = ("authorization", ROOT);
        let job = r#"{"jobTitle": "by basic"}"#;
        let a = answer(&svc, request("POST", "/tasks", &[auth, JSON], job)).await;
        assert_eq!(a.status, StatusCode::CREATED, "{:?}", a.body);
        let uid = a.body["jobUID"].as_str().expect("jobUID").to_string();
        let a = answer(&svc, request("GET", &format!("/tasks/{uid}"), &[auth], "")).await;
        assert_eq!(a.status, StatusCode::OK);
        let a = answer(&svc, request("GET", "/aicc", &[auth], "")).await;
        assert_eq!(a.status, StatusCode::OK);
        assert!(a.body.get("appliance").is_some(), "{:?}", a.body);
        // Logging out leaves the shared session to the cache: Basic still works after.
        let a = answer(&svc, request("DELETE", "/sessions", &[auth], "")).await;
        assert_eq!(a.status, StatusCode::OK);
        let a = answer(
            &svc,
            request("DELETE", &format!("/tasks/{uid}"), &[auth], ""),
        )
        .await;
        assert_eq!(a.status, StatusCode::OK);
        // The cookie keeps its CSRF rule when both are sent.
        let login = r#"{"UserId": "root", "password": "pw"}"#;
        let a = answer(&svc, request("POST", "/sessions", &[JSON], login)).await;
        let cookie = format!("{}={}", sessions::SESSION_COOKIE, a.cookies[0].value);
        let with_cookie = [auth, JSON, ("cookie", cookie.as_str())];
        let a = answer(&svc, request("POST", "/tasks", &with_cookie, job)).await;
        assert_eq!(a.status, StatusCode::FORBIDDEN);
    }

    #[tokio::test]
    async fn wrong_basic_credentials_get_the_wrong_login_answer() {
        let (_dir, svc) = service().await;
        let a = answer(
            &svc,
            request("GET", "/tasks", &[("authorization", WRONG)], ""),
        )
        .await;
        assert_eq!(a.status, StatusCode::UNAUTHORIZED);
        assert_eq!(text(&a), "The user ID or password is not valid.");
        let a = answer(&svc, request("GET", "/tasks", &[], "")).await;
        assert_eq!(a.status, StatusCode::UNAUTHORIZED);
        assert_eq!(text(&a), "The request requires a valid session.");
        let bearer = ("authorization", "Bearer abc");
        let a = answer(&svc, request("GET", "/tasks", &[bearer], "")).await;
        assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    }

    #[tokio::test]
    async fn a_head_too_large_is_an_lxca_message() {
        use http_body_util::BodyExt;
        let limits = Limits::default();
        let resp = head_too_large(70_000, &limits, Conn::default());
        assert_eq!(resp.status(), StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
        assert_eq!(
            resp.headers()[hyper::header::CONTENT_TYPE],
            "application/json; charset=utf-8"
        );
        let bytes = resp.into_body().collect().await.expect("body").to_bytes();
        let body: Json = serde_json::from_slice(&bytes).expect("JSON");
        assert_eq!(body["result"], "failed");
        assert_eq!(body["messages"][0]["id"], "XAPITASKD0431E");
        let explanation = body["messages"][0]["explanation"].as_str().unwrap();
        assert!(explanation.contains("70000") && explanation.contains("65536"));
    }
}
