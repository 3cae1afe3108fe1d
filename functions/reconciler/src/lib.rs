//! The reconciler's handler: a batch of `ReconcileCluster` messages from the FIFO queue. Each
//! distinct cluster is reconciled once (level-triggered: the latest state is read whatever the
//! messages say); a cluster that fails reports its messages as batch item failures, so only
//! they are retried.
//!
//! Two kinds of message are put back on the queue on purpose, with a visibility of their own:
//! one whose `not_before` is still ahead (it merges the events of a time window, and waits for
//! the window to close so that no event of it happens after the cluster is read), and one for a
//! cluster still being created (tried again with a doubling wait, never failed: the queue's
//! receive count gives the attempt).
//!
//! **Clusters in other accounts.** With `EKS_INTENTS_ACCOUNT_ROLES`, a cluster resolves to a
//! role of its account (its own entry, else the entry of the account its messages name, else
//! none: the deployment's own account; a cluster named by nothing, in a deployment with
//! account-id entries, is looked for with [`locate`]), and its IAM, EKS and Kubernetes calls go
//! through that role ([`Accounts`]); the bundles, state and status stay in the deployment's bucket. A role
//! that cannot be assumed fails its cluster alone: the status report says why, naming the
//! role, the messages return to the queue, and the other clusters of the batch go on.

use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent, SqsMessage};
use eks_intents::adapters::aws::{AccountSessions, ApiCalls, EksAdapter, IamAdapter};
use eks_intents::adapters::kube::EksKubernetes;
use eks_intents::config::{AccountRoles, role_account};
use eks_intents::desired::Memory;
use eks_intents::metrics::{Metrics, reconcile_metrics};
use eks_intents::model::{PolicyArn, RoleArn, arn_parts};
use eks_intents::ports::{
    BundleStore, EksPort, ErrorKind, IamPort, KubernetesConnector, NoTargets, PortError,
    PortResult, ReconcileCluster, ReconcileRetry, TargetAccounts,
};
use eks_intents::reconcile::{
    Outcome, ReconcileError, ReconcilePorts, ReconcileSettings, Run, now, reconcile, report_failure,
};
use std::borrow::Cow;
use std::future::Future;
use std::time::{Duration, Instant};

/// The longest wait before a cluster that is still being created is tried again.
const MAX_NOT_READY_WAIT: Duration = Duration::from_secs(15 * 60);

/// Built once at cold start and borrowed by every invocation.
pub struct Context<I, E, K, S, R> {
    pub iam: I,
    pub eks: E,
    pub kube: K,
    pub store: S,
    /// The queue the messages came from, to put one back for later.
    pub retry: R,
    pub settings: ReconcileSettings,
    /// What the warm function keeps between runs (parsed bundles, quiet runs).
    pub memory: Memory,
    /// The API calls of the clients above, counted from zero for each cluster's run.
    pub calls: ApiCalls,
    /// Where each run's metrics go: `Metrics::emit` (stdout, as Embedded Metric Format) in the
    /// function.
    pub metrics: Box<dyn Fn(&Metrics) + Send + Sync>,
}

impl<I: IamPort, E, K, S, R> Context<I, E, K, S, R> {
    /// The ports one reconcile reaches the world through, in a deployment with no other account.
    pub fn ports(&self) -> ReconcilePorts<'_, I, E, K, S, NoTargets<I>> {
        self.ports_with(&NoTargets::NONE)
    }

    /// The ports one reconcile reaches the world through, with `targets` for the accounts of
    /// workloads' target roles.
    pub fn ports_with<'a, T>(&'a self, targets: &'a T) -> ReconcilePorts<'a, I, E, K, S, T> {
        ReconcilePorts {
            iam: &self.iam,
            eks: &self.eks,
            kube: &self.kube,
            store: &self.store,
            memory: &self.memory,
            targets,
        }
    }
}

/// IAM in the accounts of workloads' target roles, through the deployment's role in each
/// (`EKS_INTENTS_ACCOUNT_ROLES`).
pub struct TargetsThrough<'a, A>(pub &'a A);

