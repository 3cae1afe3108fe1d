//! The observed state a plan leads to, computed without touching anything: the in-memory model
//! of IAM, EKS and Kubernetes behind `eks-intents plan --write-state`, dry-run reports and the
//! property test that planning again after a plan yields no action.

use super::action::Action;
use crate::model::{
    ObservedAssociation, ObservedManagedPolicy, ObservedRole, ObservedServiceAccount,
    ObservedState, ROLE_ARN_ANNOTATION, RoleName, strip_scheme,
};
use crate::policy::{self, ORPHANED_TAG};
use std::collections::BTreeMap;

/// Applies `actions` to a copy of `observed`, as IAM, EKS and Kubernetes would.
pub fn simulate(observed: &ObservedState, actions: &[Action]) -> ObservedState {
    let mut state = observed.clone();
    for action in actions {
        apply(&mut state, action);
    }
    state
}

fn role_mut<'a>(state: &'a mut ObservedState, name: &RoleName) -> Option<&'a mut ObservedRole> {
    state
        .roles
        .iter_mut()
        .find(|r| r.name.as_str().eq_ignore_ascii_case(name.as_str()))
}

fn service_account_mut<'a>(
    state: &'a mut ObservedState,
    id: &crate::model::ServiceAccountRef,
) -> &'a mut ObservedServiceAccount {
    let index = match state.service_accounts.iter().position(|sa| sa.id() == *id) {
        Some(index) => index,
        None => {
            state.service_accounts.push(ObservedServiceAccount {
                namespace: id.namespace.clone(),
                name: id.name.clone(),
                annotations: BTreeMap::new(),
                annotation_owned: false,
            });
            state.service_accounts.len() - 1
        }
    };
    &mut state.service_accounts[index]
}

fn apply(state: &mut ObservedState, action: &Action) {
    let cluster = state.cluster.cluster.clone();
    match action {
        Action::CreateOidcProvider {
            url, client_ids, ..
        } => {
            let host_path = strip_scheme(url).to_owned();
            state.oidc_providers.push(crate::model::OidcProvider {
                arn: policy::oidc_provider_arn(&cluster, &host_path),
                url: host_path,
                client_ids: client_ids.iter().cloned().collect(),
            });
        }
        Action::AddOidcClientId {
            provider_arn,
            client_id,
        } => {
            if let Some(provider) = state
                .oidc_providers
                .iter_mut()
                .find(|p| p.arn == *provider_arn)
            {
                provider.client_ids.insert(client_id.clone());
            }
        }
        Action::CreateRole {
            role,
            path,
            arn,
            trust_policy,
            permissions_boundary,
            tags,
            ..
        } => state.roles.push(ObservedRole {
            name: role.clone(),
            arn: arn.clone(),
            path: path.clone(),
            trust_policy: trust_policy.clone(),
            inline_policies: BTreeMap::new(),
            attached_policies: Default::default(),
            permissions_boundary: permissions_boundary.clone(),
            tags: tags.clone(),
        }),
        Action::UpdateTrustPolicy { role, trust_policy } => {
            if let Some(r) = role_mut(state, role) {
                r.trust_policy = trust_policy.clone();
            }
        }
        Action::PutPermissionsBoundary {
            role,
            permissions_boundary,
        } => {
            if let Some(r) = role_mut(state, role) {
                r.permissions_boundary = Some(permissions_boundary.clone());
            }
        }
        Action::TagRole { role, tags } => {
            if let Some(r) = role_mut(state, role) {
                r.tags.extend(tags.clone());
            }
        }
        Action::UntagRole { role, keys } => {
            if let Some(r) = role_mut(state, role) {
                for key in keys {
                    r.tags.remove(key);
                }
            }
        }
        Action::PutInlinePolicy {
            role,
            policy_name,
            document,
        } => {
            if let Some(r) = role_mut(state, role) {
                r.inline_policies
                    .insert(policy_name.clone(), document.clone());
            }
        }
        Action::DeleteInlinePolicy { role, policy_name } => {
            if let Some(r) = role_mut(state, role) {
                r.inline_policies.remove(policy_name);
            }
        }
        Action::CreateManagedPolicy {
            name,
            path,
            arn,
            document,
            tags,
            ..
        } => state.managed_policies.push(ObservedManagedPolicy {
            arn: arn.clone(),
            name: name.clone(),
            path: path.clone(),
            document: document.clone(),
            tags: tags.clone(),
        }),
        Action::UpdateManagedPolicy { arn, document, .. } => {
            if let Some(p) = state.managed_policies.iter_mut().find(|p| p.arn == *arn) {
                p.document = document.clone();
            }
        }
        Action::AttachManagedPolicy { role, policy_arn } => {
            if let Some(r) = role_mut(state, role) {
                r.attached_policies.insert(policy_arn.clone());
            }
        }
        Action::DetachManagedPolicy { role, policy_arn } => {
            if let Some(r) = role_mut(state, role) {
                r.attached_policies.remove(policy_arn);
            }
        }
        Action::DeleteManagedPolicy { arn, .. } => {
            state.managed_policies.retain(|p| p.arn != *arn);
        }
        Action::AnnotateServiceAccount {
            service_account,
            role_arn,
            ..
        } => {
            let sa = service_account_mut(state, service_account);
            sa.annotations
                .insert(ROLE_ARN_ANNOTATION.to_owned(), role_arn.clone());
            sa.annotation_owned = true;
        }
        Action::RemoveServiceAccountAnnotation {
            service_account, ..
        } => {
            let sa = service_account_mut(state, service_account);
            sa.annotations.remove(ROLE_ARN_ANNOTATION);
            sa.annotation_owned = false;
        }
        Action::CreatePodIdentityAssociation {
            service_account,
            role_arn,
            tags,
            ..
        } => state.pod_identity_associations.push(ObservedAssociation {
            association_id: format!("a-{}", policy::short_hash(&service_account.to_string(), 17)),
            namespace: service_account.namespace.clone(),
            service_account: service_account.name.clone(),
            role_arn: role_arn.clone(),
            owner_arn: None,
            tags: tags.clone(),
        }),
        Action::UpdatePodIdentityAssociation {
            association_id,
            role_arn,
            ..
        } => {
            if let Some(a) = state
                .pod_identity_associations
                .iter_mut()
                .find(|a| a.association_id == *association_id)
            {
                a.role_arn = role_arn.clone();
            }
        }
        Action::DeletePodIdentityAssociation { association_id, .. } => {
            state
                .pod_identity_associations
                .retain(|a| a.association_id != *association_id);
        }
        Action::SetAddonRole {
            addon,
            service_account,
            pod_identity,
            role_arn,
            ..
        } => {
            if let Some(a) = state.addons.iter_mut().find(|a| a.name == *addon) {
                if *pod_identity {
                    match role_arn {
                        Some(arn) => {
                            a.pod_identity_associations
                                .insert(service_account.name.clone(), arn.clone());
                        }
                        None => {
                            a.pod_identity_associations.remove(&service_account.name);
                        }
                    }
                } else {
                    a.service_account_role_arn = role_arn.clone();
                }
            }
        }
        Action::MarkRoleForDeletion { role, since } => {
            if let Some(r) = role_mut(state, role) {
                r.tags.insert(ORPHANED_TAG.to_owned(), since.to_string());
            }
        }
        Action::DeleteRole { role } => {
            state
                .roles
                .retain(|r| !r.name.as_str().eq_ignore_ascii_case(role.as_str()));
        }
    }
}
