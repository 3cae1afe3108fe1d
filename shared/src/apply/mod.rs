//! The executor: walks a plan through the ports. Roles are independent and run with bounded
//! concurrency; the actions of one role run strictly in order, and its first failure stops that
//! role while the others go on. Every step is idempotent, so a run after any partial failure
//! picks up where it stopped.

use crate::model::{ClusterRef, RoleArn, RoleName};
use crate::plan::{Action, Plan};
use crate::policy::{self, Ownership};
use crate::ports::{
    EksPort, ErrorKind, EventType, IamPort, KubernetesPort, NewRole, PortError, PortResult,
    TargetAccounts,
};
use futures_util::StreamExt;
use futures_util::stream;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;

/// The ports the executor writes through: `targets` for the steps made in other accounts.
pub struct Ports<'a, I, E, K, T> {
    pub iam: &'a I,
    pub eks: &'a E,
    pub kube: &'a K,
    pub targets: &'a T,
}

#[derive(Clone, Debug)]
pub struct ApplySettings {
    /// Roles worked on at once.
    pub concurrency: usize,
    /// How long an EKS call that refuses a just-created role is retried: IAM is eventually
    /// consistent, and EKS may not see a new role for some seconds.
    pub propagation_timeout: Duration,
    /// First wait between those retries; it doubles up to ten seconds.
    pub propagation_backoff: Duration,
}

impl Default for ApplySettings {
    fn default() -> Self {
        Self {
            concurrency: 8,
            propagation_timeout: Duration::from_secs(120),
            propagation_backoff: Duration::from_secs(1),
        }
    }
}

/// What a run did: how many actions succeeded, and per role (or `None`: cluster-wide) the
/// action that failed and why. The role's later actions were not tried.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApplyReport {
    pub done: usize,
    pub failures: Vec<ActionFailure>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActionFailure {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<RoleName>,
    pub action: String,
    pub error: String,
    pub retryable: bool,
    /// Actions of the role that were not tried after the failure.
    pub skipped: usize,
}

impl ApplyReport {
    pub fn failure_of(&self, role: &RoleName) -> Option<&ActionFailure> {
        self.failures.iter().find(|f| f.role.as_ref() == Some(role))
    }
}

pub async fn apply<I: IamPort, E: EksPort, K: KubernetesPort, T: TargetAccounts>(
    plan: &Plan,
    cluster: &ClusterRef,
    ports: &Ports<'_, I, E, K, T>,
    settings: &ApplySettings,
) -> ApplyReport {
    let mut groups: Vec<(Option<&RoleName>, Vec<&Action>)> = Vec::new();
    // Cluster-wide actions go in one group per account (the OIDC provider in each account of
    // target roles), so that an account that cannot be reached stops its own alone.
    let mut index: BTreeMap<(Option<&RoleName>, Option<&str>), usize> = BTreeMap::new();
    for action in &plan.actions {
        let key = action.role();
        let account = match action {
            Action::InAccount { target, .. } if key.is_none() => Some(target.as_str()),
            _ => None,
        };
        let at = *index.entry((key, account)).or_insert_with(|| {
            groups.push((key, Vec::new()));
            groups.len() - 1
        });
        groups[at].1.push(action);
    }
    let mut report = ApplyReport::default();
    // Cluster-wide actions (the OIDC provider) come first: roles' trust depends on them.
    let (cluster_wide, roles): (Vec<_>, Vec<_>) =
        groups.into_iter().partition(|(role, _)| role.is_none());
    for (role, actions) in cluster_wide {
        let (done, failure) = run_group(role, &actions, cluster, ports, settings).await;
        report.done += done;
        report.failures.extend(failure);
    }
    let results: Vec<(usize, Option<ActionFailure>)> =
        stream::iter(roles)
            .map(|(role, actions)| async move {
                run_group(role, &actions, cluster, ports, settings).await
            })
            .buffer_unordered(settings.concurrency.max(1))
            .collect()
            .await;
    for (done, failure) in results {
        report.done += done;
        report.failures.extend(failure);
    }
    report.failures.sort_by(|a, b| a.role.cmp(&b.role));
    report
}

