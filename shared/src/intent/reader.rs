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
        if input.bytes.len() > self.limits.max_bundle_bytes {
            self.fail(
                None,
                format!(
                    "bundle is {} bytes, more than the limit of {} bytes",
                    input.bytes.len(),
                    self.limits.max_bundle_bytes
                ),
            );
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
                    let notice = self.origin(Some(&path), None).notice(None, None, why);
                    self.report.notices.push(notice);
                }
                Member::Refused { path, why } => self.fail(Some(&path), why),
            }
            if self.stopped {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        });
        if let Err(message) = result {
            self.fail(None, message);
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
            TextKind::Json => vec![Chunk {
                text,
                first_line: 1,
            }],
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
