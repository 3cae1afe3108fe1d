//! Step 5, orphans: the system's roles that no intent claims any more. It decides which are
//! held (a bundle that would claim them fails to read: reported, never touched), which are
//! marked for deletion, which wait out the grace period, and which are unbound and deleted;
//! and when more roles are due than one run may delete, that none is (the deletion breaker).

use super::bindings::addon_associations;
use super::problem::Problem;
use super::{
    Action, DeletionBreaker, OrphanPlan, OrphanState, Plan, Planner, Restart, WorkloadIdentity,
    WorkloadOutcome, WorkloadPlan, WorkloadState,
};
use crate::model::{ObservedRole, RoleKey, ServiceAccountRef};
use crate::policy::{self, ORPHANED_TAG, Ownership};
use std::collections::BTreeSet;

/// What becomes of one role that no intent claims, with its data: its state follows from it,
/// and its words are made in `crate::words`.
pub(crate) enum OrphanOutcome {
    /// Found without intents: marked now, deleted after `grace_seconds`.
    Marked { grace_seconds: u64 },
    /// Marked at `since`; deleted from `deleted_from` on.
    Waiting { since: u64, deleted_from: u64 },
    /// Due, but more roles are due than one run may delete.
    HeldByBreaker(DeletionBreaker),
    /// Due with soft delete on: unbound, and kept.
    Unbound,
    /// Due: these bindings removed, then the role deleted with its policies.
    Deleting { unbinding: Vec<Action> },
    /// Due, but accounts that may hold its target roles cannot be read: kept until they can.
    TargetsUnread { accounts: Vec<String> },
}

impl OrphanOutcome {
    fn state(&self) -> OrphanState {
        match self {
            OrphanOutcome::Marked { .. } => OrphanState::Marked,
            OrphanOutcome::Waiting { .. } => OrphanState::Waiting,
            OrphanOutcome::HeldByBreaker(_) => OrphanState::HeldByBreaker,
            OrphanOutcome::Unbound => OrphanState::Unbound,
            OrphanOutcome::Deleting { .. } => OrphanState::Deleting,
            OrphanOutcome::TargetsUnread { .. } => OrphanState::TargetsUnread,
        }
    }
}

/// The report of one orphaned role.
fn orphan_plan(role: &ObservedRole, outcome: OrphanOutcome) -> OrphanPlan {
    OrphanPlan {
        role: role.name.clone(),
        arn: role.arn.clone(),
        state: outcome.state(),
        message: outcome.to_string(),
    }
}

impl<'a> Planner<'a> {
    /// Owned roles that no intent claims: marked, then deleted after the grace period. Held
    /// roles are never touched. When more roles are due than `max_deletions_per_run`, none is
    /// deleted (a breaker, not a rate): a prefix removed by mistake must not empty a cluster a
    /// few roles at a time. With `soft_delete`, a due role is only unbound.
    pub(super) fn do_plan_orphans(&self, claimed: &BTreeSet<RoleKey>, plan: &mut Plan) {
        let mut due: Vec<&ObservedRole> = Vec::new();
        for (key, role) in &self.roles {
            if claimed.contains(key)
                || policy::ownership(&role.tags, self.cluster) != Ownership::Ours
                || self.role_is_held(role)
            {
                continue;
            }
            match self.grace(role, plan) {
                Some(outcome) => plan.orphans.push(orphan_plan(role, outcome)),
                None => due.push(role),
            }
        }
        let cap = self.settings.max_deletions_per_run;
        if due.len() > cap {
            let breaker = DeletionBreaker {
                due: due.len(),
                cap,
            };
            for role in due {
                plan.orphans.push(orphan_plan(
                    role,
                    OrphanOutcome::HeldByBreaker(breaker.clone()),
                ));
            }
            plan.breaker = Some(breaker);
            return;
        }
        for role in due {
            let unread: Vec<String> = self
                .unread_target_accounts(Some(role))
                .map(str::to_owned)
                .collect();
            let outcome = if unread.is_empty() {
                self.remove(role, &mut plan.actions)
            } else {
                OrphanOutcome::TargetsUnread { accounts: unread }
            };
            plan.orphans.push(orphan_plan(role, outcome));
        }
    }

