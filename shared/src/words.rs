//! The words for the planner's typed outcomes: its warnings, why a role is refused or held,
//! what becomes of an orphaned role, the deletion breaker. People read them in the status
//! report and the CLI's output, so this is where the deployment's settings are named as an
//! operator sets them (`EKS_INTENTS_*`). The planner's steps hold only the data; the messages
//! of a plan's workloads and orphans are made from it here.

use crate::intent::echo;
use crate::model::{Permission, WorkloadRef};
use crate::plan::{DeletionBreaker, OrphanOutcome, Problem, Refusal, Warning, WorkloadOutcome};
use crate::policy::{self, OWNER_TAG};
use std::collections::BTreeSet;
use std::fmt;

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Warning::SharedServiceAccount {
                workloads,
                service_account,
            } => write!(
                f,
                "workloads {} share the ServiceAccount {service_account}: they get one role with the union of their permissions",
                names(workloads)
            ),
            Warning::AddonSharesRole {
                addon,
                service_accounts,
            } => {
                let list: Vec<String> = service_accounts.iter().map(ToString::to_string).collect();
                let first = list.first().map(String::as_str).unwrap_or_default();
                write!(
                    f,
                    "add-on {addon} runs as ServiceAccounts {}, which all have intents: with IRSA an add-on has one role, so they share the role of {first}, trusted by each, with the union of their permissions",
                    list.join(" and ")
                )
            }
            Warning::BroadGrant { workloads, actions } => {
                let actions: Vec<&str> = actions.iter().map(String::as_str).collect();
                write!(
                    f,
                    "{} granted {}",
                    subject(workloads),
                    policy::broad_warning(&actions)
                )
            }
            Warning::SystemDenied {
                workloads,
                reaching,
                denied,
            } => write!(
                f,
                "{} granted {} on resources that include eks-intents' own: its policy denies every action on {} explicitly",
                subject(workloads),
                reaching.join(", "),
                denied.join(", ")
            ),
            Warning::NoBoundary => f.write_str(
                "roles are created without a permissions boundary: the requirement is turned off",
            ),
            Warning::ClusterGone { cluster } => write!(
                f,
                "cluster {cluster} does not exist any more (or is being deleted): the roles made for it are cleaned up after the grace period"
            ),
            Warning::QuotasUnread { reason } => write!(
                f,
                "the account's IAM quotas could not be read ({reason}): planned against the fixed defaults, and the room left for new roles is not checked. Allow iam:GetAccountSummary to the reconciler's role"
            ),
        }
    }
}

/// Why `permission` is refused: it names `system`, one of the system's own resources. Shared
/// with `eks-intents validate`, so the preview says what the reconciler says.
pub fn system_refusal(permission: &Permission, system: &str) -> String {
    format!(
        "{} on {}: a resource of eks-intents itself ({}); no workload may act on the system's bucket, queues, functions, roles or boundary, nor on the roles and policies under its IAM path",
        permission.action,
        echo(&permission.resource),
        echo(system)
    )
}

/// "ns/a and ns/b": the workloads a warning is about.
fn names(workloads: &[WorkloadRef]) -> String {
    let names: Vec<String> = workloads.iter().map(ToString::to_string).collect();
    names.join(" and ")
}

/// "ns/a is" or "ns/a and ns/b are": the subject of a warning about a role's grants.
fn subject(workloads: &[WorkloadRef]) -> String {
    let verb = if workloads.len() > 1 { "are" } else { "is" };
    format!("{} {verb}", names(workloads))
}

impl fmt::Display for OrphanOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OrphanOutcome::Marked { grace_seconds } => write!(
                f,
                "no intent declares it any more; deleted after the grace period of {grace_seconds} s unless its intents come back"
            ),
            OrphanOutcome::Waiting {
                since,
                deleted_from,
            } => write!(
                f,
                "no intent declares it since {since}; deleted from {deleted_from} on"
            ),
            OrphanOutcome::HeldByBreaker(breaker) => f.write_str(&breaker.message()),
            OrphanOutcome::Unbound => {
                f.write_str("grace period over: unbound and kept (soft delete)")
            }
            OrphanOutcome::TargetsUnread { accounts } => write!(
                f,
                "grace period over, but account(s) {} holding its target roles cannot be read: kept, marked, until they can, so that its target roles are deleted with it",
                accounts.join(", ")
            ),
            OrphanOutcome::Deleting { unbinding } if unbinding.is_empty() => {
                f.write_str("grace period over: bound nowhere; deleted with its policies")
            }
            OrphanOutcome::Deleting { unbinding } => {
                let unbound: Vec<String> = unbinding.iter().map(ToString::to_string).collect();
                write!(
                    f,
                    "grace period over: unbound ({}), then deleted with its policies",
                    unbound.join("; ")
                )
            }
        }
    }
}

impl DeletionBreaker {
    /// Why the breaker held every deletion, and how to proceed.
    pub fn message(&self) -> String {
        format!(
            "deletion breaker: {} roles are due for deletion, more than the {} one run may delete; none was deleted and all stay marked. If their intents were removed on purpose, raise the cap for one run (EKS_INTENTS_MAX_DELETIONS_PER_RUN={}); if not, restore the bundles (the bucket keeps earlier versions) and the roles are reused as they are",
            self.due, self.cap, self.due
        )
    }
}

