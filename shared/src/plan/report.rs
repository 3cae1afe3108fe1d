//! What a plan says per workload and per orphaned role: what it will do and why. The status
//! report and the CLI's text output are built from this.

use super::action::Binding;
use crate::model::{Namespace, RoleArn, RoleName, ServiceAccountRef, WorkloadKind, WorkloadName};
use serde::{Deserialize, Serialize};

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

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkloadPlan {
    #[serde(flatten)]
    pub identity: WorkloadIdentity,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<RoleName>,
    pub state: WorkloadState,
    pub message: String,
    /// How many actions of the plan belong to this workload's role.
    pub actions: usize,
    /// Whether its running pods lack the credentials of a binding this plan makes.
    #[serde(default)]
    pub restart: Restart,
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
