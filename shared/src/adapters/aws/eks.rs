//! EKS: the cluster, its add-ons and their role settings, and Pod Identity associations.

use super::port_error;
use crate::model::{
    AddonName, AssociationId, Namespace, PolicyArn, RoleArn, ServiceAccountName, ServiceAccountRef,
};
use crate::model::{ClusterInfo, ClusterName, ClusterRef, ObservedAssociation};
use crate::policy::{PolicyDocument, short_hash};
use crate::ports::{
    AddonDescription, Associations, ClusterDescription, EksPort, ErrorKind, PortError, PortResult,
};
use aws_sdk_eks::Client;
use aws_sdk_eks::types::AddonPodIdentityAssociations;
use futures_util::{StreamExt, stream};
use std::collections::{BTreeMap, BTreeSet};
use std::time::{SystemTime, UNIX_EPOCH};

#[derive(Clone, Debug)]
pub struct EksAdapter {
    client: Client,
}

impl EksAdapter {
    pub fn new(client: Client) -> Self {
        Self { client }
    }
}

impl EksAdapter {
    async fn describe_association(
        &self,
        cluster: &str,
        id: &str,
    ) -> PortResult<Option<ObservedAssociation>> {
        let out = self
            .client
            .describe_pod_identity_association()
            .cluster_name(cluster)
            .association_id(id)
            .send()
            .await
            .map_err(|e| port_error("eks", "DescribePodIdentityAssociation", e))?;
        Ok(out.association().map(|a| ObservedAssociation {
            association_id: AssociationId::new(id),
            namespace: a.namespace().unwrap_or_default().into(),
            service_account: a.service_account().unwrap_or_default().into(),
            role_arn: RoleArn::new(a.role_arn().unwrap_or_default()),
            owner_arn: a.owner_arn().map(str::to_owned),
            tags: a
                .tags()
                .map(|t| t.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
                .unwrap_or_default(),
            session_policy: a
                .policy()
                .filter(|p| !p.is_empty())
                .map(PolicyDocument::from_text),
            session_tags_disabled: a.disable_session_tags().unwrap_or_default(),
            target_role_arn: a
                .target_role_arn()
                .filter(|arn| !arn.is_empty())
                .map(RoleArn::new),
        }))
    }
}

/// Pod Identity associations described at a time when observing a cluster.
pub const DESCRIBE_CONCURRENCY: usize = 16;

/// How long one client request token stands for one association request.
const TOKEN_WINDOW_SECONDS: u64 = 600;

/// The client request token of an association request: the same for the same request in the
/// same ten-minute window, so an SDK retry or a second run creating the same association at the
/// same time gets the association the first created; a later request (the association deleted
/// by hand since) gets a new token, so EKS never answers it with an association that is gone.
fn association_token(
    cluster: &str,
    service_account: &ServiceAccountRef,
    role_arn: &str,
    now: SystemTime,
) -> String {
    let window = now
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() / TOKEN_WINDOW_SECONDS)
        .unwrap_or_default();
    let request = format!(
        "{cluster}\n{}\n{}\n{role_arn}\n{window}",
        service_account.namespace, service_account.name
    );
    format!("eks-intents-{}", short_hash(&request, 32))
}

