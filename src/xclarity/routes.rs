//! The URI space of the XClarity face: LXCA's paths at the root, as on a real appliance,
//! and which requests on them this face owns (the rest stay XML-RPC's).

use hyper::{HeaderMap, Method};

use crate::face::is_xml;

/// Most job ids one request may name (`/tasks/{id,id,…}`, `PUT /tasks` `list`).
pub const MAX_IDS: usize = 1000;

/// The path prefixes this face owns: `/sessions`, `/aicc`, `/tasks`, `/csvRequest`, each
/// alone or followed by `/…`.
const PREFIXES: &[&str] = &["/sessions", "/aicc", "/tasks", "/csvRequest"];

/// Whether this face answers the request: a path under one of LXCA's prefixes, any
/// method but `OPTIONS` (xapi's CORS pre-flight answer stays the server's), except a
/// POST with an XML body, which is an XML-RPC call (xapi answers XML-RPC on every POST
/// path; pylxca always sends JSON).
pub fn owns(method: &Method, path: &str, headers: &HeaderMap) -> bool {
    let ours = PREFIXES.iter().any(|p| {
        path.strip_prefix(p)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
    });
    ours && *method != Method::OPTIONS && !(*method == Method::POST && is_xml(headers))
}

/// An LXCA resource, identified from the request path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// `/sessions`: log in (POST), log out (DELETE).
    Sessions,
    /// `/aicc`: the appliance.
    Aicc,
    /// `/tasks`: every job (GET), create (POST), cancel (PUT).
    Tasks,
    /// `/tasks/{id,id,…}`: ids percent-decoded and trimmed, never empty.
    TaskList(Vec<String>),
    /// `/csvRequest/jobs/{id}`: the bulk-request monitor of one job tree.
    CsvJob(String),
}

/// Why a path is not a resource: unknown (404), or a malformed id list (400).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BadPath {
    NotFound,
    BadIds(String),
}

impl Route {
    pub fn parse(path: &str) -> Result<Route, BadPath> {
        let path = path.strip_suffix('/').unwrap_or(path);
        match path {
            "/sessions" => return Ok(Route::Sessions),
            "/aicc" => return Ok(Route::Aicc),
            "/tasks" => return Ok(Route::Tasks),
            _ => {}
        }
        if let Some(list) = path.strip_prefix("/tasks/") {
            return ids(list).map(Route::TaskList);
        }
        if let Some(id) = path.strip_prefix("/csvRequest/jobs/") {
            let id = decode(id).ok_or(BadPath::NotFound)?;
            if id.is_empty() || id.contains('/') {
                return Err(BadPath::NotFound);
            }
            return Ok(Route::CsvJob(id.trim().to_string()));
        }
        Err(BadPath::NotFound)
    }

    /// The methods the resource allows (its `Allow` header).
    pub fn allow(&self) -> &'static str {
        match self {
            Route::Sessions => "POST, DELETE",
            Route::Aicc | Route::CsvJob(_) => "GET",
            Route::Tasks => "GET, POST, PUT",
            Route::TaskList(_) => "GET, PUT, DELETE",
        }
    }

    /// Whether `method` is in [`Route::allow`]'s list, decided by matching rather than
    /// by splitting the list per request (a test checks that the two agree).
    pub fn allows(&self, method: &str) -> bool {
        match self {
            Route::Sessions => matches!(method, "POST" | "DELETE"),
            Route::Aicc | Route::CsvJob(_) => method == "GET",
            Route::Tasks => matches!(method, "GET" | "POST" | "PUT"),
            Route::TaskList(_) => matches!(method, "GET" | "PUT" | "DELETE"),
        }
    }
}

/// A comma-separated id list from a path: percent-decoded (pylxca puts the caller's text
/// in the path as it is, so `-j "127, 140"` arrives as `127,%20140`), each id trimmed.
fn ids(list: &str) -> Result<Vec<String>, BadPath> {
    let text = decode(list).ok_or(BadPath::NotFound)?;
    if text.contains('/') {
        return Err(BadPath::NotFound);
    }
    split_ids(&text).map_err(BadPath::BadIds)
}

/// Splits and trims a comma-separated id list; empty ids and overlong lists are refused.
pub fn split_ids(text: &str) -> Result<Vec<String>, String> {
    let ids: Vec<String> = text.split(',').map(|s| s.trim().to_string()).collect();
    if ids.iter().any(String::is_empty) {
        return Err(format!("the job list {text:?} has an empty id"));
    }
    if ids.len() > MAX_IDS {
        return Err(format!("at most {MAX_IDS} jobs per request"));
    }
    Ok(ids)
}

