//! One reconcile of one cluster: load every bundle under its prefix, observe IAM, EKS and
//! Kubernetes, plan, apply, and write the status report. Level-triggered: whatever event
//! started it, a run reads the whole desired and observed state.

use crate::apply::{ApplyReport, ApplySettings, Ports, apply};
use crate::desired::{self, DesiredLoad, Memory, WrittenStatus};
use crate::intent::Limits;
use crate::model::{
    ClusterInfo, ClusterName, ClusterRef, DesiredState, Namespace, ObservedState, RoleArn,
    ServiceAccountRef, Settings, Takeover, WorkloadKind, WorkloadName,
};
pub use crate::observe::{ObserveError, observe};
use crate::plan::{Plan, Warning, plan};
use crate::policy;
use crate::ports::{
    BundleStore, EksPort, ErrorKind, EventType, IamPort, KubernetesConnector, KubernetesPort,
    KubernetesSnapshot, PortError, PortResult, TargetAccounts, WriteCondition,
};
use crate::quotas::Quotas;
use crate::status::{ApiCallCounts, StatusReport, status_key};
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

#[derive(Clone, Debug)]
pub struct ReconcileSettings {
    pub plan: Settings,
    pub apply: ApplySettings,
    pub limits: Limits,
    /// Add-on ServiceAccounts beyond the known list: add-on name -> ServiceAccounts.
    pub addon_service_accounts: BTreeMap<String, Vec<ServiceAccountRef>>,
    /// Plan and report, write nothing (the status report says what would have been repaired).
    pub report_only: bool,
    /// The deployment's region: which of the roles tagged with a cluster's name belong to this
    /// deployment once the cluster itself is gone.
    pub region: Option<String>,
    /// First wait before a cluster that is still being created is tried again; doubled on each
    /// further try, up to 15 minutes.
    pub not_ready_retry: Duration,
    /// A status report that would not change is written anyway once it is this old, so that
    /// its `generated_at` says the cluster was looked at recently.
    pub status_refresh: Duration,
    /// How long a warm function plans against an account's IAM quotas before it reads them
    /// again (`crate::quotas`).
    pub quota_refresh: Duration,
}

impl Default for ReconcileSettings {
    fn default() -> Self {
        ReconcileSettings {
            plan: Settings::default(),
            apply: ApplySettings::default(),
            limits: Limits::default(),
            addon_service_accounts: BTreeMap::new(),
            report_only: false,
            region: None,
            not_ready_retry: Duration::from_secs(60),
            status_refresh: Duration::from_secs(24 * 60 * 60),
            quota_refresh: Duration::from_secs(60 * 60),
        }
    }
}

/// Every port a reconcile uses, and what the function remembers of earlier runs. `targets`
/// reaches IAM in the accounts of workloads' target roles (`NoTargets` where there are none).
pub struct ReconcilePorts<'a, I, E, K, S, T> {
    pub iam: &'a I,
    pub eks: &'a E,
    pub kube: &'a K,
    pub store: &'a S,
    pub memory: &'a Memory,
    pub targets: &'a T,
}

#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error("cannot read the bundles of cluster {cluster}: {source}")]
    Bundles {
        cluster: String,
        #[source]
        source: PortError,
    },
    #[error("cannot reach the Kubernetes API of cluster {cluster}: {source}")]
    Kubernetes {
        cluster: String,
        #[source]
        source: PortError,
    },
    #[error("cannot observe cluster {cluster}: {source}")]
    Observe {
        cluster: String,
        #[source]
        source: PortError,
    },
    #[error("cannot write the status of cluster {cluster}: {source}")]
    Status {
        cluster: String,
        #[source]
        source: PortError,
    },
    /// The cluster's account cannot be reached: the role the deployment acts through there
    /// cannot be assumed (`EKS_INTENTS_ACCOUNT_ROLES`).
    #[error("cannot act in the account of cluster {cluster}: {source}")]
    Account {
        cluster: String,
        #[source]
        source: PortError,
    },
    /// The cluster is being created: its API and OIDC issuer are not there yet. Tried again
    /// later, never failed.
    #[error("cluster {cluster} is {status}; it is reconciled once it is ACTIVE")]
    NotReady { cluster: String, status: String },
}

