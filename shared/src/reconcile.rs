//! One reconcile of one cluster: load every bundle under its prefix, observe IAM, EKS and
//! Kubernetes, plan, apply, and write the status report. Level-triggered: whatever event
//! started it, a run reads the whole desired and observed state.

use crate::apply::{ApplyReport, ApplySettings, Ports, apply};
use crate::intent::{self, BundleInput, BundleReport, IntentError, Limits};
use crate::model::{
    ClusterInfo, ClusterName, ClusterRef, DesiredState, Namespace, ObservedState,
    ServiceAccountRef, Settings, WorkloadKind, WorkloadName, known_addon_service_accounts,
};
use crate::plan::{Plan, plan};
use crate::policy;
use crate::ports::{
    BundleStore, ClusterDescription, EksPort, ErrorKind, IamPort, KubernetesConnector,
    KubernetesPort, KubernetesSnapshot, PortError, PortResult,
};
use crate::status::{ApiCallCounts, BundleStatus, StatusReport, status_key};
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
        }
    }
}

/// Every port a reconcile uses.
pub struct ReconcilePorts<'a, I, E, K, S> {
    pub iam: &'a I,
    pub eks: &'a E,
    pub kube: &'a K,
    pub store: &'a S,
}

/// The desired state of a cluster and what each bundle gave.
#[derive(Clone, Debug, Default)]
pub struct DesiredLoad {
    pub desired: DesiredState,
    pub bundles: Vec<BundleStatus>,
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
            | ReconcileError::Status { source, .. } => source.is_retryable(),
            ReconcileError::NotReady { .. } => true,
        }
    }
}

/// The `DescribeCluster` statuses of a cluster whose API cannot be used yet.
const NOT_READY: [&str; 2] = ["CREATING", "PENDING"];
/// The statuses of a cluster on its way out: its roles enter the clean-up.
const GOING: [&str; 1] = ["DELETING"];

/// Reads one bundle object into a report, with the object version read; a fetch that fails
/// holds the whole bundle.
pub async fn read_object<S: BundleStore>(
    store: &S,
    key: &str,
    size: u64,
    limits: &Limits,
) -> (BundleReport, Option<String>) {
    let location = intent::locate(key);
    let namespace = location.as_ref().and_then(|l| l.namespace.clone());
    let failed = |message: String| BundleReport {
        key: key.to_owned(),
        errors: vec![IntentError {
            file: key.to_owned(),
            member: None,
            document: None,
            line: None,
            field: None,
            message,
        }],
        held_whole_bundle: true,
        ..BundleReport::default()
    };
    if size > limits.max_bundle_bytes as u64 {
        let message = format!(
            "bundle is {size} bytes, more than the limit of {} bytes",
            limits.max_bundle_bytes
        );
        return (failed(message), None);
    }
    match store.get(key, limits.max_bundle_bytes as u64).await {
        Ok(object) => (
            intent::read_bundle(
                &BundleInput {
                    key,
                    bytes: &object.bytes,
                    default_namespace: namespace.as_ref(),
                    tenant_namespace: namespace.as_ref(),
                },
                limits,
            ),
            object.version,
        ),
        Err(error) => (failed(format!("cannot read the bundle: {error}")), None),
    }
}

/// The union of every bundle under `intents/<cluster>/`.
pub async fn load_desired<S: BundleStore>(
    store: &S,
    cluster: &str,
    limits: &Limits,
) -> Result<DesiredLoad, PortError> {
    let mut load = DesiredLoad::default();
    let mut objects = store.list(&intent::cluster_prefix(cluster)).await?;
    objects.sort_by(|a, b| a.key.cmp(&b.key));
    for object in objects {
        if intent::locate(&object.key).is_none_or(|l| l.cluster != cluster) {
            continue;
        }
        let (report, version) = read_object(store, &object.key, object.size, limits).await;
        report.add_to(&mut load.desired);
        load.bundles.push(BundleStatus {
            key: object.key,
            etag: object.etag,
            version: version.or(object.version),
            valid: report.is_valid(),
            intents: report.intents.len(),
            errors: report.errors,
            notices: report.notices.len(),
        });
    }
    Ok(load)
}

