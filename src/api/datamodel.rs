//! The datamodel: every class, field and message xapi-taskd serves, as one declarative table.
//!
//! This mirrors xen-api's `ocaml/idl/datamodel.ml`, from which xapi generates its server,
//! RBAC tables and docs. Here the same table drives dispatch (wire names, parameter
//! counts and types), the generic getters and record marshalling, RBAC (which roles may
//! call what, and the permission list in `session.rbac_permissions`), `system.listMethods`
//! and `docs/api.md`. A field or message added here appears everywhere at once.
//!
//! Implicit messages (field getters, `get_record`, `get_by_uuid`, `get_all*`...) are not
//! written out: [`crate::api::Api::build`] derives them from the [`Class`] flags, as
//! xapi's `datamodel_utils.ml` does.

use super::handlers::Custom;

/// Roles as a bit set. Bit order is xapi's static role order (decreasing privilege).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Roles(pub u8);

/// xapi's role names in its own order (`ocaml/idl/datamodel_roles.ml`, `ordered`).
pub const ROLE_NAMES: [&str; 7] = [
    "pool-admin",
    "pool-operator",
    "vm-power-admin",
    "vm-admin",
    "vm-operator",
    "client-cert",
    "read-only",
];

impl Roles {
    /// Only the local superuser (xapi's `_R_LOCAL_ROOT_ONLY`).
    pub const LOCAL_ROOT_ONLY: Roles = Roles(0);
    pub const POOL_ADMIN: Roles = Roles(0b000_0001);
    pub const POOL_OP: Roles = Roles(0b000_0011);
    pub const VM_OP: Roles = Roles(0b001_1111);
    /// All seven roles, including the internal `client-cert` (`_R_READ_ONLY` = `_R_ALL`).
    pub const ALL: Roles = Roles(0b111_1111);

    /// The role's bit, or None for a name that is not one of xapi's roles.
    pub fn of_name(name: &str) -> Option<Roles> {
        ROLE_NAMES
            .iter()
            .position(|r| *r == name)
            .map(|i| Roles(1 << i))
    }

    pub fn contains(self, other: Roles) -> bool {
        other.0 != 0 && self.0 & other.0 == other.0
    }

    /// Role names in xapi's order, as listed in `RBAC_PERMISSION_DENIED` messages.
    pub fn names(self) -> Vec<&'static str> {
        ROLE_NAMES
            .iter()
            .enumerate()
            .filter(|(i, _)| self.0 & (1 << i) != 0)
            .map(|(_, n)| *n)
            .collect()
    }
}

/// An enumeration type: its datamodel name and values with their documentation.
#[derive(Debug)]
pub struct EnumType {
    pub name: &'static str,
    pub values: &'static [(&'static str, &'static str)],
}

