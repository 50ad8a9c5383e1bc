//! The API layer: the datamodel table, the dispatch pipeline and the class implementations.
//!
//! [`Api::build`] expands the declarative [`datamodel`] into the full list of messages,
//! implicit ones included, indexed by wire name. Dispatch, RBAC, `system.listMethods` and
//! `docs/api.md` all read this one list.

pub mod datamodel;
pub mod dispatch;
pub mod docs;
pub mod error;
mod event;
pub mod gc;
pub mod handlers;
mod implicit;
pub mod limits;
pub mod login_guard;
pub mod marshal;
pub mod rbac;
pub mod record;
mod session;
mod task;

use std::collections::HashMap;

use rustc_hash::FxHashMap;

use datamodel::{CLASSES, Class, Field, Param, Qualifier, Roles, Ty};
use handlers::{Custom, Implicit};

/// How a message is carried out.
#[derive(Debug, Clone, Copy)]
pub enum Handler {
    /// Hand-written semantics (task.create, session.login_with_password...).
    Custom(Custom),
    /// Derived from the datamodel (getters, get_record, get_all...).
    Implicit(Implicit),
}

/// One callable message, explicit or implicit.
#[derive(Debug)]
pub struct Message {
    pub class: &'static Class,
    /// The message name within its class (`get_name_label`).
    pub name: String,
    /// `class.name`, the wire name (`task.get_name_label`).
    pub wire: String,
    pub doc: String,
    /// Whether the first positional argument is a session ref.
    pub session: bool,
    pub params: Vec<Param>,
    pub result: Ty,
    pub roles: Roles,
    pub is_async: bool,
    pub errors: &'static [&'static str],
    pub map_keys_roles: &'static [(&'static str, Roles)],
    /// Callable but left out of the API docs, as xapi hides `get_all_where` and
    /// `get_all_records_where`.
    pub hidden: bool,
    pub handler: Handler,
}

impl Message {
    /// Parameters that must be present (those without a default).
    pub fn required_params(&self) -> usize {
        self.params.iter().filter(|p| p.default.is_none()).count()
    }

    /// Whether the message takes defaulted parameters; such messages accept surplus
    /// trailing arguments (xapi's generated pattern match ignores them).
    pub fn has_defaults(&self) -> bool {
        self.params.iter().any(|p| p.default.is_some())
    }
}

/// The expanded API: every message, the wire-name index and the permission table.
pub struct Api {
    pub messages: Vec<Message>,
    /// FxHash: the keys are the datamodel's own names, looked up once per call.
    by_wire: FxHashMap<String, usize>,
    /// permission name → roles that hold it.
    permissions: FxHashMap<String, Roles>,
    /// role name → what xapi puts in `session.rbac_permissions` (computed once here,
    /// read with every session record).
    role_permissions: HashMap<&'static str, Vec<String>>,
}

fn role_permission_list(permissions: &FxHashMap<String, Roles>, role: &str) -> Vec<String> {
    let Some(bit) = Roles::of_name(role) else {
        return Vec::new();
    };
    let mut perms: Vec<String> = permissions
        .iter()
        .filter(|(_, roles)| roles.contains(bit))
        .map(|(p, _)| p.clone())
        .collect();
    perms.sort();
    perms.insert(0, role.to_string());
    perms
}

fn self_param(class: &'static Class) -> Param {
    Param {
        name: "self",
        ty: Ty::Ref(class.name),
        doc: "reference to the object",
        default: None,
    }
}

impl Api {
    pub fn build() -> Api {
        let mut messages = Vec::new();
        for class in CLASSES.iter().copied() {
            for decl in class.messages {
                messages.push(Message {
                    class,
                    name: decl.name.to_string(),
                    wire: format!("{}.{}", class.name, decl.name),
                    doc: decl.doc.to_string(),
                    session: decl.session,
                    params: decl.params.to_vec(),
                    result: decl.result,
                    roles: decl.roles,
                    is_async: decl.is_async,
                    errors: decl.errors,
                    map_keys_roles: decl.map_keys_roles,
                    hidden: false,
                    handler: Handler::Custom(decl.handler),
                });
            }
            if class.implicit {
                implicit_messages(class, &mut messages);
            }
        }
        let by_wire = messages
            .iter()
            .enumerate()
            .map(|(i, m)| (m.wire.clone(), i))
            .collect();
        let mut permissions: FxHashMap<String, Roles> = FxHashMap::default();
        for m in &messages {
            permissions.insert(m.wire.to_lowercase(), m.roles);
            for (key, roles) in m.map_keys_roles {
                permissions.insert(
                    format!("{}/key:{}", m.wire.to_lowercase(), key.to_lowercase()),
                    *roles,
                );
            }
        }
        for (perm, roles) in datamodel::EXTRA_PERMISSIONS {
            permissions.insert(perm.to_string(), *roles);
        }
        let role_permissions = datamodel::ROLE_NAMES
            .iter()
            .map(|role| (*role, role_permission_list(&permissions, role)))
            .collect();
        Api {
            messages,
            by_wire,
            permissions,
            role_permissions,
        }
    }

