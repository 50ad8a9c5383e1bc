//! `docs/api.md`, generated from the datamodel table.
//!
//! The file is committed so that it can be read on the web; a test regenerates it and
//! fails when the committed copy differs. `UPDATE_DOCS=1 cargo test` rewrites it.

use std::fmt::Write;

use super::datamodel::{CLASSES, Class, Qualifier, Roles};
use super::{Api, Message};

fn roles_text(roles: Roles) -> String {
    if roles == Roles::ALL {
        "all roles".to_string()
    } else if roles == Roles::LOCAL_ROOT_ONLY {
        "local superuser only".to_string()
    } else {
        roles.names().join(", ")
    }
}

fn message_line(m: &Message, out: &mut String) {
    let mut params: Vec<String> = Vec::new();
    if m.session {
        params.push("session_id: session ref".to_string());
    }
    for p in &m.params {
        let mut s = format!("{}: {}", p.name, p.ty.doc_name());
        if let Some(d) = p.default {
            let _ = write!(s, " = {d:?}");
        }
        params.push(s);
    }
    let _ = writeln!(
        out,
        "| `{}` | {} | {} | {} | {} | {} |",
        m.wire,
        params.join(", "),
        m.result.doc_name(),
        if m.session {
            roles_text(m.roles)
        } else {
            "no session (not RBAC-checked)".to_string()
        },
        if m.is_async { "yes" } else { "no" },
        m.doc.replace('|', "\\|"),
    );
    for (key, roles) in m.map_keys_roles {
        let _ = writeln!(
            out,
            "| ↳ key `{key}` | permission `{}/key:{}` | | {} | | protected key |",
            m.wire.to_lowercase(),
            key.to_lowercase(),
            roles_text(*roles),
        );
    }
}

fn class_section(api: &Api, class: &Class, out: &mut String) {
    let _ = writeln!(out, "## Class `{}`\n\n{}.\n", class.name, class.doc);
    let _ = writeln!(
        out,
        "### Fields\n\n| Field | Type | Qualifier | Description |\n|---|---|---|---|"
    );
    for f in class.fields.iter().filter(|f| !f.internal) {
        let q = match f.qualifier {
            Qualifier::RW => "RW",
            Qualifier::StaticRO => "RO (static)",
            Qualifier::DynamicRO => "RO",
        };
        let _ = writeln!(
            out,
            "| `{}` | {} | {q} | {} |",
            f.name,
            f.ty.doc_name(),
            f.doc
        );
    }
    let internal: Vec<String> = class
        .fields
        .iter()
        .filter(|f| f.internal)
        .map(|f| format!("`{}`", f.column))
        .collect();
    if !internal.is_empty() {
        let _ = writeln!(
            out,
            "\nInternal fields (not in records, usable in `get_all_records_where` filters): {}.",
            internal.join(", ")
        );
    }
    let _ = writeln!(
        out,
        "\n### Messages\n\n| Wire name | Parameters | Result | Roles | Async | Description |\n|---|---|---|---|---|---|"
    );
    for m in api.messages.iter().filter(|m| m.class.name == class.name) {
        if !m.hidden {
            message_line(m, out);
        }
    }
    let hidden: Vec<String> = api
        .messages
        .iter()
        .filter(|m| m.class.name == class.name && m.hidden)
        .map(|m| format!("`{}`", m.wire))
        .collect();
    if !hidden.is_empty() {
        let _ = writeln!(
            out,
            "\nAlso callable, hidden from xapi's docs as in xapi: {} (filter language: see below).",
            hidden.join(", ")
        );
    }
    out.push('\n');
}

/// The whole `docs/api.md`.
pub fn api_markdown(api: &Api) -> String {
    let mut out = String::new();
    out.push_str(
        "# xapi-taskd API reference\n\n\
         Generated from the datamodel table (`src/api/datamodel.rs`) by `src/api/docs.rs`; \
         do not edit by hand. Regenerate with `UPDATE_DOCS=1 cargo test --lib docs`.\n\n\
         Every message is called positionally over XML-RPC (POST `/`, `/RPC2`, any path but `/jsonrpc`) \
         or JSON-RPC v1/v2 (POST `/jsonrpc`). Messages marked async also answer to `Async.<wire name>`, \
         which returns a task ref at once and completes that task when the call ends. \
         The wire name also answers to the alias `class_message` (e.g. `task_get_record`), which \
         only the local superuser may use (RBAC looks for a permission of the alias's name, as in xapi). \
         `system.listMethods` (no session) lists every wire name below.\n\n\
         Task ownership: `task.destroy`, `cancel`, `set_*` and the `other_config` messages act on \
         a task only if the caller's user created it, unless the caller holds `task.destroy/any` \
         (pool-admin, pool-operator).\n\n",
    );
    for class in CLASSES {
        class_section(api, class, &mut out);
    }
    out.push_str(
        "## Filter language (`get_all_where`, `get_all_records_where`)\n\n\
         `expr := value \"=\" value | expr \"and\" expr | expr \"or\" expr | \"not\" expr | \"true\" | \"false\" | \"(\" expr \")\"`, \
         `value := \"literal\" | field \"column\"`. `and`/`or` have equal precedence and associate to the left; \
         `not` binds loosest, as in xapi's grammar (`not a and b` is `not (a and b)`). \
         Columns are database names (`name__label`, `_ref`, internal fields such as `session`); values are compared \
         as database strings (floats `%.18g`, booleans `true`/`false`, sets and maps as S-expressions). \
         A parse error is `INVALID_VALUE [expr; reason]`; an unknown column is `INTERNAL_ERROR [\"missing field\"; column; \"\"]`.\n",
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docs_api_md_is_current() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/api.md");
        let want = api_markdown(&Api::build());
        if std::env::var_os("UPDATE_DOCS").is_some() {
            std::fs::write(path, &want).expect("write docs/api.md");
            return;
        }
        let have = std::fs::read_to_string(path).unwrap_or_default();
        assert!(
            have == want,
            "docs/api.md is stale: run `UPDATE_DOCS=1 cargo test --lib docs` and commit it"
        );
    }

    #[test]
    fn every_listed_method_is_documented() {
        let api = Api::build();
        let doc = api_markdown(&api);
        for name in api.list_methods() {
            assert!(
                doc.contains(&format!("`{name}`")),
                "{name} missing from docs"
            );
        }
    }
}
