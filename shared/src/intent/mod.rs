//! Intent bundles: bundle bytes (YAML, JSON or a `.tar.gz` of them) to validated intents, with
//! errors that name file, archive member, document, line and field.
//!
//! Reading never stops at the first problem: every document is read and every error reported,
//! so a user fixes a bundle in one round. What failed is reported as *held* (a workload, or the
//! whole bundle) so that a broken upload never shrinks what was granted before.

mod archive;
mod client_intents;
mod diagnostic;
pub mod layout;
mod names;
mod reader;
mod yaml;

#[cfg(test)]
mod tests;

pub use diagnostic::{Diagnostic, Echo, Place, Severity, echo};
pub use layout::{
    BundleLocation, cluster_prefix, locate, state_key, status_key, upload_status_key,
};
pub use names::{NameError, NameProblem, check_namespace, check_workload_name};

use crate::model::{
    DesiredState, HeldWorkload, Namespace, Permission, SourceRef, WorkloadName, WorkloadRef,
};
use serde::{Deserialize, Serialize};

/// One bundle as it was uploaded, and where it sits.
#[derive(Clone, Copy)]
pub struct BundleInput<'a> {
    /// The S3 key or file path: names the bundle in every message, and its extension tells
    /// the kind of bundle.
    pub key: &'a str,
    pub bytes: &'a [u8],
    /// The namespace of documents that name none (`kubectl apply -n`); `default` when absent.
    pub default_namespace: Option<&'a Namespace>,
    /// Set for a team's bundle: documents may only name this namespace.
    pub tenant_namespace: Option<&'a Namespace>,
}

// By hand: a derived `Debug` would print up to a megabyte of bytes into a log line.
impl std::fmt::Debug for BundleInput<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BundleInput")
            .field("key", &self.key)
            .field("bytes", &format_args!("<{} bytes>", self.bytes.len()))
            .field("default_namespace", &self.default_namespace)
            .field("tenant_namespace", &self.tenant_namespace)
            .finish()
    }
}

/// Caps on what one bundle may cost to read. Uploads are untrusted, and the reader runs in the
/// smallest Lambda, so every cap is checked while reading, never taken from a header.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Limits {
    /// Bytes of the bundle as uploaded: a plain file, or the compressed archive.
    pub max_bundle_bytes: usize,
    /// Bytes an archive may expand to (tar headers included), counted while decompressing.
    pub max_uncompressed_bytes: u64,
    /// Entries of an archive, directories included.
    pub max_members: usize,
    /// Bytes of one archive member.
    pub max_member_bytes: u64,
    /// Documents of the whole bundle (all members), empty ones not counted.
    pub max_documents: usize,
    /// YAML nodes (scalars, lists, mappings) of the whole bundle, counted as aliases expand.
    pub max_yaml_nodes: usize,
    /// Nesting of lists and mappings within one document. Parsing recurses once per level,
    /// about 5 KiB of stack in an optimized build and 45 KiB in an unoptimized one; 32 levels
    /// stay well inside the 2 MiB stack of a spawned thread, and no intent nests half as deep.
    pub max_yaml_depth: usize,
    /// Parser events one document may replay through aliases: stops "billion laughs".
    pub max_alias_replay: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_bundle_bytes: 1024 * 1024,
            max_uncompressed_bytes: 8 * 1024 * 1024,
            max_members: 200,
            max_member_bytes: 1024 * 1024,
            max_documents: 500,
            max_yaml_nodes: 250_000,
            max_yaml_depth: 32,
            max_alias_replay: 10_000,
        }
    }
}

impl Limits {
    /// The error for a bundle of `size` bytes when that is over the cap. `size` is the real
    /// size (the file's metadata, the S3 listing), so a read cut at the cap never shows as
    /// the size of the bundle.
    pub fn bundle_too_large(&self, size: u64) -> Option<BundleTooLarge> {
        let limit = self.max_bundle_bytes as u64;
        (size > limit).then_some(BundleTooLarge { size, limit })
    }
}

/// A bundle over [`Limits::max_bundle_bytes`], refused before it is read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("bundle is {size} bytes, more than the limit of {limit} bytes")]
pub struct BundleTooLarge {
    pub size: u64,
    pub limit: u64,
}

/// What one valid ClientIntents document asks for one workload.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Intent {
    pub workload: WorkloadRef,
    /// In the order declared, each (action, resource) pair once.
    pub permissions: Vec<Permission>,
    pub source: SourceRef,
    /// Where each permission was declared (same order as `permissions`), for messages about
    /// one of them (a refusal `validate` previews).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub locations: Vec<Location>,
}

/// The line and field path of a value within its document.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Location {
    pub line: Option<u64>,
    pub field: String,
}

impl Intent {
    /// A diagnostic about the `i`-th permission, at its place in the bundle.
    pub fn diagnostic_at(&self, i: usize, severity: Severity, message: String) -> Diagnostic {
        let location = self.locations.get(i);
        let place = Place {
            file: self.source.bundle.clone(),
            member: self.source.member.clone(),
            document: Some(self.source.document),
            line: location.and_then(|l| l.line),
            field: location.map(|l| l.field.clone()),
        };
        Diagnostic::new(severity, place, message)
    }
}