/// Percent-decoding (RFC 3986) to UTF-8; None for a bad escape or non-UTF-8 bytes. A
/// text without a `%` is itself, borrowed (the usual id list: decoding it byte by byte
/// into a copy cost 600 instructions a request).
fn decode(s: &str) -> Option<std::borrow::Cow<'_, str>> {
    if !s.contains('%') {
        return Some(s.into());
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok().map(Into::into)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `allows` says what `allow`'s list says, for every route and method.
    #[test]
    fn allows_agrees_with_the_allow_header() {
        let routes = [
            Route::Sessions,
            Route::Aicc,
            Route::Tasks,
            Route::TaskList(vec!["1".into()]),
            Route::CsvJob("1".into()),
        ];
        for r in &routes {
            for m in [
                "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "",
            ] {
                let listed = r.allow().split(", ").any(|a| a == m);
                assert_eq!(r.allows(m), listed, "{r:?} {m}");
            }
        }
    }

    #[test]
    fn paths_parse() {
        assert_eq!(Route::parse("/sessions"), Ok(Route::Sessions));
        assert_eq!(Route::parse("/aicc/"), Ok(Route::Aicc));
        assert_eq!(Route::parse("/tasks"), Ok(Route::Tasks));
        assert_eq!(
            Route::parse("/tasks/127,%20140"),
            Ok(Route::TaskList(vec!["127".into(), "140".into()]))
        );
        assert_eq!(
            Route::parse("/tasks/abc"),
            Ok(Route::TaskList(vec!["abc".into()]))
        );
        assert_eq!(
            Route::parse("/csvRequest/jobs/42"),
            Ok(Route::CsvJob("42".into()))
        );
        assert!(matches!(
            Route::parse("/tasks/a,,b"),
            Err(BadPath::BadIds(_))
        ));
        assert_eq!(Route::parse("/tasks/a/b"), Err(BadPath::NotFound));
        assert_eq!(Route::parse("/tasks/%zz"), Err(BadPath::NotFound));
        assert_eq!(Route::parse("/tasks/%ff"), Err(BadPath::NotFound));
        assert_eq!(Route::parse("/csvRequest"), Err(BadPath::NotFound));
        assert_eq!(Route::parse("/sessions/x"), Err(BadPath::NotFound));
        let many = vec!["x"; MAX_IDS + 1].join(",");
        assert!(matches!(
            Route::parse(&format!("/tasks/{many}")),
            Err(BadPath::BadIds(_))
        ));
    }

    #[test]
    fn ownership_leaves_xml_rpc_its_paths() {
        let json = {
            let mut h = HeaderMap::new();
            h.insert(
                hyper::header::CONTENT_TYPE,
                "application/json; charset=utf-8".parse().unwrap(),
            );
            h
        };
        let xml = {
            let mut h = HeaderMap::new();
            h.insert(hyper::header::CONTENT_TYPE, "text/xml".parse().unwrap());
            h
        };
        let none = HeaderMap::new();
        assert!(owns(&Method::POST, "/sessions", &json));
        assert!(owns(&Method::POST, "/tasks", &none));
        assert!(owns(&Method::GET, "/tasks/1,2", &none));
        assert!(owns(&Method::DELETE, "/tasks/1", &xml));
        assert!(owns(&Method::GET, "/csvRequest/jobs/1", &none));
        assert!(owns(&Method::GET, "/aicc", &none));
        // XML-RPC's: an XML POST anywhere, every other path, and CORS pre-flights.
        assert!(!owns(&Method::POST, "/sessions", &xml));
        assert!(!owns(&Method::POST, "/tasks", &xml));
        assert!(!owns(&Method::POST, "/", &json));
        assert!(!owns(&Method::POST, "/RPC2", &json));
        assert!(!owns(&Method::POST, "/jsonrpc", &json));
        assert!(!owns(&Method::POST, "/tasksX", &json));
        assert!(!owns(&Method::OPTIONS, "/tasks", &none));
        assert!(!owns(&Method::GET, "/redfish/v1", &none));
    }

    #[test]
    fn methods() {
        assert!(Route::Tasks.allows("PUT"));
        assert!(!Route::Tasks.allows("DELETE"));
        assert!(Route::TaskList(vec![]).allows("DELETE"));
        assert!(!Route::Aicc.allows("POST"));
        assert!(Route::Sessions.allows("DELETE"));
    }
}
