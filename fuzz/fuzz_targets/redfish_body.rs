//! The Redfish face's JSON on any bytes: the `POST /Sessions` body, and the Task resource
//! built from any XAPI task record.
//!
//! Properties, beyond "never panics":
//! 1. Credentials are read exactly as serde_json reads the body (differential): a body
//!    with string `UserName` and `Password` gives them; anything else is a 400 whose body
//!    is a Redfish error that does not depend on the password's value.
//! 2. The same bytes, read as a JSON object, are an XAPI task record (every JSON type
//!    maps to a `Value`, doubles too): the Task resource made from it is valid JSON that
//!    reads back as itself, `PercentComplete` is within 0..=100, `TaskState` is one of
//!    the schema's values, and the resource names the task by its uuid.

#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::Value as Json;
use xapi_taskd::face::xapi::TaskRecord;
use xapi_taskd::redfish::protocol::Body;
use xapi_taskd::redfish::sessions::credentials;
use xapi_taskd::redfish::tasks::{TASKS, task_json};
use xapi_taskd::wire::jsonrpc::to_value;

const TASK_STATES: [&str; 4] = ["Running", "Completed", "Exception", "Cancelled"];

fuzz_target!(|data: &[u8]| {
    let json = serde_json::from_slice::<Json>(data).ok();
    match credentials(data) {
        Ok((user, password)) => {
            let j = json
                .as_ref()
                .expect("credentials from a body that is not JSON");
            assert_eq!(
                j.get("UserName").and_then(Json::as_str),
                Some(user.as_str())
            );
            assert_eq!(
                j.get("Password").and_then(Json::as_str),
                Some(password.as_str())
            );
        }
        Err(answer) => {
            assert_eq!(answer.status.as_u16(), 400);
            let Body::Json(body) = &answer.body else {
                panic!("a 400 without a JSON body");
            };
            assert!(body["error"]["@Message.ExtendedInfo"].is_array(), "{body}");
            // The password never shows: the same body with another password of the same
            // JSON kind gets the same answer.
            if let Some(Json::Object(mut o)) = json.clone()
                && let Some(pw) = o.get("Password").cloned()
            {
                let other = match pw {
                    Json::String(_) => Json::String("another password".into()),
                    Json::Number(_) => Json::from(0),
                    Json::Bool(b) => Json::Bool(!b),
                    Json::Array(_) => Json::Array(vec![]),
                    Json::Object(_) => Json::Object(Default::default()),
                    Json::Null => Json::Null,
                };
                o.insert("Password".into(), other);
                let again = credentials(Json::Object(o).to_string().as_bytes())
                    .expect_err("only the password changed");
                let Body::Json(again) = &again.body else {
                    panic!("a 400 without a JSON body");
                };
                assert_eq!(again, body, "the answer depends on the password");
            }
        }
    }
    let Some(Json::Object(_)) = &json else {
        return;
    };
    let record = to_value(json.unwrap());
    let view = TaskRecord::from_record(&record);
    for root in [None, Some("root-uuid")] {
        let j = task_json(&view, root);
        let text = serde_json::to_string(&j).expect("a Task resource serializes");
        let back: Json = serde_json::from_str(&text).expect("and reads back");
        assert_eq!(back, j);
        let percent = j["PercentComplete"]
            .as_i64()
            .expect("PercentComplete is an integer");
        assert!((0..=100).contains(&percent), "{percent}");
        let state = j["TaskState"].as_str().unwrap_or_default();
        assert!(
            TASK_STATES.contains(&state) || state == "Cancelling",
            "{state}"
        );
        assert_eq!(j["Id"].as_str(), Some(view.uuid.as_str()));
        assert!(
            j["@odata.id"]
                .as_str()
                .unwrap_or_default()
                .starts_with(TASKS)
        );
    }
});
