//! Rows → values, driven by the datamodel's field list.
//!
//! The one place where a typed row meets the table: [`encode_field`] names each stored
//! field once, and getters, records, event snapshots and filter strings all go through it
//! (as a [`Value`] through [`field_value`] and [`record`], or straight into a reply's
//! codec through [`encode_record`]). A unit test checks that every declared field of
//! every class is covered.

use time::OffsetDateTime;
use time::macros::format_description;

use super::datamodel::{Class, Field, Ty};
use std::sync::OnceLock;

use crate::db::{HostRow, PoolRow, Row, SessionRow, TaskRow, dbstring};
use crate::wire::encode::{Builder, Codec, Encoder, KnownMember, ReplyBuffer, ViewEncoder};
use crate::wire::jsonrpc::JsonEncoder;
use crate::wire::value::Value;
use crate::wire::xmlrpc::XmlEncoder;

/// xapi's date form, `Date.to_rfc3339`: `YYYYMMDDTHH:MM:SSZ`, always UTC.
pub fn format_date(unix: i64) -> String {
    with_date(unix, str::to_string)
}

/// Calls `f` with the date text. Every record carries two dates, so the usual years (0 to
/// 9999) are formatted by hand from the day number, on the stack (the `time` crate's
/// formatter cost 1,500 instructions a date); other years go through `time`, which
/// decides their form.
fn with_date<T>(unix: i64, f: impl FnOnce(&str) -> T) -> T {
    const YEAR_0: i64 = -62_167_219_200; // 0000-01-01T00:00:00Z
    const YEAR_10000: i64 = 253_402_300_800;
    if (YEAR_0..YEAR_10000).contains(&unix) {
        return with_recent_civil_date(unix, f);
    }
    let fmt = format_description!("[year][month][day]T[hour]:[minute]:[second]Z");
    let text = OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|d| d.format(fmt).ok())
        .unwrap_or_else(|| "19700101T00:00:00Z".to_string());
    f(&text)
}

/// Calls `f` with [`civil_date`]'s text, remembering the last two dates this thread
/// formatted, as text: a record's two dates rarely change between the calls that read
/// it (a pending task's `finished` is always 0), and a lookup is a few compares where
/// formatting is some four hundred instructions and checking its digits as UTF-8 again
/// some fifty.
fn with_recent_civil_date<T>(unix: i64, f: impl FnOnce(&str) -> T) -> T {
    type Recent = [(i64, String); 2];
    thread_local! {
        // `i64::MIN` is outside the years this is called for, so it never matches.
        static RECENT: std::cell::RefCell<Recent> = const {
            std::cell::RefCell::new([(i64::MIN, String::new()), (i64::MIN, String::new())])
        };
    }
    // `f` writes the text somewhere (an encoder, a `String`) and never formats a date,
    // so the borrow is never taken twice.
    RECENT.with_borrow_mut(|recent| {
        if recent[0].0 != unix {
            if recent[1].0 != unix {
                let text = civil_date(unix);
                let (at, kept) = &mut recent[1];
                *at = unix;
                kept.clear();
                kept.push_str(std::str::from_utf8(&text).expect("ASCII digits"));
            }
            // The most recent first, so that two dates in turn both stay.
            recent.swap(0, 1);
        }
        f(&recent[0].1)
    })
}

/// `YYYYMMDDTHH:MM:SSZ` for a time in years 0 to 9999 (proleptic Gregorian calendar, as
/// `time` uses).
fn civil_date(unix: i64) -> [u8; 18] {
    let (days, secs) = (unix.div_euclid(86_400), unix.rem_euclid(86_400));
    let (year, month, day) = crate::db::dbstring::civil_from_days(days);
    let mut out = *b"0000mmddThh:mm:ssZ";
    let mut put = |at: usize, value: i64, width: usize| {
        let mut v = value;
        for i in (at..at + width).rev() {
            out[i] = b'0' + (v % 10) as u8;
            v /= 10;
        }
    };
    put(0, year, 4);
    put(4, month, 2);
    put(6, day, 2);
    put(9, secs / 3600, 2);
    put(12, secs / 60 % 60, 2);
    put(15, secs % 60, 2);
    out
}

