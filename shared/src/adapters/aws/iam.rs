//! IAM: read every owned role and policy in about one call per thousand roles
//! (`GetAccountAuthorizationDetails`), and the writes the executor needs.

use super::port_error;
use crate::model::{
    AccountSummary, IamQuotas, ObservedManagedPolicy, ObservedRole, OidcProvider, PolicyArn,
    RoleArn, RoleName, strip_scheme,
};
use crate::policy::PolicyDocument;
use crate::ports::{IamPort, IamSnapshot, NewRole, PortResult};
use aws_sdk_iam::Client;
use aws_sdk_iam::types::{EntityType, SummaryKeyType, Tag};
use std::collections::BTreeMap;

/// Items per `GetAccountAuthorizationDetails` page (IAM's maximum; its default is 100).
pub const AUTHORIZATION_DETAILS_PAGE: i32 = 1000;

#[derive(Clone, Debug)]
pub struct IamAdapter {
    client: Client,
}

impl IamAdapter {
    pub fn new(client: Client) -> Self {
        Self { client }
    }
}

fn tags(tags: &BTreeMap<String, String>) -> Vec<Tag> {
    tags.iter()
        .filter_map(|(k, v)| Tag::builder().key(k).value(v).build().ok())
        .collect()
}

fn tag_map(tags: &[Tag]) -> BTreeMap<String, String> {
    tags.iter()
        .map(|t| (t.key().to_owned(), t.value().to_owned()))
        .collect()
}

/// A managed policy's name: the one IAM gives, else the last part of its ARN
/// (`arn:aws:iam::<account>:policy/<path>/<name>`), so that a policy listed without its name
/// is still seen (and neither created again nor left behind).
fn policy_name(given: Option<&str>, arn: &str) -> Option<String> {
    if let Some(name) = given.filter(|n| !n.is_empty()) {
        return Some(name.to_owned());
    }
    let (_, resource) = arn.split_once(":policy/")?;
    resource
        .rsplit('/')
        .next()
        .filter(|n| !n.is_empty())
        .map(str::to_owned)
}

/// The quotas and role count of a summary map; a quota it does not name (or names with a value
/// that is not a count) keeps its fixed default.
fn account_summary(map: Option<&std::collections::HashMap<SummaryKeyType, i32>>) -> AccountSummary {
    let value = |key: SummaryKeyType| {
        map.and_then(|m| m.get(&key))
            .and_then(|&n| usize::try_from(n).ok())
    };
    let defaults = IamQuotas::default();
    let quota = |key, default| value(key).filter(|&n| n > 0).unwrap_or(default);
    AccountSummary {
        quotas: IamQuotas {
            inline_policy_chars: quota(
                SummaryKeyType::RolePolicySizeQuota,
                defaults.inline_policy_chars,
            ),
            managed_policy_chars: quota(
                SummaryKeyType::PolicySizeQuota,
                defaults.managed_policy_chars,
            ),
            trust_policy_chars: quota(
                SummaryKeyType::AssumeRolePolicySizeQuota,
                defaults.trust_policy_chars,
            ),
            attached_policies: quota(
                SummaryKeyType::AttachedPoliciesPerRoleQuota,
                defaults.attached_policies,
            ),
            roles: quota(SummaryKeyType::RolesQuota, defaults.roles),
            pod_identity_associations: defaults.pod_identity_associations,
        },
        roles: value(SummaryKeyType::Roles).unwrap_or_default(),
    }
}

