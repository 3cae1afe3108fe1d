//! Fuzzes policy normalization and comparison: never a panic, and a document always means the
//! same as itself.

#![no_main]

use eks_intents::policy::{PolicyDocument, normalize};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data).into_owned();

    let as_text = normalize(&Value::String(text.clone()));
    assert_eq!(
        as_text,
        normalize(&Value::String(text.clone())),
        "normalize is not deterministic"
    );

    // Identical text short-circuits in `same_meaning`, so this only proves it never panics.
    let document = PolicyDocument::from_text(text.clone());
    assert!(
        document.same_meaning(&PolicyDocument::from_text(text.clone())),
        "a document does not mean the same as itself"
    );

    if let Ok(value) = serde_json::from_slice::<Value>(data) {
        let _ = normalize(&value);
        // The reflexivity that does parse: the text as IAM returned it against the same
        // document written canonically by the system.
        if value.is_object() {
            assert!(
                document.same_meaning(&PolicyDocument::from_value(&value)),
                "a document differs from its own canonical form"
            );
        }
    }
});