fn strings(e: &mut dyn Encoder, items: &[String]) {
    e.begin_array();
    for i in items {
        e.string(i);
    }
    e.end_array();
}

fn pairs(e: &mut dyn Encoder, pairs: &[(String, String)]) {
    e.begin_struct();
    for (k, v) in pairs {
        e.member(k);
        e.string(v);
        e.end_member();
    }
    e.end_struct();
}

/// Dates are formatted here, digits and `T:Z` (a sign for years past 9999): plain.
fn date(e: &mut dyn Encoder, t: i64) {
    with_date(t, |text| e.plain_date_time(text));
}

/// A set of refs (made by `db::new_ref`, never by a client): plain.
fn refs(e: &mut dyn Encoder, items: &[String]) {
    e.begin_array();
    for i in items {
        e.plain_string(i);
    }
    e.end_array();
}

/// How one stored field of a row of type `R` is told to an encoder.
type Emit<R> = fn(&R, &mut dyn Encoder);

/// The stored fields of a task, by wire name.
fn task_field(name: &str) -> Option<Emit<TaskRow>> {
    Some(match name {
        // The uuid, the status and the refs are the server's own text, never a
        // client's: no escape scan (`Encoder::plain_string`).
        "uuid" => |t, e| {
            e.plain_string(
                t.uuid
                    .hyphenated()
                    .encode_lower(&mut uuid::Uuid::encode_buffer()),
            )
        },
        "name_label" => |t, e| e.string(&t.name_label),
        "name_description" => |t, e| e.string(&t.name_description),
        "allowed_operations" => |t, e| strings(e, &t.allowed_operations),
        "current_operations" => |t, e| pairs(e, &t.current_operations),
        "created" => |t, e| date(e, t.created),
        "finished" => |t, e| date(e, t.finished),
        "status" => |t, e| e.plain_string(t.status.as_str()),
        "session" => |t, e| e.plain_string(&t.session),
        "resident_on" => |t, e| e.plain_string(&t.resident_on),
        "progress" => |t, e| e.double(t.progress),
        "externalpid" => |t, e| e.int(t.externalpid),
        "stunnelpid" => |t, e| e.int(t.stunnelpid),
        "forwarded" => |t, e| e.bool(t.forwarded),
        "forwarded_to" => |t, e| e.string(&t.forwarded_to),
        "type" => |t, e| e.string(&t.type_),
        "result" => |t, e| e.string(&t.result),
        "error_info" => |t, e| strings(e, &t.error_info),
        "other_config" => |t, e| pairs(e, &t.other_config),
        "subtask_of" => |t, e| e.plain_string(&t.subtask_of),
        "subtasks" => |t, e| refs(e, &t.subtasks),
        "backtrace" => |t, e| e.string(&t.backtrace),
        _ => return None,
    })
}

/// The stored fields of a session, by wire name.
fn session_field(name: &str) -> Option<Emit<SessionRow>> {
    Some(match name {
        "uuid" => |x, e| e.string(&x.uuid),
        "this_host" => |x, e| e.string(&x.this_host),
        "this_user" => |x, e| e.string(&x.this_user),
        "last_active" => |x, e| date(e, x.last_active),
        "pool" => |x, e| e.bool(x.pool),
        "other_config" => |x, e| pairs(e, &x.other_config),
        "is_local_superuser" => |x, e| e.bool(x.is_local_superuser),
        "subject" => |x, e| e.string(&x.subject),
        "validation_time" => |x, e| date(e, x.validation_time),
        "auth_user_sid" => |x, e| e.string(&x.auth_user_sid),
        "auth_user_name" => |x, e| e.string(&x.auth_user_name),
        // Filled in by the caller, which knows the API's permission table.
        "rbac_permissions" => |_, e| strings(e, &[]),
        "tasks" => |x, e| {
            let mut refs: Vec<&str> = x.tasks.iter().map(|t| &**t).collect();
            refs.sort_unstable();
            e.begin_array();
            for r in refs {
                e.string(r);
            }
            e.end_array();
        },
        "parent" => |x, e| e.string(&x.parent),
        "originator" => |x, e| e.string(&x.originator),
        "client_certificate" => |x, e| e.bool(x.client_certificate),
        _ => return None,
    })
}

