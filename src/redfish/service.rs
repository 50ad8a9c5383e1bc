//! The service documents: `/redfish`, the service root, the OData service document,
//! `$metadata`, and the read-only AccountService with its three predefined Roles.
//!
//! `$metadata` references DMTF's published schema files by their canonical URIs; the
//! server never reads schema files itself (validators are pointed at a local copy).
//!
//! The Roles are a projection of XAPI's roles, for clients that look for them; they
//! grant nothing by themselves. Authorization stays XAPI's RBAC: pool-admin →
//! Administrator; pool-operator and the vm-* roles → Operator; read-only and client-cert
//! → ReadOnly. Where Redfish's privilege model and XAPI's differ, XAPI's wins (e.g. a
//! pool-operator may destroy other users' tasks, which a Redfish Operator may not).

use serde_json::{Value as Json, json};

use super::protocol::{self, Answer};
use super::sessions;
use super::tasks;

pub const ROOT: &str = "/redfish/v1/";
pub const ACCOUNT_SERVICE: &str = "/redfish/v1/AccountService";
pub const ROLES: &str = "/redfish/v1/AccountService/Roles";

/// The versioned namespaces this face emits, with the schema file each lives in.
/// `$metadata` lists exactly these; a test checks that the namespace of every
/// `@odata.type` the producers emit is among them.
pub const SCHEMAS: &[(&str, &[&str])] = &[
    ("ServiceRoot", &["ServiceRoot", "ServiceRoot.v1_20_0"]),
    ("Resource", &["Resource", "Resource.v1_23_0"]),
    ("RedfishExtensions", &["RedfishExtensions.v1_0_0"]),
    ("Message", &["Message", "Message.v1_3_0"]),
    ("Privileges", &["Privileges", "Privileges.v1_0_6"]),
    ("TaskService", &["TaskService", "TaskService.v1_3_0"]),
    ("TaskCollection", &["TaskCollection"]),
    ("Task", &["Task", "Task.v1_7_4"]),
    (
        "SessionService",
        &["SessionService", "SessionService.v1_2_0"],
    ),
    ("SessionCollection", &["SessionCollection"]),
    ("Session", &["Session", "Session.v1_8_0"]),
    (
        "AccountService",
        &["AccountService", "AccountService.v1_18_1"],
    ),
    ("RoleCollection", &["RoleCollection"]),
    ("Role", &["Role", "Role.v1_3_3"]),
];

/// `GET /redfish`: the protocol version document.
pub fn versions() -> Answer {
    Answer::ok(json!({"v1": ROOT}))
}

/// `GET /redfish/v1/`.
pub fn service_root() -> Answer {
    Answer::ok(json!({
        "@odata.type": "#ServiceRoot.v1_20_0.ServiceRoot",
        "@odata.id": ROOT,
        "Id": "RootService",
        "Name": "xapi-taskd Redfish Service",
        "RedfishVersion": "1.20.0",
        "Product": "xapi-taskd",
        "Vendor": "xapi-taskd",
        "SessionService": {"@odata.id": sessions::SERVICE},
        "AccountService": {"@odata.id": ACCOUNT_SERVICE},
        "Tasks": {"@odata.id": tasks::SERVICE},
        "Links": {"Sessions": {"@odata.id": sessions::SESSIONS}},
    }))
}

/// `GET /redfish/v1/odata`: the OData service document, one entry per top-level resource.
pub fn odata() -> Answer {
    Answer::ok(json!({
        "@odata.context": "/redfish/v1/$metadata",
        "value": [
            {"name": "Service", "kind": "Singleton", "url": ROOT},
            {"name": "SessionService", "kind": "Singleton", "url": sessions::SERVICE},
            {"name": "AccountService", "kind": "Singleton", "url": ACCOUNT_SERVICE},
            {"name": "Tasks", "kind": "Singleton", "url": tasks::SERVICE},
        ]
    }))
}

/// `GET /redfish/v1/$metadata`.
pub fn metadata() -> Answer {
    let mut x = String::from(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
         <edmx:Edmx xmlns:edmx=\"http://docs.oasis-open.org/odata/ns/edmx\" Version=\"4.0\">\n",
    );
    for (file, namespaces) in SCHEMAS {
        x.push_str(&format!(
            "  <edmx:Reference Uri=\"http://redfish.dmtf.org/schemas/v1/{file}_v1.xml\">\n"
        ));
        for ns in *namespaces {
            x.push_str(&format!("    <edmx:Include Namespace=\"{ns}\"/>\n"));
        }
        x.push_str("  </edmx:Reference>\n");
    }
    x.push_str(
        "  <edmx:DataServices>\n\
         \x20   <Schema xmlns=\"http://docs.oasis-open.org/odata/ns/edm\" Namespace=\"Service\">\n\
         \x20     <EntityContainer Name=\"Service\" Extends=\"ServiceRoot.v1_20_0.ServiceContainer\"/>\n\
         \x20   </Schema>\n\
         \x20 </edmx:DataServices>\n\
         </edmx:Edmx>\n",
    );
    Answer {
        status: hyper::StatusCode::OK,
        body: protocol::Body::Xml(x),
        headers: Vec::new(),
        allow: None,
    }
}