    /// Looks a wire name up, exactly (case-sensitive) or by xapi's alternative spelling
    /// `class_message` (which Python needs for `event_from`). Returns the message and
    /// whether the alias was used.
    pub fn lookup(&self, wire: &str) -> Option<(&Message, bool)> {
        if let Some(i) = self.by_wire.get(wire) {
            return Some((&self.messages[*i], false));
        }
        // `task_get_record` → `task.get_record`: the class name is the part before the
        // first underscore that names a class.
        let (class, rest) = wire.split_once('_')?;
        let i = self.by_wire.get(&format!("{class}.{rest}"))?;
        Some((&self.messages[*i], true))
    }

    /// Roles holding a permission; unknown permissions are held by no role (only the
    /// local superuser passes).
    pub fn roles_for(&self, permission: &str) -> Roles {
        self.permissions
            .get(permission)
            .copied()
            .unwrap_or(Roles::LOCAL_ROOT_ONLY)
    }

    /// What xapi puts in `session.rbac_permissions` for a role: the role name followed by
    /// every permission the role holds, sorted (empty for a name that is not a role).
    pub fn permissions_of_role(&self, role: &str) -> &[String] {
        self.role_permissions
            .get(role)
            .map(Vec::as_slice)
            .unwrap_or_default()
    }

    /// Sync wire names, for `system.listMethods`.
    pub fn list_methods(&self) -> Vec<String> {
        self.messages.iter().map(|m| m.wire.clone()).collect()
    }
}

/// Appends the messages xapi generates for a class (`datamodel_utils.ml`): a getter for
/// every non-internal field, `get_record`, `get_by_uuid`, `get_by_name_label`,
/// `get_all`, `get_all_records` (+ the hidden `_where` variants), and setters for RW
/// fields.
fn implicit_messages(class: &'static Class, out: &mut Vec<Message>) {
    let msg = |name: String, doc: String, params: Vec<Param>, result: Ty, imp: Implicit| {
        implicit(class, name, doc, params, result, imp)
    };
    out.push(Message {
        errors: &["HANDLE_INVALID"],
        ..msg(
            "get_record".into(),
            format!(
                "Get a record containing the current state of the given {}.",
                class.name
            ),
            vec![self_param(class)],
            Ty::Record(class.name),
            Implicit::GetRecord,
        )
    });
    out.push(Message {
        errors: &["UUID_INVALID"],
        ..msg(
            "get_by_uuid".into(),
            format!(
                "Get a reference to the {} instance with the specified UUID.",
                class.name
            ),
            vec![Param {
                name: "uuid",
                ty: Ty::String,
                doc: "UUID of object to return",
                default: None,
            }],
            Ty::Ref(class.name),
            Implicit::GetByUuid,
        )
    });
    if class.get_by_name_label {
        out.push(msg(
            "get_by_name_label".into(),
            format!("Get all the {} instances with the given label.", class.name),
            vec![Param {
                name: "label",
                ty: Ty::String,
                doc: "label of object to return",
                default: None,
            }],
            Ty::Set(match class.name {
                "task" => &Ty::Ref("task"),
                "pool" => &Ty::Ref("pool"),
                _ => &Ty::Ref("host"),
            }),
            Implicit::GetByNameLabel,
        ));
    }
    for field in class.fields.iter().filter(|f| !f.internal) {
        out.push(Message {
            errors: &["HANDLE_INVALID"],
            ..msg(
                format!("get_{}", field.name),
                format!("Get the {} field of the given {}.", field.name, class.name),
                vec![self_param(class)],
                field.ty,
                Implicit::Get(field),
            )
        });
        if field.qualifier == Qualifier::RW {
            setters(class, field, out);
        }
    }
    if class.get_all {
        let set_of_refs: &'static Ty = match class.name {
            "task" => &Ty::Ref("task"),
            "pool" => &Ty::Ref("pool"),
            _ => &Ty::Ref("host"),
        };
        let expr = || Param {
            name: "expr",
            ty: Ty::String,
            doc: "expression to filter the records (xapi's filter language)",
            default: None,
        };
        out.push(msg(
            "get_all".into(),
            format!(
                "Return a list of all the {}s known to the system.",
                class.name
            ),
            vec![],
            Ty::Set(set_of_refs),
            Implicit::GetAll,
        ));
        out.push(msg(
            "get_all_records".into(),
            format!(
                "Return a map of {} references to {} records for all {}s known to the system.",
                class.name, class.name, class.name
            ),
            vec![],
            Ty::RecordMap(class.name),
            Implicit::GetAllRecords,
        ));
        out.push(Message {
            hidden: true,
            errors: &["INVALID_VALUE"],
            ..msg(
                "get_all_where".into(),
                format!(
                    "Return the references of the {}s for which the expression holds.",
                    class.name
                ),
                vec![expr()],
                Ty::Set(set_of_refs),
                Implicit::GetAllWhere,
            )
        });
        out.push(Message {
            hidden: true,
            errors: &["INVALID_VALUE"],
            ..msg(
                "get_all_records_where".into(),
                format!(
                    "Return a map of {} references to {} records for which the expression holds.",
                    class.name, class.name
                ),
                vec![expr()],
                Ty::RecordMap(class.name),
                Implicit::GetAllRecordsWhere,
            )
        });
    }
}

