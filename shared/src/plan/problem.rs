//! Why a role is not (or not yet) as declared, as the steps find it: typed, with its data. The
//! words are made only when the plan reports the role's workloads (`Display`).

use super::WorkloadState;
use super::index::held_message;
use crate::model::{AddonName, AssociationId, RoleArn, ServiceAccountRef};
use crate::policy::{OWNER_TAG, SizeError};
use std::collections::BTreeSet;
use std::fmt;

/// What stops or delays one role; the state its workloads are reported in follows from it.
pub(super) enum Problem {
    /// A bundle that declares the role's workloads, or that the role's tags name, fails to
    /// read: the role is left exactly as it is.
    Held { bundles: BTreeSet<String> },
    /// The role is kept ready; its ServiceAccount does not exist yet.
    ServiceAccountMissing { service_account: ServiceAccountRef },
    /// The role, or only its binding, is refused.
    Refused(Refusal),
}

/// Why a role (or its binding) is refused, and what to do about it.
pub(super) enum Refusal {
    /// The namespace's `default` ServiceAccount, which every pod of it may run as.
    DefaultServiceAccount { namespace: String },
    /// A role of this name exists and belongs to the eks-intents of another cluster.
    RoleOfOtherCluster { role: String, cluster: String },
    /// A role of this name exists and is not managed by eks-intents.
    ForeignRole { role: String },
    /// IRSA without an OIDC issuer on the cluster.
    NoOidcIssuer { cluster: String },
    /// The trust policy exceeds its quota.
    TrustTooLarge { size: usize, quota: usize },
    /// Grants on resources of another partition (each as the reader words it).
    OtherPartition { problems: BTreeSet<String> },
    /// Grants naming the system's own resources (each as `system_refusal` words it).
    SystemResources { refusals: Vec<String> },
    /// No permissions boundary is configured while one is required.
    NoBoundary,
    /// Dangerous actions that no exception allows (each: action, resource and why).
    Dangerous { refused: Vec<String> },
    /// The grants do not fit the policy quotas.
    TooLarge(SizeError),
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
}

impl Problem {
    pub(super) fn state(&self) -> WorkloadState {
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

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::Held { bundles } => {
                f.write_str(&held_message(&bundles.iter().map(String::as_str).collect()))
            }
            Problem::ServiceAccountMissing { service_account } => write!(
                f,
                "ServiceAccount {service_account} does not exist yet; the role is kept ready and bound once it appears"
            ),
            Problem::Refused(refusal) => fmt::Display::fmt(refusal, f),
        }
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::DefaultServiceAccount { namespace: ns } => write!(
                f,
                "runs as the default ServiceAccount of namespace {ns}, which every pod of {ns} uses unless told otherwise: binding a role to it would give these permissions to all of them. Give the workload its own ServiceAccount (spec.template.spec.serviceAccountName), or allow this in the settings (allow_default_service_account)"
            ),
            Refusal::RoleOfOtherCluster { role, cluster } => write!(
                f,
                "IAM role {role} already exists and belongs to the eks-intents of cluster {cluster}; it is left alone. Give one of the clusters another name"
            ),
            Refusal::ForeignRole { role } => write!(
                f,
                "IAM role {role} already exists and is not managed by eks-intents (no {OWNER_TAG} tag); it is left alone. Rename or remove it, or tag it to hand it over"
            ),
            Refusal::NoOidcIssuer { cluster } => write!(
                f,
                "cluster {cluster} has no OIDC issuer, which IRSA needs; use Pod Identity mode or enable the cluster's OIDC issuer"
            ),
            Refusal::TrustTooLarge { size, quota } => write!(
                f,
                "the trust policy needs {size} characters, more than the quota of {quota}"
            ),
            Refusal::OtherPartition { problems } => {
                f.write_str(&problems.iter().map(String::as_str).collect::<Vec<_>>().join("; "))
            }
            Refusal::SystemResources { refusals } => {
                write!(f, "refused: {}", refusals.join("; "))
            }
            Refusal::NoBoundary => f.write_str(
                "no permissions boundary is configured (EKS_INTENTS_PERMISSIONS_BOUNDARY): roles are neither created nor changed without one, since whoever uploads intents would otherwise get whatever they ask for. Configure the boundary, or turn the requirement off (EKS_INTENTS_REQUIRE_BOUNDARY=false)",
            ),
            Refusal::Dangerous { refused } => write!(
                f,
                "refused: {}. Such actions let a workload create or take over identities or read every secret; the platform team can allow one for this workload with an exception in the settings (EKS_INTENTS_DANGEROUS_EXCEPTIONS)",
                refused.join("; ")
            ),
            Refusal::TooLarge(error) => fmt::Display::fmt(error, f),
            _ => self.fmt_binding(f),
        }
    }
}

impl Refusal {
    /// The words for a binding refused because someone else's is in the way.
    fn fmt_binding(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::AnnotatedByOther {
                service_account,
                current,
            } => write!(
                f,
                "ServiceAccount {service_account} is already annotated with role {current} by another manager; not overwriting it. Remove that annotation, or allow forcing in the settings (EKS_INTENTS_FORCE_ANNOTATIONS)"
            ),
            Refusal::AssociationOwned {
                service_account,
                owner,
            } => write!(
                f,
                "ServiceAccount {service_account} has a Pod Identity association owned by {owner}; it is never taken over"
            ),
            Refusal::ForeignAssociation {
                service_account,
                association_id,
                role_arn,
            } => write!(
                f,
                "ServiceAccount {service_account} already has Pod Identity association {association_id} to role {role_arn}, not made by eks-intents; not replacing it"
            ),
            Refusal::AddonRoleOfOther { addon, current } => write!(
                f,
                "EKS add-on {addon} already uses role {current}, which eks-intents does not manage; not replacing it. Clear the add-on's role to hand it over"
            ),
            _ => Ok(()),
        }
    }
}
