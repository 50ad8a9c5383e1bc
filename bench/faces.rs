//! The hot read of each face, as its clients send it: the request the wrk rows and the
//! count-based rows repeat, built for one server's session and task.

use crate::client::{self, Conn, Request, Response, json_call, xml_call};

/// A session and a task on one xapi-taskd instance.
pub struct Target {
    pub session: String,
    pub task: String,
    pub uuid: String,
    /// The `Cookie` header and `X-Csrf-Token` of an XClarity login (`POST /sessions`).
    pub lxca: (String, String),
}

impl Target {
    /// Logs in and creates the task the reads read.
    pub async fn on(port: u16) -> Target {
        let session = client::login(port).await;
        let task = client::new_task(port, &session, "bench", "the task read by get_record").await;
        let uuid = client::task_uuid(port, &session, &task).await;
        Target {
            session,
            task,
            uuid,
            lxca: lxca_login(port).await,
        }
    }

    /// A target on the Python peer, which has no uuids and no XClarity face.
    pub fn peer(session: String, task: String) -> Target {
        Target {
            session,
            task,
            uuid: String::new(),
            lxca: Default::default(),
        }
    }
}

/// pylxca's `connect`: `POST /sessions`; what it then sends on every request is both
/// cookies, and the `csrf` one again in `X-Csrf-Token`.
async fn lxca_login(port: u16) -> (String, String) {
    let body = format!(
        "{{\"UserId\":\"root\",\"password\":\"{}\"}}",
        client::ROOT_PASSWORD
    );
    let login = Request::post("/sessions", "application/json", body.into_bytes());
    let r = Conn::open(port).await.send(&login.bytes()).await;
    assert_eq!(r.status(), 200, "{}", String::from_utf8_lossy(&r.body));
    let cookies: Vec<&str> = r
        .head
        .lines()
        .filter_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("set-cookie")
                .then(|| value.trim().split(';').next().unwrap_or_default())
        })
        .collect();
    let csrf = cookies
        .iter()
        .find_map(|c| c.strip_prefix("csrf="))
        .expect("a csrf cookie")
        .to_string();
    (cookies.join("; "), csrf)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Face {
    XmlRpc,
    JsonRpc,
    Redfish,
    XClarity,
    /// `event.from` on one task from the start: a batch of one event with its snapshot,
    /// the reply each waiter of a fan-out gets.
    EventFrom,
}

const ALL: &[Face] = &[
    Face::XmlRpc,
    Face::JsonRpc,
    Face::Redfish,
    Face::XClarity,
    Face::EventFrom,
];

/// The faces to measure: all, or those `BENCH_FACES` names (`xmlrpc,jsonrpc,redfish,
/// xclarity,event`).
pub fn faces() -> Vec<Face> {
    let only = std::env::var("BENCH_FACES").unwrap_or_default();
    ALL.iter()
        .copied()
        .filter(|f| only.is_empty() || only.split(',').any(|o| o.trim() == f.slug()))
        .collect()
}

impl Face {
    pub fn slug(self) -> &'static str {
        match self {
            Face::XmlRpc => "xmlrpc",
            Face::JsonRpc => "jsonrpc",
            Face::Redfish => "redfish",
            Face::XClarity => "xclarity",
            Face::EventFrom => "event",
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Face::XmlRpc => "XML-RPC task.get_record",
            Face::JsonRpc => "JSON-RPC task.get_record",
            Face::Redfish => "Redfish GET TaskService/Tasks/{id}",
            Face::XClarity => "XClarity GET /tasks/{id}",
            Face::EventFrom => "XML-RPC event.from, one event",
        }
    }

    /// The request: for XML-RPC the bytes of Python's `xmlrpc.client` (its headers, its
    /// path `/RPC2`, its body); for JSON-RPC what Xen Orchestra's connector posts; for
    /// Redfish a GET with the session token, as sushy and the DMTF library send it; for
    /// XClarity pylxca's GET with its session cookies and CSRF header.
    pub fn request(self, t: &Target) -> Request {
        match self {
            Face::XmlRpc => {
                let mut r = Request::post(
                    "/RPC2",
                    "text/xml",
                    xml_call("task.get_record", &[&t.session, &t.task]),
                );
                r.headers
                    .insert(0, ("Accept-Encoding".into(), "gzip".into()));
                r.headers
                    .push(("User-Agent".into(), "Python-xmlrpc/3.11".into()));
                r
            }
            Face::JsonRpc => Request::post(
                "/jsonrpc",
                "application/json",
                json_call("task.get_record", &[&t.session, &t.task]),
            ),
            Face::Redfish => Request::get(
                &format!("/redfish/v1/TaskService/Tasks/{}", t.uuid),
                &[
                    ("Accept", "application/json"),
                    ("OData-Version", "4.0"),
                    ("X-Auth-Token", &t.session),
                ],
            ),
            Face::EventFrom => Request::xml(client::xml_call_typed(
                "event.from",
                &[&t.session],
                &format!(
                    "<array><data><value>task/{}</value></data></array></value></param>\
                     <param><value></value></param><param><value><double>0</double>",
                    t.task
                ),
            )),
            Face::XClarity => Request::get(
                &format!("/tasks/{}", t.uuid),
                &[
                    ("Accept", "application/json"),
                    ("Content-Type", "application/json"),
                    ("Cookie", &t.lxca.0),
                    ("X-Csrf-Token", &t.lxca.1),
                ],
            ),
        }
    }

    /// Sends the request once and returns the reply, which must be a 200 (it is also
    /// what the bare limit for this face sends).
    pub async fn reply(self, port: u16, t: &Target) -> Response {
        let r = Conn::open(port).await.send(&self.request(t).bytes()).await;
        assert_eq!(
            r.status(),
            200,
            "{}: {}",
            self.name(),
            String::from_utf8_lossy(&r.body)
        );
        r
    }
}