impl ReconcileError {
    /// True when the run may succeed if tried again (the message goes back to the queue).
    pub fn is_retryable(&self) -> bool {
        match self {
            ReconcileError::Bundles { source, .. }
            | ReconcileError::Kubernetes { source, .. }
            | ReconcileError::Observe { source, .. }
            | ReconcileError::Status { source, .. }
            | ReconcileError::Account { source, .. } => source.is_retryable(),
            ReconcileError::NotReady { .. } => true,
        }
    }
}

/// The `DescribeCluster` statuses of a cluster whose API cannot be used yet.
const NOT_READY: [&str; 2] = ["CREATING", "PENDING"];
/// The statuses of a cluster on its way out: its roles enter the clean-up.
const GOING: [&str; 1] = ["DELETING"];

pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

/// Tries at writing the status report while other runs keep writing theirs.
const STATUS_WRITE_TRIES: usize = 5;
/// The most of a stored report read to learn when its run started.
const MAX_STATUS_BYTES: u64 = 64 * 1024 * 1024;

/// Writes `status/<cluster>.json` unless a run that started later has already written its
/// own: two runs of one cluster may overlap (a retried message beside a new one), and the
/// older one must not leave its view of the cluster as the last word. The write is
/// conditional on the ETag of the report just read (or on there being none), so a run that
/// writes in between makes this one look again. Returns whether the report was written.
async fn write_status<S: BundleStore>(
    store: &S,
    cluster: &str,
    report: &StatusReport,
) -> PortResult<bool> {
    let key = status_key(cluster);
    let body = serde_json::to_vec_pretty(report).unwrap_or_default();
    let mut conflict = None;
    for _ in 0..STATUS_WRITE_TRIES {
        let condition = match store.get(&key, MAX_STATUS_BYTES).await {
            Ok(stored) => {
                let started = desired::stored_run_start(&stored.bytes);
                if started > report.started_at_ms {
                    tracing::info!(
                        cluster,
                        stored = started,
                        this = report.started_at_ms,
                        "a run that started later has written the status report; this run's is not written"
                    );
                    return Ok(false);
                }
                match stored.etag {
                    Some(etag) => WriteCondition::Unchanged(etag),
                    None => {
                        store.put(&key, body, "application/json").await?;
                        return Ok(true);
                    }
                }
            }
            Err(e) if e.kind == ErrorKind::NotFound => WriteCondition::Absent,
            // A deployment whose role may not read status/ yet: write as before rather than
            // fail the run.
            Err(e) if e.kind == ErrorKind::Denied => {
                tracing::warn!(cluster, error = %e, "cannot read the stored status report (s3:GetObject on status/*); it is replaced without checking that no newer run wrote it");
                store.put(&key, body, "application/json").await?;
                return Ok(true);
            }
            Err(e) => return Err(e),
        };
        match store
            .put_if(&key, body.clone(), "application/json", &condition)
            .await
        {
            Ok(_) => return Ok(true),
            Err(e) if e.kind == ErrorKind::Conflict => conflict = Some(e),
            Err(e) => return Err(e),
        }
    }
    // Other runs kept writing: the message goes back to the queue and the next run writes.
    let mut error = conflict.unwrap_or_else(|| {
        PortError::new(
            "s3",
            "PutObject",
            ErrorKind::Conflict,
            "the status report kept changing",
        )
    });
    error.kind = ErrorKind::Transient;
    Err(error)
}

/// A run that could not observe the cluster still leaves a report that says why, with what the
/// bundles gave; the error is handed back so the message is retried.
async fn fail<S: BundleStore>(
    sink: &Sink<'_, S>,
    cluster: &str,
    settings: &ReconcileSettings,
    mut load: DesiredLoad,
    error: ReconcileError,
    api_calls: &(dyn Fn() -> ApiCallCounts + Sync),
) -> ReconcileError {
    match error {
        // Waiting for a cluster being created is the plan, not a failure.
        ReconcileError::NotReady { .. } => tracing::info!(cluster, %error, "not reconciled yet"),
        _ => tracing::error!(cluster, %error, "reconcile failed"),
    }
    let now = now();
    let mut report = StatusReport::new(
        cluster,
        now,
        settings.plan.mode,
        false,
        std::mem::take(&mut load.bundles),
        &Plan::default(),
        &|_| None,
        0,
        api_calls(),
    );
    report.started_at_ms = load.started_at_ms;
    report.error = Some(error.to_string());
    report.last_quiet_run_at = sink.memory.last_quiet_run_at(cluster);
    let written = match write_status(sink.store, cluster, &report).await {
        Ok(true) => Some(WrittenStatus {
            digest: report.content_digest(),
            at: now,
        }),
        Ok(false) => None,
        Err(put) => {
            tracing::error!(cluster, error = %put, "could not write the status report");
            None
        }
    };
    desired::keep(sink.store, cluster, sink.memory, &load, written).await;
    error
}