impl<A: Accounts> TargetAccounts for TargetsThrough<'_, A> {
    type Iam = A::Iam;

    async fn iam_in(&self, account: &str) -> PortResult<A::Iam> {
        let Some(role) = self.0.roles().role_in(account) else {
            return Err(PortError::new(
                "sts",
                "AssumeRole",
                ErrorKind::Denied,
                format!("EKS_INTENTS_ACCOUNT_ROLES names no role in account {account}"),
            ));
        };
        Ok(self.0.ports(role).await?.iam)
    }
}

/// The ports of one account other than the deployment's own.
pub struct AccountPorts<I, E, K> {
    pub iam: I,
    pub eks: E,
    pub kube: K,
}

/// The accounts of `EKS_INTENTS_ACCOUNT_ROLES`: which role serves which cluster, and the ports
/// that act through a role.
pub trait Accounts: Send + Sync {
    type Iam: IamPort;
    type Eks: EksPort;
    type Kube: KubernetesConnector;

    fn roles(&self) -> &AccountRoles;

    /// The ports acting through `role`; an error when the role cannot be assumed.
    fn ports(
        &self,
        role: &RoleArn,
    ) -> impl Future<Output = PortResult<AccountPorts<Self::Iam, Self::Eks, Self::Kube>>> + Send;

    /// Where a cluster was found before (see [`locate`]): `Some(None)` at home.
    fn located(&self, _cluster: &str) -> Option<Option<RoleArn>> {
        None
    }

    /// Remembers where a cluster was found.
    fn remember(&self, _cluster: &str, _role: Option<RoleArn>) {}
}

impl Accounts for AccountSessions {
    type Iam = IamAdapter;
    type Eks = EksAdapter;
    type Kube = EksKubernetes;

    fn roles(&self) -> &AccountRoles {
        AccountSessions::roles(self)
    }

    async fn ports(
        &self,
        role: &RoleArn,
    ) -> PortResult<AccountPorts<IamAdapter, EksAdapter, EksKubernetes>> {
        let clients = self.clients(role).await?;
        Ok(AccountPorts {
            iam: clients.iam,
            eks: clients.eks,
            kube: clients.kubernetes,
        })
    }

    fn located(&self, cluster: &str) -> Option<Option<RoleArn>> {
        AccountSessions::located(self, cluster)
    }

    fn remember(&self, cluster: &str, role: Option<RoleArn>) {
        AccountSessions::remember(self, cluster, role)
    }
}

/// The account of a cluster that has no entry of its own and whose messages name no account (a
/// bundle upload does not know it), in a deployment with account-id entries: the deployment's
/// own account if its EKS knows the cluster, else the first account of an entry whose EKS does
/// (`None`: at home, where a cluster found nowhere is reconciled as gone). Remembered by the
/// warm function once found, so it costs a `DescribeCluster` per account once, not per run.
pub async fn locate<E: EksPort, A: Accounts>(
    home: &E,
    accounts: &A,
    cluster: &str,
) -> Option<RoleArn> {
    if let Some(known) = accounts.located(cluster) {
        return known;
    }
    match home.describe_cluster(cluster).await {
        Ok(_) => {
            accounts.remember(cluster, None);
            return None;
        }
        // Home cannot tell (throttled, denied): the run at home says why.
        Err(error) if error.kind != ErrorKind::NotFound => return None,
        Err(_) => {}
    }
    for (account, role) in accounts.roles().accounts() {
        let found = match accounts.ports(role).await {
            Ok(ports) => ports.eks.describe_cluster(cluster).await.is_ok(),
            Err(error) => {
                tracing::warn!(cluster, account, %error, "cannot look for the cluster in the account");
                false
            }
        };
        if found {
            tracing::info!(cluster, account, "the cluster is in another account");
            accounts.remember(cluster, Some(role.clone()));
            return Some(role.clone());
        }
    }
    None
}

/// The reconciler of a deployment whose clusters may be in other accounts: the context of its
/// own account, and the accounts it reaches through roles.
pub struct InAccounts<I, E, K, S, R, A> {
    pub home: Context<I, E, K, S, R>,
    pub accounts: A,
}