impl IamPort for IamAdapter {
    async fn snapshot(
        &self,
        path_prefix: &str,
        oidc_provider_arn: Option<&str>,
    ) -> PortResult<IamSnapshot> {
        let mut snapshot = IamSnapshot::default();
        let mut pages = self
            .client
            .get_account_authorization_details()
            .filter(EntityType::Role)
            .filter(EntityType::LocalManagedPolicy)
            .into_paginator()
            // IAM pages at 100 items unless asked: 1,000 (its maximum) per page, following
            // `Marker` to the end.
            .page_size(AUTHORIZATION_DETAILS_PAGE)
            .send();
        let mut untagged_policies = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| port_error("iam", "GetAccountAuthorizationDetails", e))?;
            for role in page.role_detail_list() {
                let path = role.path().unwrap_or("/");
                if !path.starts_with(path_prefix) {
                    continue;
                }
                let (Some(name), Some(arn)) = (role.role_name(), role.arn()) else {
                    continue;
                };
                snapshot.roles.push(ObservedRole {
                    name: RoleName::new(name),
                    arn: RoleArn::new(arn),
                    path: path.to_owned(),
                    trust_policy: PolicyDocument::from_text(
                        role.assume_role_policy_document().unwrap_or_default(),
                    ),
                    inline_policies: role
                        .role_policy_list()
                        .iter()
                        .filter_map(|p| {
                            Some((
                                p.policy_name()?.to_owned(),
                                PolicyDocument::from_text(p.policy_document()?),
                            ))
                        })
                        .collect(),
                    attached_policies: role
                        .attached_managed_policies()
                        .iter()
                        .filter_map(|p| p.policy_arn().map(PolicyArn::new))
                        .collect(),
                    permissions_boundary: role
                        .permissions_boundary()
                        .and_then(|b| b.permissions_boundary_arn())
                        .map(PolicyArn::new),
                    tags: tag_map(role.tags()),
                });
            }
            for policy in page.policies() {
                let path = policy.path().unwrap_or("/");
                if !path.starts_with(path_prefix) {
                    continue;
                }
                let Some(arn) = policy.arn() else { continue };
                let Some(name) = policy_name(policy.policy_name(), arn) else {
                    continue;
                };
                let document = policy
                    .policy_version_list()
                    .iter()
                    .find(|v| v.is_default_version())
                    .and_then(|v| v.document())
                    .unwrap_or_default();
                untagged_policies.push(ObservedManagedPolicy {
                    arn: PolicyArn::new(arn),
                    name,
                    path: path.to_owned(),
                    document: PolicyDocument::from_text(document),
                    tags: BTreeMap::new(),
                });
            }
        }
        // The authorization details leave out policy tags; the system's policies are few
        // (only split permission policies), so one call each is cheap.
        for mut policy in untagged_policies {
            let out = self
                .client
                .list_policy_tags()
                .policy_arn(policy.arn.as_str())
                .send()
                .await
                .map_err(|e| port_error("iam", "ListPolicyTags", e))?;
            policy.tags = tag_map(out.tags());
            snapshot.managed_policies.push(policy);
        }
        // Only the cluster's own provider matters, and its ARN follows from the issuer: one
        // call, whatever the account holds (NotFound: there is none yet).
        if let Some(arn) = oidc_provider_arn {
            match self
                .client
                .get_open_id_connect_provider()
                .open_id_connect_provider_arn(arn)
                .send()
                .await
            {
                Ok(provider) => snapshot.oidc_providers.push(OidcProvider {
                    arn: arn.to_owned(),
                    url: strip_scheme(provider.url().unwrap_or_default()).to_owned(),
                    client_ids: provider.client_id_list().iter().cloned().collect(),
                }),
                Err(e) => {
                    let error = port_error("iam", "GetOpenIDConnectProvider", e);
                    if error.kind != crate::ports::ErrorKind::NotFound {
                        return Err(error);
                    }
                }
            }
        }
        Ok(snapshot)
    }

    async fn create_oidc_provider(
        &self,
        url: &str,
        client_ids: &[String],
        tags_: &BTreeMap<String, String>,
    ) -> PortResult<()> {
        self.client
            .create_open_id_connect_provider()
            .url(url)
            .set_client_id_list(Some(client_ids.to_vec()))
            .set_tags(Some(tags(tags_)))
            .send()
            .await
            .map_err(|e| port_error("iam", "CreateOpenIDConnectProvider", e))?;
        Ok(())
    }

    async fn add_oidc_client_id(&self, provider_arn: &str, client_id: &str) -> PortResult<()> {
        self.client
            .add_client_id_to_open_id_connect_provider()
            .open_id_connect_provider_arn(provider_arn)
            .client_id(client_id)
            .send()
            .await
            .map_err(|e| port_error("iam", "AddClientIDToOpenIDConnectProvider", e))?;
        Ok(())
    }

    async fn account_summary(&self) -> PortResult<AccountSummary> {
        let output = self
            .client
            .get_account_summary()
            .send()
            .await
            .map_err(|e| port_error("iam", "GetAccountSummary", e))?;
        Ok(account_summary(output.summary_map()))
    }

    async fn create_role(&self, role: &NewRole<'_>) -> PortResult<()> {
        self.client
            .create_role()
            .role_name(role.name.as_str())
            .path(role.path)
            .description(role.description)
            .assume_role_policy_document(role.trust_policy.to_json())
            .set_permissions_boundary(role.permissions_boundary.map(ToString::to_string))
            .set_tags(Some(tags(role.tags)))
            .send()
            .await
            .map_err(|e| port_error("iam", "CreateRole", e))?;
        Ok(())
    }

    async fn role_tags(&self, role: &RoleName) -> PortResult<Option<BTreeMap<String, String>>> {
        match self.client.get_role().role_name(role.as_str()).send().await {
            Ok(out) => Ok(Some(
                out.role().map(|r| tag_map(r.tags())).unwrap_or_default(),
            )),
            Err(e) => {
                let error = port_error("iam", "GetRole", e);
                if error.kind == crate::ports::ErrorKind::NotFound {
                    Ok(None)
                } else {
                    Err(error)
                }
            }
        }
    }

    async fn update_trust_policy(
        &self,
        role: &RoleName,
        document: &PolicyDocument,
    ) -> PortResult<()> {
        self.client
            .update_assume_role_policy()
            .role_name(role.as_str())
            .policy_document(document.to_json())
            .send()
            .await
            .map_err(|e| port_error("iam", "UpdateAssumeRolePolicy", e))?;
        Ok(())
    }

    async fn put_permissions_boundary(
        &self,
        role: &RoleName,
        boundary_arn: &PolicyArn,
    ) -> PortResult<()> {
        self.client
            .put_role_permissions_boundary()
            .role_name(role.as_str())
            .permissions_boundary(boundary_arn.as_str())
            .send()
            .await
            .map_err(|e| port_error("iam", "PutRolePermissionsBoundary", e))?;
        Ok(())
    }

    async fn tag_role(&self, role: &RoleName, tags_: &BTreeMap<String, String>) -> PortResult<()> {
        self.client
            .tag_role()
            .role_name(role.as_str())
            .set_tags(Some(tags(tags_)))
            .send()
            .await
            .map_err(|e| port_error("iam", "TagRole", e))?;
        Ok(())
    }

    async fn untag_role(&self, role: &RoleName, keys: &[String]) -> PortResult<()> {
        self.client
            .untag_role()
            .role_name(role.as_str())
            .set_tag_keys(Some(keys.to_vec()))
            .send()
            .await
            .map_err(|e| port_error("iam", "UntagRole", e))?;
        Ok(())
    }

    async fn put_role_policy(
        &self,
        role: &RoleName,
        name: &str,
        document: &PolicyDocument,
    ) -> PortResult<()> {
        self.client
            .put_role_policy()
            .role_name(role.as_str())
            .policy_name(name)
            .policy_document(document.to_json())
            .send()
            .await
            .map_err(|e| port_error("iam", "PutRolePolicy", e))?;
        Ok(())
    }

    async fn delete_role_policy(&self, role: &RoleName, name: &str) -> PortResult<()> {
        self.client
            .delete_role_policy()
            .role_name(role.as_str())
            .policy_name(name)
            .send()
            .await
            .map_err(|e| port_error("iam", "DeleteRolePolicy", e))?;
        Ok(())
    }

    async fn create_policy(
        &self,
        name: &str,
        path: &str,
        document: &PolicyDocument,
        tags_: &BTreeMap<String, String>,
    ) -> PortResult<()> {
        self.client
            .create_policy()
            .policy_name(name)
            .path(path)
            .policy_document(document.to_json())
            .description("eks-intents: part of a workload's permission policy")
            .set_tags(Some(tags(tags_)))
            .send()
            .await
            .map_err(|e| port_error("iam", "CreatePolicy", e))?;
        Ok(())
    }

    async fn set_policy_document(
        &self,
        arn: &PolicyArn,
        document: &PolicyDocument,
    ) -> PortResult<()> {
        // At most five versions may exist: prune the old ones before adding one.
        self.prune_versions(arn).await?;
        self.client
            .create_policy_version()
            .policy_arn(arn.as_str())
            .policy_document(document.to_json())
            .set_as_default(true)
            .send()
            .await
            .map_err(|e| port_error("iam", "CreatePolicyVersion", e))?;
        self.prune_versions(arn).await
    }

    async fn attach_role_policy(&self, role: &RoleName, arn: &PolicyArn) -> PortResult<()> {
        self.client
            .attach_role_policy()
            .role_name(role.as_str())
            .policy_arn(arn.as_str())
            .send()
            .await
            .map_err(|e| port_error("iam", "AttachRolePolicy", e))?;
        Ok(())
    }

    async fn detach_role_policy(&self, role: &RoleName, arn: &PolicyArn) -> PortResult<()> {
        self.client
            .detach_role_policy()
            .role_name(role.as_str())
            .policy_arn(arn.as_str())
            .send()
            .await
            .map_err(|e| port_error("iam", "DetachRolePolicy", e))?;
        Ok(())
    }

    async fn delete_policy(&self, arn: &PolicyArn) -> PortResult<()> {
        self.prune_versions(arn).await?;
        self.client
            .delete_policy()
            .policy_arn(arn.as_str())
            .send()
            .await
            .map_err(|e| port_error("iam", "DeletePolicy", e))?;
        Ok(())
    }

    async fn delete_role(&self, role: &RoleName) -> PortResult<()> {
        self.client
            .delete_role()
            .role_name(role.as_str())
            .send()
            .await
            .map_err(|e| port_error("iam", "DeleteRole", e))?;
        Ok(())
    }
}

