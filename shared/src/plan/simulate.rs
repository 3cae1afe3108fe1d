//! The observed state a plan leads to, computed without touching anything: the in-memory model
//! of IAM, EKS and Kubernetes behind `eks-intents plan --write-state`, dry-run reports and the
//! property test that planning again after a plan yields no action.

use super::action::Action;
use crate::model::{
    AssociationId, ObservedAssociation, ObservedManagedPolicy, ObservedRole,
    ObservedServiceAccount, ObservedState, PolicyArn, ROLE_ARN_ANNOTATION, RoleKey, RoleName,
    ServiceAccountRef, strip_scheme,
};
use crate::policy::{self, ORPHANED_TAG};
use std::collections::BTreeMap;

/// Applies `actions` to a copy of `observed`, as IAM, EKS and Kubernetes would. The lists of
/// the result are sorted by name.
pub fn simulate(observed: &ObservedState, actions: &[Action]) -> ObservedState {
    let mut model = Model {
        cluster: observed.cluster.cluster.clone(),
        roles: observed
            .roles
            .iter()
            .map(|r| (r.name.key(), r.clone()))
            .collect(),
        managed: observed
            .managed_policies
            .iter()
            .map(|p| (p.arn.clone(), p.clone()))
            .collect(),
        service_accounts: observed
            .service_accounts
            .iter()
            .map(|sa| (sa.id(), sa.clone()))
            .collect(),
        associations: observed
            .pod_identity_associations
            .iter()
            .map(|a| (a.association_id.clone(), a.clone()))
            .collect(),
        state: ObservedState {
            roles: Vec::new(),
            managed_policies: Vec::new(),
            service_accounts: Vec::new(),
            pod_identity_associations: Vec::new(),
            ..observed.clone()
        },
    };
    for action in actions {
        model.apply(action);
    }
    let mut state = model.state;
    state.roles = model.roles.into_values().collect();
    state.managed_policies = model.managed.into_values().collect();
    state.service_accounts = model.service_accounts.into_values().collect();
    state.pod_identity_associations = model.associations.into_values().collect();
    state
}

/// The observed state with its long lists indexed, so a plan of N actions applies in
/// O(N log N).
struct Model {
    cluster: crate::model::ClusterRef,
    roles: BTreeMap<RoleKey, ObservedRole>,
    managed: BTreeMap<PolicyArn, ObservedManagedPolicy>,
    service_accounts: BTreeMap<ServiceAccountRef, ObservedServiceAccount>,
    associations: BTreeMap<AssociationId, ObservedAssociation>,
    state: ObservedState,
}

impl Model {
    fn role(&mut self, name: &RoleName) -> Option<&mut ObservedRole> {
        self.roles.get_mut(&name.key())
    }

    /// A ServiceAccount that does not exist is created, as server-side apply would.
    fn service_account(&mut self, id: &ServiceAccountRef) -> &mut ObservedServiceAccount {
        self.service_accounts
            .entry(id.clone())
            .or_insert_with(|| ObservedServiceAccount {
                namespace: id.namespace.clone(),
                name: id.name.clone(),
                annotations: BTreeMap::new(),
                annotation_owned: false,
                bound_label: false,
            })
    }

    fn apply(&mut self, action: &Action) {
        match action {
            Action::CreateOidcProvider { .. } | Action::AddOidcClientId { .. } => {
                self.apply_to_provider(action)
            }
            Action::CreateRole { .. }
            | Action::MarkRoleForDeletion { .. }
            | Action::DeleteRole { .. } => self.apply_to_role_itself(action),
            Action::CreateManagedPolicy { .. }
            | Action::UpdateManagedPolicy { .. }
            | Action::DeleteManagedPolicy { .. } => self.apply_to_managed_policy(action),
            Action::AnnotateServiceAccount { .. }
            | Action::RemoveServiceAccountAnnotation { .. }
            | Action::CreatePodIdentityAssociation { .. }
            | Action::UpdatePodIdentityAssociation { .. }
            | Action::DeletePodIdentityAssociation { .. }
            | Action::SetAddonRole { .. }
            | Action::SetAddonAssociations { .. } => self.apply_to_binding(action),
            // Pods are not part of the observed state.
            Action::RestartWorkload { .. } => {}
            Action::InAccount { step, target } => self.apply_in_account(target, step),
            _ => self.apply_to_role(action),
        }
    }