impl EksPort for EksAdapter {
    async fn list_clusters(&self) -> PortResult<Vec<String>> {
        let mut names = Vec::new();
        let mut pages = self.client.list_clusters().into_paginator().send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| port_error("eks", "ListClusters", e))?;
            names.extend(page.clusters().iter().cloned());
        }
        Ok(names)
    }

    async fn describe_cluster(&self, name: &str) -> PortResult<ClusterDescription> {
        let out = self
            .client
            .describe_cluster()
            .name(name)
            .send()
            .await
            .map_err(|e| port_error("eks", "DescribeCluster", e))?;
        let cluster = out.cluster().ok_or_else(|| {
            PortError::new(
                "eks",
                "DescribeCluster",
                ErrorKind::NotFound,
                format!("cluster {name} not described"),
            )
        })?;
        let arn = cluster.arn().unwrap_or_default();
        let mut cluster_ref = ClusterRef::from_arn(arn).ok_or_else(|| {
            PortError::new(
                "eks",
                "DescribeCluster",
                ErrorKind::Other,
                format!("cluster {name} has an ARN that names no region or account: {arn:?}"),
            )
        })?;
        cluster_ref.name = ClusterName::new(name);
        Ok(ClusterDescription {
            info: ClusterInfo {
                cluster: cluster_ref,
                oidc_issuer: cluster
                    .identity()
                    .and_then(|i| i.oidc())
                    .and_then(|o| o.issuer())
                    .map(str::to_owned),
            },
            endpoint: cluster.endpoint().map(str::to_owned),
            certificate_authority: cluster
                .certificate_authority()
                .and_then(|c| c.data())
                .map(str::to_owned),
            status: cluster
                .status()
                .map(|s| s.as_str().to_owned())
                .unwrap_or_default(),
        })
    }

    async fn addons(&self, cluster: &str) -> PortResult<Vec<AddonDescription>> {
        let mut names = Vec::new();
        let mut pages = self
            .client
            .list_addons()
            .cluster_name(cluster)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| port_error("eks", "ListAddons", e))?;
            names.extend(page.addons().iter().cloned());
        }
        let mut addons = Vec::new();
        for name in names {
            let out = self
                .client
                .describe_addon()
                .cluster_name(cluster)
                .addon_name(&name)
                .send()
                .await
                .map_err(|e| port_error("eks", "DescribeAddon", e))?;
            let Some(addon) = out.addon() else { continue };
            addons.push(AddonDescription {
                name: AddonName::new(name.as_str()),
                arn: addon.addon_arn().unwrap_or_default().to_owned(),
                version: addon.addon_version().unwrap_or_default().to_owned(),
                service_account_role_arn: addon
                    .service_account_role_arn()
                    .filter(|arn| !arn.is_empty())
                    .map(RoleArn::new),
            });
        }
        Ok(addons)
    }

    async fn pod_identity_associations(
        &self,
        cluster: &str,
        namespaces: &BTreeSet<Namespace>,
    ) -> PortResult<Associations> {
        let mut ids = Vec::new();
        let mut in_cluster = 0;
        let mut pages = self
            .client
            .list_pod_identity_associations()
            .cluster_name(cluster)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| port_error("eks", "ListPodIdentityAssociations", e))?;
            in_cluster += page.associations().len();
            ids.extend(
                page.associations()
                    .iter()
                    .filter(|a| {
                        a.owner_arn().is_some_and(|owner| !owner.is_empty())
                            || a.namespace()
                                .is_some_and(|ns| namespaces.contains(&Namespace::new(ns)))
                    })
                    .filter_map(|a| a.association_id().map(str::to_owned)),
            );
        }
        // The list leaves out the role and tags: one describe per association of concern,
        // `DESCRIBE_CONCURRENCY` at a time (in the order listed).
        let described: Vec<PortResult<Option<ObservedAssociation>>> = stream::iter(ids)
            .map(|id| async move { self.describe_association(cluster, &id).await })
            .buffered(DESCRIBE_CONCURRENCY)
            .collect()
            .await;
        let mut associations = Vec::with_capacity(described.len());
        for association in described {
            associations.extend(association?);
        }
        Ok(Associations {
            described: associations,
            in_cluster,
        })
    }

    async fn create_pod_identity_association(
        &self,
        cluster: &str,
        service_account: &ServiceAccountRef,
        role_arn: &RoleArn,
        tags: &BTreeMap<String, String>,
        session_policy: Option<&PolicyDocument>,
        target_role_arn: Option<&RoleArn>,
    ) -> PortResult<()> {
        // The same request gives the same token: the session policy and target are part of it.
        let mut request = role_arn.as_str().to_owned();
        if let Some(policy) = session_policy {
            request.push('\n');
            request.push_str(&policy.to_json());
        }
        if let Some(target) = target_role_arn {
            request.push_str("\ntarget ");
            request.push_str(target.as_str());
        }
        let token = association_token(cluster, service_account, &request, SystemTime::now());
        self.client
            .create_pod_identity_association()
            .cluster_name(cluster)
            .namespace(service_account.namespace.as_str())
            .service_account(service_account.name.as_str())
            .role_arn(role_arn.as_str())
            .set_tags(Some(tags.clone().into_iter().collect()))
            .set_policy(session_policy.map(PolicyDocument::to_json))
            .set_disable_session_tags(session_policy.map(|_| true))
            .set_target_role_arn(target_role_arn.map(|arn| arn.as_str().to_owned()))
            .client_request_token(token)
            .send()
            .await
            .map_err(|e| port_error("eks", "CreatePodIdentityAssociation", e))?;
        Ok(())
    }

    async fn pod_identity_association_of(
        &self,
        cluster: &str,
        service_account: &ServiceAccountRef,
    ) -> PortResult<Option<ObservedAssociation>> {
        let out = self
            .client
            .list_pod_identity_associations()
            .cluster_name(cluster)
            .namespace(service_account.namespace.as_str())
            .service_account(service_account.name.as_str())
            .send()
            .await
            .map_err(|e| port_error("eks", "ListPodIdentityAssociations", e))?;
        let Some(id) = out.associations().iter().find_map(|a| a.association_id()) else {
            return Ok(None);
        };
        self.describe_association(cluster, id).await
    }

    async fn update_pod_identity_association(
        &self,
        cluster: &str,
        association_id: &AssociationId,
        role_arn: &RoleArn,
        session_policy: Option<&PolicyDocument>,
        target_role_arn: Option<&RoleArn>,
    ) -> PortResult<()> {
        self.client
            .update_pod_identity_association()
            .cluster_name(cluster)
            .association_id(association_id.as_str())
            .role_arn(role_arn.as_str())
            .set_policy(session_policy.map(PolicyDocument::to_json))
            .set_disable_session_tags(session_policy.map(|_| true))
            .set_target_role_arn(target_role_arn.map(|arn| arn.as_str().to_owned()))
            .send()
            .await
            .map_err(|e| port_error("eks", "UpdatePodIdentityAssociation", e))?;
        Ok(())
    }

    async fn delete_pod_identity_association(
        &self,
        cluster: &str,
        association_id: &AssociationId,
    ) -> PortResult<()> {
        self.client
            .delete_pod_identity_association()
            .cluster_name(cluster)
            .association_id(association_id.as_str())
            .send()
            .await
            .map_err(|e| port_error("eks", "DeletePodIdentityAssociation", e))?;
        Ok(())
    }

    async fn addon_recommended_policies(
        &self,
        addon: &AddonName,
        version: &str,
    ) -> PortResult<BTreeMap<ServiceAccountName, Vec<PolicyArn>>> {
        let out = self
            .client
            .describe_addon_configuration()
            .addon_name(addon.as_str())
            .addon_version(version)
            .send()
            .await
            .map_err(|e| port_error("eks", "DescribeAddonConfiguration", e))?;
        Ok(out
            .pod_identity_configuration()
            .iter()
            .filter_map(|c| {
                let policies: Vec<PolicyArn> = c
                    .recommended_managed_policies()
                    .iter()
                    .map(|arn| PolicyArn::new(arn.as_str()))
                    .collect();
                let name = c.service_account().filter(|n| !n.is_empty())?;
                (!policies.is_empty()).then(|| (ServiceAccountName::from(name), policies))
            })
            .collect())
    }

    async fn set_addon_role(
        &self,
        cluster: &str,
        addon: &AddonName,
        role_arn: Option<&RoleArn>,
    ) -> PortResult<()> {
        // An empty ARN removes the add-on's role.
        self.client
            .update_addon()
            .cluster_name(cluster)
            .addon_name(addon.as_str())
            .service_account_role_arn(role_arn.map(RoleArn::as_str).unwrap_or_default())
            .send()
            .await
            .map_err(|e| port_error("eks", "UpdateAddon", e))?;
        Ok(())
    }

    async fn set_addon_pod_identity(
        &self,
        cluster: &str,
        addon: &AddonName,
        associations: &BTreeMap<String, RoleArn>,
    ) -> PortResult<()> {
        let associations: Vec<AddonPodIdentityAssociations> = associations
            .iter()
            .filter_map(|(sa, arn)| {
                AddonPodIdentityAssociations::builder()
                    .service_account(sa)
                    .role_arn(arn.as_str())
                    .build()
                    .ok()
            })
            .collect();
        self.client
            .update_addon()
            .cluster_name(cluster)
            .addon_name(addon.as_str())
            .set_pod_identity_associations(Some(associations))
            .send()
            .await
            .map_err(|e| port_error("eks", "UpdateAddon", e))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn one_association_request_has_one_token_within_its_window() {
        let sa = ServiceAccountRef {
            namespace: "jokes".into(),
            name: "joke-worker".into(),
        };
        let arn = "arn:aws:iam::123456789012:role/eks-intents/demo/demo.jokes.joke-worker";
        let at = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let token = association_token("demo", &sa, arn, at);
        assert!(token.len() <= 64, "{token}");
        assert_eq!(
            token,
            association_token("demo", &sa, arn, at + Duration::from_secs(1))
        );
        assert_ne!(token, association_token("demo", &sa, "other", at));
        assert_ne!(token, association_token("prod", &sa, arn, at));
        assert_ne!(
            token,
            association_token("demo", &sa, arn, at + Duration::from_secs(601))
        );
    }
}