impl IamAdapter {
    /// Deletes every version of a managed policy but the default one.
    async fn prune_versions(&self, arn: &PolicyArn) -> PortResult<()> {
        let versions = self
            .client
            .list_policy_versions()
            .policy_arn(arn.as_str())
            .send()
            .await
            .map_err(|e| port_error("iam", "ListPolicyVersions", e))?;
        for version in versions.versions() {
            if version.is_default_version() {
                continue;
            }
            let Some(id) = version.version_id() else {
                continue;
            };
            self.client
                .delete_policy_version()
                .policy_arn(arn.as_str())
                .version_id(id)
                .send()
                .await
                .map_err(|e| port_error("iam", "DeletePolicyVersion", e))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::{IamQuotas, SummaryKeyType, account_summary, policy_name};
    use std::collections::HashMap;

    #[test]
    fn the_summary_gives_the_quotas_it_names_and_the_defaults_for_the_rest() {
        let map = HashMap::from([
            (SummaryKeyType::RolePolicySizeQuota, 20_480),
            (SummaryKeyType::RolesQuota, 5_000),
            (SummaryKeyType::Roles, 812),
            // Not a count: the default stands.
            (SummaryKeyType::AttachedPoliciesPerRoleQuota, -1),
            (SummaryKeyType::PolicySizeQuota, 0),
        ]);
        let summary = account_summary(Some(&map));
        let defaults = IamQuotas::default();
        assert_eq!(summary.roles, 812);
        assert_eq!(
            summary.quotas,
            IamQuotas {
                inline_policy_chars: 20_480,
                roles: 5_000,
                ..defaults.clone()
            }
        );
        assert_eq!(account_summary(None).quotas, defaults);
        assert_eq!(account_summary(None).roles, 0);
    }

    #[test]
    fn a_policy_listed_without_its_name_is_named_by_its_arn() {
        let arn = "arn:aws:iam::123456789012:policy/eks-intents/demo/demo.jokes.worker.part1";
        assert_eq!(
            policy_name(None, arn).as_deref(),
            Some("demo.jokes.worker.part1")
        );
        assert_eq!(
            policy_name(Some(""), arn).as_deref(),
            Some("demo.jokes.worker.part1")
        );
        assert_eq!(
            policy_name(None, "arn:aws:iam::123456789012:policy/top").as_deref(),
            Some("top")
        );
        assert_eq!(policy_name(Some("given"), arn).as_deref(), Some("given"));
        for broken in [
            "",
            "arn:aws:iam::123456789012:role/x",
            "arn:aws:iam::1:policy/a/",
        ] {
            assert_eq!(policy_name(None, broken), None, "{broken}");
        }
    }
}
