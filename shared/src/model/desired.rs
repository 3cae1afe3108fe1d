//! The desired state of one cluster: what every valid intent asks for, and what must be held
//! as it is because its bundle or document currently fails to read.

use super::ids::{Namespace, WorkloadName, WorkloadRef};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

/// One IAM action allowed on one resource. `resource` is an ARN (wildcards allowed) or `*`;
/// it may still hold `$(AWS_REGION)` / `$(AWS_ACCOUNT_ID)` until resolved for a cluster.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Permission {
    pub action: String,
    pub resource: String,
}

/// Where an intent came from: the bundle (S3 key or file path), the archive member if any, and
/// the document's 1-based index within its file.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct SourceRef {
    pub bundle: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub member: Option<String>,
    pub document: usize,
}

impl fmt::Display for SourceRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.bundle)?;
        if let Some(member) = &self.member {
            write!(f, "!{member}")?;
        }
        write!(f, "#{}", self.document)
    }
}

/// One workload's declared needs, merged over every document that names it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DesiredWorkload {
    pub workload: WorkloadRef,
    pub permissions: BTreeSet<Permission>,
    pub sources: BTreeSet<SourceRef>,
}

/// What must not change while its source is broken: an invalid upload must never widen,
/// shrink or delete what was granted before.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Held {
    /// Bundles that fail to read, in part or whole: every role they fed (by the roles' source
    /// tags) stays as it is.
    pub bundles: BTreeSet<String>,
    /// Workloads an invalid bundle names: their roles stay as they are, and a workload without
    /// a role gets none until the bundle is fixed.
    pub workloads: BTreeSet<HeldWorkload>,
}

/// A workload named by an invalid bundle.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct HeldWorkload {
    pub namespace: Namespace,
    pub name: WorkloadName,
    /// The invalid bundle that names it.
    pub bundle: String,
}

impl Held {
    pub fn is_empty(&self) -> bool {
        self.bundles.is_empty() && self.workloads.is_empty()
    }

    /// The invalid bundles that name a workload (empty when it is not held by name).
    pub fn bundles_naming(&self, namespace: &str, name: &str) -> Vec<&str> {
        self.workloads
            .iter()
            .filter(|w| w.namespace.as_str() == namespace && w.name.as_str() == name)
            .map(|w| w.bundle.as_str())
            .collect()
    }
}

/// The desired state of a cluster: the union of all its bundles.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DesiredState {
    pub workloads: BTreeMap<WorkloadRef, DesiredWorkload>,
    pub held: Held,
}

impl DesiredState {
    /// Adds one intent, merging with what the same workload already declared.
    pub fn add(
        &mut self,
        workload: WorkloadRef,
        permissions: impl IntoIterator<Item = Permission>,
        source: SourceRef,
    ) {
        let entry = self
            .workloads
            .entry(workload.clone())
            .or_insert_with(|| DesiredWorkload {
                workload,
                permissions: BTreeSet::new(),
                sources: BTreeSet::new(),
            });
        entry.permissions.extend(permissions);
        entry.sources.insert(source);
    }
}
