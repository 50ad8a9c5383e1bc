//! LXCA's protocol details in one place: the JSON message body every answer carries, the
//! cookies, and the one table from XAPI errors to HTTP statuses.
//!
//! Handlers build an [`Answer`]; [`finish`] turns it into the HTTP response, adding the
//! headers and writing the cookies (`Secure` on the TLS listener only: a `Secure` cookie
//! is never sent back over plain HTTP, and pylxca would then be refused on every call).

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{self, HeaderName, HeaderValue};
use hyper::{Response, StatusCode};
use serde_json::{Value as Json, json};

use crate::api::error::{ApiError, codes};
use crate::face::Conn;

/// LXCA's "The request completed successfully." message (its documented id).
pub const SUCCESS_ID: &str = "FQXHMSE0001I";

/// A response before the headers and cookies are added.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub body: Json,
    /// The body already written as JSON (the hot reads: jobs written straight from
    /// their tasks); sent instead of `body` when set.
    pub written: Option<Vec<u8>>,
    pub headers: Vec<(HeaderName, String)>,
    pub cookies: Vec<Cookie>,
}

/// A cookie to set (or, with `max_age: Some(0)`, to clear).
#[derive(Debug, Clone, PartialEq)]
pub struct Cookie {
    pub name: &'static str,
    pub value: String,
    /// Not readable by scripts in a browser. The session cookie is; the `csrf` cookie is
    /// not, because a client must copy it into `X-Csrf-Token`.
    pub http_only: bool,
    pub max_age: Option<u32>,
}

impl Cookie {
    /// The `Set-Cookie` value.
    pub fn render(&self, secure: bool) -> String {
        let mut s = format!("{}={}; Path=/; SameSite=Strict", self.name, self.value);
        if let Some(age) = self.max_age {
            s.push_str(&format!("; Max-Age={age}"));
        }
        if self.http_only {
            s.push_str("; HttpOnly");
        }
        if secure {
            s.push_str("; Secure");
        }
        s
    }
}

impl Answer {
    pub fn json(status: StatusCode, body: Json) -> Answer {
        Answer {
            status,
            body,
            written: None,
            headers: Vec::new(),
            cookies: Vec::new(),
        }
    }

    pub fn ok(body: Json) -> Answer {
        Answer::json(StatusCode::OK, body)
    }

    /// 200 with a body already written as JSON.
    pub fn ok_written(bytes: Vec<u8>) -> Answer {
        Answer {
            written: Some(bytes),
            ..Answer::ok(Json::Null)
        }
    }

    /// 200 with LXCA's success message.
    pub fn success() -> Answer {
        Answer::ok(success_body())
    }

    pub fn header(mut self, name: HeaderName, value: impl Into<String>) -> Answer {
        self.headers.push((name, value.into()));
        self
    }

    pub fn cookie(mut self, c: Cookie) -> Answer {
        self.cookies.push(c);
        self
    }
}

/// One LXCA message (`id`, `text`, `explanation`, `recovery`).
pub fn message(id: &str, text: &str, explanation: &str, recovery: &str) -> Json {
    json!({
        "id": id,
        "text": text,
        "explanation": explanation,
        "recovery": {"text": recovery, "URL": ""},
    })
}

pub fn success_body() -> Json {
    json!({
        "result": "success",
        "messages": [message(
            SUCCESS_ID,
            "The request completed successfully.",
            "",
            "Information only; no action is required.",
        )],
    })
}

/// An error answer: LXCA's `{"result":"failed","messages":[…]}`. Our message ids are
/// `XAPITASKD<status>E` (LXCA's own `FQXHMSE…` ids are not published per error, and
/// borrowing one would say something we cannot know).
pub fn error(status: StatusCode, text: &str, explanation: &str, recovery: &str) -> Answer {
    let id = format!("XAPITASKD{:04}E", status.as_u16());
    Answer::json(
        status,
        json!({"result": "failed", "messages": [message(&id, text, explanation, recovery)]}),
    )
}

/// 400: what the client sent is wrong; `text` names the problem.
pub fn bad_request(text: &str) -> Answer {
    error(
        StatusCode::BAD_REQUEST,
        text,
        "",
        "Correct the request and submit it again.",
    )
}