/// The stored fields of the pool, by wire name.
fn pool_field(name: &str) -> Option<Emit<PoolRow>> {
    Some(match name {
        "uuid" => |p, e| e.string(&p.uuid),
        "name_label" => |p, e| e.string(&p.name_label),
        "name_description" => |p, e| e.string(&p.name_description),
        "master" => |p, e| e.string(&p.master),
        "other_config" => |p, e| pairs(e, &p.other_config),
        _ => return None,
    })
}

/// The stored fields of the host, by wire name.
fn host_field(name: &str) -> Option<Emit<HostRow>> {
    Some(match name {
        "uuid" => |h, e| e.string(&h.uuid),
        "name_label" => |h, e| e.string(&h.name_label),
        "name_description" => |h, e| e.string(&h.name_description),
        "API_version_major" => |h, e| e.int(h.api_version_major),
        "API_version_minor" => |h, e| e.int(h.api_version_minor),
        "API_version_vendor" => |h, e| e.string(&h.api_version_vendor),
        "API_version_vendor_implementation" => {
            |h, e| pairs(e, &h.api_version_vendor_implementation)
        }
        "enabled" => |h, e| e.bool(h.enabled),
        "software_version" => |h, e| pairs(e, &h.software_version),
        "other_config" => |h, e| pairs(e, &h.other_config),
        "hostname" => |h, e| e.string(&h.hostname),
        "address" => |h, e| e.string(&h.address),
        _ => return None,
    })
}

/// Tells `e` the value of one field of a row; false if the row's class has no such field.
pub fn encode_field<E: Encoder>(row: Row<'_>, field: &Field, e: &mut E) -> bool {
    fn tell<R>(row: &R, emit: Option<Emit<R>>, e: &mut dyn Encoder) -> bool {
        emit.map(|f| f(row, e)).is_some()
    }
    match row {
        Row::Task(t) => tell(t, task_field(field.name), e),
        Row::Session(x) => tell(x, session_field(field.name), e),
        Row::Pool(p) => tell(p, pool_field(field.name), e),
        Row::Host(h) => tell(h, host_field(field.name), e),
    }
}

/// The value of one field of a row, or None if the row's class has no such field.
pub fn field_value(row: Row<'_>, field: &Field) -> Option<Value> {
    let mut known = false;
    let v = Builder::build(|b| known = encode_field(row, field, b));
    known.then_some(v)
}

/// Tells `e` the record of a row: every non-internal field in datamodel order.
///
/// `rbac_permissions` of a session depends on the API's permission table, so the caller
/// passes it in (`None` for other classes).
pub fn encode_record<E: Encoder>(
    class: &Class,
    row: Row<'_>,
    rbac_permissions: Option<&[String]>,
    e: &mut E,
) {
    // Each class's fields are resolved to their emitters once, not compared by name for
    // every field of every record.
    static TASK: OnceLock<Plan<TaskRow>> = OnceLock::new();
    static SESSION: OnceLock<Plan<SessionRow>> = OnceLock::new();
    static POOL: OnceLock<Plan<PoolRow>> = OnceLock::new();
    static HOST: OnceLock<Plan<HostRow>> = OnceLock::new();
    let perms = rbac_permissions.unwrap_or_default();
    match row {
        Row::Task(t) => TASK
            .get_or_init(|| plan(class, task_field))
            .tell(t, perms, e),
        Row::Session(x) => SESSION
            .get_or_init(|| plan(class, session_field))
            .tell(x, perms, e),
        Row::Pool(p) => POOL
            .get_or_init(|| plan(class, pool_field))
            .tell(p, perms, e),
        Row::Host(h) => HOST
            .get_or_init(|| plan(class, host_field))
            .tell(h, perms, e),
    }
}

