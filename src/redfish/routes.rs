//! The URI space of the Redfish face: path → resource, and the methods each resource
//! allows (its `Allow` header; they never exceed what the CSDL capabilities permit,
//! which the service validator checks).

use hyper::header::HeaderValue;

/// The most segments a route has under `/redfish/v1` (`/TaskService/Tasks/{root}/
/// SubTasks/{id}`).
const MAX_SEGMENTS: usize = 5;

/// Marks a cancel monitor's id (`TaskMonitors/cancel-{uuid}`). Task uuids are hex and
/// dashes, so no task monitor id starts with it.
pub const CANCEL_MONITOR_PREFIX: &str = "cancel-";

/// A Redfish resource, identified from the request path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// `/redfish`
    Versions,
    /// `/redfish/v1`, `/redfish/v1/`
    ServiceRoot,
    /// `/redfish/v1/odata`
    OData,
    /// `/redfish/v1/$metadata`
    Metadata,
    SessionService,
    Sessions,
    /// `/Sessions/Members`: POST-only alias of the collection (OData's create URI).
    SessionsMembers,
    Session(String),
    AccountService,
    Roles,
    Role(String),
    TaskService,
    Tasks,
    /// `/Tasks/{id}`
    Task(String),
    /// `/Tasks/{id}/SubTasks`
    SubTasks(String),
    /// `/Tasks/{root}/SubTasks/{id}`
    SubTask(String, String),
    /// `/TaskService/TaskMonitors/{id}`: the task's own monitor.
    Monitor(String),
    /// `/TaskService/TaskMonitors/cancel-{id}`: the monitor of a DELETE that asked to
    /// cancel task `id` (`tasks::cancel_monitor_answer`).
    CancelMonitor(String),
    /// `/TaskService/Actions/TaskService.DeleteAllCompletedTasks`
    DeleteAllCompletedTasks,
}

impl Route {
    /// Parses a path. Ids must be path-safe (no percent-encoding, no dots-only segments);
    /// anything else is not a resource of ours.
    pub fn parse(path: &str) -> Option<Route> {
        if path == "/redfish" || path == "/redfish/" {
            return Some(Route::Versions);
        }
        let rest = path.strip_prefix("/redfish/v1")?;
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        // No route is longer than five segments: they are gathered on the stack (a
        // `Vec` of them was an allocation per request), and a longer path is nobody's.
        let mut at = [""; MAX_SEGMENTS];
        let mut n = 0;
        if !rest.is_empty() {
            for s in rest.strip_prefix('/')?.split('/') {
                if n == MAX_SEGMENTS || !valid_segment(s) {
                    return None;
                }
                at[n] = s;
                n += 1;
            }
        }
        let id = |s: &str| s.to_string();
        Some(match &at[..n] {
            [] => Route::ServiceRoot,
            ["odata"] => Route::OData,
            ["$metadata"] => Route::Metadata,
            ["SessionService"] => Route::SessionService,
            ["SessionService", "Sessions"] => Route::Sessions,
            ["SessionService", "Sessions", "Members"] => Route::SessionsMembers,
            ["SessionService", "Sessions", s] => Route::Session(id(s)),
            ["AccountService"] => Route::AccountService,
            ["AccountService", "Roles"] => Route::Roles,
            ["AccountService", "Roles", r] => Route::Role(id(r)),
            ["TaskService"] => Route::TaskService,
            ["TaskService", "Tasks"] => Route::Tasks,
            ["TaskService", "Tasks", t] => Route::Task(id(t)),
            ["TaskService", "Tasks", t, "SubTasks"] => Route::SubTasks(id(t)),
            ["TaskService", "Tasks", t, "SubTasks", s] => Route::SubTask(id(t), id(s)),
            ["TaskService", "TaskMonitors", t] => match t.strip_prefix(CANCEL_MONITOR_PREFIX) {
                Some(task) => Route::CancelMonitor(id(task)),
                None => Route::Monitor(id(t)),
            },
            [
                "TaskService",
                "Actions",
                "TaskService.DeleteAllCompletedTasks",
            ] => Route::DeleteAllCompletedTasks,
            _ => return None,
        })
    }

    /// The `Allow` header value.
    pub fn allow(&self) -> &'static str {
        match self {
            Route::Sessions => "GET, HEAD, POST",
            Route::SessionsMembers | Route::DeleteAllCompletedTasks => "POST",
            Route::Session(_) | Route::Task(_) | Route::SubTask(..) | Route::Monitor(_) => {
                "GET, HEAD, DELETE"
            }
            _ => "GET, HEAD",
        }
    }

    /// [`Route::allow`] as a header value, made at compile time (checking the literal's
    /// bytes and making a value of it per response cost more than inserting it).
    pub fn allow_value(&self) -> &'static HeaderValue {
        static LISTS: [HeaderValue; 4] = [
            HeaderValue::from_static("GET, HEAD, DELETE"),
            HeaderValue::from_static("GET, HEAD"),
            HeaderValue::from_static("GET, HEAD, POST"),
            HeaderValue::from_static("POST"),
        ];
        let allow = self.allow().as_bytes();
        // Every list is among these (a test checks), so the fallback is never taken.
        LISTS
            .iter()
            .find(|v| v.as_bytes() == allow)
            .unwrap_or(&LISTS[1])
    }

    /// Whether `method` is in [`Route::allow`]'s list, decided by matching rather than
    /// by splitting the list per request (a test checks that the two agree).
    pub fn allows(&self, method: &str) -> bool {
        match method {
            "GET" | "HEAD" => !matches!(
                self,
                Route::SessionsMembers | Route::DeleteAllCompletedTasks
            ),
            "POST" => matches!(
                self,
                Route::Sessions | Route::SessionsMembers | Route::DeleteAllCompletedTasks
            ),
            "DELETE" => matches!(
                self,
                Route::Session(_) | Route::Task(_) | Route::SubTask(..) | Route::Monitor(_)
            ),
            _ => false,
        }
    }

    /// Readable without credentials (DSP0266: the service root, `/redfish`, `odata` and
    /// `$metadata`). Creating a session needs none either (it carries them in the body).
    pub fn is_public(&self, method: &str) -> bool {
        match self {
            Route::Versions | Route::ServiceRoot | Route::OData | Route::Metadata => true,
            Route::Sessions | Route::SessionsMembers => method == "POST",
            _ => false,
        }
    }
}