async fn run_group<I: IamPort, E: EksPort, K: KubernetesPort, T: TargetAccounts>(
    role: Option<&RoleName>,
    actions: &[&Action],
    cluster: &ClusterRef,
    ports: &Ports<'_, I, E, K, T>,
    settings: &ApplySettings,
) -> (usize, Option<ActionFailure>) {
    for (i, action) in actions.iter().enumerate() {
        let result = retry_transient(TRANSIENT_RETRIES, settings.propagation_backoff, || {
            run(action, cluster, ports, settings)
        })
        .await;
        if let Err(error) = result {
            tracing::warn!(role = role.map(RoleName::as_str), action = %action, %error, "action failed; the role's remaining actions wait for the next run");
            return (
                i,
                Some(ActionFailure {
                    role: role.cloned(),
                    action: action.to_string(),
                    error: error.to_string(),
                    retryable: error.is_retryable(),
                    skipped: actions.len() - i - 1,
                }),
            );
        }
        tracing::info!(role = role.map(RoleName::as_str), action = %action, "done");
    }
    (actions.len(), None)
}

/// A missing object on delete is success: the goal is reached.
fn gone_is_fine(result: PortResult<()>) -> PortResult<()> {
    match result {
        Err(e) if e.kind == ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

/// One action; a step in another account goes through IAM there.
async fn run<I: IamPort, E: EksPort, K: KubernetesPort, T: TargetAccounts>(
    action: &Action,
    cluster: &ClusterRef,
    ports: &Ports<'_, I, E, K, T>,
    settings: &ApplySettings,
) -> PortResult<()> {
    match action {
        Action::InAccount { step, target } => {
            let iam = ports.targets.iam_in(target).await?;
            match **step {
                // A target role's trust names the workload's role, made moments before in the
                // other account: IAM refuses it as a principal until it has propagated.
                Action::CreateRole { .. } | Action::UpdateTrustPolicy { .. } => {
                    with_propagation_retry(settings, || {
                        run_step(step, cluster, &iam, ports, settings)
                    })
                    .await
                }
                _ => run_step(step, cluster, &iam, ports, settings).await,
            }
        }
        _ => run_step(action, cluster, ports.iam, ports, settings).await,
    }
}

async fn run_step<I: IamPort, I2: IamPort, E: EksPort, K: KubernetesPort, T: TargetAccounts>(
    action: &Action,
    cluster: &ClusterRef,
    iam: &I2,
    ports: &Ports<'_, I, E, K, T>,
    settings: &ApplySettings,
) -> PortResult<()> {
    let name = cluster.name.as_str();
    match action {
        Action::CreateOidcProvider {
            url,
            client_ids,
            tags,
        } => match iam.create_oidc_provider(url, client_ids, tags).await {
            Err(e) if e.kind == ErrorKind::AlreadyExists => Ok(()),
            other => other,
        },
        Action::AddOidcClientId {
            provider_arn,
            client_id,
        } => iam.add_oidc_client_id(provider_arn, client_id).await,
        Action::CreateRole {
            role,
            path,
            description,
            trust_policy,
            permissions_boundary,
            tags,
            ..
        } => {
            let new = NewRole {
                name: role,
                path,
                description,
                trust_policy,
                permissions_boundary: permissions_boundary.as_ref(),
                tags,
            };
            match iam.create_role(&new).await {
                Err(e) if e.kind == ErrorKind::AlreadyExists => {
                    adopt_existing_role(iam, &new, cluster).await
                }
                other => other,
            }
        }
        Action::UpdateTrustPolicy { role, trust_policy } => {
            iam.update_trust_policy(role, trust_policy).await
        }
        Action::PutPermissionsBoundary {
            role,
            permissions_boundary,
        } => {
            iam.put_permissions_boundary(role, permissions_boundary)
                .await
        }
        Action::TagRole { role, tags } => iam.tag_role(role, tags).await,
        Action::UntagRole { role, keys } => iam.untag_role(role, keys).await,
        Action::PutInlinePolicy {
            role,
            policy_name,
            document,
        } => iam.put_role_policy(role, policy_name, document).await,
        Action::DeleteInlinePolicy { role, policy_name } => {
            gone_is_fine(iam.delete_role_policy(role, policy_name).await)
        }
        Action::CreateManagedPolicy {
            name: policy_name,
            path,
            arn,
            document,
            tags,
            ..
        } => match iam.create_policy(policy_name, path, document, tags).await {
            // Left by an earlier run that stopped half-way: bring its document up to date.
            Err(e) if e.kind == ErrorKind::AlreadyExists => {
                iam.set_policy_document(arn, document).await
            }
            other => other,
        },
        Action::UpdateManagedPolicy { arn, document, .. } => {
            iam.set_policy_document(arn, document).await
        }
        Action::AttachManagedPolicy { role, policy_arn } => {
            iam.attach_role_policy(role, policy_arn).await
        }
        Action::DetachManagedPolicy { role, policy_arn } => {
            gone_is_fine(iam.detach_role_policy(role, policy_arn).await)
        }
        Action::DeleteManagedPolicy { arn, .. } => gone_is_fine(iam.delete_policy(arn).await),
        Action::AnnotateServiceAccount {
            service_account,
            role_arn,
            force,
            ..
        } => {
            let result = ports
                .kube
                .annotate_service_account(service_account, role_arn, *force)
                .await;
            let (reason, message, kind) = match &result {
                Ok(()) => (
                    "RoleBound",
                    format!(
                        "bound to IAM role {role_arn} (eks.amazonaws.com/role-arn); pods started from now on get its credentials"
                    ),
                    EventType::Normal,
                ),
                Err(e) => (
                    "BindingFailed",
                    format!("could not bind IAM role {role_arn}: {e}"),
                    EventType::Warning,
                ),
            };
            record_event(ports.kube, service_account, reason, &message, kind).await;
            result
        }
        Action::RemoveServiceAccountAnnotation {
            service_account, ..
        } => {
            let result = gone_is_fine(
                ports
                    .kube
                    .remove_service_account_annotation(service_account)
                    .await,
            );
            if result.is_ok() {
                record_event(
                    ports.kube,
                    service_account,
                    "RoleUnbound",
                    "the IAM role annotation of eks-intents was removed",
                    EventType::Normal,
                )
                .await;
            }
            result
        }
        Action::CreatePodIdentityAssociation {
            service_account,
            role_arn,
            tags,
            session_policy,
            target_role_arn,
            ..
        } => {
            let created = with_propagation_retry(settings, || {
                ports.eks.create_pod_identity_association(
                    name,
                    service_account,
                    role_arn,
                    tags,
                    session_policy.as_ref(),
                    target_role_arn.as_ref(),
                )
            })
            .await;
            match created {
                Err(e) if e.kind == ErrorKind::AlreadyExists => {
                    adopt_existing_association(ports.eks, name, service_account, role_arn, e).await
                }
                other => other,
            }
        }
        Action::UpdatePodIdentityAssociation {
            association_id,
            role_arn,
            session_policy,
            target_role_arn,
            ..
        } => {
            with_propagation_retry(settings, || {
                ports.eks.update_pod_identity_association(
                    name,
                    association_id,
                    role_arn,
                    session_policy.as_ref(),
                    target_role_arn.as_ref(),
                )
            })
            .await
        }
        Action::DeletePodIdentityAssociation { association_id, .. } => gone_is_fine(
            ports
                .eks
                .delete_pod_identity_association(name, association_id)
                .await,
        ),
        Action::SetAddonRole {
            addon, role_arn, ..
        } => {
            with_propagation_retry(settings, || {
                ports.eks.set_addon_role(name, addon, role_arn.as_ref())
            })
            .await
        }
        // The plan holds the add-on's whole map: nothing is read here, so two roles of one
        // add-on cannot race on a read-modify-write.
        Action::SetAddonAssociations {
            addon,
            associations,
            ..
        } => {
            with_propagation_retry(settings, || {
                ports.eks.set_addon_pod_identity(name, addon, associations)
            })
            .await
        }
        Action::RestartWorkload {
            namespace,
            kind,
            name: workload,
            restarted_at,
            ..
        } => {
            ports
                .kube
                .restart_workload(namespace, *kind, workload, *restarted_at)
                .await
        }
        Action::MarkRoleForDeletion { role, since } => {
            let tags = BTreeMap::from([(policy::ORPHANED_TAG.to_owned(), since.to_string())]);
            iam.tag_role(role, &tags).await
        }
        Action::DeleteRole { role } => gone_is_fine(iam.delete_role(role).await),
        Action::InAccount { .. } => Err(PortError::new(
            "iam",
            "InAccount",
            ErrorKind::Other,
            "a step in another account cannot hold another",
        )),
    }
}

/// Events are for people reading `kubectl describe sa`; failing to record one changes nothing.
async fn record_event<K: KubernetesPort>(
    kube: &K,
    service_account: &crate::model::ServiceAccountRef,
    reason: &str,
    message: &str,
    kind: EventType,
) {
    if let Err(error) = kube
        .record_event(service_account, reason, message, kind)
        .await
    {
        tracing::warn!(%service_account, reason, %error, "could not record a Kubernetes event");
    }
}

/// A role of this name exists although the plan did not see it (a run that stopped after
/// creating it, or a role outside the system's path). Only an owned role is taken over, by
/// updating it to what the create would have made.
async fn adopt_existing_role<I: IamPort>(
    iam: &I,
    new: &NewRole<'_>,
    cluster: &ClusterRef,
) -> PortResult<()> {
    let tags = iam.role_tags(new.name).await?.unwrap_or_default();
    if policy::ownership(&tags, cluster) != Ownership::Ours {
        return Err(PortError::new(
            "iam",
            "CreateRole",
            ErrorKind::Conflict,
            format!(
                "a role named {} already exists and is not managed by eks-intents for this cluster; it is left alone",
                new.name
            ),
        ));
    }
    iam.update_trust_policy(new.name, new.trust_policy).await?;
    if let Some(boundary) = new.permissions_boundary {
        iam.put_permissions_boundary(new.name, boundary).await?;
    }
    iam.tag_role(new.name, new.tags).await
}

/// The ServiceAccount has an association the plan did not see (another run made it since, or a
/// run that stopped after making it). One with the desired role is the goal reached; one with
/// another role is reported, never taken over here: the next run plans from what is there.
async fn adopt_existing_association<E: EksPort>(
    eks: &E,
    cluster: &str,
    service_account: &crate::model::ServiceAccountRef,
    role_arn: &RoleArn,
    refused: PortError,
) -> PortResult<()> {
    match eks
        .pod_identity_association_of(cluster, service_account)
        .await?
    {
        Some(existing) if existing.role_arn == *role_arn => {
            tracing::info!(%service_account, association = %existing.association_id, "the association already exists with the desired role");
            Ok(())
        }
        Some(existing) => Err(PortError::new(
            "eks",
            "CreatePodIdentityAssociation",
            ErrorKind::Conflict,
            format!(
                "ServiceAccount {service_account} already has Pod Identity association {} with role {}, not {role_arn}; the next run plans from it",
                existing.association_id, existing.role_arn
            ),
        )
        .with_source(refused)),
        // Gone again in between: the next run creates it.
        None => Err(refused),
    }
}

/// Extra tries of an action that failed with a transient error. The SDK already retries
/// throttling; this covers what it does not classify as retryable, such as IAM's
/// `ConcurrentModification`.
const TRANSIENT_RETRIES: u32 = 3;

async fn retry_transient<F, Fut>(retries: u32, first_wait: Duration, call: F) -> PortResult<()>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = PortResult<()>>,
{
    let mut wait = first_wait;
    let mut left = retries;
    loop {
        match call().await {
            Err(e) if e.is_retryable() && left > 0 => {
                tracing::info!(error = %e, wait_ms = wait.as_millis() as u64, "transient error; retrying");
                left -= 1;
                tokio::time::sleep(wait).await;
                wait *= 2;
            }
            other => return other,
        }
    }
}

/// Retries an EKS call that refuses a role it cannot see yet, with doubling waits, until the
/// propagation timeout; any other outcome returns at once.
async fn with_propagation_retry<F, Fut>(settings: &ApplySettings, call: F) -> PortResult<()>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = PortResult<()>>,
{
    let started = tokio::time::Instant::now();
    let mut wait = settings.propagation_backoff;
    loop {
        match call().await {
            Err(e)
                if e.kind == ErrorKind::Invalid
                    && started.elapsed() + wait <= settings.propagation_timeout =>
            {
                tracing::info!(error = %e, wait_ms = wait.as_millis() as u64, "EKS does not see the role yet; retrying");
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(Duration::from_secs(10));
            }
            other => return other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    fn failing(kind: ErrorKind, times: u32, calls: &AtomicU32) -> PortResult<()> {
        let n = calls.fetch_add(1, Ordering::SeqCst);
        if n < times {
            Err(PortError::new("eks", "UpdateAddon", kind, "not yet"))
        } else {
            Ok(())
        }
    }

    fn quick() -> ApplySettings {
        ApplySettings {
            propagation_timeout: Duration::from_millis(300),
            propagation_backoff: Duration::from_millis(5),
            ..ApplySettings::default()
        }
    }

    #[tokio::test]
    async fn a_role_eks_cannot_see_yet_is_retried_until_it_can() {
        let calls = AtomicU32::new(0);
        let result = with_propagation_retry(&quick(), || async {
            failing(ErrorKind::Invalid, 3, &calls)
        })
        .await;
        assert!(result.is_ok());
        assert_eq!(calls.load(Ordering::SeqCst), 4);
    }

    #[tokio::test]
    async fn propagation_retries_stop_at_the_timeout() {
        let calls = AtomicU32::new(0);
        let result = with_propagation_retry(&quick(), || async {
            failing(ErrorKind::Invalid, u32::MAX, &calls)
        })
        .await;
        assert_eq!(result.unwrap_err().kind, ErrorKind::Invalid);
        let tries = calls.load(Ordering::SeqCst);
        assert!((2..20).contains(&tries), "{tries}");
    }

    #[tokio::test]
    async fn other_errors_are_not_retried_as_propagation() {
        let calls = AtomicU32::new(0);
        let result =
            with_propagation_retry(&quick(), || async { failing(ErrorKind::Denied, 1, &calls) })
                .await;
        assert_eq!(result.unwrap_err().kind, ErrorKind::Denied);
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn transient_errors_are_retried_a_few_times() {
        let calls = AtomicU32::new(0);
        assert!(
            retry_transient(3, Duration::from_millis(1), || async {
                failing(ErrorKind::Transient, 2, &calls)
            })
            .await
            .is_ok()
        );
        assert_eq!(calls.load(Ordering::SeqCst), 3);
        let calls = AtomicU32::new(0);
        let result = retry_transient(3, Duration::from_millis(1), || async {
            failing(ErrorKind::Transient, 10, &calls)
        })
        .await;
        assert!(result.is_err());
        assert_eq!(calls.load(Ordering::SeqCst), 4);
        let calls = AtomicU32::new(0);
        assert!(
            retry_transient(3, Duration::from_millis(1), || async {
                failing(ErrorKind::Conflict, 1, &calls)
            })
            .await
            .is_err()
        );
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }
}