/// 401: no session, or one that has ended. Says nothing about which.
pub fn unauthorized() -> Answer {
    error(
        StatusCode::UNAUTHORIZED,
        "The request requires a valid session.",
        "There is no session cookie, or its session has ended.",
        "Log in with POST /sessions and submit the request again.",
    )
}

pub fn not_found(what: &str) -> Answer {
    error(
        StatusCode::NOT_FOUND,
        &format!("{what} was not found."),
        "",
        "Check the identifier and submit the request again.",
    )
}

/// 405 with the methods the resource allows.
pub fn method_not_allowed(allow: &str) -> Answer {
    error(
        StatusCode::METHOD_NOT_ALLOWED,
        "The HTTP method is not supported on this resource.",
        &format!("It supports {allow}."),
        "Use one of the supported methods.",
    )
    .header(header::ALLOW, allow)
}

/// A XAPI error from the pipeline, as an LXCA client sees it: the one table of statuses.
/// `what` names what the request addressed (for 404s). The XAPI code and parameters go
/// in `explanation`, so that nothing XAPI said is lost.
pub fn from_api(what: &str, e: &ApiError) -> Answer {
    let explanation = if e.params.is_empty() {
        format!("XAPI error {}.", e.code)
    } else {
        format!("XAPI error {}: {}.", e.code, e.params.join("; "))
    };
    let (status, text, recovery) = match e.code {
        codes::SESSION_INVALID => return unauthorized(),
        // Wrong credentials; the login guard's refusals for load (too many logins at
        // once, shutting down) say nothing of the password.
        codes::SESSION_AUTHENTICATION_FAILED if !e.is_login_refused_for_load() => (
            StatusCode::UNAUTHORIZED,
            "The user ID or password is not valid.".to_string(),
            "Check the user ID and password and log in again.",
        ),
        codes::SESSION_AUTHENTICATION_FAILED => (
            StatusCode::SERVICE_UNAVAILABLE,
            "The server cannot check this login now.".to_string(),
            "Wait a moment, then log in again.",
        ),
        codes::RBAC_PERMISSION_DENIED | codes::SESSION_AUTHORIZATION_FAILED => (
            StatusCode::FORBIDDEN,
            "The user does not have the role this request needs.".to_string(),
            "Log in as a user with a role that allows it, or ask its owner.",
        ),
        codes::HANDLE_INVALID | codes::UUID_INVALID => (
            StatusCode::NOT_FOUND,
            format!("{what} was not found."),
            "Check the identifier and submit the request again.",
        ),
        codes::TOO_MANY_PENDING_TASKS => (
            StatusCode::SERVICE_UNAVAILABLE,
            "Too many jobs are running; no more can be created now.".to_string(),
            "Wait for running jobs to finish, then submit the request again.",
        ),
        codes::MAP_DUPLICATE_KEY | codes::OPERATION_NOT_ALLOWED => (
            StatusCode::CONFLICT,
            "The request conflicts with the job's current state.".to_string(),
            "Read the job again and submit a request that fits its state.",
        ),
        codes::INTERNAL_ERROR => (
            StatusCode::INTERNAL_SERVER_ERROR,
            "The request failed because of an internal error.".to_string(),
            "Submit the request again; if it fails again, see the server's log.",
        ),
        _ => (
            StatusCode::BAD_REQUEST,
            "The request was refused.".to_string(),
            "Correct the request and submit it again.",
        ),
    };
    let a = error(status, &text, &explanation, recovery);
    if status == StatusCode::SERVICE_UNAVAILABLE {
        return a.header(HeaderName::from_static("retry-after"), "1");
    }
    a
}