    /// An orphan within its grace period: marked now (the mark added to `plan`), or waiting.
    /// None when the grace period is over.
    fn grace(&self, role: &ObservedRole, plan: &mut Plan) -> Option<OrphanOutcome> {
        let now = self.observed.now;
        let grace = self.settings.deletion_grace_seconds;
        let since = role
            .tags
            .get(ORPHANED_TAG)
            .and_then(|value| value.parse::<u64>().ok());
        match since {
            None => {
                plan.actions.push(Action::MarkRoleForDeletion {
                    role: role.name.clone(),
                    since: now,
                });
                Some(OrphanOutcome::Marked {
                    grace_seconds: grace,
                })
            }
            Some(since) if now < since.saturating_add(grace) => Some(OrphanOutcome::Waiting {
                since,
                deleted_from: since.saturating_add(grace),
            }),
            Some(_) => None,
        }
    }

    /// A role whose grace period is over: unbound, then deleted (or with soft delete, only
    /// unbound). Its actions go to `actions`.
    fn remove(&self, role: &ObservedRole, actions: &mut Vec<Action>) -> OrphanOutcome {
        if self.settings.soft_delete {
            actions.extend(self.unbinding(role));
            return OrphanOutcome::Unbound;
        }
        // Exactly what goes: each binding, then the role with its policies. The executor runs
        // them in this order and stops at the first failure, so the role is deleted only once
        // every unbinding succeeded.
        let unbinding = self.unbinding(role);
        actions.extend(unbinding.iter().cloned());
        actions.extend(self.deletion(role));
        OrphanOutcome::Deleting { unbinding }
    }

    /// Every binding this system made to the role: annotations, associations, add-on settings.
    fn unbinding(&self, role: &ObservedRole) -> Vec<Action> {
        let name = &role.name;
        let mut actions = Vec::new();
        for sa in self.service_accounts.values() {
            if sa.annotation_owned && sa.role_annotation() == Some(role.arn.as_str()) {
                actions.push(Action::RemoveServiceAccountAnnotation {
                    role: name.clone(),
                    service_account: sa.id(),
                });
            }
        }
        for (id, list) in &self.associations {
            for association in list {
                if association.role_arn == role.arn && association.owner_arn.is_none() {
                    actions.push(Action::DeletePodIdentityAssociation {
                        role: name.clone(),
                        association_id: association.association_id.clone(),
                        service_account: id.clone(),
                    });
                }
            }
        }
        let mut seen_addons = BTreeSet::new();
        for (id, addon) in &self.addons {
            if addon.service_account_role_arn.as_ref() == Some(&role.arn)
                && seen_addons.insert(addon.name.clone())
            {
                actions.push(Action::SetAddonRole {
                    role: name.clone(),
                    addon: addon.name.clone(),
                    service_account: id.clone(),
                    role_arn: None,
                });
            }
            if addon.pod_identity_associations.get(&id.name) == Some(&role.arn) {
                let mut associations = addon_associations(addon);
                associations.remove(id.name.as_str());
                actions.push(Action::SetAddonAssociations {
                    role: name.clone(),
                    addon: addon.name.clone(),
                    associations,
                });
            }
        }
        actions
    }

    /// Empties the role, then deletes it (after `unbinding`), with its target roles.
    fn deletion(&self, role: &ObservedRole) -> Vec<Action> {
        let name = &role.name;
        // Its target roles in other accounts first: nothing else may assume them.
        let mut actions: Vec<Action> = self
            .target_roles_of(Some(role))
            .flat_map(|(account, target)| super::target::target_deletion(account, target))
            .collect();
        actions.extend(emptying(role, None));
        let part_prefix = format!("{name}.part");
        for (arn, policy) in &self.managed {
            if policy.name.starts_with(&part_prefix)
                && policy::ownership(&policy.tags, self.cluster) == Ownership::Ours
            {
                actions.push(Action::DeleteManagedPolicy {
                    role: name.clone(),
                    arn: (*arn).clone(),
                });
            }
        }
        actions.push(Action::DeleteRole { role: name.clone() });
        actions
    }