/// Why a workload is held, naming the bundles to fix.
pub(crate) fn held_message(bundles: &BTreeSet<&str>) -> String {
    if bundles.is_empty() {
        return "a bundle that declares this workload fails to read: its role and binding are left exactly as they are until it is fixed".to_owned();
    }
    let list: Vec<&str> = bundles.iter().copied().collect();
    format!(
        "bundle {} fails to read (see its errors): a bundle applies whole or not at all, so this workload's role and binding are left exactly as the last valid version made them until it is fixed",
        list.join(", ")
    )
}

impl fmt::Display for WorkloadOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WorkloadOutcome::AsDeclared => f.write_str("role and binding are as declared"),
            WorkloadOutcome::Changes(count) => write!(f, "{count} change(s) planned"),
            WorkloadOutcome::NotObservedYet(workload) => write!(
                f,
                "no {} named {} in namespace {} yet; its role is created once it appears",
                workload.kind.map_or("workload", |k| k.as_str()),
                workload.name,
                workload.namespace
            ),
            WorkloadOutcome::Problem(problem) => fmt::Display::fmt(problem, f),
        }
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
            Refusal::SystemResources { named } => {
                let refusals: Vec<String> = named
                    .iter()
                    .map(|(permission, system)| system_refusal(permission, system))
                    .collect();
                write!(f, "refused: {}", refusals.join("; "))
            }
            Refusal::NoBoundary => f.write_str(
                "no permissions boundary is configured (EKS_INTENTS_PERMISSIONS_BOUNDARY): roles are neither created nor changed without one, since whoever uploads intents would otherwise get whatever they ask for. Configure the boundary, or turn the requirement off (EKS_INTENTS_REQUIRE_BOUNDARY=false)",
            ),
            Refusal::Dangerous { refused } => {
                let refused: Vec<String> = refused
                    .iter()
                    .map(|(p, why)| format!("{} on {}: {why}", p.action, echo(&p.resource)))
                    .collect();
                write!(
                    f,
                    "refused: {}. Such actions let a workload create or take over identities or read every secret; the platform team can allow one for this workload with an exception in the settings (EKS_INTENTS_DANGEROUS_EXCEPTIONS)",
                    refused.join("; ")
                )
            }
            Refusal::TooLarge(error) => fmt::Display::fmt(error, f),
            Refusal::SessionPolicyTooLarge { size, quota } => write!(
                f,
                "the declared permissions need {size} characters as a session policy, more than the {quota} STS takes: the role is kept as declared and its association left as it is, with no session policy cut short. Declare fewer actions or resources (wildcards help), or turn session policies off (EKS_INTENTS_SESSION_POLICIES)"
            ),
            Refusal::RolesQuotaReached { quota } => write!(
                f,
                "the account holds its quota of {quota} IAM roles: no role is created for this workload, nor anything else. Ask AWS to raise the account's roles quota, or remove roles it no longer needs"
            ),
            Refusal::AssociationsQuotaReached { quota } => write!(
                f,
                "the cluster has the {quota} Pod Identity associations EKS allows: no role or association is created for this workload. Remove associations the cluster no longer needs, or bind this workload through IRSA"
            ),
            Refusal::TargetAccountUnknown { .. }
            | Refusal::ManyTargetAccounts { .. }
            | Refusal::TargetBesideHomeGrants { .. }
            | Refusal::TargetOfAddon { .. }
            | Refusal::TargetAccountUnreadable { .. }
            | Refusal::TargetPolicyTooLarge { .. }
            | Refusal::InTargetAccount { .. } => self.fmt_target(f),
            _ => self.fmt_binding(f),
        }
    }
}

impl Refusal {
    /// The words for a cross-account target role that cannot be made.
    fn fmt_target(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::TargetAccountUnknown { account } => write!(
                f,
                "the intents name resources of account {account}, where eks-intents has no role to make this workload's target role: nothing is granted. Add the account's role to EKS_INTENTS_ACCOUNT_ROLES (infra/account-role.yaml makes it), or name resources of the cluster's account"
            ),
            Refusal::ManyTargetAccounts { accounts } => write!(
                f,
                "the intents name resources of {} other accounts ({}): a workload gets one target role, in one account. Split the intents over one ServiceAccount per account",
                accounts.len(),
                accounts
                    .iter()
                    .map(String::as_str)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            Refusal::TargetBesideHomeGrants { account } => write!(
                f,
                "the intents name resources of account {account} and of the cluster's own account: with EKS Pod Identity the pods get the target role's credentials alone, so one of the two could never be reached. Split the intents over two ServiceAccounts, or use IRSA"
            ),
            Refusal::TargetOfAddon { addon, account } => write!(
                f,
                "the intents name resources of account {account}, but ServiceAccounts of add-on {addon} are bound through the add-on, which cannot name a target role"
            ),
            Refusal::TargetAccountUnreadable { account, error } => write!(
                f,
                "the target account {account} cannot be read ({error}): the role and its binding are left as they are until it can"
            ),
            Refusal::TargetPolicyTooLarge { size, quota } => write!(
                f,
                "the grants on the other account's resources need {size} characters, more than the {quota} of the target role's one inline policy. Declare fewer actions or resources there (wildcards help)"
            ),
            Refusal::InTargetAccount { account, refusal } => {
                write!(f, "target role in account {account}: {refusal}")
            }
            _ => Ok(()),
        }
    }

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
