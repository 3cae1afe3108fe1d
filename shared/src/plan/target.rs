//! Step 3a, targets (within permissions): which of a role's grants name resources of another
//! account, and the target role they go to there. It decides whether a role may have a target
//! role at all (one other account, where the deployment has a role; no add-on binding; with Pod
//! Identity, nothing left in the cluster's account, since the pods get the target role's
//! credentials alone), the target role's name, ARN, trust, boundary, grants and tags, the
//! changes that bring it there, and the deletion of target roles no longer wanted.
//!
//! The target role has the name and path of the workload's role, in the other account. With Pod
//! Identity it trusts only the workload's role, with the external id EKS sets
//! (`policy::pod_identity_target_trust`), and the workload's role may assume it; with IRSA it
//! trusts the cluster's OIDC provider in that account for the same ServiceAccounts. Its grants
//! are one inline policy.

use super::orphans::emptying;
use super::problem::Refusal;
use super::roles::RoleItself;
use super::{Action, Binding, Planner, RoleIdentity, RoleIntent};
use crate::model::{BindingMode, ObservedRole, Permission, PolicyArn, RoleArn, ServiceAccountRef};
use crate::policy::{
    self, INLINE_POLICY_NAME, IRSA_AUDIENCE, Ownership, PermissionLayout, PolicyDocument,
    TARGET_ACCOUNT_TAG,
};
use std::collections::{BTreeMap, BTreeSet};

/// A role's target role in another account, as it is to be.
pub(super) struct TargetRole<'a> {
    pub(super) account: &'a str,
    pub(super) arn: RoleArn,
    observed: Option<&'a ObservedRole>,
    trust: PolicyDocument,
    pub(super) layout: PermissionLayout,
    boundary: Option<PolicyArn>,
    /// With the digest of what is declared for it (`DECLARED_TAG`).
    tags: BTreeMap<String, String>,
}

impl TargetRole<'_> {
    /// The value of the target role's `DECLARED_TAG`, which the workload's role's digest covers.
    pub(super) fn declared(&self) -> &str {
        self.tags
            .get(policy::DECLARED_TAG)
            .map(String::as_str)
            .unwrap_or_default()
    }
}

impl<'a> Planner<'a> {
    /// Splits the role's permissions into those of the cluster's account and the target role,
    /// or says why the role cannot have the target role its intents need.
    pub(super) fn split_target(
        &self,
        identity: &RoleIdentity<'a>,
        intent: &RoleIntent,
        permissions: BTreeSet<Permission>,
    ) -> Result<(BTreeSet<Permission>, Option<TargetRole<'a>>), Refusal> {
        let home_account = self.cluster.account.as_str();
        let (mut home, mut foreign, mut accounts) =
            (BTreeSet::new(), BTreeSet::new(), BTreeSet::new());
        for permission in permissions {
            match policy::resource_account(&permission.resource, &self.settings.bucket_accounts) {
                Some(account) if account != home_account => {
                    accounts.insert(account.to_owned());
                    foreign.insert(permission);
                }
                _ => {
                    home.insert(permission);
                }
            }
        }
        let Some(account) = accounts.first() else {
            return Ok((home, None));
        };
        if accounts.len() > 1 {
            return Err(Refusal::ManyTargetAccounts { accounts });
        }
        let Some(account) = self.settings.target_accounts.get(account) else {
            return Err(Refusal::TargetAccountUnknown {
                account: account.clone(),
            });
        };
        if let Binding::Addon { addon } = &identity.binding {
            return Err(Refusal::TargetOfAddon {
                addon: addon.clone(),
                account: account.clone(),
            });
        }
        if self.settings.mode == BindingMode::PodIdentity && !home.is_empty() {
            return Err(Refusal::TargetBesideHomeGrants {
                account: account.clone(),
            });
        }
        if let Some(error) = self
            .observed
            .targets
            .get(account)
            .and_then(|t| t.error.as_ref())
        {
            return Err(Refusal::TargetAccountUnreadable {
                account: account.clone(),
                error: error.clone(),
            });
        }
        let target = self
            .target_role(identity, intent, account, &foreign)
            .map_err(|refusal| Refusal::InTargetAccount {
                account: account.clone(),
                refusal: Box::new(refusal),
            })?;
        Ok((home, Some(target)))
    }

