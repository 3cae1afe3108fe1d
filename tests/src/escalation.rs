//! The escalation corpus (`tests/fixtures/escalation`): in `refused/`, every known way to gain
//! more than was granted, one bundle each, whose first lines say what it asks for and why it is
//! refused; in `passes/`, the same services on named team resources. The planner's tests
//! (`tests/tests/escalation.rs`) and `validate`'s (`cli/tests/cli.rs`) read it from here.

use std::path::PathBuf;

/// One bundle of `refused/`: its workload (named after the file), the action and resource it
/// asks for and a part of the reason, as its first lines say.
pub struct Vector {
    pub path: String,
    pub workload: String,
    pub action: String,
    pub resource: String,
    pub reason: String,
    /// The line of `actions:`, where the refusal points.
    pub line: usize,
    pub text: String,
}

/// The YAML files of the corpus's `kind` folder (`refused` or `passes`), by name.
pub fn files(kind: &str) -> Vec<PathBuf> {
    let dir = crate::repo_root()
        .join("tests/fixtures/escalation")
        .join(kind);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    files
}

/// Every vector of `refused/`.
pub fn vectors() -> Vec<Vector> {
    let vectors: Vec<Vector> = files("refused")
        .into_iter()
        .map(|path| {
            let text = std::fs::read_to_string(&path).expect("fixture");
            let header = |key: &str| {
                text.lines()
                    .find_map(|l| l.strip_prefix(&format!("# {key}: ")))
                    .unwrap_or_else(|| panic!("{}: no `# {key}:` line", path.display()))
                    .to_owned()
            };
            let refused = header("refused");
            let (action, resource) = refused
                .split_once(" on ")
                .expect("`<action> on <resource>`");
            let line = text
                .lines()
                .position(|l| l.contains("actions:"))
                .expect("an `actions:` line")
                + 1;
            Vector {
                path: path.to_string_lossy().into_owned(),
                workload: path
                    .file_stem()
                    .expect("name")
                    .to_string_lossy()
                    .into_owned(),
                action: action.to_owned(),
                resource: resource.to_owned(),
                reason: header("reason"),
                line,
                text,
            }
        })
        .collect();
    assert!(
        vectors.len() >= 20,
        "the corpus is there: {}",
        vectors.len()
    );
    vectors
}