    /// A step in another account: applied to what the state holds of that account, as if the
    /// cluster were there (its OIDC provider's ARN then names that account).
    fn apply_in_account(&mut self, target: &str, step: &Action) {
        let held = self.state.targets.remove(target).unwrap_or_default();
        let mut cluster = self.state.cluster.clone();
        cluster.cluster.account = crate::model::AccountId::new(target);
        let mut there = ObservedState::empty(cluster);
        there.roles = held.roles;
        there.oidc_providers = held.oidc_providers;
        let after = simulate(&there, std::slice::from_ref(step));
        self.state.targets.insert(
            target.to_owned(),
            crate::model::ObservedTarget {
                roles: after.roles,
                oidc_providers: after.oidc_providers,
                error: held.error,
            },
        );
    }

    /// The cluster's OIDC provider.
    fn apply_to_provider(&mut self, action: &Action) {
        let cluster = self.cluster.clone();
        let state = &mut self.state;
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
            _ => {}
        }
    }

    /// A role made, marked for deletion or deleted.
    fn apply_to_role_itself(&mut self, action: &Action) {
        match action {
            Action::CreateRole {
                role,
                path,
                arn,
                trust_policy,
                permissions_boundary,
                tags,
                ..
            } => {
                self.roles.insert(
                    role.key(),
                    ObservedRole {
                        name: role.clone(),
                        arn: arn.clone(),
                        path: path.clone(),
                        trust_policy: trust_policy.clone(),
                        inline_policies: BTreeMap::new(),
                        attached_policies: Default::default(),
                        permissions_boundary: permissions_boundary.clone(),
                        tags: tags.clone(),
                    },
                );
            }
            Action::MarkRoleForDeletion { role, since } => {
                if let Some(r) = self.role(role) {
                    r.tags.insert(ORPHANED_TAG.to_owned(), since.to_string());
                }
            }
            Action::DeleteRole { role } => {
                self.roles.remove(&role.key());
            }
            _ => {}
        }
    }

    /// A role's trust, boundary, tags and policies.
    fn apply_to_role(&mut self, action: &Action) {
        match action {
            Action::UpdateTrustPolicy { role, trust_policy } => {
                if let Some(r) = self.role(role) {
                    r.trust_policy = trust_policy.clone();
                }
            }
            Action::PutPermissionsBoundary {
                role,
                permissions_boundary,
            } => {
                if let Some(r) = self.role(role) {
                    r.permissions_boundary = Some(permissions_boundary.clone());
                }
            }
            Action::TagRole { role, tags } => {
                if let Some(r) = self.role(role) {
                    r.tags.extend(tags.clone());
                }
            }
            Action::UntagRole { role, keys } => {
                if let Some(r) = self.role(role) {
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
                if let Some(r) = self.role(role) {
                    r.inline_policies
                        .insert(policy_name.clone(), document.clone());
                }
            }
            Action::DeleteInlinePolicy { role, policy_name } => {
                if let Some(r) = self.role(role) {
                    r.inline_policies.remove(policy_name);
                }
            }
            Action::AttachManagedPolicy { role, policy_arn } => {
                if let Some(r) = self.role(role) {
                    r.attached_policies.insert(policy_arn.clone());
                }
            }
            Action::DetachManagedPolicy { role, policy_arn } => {
                if let Some(r) = self.role(role) {
                    r.attached_policies.remove(policy_arn);
                }
            }
            _ => {}
        }
    }

    /// A managed policy (a part of a role's permissions).
    fn apply_to_managed_policy(&mut self, action: &Action) {
        match action {
            Action::CreateManagedPolicy {
                name,
                path,
                arn,
                document,
                tags,
                ..
            } => {
                self.managed.insert(
                    arn.clone(),
                    ObservedManagedPolicy {
                        arn: arn.clone(),
                        name: name.clone(),
                        path: path.clone(),
                        document: document.clone(),
                        tags: tags.clone(),
                    },
                );
            }
            Action::UpdateManagedPolicy { arn, document, .. } => {
                if let Some(p) = self.managed.get_mut(arn) {
                    p.document = document.clone();
                }
            }
            Action::DeleteManagedPolicy { arn, .. } => {
                self.managed.remove(arn);
            }
            _ => {}
        }
    }

    /// A Pod Identity association made, changed or deleted. An update without a session
    /// policy leaves the one there (EKS has no call that clears it).
    fn apply_to_association(&mut self, action: &Action) {
        match action {
            Action::CreatePodIdentityAssociation {
                service_account,
                role_arn,
                tags,
                session_policy,
                target_role_arn,
                ..
            } => {
                let association_id = AssociationId::new(format!(
                    "a-{}",
                    policy::short_hash(&service_account.to_string(), 17)
                ));
                self.associations.insert(
                    association_id.clone(),
                    ObservedAssociation {
                        association_id,
                        namespace: service_account.namespace.clone(),
                        service_account: service_account.name.clone(),
                        role_arn: role_arn.clone(),
                        owner_arn: None,
                        tags: tags.clone(),
                        session_policy: session_policy.clone(),
                        session_tags_disabled: session_policy.is_some(),
                        target_role_arn: target_role_arn.clone(),
                    },
                );
            }
            Action::UpdatePodIdentityAssociation {
                association_id,
                role_arn,
                session_policy,
                target_role_arn,
                ..
            } => {
                if let Some(a) = self.associations.get_mut(association_id) {
                    a.role_arn = role_arn.clone();
                    if target_role_arn.is_some() {
                        a.target_role_arn = target_role_arn.clone();
                    }
                    if session_policy.is_some() {
                        a.session_policy = session_policy.clone();
                        a.session_tags_disabled = true;
                    }
                }
            }
            Action::DeletePodIdentityAssociation { association_id, .. } => {
                self.associations.remove(association_id);
            }
            _ => {}
        }
    }

    /// A binding: annotation, association or add-on setting.
    fn apply_to_binding(&mut self, action: &Action) {
        let state = &mut self.state;
        match action {
            Action::AnnotateServiceAccount {
                service_account,
                role_arn,
                ..
            } => {
                let sa = self.service_account(service_account);
                sa.annotations
                    .insert(ROLE_ARN_ANNOTATION.to_owned(), role_arn.to_string());
                sa.annotation_owned = true;
                sa.bound_label = true;
            }
            Action::RemoveServiceAccountAnnotation {
                service_account, ..
            } => {
                let sa = self.service_account(service_account);
                sa.annotations.remove(ROLE_ARN_ANNOTATION);
                sa.annotation_owned = false;
                sa.bound_label = false;
            }
            Action::CreatePodIdentityAssociation { .. }
            | Action::UpdatePodIdentityAssociation { .. }
            | Action::DeletePodIdentityAssociation { .. } => self.apply_to_association(action),
            Action::SetAddonRole {
                addon, role_arn, ..
            } => {
                if let Some(a) = state.addons.iter_mut().find(|a| a.name == *addon) {
                    a.service_account_role_arn = role_arn.clone();
                }
            }
            Action::SetAddonAssociations {
                addon,
                associations,
                ..
            } => {
                if let Some(a) = state.addons.iter_mut().find(|a| a.name == *addon) {
                    a.pod_identity_associations = associations
                        .iter()
                        .map(|(sa, arn)| (sa.as_str().into(), arn.clone()))
                        .collect();
                }
            }
            _ => {}
        }
    }
}
