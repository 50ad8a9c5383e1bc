//! A small client of LXCA's REST API, as pylxca speaks it: `POST /sessions` with
//! `{"UserId", "password"}`, the cookies it sets sent back on every request, the `csrf`
//! cookie's value in `X-Csrf-Token`, `DELETE /sessions` at the end. The `tasks` command
//! uses it, so the command works against xapi-taskd's XClarity face and against a real
//! LXCA appliance alike.

use std::sync::atomic::{AtomicBool, Ordering};

use serde_json::{Value, json};

use super::client::{CliError, Connection, agent, password, root_url, transport_error};

/// The name of the cookie whose value goes in `X-Csrf-Token` (pylxca's
/// `lxca_connection.py` reads the same one).
const CSRF_COOKIE: &str = "csrf";

/// An answer: its status, its `Location` header, and its JSON body (`Null` if none).
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub location: Option<String>,
    pub body: Value,
}

/// A logged-in LXCA session. `Drop` logs out, so every exit path ends the session.
pub struct Lxca {
    agent: ureq::Agent,
    base: String,
    /// The `Cookie` header: every cookie the login set.
    cookies: String,
    csrf: Option<String>,
    logged_out: AtomicBool,
}

impl Lxca {
    /// Gets the password and logs in.
    pub fn connect(conn: &Connection) -> Result<Lxca, CliError> {
        let base = root_url(&conn.url)?;
        let password = password(&conn.user)?;
        let mut lxca = Lxca {
            agent: agent(conn),
            base,
            cookies: String::new(),
            csrf: None,
            logged_out: AtomicBool::new(true),
        };
        let url = format!("{}/sessions", lxca.base);
        let body = json!({"UserId": conn.user, "password": password}).to_string();
        let mut resp = lxca
            .agent
            .post(&url)
            .header("Content-Type", "application/json; charset=utf-8")
            .send(body)
            .map_err(|e| transport_error(&url, &e))?;
        let set: Vec<(String, String)> = resp
            .headers()
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .filter_map(cookie_pair)
            .collect();
        let answer = read(&url, resp.status().as_u16(), None, &mut resp)?;
        if answer.status != 200 {
            return Err(error(&answer));
        }
        lxca.csrf = set
            .iter()
            .find(|(k, _)| k == CSRF_COOKIE)
            .map(|(_, v)| v.clone());
        lxca.cookies = set
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ");
        lxca.logged_out.store(false, Ordering::SeqCst);
        Ok(lxca)
    }

    /// One request; an error status becomes the one-line error its LXCA message body says.
    pub fn call(&self, method: &str, path: &str, body: Option<&Value>) -> Result<Answer, CliError> {
        let answer = self.request(method, path, body)?;
        if answer.status >= 400 {
            return Err(error(&answer));
        }
        Ok(answer)
    }

    fn request(&self, method: &str, path: &str, body: Option<&Value>) -> Result<Answer, CliError> {
        let url = format!("{}{path}", self.base);
        let with = |r: ureq::RequestBuilder<ureq::typestate::WithBody>| {
            let r = r
                .header("Content-Type", "application/json; charset=utf-8")
                .header("Cookie", &self.cookies);
            match &self.csrf {
                Some(t) => r.header("X-Csrf-Token", t),
                None => r,
            }
        };
        let without = |r: ureq::RequestBuilder<ureq::typestate::WithoutBody>| {
            let r = r.header("Cookie", &self.cookies);
            match &self.csrf {
                Some(t) => r.header("X-Csrf-Token", t),
                None => r,
            }
        };
        let text = body.map(Value::to_string).unwrap_or_default();
        let sent = match method {
            "GET" => without(self.agent.get(&url)).call(),
            "DELETE" => without(self.agent.delete(&url)).call(),
            "PUT" => with(self.agent.put(&url)).send(text),
            _ => with(self.agent.post(&url)).send(text),
        };
        let mut resp = sent.map_err(|e| transport_error(&url, &e))?;
        let location = resp
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        read(&url, resp.status().as_u16(), location, &mut resp)
    }

    /// Ends the session (once). Failures are ignored: nothing useful can be done about
    /// them on the way out.
    pub fn logout(&self) {
        if !self.logged_out.swap(true, Ordering::SeqCst) {
            let _ = self.request("DELETE", "/sessions", None);
        }
    }
}

impl Drop for Lxca {
    fn drop(&mut self) {
        self.logout();
    }
}

fn read(
    url: &str,
    status: u16,
    location: Option<String>,
    resp: &mut ureq::http::Response<ureq::Body>,
) -> Result<Answer, CliError> {
    let text = resp
        .body_mut()
        .read_to_string()
        .map_err(|e| transport_error(url, &e))?;
    let body = if text.trim().is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).map_err(|_| {
            let head: String = text.chars().take(80).collect();
            CliError::msg(format!("{url} did not answer JSON (HTTP {status}): {head}"))
        })?
    };
    Ok(Answer {
        status,
        location,
        body,
    })
}

/// `name=value` of a `Set-Cookie` header (its attributes dropped).
fn cookie_pair(header: &str) -> Option<(String, String)> {
    let (name, value) = header.split(';').next()?.split_once('=')?;
    Some((name.trim().to_string(), value.trim().to_string()))
}

/// An error answer as one line: the status, LXCA's message text, and its explanation
/// (where xapi-taskd puts the XAPI error code and parameters).
pub fn error(a: &Answer) -> CliError {
    let m = &a.body["messages"][0];
    let text = m["text"].as_str().unwrap_or("no message");
    match m["explanation"].as_str().filter(|e| !e.is_empty()) {
        Some(why) => CliError::msg(format!("HTTP {}: {text} ({why})", a.status)),
        None => CliError::msg(format!("HTTP {}: {text}", a.status)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_cookie_headers_give_name_and_value() {
        assert_eq!(
            cookie_pair("csrf=abc; Path=/; SameSite=Strict"),
            Some(("csrf".into(), "abc".into()))
        );
        assert_eq!(
            cookie_pair("lxca_session=OpaqueRef:x-1; HttpOnly"),
            Some(("lxca_session".into(), "OpaqueRef:x-1".into()))
        );
        assert_eq!(cookie_pair("garbage"), None);
    }

    #[test]
    fn errors_are_one_line_with_the_xapi_error() {
        let a = Answer {
            status: 404,
            location: None,
            body: json!({"result": "failed", "messages": [{"id": "X", "text": "Job 7 was not found.",
                "explanation": "XAPI error UUID_INVALID: task; 7."}]}),
        };
        assert_eq!(
            error(&a).to_string(),
            "HTTP 404: Job 7 was not found. (XAPI error UUID_INVALID: task; 7.)"
        );
        let bare = Answer {
            status: 500,
            location: None,
            body: Value::Null,
        };
        assert_eq!(error(&bare).to_string(), "HTTP 500: no message");
    }
}