/// Adds the headers and cookies and serializes the body.
pub fn finish(a: Answer, conn: Conn) -> Response<Full<Bytes>> {
    let bytes = match a.written {
        Some(b) => b,
        None => crate::json_out::to_vec(&a.body),
    };
    let mut resp = Response::new(Full::new(Bytes::from(bytes)));
    *resp.status_mut() = a.status;
    let h = resp.headers_mut();
    // Inline `const`s: the values are made at compile time, not checked per response.
    h.insert(
        header::CONTENT_TYPE,
        const { HeaderValue::from_static("application/json; charset=utf-8") },
    );
    h.insert(
        header::CACHE_CONTROL,
        const { HeaderValue::from_static("no-store") },
    );
    for (name, value) in a.headers {
        if let Ok(v) = HeaderValue::from_str(&value) {
            h.insert(name, v);
        }
    }
    for c in &a.cookies {
        if let Ok(v) = HeaderValue::from_str(&c.render(conn.tls)) {
            h.append(header::SET_COOKIE, v);
        }
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xapi_errors_map_to_lxca_statuses() {
        let s = |code| from_api("Job 7", &ApiError::new(code, ["a"])).status;
        assert_eq!(s(codes::SESSION_INVALID), StatusCode::UNAUTHORIZED);
        assert_eq!(
            s(codes::SESSION_AUTHENTICATION_FAILED),
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(s(codes::RBAC_PERMISSION_DENIED), StatusCode::FORBIDDEN);
        assert_eq!(s(codes::HANDLE_INVALID), StatusCode::NOT_FOUND);
        assert_eq!(s(codes::UUID_INVALID), StatusCode::NOT_FOUND);
        assert_eq!(
            s(codes::TOO_MANY_PENDING_TASKS),
            StatusCode::SERVICE_UNAVAILABLE
        );
        assert_eq!(s(codes::MAP_DUPLICATE_KEY), StatusCode::CONFLICT);
        assert_eq!(s(codes::INTERNAL_ERROR), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(s(codes::INVALID_VALUE), StatusCode::BAD_REQUEST);
    }

    #[test]
    fn a_login_refused_for_load_is_not_called_a_wrong_password() {
        let refused = |why: &str| {
            from_api(
                "The session",
                &ApiError::new(codes::SESSION_AUTHENTICATION_FAILED, ["root", why]),
            )
        };
        let wrong = refused("Authentication failure");
        assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
        assert_eq!(
            wrong.body["messages"][0]["text"],
            "The user ID or password is not valid."
        );
        // The login guard's refusals (login_guard.rs) say nothing of the password.
        for why in [
            "Too many logins at once; try again later",
            "Too many logins in progress from this address; try again later",
            "the server is shutting down",
        ] {
            let busy = refused(why);
            assert_eq!(busy.status, StatusCode::SERVICE_UNAVAILABLE, "{why}");
            let text = busy.body["messages"][0]["text"].as_str().unwrap();
            assert!(!text.contains("password"), "{text}");
            assert!(
                busy.headers
                    .iter()
                    .any(|(h, v)| h == "retry-after" && v == "1")
            );
        }
    }

    #[test]
    fn error_bodies_are_lxca_messages_that_keep_the_xapi_error() {
        let a = from_api("Job 7", &ApiError::new(codes::UUID_INVALID, ["task", "7"]));
        assert_eq!(a.body["result"], "failed");
        let m = &a.body["messages"][0];
        assert_eq!(m["id"], "XAPITASKD0404E");
        assert_eq!(m["text"], "Job 7 was not found.");
        assert_eq!(m["explanation"], "XAPI error UUID_INVALID: task; 7.");
        assert!(m["recovery"]["text"].is_string() && m["recovery"]["URL"] == "");
        assert_eq!(success_body()["messages"][0]["id"], SUCCESS_ID);
    }

    #[test]
    fn cookies_are_secure_only_over_tls() {
        let c = Cookie {
            name: "s",
            value: "v".into(),
            http_only: true,
            max_age: None,
        };
        assert_eq!(c.render(false), "s=v; Path=/; SameSite=Strict; HttpOnly");
        assert_eq!(
            c.render(true),
            "s=v; Path=/; SameSite=Strict; HttpOnly; Secure"
        );
        let gone = Cookie {
            max_age: Some(0),
            http_only: false,
            ..c
        };
        assert_eq!(
            gone.render(false),
            "s=v; Path=/; SameSite=Strict; Max-Age=0"
        );
    }
}