    /// The target role in `account` holding `permissions`.
    fn target_role(
        &self,
        identity: &RoleIdentity<'a>,
        intent: &RoleIntent,
        account: &'a str,
        permissions: &BTreeSet<Permission>,
    ) -> Result<TargetRole<'a>, Refusal> {
        let observed = self
            .targets
            .get(account)
            .and_then(|roles| roles.get(&identity.role.key()))
            .copied();
        if let Some(role) = observed
            && let Some(refusal) = self.ownership_refusal(role)
        {
            return Err(refusal);
        }
        let arn = observed.map(|r| r.arn.clone()).unwrap_or_else(|| {
            RoleArn::new(format!(
                "arn:{}:iam::{account}:role{}{}",
                self.cluster.partition(),
                self.path,
                identity.role
            ))
        });
        let trust = self.target_trust(identity, intent, account)?;
        if trust.iam_size() > self.settings.quotas.trust_policy_chars {
            return Err(Refusal::TrustTooLarge {
                size: trust.iam_size(),
                quota: self.settings.quotas.trust_policy_chars,
            });
        }
        let statements = self.target_statements(account, permissions)?;
        let layout = match policy::layout_permissions(&statements, &self.settings.quotas) {
            Ok(layout @ (PermissionLayout::Inline(_) | PermissionLayout::Empty)) => layout,
            Ok(PermissionLayout::Managed(_)) | Err(_) => {
                return Err(Refusal::TargetPolicyTooLarge {
                    size: policy::PolicyDocument::allowing(&statements).iam_size(),
                    quota: self.settings.quotas.inline_policy_chars,
                });
            }
        };
        let boundary = self
            .settings
            .permissions_boundary
            .as_ref()
            .and_then(|b| policy::in_account(b.as_str(), account))
            .map(PolicyArn::new);
        let mut tags = self.base_tags(identity, intent);
        let declared = super::permissions::declared_digest(
            &trust,
            &layout,
            &[],
            boundary.as_ref().map(PolicyArn::as_str),
            &tags,
            None,
        );
        tags.insert(policy::DECLARED_TAG.to_owned(), declared);
        Ok(TargetRole {
            account,
            arn,
            observed,
            trust,
            layout,
            boundary,
            tags,
        })
    }

    /// The target role's statements: the grants, with the system's own resources there (the
    /// roles under its path, its boundary) protected as at home: named, refused; reached by a
    /// wildcard, denied.
    fn target_statements(
        &self,
        account: &str,
        permissions: &BTreeSet<Permission>,
    ) -> Result<Vec<policy::Statement>, Refusal> {
        let system = policy::system_resources(self.settings, self.cluster.partition(), account);
        let named: Vec<(Permission, String)> = permissions
            .iter()
            .filter_map(|p| {
                let within = policy::names_system_resource(&p.resource, &system)?;
                Some((p.clone(), within.to_owned()))
            })
            .collect();
        if !named.is_empty() {
            return Err(Refusal::SystemResources { named });
        }
        let mut statements = policy::permission_statements(permissions.iter().cloned());
        statements.extend(policy::system_denial(permissions, &system).map(|(deny, _)| deny));
        Ok(statements)
    }

    /// Pod Identity: the workload's role, with EKS's external id. IRSA: the cluster's OIDC
    /// provider in the target account, for the role's ServiceAccounts.
    fn target_trust(
        &self,
        identity: &RoleIdentity,
        intent: &RoleIntent,
        account: &str,
    ) -> Result<PolicyDocument, Refusal> {
        match self.settings.mode {
            BindingMode::PodIdentity => Ok(policy::pod_identity_target_trust(
                &identity.arn,
                self.cluster,
                identity.service_account,
            )),
            BindingMode::Irsa => {
                let Some(issuer) = self.observed.cluster.oidc_host_path() else {
                    return Err(Refusal::NoOidcIssuer {
                        cluster: self.cluster.name.clone(),
                    });
                };
                let trusted: Vec<&ServiceAccountRef> = std::iter::once(identity.service_account)
                    .chain(&intent.shared_with)
                    .collect();
                Ok(policy::irsa_trust_for(
                    &target_provider_arn(self.cluster.partition(), account, issuer),
                    issuer,
                    &trusted,
                ))
            }
        }
    }

    /// The changes that bring the target role to what it is to be, each made in its account.
    pub(super) fn target_changes(
        &self,
        identity: &RoleIdentity,
        target: &TargetRole,
    ) -> Vec<Action> {
        let role = &identity.role;
        let description = format!(
            "eks-intents: AWS access in account {} of ServiceAccount {} in EKS cluster {}",
            target.account, identity.service_account, self.cluster.name
        );
        let it = RoleItself {
            role,
            arn: &target.arn,
            observed: target.observed,
            boundary: target.boundary.as_ref(),
            description,
        };
        let mut actions = self.role_itself(it, target.trust.clone(), target.tags.clone());
        actions.extend(inline_changes(target.observed, role, &target.layout));
        actions
            .into_iter()
            .map(|step| Action::in_account(target.account, step))
            .collect()
    }

    /// The accounts the role's `TARGET_ACCOUNT_TAG` is to name once this run is done: its
    /// target's, and those the tag names that this run could not read (a target role may still
    /// be there; it is looked for again once the account can be read).
    pub(super) fn target_accounts_tag(
        &self,
        identity: &RoleIdentity,
        target: Option<&TargetRole>,
    ) -> Option<String> {
        let mut accounts: BTreeSet<&str> = self.unread_target_accounts(identity.observed).collect();
        accounts.extend(target.map(|t| t.account));
        joined(accounts)
    }

    /// The accounts `role`'s `TARGET_ACCOUNT_TAG` names that this run did not read cleanly (no
    /// role of the deployment there, or its read failed).
    pub(super) fn unread_target_accounts<'s>(
        &'s self,
        role: Option<&'s ObservedRole>,
    ) -> impl Iterator<Item = &'s str> + 's {
        named_accounts(role).filter(|account| {
            self.observed
                .targets
                .get(*account)
                .is_none_or(|t| t.error.is_some())
        })
    }

    /// The target roles no longer wanted, deleted after the role's binding stopped naming them;
    /// then the role's `TARGET_ACCOUNT_TAG` set to its final value, only once they are gone (if
    /// a deletion fails, the tag still names the account and the next run finds the role).
    /// Until then `tags` keeps the accounts of the roles being deleted. The actions run after
    /// the binding's.
    pub(super) fn target_cleanup(
        &self,
        identity: &RoleIdentity,
        target: Option<&TargetRole>,
        tags: &mut BTreeMap<String, String>,
    ) -> Vec<Action> {
        let stale: Vec<(&str, &ObservedRole)> = self.stale_targets(identity, target).collect();
        if stale.is_empty() {
            return Vec::new();
        }
        let last = tags.get(TARGET_ACCOUNT_TAG).cloned();
        let mut meanwhile: BTreeSet<&str> = last
            .as_deref()
            .map(|value| value.split(' ').collect())
            .unwrap_or_default();
        meanwhile.extend(stale.iter().map(|(account, _)| *account));
        if let Some(value) = joined(meanwhile) {
            tags.insert(TARGET_ACCOUNT_TAG.to_owned(), value);
        }
        let mut actions: Vec<Action> = stale
            .into_iter()
            .flat_map(|(account, role)| target_deletion(account, role))
            .collect();
        let role = identity.role.clone();
        actions.push(match last {
            Some(value) => Action::TagRole {
                role,
                tags: BTreeMap::from([(TARGET_ACCOUNT_TAG.to_owned(), value)]),
            },
            None => Action::UntagRole {
                role,
                keys: vec![TARGET_ACCOUNT_TAG.to_owned()],
            },
        });
        actions
    }

    /// Target roles of this role that exist in accounts other than its target's.
    fn stale_targets<'s>(
        &'s self,
        identity: &'s RoleIdentity,
        target: Option<&'s TargetRole>,
    ) -> impl Iterator<Item = (&'a str, &'a ObservedRole)> + 's {
        self.target_roles_of(identity.observed)
            .filter(move |(account, _)| target.is_none_or(|t| t.account != *account))
    }

    /// The target roles of `role` that exist and are this cluster's, by the accounts its
    /// `TARGET_ACCOUNT_TAG` names.
    pub(super) fn target_roles_of<'s>(
        &'s self,
        role: Option<&'s ObservedRole>,
    ) -> impl Iterator<Item = (&'a str, &'a ObservedRole)> + 's {
        named_accounts(role).filter_map(move |account| {
            let (&account, roles) = self.targets.get_key_value(account)?;
            let found = *roles.get(&role?.name.key())?;
            (policy::ownership(&found.tags, self.cluster) == Ownership::Ours)
                .then_some((account, found))
        })
    }
}