/// A class's record layout: its non-internal fields in datamodel order, each with how
/// it is told.
struct Plan<R: 'static>(Vec<(KnownMember, Part<R>)>);

enum Part<R: 'static> {
    Stored(Emit<R>),
    /// A session's `rbac_permissions`, from the caller.
    Permissions,
    /// Declared but not stored (the unit test below keeps this list empty).
    Void,
}

fn plan<R>(class: &Class, field: fn(&str) -> Option<Emit<R>>) -> Plan<R> {
    plan_of(class, field, |_| true)
}

/// [`plan`] of the members `wanted` keeps.
fn plan_of<R>(
    class: &Class,
    field: fn(&str) -> Option<Emit<R>>,
    wanted: impl Fn(&str) -> bool,
) -> Plan<R> {
    Plan(
        class
            .fields
            .iter()
            .filter(|f| !f.internal && wanted(f.name))
            .map(|f| {
                let part = match (f.name, field(f.name)) {
                    ("rbac_permissions", _) => Part::Permissions,
                    (_, Some(emit)) => Part::Stored(emit),
                    (_, None) => Part::Void,
                };
                (KnownMember::new(f.name), part)
            })
            .collect(),
    )
}

impl<R> Plan<R> {
    fn tell(&self, row: &R, perms: &[String], e: &mut dyn Encoder) {
        e.begin_struct_of(self.0.len());
        for (member, part) in &self.0 {
            e.known_member(member);
            match part {
                Part::Stored(emit) => emit(row, e),
                Part::Permissions => strings(e, perms),
                Part::Void => e.string(""),
            }
            e.end_member();
        }
        e.end_struct();
    }
}

/// A record for a reply: already in the reply's codec when the request named one
/// (`RequestMeta::codec`: no tree is built for the writer to walk), else a [`Value`].
pub fn reply_record(
    codec: Option<Codec>,
    class: &Class,
    row: Row<'_>,
    rbac_permissions: Option<&[String]>,
) -> Value {
    let Some(codec) = codec else {
        return record(class, row, rbac_permissions.map(<[String]>::to_vec));
    };
    // A task record is ~1.4 KB of XML.
    let mut out = Vec::with_capacity(2048);
    encode_in(codec, class, row, rbac_permissions, &mut out);
    Value::Encoded(codec, out.into())
}

/// [`reply_record`] for a record that is the call's whole result: written straight into
/// the reply's buffer when the server lent one (`RequestMeta::reply`), which the
/// returned empty `Value::Encoded` stands for.
pub fn result_record(
    codec: Option<Codec>,
    reply: &ReplyBuffer,
    class: &Class,
    row: Row<'_>,
    rbac_permissions: Option<&[String]>,
) -> Value {
    if let Some(c @ (Codec::XmlRpc | Codec::JsonRpc)) = codec
        && reply.write(|out| match row {
            Row::Task(t) if class.name == "task" => recent_task_record(c, class, t, out),
            _ => encode_in(c, class, row, rbac_permissions, out),
        })
    {
        return Value::Encoded(c, bytes::Bytes::new());
    }
    reply_record(codec, class, row, rbac_permissions)
}

/// The largest task record [`recent_task_record`] keeps (a record is ~1.4 KB of XML; one
/// with large maps is written each time instead of held per thread).
const RECENT_RECORD_MAX: usize = 16 * 1024;

/// A task record a worker thread wrote, with a copy of the row it was written from.
struct RecentRecord {
    row: TaskRow,
    bytes: Vec<u8>,
}

/// Per codec and worker thread: the task record kept, and the task (uuid and
/// generation) whose record was written last without being kept.
#[derive(Default)]
struct Recent {
    kept: Option<RecentRecord>,
    seen: Option<(uuid::Uuid, u64)>,
}

/// Whether `kept`'s bytes are `row`'s record: every field equal, the progress to the bit
/// (`-0.0 == 0.0`, but the two are written differently). A record is a function of its
/// row alone (the task class has no caller-dependent field), so equal rows have equal
/// records whatever changed in between and however the row got its value back.
fn same_task(kept: &TaskRow, row: &TaskRow) -> bool {
    kept.progress.to_bits() == row.progress.to_bits() && kept == row
}

