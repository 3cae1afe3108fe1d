//! The drift-sweep handler, fired by a schedule (an EventBridge Scheduled Event, or EventBridge
//! Scheduler with any payload, `{}` included). It asks for a reconcile of every cluster the
//! system has to look after, so that drift (a policy edited in the console, an annotation
//! removed) is repaired even when nothing announced it:
//!
//! - clusters with bundles: the prefixes one level under `intents/` (one paginated listing);
//! - clusters named by the cluster tag of owned roles under the IAM path, so the roles of a
//!   deleted cluster still reach the clean-up; only clusters of the deployment's region (the
//!   reconciler works in one region);
//! - optionally every cluster of the region (`ListClusters`), to find clusters whose bundles
//!   and roles are all gone but whose bindings remain.
//!
//! With `EKS_INTENTS_ACCOUNT_ROLES`, each account of an account-id entry is read too, through
//! its role ([`SweepAccounts`]): its owned roles (the clusters their tags name, in that account)
//! and its clusters (`ListClusters`), which say which account a cluster with bundles is in; the
//! clusters it lists are swept on their own only with `list_clusters`, as at home. Those
//! clusters' messages name their account, so the reconciler acts there. An account whose role
//! cannot be assumed is skipped, with the reason, and the others are swept.
//!
//! It sends one `ReconcileCluster{cluster, reason: "drift"}` per cluster, with the
//! deduplication id `drift:<cluster>:<tick>`: a retried or doubled invocation of one schedule
//! tick sends the same ids, which the FIFO queue drops. The tick is the event's `time` to the
//! minute; Scheduler payloads without it use the clock (a Scheduler target can pass
//! `{"time": "<aws.scheduler.scheduled-time>"}` to keep retries on one tick). A source that
//! cannot be read fails the invocation, naming the source and whether a retry can help, and the
//! schedule's retry tries again.

use eks_intents::adapters::aws::AccountSessions;
use eks_intents::intent::cluster_prefix;
use eks_intents::lambda::Retryable;
use eks_intents::metrics::Metrics;
use eks_intents::model::{ClusterName, ClusterRef, ObservedRole, RoleArn, arn_parts};
use eks_intents::policy::{CLUSTER_TAG, OWNER_TAG, OWNER_VALUE};
use eks_intents::ports::{
    BundleStore, DeduplicatedReconcile, EksPort, IamPort, PortError, PortResult, ReconcileCluster,
    ReconcileQueue, SendError, send_requests,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;

/// The prefix whose next level names the clusters with bundles.
const INTENTS: &str = "intents/";
/// The reason every message of the sweep carries.
pub const REASON: &str = "drift";

/// Built once at cold start and borrowed by every invocation.
pub struct Context<S, I, E, Q> {
    pub store: S,
    pub iam: I,
    pub eks: E,
    pub queue: Q,
    /// The IAM path under which the system's roles live (`/eks-intents/`).
    pub iam_path: String,
    /// The deployment's region: only its clusters are swept.
    pub region: String,
    /// Also sweep every cluster `ListClusters` returns.
    pub list_clusters: bool,
    /// Seconds since the epoch (injectable for tests).
    pub now: fn() -> u64,
}

/// What the sweep reads in another account, through its role.
#[derive(Clone, Debug, Default)]
pub struct AccountView {
    /// The roles under the IAM path.
    pub roles: Vec<ObservedRole>,
    /// `ListClusters` of the region.
    pub clusters: Vec<String>,
}

/// The accounts of the account-id entries of `EKS_INTENTS_ACCOUNT_ROLES`.
pub trait SweepAccounts: Send + Sync {
    /// Each account id with its role.
    fn accounts(&self) -> Vec<(String, RoleArn)>;
    /// The roles under `iam_path` and the clusters of the account of `role`.
    fn read(
        &self,
        role: &RoleArn,
        iam_path: &str,
    ) -> impl Future<Output = PortResult<AccountView>> + Send;
}

impl SweepAccounts for AccountSessions {
    fn accounts(&self) -> Vec<(String, RoleArn)> {
        self.roles()
            .accounts()
            .map(|(account, role)| (account.to_owned(), role.clone()))
            .collect()
    }

    async fn read(&self, role: &RoleArn, iam_path: &str) -> PortResult<AccountView> {
        let clients = self.clients(role).await?;
        Ok(AccountView {
            roles: clients.iam.snapshot(iam_path, None).await?.roles,
            clusters: clients.eks.list_clusters().await?,
        })
    }
}

/// The sweep of a deployment whose clusters may be in other accounts.
pub struct InAccounts<S, I, E, Q, A> {
    pub home: Context<S, I, E, Q>,
    pub accounts: A,
}

/// Where a cluster to sweep was found.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Source {
    /// A prefix `intents/<cluster>/` in the bucket.
    Bundles,
    /// The cluster tag of an owned role under the IAM path.
    RoleTags,
    /// `ListClusters` of the region.
    EksClusters,
}