/// The accounts `role`'s `TARGET_ACCOUNT_TAG` names.
fn named_accounts(role: Option<&ObservedRole>) -> impl Iterator<Item = &str> {
    role.and_then(|r| r.tags.get(TARGET_ACCOUNT_TAG))
        .into_iter()
        .flat_map(|value| value.split(' '))
        .filter(|account| !account.is_empty())
}

/// The value of `TARGET_ACCOUNT_TAG` naming `accounts`; none for no account.
fn joined(accounts: BTreeSet<&str>) -> Option<String> {
    (!accounts.is_empty()).then(|| accounts.into_iter().collect::<Vec<_>>().join(" "))
}

/// The ARN of the cluster's OIDC provider as registered in `account`.
pub(super) fn target_provider_arn(partition: &str, account: &str, issuer: &str) -> String {
    format!("arn:{partition}:iam::{account}:oidc-provider/{issuer}")
}

/// The target role's one inline policy as laid out; any other inline or attached policy goes.
fn inline_changes(
    observed: Option<&ObservedRole>,
    role: &crate::model::RoleName,
    layout: &PermissionLayout,
) -> Vec<Action> {
    let wanted = match layout {
        PermissionLayout::Inline(document) => Some(document),
        _ => None,
    };
    let current = observed.and_then(|r| r.inline_policies.get(INLINE_POLICY_NAME));
    let mut actions = Vec::new();
    if let Some(document) = wanted
        && !current.is_some_and(|c| c.same_meaning(document))
    {
        actions.push(Action::PutInlinePolicy {
            role: role.clone(),
            policy_name: INLINE_POLICY_NAME.to_owned(),
            document: document.clone(),
        });
    }
    let keep = wanted.map(|_| INLINE_POLICY_NAME);
    actions.extend(observed.into_iter().flat_map(|r| emptying(r, keep)));
    actions
}