/// The settings of a run in the account of `role`: the permissions boundary is the policy of
/// the same path and name in that account (the account's template creates it), since a role
/// can only have a boundary of its own account.
pub fn settings_in_account<'a>(
    settings: &'a ReconcileSettings,
    role: &RoleArn,
) -> Cow<'a, ReconcileSettings> {
    let Ok(account) = role_account(role.as_str()) else {
        return Cow::Borrowed(settings);
    };
    let rebased = settings
        .plan
        .permissions_boundary
        .as_ref()
        .and_then(|boundary| {
            let [arn, partition, service, region, owner, resource] = arn_parts(boundary.as_str())?;
            (owner != account).then(|| {
                PolicyArn::new(format!(
                    "{arn}:{partition}:{service}:{region}:{account}:{resource}"
                ))
            })
        });
    match rebased {
        None => Cow::Borrowed(settings),
        Some(boundary) => {
            let mut settings = settings.clone();
            settings.plan.permissions_boundary = Some(boundary);
            Cow::Owned(settings)
        }
    }
}

/// The messages of one cluster in a batch.
#[derive(Default)]
struct ClusterMessages<'a> {
    records: Vec<&'a SqsMessage>,
    /// The latest `not_before` among them.
    not_before: Option<u64>,
    /// The most times one of them has been received.
    receive_count: u32,
    /// The account one of them names.
    account: Option<String>,
}

/// Handles a batch of a deployment whose clusters are all in its own account.
pub async fn handle<I, E, K, S, R>(
    ctx: &Context<I, E, K, S, R>,
    event: SqsEvent,
) -> SqsBatchResponse
where
    I: IamPort,
    E: EksPort,
    K: KubernetesConnector,
    S: BundleStore,
    R: ReconcileRetry,
{
    handle_batch(ctx, None::<&AccountSessions>, event).await
}

/// Handles a batch whose clusters may be in other accounts.
pub async fn handle_in_accounts<I, E, K, S, R, A>(
    ctx: &InAccounts<I, E, K, S, R, A>,
    event: SqsEvent,
) -> SqsBatchResponse
where
    I: IamPort,
    E: EksPort,
    K: KubernetesConnector,
    S: BundleStore,
    R: ReconcileRetry,
    A: Accounts,
{
    handle_batch(&ctx.home, Some(&ctx.accounts), event).await
}

/// One run of `cluster`: in the deployment's own account, or through the role of its account.
async fn reconcile_in<I, E, K, S, R, A>(
    ctx: &Context<I, E, K, S, R>,
    accounts: Option<&A>,
    cluster: &str,
    account: Option<&str>,
) -> Result<Outcome, ReconcileError>
where
    I: IamPort,
    E: EksPort,
    K: KubernetesConnector,
    S: BundleStore,
    A: Accounts,
{
    let counter = &ctx.calls;
    let calls = || counter.counts();
    let role = match accounts {
        None => None,
        Some(a) => match a.roles().role_for(cluster, account) {
            Some(role) => Some((a, role.clone())),
            None if account.is_none() && a.roles().accounts().next().is_some() => {
                locate(&ctx.eks, a, cluster).await.map(|role| (a, role))
            }
            None => None,
        },
    };
    let Some((accounts, role)) = role else {
        return match accounts {
            Some(accounts) => {
                let targets = TargetsThrough(accounts);
                let ports = ctx.ports_with(&targets);
                reconcile(cluster, &ports, &ctx.settings, Run::Apply, &calls).await
            }
            None => reconcile(cluster, &ctx.ports(), &ctx.settings, Run::Apply, &calls).await,
        };
    };
    let role = &role;
    tracing::info!(cluster, role = %role, "acting in the cluster's account");
    match accounts.ports(role).await {
        Ok(ports) => {
            let settings = settings_in_account(&ctx.settings, role);
            let ports = ReconcilePorts {
                iam: &ports.iam,
                eks: &ports.eks,
                kube: &ports.kube,
                store: &ctx.store,
                memory: &ctx.memory,
                targets: &TargetsThrough(accounts),
            };
            reconcile(cluster, &ports, &settings, Run::Apply, &calls).await
        }
        Err(source) => {
            let error = ReconcileError::Account {
                cluster: cluster.to_owned(),
                source,
            };
            Err(report_failure(
                cluster,
                &ctx.store,
                &ctx.memory,
                &ctx.settings,
                error,
                &calls,
            )
            .await)
        }
    }
}

