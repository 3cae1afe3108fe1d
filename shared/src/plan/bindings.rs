//! Step 4, bindings: how each role reaches its workloads. It decides, per ServiceAccount,
//! whether the role is bound by annotation (IRSA), by a Pod Identity association, or through
//! the EKS add-on that owns the ServiceAccount; which bindings of the other mode are removed;
//! when a binding waits for its ServiceAccount or is refused because someone else's binding is
//! in the way (reported, never forced); which pods are restarted to pick the new credentials
//! up; and, because an add-on has one role setting or one association map, how the
//! ServiceAccounts of one add-on share a role (IRSA) and how their changes become one action.

use super::problem::{Problem, Refusal};
use super::session::session_as_declared;
use super::{Action, Binding, Planner, RoleIdentity, RoleIntent, Warning};
use crate::model::{
    AddonName, BindingMode, ObservedAddon, ObservedAssociation, ObservedServiceAccount, RoleArn,
    RoleName, ServiceAccountRef, Takeover, WorkloadKind,
};
use crate::plan::report::Restart;
use crate::policy::{self, OWNER_TAG, PolicyDocument};
use std::collections::{BTreeMap, BTreeSet};

/// What a role's Pod Identity association is to be.
struct Wanted<'w> {
    arn: &'w RoleArn,
    session: Option<&'w PolicyDocument>,
    target: Option<&'w RoleArn>,
}

impl Wanted<'_> {
    /// The association is already this.
    fn is(&self, current: &ObservedAssociation) -> bool {
        current.role_arn == *self.arn
            && current.target_role_arn.as_ref() == self.target
            && session_as_declared(current, self.session)
    }

    /// The association has a session policy or a target role that is to go.
    fn clears(&self, current: &ObservedAssociation) -> bool {
        (self.session.is_none() && current.session_policy.is_some())
            || (self.session.is_none() && current.session_tags_disabled)
            || (self.target.is_none() && current.target_role_arn.is_some())
    }
}

/// A role's binding changes, and a reason to wait when its ServiceAccount is not there yet.
pub(super) type BindingChanges = (Vec<Action>, Option<Problem>);

impl<'a> Planner<'a> {
    /// The binding's changes, and a reason to wait when the ServiceAccount is not there yet.
    /// An error when someone else's binding is in the way: it is reported, never forced.
    pub(super) fn do_plan_binding(
        &self,
        identity: &RoleIdentity,
        session: Option<&PolicyDocument>,
        target: Option<&RoleArn>,
    ) -> Result<BindingChanges, Refusal> {
        let RoleIdentity {
            service_account,
            role,
            arn,
            binding,
            ..
        } = identity;
        let mut actions = self.other_mode_unbinding(role, service_account, binding);
        let waiting = match binding {
            Binding::ServiceAccountAnnotation => {
                self.annotation_changes(role, arn, service_account, &mut actions)?
            }
            Binding::PodIdentityAssociation => {
                let wanted = Wanted {
                    arn,
                    session,
                    target,
                };
                self.association_changes(role, service_account, &wanted, &mut actions)?;
                None
            }
            Binding::Addon { addon: name } => {
                if let Some(addon) = identity.addon {
                    actions.extend(self.addon_changes(role, arn, service_account, name, addon)?);
                }
                None
            }
        };
        Ok((actions, waiting))
    }

    /// Bindings of the other mode that this system made are removed: they no longer work
    /// with the role's trust policy.
    fn other_mode_unbinding(
        &self,
        role: &RoleName,
        service_account: &ServiceAccountRef,
        binding: &Binding,
    ) -> Vec<Action> {
        let mut actions = Vec::new();
        if !matches!(binding, Binding::ServiceAccountAnnotation)
            && let Some(sa) = self.observed_service_account(service_account)
            && sa.annotation_owned
            && sa.role_annotation().is_some()
        {
            actions.push(Action::RemoveServiceAccountAnnotation {
                role: role.clone(),
                service_account: service_account.clone(),
            });
        }
        if !matches!(binding, Binding::PodIdentityAssociation) {
            for association in self.associations_of(service_account) {
                if ours(association) {
                    actions.push(Action::DeletePodIdentityAssociation {
                        role: role.clone(),
                        association_id: association.association_id.clone(),
                        service_account: service_account.clone(),
                    });
                }
            }
        }
        actions
    }

