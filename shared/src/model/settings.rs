//! Settings that steer planning. Deployment-wide values come from the environment at the edge
//! (functions, CLI); the core only ever sees this typed struct.

use super::ids::PolicyArn;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// How a role is bound to its ServiceAccount.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum BindingMode {
    /// IAM Roles for Service Accounts: the cluster's OIDC provider and an annotation.
    #[default]
    Irsa,
    /// EKS Pod Identity: a Pod Identity association.
    PodIdentity,
}

impl BindingMode {
    pub fn as_str(self) -> &'static str {
        match self {
            BindingMode::Irsa => "irsa",
            BindingMode::PodIdentity => "pod-identity",
        }
    }
}

/// IAM quotas. They are settings because accounts can have them raised.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct IamQuotas {
    /// Total characters of all inline policies of one role, whitespace not counted.
    pub inline_policy_chars: usize,
    /// Characters of one managed policy document, whitespace not counted.
    pub managed_policy_chars: usize,
    /// Characters of a role's trust policy, whitespace not counted.
    pub trust_policy_chars: usize,
    /// Managed policies attached to one role.
    pub attached_policies: usize,
    /// Roles in the account (all of them, not only the system's).
    pub roles: usize,
    /// Pod Identity associations in one cluster (an EKS quota that cannot be raised).
    pub pod_identity_associations: usize,
}

impl Default for IamQuotas {
    fn default() -> Self {
        Self {
            inline_policy_chars: 10_240,
            managed_policy_chars: 6_144,
            trust_policy_chars: 2_048,
            attached_policies: 10,
            roles: 1_000,
            pod_identity_associations: 5_000,
        }
    }
}

impl IamQuotas {
    /// These quotas with the IAM ones replaced by what the account's summary says (the Pod
    /// Identity one is EKS's and stays).
    pub fn of_account(&self, summary: &AccountSummary) -> Self {
        Self {
            pod_identity_associations: self.pod_identity_associations,
            ..summary.quotas.clone()
        }
    }
}

/// What IAM's `GetAccountSummary` says of an account: its quotas (those it does not name keep
/// the fixed defaults) and how many roles it holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccountSummary {
    pub quotas: IamQuotas,
    pub roles: usize,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Settings {
    pub mode: BindingMode,
    /// The IAM path every role and policy the system owns lives under; a per-cluster part is
    /// added below it. Starts and ends with `/`.
    pub iam_path: String,
    /// ARN of the permissions boundary put on every role the system creates.
    pub permissions_boundary: Option<PolicyArn>,
    /// ARNs (patterns allowed) of the system's own resources: its bucket, queues, functions and
    /// their roles. No workload may act on them, nor on the boundary or anything under
    /// `iam_path`, which are protected without being listed (see `policy::system_resources`).
    pub system_resources: Vec<String>,
    /// Refuse to create or update roles while no boundary is configured. Off, every plan
    /// carries a warning that roles go without one.
    pub require_boundary: bool,
    /// Refuse intents that ask for actions creating, changing or passing identities or
    /// credentials (`iam:PassRole`, `iam:Put*`, `*`, ...), unless an exception names them.
    pub refuse_dangerous: bool,
    pub danger_exceptions: Vec<crate::policy::DangerException>,
    /// Allow binding a role to a namespace's `default` ServiceAccount (which every pod of the
    /// namespace uses unless told otherwise).
    pub allow_default_service_account: bool,
    /// Seconds a role whose intents are gone waits, marked, before it is deleted.
    pub deletion_grace_seconds: u64,
    /// The deletion breaker: when more roles than this are due for deletion in one run, none
    /// is deleted (an accidentally removed prefix must not wipe a cluster).
    pub max_deletions_per_run: usize,
    /// Roles whose grace period is over are unbound and kept, never deleted.
    pub soft_delete: bool,
    pub quotas: IamQuotas,
    /// Roll a workload's pods (a pod template annotation) when its binding changes: pods only
    /// get credentials when they start. Off, the status says which workloads need a restart.
    pub rollout_restart: bool,
    /// Take the role annotation over from another field manager instead of reporting a
    /// conflict.
    pub force_annotations: bool,
    /// Pod Identity: each association also carries its workload's declared permissions as its
    /// session policy (EKS's session tags then off), so that a role widened by hand gives the
    /// pods no more than their intents.
    pub session_policies: bool,
    /// An EKS add-on's ServiceAccount without intents gets a role with the managed policies
    /// EKS recommends for it (`DescribeAddonConfiguration`), bound through the add-on.
    pub addon_recommended_policies: bool,
    /// The accounts other than a cluster's where the system may make target roles (those the
    /// deployment has a role in): a workload whose intents name resources of an
    /// account not listed here is refused, with what is missing.
    #[serde(skip_serializing_if = "BTreeSet::is_empty")]
    pub target_accounts: BTreeSet<String>,
    /// The accounts of S3 buckets, whose ARNs name none: bucket name (or a prefix ending in
    /// `*`) -> account id. A bucket named here in another account than the cluster's is
    /// reached through a target role there.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub bucket_accounts: BTreeMap<String, String>,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            mode: BindingMode::Irsa,
            iam_path: "/eks-intents/".to_owned(),
            permissions_boundary: None,
            system_resources: Vec::new(),
            require_boundary: true,
            refuse_dangerous: true,
            danger_exceptions: Vec::new(),
            allow_default_service_account: false,
            deletion_grace_seconds: 24 * 60 * 60,
            max_deletions_per_run: 5,
            soft_delete: false,
            quotas: IamQuotas::default(),
            rollout_restart: false,
            force_annotations: false,
            session_policies: false,
            addon_recommended_policies: false,
            target_accounts: BTreeSet::new(),
            bucket_accounts: BTreeMap::new(),
        }
    }
}