async fn handle_batch<I, E, K, S, R, A>(
    ctx: &Context<I, E, K, S, R>,
    accounts: Option<&A>,
    event: SqsEvent,
) -> SqsBatchResponse
where
    I: IamPort,
    E: EksPort,
    K: KubernetesConnector,
    S: BundleStore,
    R: ReconcileRetry,
    A: Accounts,
{
    // Messages by cluster, in arrival order; a message that is not a ReconcileCluster fails
    // alone (it reaches the dead-letter queue after its retries).
    let mut clusters: Vec<(String, ClusterMessages)> = Vec::new();
    let mut failures = Vec::new();
    for record in &event.records {
        let id = record.message_id.clone().unwrap_or_default();
        let message = record
            .body
            .as_deref()
            .map(serde_json::from_str::<ReconcileCluster>);
        match message {
            Some(Ok(message)) => {
                tracing::info!(cluster = %message.cluster, reason = %message.reason, "reconcile requested");
                let index = match clusters.iter().position(|(c, _)| *c == message.cluster) {
                    Some(index) => index,
                    None => {
                        clusters.push((message.cluster.clone(), ClusterMessages::default()));
                        clusters.len() - 1
                    }
                };
                let entry = &mut clusters[index].1;
                entry.records.push(record);
                entry.not_before = entry.not_before.max(message.not_before);
                if entry.account.is_none() {
                    entry.account = message.account;
                }
                entry.receive_count = entry.receive_count.max(
                    record
                        .attributes
                        .get("ApproximateReceiveCount")
                        .and_then(|n| n.parse().ok())
                        .unwrap_or(1),
                );
            }
            other => {
                tracing::error!(message_id = %id, body = ?record.body, error = ?other.and_then(Result::err).map(|e| e.to_string()), "not a ReconcileCluster message");
                failures.push(id);
            }
        }
    }
    for (cluster, messages) in clusters {
        if let Some(not_before) = messages.not_before.filter(|&t| t > now()) {
            let wait = Duration::from_secs(not_before - now());
            tracing::info!(
                cluster,
                wait_seconds = wait.as_secs(),
                "waiting for the event window to close"
            );
            put_back(ctx, &cluster, &messages, wait, &mut failures).await;
            continue;
        }
        ctx.calls.reset();
        let started = Instant::now();
        match reconcile_in(ctx, accounts, &cluster, messages.account.as_deref()).await {
            Ok(outcome) => {
                tracing::info!(
                    cluster,
                    actions = outcome.plan.actions.len(),
                    applied = outcome.applied.done,
                    failed = outcome.applied.failures.len(),
                    drift = outcome.report.drift.found_total(),
                    api_calls = ?outcome.report.api_calls,
                    throttled = ?outcome.report.throttled,
                    "reconciled"
                );
                (ctx.metrics)(&reconcile_metrics(
                    &outcome.report,
                    &outcome.plan,
                    started.elapsed().as_millis(),
                ));
                // A change that failed for a reason a retry can fix (throttled past the retry
                // budget, a service unavailable) is tried again with the messages.
                let retryable = outcome
                    .applied
                    .failures
                    .iter()
                    .filter(|f| f.retryable)
                    .count();
                if retryable > 0 {
                    tracing::warn!(
                        cluster,
                        retryable,
                        "changes failed with errors a retry can fix; the messages return to the queue"
                    );
                    failures.extend(
                        messages
                            .records
                            .iter()
                            .map(|r| r.message_id.clone().unwrap_or_default()),
                    );
                }
            }
            Err(error @ ReconcileError::NotReady { .. }) => {
                let wait = not_ready_wait(ctx.settings.not_ready_retry, messages.receive_count);
                tracing::info!(cluster, %error, wait_seconds = wait.as_secs(), "cluster not ready; tried again later");
                put_back(ctx, &cluster, &messages, wait, &mut failures).await;
            }
            Err(error) => {
                let calls = ctx.calls.counts();
                tracing::error!(cluster, %error, retryable = error.is_retryable(), throttled = ?calls.throttled, "reconcile failed");
                let mut metrics = Metrics::new("reconciler", Some(&cluster));
                metrics
                    .count("Reconciles", 1)
                    .count("Errors", 1)
                    .api_calls(&calls.calls)
                    .throttled(&calls.throttled)
                    .milliseconds("RetryWait", u128::from(calls.retry_wait_ms))
                    .milliseconds("Duration", started.elapsed().as_millis());
                (ctx.metrics)(&metrics);
                failures.extend(
                    messages
                        .records
                        .iter()
                        .map(|r| r.message_id.clone().unwrap_or_default()),
                );
            }
        }
    }
    let mut response = SqsBatchResponse::default();
    response.batch_item_failures = failures
        .into_iter()
        .map(|id| {
            let mut failure = BatchItemFailure::default();
            failure.item_identifier = id;
            failure
        })
        .collect();
    response
}