/// Appends a task's record in `codec`'s form (XML-RPC or JSON-RPC) to `out`, as
/// [`encode_in`] does, copying it from the record this thread last kept when the row is
/// equal to the one that record was written from: a client polling a task with
/// `get_record` reads the same record many times, and the comparison costs a tenth of
/// writing 22 members. A record is kept the second time in a row the same version of a
/// task (uuid, generation) is written, so that a thread reading many different tasks in
/// turn never copies rows and records it will not read again; the comparison, not the
/// generation, decides whether a kept record is used.
fn recent_task_record(codec: Codec, class: &Class, row: &TaskRow, out: &mut Vec<u8>) {
    thread_local! {
        static RECENT: std::cell::RefCell<[Recent; 2]> = Default::default();
    }
    let slot = usize::from(codec == Codec::JsonRpc);
    // Nothing below reads `RECENT` again (the dates have their own thread-local).
    RECENT.with_borrow_mut(|recent| {
        let recent = &mut recent[slot];
        if let Some(kept) = &recent.kept
            && same_task(&kept.row, row)
        {
            out.extend_from_slice(&kept.bytes);
            return;
        }
        let start = out.len();
        encode_in(codec, class, Row::Task(row), None, out);
        let version = (row.uuid, row.stamp.modified);
        if recent.seen != Some(version) {
            recent.seen = Some(version);
            return;
        }
        let written = &out[start..];
        if written.len() > RECENT_RECORD_MAX {
            return;
        }
        match &mut recent.kept {
            Some(kept) => {
                kept.row.clone_from(row);
                kept.bytes.clear();
                kept.bytes.extend_from_slice(written);
            }
            None => {
                recent.kept = Some(RecentRecord {
                    row: row.clone(),
                    bytes: written.to_vec(),
                })
            }
        }
    })
}

/// Appends the record in `codec`'s form to `out`.
fn encode_in(
    codec: Codec,
    class: &Class,
    row: Row<'_>,
    rbac_permissions: Option<&[String]>,
    out: &mut Vec<u8>,
) {
    match codec {
        Codec::XmlRpc => encode_record(class, row, rbac_permissions, &mut XmlEncoder { out }),
        Codec::JsonRpc => encode_record(class, row, rbac_permissions, &mut JsonEncoder::new(out)),
        Codec::View => match row {
            // Only the members the view's one reader reads (below).
            Row::Task(t) if class.name == "task" => {
                static VIEW: OnceLock<Plan<TaskRow>> = OnceLock::new();
                VIEW.get_or_init(|| {
                    plan_of(class, task_field, |name| VIEW_TASK_MEMBERS.contains(&name))
                })
                .tell(t, &[], &mut ViewEncoder { out })
            }
            _ => encode_record(class, row, rbac_permissions, &mut ViewEncoder { out }),
        },
    }
}

/// The members of a task's record in [`Codec::View`] form: those its only reader, the
/// REST faces' `face::xapi::TaskRecord::from_view`, reads. The other nine (the pids,
/// `allowed_operations`, `backtrace`, …) were written only for the reader to skip them,
/// about 1.5k instructions of a Redfish or LXCA GET of a task. A test reads a full row
/// both ways.
pub const VIEW_TASK_MEMBERS: &[&str] = &[
    "uuid",
    "name_label",
    "name_description",
    "current_operations",
    "created",
    "finished",
    "status",
    "progress",
    "result",
    "error_info",
    "other_config",
    "subtask_of",
    "subtasks",
];

/// The record of a row as a [`Value`] ([`encode_record`]).
pub fn record(class: &Class, row: Row<'_>, rbac_permissions: Option<Vec<String>>) -> Value {
    Builder::build(|b| encode_record(class, row, rbac_permissions.as_deref(), b))
}

