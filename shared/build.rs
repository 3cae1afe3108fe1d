//! Digests the core's sources, data and locked dependencies into `CORE_SOURCE_DIGEST`: the
//! identity of the parser that a compiled desired state (`state/<cluster>.json`) was made by.
//! A compiled state of another build is not trusted to parse the same way, so it is read again.

use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            files(&path, out);
        } else {
            out.push(path);
        }
    }
}

fn main() {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap_or_default());
    let mut inputs = Vec::new();
    for dir in ["src", "data"] {
        println!("cargo:rerun-if-changed={dir}");
        files(&root.join(dir), &mut inputs);
    }
    let lock = root.join("../Cargo.lock");
    println!("cargo:rerun-if-changed=../Cargo.lock");
    inputs.push(lock);
    inputs.sort();
    let mut digest = Sha256::new();
    for path in &inputs {
        let name = path.strip_prefix(&root).unwrap_or(path);
        digest.update(name.to_string_lossy().as_bytes());
        digest.update([0]);
        digest.update(std::fs::read(path).unwrap_or_default());
        digest.update([0]);
    }
    let hex: String = digest.finalize()[..12]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    println!("cargo:rustc-env=CORE_SOURCE_DIGEST={hex}");
}