/// `GET /redfish/v1/AccountService`: read-only; accounts are managed with
/// `xapi-taskd user …`, so there is no Accounts collection.
pub fn account_service() -> Answer {
    Answer::ok(json!({
        "@odata.type": "#AccountService.v1_18_1.AccountService",
        "@odata.id": ACCOUNT_SERVICE,
        "Id": "AccountService",
        "Name": "Account Service",
        "Description": "Local users of xapi-taskd, managed with `xapi-taskd user`; read-only here",
        "ServiceEnabled": true,
        "Status": {"State": "Enabled", "Health": "OK"},
        "Roles": {"@odata.id": ROLES},
    }))
}

/// The predefined Redfish roles: (Id, privileges, the XAPI roles projected onto it).
pub const REDFISH_ROLES: &[(&str, &[&str], &[&str])] = &[
    (
        "Administrator",
        &[
            "Login",
            "ConfigureManager",
            "ConfigureUsers",
            "ConfigureComponents",
            "ConfigureSelf",
        ],
        &["pool-admin"],
    ),
    (
        "Operator",
        &["Login", "ConfigureComponents", "ConfigureSelf"],
        &["pool-operator", "vm-power-admin", "vm-admin", "vm-operator"],
    ),
    (
        "ReadOnly",
        &["Login", "ConfigureSelf"],
        &["read-only", "client-cert"],
    ),
];

pub fn roles() -> Answer {
    let members: Vec<Json> = REDFISH_ROLES
        .iter()
        .map(|(id, _, _)| json!({"@odata.id": format!("{ROLES}/{id}")}))
        .collect();
    Answer::ok(json!({
        "@odata.type": "#RoleCollection.RoleCollection",
        "@odata.id": ROLES,
        "Name": "Roles",
        "Members@odata.count": members.len(),
        "Members": members,
    }))
}

/// `GET /Roles/{id}`; `None` for an unknown role.
pub fn role(id: &str) -> Option<Answer> {
    let (id, privileges, xapi_roles) = REDFISH_ROLES.iter().find(|(r, _, _)| *r == id)?;
    Some(Answer::ok(json!({
        "@odata.type": "#Role.v1_3_3.Role",
        "@odata.id": format!("{ROLES}/{id}"),
        "Id": id,
        "Name": format!("{id} role"),
        "Description": format!("Projection of the XAPI roles {}", xapi_roles.join(", ")),
        "RoleId": id,
        "IsPredefined": true,
        "AssignedPrivileges": privileges,
    })))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::datamodel::ROLE_NAMES;

    #[test]
    fn every_xapi_role_is_projected_once() {
        for r in ROLE_NAMES {
            let n = REDFISH_ROLES
                .iter()
                .filter(|(_, _, xs)| xs.contains(&r))
                .count();
            assert_eq!(n, 1, "{r}");
        }
    }

    /// Every resource this face emits, built from its real producer.
    fn emitted() -> Vec<Json> {
        let json = |a: Answer| match a.body {
            protocol::Body::Json(j) => j,
            _ => panic!("json"),
        };
        let retention = crate::api::gc::Retention::default();
        let record = crate::wire::value::Value::Struct(vec![]);
        let view = crate::face::xapi::TaskRecord::from_record(&record);
        let mut out = vec![
            json(service_root()),
            json(account_service()),
            json(roles()),
            json(role("Operator").expect("a role")),
            tasks::service_json(&retention),
            tasks::task_json(&view, None),
            sessions::service_json(&retention),
            sessions::session_json(&record),
        ];
        let caller = crate::redfish::auth::Caller {
            session_ref: String::new(),
            uuid: String::new(),
            basic: true,
            lease: None,
        };
        out.push(json(sessions::collection(&caller)));
        out
    }

    #[test]
    fn metadata_names_the_schemas_of_every_emitted_type() {
        let protocol::Body::Xml(x) = metadata().body else {
            panic!("xml")
        };
        let mut types: Vec<String> = emitted()
            .iter()
            .map(|j| j["@odata.type"].as_str().expect("@odata.type").to_string())
            .collect();
        types.push("#TaskCollection.TaskCollection".into());
        for t in types {
            // `#Task.v1_7_4.Task` → namespace `Task.v1_7_4`
            let ns = t
                .trim_start_matches('#')
                .rsplit_once('.')
                .expect("qualified")
                .0;
            assert!(x.contains(&format!("Namespace=\"{ns}\"")), "{ns}");
        }
        assert!(x.contains("http://redfish.dmtf.org/schemas/v1/Task_v1.xml"));
    }

    #[test]
    fn root_links_sessions() {
        let protocol::Body::Json(j) = service_root().body else {
            panic!("json")
        };
        assert_eq!(
            j["Links"]["Sessions"]["@odata.id"],
            "/redfish/v1/SessionService/Sessions"
        );
        assert_eq!(j["Tasks"]["@odata.id"], "/redfish/v1/TaskService");
    }
}