/// The database string form of a field (what `get_all_records_where` compares against).
pub fn db_string(field: &Field, value: &Value) -> String {
    match (field.ty, value) {
        (Ty::Float, Value::Double(f)) => dbstring::float(*f),
        (Ty::Bool, Value::Bool(b)) => dbstring::bool(*b),
        (Ty::Int, Value::Int(i)) => dbstring::int(*i),
        (_, Value::Array(items)) => {
            let items: Vec<&str> = items.iter().filter_map(Value::as_str).collect();
            dbstring::set(&items)
        }
        (_, Value::Struct(members)) => {
            let pairs: Vec<(&str, &str)> = members
                .iter()
                .filter_map(|(k, v)| v.as_str().map(|v| (k.as_str(), v)))
                .collect();
            dbstring::map(&pairs)
        }
        (_, Value::String(s) | Value::DateTime(s)) => s.clone(),
        (_, other) => other.debug_rendering(),
    }
}

/// Looks a filter column up in a row: DB column names (`name__label`), internal fields,
/// and `_ref`.
pub fn column(class: &Class, r: &str, row: Row<'_>, column: &str) -> Option<String> {
    if column == "_ref" {
        return Some(r.to_string());
    }
    let field = class.fields.iter().find(|f| f.column == column)?;
    let value = field_value(row, field)?;
    Some(db_string(field, &value))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::datamodel::CLASSES;
    use crate::db::{HostRow, PoolRow, SessionRow, TaskRow};

    #[test]
    fn every_declared_field_is_stored() {
        let task = TaskRow::new("l", "d", "s", "h");
        let session = SessionRow {
            uuid: String::new(),
            this_host: String::new(),
            this_user: String::new(),
            last_active: 0,
            pool: false,
            other_config: vec![],
            is_local_superuser: true,
            subject: String::new(),
            validation_time: 0,
            auth_user_sid: String::new(),
            auth_user_name: String::new(),
            role: None,
            tasks: Default::default(),
            parent: String::new(),
            originator: String::new(),
            client_certificate: false,
            legacy_events: None,
            revision: 0,
        };
        let pool = PoolRow::default();
        let host = HostRow::default();
        for class in CLASSES.iter().filter(|c| c.implicit) {
            let row = match class.name {
                "task" => Row::Task(&task),
                "session" => Row::Session(&session),
                "pool" => Row::Pool(&pool),
                _ => Row::Host(&host),
            };
            for f in class.fields {
                assert!(field_value(row, f).is_some(), "{}.{}", class.name, f.name);
            }
        }
    }

    /// A task's view record holds every member the faces read: `TaskRecord` reads the
    /// same from it as from the whole record, for a row with every member set.
    #[test]
    fn a_task_view_holds_what_the_faces_read() {
        use crate::face::xapi::TaskRecord;
        let class = CLASSES.iter().find(|c| c.name == "task").unwrap();
        let mut t = TaskRow::new("label \"q\"", "desc", "OpaqueRef:s", "OpaqueRef:h");
        t.progress = 0.25;
        t.created = 1_700_000_000;
        t.finished = 1_700_000_100;
        t.result = "<value>r</value>".into();
        t.error_info = ["E".to_string(), "p".to_string()].into_iter().collect();
        t.other_config = [("xclarity:a".to_string(), "\"b\"".to_string())]
            .into_iter()
            .collect();
        t.current_operations = [("OpaqueRef:o".to_string(), "cancel".to_string())]
            .into_iter()
            .collect();
        t.subtask_of = "OpaqueRef:p".into();
        t.subtasks = ["OpaqueRef:c".to_string()].into_iter().collect();
        t.backtrace = "bt".into();
        t.externalpid = 7;
        let Value::Encoded(Codec::View, view) =
            reply_record(Some(Codec::View), class, Row::Task(&t), None)
        else {
            panic!("a view record")
        };
        let whole = record(class, Row::Task(&t), None);
        let read = TaskRecord::from_view(&view);
        assert_eq!(read, TaskRecord::from_record(&whole));
        assert!(read.cancel_requested && !read.subtasks.is_empty() && read.progress == 0.25);
        // And it is smaller: the members no face reads are left out.
        let mut all = Vec::new();
        encode_record(
            class,
            Row::Task(&t),
            None,
            &mut ViewEncoder { out: &mut all },
        );
        assert!(view.len() < all.len());
    }

    /// A task's record written through the reply's buffer (`result_record`, which keeps
    /// a worker thread's recent record) is byte for byte the one written afresh, whatever
    /// changes between calls, in both codecs; the changes here keep the uuid and the
    /// generation, so only the row's comparison can tell them apart (`-0.0` and `0.0`
    /// compare equal as floats and are written differently).
    #[test]
    fn a_kept_task_record_is_the_rows_record() {
        use crate::wire::encode::Taken;
        let class = CLASSES.iter().find(|c| c.name == "task").unwrap();
        let base = TaskRow::new("label", "desc <&>", "OpaqueRef:s", "OpaqueRef:h");
        let mut rows = vec![base.clone(), base.clone(), base.clone(), base.clone()];
        let mut changed = |f: &dyn Fn(&mut TaskRow)| {
            let mut t = base.clone();
            f(&mut t);
            // Each change read three times: written, kept, copied.
            rows.extend([t.clone(), t.clone(), t]);
        };
        changed(&|t| t.progress = -0.0);
        changed(&|t| t.progress = 0.0);
        changed(&|t| t.progress = 0.5);
        changed(&|t| t.progress = f64::NAN);
        changed(&|t| t.name_label = "label2".into());
        changed(&|t| t.status = crate::db::TaskStatus::Success);
        changed(&|t| t.finished = 1_700_000_000);
        changed(&|t| t.error_info = ["E".to_string()].into_iter().collect());
        changed(&|t| t.other_config = [("k".to_string(), "v".to_string())].into_iter().collect());
        changed(&|t| t.subtasks = ["OpaqueRef:c".to_string()].into_iter().collect());
        changed(&|t| t.result = "r".repeat(RECENT_RECORD_MAX).into());
        changed(&|t| t.uuid = uuid::Uuid::new_v4());
        rows.push(base.clone());
        for codec in [Codec::XmlRpc, Codec::JsonRpc] {
            for (i, t) in rows.iter().enumerate() {
                let head = b"head".to_vec();
                let reply = ReplyBuffer::lend(head.clone());
                let v = result_record(Some(codec), &reply, class, Row::Task(t), None);
                assert!(matches!(v, Value::Encoded(c, b) if c == codec && b.is_empty()));
                let Taken::Buffer(got, true) = reply.take() else {
                    panic!("written in the buffer")
                };
                let mut want = head;
                encode_in(codec, class, Row::Task(t), None, &mut want);
                assert!(got == want, "{codec:?}, row {i}");
            }
        }
    }

    #[test]
    fn dates_in_xapi_form() {
        assert_eq!(format_date(0), "19700101T00:00:00Z");
        assert_eq!(format_date(1_586_248_112), "20200407T08:28:32Z");
    }

    /// The hand formatter says what the `time` crate says, over the whole range it
    /// covers (leap days, century years, before 1970) and at its edges.
    #[test]
    fn hand_formatted_dates_match_time() {
        let fmt = format_description!("[year][month][day]T[hour]:[minute]:[second]Z");
        let by_time = |unix: i64| {
            OffsetDateTime::from_unix_timestamp(unix)
                .ok()
                .and_then(|d| d.format(fmt).ok())
                .unwrap_or_else(|| "19700101T00:00:00Z".to_string())
        };
        let edges = [
            -62_167_219_200 - 1,
            -62_167_219_200,
            -1,
            0,
            951_782_400,   // 2000-02-29
            4_107_456_000, // 2100-02-28 (not a leap year)
            253_402_300_799,
            253_402_300_800,
            i64::MIN,
            i64::MAX,
        ];
        let mut unix = -62_167_219_200i64;
        let mut n = 0i64;
        let spread = edges.into_iter().chain(std::iter::from_fn(|| {
            // About 200,000 points, with a stride that lands on every hour and second.
            n += 1;
            unix += 1_577_836 + (n % 7) * 3_601;
            (unix < 253_402_300_800).then_some(unix)
        }));
        for t in spread {
            assert_eq!(format_date(t), by_time(t), "{t}");
        }
    }
}