/// API types (xapi's `Datamodel_types.ty`, the subset in scope).
#[derive(Debug, Clone, Copy)]
pub enum Ty {
    String,
    Int,
    Float,
    Bool,
    DateTime,
    /// A reference to an object of the named class.
    Ref(&'static str),
    Enum(&'static EnumType),
    Set(&'static Ty),
    Map(&'static Ty, &'static Ty),
    /// The record of the named class.
    Record(&'static str),
    /// `(ref → record) map` as returned by `get_all_records`.
    RecordMap(&'static str),
    /// A custom-marshalled result, documented by its description (`event.from`'s batch).
    Opaque(&'static str),
    Void,
}

impl Ty {
    /// The type as the API docs spell it (`string`, `task ref`, `(string → string) map`).
    pub fn doc_name(&self) -> String {
        match self {
            Ty::String => "string".into(),
            Ty::Int => "int".into(),
            Ty::Float => "float".into(),
            Ty::Bool => "bool".into(),
            Ty::DateTime => "datetime".into(),
            Ty::Ref(c) => format!("{c} ref"),
            Ty::Enum(e) => format!("enum {}", e.name),
            Ty::Set(t) => format!("{} set", t.doc_name()),
            Ty::Map(k, v) => format!("({} → {}) map", k.doc_name(), v.doc_name()),
            Ty::Record(c) => format!("{c} record"),
            Ty::RecordMap(c) => format!("({c} ref → {c} record) map"),
            Ty::Opaque(d) => d.to_string(),
            Ty::Void => "void".into(),
        }
    }
}

/// Who may write a field through generated setters (xapi's qualifiers).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Qualifier {
    /// Read/write: gets generated `set_`, and for maps `add_to_`/`remove_from_`.
    RW,
    /// Read-only, set at creation.
    StaticRO,
    /// Read-only, changed by the server.
    DynamicRO,
}

#[derive(Debug)]
pub struct Field {
    /// Wire name (`name_label`).
    pub name: &'static str,
    /// Database column name (`name__label`), used by `get_all_records_where`.
    pub column: &'static str,
    pub ty: Ty,
    pub qualifier: Qualifier,
    /// Internal fields exist in the database (and filters) but not in records or getters.
    pub internal: bool,
    pub doc: &'static str,
}

#[derive(Debug, Clone, Copy)]
pub struct Param {
    pub name: &'static str,
    pub ty: Ty,
    pub doc: &'static str,
    /// Defaulted parameters may be omitted (only `session.login_with_password` has them).
    pub default: Option<&'static str>,
}

/// An explicitly declared message (implicit ones are derived from the class flags).
#[derive(Debug)]
pub struct MessageDecl {
    pub name: &'static str,
    pub doc: &'static str,
    /// False only for `session.login_with_password`, which takes no session argument.
    pub session: bool,
    pub params: &'static [Param],
    pub result: Ty,
    pub roles: Roles,
    /// Whether `Async.<class>.<name>` exists (xapi's default `Async` flag).
    pub is_async: bool,
    pub errors: &'static [&'static str],
    /// Protected map keys: a call whose `key` argument equals one of these needs the
    /// permission `<message>/key:<lower-cased key>` with these roles instead of the base one.
    pub map_keys_roles: &'static [(&'static str, Roles)],
    pub handler: Custom,
}

/// A class and the flags from which its implicit messages are generated.
#[derive(Debug)]
pub struct Class {
    pub name: &'static str,
    pub doc: &'static str,
    pub fields: &'static [Field],
    pub messages: &'static [MessageDecl],
    /// `get_all`, `get_all_records` and (hidden from docs) `get_all_where`, `get_all_records_where`.
    pub get_all: bool,
    /// Whether `get_by_name_label` exists (classes with a `name_label` field).
    pub get_by_name_label: bool,
    /// Whether the class gets implicit messages at all (`event` has none: its fields
    /// only describe the records that `event.next`/`event.from` return).
    pub implicit: bool,
}

/// Permissions that are not a message's own name (`extra_permissions` in datamodel.ml).
pub const EXTRA_PERMISSIONS: &[(&str, Roles)] = &[
    ("task.destroy/any", Roles::POOL_OP),
    ("host.call_extension", Roles::POOL_ADMIN),
];

pub const TASK_STATUS: EnumType = EnumType {
    name: "task_status_type",
    values: &[
        ("pending", "task is in progress"),
        ("success", "task was completed successfully"),
        ("failure", "task has failed"),
        ("cancelling", "task is being cancelled"),
        ("cancelled", "task has been cancelled"),
    ],
};

pub const TASK_ALLOWED_OPERATIONS: EnumType = EnumType {
    name: "task_allowed_operations",
    values: &[
        ("cancel", "refers to the operation \"cancel\""),
        ("destroy", "refers to the operation \"destroy\""),
    ],
};

const fn field(name: &'static str, ty: Ty, doc: &'static str) -> Field {
    Field {
        name,
        column: name,
        ty,
        qualifier: Qualifier::DynamicRO,
        internal: false,
        doc,
    }
}

const fn internal(name: &'static str, ty: Ty, doc: &'static str) -> Field {
    Field {
        internal: true,
        ..field(name, ty, doc)
    }
}

const fn param(name: &'static str, ty: Ty, doc: &'static str) -> Param {
    Param {
        name,
        ty,
        doc,
        default: None,
    }
}

const STRING_SET: Ty = Ty::Set(&Ty::String);
const STRING_MAP: Ty = Ty::Map(&Ty::String, &Ty::String);

/// The task other_config keys that need vm-operator or better to add or remove.
pub const TASK_PROTECTED_KEYS: &[(&str, Roles)] = &[
    ("applies_to", Roles::VM_OP),
    ("XenCenterUUID", Roles::VM_OP),
    ("XenCenterMeddlingActionTitle", Roles::VM_OP),
];

/// A session-taking, sync-only message open to all roles, returning void: the common
/// case of the task and event classes; declarations override what differs.
const fn msg(
    name: &'static str,
    doc: &'static str,
    params: &'static [Param],
    handler: Custom,
) -> MessageDecl {
    MessageDecl {
        name,
        doc,
        session: true,
        params,
        result: Ty::Void,
        roles: Roles::ALL,
        is_async: false,
        errors: &[],
        map_keys_roles: &[],
        handler,
    }
}

/// The identity fields most classes start with (xapi's `uid` and `names` helpers).
const UUID: Field = field("uuid", Ty::String, "Unique identifier/object reference");
const NAME_LABEL: Field = Field {
    column: "name__label",
    ..field("name_label", Ty::String, "a human-readable name")
};
const NAME_DESCRIPTION: Field = Field {
    column: "name__description",
    ..field(
        "name_description",
        Ty::String,
        "a notes field containing human-readable description",
    )
};

const TASK_SELF: Param = param("self", Ty::Ref("task"), "Reference to the task object");

pub const TASK: Class = Class {
    implicit: true,
    name: "task",
    doc: "A long-running asynchronous task",
    get_all: true,
    get_by_name_label: true,
    fields: &[
        UUID,
        NAME_LABEL,
        NAME_DESCRIPTION,
        field(
            "allowed_operations",
            Ty::Set(&Ty::Enum(&TASK_ALLOWED_OPERATIONS)),
            "list of the operations allowed in this state. This list is advisory only and the server state may have changed by the time this field is read by a client.",
        ),
        field(
            "current_operations",
            Ty::Map(&Ty::String, &Ty::Enum(&TASK_ALLOWED_OPERATIONS)),
            "links each of the running tasks using this object (by reference) to a current_operation enum which describes the nature of the task.",
        ),
        field("created", Ty::DateTime, "Time task was created"),
        field(
            "finished",
            Ty::DateTime,
            "Time task finished (i.e. succeeded or failed). If task-status is pending, then the value of this field has no meaning",
        ),
        field(
            "status",
            Ty::Enum(&TASK_STATUS),
            "current status of the task",
        ),
        internal(
            "session",
            Ty::Ref("session"),
            "the session that created the task",
        ),
        field(
            "resident_on",
            Ty::Ref("host"),
            "the host on which the task is running",
        ),
        field(
            "progress",
            Ty::Float,
            "This field contains the estimated fraction of the task which is complete. This field should not be used to determine whether the task is complete - for this the status field of the task should be used.",
        ),
        internal(
            "externalpid",
            Ty::Int,
            "PID of an external program the task waits on (-1 if none)",
        ),
        internal(
            "stunnelpid",
            Ty::Int,
            "PID of the stunnel process of a forwarded task (-1 if none)",
        ),
        internal(
            "forwarded",
            Ty::Bool,
            "True if this task has been forwarded to a slave",
        ),
        internal(
            "forwarded_to",
            Ty::Ref("host"),
            "The host to which the task has been forwarded",
        ),
        field(
            "type",
            Ty::String,
            "if the task has completed successfully, this field contains the type of the encoded result (i.e. name of the class whose reference is in the result field). Undefined otherwise.",
        ),
        field(
            "result",
            Ty::String,
            "if the task has completed successfully, this field contains the result value (either Void or an object reference). Undefined otherwise.",
        ),
        field(
            "error_info",
            STRING_SET,
            "if the task has failed, this field contains the set of associated error strings. Undefined otherwise.",
        ),
        field("other_config", STRING_MAP, "additional configuration"),
        field(
            "subtask_of",
            Ty::Ref("task"),
            "Ref pointing to the task this is a substask of.",
        ),
        field(
            "subtasks",
            Ty::Set(&Ty::Ref("task")),
            "List pointing to all the substasks.",
        ),
        field(
            "backtrace",
            Ty::String,
            "Function call trace for debugging.",
        ),
    ],
    messages: &[
        MessageDecl {
            result: Ty::Ref("task"),
            ..msg(
                "create",
                "Create a new task object which must be manually destroyed.",
                &[
                    param("label", Ty::String, "short label for the new task"),
                    param(
                        "description",
                        Ty::String,
                        "longer description for the new task",
                    ),
                ],
                Custom::TaskCreate,
            )
        },
        msg(
            "destroy",
            "Destroy the task object",
            &[TASK_SELF],
            Custom::TaskDestroy,
        ),
        MessageDecl {
            is_async: true,
            errors: &["OPERATION_NOT_ALLOWED"],
            ..msg(
                "cancel",
                "Request that a task be cancelled. Note that a task may fail to be cancelled and may complete or fail normally and note that, even when a task does cancel, it might take an arbitrary amount of time.",
                &[param("task", Ty::Ref("task"), "The task")],
                Custom::TaskCancel,
            )
        },
        msg(
            "set_status",
            "Set the task status",
            &[
                TASK_SELF,
                param(
                    "value",
                    Ty::Enum(&TASK_STATUS),
                    "task status value to be set",
                ),
            ],
            Custom::TaskSetStatus,
        ),
        msg(
            "set_progress",
            "Set the task progress",
            &[
                TASK_SELF,
                param("value", Ty::Float, "Task progress value to be set"),
            ],
            Custom::TaskSetProgress,
        ),
        msg(
            "set_result",
            "Set the task result",
            &[
                TASK_SELF,
                param("value", Ty::String, "Task result to be set"),
            ],
            Custom::TaskSetResult,
        ),
        msg(
            "set_error_info",
            "Set the task error info",
            &[
                TASK_SELF,
                param("value", STRING_SET, "Task error info to be set"),
            ],
            Custom::TaskSetErrorInfo,
        ),
        MessageDecl {
            is_async: true,
            map_keys_roles: TASK_PROTECTED_KEYS,
            ..msg(
                "add_to_other_config",
                "Add the given key-value pair to the other_config field of the given task.",
                &[
                    param("self", Ty::Ref("task"), "Task object to modify"),
                    param("key", Ty::String, "Key to add"),
                    param("value", Ty::String, "Value to add"),
                ],
                Custom::TaskAddToOtherConfig,
            )
        },
        MessageDecl {
            is_async: true,
            map_keys_roles: TASK_PROTECTED_KEYS,
            ..msg(
                "remove_from_other_config",
                "Remove the given key and its corresponding value from the other_config field of the given task. If the key is not in that Map, then do nothing.",
                &[
                    param("self", Ty::Ref("task"), "Task object to modify"),
                    param("key", Ty::String, "Key of entry to remove"),
                ],
                Custom::TaskRemoveFromOtherConfig,
            )
        },
        MessageDecl {
            is_async: true,
            ..msg(
                "set_other_config",
                "Set the other_config field of the given task.",
                &[
                    param("self", Ty::Ref("task"), "Task object to modify"),
                    param("value", STRING_MAP, "New value to set"),
                ],
                Custom::TaskSetOtherConfig,
            )
        },
    ],
};

pub const SESSION: Class = Class {
    implicit: true,
    name: "session",
    doc: "A session",
    get_all: false,
    get_by_name_label: false,
    fields: &[
        UUID,
        field("this_host", Ty::Ref("host"), "Currently connected host"),
        field(
            "this_user",
            Ty::Ref("user"),
            "Currently connected user (deprecated, always OpaqueRef:NULL)",
        ),
        field(
            "last_active",
            Ty::DateTime,
            "Timestamp for last time session was active",
        ),
        field(
            "pool",
            Ty::Bool,
            "True if this session relates to a intra-pool login, false otherwise",
        ),
        Field {
            qualifier: Qualifier::RW,
            ..field("other_config", STRING_MAP, "additional configuration")
        },
        field(
            "is_local_superuser",
            Ty::Bool,
            "true iff this session was created using local superuser credentials",
        ),
        field(
            "subject",
            Ty::Ref("subject"),
            "references the subject instance that created the session. If a session instance has is_local_superuser set, then the value of this field is undefined.",
        ),
        field(
            "validation_time",
            Ty::DateTime,
            "time when session was last validated",
        ),
        field(
            "auth_user_sid",
            Ty::String,
            "the subject identifier of the user that was externally authenticated. If a session instance has is_local_superuser set, then the value of this field is undefined.",
        ),
        field(
            "auth_user_name",
            Ty::String,
            "the subject name of the user that was externally authenticated. If a session instance has is_local_superuser set, then the value of this field is undefined.",
        ),
        field(
            "rbac_permissions",
            STRING_SET,
            "list with all RBAC permissions for this session",
        ),
        field(
            "tasks",
            Ty::Set(&Ty::Ref("task")),
            "list of tasks created using the current session",
        ),
        field(
            "parent",
            Ty::Ref("session"),
            "references the parent session that created this session",
        ),
        field(
            "originator",
            Ty::String,
            "a key string provided by a API user to distinguish itself from other users sharing the same login name",
        ),
        field(
            "client_certificate",
            Ty::Bool,
            "indicates whether this session was authenticated using a client certificate",
        ),
    ],
    messages: &[
        MessageDecl {
            name: "login_with_password",
            doc: "Attempt to authenticate the user, returning a session reference if successful",
            session: false,
            params: &[
                param("uname", Ty::String, "Username for login."),
                param("pwd", Ty::String, "Password for login."),
                Param {
                    default: Some("1.1"),
                    ..param("version", Ty::String, "Client API version.")
                },
                Param {
                    default: Some(""),
                    ..param(
                        "originator",
                        Ty::String,
                        "Key string for distinguishing different API users sharing the same login name.",
                    )
                },
            ],
            result: Ty::Ref("session"),
            roles: Roles::ALL,
            is_async: false,
            errors: &["SESSION_AUTHENTICATION_FAILED", "HOST_IS_SLAVE"],
            map_keys_roles: &[],
            handler: Custom::SessionLogin,
        },
        MessageDecl {
            name: "logout",
            doc: "Log out of a session",
            session: true,
            params: &[],
            result: Ty::Void,
            roles: Roles::ALL,
            is_async: false,
            errors: &[],
            map_keys_roles: &[],
            handler: Custom::SessionLogout,
        },
    ],
};

pub const POOL: Class = Class {
    implicit: true,
    name: "pool",
    doc: "Pool-wide information (xapi-taskd serves a single-host pool)",
    get_all: true,
    get_by_name_label: true,
    fields: &[
        UUID,
        NAME_LABEL,
        NAME_DESCRIPTION,
        field("master", Ty::Ref("host"), "The host that is pool master"),
        field("other_config", STRING_MAP, "additional configuration"),
    ],
    messages: &[],
};

pub const HOST: Class = Class {
    implicit: true,
    name: "host",
    doc: "A physical host (here: the machine xapi-taskd runs on)",
    get_all: true,
    get_by_name_label: true,
    fields: &[
        UUID,
        NAME_LABEL,
        NAME_DESCRIPTION,
        field("API_version_major", Ty::Int, "major version number"),
        field("API_version_minor", Ty::Int, "minor version number"),
        field("API_version_vendor", Ty::String, "identification of vendor"),
        field(
            "API_version_vendor_implementation",
            STRING_MAP,
            "details of vendor implementation",
        ),
        field("enabled", Ty::Bool, "True if the host is currently enabled"),
        field("software_version", STRING_MAP, "version strings"),
        field("other_config", STRING_MAP, "additional configuration"),
        field("hostname", Ty::String, "The hostname of this host"),
        field(
            "address",
            Ty::String,
            "The address by which this host can be contacted from any other host in the pool",
        ),
    ],
    messages: &[],
};

pub const EVENT_OPERATION: EnumType = EnumType {
    name: "event_operation",
    values: &[
        ("add", "An object has been created"),
        ("del", "An object has been deleted"),
        ("mod", "An object has been modified"),
    ],
};

pub const EVENT: Class = Class {
    name: "event",
    doc: "Asynchronous event registration and handling",
    implicit: false,
    get_all: false,
    get_by_name_label: false,
    fields: &[
        field(
            "id",
            Ty::Int,
            "An ID, monotonically increasing, and local to the current session",
        ),
        field(
            "timestamp",
            Ty::DateTime,
            "The time at which the event occurred",
        ),
        field(
            "class",
            Ty::String,
            "The name of the class of the object that changed",
        ),
        field(
            "operation",
            Ty::Enum(&EVENT_OPERATION),
            "The operation that was performed",
        ),
        field("ref", Ty::String, "A reference to the object that changed"),
        field(
            "snapshot",
            Ty::Opaque("record"),
            "The record of the object after the change (absent for `del` in event.from)",
        ),
    ],
    messages: &[
        MessageDecl {
            is_async: true,
            ..msg(
                "register",
                "Registers this session with the event system for a set of given classes. This method is deprecated in favour of event.from.",
                &[param(
                    "classes",
                    STRING_SET,
                    "the classes for which we want events: \"*\", \"class\" or \"class/ref\"",
                )],
                Custom::EventRegister,
            )
        },
        MessageDecl {
            is_async: true,
            ..msg(
                "unregister",
                "Removes this session's registration with the event system for a set of given classes. This method is deprecated in favour of event.from.",
                &[param(
                    "classes",
                    STRING_SET,
                    "remove this session's registration for these classes",
                )],
                Custom::EventUnregister,
            )
        },
        MessageDecl {
            errors: &["SESSION_NOT_REGISTERED", "EVENTS_LOST"],
            result: Ty::Opaque("event record set"),
            ..msg(
                "next",
                "Blocking call which returns a (possibly empty) batch of events, one per write since the last call. This method is deprecated in favour of event.from.",
                &[],
                Custom::EventNext,
            )
        },
        MessageDecl {
            errors: &["SESSION_NOT_REGISTERED", "EVENT_FROM_TOKEN_PARSE_FAILURE"],
            result: Ty::Opaque(
                "struct {events: event record set, valid_ref_counts: (string → int32) map, token: string}",
            ),
            ..msg(
                "from",
                "Blocking call which returns, coalesced per object, what changed in the given classes since the token, or an empty batch when the timeout expires.",
                &[
                    param(
                        "classes",
                        STRING_SET,
                        "register for events for the indicated classes: \"*\", \"class\" or \"class/ref\"",
                    ),
                    param(
                        "token",
                        Ty::String,
                        "return events after this token (\"\" for everything)",
                    ),
                    param(
                        "timeout",
                        Ty::Float,
                        "return after this many seconds if nothing happened",
                    ),
                ],
                Custom::EventFrom,
            )
        },
        MessageDecl {
            result: Ty::Int,
            ..msg(
                "get_current_id",
                "Return the ID of the most recent legacy event",
                &[],
                Custom::EventGetCurrentId,
            )
        },
        MessageDecl {
            result: Ty::String,
            ..msg(
                "inject",
                "Injects an artificial `mod` event on the given object and returns the corresponding token",
                &[
                    param("class", Ty::String, "class of the object"),
                    param("ref", Ty::String, "a reference to the object"),
                ],
                Custom::EventInject,
            )
        },
    ],
};

/// Every class served, in the order `system.listMethods` and the docs list them.
pub const CLASSES: &[&Class] = &[&SESSION, &TASK, &EVENT, &POOL, &HOST];

/// The XAPI version this server reports (`ocaml/idl/api_version.ml` at the reference commit).
pub const API_VERSION_MAJOR: i64 = 2;
pub const API_VERSION_MINOR: i64 = 23;

pub fn class(name: &str) -> Option<&'static Class> {
    CLASSES.iter().copied().find(|c| c.name == name)
}
