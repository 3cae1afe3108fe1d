//! Fuzzes `read_bundle` through every reader: it must never panic, whatever was uploaded.

#![no_main]

use eks_intents::intent::{BundleInput, Limits, read_bundle};
use libfuzzer_sys::fuzz_target;

/// The key's extension picks the reader, so the first input byte chooses it.
const KEYS: [&str; 3] = [
    "intents/fuzz/bundle.yaml",
    "intents/fuzz/bundle.json",
    "intents/fuzz/bundle.tgz",
];

fuzz_target!(|data: &[u8]| {
    let Some((&selector, bytes)) = data.split_first() else {
        return;
    };
    let input = BundleInput {
        key: KEYS[usize::from(selector) % KEYS.len()],
        bytes,
        default_namespace: None,
        tenant_namespace: None,
    };
    let _report = read_bundle(&input, &Limits::default());
});
