//! What a plan says per workload and per orphaned role: what it will do and why. The status
//! report and the CLI's text output are built from this.

use super::action::Binding;
use super::problem::Problem;
use crate::model::{
    Namespace, RoleArn, RoleName, ServiceAccountRef, WorkloadKind, WorkloadName, WorkloadRef,
};
use serde::{Deserialize, Serialize, Serializer};
use std::fmt::Display;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum WorkloadState {
    /// Role and binding are as declared; nothing to do.
    Ready,
    /// The plan holds changes for this workload's role or binding.
    Changing,
    /// Waiting on the cluster: the workload or its ServiceAccount does not exist yet.
    Pending,
    /// Its source fails to read: the role is left exactly as it is.
    Held,
    /// This workload cannot be reconciled; the message says why and what to do.
    Error,
}

/// Which workload, the ServiceAccount it runs as, and the role it gets and how: what a
/// workload's entry in the plan and in the status report (`status::WorkloadStatus`) share.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkloadIdentity {
    pub namespace: Namespace,
    pub workload: WorkloadName,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<WorkloadKind>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account: Option<ServiceAccountRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role_arn: Option<RoleArn>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub binding: Option<Binding>,
}

/// A workload's entry in the plan. Written, never read back: the plan's outputs are made
/// from it, and a plan is always made anew.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct WorkloadPlan {
    #[serde(flatten)]
    pub identity: WorkloadIdentity,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<RoleName>,
    pub state: WorkloadState,
    /// Why the workload stands where it does; written as its `message`, in words.
    #[serde(rename = "message", serialize_with = "in_words")]
    pub outcome: WorkloadOutcome,
    /// How many actions of the plan belong to this workload's role.
    pub actions: usize,
    /// Whether its running pods lack the credentials of a binding this plan makes.
    #[serde(default)]
    pub restart: Restart,
}

impl WorkloadPlan {
    /// Its outcome in words, as the plan's outputs and the status report show it.
    pub fn message(&self) -> String {
        self.outcome.to_string()
    }
}

/// Why a workload stands where it does, as data; `crate::words` words it (`Display`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WorkloadOutcome {
    /// Role and binding are as declared.
    AsDeclared,
    /// This many changes are planned for the workload's role and binding.
    Changes(usize),
    /// The cluster does not run the workload (yet), so its ServiceAccount is unknown.
    NotObservedYet(WorkloadRef),
    /// What stops or delays the workload's role.
    Problem(Problem),
}

fn in_words<T: Display, S: Serializer>(value: &T, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.collect_str(value)
}

/// Pods get the credentials of a binding only when they start.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Restart {
    /// The binding does not change.
    #[default]
    NotNeeded,
    /// The binding changes; pods started before must be restarted by someone.
    Needed,
    /// The binding changes and the plan rolls the pods.
    Planned,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum OrphanState {
    /// Found without intents: marked now, deleted after the grace period.
    Marked,
    /// Marked earlier; the grace period has not passed.
    Waiting,
    /// Grace period over: unbound and deleted by this plan.
    Deleting,
    /// Grace period over, but more roles are due than the deletion cap allows in one run: the
    /// breaker holds every one of them, marked, until the cap is raised or the intents return.
    HeldByBreaker,
    /// Grace period over with soft delete on: unbound, and the role kept.
    Unbound,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrphanPlan {
    pub role: RoleName,
    pub arn: RoleArn,
    pub state: OrphanState,
    pub message: String,
}

/// The deletion breaker, tripped: more roles were due for deletion in one run than the cap.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeletionBreaker {
    /// Roles whose grace period is over.
    pub due: usize,
    /// The most roles one run may delete (or, with soft delete, unbind).
    pub cap: usize,
}

/// What a hand change can alter, as the plan finds and repairs it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DriftKind {
    InlinePolicy,
    ManagedPart,
    Trust,
    Boundary,
    Tags,
    RoleMissing,
    Annotation,
    PodIdentityAssociation,
    AddonRole,
    OidcProvider,
}

impl DriftKind {
    pub const ALL: [DriftKind; 10] = [
        DriftKind::InlinePolicy,
        DriftKind::ManagedPart,
        DriftKind::Trust,
        DriftKind::Boundary,
        DriftKind::Tags,
        DriftKind::RoleMissing,
        DriftKind::Annotation,
        DriftKind::PodIdentityAssociation,
        DriftKind::AddonRole,
        DriftKind::OidcProvider,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            DriftKind::InlinePolicy => "inline-policy",
            DriftKind::ManagedPart => "managed-part",
            DriftKind::Trust => "trust",
            DriftKind::Boundary => "boundary",
            DriftKind::Tags => "tags",
            DriftKind::RoleMissing => "role-missing",
            DriftKind::Annotation => "annotation",
            DriftKind::PodIdentityAssociation => "pod-identity-association",
            DriftKind::AddonRole => "addon-role",
            DriftKind::OidcProvider => "oidc-provider",
        }
    }
}

/// One kind of drift found on one role (or, for the OIDC provider, on the cluster).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Drift {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<RoleName>,
    pub kind: DriftKind,
}