/// A run that cannot start in the cluster's account (its role there cannot be assumed) leaves
/// the report of a failed run, with what the bundles gave, in the deployment's bucket; the
/// error is handed back so the messages are retried.
pub async fn report_failure<S: BundleStore>(
    cluster: &str,
    store: &S,
    memory: &Memory,
    settings: &ReconcileSettings,
    error: ReconcileError,
    api_calls: &(dyn Fn() -> ApiCallCounts + Sync),
) -> ReconcileError {
    match desired::load(store, cluster, &settings.limits, memory).await {
        Ok(load) => {
            fail(
                &Sink { store, memory },
                cluster,
                settings,
                load,
                error,
                api_calls,
            )
            .await
        }
        Err(load) => {
            tracing::error!(cluster, %error, bundles = %load, "reconcile failed; the bundles cannot be read to report it");
            error
        }
    }
}

/// Where a run leaves what it found: the bucket, and the memory of the warm function.
struct Sink<'a, S> {
    store: &'a S,
    memory: &'a Memory,
}

impl<I, E, K, S, T> ReconcilePorts<'_, I, E, K, S, T> {
    fn sink(&self) -> Sink<'_, S> {
        Sink {
            store: self.store,
            memory: self.memory,
        }
    }

    /// The executor's ports, with `kube` for the cluster's Kubernetes API.
    fn with_kube<'p, P>(&'p self, kube: &'p P) -> Ports<'p, I, E, P, T> {
        Ports {
            iam: self.iam,
            eks: self.eks,
            kube,
            targets: self.targets,
        }
    }
}

/// The outcome of one run.
#[derive(Debug)]
pub struct Outcome {
    pub plan: Plan,
    pub applied: ApplyReport,
    pub report: StatusReport,
}

/// Whether a run applies its plan, or only plans and reports what it would do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Run {
    Apply,
    /// Plan and report; write nothing but the status report.
    DryRun,
}

/// Loads, observes, plans, applies (unless a dry run, or `report_only`) and writes
/// `status/<cluster>.json`. `api_calls` gives the calls made so far, for the report.
pub async fn reconcile<I, E, K, S, T>(
    cluster: &str,
    ports: &ReconcilePorts<'_, I, E, K, S, T>,
    settings: &ReconcileSettings,
    run: Run,
    api_calls: &(dyn Fn() -> ApiCallCounts + Sync),
) -> Result<Outcome, ReconcileError>
where
    I: IamPort,
    E: EksPort,
    K: KubernetesConnector,
    S: BundleStore,
    T: TargetAccounts,
{
    let load = desired::load(ports.store, cluster, &settings.limits, ports.memory)
        .await
        .map_err(|source| ReconcileError::Bundles {
            cluster: cluster.to_owned(),
            source,
        })?;
    let observe_error = |source| ReconcileError::Observe {
        cluster: cluster.to_owned(),
        source,
    };
    let dry_run = run == Run::DryRun || settings.report_only;
    let description = match ports.eks.describe_cluster(cluster).await {
        Ok(description) if NOT_READY.contains(&description.status.as_str()) => {
            let error = ReconcileError::NotReady {
                cluster: cluster.to_owned(),
                status: description.status,
            };
            return Err(fail(&ports.sink(), cluster, settings, load, error, api_calls).await);
        }
        Ok(description) if GOING.contains(&description.status.as_str()) => {
            return reconcile_gone(cluster, ports, settings, load, dry_run, api_calls).await;
        }
        Ok(description) => description,
        Err(source) if source.kind == ErrorKind::NotFound => {
            return reconcile_gone(cluster, ports, settings, load, dry_run, api_calls).await;
        }
        Err(source) => {
            return Err(fail(
                &ports.sink(),
                cluster,
                settings,
                load,
                observe_error(source),
                api_calls,
            )
            .await);
        }
    };
    let kubernetes = match ports.kube.connect(&description).await {
        Ok(port) => port,
        Err(source) => {
            let error = ReconcileError::Kubernetes {
                cluster: cluster.to_owned(),
                source,
            };
            return Err(fail(&ports.sink(), cluster, settings, load, error, api_calls).await);
        }
    };
    let (mut observed, lists) = match observe(
        &description,
        ports.iam,
        ports.eks,
        &kubernetes,
        &load.desired,
        settings,
    )
    .await
    {
        Ok(observed) => observed,
        Err(error) => {
            let error = match error {
                ObserveError::Kubernetes(source) => ReconcileError::Kubernetes {
                    cluster: cluster.to_owned(),
                    source,
                },
                ObserveError::Aws(source) => observe_error(source),
            };
            return Err(fail(&ports.sink(), cluster, settings, load, error, api_calls).await);
        }
    };
    observed.targets = read_targets(ports.targets, &load.desired, &observed, settings).await;
    // The status's call counts also say how Kubernetes was listed.
    let api_calls = &|| {
        let mut counts = api_calls();
        counts.calls.extend(lists.clone());
        counts
    };
    let account = observed.cluster.cluster.account.as_str().to_owned();
    let quotas = Quotas::of_account(
        ports.iam,
        ports.memory,
        &account,
        settings.quota_refresh,
        observed.now,
    )
    .await;
    let now = observed.now;
    let planned = quotas
        .plan(
            |plan_settings, observed| plan(&load.desired, observed, plan_settings),
            &settings.plan,
            &mut observed,
            async || Quotas::read(ports.iam, ports.memory, &account, now).await,
        )
        .await;
    tracing::info!(
        cluster,
        actions = planned.actions.len(),
        workloads = planned.workloads.len(),
        "planned"
    );
    let applied = if dry_run {
        ApplyReport::default()
    } else {
        let executor = ports.with_kube(&kubernetes);
        apply(
            &planned,
            &observed.cluster.cluster,
            &executor,
            &settings.apply,
        )
        .await
    };
    finish(
        cluster,
        &ports.sink(),
        settings,
        dry_run,
        load,
        planned,
        applied,
        observed.now,
        api_calls,
    )
    .await
}