    fn associations_of(&self, service_account: &ServiceAccountRef) -> &[&'a ObservedAssociation] {
        self.associations
            .get(service_account)
            .map(Vec::as_slice)
            .unwrap_or_default()
    }

    /// IRSA: the ServiceAccount's role annotation, or a reason to wait for the ServiceAccount.
    fn annotation_changes(
        &self,
        role: &RoleName,
        arn: &RoleArn,
        service_account: &ServiceAccountRef,
        actions: &mut Vec<Action>,
    ) -> Result<Option<Problem>, Refusal> {
        let annotate = |sa: Option<&ObservedServiceAccount>, current: Option<&str>| {
            Action::AnnotateServiceAccount {
                role: role.clone(),
                service_account: service_account.clone(),
                role_arn: arn.clone(),
                force: if current.is_some() && sa.is_some_and(|sa| !sa.annotation_owned) {
                    Takeover::Force
                } else {
                    Takeover::Never
                },
            }
        };
        let Some(sa) = self.observed_service_account(service_account) else {
            if self.workloads.is_some() {
                return Ok(Some(Problem::ServiceAccountMissing {
                    service_account: service_account.clone(),
                }));
            }
            actions.push(annotate(None, None));
            return Ok(None);
        };
        match sa.role_annotation() {
            Some(current) if arn == current => {}
            Some(current) if !sa.annotation_owned && !self.settings.force_annotations => {
                return Err(Refusal::AnnotatedByOther {
                    service_account: service_account.clone(),
                    current: current.to_owned(),
                });
            }
            current => actions.push(annotate(Some(sa), current)),
        }
        Ok(None)
    }

    /// Pod Identity: the ServiceAccount's association, made or pointed at the role, with its
    /// session policy (see `session`) and target role (see `target`).
    fn association_changes(
        &self,
        role: &RoleName,
        service_account: &ServiceAccountRef,
        wanted: &Wanted,
        actions: &mut Vec<Action>,
    ) -> Result<(), Refusal> {
        let associations = self.associations_of(service_account);
        if let Some(owned) = associations.iter().find(|a| a.owner_arn.is_some()) {
            return Err(Refusal::AssociationOwned {
                service_account: service_account.clone(),
                owner: owned.owner_arn.clone().unwrap_or_default(),
            });
        }
        let arn = wanted.arn;
        let create = || Action::CreatePodIdentityAssociation {
            role: role.clone(),
            service_account: service_account.clone(),
            role_arn: arn.clone(),
            tags: policy::ownership_tags(self.cluster),
            session_policy: wanted.session.cloned(),
            target_role_arn: wanted.target.cloned(),
        };
        match associations.first() {
            None => actions.push(create()),
            Some(current) if wanted.is(current) => {}
            // A session policy or a target role to take away: EKS has no call that clears
            // either, so the association is made again without it.
            Some(current)
                if ours(current) && current.role_arn == *arn && wanted.clears(current) =>
            {
                actions.push(Action::DeletePodIdentityAssociation {
                    role: role.clone(),
                    association_id: current.association_id.clone(),
                    service_account: service_account.clone(),
                });
                actions.push(create());
            }
            Some(current) if ours(current) => actions.push(Action::UpdatePodIdentityAssociation {
                role: role.clone(),
                association_id: current.association_id.clone(),
                service_account: service_account.clone(),
                role_arn: arn.clone(),
                session_policy: wanted.session.cloned(),
                target_role_arn: wanted.target.cloned(),
            }),
            // Another's association to this role: left as it is, as before session policies.
            Some(current) if current.role_arn == *arn => {}
            Some(current) => {
                return Err(Refusal::ForeignAssociation {
                    service_account: service_account.clone(),
                    association_id: current.association_id.clone(),
                    role_arn: current.role_arn.clone(),
                });
            }
        }
        Ok(())
    }