/// An implicit message: session-taking, sync, open to all roles unless overridden.
fn implicit(
    class: &'static Class,
    name: String,
    doc: String,
    params: Vec<Param>,
    result: Ty,
    imp: Implicit,
) -> Message {
    Message {
        class,
        wire: format!("{}.{}", class.name, name),
        name,
        doc,
        session: true,
        params,
        result,
        roles: Roles::ALL,
        is_async: false,
        errors: &[],
        map_keys_roles: &[],
        hidden: false,
        handler: Handler::Implicit(imp),
    }
}

/// `set_<f>`, and for maps `add_to_<f>`/`remove_from_<f>`, with the class's default
/// writer roles (pool-admin for session, as xapi's `messages_default_allowed_roles`).
fn setters(class: &'static Class, field: &'static Field, out: &mut Vec<Message>) {
    let mk = |name: String, doc: String, params: Vec<Param>, imp: Implicit| Message {
        roles: Roles::POOL_ADMIN,
        errors: &["HANDLE_INVALID"],
        ..implicit(class, name, doc, params, Ty::Void, imp)
    };
    out.push(mk(
        format!("set_{}", field.name),
        format!("Set the {} field of the given {}.", field.name, class.name),
        vec![
            self_param(class),
            Param {
                name: "value",
                ty: field.ty,
                doc: "New value to set",
                default: None,
            },
        ],
        Implicit::Set(field),
    ));
    if let Ty::Map(..) = field.ty {
        out.push(mk(
            format!("add_to_{}", field.name),
            format!(
                "Add the given key-value pair to the {} field of the given {}.",
                field.name, class.name
            ),
            vec![
                self_param(class),
                Param {
                    name: "key",
                    ty: Ty::String,
                    doc: "Key to add",
                    default: None,
                },
                Param {
                    name: "value",
                    ty: Ty::String,
                    doc: "Value to add",
                    default: None,
                },
            ],
            Implicit::AddToMap(field),
        ));
        out.push(mk(
            format!("remove_from_{}", field.name),
            format!("Remove the given key and its corresponding value from the {} field of the given {}. If the key is not in that Map, then do nothing.", field.name, class.name),
            vec![
                self_param(class),
                Param { name: "key", ty: Ty::String, doc: "Key to remove", default: None },
            ],
            Implicit::RemoveFromMap(field),
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_task_field_has_a_getter_and_no_internal_one_does() {
        let api = Api::build();
        for f in datamodel::TASK.fields {
            let wire = format!("task.get_{}", f.name);
            assert_eq!(api.lookup(&wire).is_some(), !f.internal, "{wire}");
        }
    }

    #[test]
    fn alias_lookup_reports_alias() {
        let api = Api::build();
        let (m, alias) = api.lookup("task_get_record").unwrap();
        assert_eq!(m.wire, "task.get_record");
        assert!(alias);
        assert!(api.lookup("task.get_record").is_some_and(|(_, a)| !a));
        assert!(api.lookup("task.nope").is_none());
        assert!(api.lookup("Task.get_record").is_none());
    }

    #[test]
    fn permission_table() {
        let api = Api::build();
        assert_eq!(api.roles_for("task.cancel"), Roles::ALL);
        assert_eq!(api.roles_for("task.destroy/any"), Roles::POOL_OP);
        assert_eq!(
            api.roles_for("task.add_to_other_config/key:xencenteruuid"),
            Roles::VM_OP
        );
        assert_eq!(api.roles_for("session.set_other_config"), Roles::POOL_ADMIN);
        assert_eq!(api.roles_for("task_get_record"), Roles::LOCAL_ROOT_ONLY);
        let ro = api.permissions_of_role("read-only");
        assert_eq!(ro[0], "read-only");
        assert!(ro.contains(&"task.create".to_string()));
        assert!(!ro.contains(&"task.destroy/any".to_string()));
    }
}
