//! Why a role is not (or not yet) as declared, as the steps find it: typed, with its data. The
//! words are made in `crate::words` (`Display`), when the plan reports the role's workloads.

use super::WorkloadState;
use crate::model::{
    AddonName, AssociationId, ClusterName, Namespace, Permission, RoleArn, RoleName,
    ServiceAccountRef,
};
use crate::policy::SizeError;
use std::collections::BTreeSet;

/// What stops or delays one role; the state its workloads are reported in follows from it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Problem {
    /// A bundle that declares the role's workloads, or that the role's tags name, fails to
    /// read: the role is left exactly as it is.
    Held { bundles: BTreeSet<String> },
    /// The role is kept ready; its ServiceAccount does not exist yet.
    ServiceAccountMissing { service_account: ServiceAccountRef },
    /// The role, or only its binding, is refused.
    Refused(Refusal),
}

/// Why a role (or its binding) is refused, and what to do about it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// The namespace's `default` ServiceAccount, which every pod of it may run as.
    DefaultServiceAccount { namespace: Namespace },
    /// A role of this name exists and belongs to the eks-intents of another cluster (`cluster`:
    /// the value of its cluster tag).
    RoleOfOtherCluster { role: RoleName, cluster: String },
    /// A role of this name exists and is not managed by eks-intents.
    ForeignRole { role: RoleName },
    /// IRSA without an OIDC issuer on the cluster.
    NoOidcIssuer { cluster: ClusterName },
    /// The trust policy exceeds its quota.
    TrustTooLarge { size: usize, quota: usize },
    /// Grants on resources of another partition (each as the reader words it).
    OtherPartition { problems: BTreeSet<String> },
    /// Grants naming the system's own resources: each with the resource of the system it names.
    SystemResources { named: Vec<(Permission, String)> },
    /// No permissions boundary is configured while one is required.
    NoBoundary,
    /// Dangerous actions that no exception allows: each with why it is dangerous.
    Dangerous { refused: Vec<(Permission, String)> },
    /// The grants do not fit the policy quotas.
    TooLarge(SizeError),
    /// The declared permissions are too large for the association's session policy.
    SessionPolicyTooLarge { size: usize, quota: usize },
    /// The account holds as many roles as its quota allows: the role is not created.
    RolesQuotaReached { quota: usize },
    /// The cluster has as many Pod Identity associations as EKS allows: the role and its
    /// association are not created.
    AssociationsQuotaReached { quota: usize },
    /// The ServiceAccount carries another manager's role annotation.
    AnnotatedByOther {
        service_account: ServiceAccountRef,
        current: String,
    },
    /// The ServiceAccount's Pod Identity association is owned by another service.
    AssociationOwned {
        service_account: ServiceAccountRef,
        owner: String,
    },
    /// The ServiceAccount has a Pod Identity association that eks-intents did not make.
    ForeignAssociation {
        service_account: ServiceAccountRef,
        association_id: AssociationId,
        role_arn: RoleArn,
    },
    /// The add-on uses a role that eks-intents does not manage.
    AddonRoleOfOther { addon: AddonName, current: RoleArn },
    /// The intents name resources of an account where the deployment has no role to make the
    /// workload's target role.
    TargetAccountUnknown { account: String },
    /// The intents name resources of more than one other account: a workload has at most one
    /// target role.
    ManyTargetAccounts { accounts: BTreeSet<String> },
    /// Pod Identity gives the pods the target role's credentials alone, so resources of the
    /// cluster's account and of another cannot both be reached.
    TargetBesideHomeGrants { account: String },
    /// An add-on's binding cannot name a target role.
    TargetOfAddon { addon: AddonName, account: String },
    /// The account of the target role could not be read: the role is left as it is.
    TargetAccountUnreadable { account: String, error: String },
    /// The grants on the target account's resources do not fit one inline policy.
    TargetPolicyTooLarge { size: usize, quota: usize },
    /// What stops the target role in its account.
    InTargetAccount {
        account: String,
        refusal: Box<Refusal>,
    },
}

impl Problem {
    pub fn state(&self) -> WorkloadState {
        match self {
            Problem::Held { .. } => WorkloadState::Held,
            Problem::ServiceAccountMissing { .. } => WorkloadState::Pending,
            Problem::Refused(_) => WorkloadState::Error,
        }
    }
}

impl From<Refusal> for Problem {
    fn from(refusal: Refusal) -> Self {
        Problem::Refused(refusal)
    }
}