    /// An add-on's ServiceAccount: the add-on's role (IRSA) or its association map (Pod
    /// Identity) set to the role, unless a role this system does not manage is there.
    fn addon_changes(
        &self,
        role: &RoleName,
        arn: &RoleArn,
        service_account: &ServiceAccountRef,
        name: &AddonName,
        addon: &ObservedAddon,
    ) -> Result<Option<Action>, Refusal> {
        let pod_identity = self.settings.mode == BindingMode::PodIdentity;
        let current = if pod_identity {
            addon.pod_identity_associations.get(&service_account.name)
        } else {
            addon.service_account_role_arn.as_ref()
        };
        match current {
            Some(current) if current == arn => Ok(None),
            Some(current) if !self.is_our_role_arn(current) => Err(Refusal::AddonRoleOfOther {
                addon: name.clone(),
                current: current.clone(),
            }),
            _ if pod_identity => {
                let mut associations = addon_associations(addon);
                associations.insert(service_account.name.to_string(), arn.clone());
                Ok(Some(Action::SetAddonAssociations {
                    role: role.clone(),
                    addon: name.clone(),
                    associations,
                }))
            }
            _ => Ok(Some(Action::SetAddonRole {
                role: role.clone(),
                addon: name.clone(),
                service_account: service_account.clone(),
                role_arn: Some(arn.clone()),
            })),
        }
    }

    /// Pods get a binding's credentials only when they start: when `actions` bind anew, each
    /// workload's pods are rolled (added to `actions`) where settings and kind allow, or
    /// reported as needing a restart. One restart per workload of `intent`, in its order.
    pub(super) fn plan_restarts(
        &self,
        role: &RoleName,
        intent: &RoleIntent,
        actions: &mut Vec<Action>,
    ) -> Vec<Restart> {
        let rebinds = actions.iter().any(|a| {
            matches!(
                a,
                Action::AnnotateServiceAccount { .. }
                    | Action::CreatePodIdentityAssociation { .. }
                    | Action::UpdatePodIdentityAssociation { .. }
            )
        });
        let mut restarts = Vec::with_capacity(intent.workloads.len());
        for workload in &intent.workloads {
            let restart = match workload.observed_kind {
                Some(kind) if rebinds => {
                    let rollable = matches!(
                        kind,
                        WorkloadKind::Deployment
                            | WorkloadKind::StatefulSet
                            | WorkloadKind::DaemonSet
                    );
                    if rollable && self.settings.rollout_restart {
                        actions.push(Action::RestartWorkload {
                            role: role.clone(),
                            namespace: workload.workload.namespace.clone(),
                            kind,
                            name: workload.workload.name.clone(),
                            restarted_at: self.observed.now,
                        });
                        Restart::Planned
                    } else {
                        Restart::Needed
                    }
                }
                _ => Restart::NotNeeded,
            };
            restarts.push(restart);
        }
        restarts
    }

    /// IRSA gives an add-on one role setting, so the ServiceAccounts of one add-on that have
    /// intents share one role: the first one's (by namespace and name), whose trust names each
    /// of them and whose permissions are the union of theirs.
    pub(super) fn share_addon_roles(
        &self,
        intents: &mut BTreeMap<ServiceAccountRef, RoleIntent<'a>>,
        warnings: &mut Vec<Warning>,
    ) {
        let mut by_addon: BTreeMap<&AddonName, Vec<ServiceAccountRef>> = BTreeMap::new();
        for service_account in intents.keys() {
            if let Some(addon) = self.addons.get(service_account) {
                by_addon
                    .entry(&addon.name)
                    .or_default()
                    .push(service_account.clone());
            }
        }
        for (addon, service_accounts) in by_addon {
            let [first, rest @ ..] = service_accounts.as_slice() else {
                continue;
            };
            if rest.is_empty() {
                continue;
            }
            for other in rest {
                let Some(moved) = intents.remove(other) else {
                    continue;
                };
                if let Some(shared) = intents.get_mut(first) {
                    shared.workloads.extend(moved.workloads);
                    shared.shared_with.push(other.clone());
                    shared.recommended.extend(moved.recommended);
                    shared.recommended.sort();
                    shared.recommended.dedup();
                }
            }
            warnings.push(Warning::AddonSharesRole {
                addon: addon.clone(),
                service_accounts,
            });
        }
    }