/// One cluster asked to be reconciled.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SweptCluster {
    pub cluster: String,
    pub sources: Vec<Source>,
    pub deduplication_id: String,
    /// The account it is in, when that is another account of `EKS_INTENTS_ACCOUNT_ROLES`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
}

/// Something found but not swept, and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Skipped {
    pub what: String,
    pub why: String,
}

/// What the sweep did, returned to the caller (and logged).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Response {
    /// The schedule tick the deduplication ids name (`YYYY-MM-DDTHH:MM`, UTC).
    pub tick: String,
    pub clusters: Vec<SweptCluster>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub skipped: Vec<Skipped>,
}

/// Why a sweep failed: the source that could not be read, or the send. Each keeps the port's
/// error, which says whether the schedule's retry can help.
#[derive(Debug, thiserror::Error)]
pub enum SweepError {
    #[error("source bundles (listing {INTENTS} in the bucket) failed: {0}")]
    Bundles(#[source] PortError),
    #[error("source role tags (roles under the IAM path {iam_path}) failed: {source}")]
    RoleTags {
        iam_path: String,
        #[source]
        source: PortError,
    },
    #[error("source EKS clusters (ListClusters in {region}) failed: {source}")]
    EksClusters {
        region: String,
        #[source]
        source: PortError,
    },
    #[error(transparent)]
    Send(#[from] SendError),
}

impl Retryable for SweepError {
    /// True when the sweep may succeed if tried again (throttled, a service unavailable).
    fn is_retryable(&self) -> bool {
        match self {
            SweepError::Bundles(source)
            | SweepError::RoleTags { source, .. }
            | SweepError::EksClusters { source, .. }
            | SweepError::Send(SendError { source, .. }) => source.is_retryable(),
        }
    }
}

/// Sweeps the deployment's own account.
pub async fn handle<S, I, E, Q>(
    ctx: &Context<S, I, E, Q>,
    event: &Value,
) -> Result<Response, SweepError>
where
    S: BundleStore,
    I: IamPort,
    E: EksPort,
    Q: ReconcileQueue,
{
    sweep(ctx, None::<&AccountSessions>, event).await
}

/// Sweeps the deployment's own account and the accounts of its account roles.
pub async fn handle_in_accounts<S, I, E, Q, A>(
    ctx: &InAccounts<S, I, E, Q, A>,
    event: &Value,
) -> Result<Response, SweepError>
where
    S: BundleStore,
    I: IamPort,
    E: EksPort,
    Q: ReconcileQueue,
    A: SweepAccounts,
{
    sweep(&ctx.home, Some(&ctx.accounts), event).await
}

async fn sweep<S, I, E, Q, A>(
    ctx: &Context<S, I, E, Q>,
    accounts: Option<&A>,
    event: &Value,
) -> Result<Response, SweepError>
where
    S: BundleStore,
    I: IamPort,
    E: EksPort,
    Q: ReconcileQueue,
    A: SweepAccounts,
{
    let tick = tick(event, (ctx.now)());
    let mut found: BTreeMap<String, Vec<Source>> = BTreeMap::new();
    // The account of each cluster found in another account.
    let mut account_of: BTreeMap<String, String> = BTreeMap::new();
    let mut skipped: Vec<Skipped> = Vec::new();
    let mut skip = |what: String, why: String| {
        if !skipped.iter().any(|s| s.what == what) {
            tracing::info!(%what, %why, "not swept");
            skipped.push(Skipped { what, why });
        }
    };

    let level = ctx
        .store
        .list_level(INTENTS)
        .await
        .map_err(SweepError::Bundles)?;
    for prefix in &level.prefixes {
        match cluster_of_prefix(prefix) {
            Some(cluster) => add(&mut found, cluster, Source::Bundles),
            None => skip(prefix.clone(), "not a prefix intents/<cluster>/".into()),
        }
    }

    let snapshot = ctx
        .iam
        .snapshot(&ctx.iam_path, None)
        .await
        .map_err(|source| SweepError::RoleTags {
            iam_path: ctx.iam_path.clone(),
            source,
        })?;
    // Clusters known to be in the deployment's own account.
    let mut at_home: BTreeSet<String> = BTreeSet::new();
    for (cluster, _) in clusters_of_roles(&snapshot.roles, &ctx.region, None, &mut skip) {
        add(&mut found, &cluster, Source::RoleTags);
        at_home.insert(cluster);
    }

    if ctx.list_clusters {
        let clusters = ctx
            .eks
            .list_clusters()
            .await
            .map_err(|source| SweepError::EksClusters {
                region: ctx.region.clone(),
                source,
            })?;
        for cluster in clusters {
            add(&mut found, &cluster, Source::EksClusters);
            at_home.insert(cluster);
        }
    }

    for (account, role) in accounts.map(SweepAccounts::accounts).unwrap_or_default() {
        let view = match accounts {
            Some(accounts) => accounts.read(&role, &ctx.iam_path).await,
            None => continue,
        };
        let view = match view {
            Ok(view) => view,
            Err(error) => {
                tracing::error!(account, %role, %error, "cannot sweep the account");
                skip(format!("account {account}"), error.to_string());
                continue;
            }
        };
        let tagged = clusters_of_roles(&view.roles, &ctx.region, Some(&account), &mut skip);
        let mut in_account = |cluster: &str, source: Option<Source>| {
            if at_home.contains(cluster) {
                return skip(
                    format!("cluster {cluster} of account {account}"),
                    "a cluster of that name is in the deployment's own account; cluster names must be unique across the deployment".into(),
                );
            }
            match account_of.get(cluster) {
                Some(first) if *first != account => skip(
                    format!("cluster {cluster} of account {account}"),
                    format!(
                        "a cluster of that name is in account {first}; cluster names must be unique across the deployment"
                    ),
                ),
                _ => {
                    account_of.insert(cluster.to_owned(), account.clone());
                    if let Some(source) = source {
                        add(&mut found, cluster, source);
                    }
                }
            }
        };
        for cluster in tagged.keys() {
            in_account(cluster, Some(Source::RoleTags));
        }
        for cluster in &view.clusters {
            // A cluster of another account with bundles is in that account; one without is
            // swept only when asked for, as at home.
            let wanted = ctx.list_clusters.then_some(Source::EksClusters);
            in_account(cluster, wanted);
        }
    }

    let mut response = Response {
        tick: tick.clone(),
        ..Response::default()
    };
    let mut messages = Vec::new();
    for (cluster, sources) in found {
        if !ClusterName::is_valid(&cluster) {
            skip(
                format!("cluster {cluster:?}"),
                "not an EKS cluster name (1 to 100 letters, digits, - and _, starting with a letter or digit)".into(),
            );
            continue;
        }
        let deduplication_id = deduplication_id(&cluster, &tick);
        let account = account_of.get(&cluster).cloned();
        let mut message = ReconcileCluster::new(cluster.clone(), REASON);
        message.account = account.clone();
        messages.push(DeduplicatedReconcile {
            message,
            deduplication_id: deduplication_id.clone(),
        });
        response.clusters.push(SweptCluster {
            cluster,
            sources,
            deduplication_id,
            account,
        });
    }
    response.skipped = skipped;
    send_requests(&ctx.queue, &messages).await?;
    for swept in &response.clusters {
        tracing::info!(cluster = %swept.cluster, sources = ?swept.sources, %tick, "reconcile requested");
    }
    Ok(response)
}

/// The clusters named by the cluster tags of owned roles, in `region` (and, for another
/// account's roles, in that account), each with a role that names it; the rest skipped.
fn clusters_of_roles(
    roles: &[ObservedRole],
    region: &str,
    account: Option<&str>,
    skip: &mut impl FnMut(String, String),
) -> BTreeMap<String, String> {
    let mut clusters = BTreeMap::new();
    for role in roles {
        if role.tags.get(OWNER_TAG).map(String::as_str) != Some(OWNER_VALUE) {
            continue;
        }
        let Some(arn) = role.tags.get(CLUSTER_TAG) else {
            skip(
                format!("role {}", role.name),
                format!("owned but without the tag {CLUSTER_TAG}"),
            );
            continue;
        };
        match ClusterRef::from_arn(arn) {
            // A workload's target role, in another account than its cluster's: the cluster is
            // swept through its own account.
            Some(c) if is_target_role(role, &c) => {}
            Some(c) if account.is_some_and(|a| c.account.as_str() != a) => skip(
                format!("cluster {arn}"),
                format!(
                    "named by the owned role {} of account {}, but a cluster of another account",
                    role.name,
                    account.unwrap_or_default()
                ),
            ),
            Some(c) if c.region.as_str() == region => {
                clusters
                    .entry(c.name.as_str().to_owned())
                    .or_insert_with(|| role.name.to_string());
            }
            Some(ClusterRef { region: other, .. }) => skip(
                format!("cluster {arn}"),
                format!(
                    "named by owned roles (such as {}) but in region {other}, not {region}; the deployment of that region sweeps it",
                    role.name
                ),
            ),
            None => skip(
                format!("role {}", role.name),
                format!("its tag {CLUSTER_TAG} {arn:?} is not an EKS cluster ARN"),
            ),
        }
    }
    clusters
}

/// True for an owned role in another account than the cluster its tags name: a workload's
/// target role (cross-account access).
fn is_target_role(role: &ObservedRole, cluster: &ClusterRef) -> bool {
    arn_parts(role.arn.as_str()).is_some_and(|parts| parts[4] != cluster.account.as_str())
}

fn add(found: &mut BTreeMap<String, Vec<Source>>, cluster: &str, source: Source) {
    if cluster.is_empty() {
        return;
    }
    let sources = found.entry(cluster.to_owned()).or_default();
    if !sources.contains(&source) {
        sources.push(source);
    }
}

/// `intents/<cluster>/` -> `<cluster>`; `None` for an empty name or anything else.
pub fn cluster_of_prefix(prefix: &str) -> Option<&str> {
    let cluster = prefix.strip_prefix(INTENTS)?.strip_suffix('/')?;
    (!cluster.is_empty() && !cluster.contains('/') && cluster_prefix(cluster) == prefix)
        .then_some(cluster)
}

/// `drift:<cluster>:<tick>`, within SQS's 128 characters of printable ASCII; a cluster name
/// that would break either rule is replaced by a hash of it.
pub fn deduplication_id(cluster: &str, tick: &str) -> String {
    DeduplicatedReconcile::id("drift", cluster, tick)
}

/// The schedule tick: the event's `time` to the minute (`2026-11-26T12:00`), else the clock's.
pub fn tick(event: &Value, now: u64) -> String {
    if let Some(time) = event.get("time").and_then(Value::as_str) {
        match minute_of(time) {
            Some(minute) => return minute.to_owned(),
            None => {
                tracing::warn!(%time, "the event's time is not RFC 3339; the clock names the tick")
            }
        }
    }
    minute_string(now)
}

/// The `YYYY-MM-DDTHH:MM` start of an RFC 3339 time.
fn minute_of(time: &str) -> Option<&str> {
    let minute = time.get(..16)?;
    let shape = minute.bytes().enumerate().all(|(i, b)| match i {
        4 | 7 => b == b'-',
        10 => b == b'T' || b == b't',
        13 => b == b':',
        _ => b.is_ascii_digit(),
    });
    shape.then_some(minute)
}

/// Seconds since the epoch as `YYYY-MM-DDTHH:MM` (UTC).
fn minute_string(now: u64) -> String {
    let (days, seconds) = (now / 86_400, now % 86_400);
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}",
        seconds / 3600,
        seconds % 3600 / 60
    )
}

/// Days since 1970-01-01 to (year, month, day), after Howard Hinnant's `civil_from_days`.
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

/// The figures of one sweep: clusters asked for, by where they were found; things skipped;
/// errors.
pub fn metrics(result: &Result<Response, SweepError>) -> Metrics {
    let mut metrics = Metrics::new("drift-sweep", None);
    match result {
        Ok(response) => {
            metrics
                .count("ClustersSwept", response.clusters.len())
                .count("Skipped", response.skipped.len())
                .count("Errors", 0);
            for swept in &response.clusters {
                for source in &swept.sources {
                    metrics.count(format!("ClustersFoundBy.{source:?}"), 1);
                }
            }
        }
        Err(_) => {
            metrics.count("Errors", 1);
        }
    }
    metrics
}

#[cfg(test)]
mod tests;
