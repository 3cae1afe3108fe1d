//! The walk through one bundle: caps, bundle kind, archive members, text decoding, documents,
//! each step reporting into one `BundleReport` and holding what its failure leaves unknown.

use super::archive::{self, BundleKind, Member, TextKind};
use super::client_intents::{self, Scope};
use super::diagnostic::Origin;
use super::names::check_namespace;
use super::yaml::{self, Chunk, Node};
use super::{BundleInput, BundleReport, Limits};
use crate::model::Namespace;
use std::ops::ControlFlow;

/// Errors of one bundle listed in full; past this, one more says how many were left out.
const MAX_ERRORS_LISTED: usize = 100;

pub(super) fn read(input: &BundleInput<'_>, limits: &Limits) -> BundleReport {
    let mut reader = Reader {
        limits,
        report: BundleReport {
            key: input.key.to_owned(),
            ..BundleReport::default()
        },
        default_namespace: Namespace::new("default"),
        tenant_namespace: None,
        documents: 0,
        nodes_left: limits.max_yaml_nodes,
        stopped: false,
    };
    reader.read(input);
    reader.finish()
}

struct Reader<'l> {
    limits: &'l Limits,
    report: BundleReport,
    default_namespace: Namespace,
    tenant_namespace: Option<Namespace>,
    /// Non-empty documents seen so far, over all members.
    documents: usize,
    nodes_left: usize,
    /// Set once a bundle-wide cap is hit: reading further would only repeat the error.
    stopped: bool,
}

impl Reader<'_> {
    fn read(&mut self, input: &BundleInput<'_>) {
        if !self.take_namespaces(input) {
            return;
        }
        if let Some(problem) = self.limits.bundle_too_large(input.bytes.len() as u64) {
            self.fail(None, problem.to_string());
            return;
        }
        match archive::bundle_kind(input.key, input.bytes) {
            BundleKind::Text(kind) => self.read_text(None, kind, input.bytes),
            BundleKind::Archive => self.read_archive(input.bytes),
            BundleKind::PlainTar => self.fail(
                None,
                "uncompressed tar archives are not read; compress it (.tar.gz or .tgz)",
            ),
        }
        if self.documents == 0 && self.report.errors.is_empty() {
            self.fail(None, "bundle is empty");
        }
    }

    /// The caller's namespaces come from a bucket path or a command line: checked like any
    /// other input, so a badly named folder fails loudly instead of granting in a namespace
    /// that cannot exist.
    fn take_namespaces(&mut self, input: &BundleInput<'_>) -> bool {
        for namespace in [input.default_namespace, input.tenant_namespace]
            .into_iter()
            .flatten()
        {
            if let Err(problem) = check_namespace(namespace.as_str()) {
                self.fail(None, format!("bundle location: {problem}"));
                return false;
            }
        }
        self.tenant_namespace = input.tenant_namespace.cloned();
        if let Some(namespace) = input.default_namespace.or(input.tenant_namespace) {
            self.default_namespace = namespace.clone();
        }
        true
    }

    fn finish(mut self) -> BundleReport {
        self.report.held_workloads.sort();
        self.report.held_workloads.dedup();
        // Every error is counted, but a thousand of them help nobody and would bloat the
        // status report: the first ones, then how many more.
        let errors = self.report.errors.len();
        if errors > MAX_ERRORS_LISTED {
            self.report.errors.truncate(MAX_ERRORS_LISTED);
            let more = self.origin(None, None).error(
                None,
                None,
                format!("... and {} more errors", errors - MAX_ERRORS_LISTED),
            );
            self.report.errors.push(more);
        }
        self.report
    }

    fn origin(&self, member: Option<&str>, document: Option<usize>) -> Origin {
        Origin {
            file: self.report.key.clone(),
            member: member.map(str::to_owned),
            document,
        }
    }

    /// A failure no workload can be blamed for.
    fn fail(&mut self, member: Option<&str>, message: impl Into<String>) {
        let error = self.origin(member, None).error(None, None, message);
        self.report.errors.push(error);
        self.report.held_whole_bundle = true;
    }

    fn read_archive(&mut self, bytes: &[u8]) {
        let limits = self.limits;
        let result = archive::read_archive(bytes, limits, |member| {
            match member {
                Member::Text { path, kind, bytes } => self.read_text(Some(&path), kind, &bytes),
                Member::Skipped { path, why } => {
                    let notice = self
                        .origin(Some(&path), None)
                        .notice(None, None, why.to_string());
                    self.report.notices.push(notice);
                }
                Member::Refused { path, why } => self.fail(Some(&path), why.to_string()),
            }
            if self.stopped {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        });
        if let Err(error) = result {
            self.fail(None, error.to_string());
        }
    }

    fn read_text(&mut self, member: Option<&str>, kind: TextKind, bytes: &[u8]) {
        let text = match decode(bytes) {
            Ok(text) => text,
            Err(problem) => {
                let error = self
                    .origin(member, None)
                    .error(problem.line, None, problem.message);
                self.report.errors.push(error);
                self.report.held_whole_bundle = true;
                return;
            }
        };
        let chunks = match kind {
            TextKind::Yaml => yaml::split_documents(text),
            // JSON has no document markers; one file is one document.
            TextKind::Json if text.trim().is_empty() => Vec::new(),
            TextKind::Json => {
                // JSON is read by the YAML parser (for its lines and limits), but YAML's flow
                // collections allow what JSON does not, a trailing comma first: a `.json` file
                // must be JSON, as every other tool will read it.
                if let Err(err) = serde_json::from_str::<serde::de::IgnoredAny>(text) {
                    let error = self.origin(member, Some(1)).error(
                        (err.line() > 0).then_some(err.line() as u64),
                        None,
                        format!("invalid JSON: {}", json_problem(text, &err)),
                    );
                    self.report.errors.push(error);
                    self.report.held_whole_bundle = true;
                    return;
                }
                vec![Chunk {
                    text,
                    first_line: 1,
                }]
            }
        };
        for (i, chunk) in chunks.iter().enumerate() {
            if self.stopped {
                return;
            }
            self.read_document(member, i + 1, chunk);
        }
    }

    fn read_document(&mut self, member: Option<&str>, document: usize, chunk: &Chunk<'_>) {
        if self.documents >= self.limits.max_documents {
            self.fail(
                member,
                format!(
                    "bundle holds more than {} documents; split it into several bundles",
                    self.limits.max_documents
                ),
            );
            self.stopped = true;
            return;
        }
        self.documents += 1;
        let origin = self.origin(member, Some(document));
        let budget = yaml::Budget {
            nodes_left: self.nodes_left,
            max_nodes: self.limits.max_yaml_nodes,
            max_depth: self.limits.max_yaml_depth,
            max_alias_replay: self.limits.max_alias_replay,
        };
        match yaml::parse_document(chunk, &budget) {
            Ok((root, nodes)) => {
                self.nodes_left = self.nodes_left.saturating_sub(nodes);
                // `~` alone is an empty document, as kubectl reads it.
                if root.node == Node::Null {
                    self.documents -= 1;
                    return;
                }
                let scope = Scope {
                    origin,
                    document,
                    default_namespace: &self.default_namespace,
                    tenant_namespace: self.tenant_namespace.as_ref(),
                };
                client_intents::read_document(&root, &scope, &mut self.report);
            }
            Err(err) => {
                self.report
                    .errors
                    .push(origin.error(err.line, None, err.message));
                self.report.held_whole_bundle = true;
                if err.exhausted {
                    self.stopped = true;
                }
            }
        }
    }
}

