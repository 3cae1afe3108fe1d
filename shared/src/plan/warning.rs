//! What the plan warns about: grants and sharings that stand but deserve a look. Typed, with
//! their data; the words are made where the plan is shown (`crate::words`).

use crate::model::{AddonName, ClusterName, ServiceAccountRef, WorkloadRef};
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "warning", rename_all = "kebab-case")]
pub enum Warning {
    /// Several workloads run as one ServiceAccount: they get one role with the union of their
    /// permissions.
    SharedServiceAccount {
        workloads: Vec<WorkloadRef>,
        service_account: ServiceAccountRef,
    },
    /// IRSA gives an add-on one role: its ServiceAccounts that have intents share the role of
    /// the first, trusted by each, with the union of their permissions.
    AddonSharesRole {
        addon: AddonName,
        service_accounts: Vec<ServiceAccountRef>,
    },
    /// The role's workloads are granted these actions on every resource (`*`).
    BroadGrant {
        workloads: Vec<WorkloadRef>,
        actions: Vec<String>,
    },
    /// Wildcard grants that reach the system's own resources: granted, with every action on
    /// `denied` denied explicitly.
    SystemDenied {
        workloads: Vec<WorkloadRef>,
        reaching: Vec<String>,
        denied: Vec<String>,
    },
    /// Roles are created without a permissions boundary: the requirement is turned off.
    NoBoundary,
    /// The cluster does not exist any more (or is being deleted): the roles made for it are
    /// cleaned up after the grace period.
    ClusterGone { cluster: ClusterName },
    /// The account's IAM quotas could not be read (`reason`): the plan is made against the
    /// fixed defaults, and the room left for new roles is not checked.
    QuotasUnread { reason: String },
}
