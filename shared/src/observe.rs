//! Observing a cluster: what IAM, EKS and the cluster's Kubernetes API hold now, as far as the
//! planner needs it (the roles under the cluster's IAM path, the cluster's OIDC provider, the
//! add-ons and the Pod Identity associations that concern the system, and the namespaces its
//! intents and roles name).

use crate::model::{
    DesiredState, Namespace, ObservedState, ServiceAccountRef, Usage, known_addon_service_accounts,
};
use crate::policy;
use crate::ports::{ClusterDescription, EksPort, IamPort, KubernetesPort, PortError};
use crate::reconcile::{ReconcileSettings, now};
use std::collections::{BTreeMap, BTreeSet};

/// Which side could not be observed: AWS (IAM or EKS) or the cluster's Kubernetes API.
#[derive(Debug)]
pub enum ObserveError {
    Aws(PortError),
    Kubernetes(PortError),
}

/// Reads IAM, EKS and the Kubernetes namespaces the intents name; also gives the Kubernetes
/// LIST requests made (see [`KubernetesSnapshot::lists`]).
pub async fn observe<I: IamPort, E: EksPort, K: KubernetesPort>(
    description: &ClusterDescription,
    iam: &I,
    eks: &E,
    kube: &K,
    desired: &DesiredState,
    settings: &ReconcileSettings,
) -> Result<(ObservedState, BTreeMap<String, u64>), ObserveError> {
    let cluster = description.info.cluster.name.as_str();
    let path = policy::cluster_path(&settings.plan.iam_path, &description.info.cluster.name);
    let provider_arn = description
        .info
        .oidc_host_path()
        .map(|issuer| policy::oidc_provider_arn(&description.info.cluster, issuer));
    let snapshot = iam
        .snapshot(&path, provider_arn.as_deref())
        .await
        .map_err(ObserveError::Aws)?;
    let addons = eks.addons(cluster).await.map_err(ObserveError::Aws)?;
    // What EKS recommends for each add-on version: read only when the setting uses it.
    let mut recommended = BTreeMap::new();
    if settings.plan.addon_recommended_policies {
        for addon in &addons {
            let policies = eks
                .addon_recommended_policies(&addon.name, &addon.version)
                .await
                .map_err(ObserveError::Aws)?;
            recommended.insert(addon.name.clone(), policies);
        }
    }
    let mut namespaces: BTreeSet<Namespace> = desired
        .workloads
        .keys()
        .map(|w| w.namespace.clone())
        .collect();
    namespaces.extend(desired.held.workloads.iter().map(|w| w.namespace.clone()));
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
    // Only the associations in these namespaces (and the add-ons' own) are described: the
    // planner acts nowhere else (see `EksPort::pod_identity_associations`).
    let associations = eks
        .pod_identity_associations(cluster, &namespaces)
        .await
        .map_err(ObserveError::Aws)?;
    let addons = addons
        .into_iter()
        .map(|addon| {
            let mut service_accounts: BTreeSet<ServiceAccountRef> =
                known_addon_service_accounts(addon.name.as_str())
                    .into_iter()
                    .collect();
            if let Some(extra) = settings.addon_service_accounts.get(addon.name.as_str()) {
                service_accounts.extend(extra.iter().cloned());
            }
            let name = addon.name.clone();
            let mut observed = addon.into_observed(service_accounts, &associations.described);
            observed.recommended_policies = recommended.remove(&name).unwrap_or_default();
            observed
        })
        .collect();
    let kubernetes = kube
        .snapshot(&namespaces)
        .await
        .map_err(ObserveError::Kubernetes)?;
    let observed = ObservedState {
        cluster: description.info.clone(),
        now: now(),
        oidc_providers: snapshot.oidc_providers,
        roles: snapshot.roles,
        managed_policies: snapshot.managed_policies,
        workloads: Some(kubernetes.workloads),
        service_accounts: kubernetes.service_accounts,
        pod_identity_associations: associations.described,
        addons,
        usage: Usage {
            // Read by `crate::quotas` before planning.
            roles_in_account: None,
            associations_in_cluster: Some(associations.in_cluster),
        },
        // Read after the plan's own account (`crate::targets`).
        targets: BTreeMap::new(),
    };
    Ok((observed, kubernetes.lists))
}
