//! The planner's shape, kept by a test: `plan/mod.rs` only orders the steps (under 300 lines),
//! no function in `plan/` runs past 80 lines, every file opens with what it decides, and the
//! deployment's variable names (`EKS_INTENTS_*`) stay out of the pure planner: they belong to
//! the words at the edges (`words.rs`, the status report, the CLI).

use std::fs;
use std::path::{Path, PathBuf};

const MOD_MAX_LINES: usize = 300;
const FN_MAX_LINES: usize = 80;

fn plan_files() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/plan");
    let mut files: Vec<PathBuf> = fs::read_dir(&dir)
        .expect("src/plan is readable")
        .map(|entry| entry.expect("a directory entry").path())
        .filter(|path| path.extension().is_some_and(|e| e == "rs"))
        .collect();
    files.sort();
    assert!(files.len() >= 6, "the planner's files: {files:?}");
    files
}

fn name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Every function of `text` as (name, first line, length in lines): from its `fn` line to
/// the first later line that closes it at the same indentation (rustfmt's layout).
fn functions(text: &str) -> Vec<(String, usize, usize)> {
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let trimmed = line.trim_start();
        let Some(at) = trimmed.find("fn ") else {
            continue;
        };
        let head = &trimmed[..at];
        let is_definition = head
            .split_whitespace()
            .all(|word| ["pub", "pub(crate)", "pub(super)", "const", "async"].contains(&word));
        if !is_definition || trimmed.ends_with(';') {
            continue;
        }
        let indent = line.len() - trimmed.len();
        let fn_name: String = trimmed[at + 3..]
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        // A one-line function closes on its own line.
        if trimmed.ends_with('}') {
            out.push((fn_name, i + 1, 1));
            continue;
        }
        let end = lines[i + 1..].iter().position(|l| {
            let t = l.trim_start();
            l.len() - t.len() == indent && t.starts_with('}')
        });
        let length = end.map_or(lines.len() - i, |e| e + 2);
        out.push((fn_name, i + 1, length));
    }
    out
}

#[test]
fn plan_mod_only_orders_the_steps() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/plan/mod.rs");
    let lines = fs::read_to_string(&dir)
        .expect("plan/mod.rs")
        .lines()
        .count();
    assert!(
        lines < MOD_MAX_LINES,
        "plan/mod.rs has {lines} lines; it should only order the steps (under {MOD_MAX_LINES})"
    );
}

#[test]
fn no_function_in_the_planner_runs_past_80_lines() {
    let mut long = Vec::new();
    for path in plan_files() {
        let text = fs::read_to_string(&path).expect("a planner file");
        for (function, line, length) in functions(&text) {
            if length > FN_MAX_LINES {
                long.push(format!("{}:{line} {function}: {length} lines", name(&path)));
            }
        }
    }
    assert!(
        long.is_empty(),
        "functions over {FN_MAX_LINES} lines: {long:#?}"
    );
}

#[test]
fn every_planner_file_opens_with_what_it_decides() {
    for path in plan_files() {
        let text = fs::read_to_string(&path).expect("a planner file");
        let opening: Vec<&str> = text.lines().take_while(|l| l.starts_with("//!")).collect();
        assert!(
            opening.join(" ").split_whitespace().count() >= 8,
            "{} opens without a module comment saying what it decides",
            name(&path)
        );
    }
}

#[test]
fn the_deployments_variable_names_stay_out_of_the_planner() {
    for path in plan_files() {
        if name(&path).ends_with("tests.rs") {
            continue;
        }
        let text = fs::read_to_string(&path).expect("a planner file");
        // Test modules at the end of a file may name settings as they please.
        let code = text.split("#[cfg(test)]").next().unwrap_or_default();
        assert!(
            !code.contains("EKS_INTENTS_"),
            "{} names a deployment variable: words belong at the edges",
            name(&path)
        );
    }
}

/// The scanner itself: a long function is measured from `fn` to its closing brace.
#[test]
fn the_function_scanner_measures_what_rustfmt_writes() {
    let text = "fn short() {}\n\npub(crate) fn three(\n    a: u8,\n) {\n    body();\n}\n\nimpl X {\n    pub fn two() {\n    }\n    fn declared();\n}\n";
    assert_eq!(
        functions(text),
        vec![
            ("short".to_owned(), 1, 1),
            ("three".to_owned(), 3, 5),
            ("two".to_owned(), 10, 2)
        ]
    );
}