/// Writes the status report of a run that planned (and, unless `dry_run`, applied).
#[allow(clippy::too_many_arguments)]
async fn finish<S: BundleStore>(
    cluster: &str,
    sink: &Sink<'_, S>,
    settings: &ReconcileSettings,
    dry_run: bool,
    mut load: DesiredLoad,
    planned: Plan,
    applied: ApplyReport,
    now: u64,
    api_calls: &(dyn Fn() -> ApiCallCounts + Sync),
) -> Result<Outcome, ReconcileError> {
    let failure_of = |role: &crate::model::RoleName| {
        applied
            .failure_of(role)
            .map(|f| format!("{} failed: {}", f.action, f.error))
    };
    let mut report = StatusReport::new(
        cluster,
        now,
        settings.plan.mode,
        dry_run,
        std::mem::take(&mut load.bundles),
        &planned,
        &failure_of,
        applied.done,
        api_calls(),
    );
    report.started_at_ms = load.started_at_ms;
    if let Some(breaker) = &report.cleanup.breaker {
        tracing::error!(cluster, "{breaker}");
    }
    // A report that says what the stored one says (times and call counts aside) is not
    // written again, unless the stored one is older than the refresh interval.
    let digest = report.content_digest();
    let current = load
        .written_status()
        .filter(|w| {
            w.digest == digest && now.saturating_sub(w.at) < settings.status_refresh.as_secs()
        })
        .cloned();
    let unchanged = current.is_some();
    let status = match current {
        Some(current) => Some(current),
        None => {
            report.last_quiet_run_at = sink.memory.last_quiet_run_at(cluster);
            let written = write_status(sink.store, cluster, &report)
                .await
                .map_err(|source| ReconcileError::Status {
                    cluster: cluster.to_owned(),
                    source,
                })?;
            written.then_some(WrittenStatus { digest, at: now })
        }
    };
    let kept = desired::keep(sink.store, cluster, sink.memory, &load, status).await;
    if unchanged && !kept {
        tracing::info!(cluster, "nothing changed: nothing written");
        sink.memory.note_quiet_run(cluster, now);
    }
    Ok(Outcome {
        plan: planned,
        applied,
        report,
    })
}

