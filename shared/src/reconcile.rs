//! One reconcile of one cluster: load every bundle under its prefix, observe IAM, EKS and
//! Kubernetes, plan, apply, and write the status report. Level-triggered: whatever event
//! started it, a run reads the whole desired and observed state.

use crate::apply::{ApplyReport, ApplySettings, Ports, apply};
use crate::intent::{self, BundleInput, BundleReport, IntentError, Limits};
use crate::model::{
    DesiredState, Namespace, ObservedState, ServiceAccountRef, Settings,
    known_addon_service_accounts,
};
use crate::plan::{Plan, plan};
use crate::policy;
use crate::ports::{
    BundleStore, ClusterDescription, EksPort, IamPort, KubernetesConnector, KubernetesPort,
    PortError,
};
use crate::status::{BundleStatus, StatusReport, status_key};
use std::collections::{BTreeMap, BTreeSet};
use std::time::{SystemTime, UNIX_EPOCH};

#[derive(Clone, Debug, Default)]
pub struct ReconcileSettings {
    pub plan: Settings,
    pub apply: ApplySettings,
    pub limits: Limits,
    /// Add-on ServiceAccounts beyond the known list: add-on name -> ServiceAccounts.
    pub addon_service_accounts: BTreeMap<String, Vec<ServiceAccountRef>>,
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
}

impl ReconcileError {
    /// True when the run may succeed if tried again (the message goes back to the queue).
    pub fn is_retryable(&self) -> bool {
        match self {
            ReconcileError::Bundles { source, .. }
            | ReconcileError::Kubernetes { source, .. }
            | ReconcileError::Observe { source, .. }
            | ReconcileError::Status { source, .. } => source.is_retryable(),
        }
    }
}

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
) -> ReconcileError {
    tracing::error!(cluster, %error, "reconcile failed");
    let mut report = StatusReport::new(
        cluster,
        now(),
        settings.plan.mode,
        false,
        load.bundles,
        &Plan::default(),
        &|_| None,
        0,
        BTreeMap::new(),
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
    api_calls: &(dyn Fn() -> BTreeMap<String, u64> + Sync),
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
    let description = match ports.eks.describe_cluster(cluster).await {
        Ok(description) => description,
        Err(source) => {
            return Err(fail(ports.store, cluster, settings, load, observe_error(source)).await);
        }
    };
    let kubernetes = match ports.kube.connect(&description).await {
        Ok(port) => port,
        Err(source) => {
            let error = ReconcileError::Kubernetes {
                cluster: cluster.to_owned(),
                source,
            };
            return Err(fail(ports.store, cluster, settings, load, error).await);
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
            return Err(fail(ports.store, cluster, settings, load, error).await);
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
    let failure_of = |role: &crate::model::RoleName| {
        applied
            .failure_of(role)
            .map(|f| format!("{} failed: {}", f.action, f.error))
    };
    let report = StatusReport::new(
        cluster,
        observed.now,
        settings.plan.mode,
        dry_run,
        load.bundles,
        &planned,
        &failure_of,
        applied.done,
        api_calls(),
    );
    let body = serde_json::to_vec_pretty(&report).unwrap_or_default();
    ports
        .store
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
