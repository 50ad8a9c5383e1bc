//! Typed rows, one struct per class. Field names follow the datamodel's wire names; the
//! API layer maps them to values through the datamodel table (`api::record`).

use serde::{Deserialize, Serialize};
use thin_vec::ThinVec;

use super::{NULL_REF, Stamp, now};

/// `task_status_type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TaskStatus {
    Pending,
    Success,
    Failure,
    Cancelling,
    Cancelled,
}

impl TaskStatus {
    pub const ALL: [TaskStatus; 5] = [
        TaskStatus::Pending,
        TaskStatus::Success,
        TaskStatus::Failure,
        TaskStatus::Cancelling,
        TaskStatus::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            TaskStatus::Pending => "pending",
            TaskStatus::Success => "success",
            TaskStatus::Failure => "failure",
            TaskStatus::Cancelling => "cancelling",
            TaskStatus::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<TaskStatus> {
        TaskStatus::ALL.into_iter().find(|t| t.as_str() == s)
    }

    /// xapi's `status_is_completed`: `cancelling` is not completed.
    pub fn is_completed(self) -> bool {
        matches!(
            self,
            TaskStatus::Success | TaskStatus::Failure | TaskStatus::Cancelled
        )
    }
}

/// A task's string fields. Most are short or constant (`OpaqueRef:NULL`, `<none/>`,
/// `()`, short labels): `CompactString` keeps up to 24 bytes inline, so they cost no
/// allocation — with a million tasks, that is a few hundred MB.
pub type Str = compact_str::CompactString;

/// A task. Its lists are `ThinVec`s: 8 bytes and no allocation while empty (most are),
/// against 24 for a `Vec`; with a million rows that is 80 MB.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskRow {
    /// Kept as 16 bytes; shown in xapi's form (lower-case, hyphenated), which is the
    /// only form a lookup by uuid accepts.
    pub uuid: uuid::Uuid,
    pub name_label: Str,
    pub name_description: Str,
    /// Values of `task_allowed_operations`.
    pub allowed_operations: ThinVec<String>,
    /// key → `task_allowed_operations` value.
    pub current_operations: ThinVec<(String, String)>,
    pub created: i64,
    pub finished: i64,
    pub status: TaskStatus,
    /// Internal: the session that created the task (the owner, for RBAC).
    pub session: Str,
    pub resident_on: Str,
    #[serde(with = "any_float")]
    pub progress: f64,
    pub externalpid: i64,
    pub stunnelpid: i64,
    pub forwarded: bool,
    pub forwarded_to: Str,
    pub type_: Str,
    pub result: Str,
    pub error_info: ThinVec<String>,
    pub other_config: ThinVec<(String, String)>,
    pub subtask_of: Str,
    /// Maintained by the database from the children's `subtask_of`.
    pub subtasks: ThinVec<String>,
    pub backtrace: Str,
    pub stamp: Stamp,
}

impl TaskRow {
    /// A task with xapi's initial values (`TaskHelper.make`, spec §4.3).
    pub fn new(label: &str, description: &str, session: &str, host: &str) -> TaskRow {
        TaskRow {
            uuid: uuid::Uuid::new_v4(),
            name_label: label.into(),
            name_description: description.into(),
            allowed_operations: ThinVec::new(),
            current_operations: ThinVec::new(),
            created: now(),
            finished: 0,
            status: TaskStatus::Pending,
            session: session.into(),
            resident_on: host.into(),
            progress: 0.0,
            externalpid: -1,
            stunnelpid: -1,
            forwarded: false,
            forwarded_to: Str::const_new(NULL_REF),
            type_: Str::const_new("<none/>"),
            result: Str::default(),
            error_info: ThinVec::new(),
            other_config: ThinVec::new(),
            subtask_of: Str::const_new(NULL_REF),
            subtasks: ThinVec::new(),
            backtrace: Str::const_new("()"),
            stamp: Stamp::default(),
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SessionRow {
    pub uuid: String,
    pub this_host: String,
    pub this_user: String,
    pub last_active: i64,
    pub pool: bool,
    pub other_config: Vec<(String, String)>,
    pub is_local_superuser: bool,
    pub subject: String,
    pub validation_time: i64,
    pub auth_user_sid: String,
    pub auth_user_name: String,
    /// The role the user had at login (None for the local superuser). Permissions are
    /// fixed at login, as in xapi: a role change takes effect at the next login.
    pub role: Option<String>,
    /// Maintained by the database: tasks whose `session` is this one. A set (a session
    /// may own a million tasks; removing one must not scan them all), sharing the
    /// tasks' refs; not stored (rebuilt from the tasks' `session` at start, so that a
    /// new task does not rewrite its session's row).
    #[serde(skip)]
    pub tasks: std::collections::HashSet<std::sync::Arc<str>>,
    pub parent: String,
    pub originator: String,
    pub client_certificate: bool,
    /// The session's legacy `event.register` subscription, if it has one. Not stored: the
    /// legacy event queue does not survive a restart, so neither do registrations (the
    /// client gets `SESSION_NOT_REGISTERED` and registers again).
    #[serde(skip)]
    pub legacy_events: Option<LegacySubscription>,
    /// The revision of the stored row, for a shared backend's compares (0 locally).
    #[serde(skip)]
    pub revision: u64,
}

impl SessionRow {
    /// A copy of the stored fields, without what the database maintains (`tasks`, the
    /// legacy subscription): what a decision writes back when it changes a session.
    pub fn fields(&self) -> SessionRow {
        SessionRow {
            uuid: self.uuid.clone(),
            this_host: self.this_host.clone(),
            this_user: self.this_user.clone(),
            last_active: self.last_active,
            pool: self.pool,
            other_config: self.other_config.clone(),
            is_local_superuser: self.is_local_superuser,
            subject: self.subject.clone(),
            validation_time: self.validation_time,
            auth_user_sid: self.auth_user_sid.clone(),
            auth_user_name: self.auth_user_name.clone(),
            role: self.role.clone(),
            tasks: Default::default(),
            parent: self.parent.clone(),
            originator: self.originator.clone(),
            client_certificate: self.client_certificate,
            legacy_events: None,
            revision: self.revision,
        }
    }
}

/// A session's subscriptions for `event.next`, and the id of the last event it was given.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct LegacySubscription {
    pub subs: Vec<String>,
    pub last_id: u64,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct PoolRow {
    pub uuid: String,
    pub name_label: String,
    pub name_description: String,
    pub master: String,
    pub other_config: Vec<(String, String)>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct HostRow {
    pub uuid: String,
    pub name_label: String,
    pub name_description: String,
    pub api_version_major: i64,
    pub api_version_minor: i64,
    pub api_version_vendor: String,
    pub api_version_vendor_implementation: Vec<(String, String)>,
    pub enabled: bool,
    pub software_version: Vec<(String, String)>,
    pub other_config: Vec<(String, String)>,
    pub hostname: String,
    pub address: String,
}

/// Serde for floats that may be NaN or infinite (a client may `set_progress` to any
/// double; JSON has no literal for those, so they are written as strings).
mod any_float {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<S: Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
        if v.is_finite() {
            v.serialize(s)
        } else {
            s.serialize_str(&v.to_string())
        }
    }

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Repr {
        Number(f64),
        Text(String),
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
        match Repr::deserialize(d)? {
            Repr::Number(v) => Ok(v),
            Repr::Text(t) => t.parse().map_err(serde::de::Error::custom),
        }
    }
}