    /// One change per add-on. Roles are planned one by one, but an add-on has one setting (IRSA)
    /// or one association map that EKS replaces whole (Pod Identity): the changes planned for
    /// one add-on are merged into one fully specified action, placed before any role it
    /// unbinds is deleted and after every role it binds is made.
    pub(super) fn one_action_per_addon(&self, actions: &mut Vec<Action>) {
        let addons: BTreeSet<AddonName> = actions
            .iter()
            .filter_map(|action| addon_of(action).cloned())
            .collect();
        for name in addons {
            let indices: Vec<usize> = actions
                .iter()
                .enumerate()
                .filter(|(_, action)| addon_of(action) == Some(&name))
                .map(|(i, _)| i)
                .collect();
            let (Some(&first), Some(&last)) = (indices.first(), indices.last()) else {
                continue;
            };
            if first == last {
                continue;
            }
            let observed: BTreeMap<String, RoleArn> = self
                .observed
                .addons
                .iter()
                .find(|a| a.name == name)
                .map(addon_associations)
                .unwrap_or_default();
            let Some(mut merged) = merge_addon_actions(actions, &indices, &name, &observed) else {
                continue;
            };
            let position = indices
                .iter()
                .copied()
                .find(|&i| unbinds(&actions[i], &observed))
                .unwrap_or(last);
            // The executor runs each role's actions in order, roles side by side: the merged
            // change goes to the role it unbinds (before that role's deletion), else to the
            // last role it binds (after that role's creation).
            if let (
                Action::SetAddonRole { role, .. } | Action::SetAddonAssociations { role, .. },
                Some(owner),
            ) = (&mut merged, actions[position].role())
            {
                *role = owner.clone();
            }
            actions[position] = merged;
            for &i in indices.iter().rev() {
                if i != position {
                    actions.remove(i);
                }
            }
        }
    }
}

/// An association this system made (no owner, and our owner tag).
fn ours(association: &ObservedAssociation) -> bool {
    association.owner_arn.is_none()
        && association.tags.get(OWNER_TAG).map(String::as_str) == Some(policy::OWNER_VALUE)
}

/// The add-on an action sets, if it sets one.
fn addon_of(action: &Action) -> Option<&AddonName> {
    match action {
        Action::SetAddonRole { addon, .. } | Action::SetAddonAssociations { addon, .. } => {
            Some(addon)
        }
        _ => None,
    }
}

/// True when an add-on action takes a role off the add-on (`observed`: its associations).
fn unbinds(action: &Action, observed: &BTreeMap<String, RoleArn>) -> bool {
    match action {
        Action::SetAddonRole { role_arn, .. } => role_arn.is_none(),
        Action::SetAddonAssociations { associations, .. } => {
            observed.keys().any(|k| !associations.contains_key(k))
        }
        _ => false,
    }
}

/// The one action the add-on actions at `indices` amount to.
fn merge_addon_actions(
    actions: &[Action],
    indices: &[usize],
    name: &AddonName,
    observed: &BTreeMap<String, RoleArn>,
) -> Option<Action> {
    let first = indices.first().map(|&i| &actions[i])?;
    match first {
        // A role set by a claimed role wins over the unbinding of an orphan.
        Action::SetAddonRole { .. } => Some(
            indices
                .iter()
                .rev()
                .map(|&i| &actions[i])
                .find(|a| {
                    matches!(
                        a,
                        Action::SetAddonRole {
                            role_arn: Some(_),
                            ..
                        }
                    )
                })
                .unwrap_or(first)
                .clone(),
        ),
        Action::SetAddonAssociations { role, .. } => {
            let mut merged = observed.clone();
            for &i in indices {
                if let Action::SetAddonAssociations { associations, .. } = &actions[i] {
                    for (sa, arn) in associations {
                        if observed.get(sa) != Some(arn) {
                            merged.insert(sa.clone(), arn.clone());
                        }
                    }
                    for sa in observed.keys() {
                        if !associations.contains_key(sa) {
                            merged.remove(sa);
                        }
                    }
                }
            }
            Some(Action::SetAddonAssociations {
                role: role.clone(),
                addon: name.clone(),
                associations: merged,
            })
        }
        _ => None,
    }
}

/// An add-on's Pod Identity associations as EKS takes them: ServiceAccount name -> role ARN.
pub(super) fn addon_associations(addon: &ObservedAddon) -> BTreeMap<String, RoleArn> {
    addon
        .pod_identity_associations
        .iter()
        .map(|(sa, arn)| (sa.to_string(), arn.clone()))
        .collect()
}