/// Reads IAM, EKS and the Kubernetes namespaces the intents name.
pub async fn observe<I: IamPort, E: EksPort, K: KubernetesPort>(
    description: &ClusterDescription,
    iam: &I,
    eks: &E,
    kube: &K,
    desired: &DesiredState,
    settings: &ReconcileSettings,
) -> Result<ObservedState, PortError> {
    let cluster = description.info.cluster.name.as_str();
    let path = policy::cluster_path(&settings.plan.iam_path, &description.info.cluster.name);
    let snapshot = iam.snapshot(&path).await?;
    let associations = eks.pod_identity_associations(cluster).await?;
    let addons = eks
        .addons(cluster)
        .await?
        .into_iter()
        .map(|addon| {
            let mut service_accounts: BTreeSet<ServiceAccountRef> =
                known_addon_service_accounts(&addon.name)
                    .into_iter()
                    .collect();
            if let Some(extra) = settings.addon_service_accounts.get(&addon.name) {
                service_accounts.extend(extra.iter().cloned());
            }
            addon.into_observed(service_accounts, &associations)
        })
        .collect();
    let mut namespaces: BTreeSet<Namespace> = desired
        .workloads
        .keys()
        .map(|w| w.namespace.clone())
        .collect();
    namespaces.extend(desired.held.workloads.iter().map(|(ns, _)| ns.clone()));
    // The namespaces of the roles already made: a role whose intents are all gone must still
    // be unbound there before it is deleted.
    namespaces.extend(
        snapshot
            .roles
            .iter()
            .filter(|role| {
                policy::ownership(&role.tags, &description.info.cluster) == policy::Ownership::Ours
            })
            .filter_map(|role| role.tags.get(policy::NAMESPACE_TAG))
            .map(|ns| Namespace::new(ns.as_str())),
    );
    let kubernetes = kube.snapshot(&namespaces).await?;
    Ok(ObservedState {
        cluster: description.info.clone(),
        now: now(),
        oidc_providers: snapshot.oidc_providers,
        roles: snapshot.roles,
        managed_policies: snapshot.managed_policies,
        workloads: Some(kubernetes.workloads),
        service_accounts: kubernetes.service_accounts,
        pod_identity_associations: associations,
        addons,
    })
}

pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

/// A run that could not observe the cluster still leaves a report that says why, with what the
/// bundles gave; the error is handed back so the message is retried.
async fn fail<S: BundleStore>(
    store: &S,
    cluster: &str,
    settings: &ReconcileSettings,
    load: DesiredLoad,
    error: ReconcileError,
    api_calls: &(dyn Fn() -> ApiCallCounts + Sync),
) -> ReconcileError {
    match error {
        // Waiting for a cluster being created is the plan, not a failure.
        ReconcileError::NotReady { .. } => tracing::info!(cluster, %error, "not reconciled yet"),
        _ => tracing::error!(cluster, %error, "reconcile failed"),
    }
    let mut report = StatusReport::new(
        cluster,
        now(),
        settings.plan.mode,
        false,
        load.bundles,
        &Plan::default(),
        &|_| None,
        0,
        api_calls(),
    );
    report.error = Some(error.to_string());
    let body = serde_json::to_vec_pretty(&report).unwrap_or_default();
    if let Err(put) = store
        .put(&status_key(cluster), body, "application/json")
        .await
    {
        tracing::error!(cluster, error = %put, "could not write the status report");
    }
    error
}

/// The outcome of one run.
#[derive(Debug)]
pub struct Outcome {
    pub plan: Plan,
    pub applied: ApplyReport,
    pub report: StatusReport,
}