/// The bytes a path segment may hold: letters, digits and `-_.$`.
const fn segment_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'$')
}

/// [`segment_byte`] as a table, made at compile time: one load per byte of the path
/// (the test per byte, with its search of `-_.$`, cost 0.4k instructions a GET).
const SEGMENT_BYTES: [bool; 256] = {
    let mut t = [false; 256];
    let mut b = 0;
    while b < 256 {
        t[b] = segment_byte(b as u8);
        b += 1;
    }
    t
};

fn valid_segment(s: &str) -> bool {
    !s.is_empty() && s != "." && s != ".." && s.bytes().all(|b| SEGMENT_BYTES[usize::from(b)])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_parse() {
        assert_eq!(Route::parse("/redfish"), Some(Route::Versions));
        assert_eq!(Route::parse("/redfish/v1"), Some(Route::ServiceRoot));
        assert_eq!(Route::parse("/redfish/v1/"), Some(Route::ServiceRoot));
        assert_eq!(Route::parse("/redfish/v1/$metadata"), Some(Route::Metadata));
        assert_eq!(
            Route::parse("/redfish/v1/TaskService/Tasks/abc/SubTasks/def"),
            Some(Route::SubTask("abc".into(), "def".into()))
        );
        assert_eq!(
            Route::parse("/redfish/v1/TaskService/Tasks/abc/"),
            Some(Route::Task("abc".into()))
        );
        assert_eq!(Route::parse("/redfish/v1/TaskService/Tasks/a%20b"), None);
        assert_eq!(Route::parse("/redfish/v1//TaskService"), None);
        assert_eq!(Route::parse("/redfish/v2"), None);
        assert_eq!(Route::parse("/redfish/v1/Nope"), None);
        assert_eq!(
            Route::parse("/redfish/v1/TaskService/Tasks/a/SubTasks/b/SubTasks"),
            None
        );
        assert_eq!(
            Route::parse("/redfish/v1/TaskService/TaskMonitors/abc"),
            Some(Route::Monitor("abc".into()))
        );
        assert_eq!(
            Route::parse("/redfish/v1/TaskService/TaskMonitors/cancel-abc"),
            Some(Route::CancelMonitor("abc".into()))
        );
    }

    /// `allows` says what `allow`'s list says, for every route and method.
    #[test]
    fn allows_agrees_with_the_allow_header() {
        let x = || "x".to_string();
        let routes = [
            Route::Versions,
            Route::ServiceRoot,
            Route::OData,
            Route::Metadata,
            Route::SessionService,
            Route::Sessions,
            Route::SessionsMembers,
            Route::Session(x()),
            Route::AccountService,
            Route::Roles,
            Route::Role(x()),
            Route::TaskService,
            Route::Tasks,
            Route::Task(x()),
            Route::SubTasks(x()),
            Route::SubTask(x(), x()),
            Route::Monitor(x()),
            Route::CancelMonitor(x()),
            Route::DeleteAllCompletedTasks,
        ];
        for r in &routes {
            // The header sent is the list itself (`allow_value` falls back to "GET, HEAD"
            // for a list it does not hold).
            assert_eq!(r.allow_value().as_bytes(), r.allow().as_bytes(), "{r:?}");
            for m in [
                "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "G", "",
            ] {
                let listed = r.allow().split(", ").any(|a| a == m);
                assert_eq!(r.allows(m), listed, "{r:?} {m}");
            }
        }
    }

    #[test]
    fn paths_longer_than_any_route_are_nobodys() {
        assert_eq!(
            Route::parse("/redfish/v1/TaskService/Tasks/a/SubTasks/b/c"),
            None
        );
        assert_eq!(Route::parse("/redfish/v1/a/b/c/d/e/f/g"), None);
    }

    #[test]
    fn methods() {
        assert!(Route::Task("x".into()).allows("DELETE"));
        assert!(!Route::Tasks.allows("POST"));
        assert!(!Route::ServiceRoot.allows("DELETE"));
        assert!(Route::Sessions.allows("POST"));
        assert!(Route::Sessions.is_public("POST"));
        assert!(!Route::Sessions.is_public("GET"));
        assert_eq!(
            Route::parse("/redfish/v1/TaskService/Actions/TaskService.DeleteAllCompletedTasks"),
            Some(Route::DeleteAllCompletedTasks)
        );
        assert!(Route::DeleteAllCompletedTasks.allows("POST"));
        assert!(!Route::DeleteAllCompletedTasks.is_public("POST"));
        // A task monitor cancels its task (DELETE); a cancel's own monitor is read-only.
        assert!(Route::Monitor("x".into()).allows("DELETE"));
        assert!(!Route::CancelMonitor("x".into()).allows("DELETE"));
        assert!(Route::CancelMonitor("x".into()).allows("GET"));
    }
}