/// A cluster that no longer exists (or is being deleted): nothing in it can be bound any more,
/// so every role the system made for it is an orphan, marked, then deleted after the grace
/// period under the same deletion breaker. The cluster's identity (account, region) comes from
/// its roles' ownership tags, restricted to the deployment's region.
async fn reconcile_gone<I, E, K, S, T>(
    cluster: &str,
    ports: &ReconcilePorts<'_, I, E, K, S, T>,
    settings: &ReconcileSettings,
    load: DesiredLoad,
    dry_run: bool,
    api_calls: &(dyn Fn() -> ApiCallCounts + Sync),
) -> Result<Outcome, ReconcileError>
where
    I: IamPort,
    E: EksPort,
    K: KubernetesConnector,
    S: BundleStore,
    T: TargetAccounts,
{
    let name = ClusterName::new(cluster);
    let path = policy::cluster_path(&settings.plan.iam_path, &name);
    // A gone cluster has no issuer to trust: no OIDC provider is read (the planner leaves
    // providers alone without one).
    let snapshot = match ports.iam.snapshot(&path, None).await {
        Ok(snapshot) => snapshot,
        Err(source) => {
            let error = ReconcileError::Observe {
                cluster: cluster.to_owned(),
                source,
            };
            return Err(fail(&ports.sink(), cluster, settings, load, error, api_calls).await);
        }
    };
    // A role in another account than the cluster its tags name is a workload's target role
    // there: that cluster is not this account's, gone or not, and its roles are left alone.
    let mut snapshot = snapshot;
    snapshot.roles.retain(|role| {
        let cluster = role
            .tags
            .get(policy::CLUSTER_TAG)
            .and_then(|arn| ClusterRef::from_arn(arn));
        let account = crate::model::arn_parts(role.arn.as_str()).map(|parts| parts[4]);
        cluster.is_none_or(|c| Some(c.account.as_str()) == account)
    });
    let cluster_ref = snapshot
        .roles
        .iter()
        .filter_map(|role| role.tags.get(policy::CLUSTER_TAG))
        .filter_map(|arn| ClusterRef::from_arn(arn))
        .find(|c| {
            c.name == name
                && settings
                    .region
                    .as_deref()
                    .is_none_or(|region| c.region.as_str() == region)
        });
    let mut planned = Plan::default();
    let mut applied = ApplyReport::default();
    let now = now();
    if let Some(cluster_ref) = cluster_ref {
        let mut observed = ObservedState {
            cluster: ClusterInfo {
                cluster: cluster_ref,
                oidc_issuer: None,
            },
            now,
            oidc_providers: snapshot.oidc_providers,
            roles: snapshot.roles,
            managed_policies: snapshot.managed_policies,
            workloads: Some(Vec::new()),
            service_accounts: Vec::new(),
            pod_identity_associations: Vec::new(),
            addons: Vec::new(),
            usage: Default::default(),
            targets: BTreeMap::new(),
        };
        // Its roles' target roles in other accounts go with them.
        let desired = DesiredState::default();
        observed.targets = read_targets(ports.targets, &desired, &observed, settings).await;
        planned = plan(&DesiredState::default(), &observed, &settings.plan);
        if !dry_run {
            let executor = ports.with_kube(&GoneCluster);
            applied = apply(
                &planned,
                &observed.cluster.cluster,
                &executor,
                &settings.apply,
            )
            .await;
        }
    }
    planned.warnings.insert(
        0,
        Warning::ClusterGone {
            cluster: ClusterName::new(cluster),
        },
    );
    tracing::warn!(
        cluster,
        roles = planned.orphans.len(),
        "cluster is gone; its roles enter the clean-up"
    );
    finish(
        cluster,
        &ports.sink(),
        settings,
        dry_run,
        load,
        planned,
        applied,
        now,
        api_calls,
    )
    .await
}

/// What the system holds in the other accounts the run's intents and roles name.
async fn read_targets<T: TargetAccounts>(
    targets: &T,
    desired: &DesiredState,
    observed: &ObservedState,
    settings: &ReconcileSettings,
) -> BTreeMap<String, crate::model::ObservedTarget> {
    let accounts = crate::targets::accounts_to_read(
        desired,
        &observed.roles,
        &observed.cluster,
        &settings.plan,
    );
    if accounts.is_empty() {
        return BTreeMap::new();
    }
    let path = policy::cluster_path(&settings.plan.iam_path, &observed.cluster.cluster.name);
    crate::targets::read(
        targets,
        &accounts,
        &path,
        &observed.cluster,
        settings.plan.mode,
    )
    .await
}

/// The Kubernetes API of a cluster that is gone: nothing can be read or written there. The
/// plan of a gone cluster observes no ServiceAccount, so it never asks.
struct GoneCluster;