/// The wait before the `receive_count`-th try of a cluster that is still being created: `first`,
/// doubled on each try, at most 15 minutes.
pub fn not_ready_wait(first: Duration, receive_count: u32) -> Duration {
    let doublings = receive_count.saturating_sub(1).min(16);
    first
        .saturating_mul(1u32 << doublings)
        .min(MAX_NOT_READY_WAIT)
}

/// Reports the cluster's messages as failed and makes each visible again after `wait`: a
/// failed message of a FIFO group would otherwise wait for the queue's whole visibility timeout.
async fn put_back<I, E, K, S, R: ReconcileRetry>(
    ctx: &Context<I, E, K, S, R>,
    cluster: &str,
    messages: &ClusterMessages<'_>,
    wait: Duration,
    failures: &mut Vec<String>,
) {
    for record in &messages.records {
        if let Some(handle) = record.receipt_handle.as_deref()
            && let Err(error) = ctx
                .retry
                .retry_later(handle, wait.as_secs().max(1) as u32)
                .await
        {
            tracing::warn!(cluster, %error, "could not set when the message comes back; it returns after the queue's visibility timeout");
        }
        failures.push(record.message_id.clone().unwrap_or_default());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sqs_sample_holds_reconcile_messages() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../events/sqs-reconcile-cluster.json"
        );
        let text = std::fs::read_to_string(path).expect("sample exists");
        let event: SqsEvent = serde_json::from_str(&text).expect("an SQS event");
        let clusters: Vec<String> = event
            .records
            .iter()
            .map(|r| {
                serde_json::from_str::<ReconcileCluster>(r.body.as_deref().unwrap_or_default())
                    .expect("a ReconcileCluster body")
                    .cluster
            })
            .collect();
        assert_eq!(clusters, ["demo", "demo"]);
    }

    #[test]
    fn a_cluster_being_created_waits_longer_each_time_up_to_fifteen_minutes() {
        let first = Duration::from_secs(60);
        let waits: Vec<u64> = (1..=6)
            .map(|n| not_ready_wait(first, n).as_secs())
            .collect();
        assert_eq!(waits, [60, 120, 240, 480, 900, 900]);
        assert_eq!(not_ready_wait(first, 0).as_secs(), 60);
        assert_eq!(not_ready_wait(first, u32::MAX).as_secs(), 900);
    }

    #[test]
    fn a_run_in_another_account_uses_the_boundary_of_that_account() {
        let mut settings = ReconcileSettings::default();
        let role = RoleArn::new("arn:aws:iam::222222222222:role/eks-intents/eks-intents-account");
        assert!(matches!(
            settings_in_account(&settings, &role),
            Cow::Borrowed(_)
        ));
        settings.plan.permissions_boundary = Some(PolicyArn::new(
            "arn:aws:iam::111111111111:policy/eks-intents/eks-intents-boundary",
        ));
        assert_eq!(
            settings_in_account(&settings, &role)
                .plan
                .permissions_boundary
                .as_ref()
                .unwrap()
                .as_str(),
            "arn:aws:iam::222222222222:policy/eks-intents/eks-intents-boundary"
        );
        let home = RoleArn::new("arn:aws:iam::111111111111:role/eks-intents-account");
        assert!(matches!(
            settings_in_account(&settings, &home),
            Cow::Borrowed(_)
        ));
    }
}