/// Empties and deletes a target role, in its account.
pub(super) fn target_deletion(account: &str, role: &ObservedRole) -> Vec<Action> {
    let mut actions = inline_changes(Some(role), &role.name, &PermissionLayout::Empty);
    actions.push(Action::DeleteRole {
        role: role.name.clone(),
    });
    actions
        .into_iter()
        .map(|step| Action::in_account(account, step))
        .collect()
}

/// IRSA: the cluster's OIDC provider in each account that holds a target role this run plans,
/// made or given its audience.
pub(super) fn target_provider_changes(planner: &Planner, accounts: &BTreeSet<&str>) -> Vec<Action> {
    let Some(issuer) = planner.observed.cluster.oidc_host_path() else {
        return Vec::new();
    };
    let mut actions = Vec::new();
    for &account in accounts {
        let arn = target_provider_arn(planner.cluster.partition(), account, issuer);
        let existing = planner.observed.targets.get(account).and_then(|t| {
            t.oidc_providers
                .iter()
                .find(|p| p.arn == arn || p.url == issuer)
        });
        let step = match existing {
            None => Action::CreateOidcProvider {
                url: format!("https://{issuer}"),
                client_ids: vec![IRSA_AUDIENCE.to_owned()],
                tags: policy::ownership_tags(planner.cluster),
            },
            Some(provider) if !provider.client_ids.contains(IRSA_AUDIENCE) => {
                Action::AddOidcClientId {
                    provider_arn: provider.arn.clone(),
                    client_id: IRSA_AUDIENCE.to_owned(),
                }
            }
            Some(_) => continue,
        };
        actions.push(Action::in_account(account, step));
    }
    actions
}