    /// Owned roles that no valid intent claims any more but whose source fails to read: their
    /// workloads (from the role's tags) are reported as held, so the status says why nothing
    /// happens to them.
    pub(super) fn report_held_roles(&self, claimed: &BTreeSet<RoleKey>, plan: &mut Plan) {
        for (key, role) in &self.roles {
            if claimed.contains(key)
                || policy::ownership(&role.tags, self.cluster) != Ownership::Ours
                || !self.role_is_held(role)
            {
                continue;
            }
            let namespace = role
                .tags
                .get(policy::NAMESPACE_TAG)
                .cloned()
                .unwrap_or_default();
            let service_account = role.tags.get(policy::SERVICE_ACCOUNT_TAG).cloned();
            let workloads = role
                .tags
                .get(policy::WORKLOADS_TAG)
                .cloned()
                .unwrap_or_default();
            for workload in workloads
                .split(' ')
                .filter(|w| !w.is_empty() && !w.starts_with('+'))
            {
                plan.workloads.push(WorkloadPlan {
                    identity: WorkloadIdentity {
                        namespace: namespace.as_str().into(),
                        workload: workload.into(),
                        kind: None,
                        service_account: service_account.as_ref().map(|sa| ServiceAccountRef {
                            namespace: namespace.as_str().into(),
                            name: sa.as_str().into(),
                        }),
                        role_arn: Some(role.arn.clone()),
                        binding: None,
                        target_role_arn: None,
                    },
                    role: Some(role.name.clone()),
                    state: WorkloadState::Held,
                    outcome: WorkloadOutcome::Problem(Problem::Held {
                        bundles: self.holding_bundles(&[], Some(role)),
                    }),
                    actions: 0,
                    restart: Restart::NotNeeded,
                });
            }
        }
    }

    /// Workloads an invalid bundle names that no other step reported (they have no role yet,
    /// or none that tells): held, so the status names each with the bundle to fix.
    pub(super) fn report_held_workloads(&self, plan: &mut Plan) {
        if self.desired.held.workloads.is_empty() {
            return;
        }
        let reported: BTreeSet<(String, String)> = plan
            .workloads
            .iter()
            .map(|w| {
                (
                    w.identity.namespace.as_str().to_owned(),
                    w.identity.workload.as_str().to_owned(),
                )
            })
            .collect();
        let mut seen = BTreeSet::new();
        for held in &self.desired.held.workloads {
            let key = (
                held.namespace.as_str().to_owned(),
                held.name.as_str().to_owned(),
            );
            if reported.contains(&key) || !seen.insert(key) {
                continue;
            }
            let bundles = self
                .desired
                .held
                .bundles_naming(held.namespace.as_str(), held.name.as_str())
                .into_iter()
                .map(|bundle| bundle.to_string())
                .collect();
            plan.workloads.push(WorkloadPlan {
                identity: WorkloadIdentity {
                    namespace: held.namespace.clone(),
                    workload: held.name.clone(),
                    kind: None,
                    service_account: None,
                    role_arn: None,
                    binding: None,
                    target_role_arn: None,
                },
                role: None,
                state: WorkloadState::Held,
                outcome: WorkloadOutcome::Problem(Problem::Held { bundles }),
                actions: 0,
                restart: Restart::NotNeeded,
            });
        }
    }
}

/// Deletes the inline policies of `role` (but the one named `keep`) and detaches its managed
/// policies.
pub(super) fn emptying(role: &ObservedRole, keep: Option<&str>) -> Vec<Action> {
    let inline = role
        .inline_policies
        .keys()
        .filter(|name| Some(name.as_str()) != keep)
        .map(|name| Action::DeleteInlinePolicy {
            role: role.name.clone(),
            policy_name: name.clone(),
        });
    let attached = role
        .attached_policies
        .iter()
        .map(|arn| Action::DetachManagedPolicy {
            role: role.name.clone(),
            policy_arn: arn.clone(),
        });
    inline.chain(attached).collect()
}