impl GoneCluster {
    fn gone<T>(operation: &'static str) -> PortResult<T> {
        Err(PortError::new(
            "kubernetes",
            operation,
            ErrorKind::NotFound,
            "the cluster does not exist any more",
        ))
    }
}

impl KubernetesPort for GoneCluster {
    async fn snapshot(&self, _: &BTreeSet<Namespace>) -> PortResult<KubernetesSnapshot> {
        Self::gone("list")
    }
    async fn annotate_service_account(
        &self,
        _: &ServiceAccountRef,
        _: &RoleArn,
        _: Takeover,
    ) -> PortResult<()> {
        Self::gone("apply serviceaccount")
    }
    async fn remove_service_account_annotation(&self, _: &ServiceAccountRef) -> PortResult<()> {
        Self::gone("apply serviceaccount")
    }
    async fn record_event(
        &self,
        _: &ServiceAccountRef,
        _: &str,
        _: &str,
        _: EventType,
    ) -> PortResult<()> {
        Self::gone("create event")
    }
    async fn restart_workload(
        &self,
        _: &Namespace,
        _: WorkloadKind,
        _: &WorkloadName,
        _: u64,
    ) -> PortResult<()> {
        Self::gone("apply workload")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::BindingMode;
    use crate::testing::FakeStore;

    fn report(started_at_ms: u64, error: Option<&str>) -> StatusReport {
        let mut report = StatusReport::new(
            "demo",
            started_at_ms / 1000,
            BindingMode::PodIdentity,
            false,
            Vec::new(),
            &Plan::default(),
            &|_| None,
            0,
            BTreeMap::new(),
        );
        report.started_at_ms = started_at_ms;
        report.error = error.map(str::to_owned);
        report
    }

    fn stored(store: &FakeStore) -> StatusReport {
        serde_json::from_slice(&store.object(&status_key("demo")).unwrap().bytes).unwrap()
    }

    /// Whether `write_status` wrote `report` as the status of `demo`.
    async fn written(store: &FakeStore, report: &StatusReport) -> bool {
        write_status(store, "demo", report).await.unwrap()
    }

    /// A run that could not observe `demo`, leaving its report through `fail`.
    async fn fail_to_observe(store: &FakeStore, load: DesiredLoad) {
        let error = ReconcileError::Observe {
            cluster: "demo".into(),
            source: PortError::new("eks", "DescribeCluster", ErrorKind::Transient, "Throttling"),
        };
        fail(
            &Sink {
                store,
                memory: &Memory::default(),
            },
            "demo",
            &ReconcileSettings::default(),
            load,
            error,
            &ApiCallCounts::default,
        )
        .await;
    }

    #[tokio::test]
    async fn an_older_runs_status_never_replaces_a_newer_runs() {
        let store = FakeStore::default();
        // The first report of a cluster is written only if none appeared meanwhile.
        assert!(written(&store, &report(2_000, None)).await);
        // A run that started earlier and finished later (with an error, say) leaves it alone.
        let older = report(
            1_000,
            Some("CreatePodIdentityAssociation: ResourceInUseException"),
        );
        assert!(!written(&store, &older).await);
        assert_eq!(stored(&store).started_at_ms, 2_000);
        assert_eq!(stored(&store).error, None);
        // A later run replaces it, on the ETag it read.
        assert!(written(&store, &report(3_000, None)).await);
        assert_eq!(stored(&store).started_at_ms, 3_000);
        let writes = store.writes.lock().unwrap().clone();
        assert_eq!(
            writes,
            [(status_key("demo"), true), (status_key("demo"), true)]
        );
        // A report of an older release (no start time) is replaced by any run.
        store.insert(&status_key("demo"), br#"{"schema": 1}"#.to_vec());
        assert!(written(&store, &report(500, None)).await);
        assert_eq!(stored(&store).started_at_ms, 500);
    }

    #[tokio::test]
    async fn a_failed_run_older_than_the_stored_report_leaves_it() {
        let store = FakeStore::default();
        let mut load = DesiredLoad {
            started_at_ms: 1_000,
            ..DesiredLoad::default()
        };
        assert!(written(&store, &report(2_000, None)).await);
        fail_to_observe(&store, load.clone()).await;
        assert_eq!(stored(&store).started_at_ms, 2_000);
        assert_eq!(stored(&store).error, None);
        load.started_at_ms = 3_000;
        fail_to_observe(&store, load).await;
        assert_eq!(stored(&store).started_at_ms, 3_000);
        assert!(stored(&store).error.is_some());
    }
}
