//! Names of the message implementations the datamodel table points at.
//!
//! The table stays declarative: it names a handler, and [`crate::api::dispatch`] maps the
//! name to code. Hand-written code exists only where xapi has real semantics.

use super::datamodel::Field;

/// Messages with hand-written semantics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Custom {
    SessionLogin,
    SessionLogout,
    TaskCreate,
    TaskDestroy,
    TaskCancel,
    TaskSetStatus,
    TaskSetProgress,
    TaskSetResult,
    TaskSetErrorInfo,
    TaskAddToOtherConfig,
    TaskRemoveFromOtherConfig,
    TaskSetOtherConfig,
    EventRegister,
    EventUnregister,
    EventNext,
    EventFrom,
    EventGetCurrentId,
    EventInject,
}

impl Custom {
    /// Whether the message's effect is a write (its decision is checked against the store
    /// when it commits, so it needs no sync before it runs). Reads and waits are not.
    pub fn writes(self) -> bool {
        !matches!(
            self,
            Custom::EventNext
                | Custom::EventFrom
                | Custom::EventGetCurrentId
                | Custom::EventRegister
                | Custom::EventUnregister
        )
    }
}

/// Messages derived from the datamodel, served generically for every class.
#[derive(Debug, Clone, Copy)]
pub enum Implicit {
    Get(&'static Field),
    GetRecord,
    GetByUuid,
    GetByNameLabel,
    GetAll,
    GetAllRecords,
    GetAllWhere,
    GetAllRecordsWhere,
    Set(&'static Field),
    AddToMap(&'static Field),
    RemoveFromMap(&'static Field),
}

impl Implicit {
    /// Whether the message writes (the setters).
    pub fn writes(self) -> bool {
        matches!(
            self,
            Implicit::Set(_) | Implicit::AddToMap(_) | Implicit::RemoveFromMap(_)
        )
    }
}