/// Loads, observes, plans, applies (unless `dry_run`) and writes `status/<cluster>.json`.
/// `api_calls` gives the calls made so far, for the report.
pub async fn reconcile<I, E, K, S>(
    cluster: &str,
    ports: &ReconcilePorts<'_, I, E, K, S>,
    settings: &ReconcileSettings,
    dry_run: bool,
    api_calls: &(dyn Fn() -> ApiCallCounts + Sync),
) -> Result<Outcome, ReconcileError>
where
    I: IamPort,
    E: EksPort,
    K: KubernetesConnector,
    S: BundleStore,
{
    let load = load_desired(ports.store, cluster, &settings.limits)
        .await
        .map_err(|source| ReconcileError::Bundles {
            cluster: cluster.to_owned(),
            source,
        })?;
    let observe_error = |source| ReconcileError::Observe {
        cluster: cluster.to_owned(),
        source,
    };
    let dry_run = dry_run || settings.report_only;
    let description = match ports.eks.describe_cluster(cluster).await {
        Ok(description) if NOT_READY.contains(&description.status.as_str()) => {
            let error = ReconcileError::NotReady {
                cluster: cluster.to_owned(),
                status: description.status,
            };
            return Err(fail(ports.store, cluster, settings, load, error, api_calls).await);
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
                ports.store,
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
            return Err(fail(ports.store, cluster, settings, load, error, api_calls).await);
        }
    };
    let observed = match observe(
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
        Err(source) => {
            let error = if source.service == "kubernetes" {
                ReconcileError::Kubernetes {
                    cluster: cluster.to_owned(),
                    source,
                }
            } else {
                observe_error(source)
            };
            return Err(fail(ports.store, cluster, settings, load, error, api_calls).await);
        }
    };
    let planned = plan(&load.desired, &observed, &settings.plan);
    tracing::info!(
        cluster,
        actions = planned.actions.len(),
        workloads = planned.workloads.len(),
        "planned"
    );
    let applied = if dry_run {
        ApplyReport::default()
    } else {
        apply(
            &planned,
            &observed.cluster.cluster,
            &Ports {
                iam: ports.iam,
                eks: ports.eks,
                kube: &kubernetes,
            },
            &settings.apply,
        )
        .await
    };
    finish(
        cluster,
        ports.store,
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
    store: &S,
    settings: &ReconcileSettings,
    dry_run: bool,
    load: DesiredLoad,
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
    let report = StatusReport::new(
        cluster,
        now,
        settings.plan.mode,
        dry_run,
        load.bundles,
        &planned,
        &failure_of,
        applied.done,
        api_calls(),
    );
    if let Some(breaker) = &report.cleanup.breaker {
        tracing::error!(cluster, "{breaker}");
    }
    let body = serde_json::to_vec_pretty(&report).unwrap_or_default();
    store
        .put(&status_key(cluster), body, "application/json")
        .await
        .map_err(|source| ReconcileError::Status {
            cluster: cluster.to_owned(),
            source,
        })?;
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
async fn reconcile_gone<I, E, K, S>(
    cluster: &str,
    ports: &ReconcilePorts<'_, I, E, K, S>,
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
{
    let name = ClusterName::new(cluster);
    let path = policy::cluster_path(&settings.plan.iam_path, &name);
    let snapshot = match ports.iam.snapshot(&path).await {
        Ok(snapshot) => snapshot,
        Err(source) => {
            let error = ReconcileError::Observe {
                cluster: cluster.to_owned(),
                source,
            };
            return Err(fail(ports.store, cluster, settings, load, error, api_calls).await);
        }
    };
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
        let observed = ObservedState {
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
        };
        planned = plan(&DesiredState::default(), &observed, &settings.plan);
        if !dry_run {
            applied = apply(
                &planned,
                &observed.cluster.cluster,
                &Ports {
                    iam: ports.iam,
                    eks: ports.eks,
                    kube: &GoneCluster,
                },
                &settings.apply,
            )
            .await;
        }
    }
    planned.warnings.insert(
        0,
        format!(
            "cluster {cluster} does not exist any more (or is being deleted): the roles made for it are cleaned up after the grace period"
        ),
    );
    tracing::warn!(
        cluster,
        roles = planned.orphans.len(),
        "cluster is gone; its roles enter the clean-up"
    );
    finish(
        cluster,
        ports.store,
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
        _: &str,
        _: bool,
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
        _: bool,
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
