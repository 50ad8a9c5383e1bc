//! The web face: a live task page at `GET /`, its scripts and styles under `/ui/`.
//!
//! The page is one more client of the public API, like the XenAPI SDK or Xen Orchestra:
//! its scripts log in with `session.login_with_password` on `/jsonrpc`, follow the tasks
//! with `event.from` long-polls and act with `task.cancel` / `task.destroy`, so RBAC, the
//! ownership rule and every error are the server's, exactly as for any other caller. This
//! module therefore holds no state and calls nothing: it serves the embedded files
//! ([`assets`]) with the headers that keep the page safe (a Content-Security-Policy
//! without inline script, no framing, no MIME sniffing). See `docs/web.md`.
//!
//! A face (`src/face.rs`) that owns only `GET`/`HEAD` of `/` and of `/ui/…`: XML-RPC
//! clients POST to any path, `/` included, and that stays theirs.

mod assets;

use std::sync::Arc;

use bytes::Bytes;
use futures_util::future::BoxFuture;
use http_body_util::Full;
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};

use crate::api::dispatch::Service;
use crate::face::{Conn, Face};
use crate::server::Limits;
pub use assets::{ASSETS, Asset};

/// This face in `server::FACES`.
pub const FACE: Face = Face {
    name: "web",
    owns: |method, path, _: &HeaderMap| owns(method, path),
    handle: face_handle,
    // The page's requests (GET, HEAD) carry no body worth an answer of its own.
    body_error: |_, _, _| {
        plain(
            StatusCode::BAD_REQUEST,
            "the request body could not be read\n",
            false,
        )
    },
    head_too_large: |_, _, _| {
        plain(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "the request head is too large\n",
            false,
        )
    },
};

fn face_handle<'a>(
    _: Arc<Service>,
    _: &'a Limits,
    req: Request<Bytes>,
    _: Conn,
) -> BoxFuture<'a, Response<Full<Bytes>>> {
    let resp = handle(&req);
    Box::pin(async move { resp })
}

/// Where the page's files live (`/ui/app.js`, …); `/` itself is the page.
pub const PREFIX: &str = "/ui/";

/// The page's policy: its own scripts, styles and images only, JSON-RPC to its own
/// origin, no inline script or style, no `<base>`, no native form submission (the login
/// form is sent by script, so a password never lands in a URL), never framed. Trusted
/// Types make any `innerHTML`-style string-to-markup assignment throw, so a task name can
/// only ever become text.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; img-src 'self'; connect-src 'self'; base-uri 'none'; \
     form-action 'none'; frame-ancestors 'none'; require-trusted-types-for 'script'; \
     trusted-types 'none'";

/// Whether this face answers the request: `GET`/`HEAD` of `/` and of anything under `/ui/`.
pub fn owns(method: &Method, path: &str) -> bool {
    (method == Method::GET || method == Method::HEAD)
        && (path == "/" || path == "/ui" || path.starts_with(PREFIX))
}

/// Answers a `GET` or `HEAD` this face [`owns`]. Never fails: a missing file is a plain
/// 404 with the same headers.
pub fn handle<B>(req: &Request<B>) -> Response<Full<Bytes>> {
    let head = req.method() == Method::HEAD;
    let Some(asset) = assets::find(req.uri().path()) else {
        return plain(StatusCode::NOT_FOUND, "no such file\n", head);
    };
    let etag = asset.etag();
    let fresh = req
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"));
    let mut resp = if fresh {
        respond(StatusCode::NOT_MODIFIED, None, Bytes::new(), true)
    } else {
        respond(
            StatusCode::OK,
            Some(asset.content_type),
            Bytes::from_static(asset.body),
            head,
        )
    };
    if let Ok(v) = HeaderValue::from_str(&etag) {
        resp.headers_mut().insert(header::ETAG, v);
    }
    resp
}

fn plain(status: StatusCode, text: &'static str, head: bool) -> Response<Full<Bytes>> {
    respond(
        status,
        Some("text/plain; charset=utf-8"),
        Bytes::from_static(text.as_bytes()),
        head,
    )
}

/// A response with this face's headers. For `HEAD` the body is dropped but its length
/// is still announced (hyper keeps an explicit `Content-Length` on a HEAD answer).
fn respond(
    status: StatusCode,
    content_type: Option<&'static str>,
    body: Bytes,
    head: bool,
) -> Response<Full<Bytes>> {
    let len = body.len();
    let mut resp = Response::new(Full::new(if head { Bytes::new() } else { body }));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    if let Some(ct) = content_type {
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static(ct));
    }
    if head && status != StatusCode::NOT_MODIFIED {
        h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    }
    for (name, value) in SECURITY_HEADERS {
        h.insert(name.clone(), HeaderValue::from_static(value));
    }
    resp
}

/// On every answer of this face, errors included. `no-cache` is "revalidate": the
/// ETag makes that a 304 while the binary is the same, and a new binary's page is
/// picked up at once.
const SECURITY_HEADERS: &[(header::HeaderName, &str)] = &[
    (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
    (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
    // For browsers that predate `frame-ancestors`.
    (header::X_FRAME_OPTIONS, "DENY"),
    (header::REFERRER_POLICY, "no-referrer"),
    (header::CACHE_CONTROL, "no-cache"),
];

#[cfg(test)]
mod tests {
    use super::*;

    fn get(method: Method, path: &str) -> Response<Full<Bytes>> {
        handle(
            &Request::builder()
                .method(method)
                .uri(path)
                .body(())
                .unwrap(),
        )
    }

    #[test]
    fn routes_leave_xmlrpc_posts_alone() {
        assert!(owns(&Method::GET, "/"));
        assert!(owns(&Method::HEAD, "/"));
        assert!(!owns(&Method::POST, "/"));
        assert!(!owns(&Method::GET, "/RPC2"));
        assert!(!owns(&Method::GET, "/jsonrpc"));
        assert!(!owns(&Method::GET, "/redfish/v1"));
        assert!(!owns(&Method::POST, "/ui/app.js"));
        assert!(owns(&Method::HEAD, "/ui/app.js"));
        assert!(owns(&Method::GET, "/ui"));
        assert!(!owns(&Method::GET, "/uix"));
    }

    #[test]
    fn every_answer_carries_the_policy() {
        for (method, path, status) in [
            (Method::GET, "/", StatusCode::OK),
            (Method::GET, "/ui/app.js", StatusCode::OK),
            (Method::GET, "/ui/nope.js", StatusCode::NOT_FOUND),
            (Method::HEAD, "/ui/nope.js", StatusCode::NOT_FOUND),
        ] {
            let resp = get(method, path);
            assert_eq!(resp.status(), status, "{path}");
            let h = resp.headers();
            assert_eq!(h[header::CONTENT_SECURITY_POLICY], CONTENT_SECURITY_POLICY);
            assert_eq!(h[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
            assert_eq!(h[header::X_FRAME_OPTIONS], "DENY");
        }
        let csp = CONTENT_SECURITY_POLICY;
        assert!(csp.contains("frame-ancestors 'none'"));
        assert!(!csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"));
    }

    #[test]
    fn head_announces_the_length_and_etag_revalidates() {
        let page = get(Method::GET, "/");
        let etag = page.headers()[header::ETAG].clone();
        let head = get(Method::HEAD, "/");
        assert_eq!(
            head.headers()[header::CONTENT_LENGTH],
            assets::find("/").unwrap().body.len().to_string()
        );
        let again = handle(
            &Request::builder()
                .uri("/")
                .header(header::IF_NONE_MATCH, etag)
                .body(())
                .unwrap(),
        );
        assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
    }
}