/// What is wrong with a JSON text, in words: serde_json's message without its ` at line L
/// column C` (the line is placed like every other error's), keeping the column. A trailing
/// comma is named as such, which serde_json calls "expected value" in a list.
fn json_problem(text: &str, err: &serde_json::Error) -> String {
    let (line, column) = (err.line(), err.column());
    // serde_json counts columns in bytes from 1.
    let at = text
        .split_inclusive('\n')
        .nth(line.saturating_sub(1))
        .and_then(|l| l.as_bytes().get(..column))
        .unwrap_or_default();
    if let [before @ .., b']' | b'}'] = at
        && before.trim_ascii_end().ends_with(b",")
    {
        return format!("trailing comma (column {column}); JSON allows none");
    }
    let full = err.to_string();
    let location = format!(" at line {line} column {column}");
    match full.strip_suffix(&location) {
        Some(problem) => format!("{problem} (column {column})"),
        None => full,
    }
}

struct DecodeProblem {
    line: Option<u64>,
    message: String,
}

/// Bytes to text. Only UTF-8 (with or without a byte-order mark) is read, as Kubernetes does;
/// the common wrong guesses get a message that says what to do.
fn decode(bytes: &[u8]) -> Result<&str, DecodeProblem> {
    const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";
    let bytes = bytes.strip_prefix(UTF8_BOM).unwrap_or(bytes);
    if bytes.starts_with(b"\xFF\xFE") || bytes.starts_with(b"\xFE\xFF") {
        return Err(DecodeProblem {
            line: None,
            message: "file is UTF-16 text; save it as UTF-8".to_owned(),
        });
    }
    if archive::is_gzip(bytes) {
        return Err(DecodeProblem {
            line: None,
            message: "file is gzip-compressed; name a compressed bundle .tar.gz or .tgz".to_owned(),
        });
    }
    std::str::from_utf8(bytes).map_err(|err| {
        let valid = bytes.get(..err.valid_up_to()).unwrap_or_default();
        let line = valid.iter().filter(|b| **b == b'\n').count() as u64 + 1;
        DecodeProblem {
            line: Some(line),
            message: "file is not UTF-8 text".to_owned(),
        }
    })
}