/// Everything read from one bundle.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BundleReport {
    pub key: String,
    pub intents: Vec<Intent>,
    /// Each of severity [`Severity::Error`]: any one fails the bundle.
    pub errors: Vec<Diagnostic>,
    /// Warnings and notices: worth telling, failing nothing.
    #[serde(deserialize_with = "diagnostic::notices")]
    pub notices: Vec<Diagnostic>,
    /// workloads of documents that failed but whose namespace+name could still be read
    pub held_workloads: Vec<(Namespace, WorkloadName)>,
    /// true when a failure could not be tied to a workload (whole bundle unreadable, a
    /// document with a syntax error, ...)
    pub held_whole_bundle: bool,
}

impl BundleReport {
    pub fn is_valid(&self) -> bool {
        self.errors.is_empty()
    }

    /// A bundle refused as a whole before it is read (too large, cannot be fetched): one error
    /// and the whole bundle held.
    pub fn refused(key: &str, message: impl Into<String>) -> Self {
        BundleReport {
            key: key.to_owned(),
            errors: vec![Diagnostic::new(
                Severity::Error,
                Place::bundle(key),
                message,
            )],
            held_whole_bundle: true,
            ..BundleReport::default()
        }
    }

    /// Adds what the bundle gives to the desired state. A bundle is the unit a pipeline
    /// uploads, so it applies whole or not at all: a valid bundle adds its intents; an invalid
    /// one adds none, and holds itself and every workload it names (read from its valid
    /// documents or from the broken ones), so each keeps exactly what the bundle's last
    /// applied version gave, neither widened nor shrunk.
    pub fn add_to(&self, desired: &mut DesiredState) {
        if self.is_valid() {
            for intent in &self.intents {
                desired.add(
                    intent.workload.clone(),
                    intent.permissions.iter().cloned(),
                    intent.source.clone(),
                );
            }
            return;
        }
        self.hold(desired);
    }

    /// [`BundleReport::add_to`], moving the intents into the desired state instead of copying
    /// them: for a reader that keeps only the diagnostics afterwards (`eks-intents plan`, which
    /// reads a whole fleet's intents). The report keeps no intents when its bundle was valid.
    pub fn move_into(&mut self, desired: &mut DesiredState) {
        if !self.is_valid() {
            return self.hold(desired);
        }
        for intent in std::mem::take(&mut self.intents) {
            desired.add(intent.workload, intent.permissions, intent.source);
        }
    }

    /// An invalid bundle holds itself and every workload it names.
    fn hold(&self, desired: &mut DesiredState) {
        desired.held.bundles.insert(self.key.clone());
        let named = self
            .intents
            .iter()
            .map(|intent| (&intent.workload.namespace, &intent.workload.name))
            .chain(self.held_workloads.iter().map(|(ns, name)| (ns, name)));
        for (namespace, name) in named {
            desired.held.workloads.insert(HeldWorkload {
                namespace: namespace.clone(),
                name: name.clone(),
                bundle: self.key.clone(),
            });
        }
    }
}

/// Reads one bundle. Never fails as a whole and never panics: every problem is in the report.
pub fn read_bundle(input: &BundleInput<'_>, limits: &Limits) -> BundleReport {
    reader::read(input, limits)
}

/// The placeholders Otterize lets ARNs carry, resolved for one cluster's region and account.
pub fn resolve_placeholders(arn: &str, region: &str, account: &str) -> String {
    let Some(first) = next_placeholder(arn) else {
        return arn.to_owned();
    };
    // One pass, into one string: this runs for every permission of every plan.
    let mut out = String::with_capacity(arn.len() + region.len() + account.len());
    out.push_str(&arn[..first]);
    let mut rest = &arn[first..];
    while let Some(at) = next_placeholder(rest) {
        out.push_str(&rest[..at]);
        rest = &rest[at..];
        if let Some(after) = rest.strip_prefix("$(AWS_REGION)") {
            out.push_str(region);
            rest = after;
        } else if let Some(after) = rest.strip_prefix("$(AWS_ACCOUNT_ID)") {
            out.push_str(account);
            rest = after;
        } else {
            out.push_str("$(");
            rest = &rest[2..];
        }
    }
    out.push_str(rest);
    out
}

/// Where the first `$(` in `text` starts: found by its `$`, without setting up a search for
/// the two bytes (most ARNs have no `$` at all).
fn next_placeholder(text: &str) -> Option<usize> {
    let bytes = text.as_bytes();
    let mut from = 0;
    while let Some(found) = bytes[from..].iter().position(|&b| b == b'$') {
        let at = from + found;
        if bytes.get(at + 1) == Some(&b'(') {
            return Some(at);
        }
        from = at + 1;
    }
    None
}
