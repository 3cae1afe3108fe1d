//! The planner: `plan(&DesiredState, &ObservedState, &Settings) -> Plan`, pure and synchronous.
//! Every action in the plan is fully specified; planning again against the state the plan
//! produces yields no action.
//!
//! It runs as a short list of named steps, each in its own module, each saying in its opening
//! comment what it decides:
//! 1. `index`: the lookup tables, and which ServiceAccount (so which role) each workload has;
//! 2. `roles`: per role, whether it may be touched and its trust; the role itself; the OIDC
//!    provider;
//! 3. `permissions`: per role, its grants (refused, warned about, laid out) and its tags; with
//!    `target`, the grants on another account's resources and the target role they go to;
//! 4. `bindings`: per role, how it reaches its workloads; one action per add-on;
//! 5. `orphans`: the roles no intent claims any more, and the workloads held by invalid
//!    bundles.
//!
//! This module only orders them.

mod action;
mod bindings;
mod index;
mod orphans;
mod permissions;
mod problem;
mod record;
mod report;
mod roles;
mod room;
mod session;
mod simulate;
mod target;
mod warning;

pub use action::{Action, Binding};
pub use report::{
    DeletionBreaker, Drift, DriftKind, OrphanPlan, OrphanState, Restart, WorkloadIdentity,
    WorkloadOutcome, WorkloadPlan, WorkloadState,
};
pub use simulate::simulate;
pub use warning::Warning;

use crate::model::{
    ClusterRef, DesiredState, ObservedAddon, ObservedAssociation, ObservedManagedPolicy,
    ObservedRole, ObservedServiceAccount, ObservedState, ObservedWorkload, PolicyArn, RoleArn,
    RoleKey, RoleName, ServiceAccountRef, Settings,
};
pub(crate) use orphans::OrphanOutcome;
pub use problem::{Problem, Refusal};
use roles::RoleIdentity;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};

/// An ordered list of fully specified actions, and per workload what they are for.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Plan {
    pub actions: Vec<Action>,
    pub workloads: Vec<WorkloadPlan>,
    pub orphans: Vec<OrphanPlan>,
    pub warnings: Vec<Warning>,
    /// Hand changes this plan puts back, by role and kind.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub drift: Vec<Drift>,
    /// Set when the deletion breaker holds this run's deletions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub breaker: Option<DeletionBreaker>,
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        self.actions.is_empty()
    }
}

pub fn plan(desired: &DesiredState, observed: &ObservedState, settings: &Settings) -> Plan {
    Planner::new(desired, observed, settings).run()
}

/// The workloads that run as one ServiceAccount: what its role is for. Their permissions are
/// merged only while that role is planned, so a large cluster never holds them all twice.
struct RoleIntent<'a> {
    workloads: Vec<index::Declared<'a>>,
    /// IRSA: the add-on's other ServiceAccounts that share this role (an add-on has one role
    /// setting), trusted beside the role's own.
    shared_with: Vec<ServiceAccountRef>,
    /// The managed policies EKS recommends for an add-on's ServiceAccount that has no intents
    /// (setting `addon_recommended_policies`), attached to the role.
    recommended: Vec<PolicyArn>,
}

/// The outcome of planning one role, shared by the workloads that run as its ServiceAccount.
struct RoleOutcome {
    warnings: Vec<Warning>,
    role: RoleName,
    arn: RoleArn,
    binding: Option<Binding>,
    actions: Vec<Action>,
    /// Why the role is not touched, or only partly, or waits.
    problem: Option<Problem>,
    /// Hand changes that `actions` put back.
    drift: BTreeSet<DriftKind>,
    /// The account and ARN of the role's target role, when its intents name resources there.
    target: Option<(String, RoleArn)>,
}

/// What the per-role steps (roles, permissions, bindings) leave for the steps after them.
struct RolesReport {
    /// The roles some intent claims: never orphans.
    claimed: BTreeSet<RoleKey>,
    /// Every role's actions, in the order of the roles.
    actions: Vec<Action>,
    /// Some role is trusted through the cluster's OIDC provider.
    needs_oidc_provider: bool,
    /// The accounts that hold target roles (with IRSA, each needs the cluster's provider).
    target_accounts: BTreeSet<String>,
}

struct Planner<'a> {
    desired: &'a DesiredState,
    observed: &'a ObservedState,
    settings: &'a Settings,
    cluster: &'a ClusterRef,
    path: String,
    /// The system's own resources in this cluster's account (`policy::system_resources`).
    system: Vec<String>,
    roles: BTreeMap<RoleKey, &'a ObservedRole>,
    /// The roles under the path in each target account (`ObservedState::targets`).
    targets: BTreeMap<&'a str, BTreeMap<RoleKey, &'a ObservedRole>>,
    managed: BTreeMap<&'a PolicyArn, &'a ObservedManagedPolicy>,
    /// By (namespace, name), borrowed: the order of `ServiceAccountRef`.
    service_accounts: BTreeMap<(&'a str, &'a str), &'a ObservedServiceAccount>,
    associations: BTreeMap<ServiceAccountRef, Vec<&'a ObservedAssociation>>,
    addons: BTreeMap<ServiceAccountRef, &'a ObservedAddon>,
    /// The observed workloads, sorted by namespace, name and kind (`index::workloads_named`).
    workloads: Option<Vec<&'a ObservedWorkload>>,
    held_bundle_tags: BTreeSet<String>,
    /// The role ARNs that some binding this system made still names (see `is_bound_anywhere`).
    bound_arns: BTreeSet<&'a str>,
}

impl<'a> Planner<'a> {
    fn run(self) -> Plan {
        let mut plan = Plan::default();
        let index = self.do_plan_index(&mut plan.warnings);
        let mut roles = self.do_plan_roles(&index.intents, &mut plan);
        self.report_pending(&index.pending, &mut roles.claimed, &mut plan);
        self.report_held_roles(&roles.claimed, &mut plan);
        self.report_held_workloads(&mut plan);
        if roles.needs_oidc_provider {
            self.do_plan_oidc_provider(&mut plan);
            let accounts = roles.target_accounts.iter().map(String::as_str).collect();
            plan.actions
                .extend(target::target_provider_changes(&self, &accounts));
        }
        self.warn_unbounded_roles(&roles.actions, &mut plan.warnings);
        plan.actions.extend(roles.actions);
        self.do_plan_orphans(&roles.claimed, &mut plan);
        self.one_action_per_addon(&mut plan.actions);
        plan
    }

    /// Plans every role in turn; its warnings, drift and workloads go to `plan`, its actions
    /// to the report (they follow the OIDC provider's).
    fn do_plan_roles(
        &self,
        intents: &BTreeMap<ServiceAccountRef, RoleIntent<'a>>,
        plan: &mut Plan,
    ) -> RolesReport {
        let mut report = RolesReport {
            claimed: BTreeSet::new(),
            actions: Vec::new(),
            needs_oidc_provider: false,
            target_accounts: BTreeSet::new(),
        };
        let mut room = room::Room::new(&self.observed.usage, &self.settings.quotas);
        for (service_account, intent) in intents {
            if intent.workloads.len() > 1 {
                plan.warnings.push(Warning::SharedServiceAccount {
                    workloads: intent.workload_refs(),
                    service_account: service_account.clone(),
                });
            }
            let mut outcome = self.plan_role(service_account, intent);
            if let Err(full) = room.take(&outcome.actions) {
                outcome = outcome.without_room(full);
            }
            plan.warnings.extend(outcome.warnings.iter().cloned());
            plan.drift.extend(outcome.drift.iter().map(|&kind| Drift {
                role: Some(outcome.role.clone()),
                kind,
            }));
            report.claimed.insert(outcome.role.key());
            report
                .target_accounts
                .extend(outcome.target.as_ref().map(|(account, _)| account.clone()));
            if self.settings.mode == crate::model::BindingMode::Irsa
                && outcome
                    .problem
                    .as_ref()
                    .is_none_or(|p| p.state() != WorkloadState::Error)
            {
                report.needs_oidc_provider = true;
            }
            report
                .actions
                .extend(self.record_role(service_account, intent, outcome, plan));
        }
        report
    }

    /// One role's steps in order: who it is and its trust (roles), its grants and tags
    /// (permissions), the role's own changes, its policy changes, then its binding.
    fn plan_role(&self, service_account: &ServiceAccountRef, intent: &RoleIntent) -> RoleOutcome {
        let identity = self.identify(service_account);
        let mut outcome = RoleOutcome {
            warnings: Vec::new(),
            role: identity.role.clone(),
            arn: identity.arn.clone(),
            binding: Some(identity.binding.clone()),
            actions: Vec::new(),
            problem: None,
            drift: BTreeSet::new(),
            target: None,
        };
        let trust = match self.do_plan_trust(&identity, intent) {
            Ok(trust) => trust,
            Err(problem) => return outcome.stopped(problem),
        };
        let grants =
            match self.do_plan_permissions(&identity, &trust, intent, &mut outcome.warnings) {
                Ok(grants) => grants,
                Err(refusal) => return outcome.stopped(refusal.into()),
            };
        let mut tags = grants.tags;
        let cleanup = self.target_cleanup(&identity, grants.target.as_ref(), &mut tags);
        let mut actions = self.role_changes(&identity, trust, tags);
        actions.extend(self.policy_changes(
            &identity.role,
            identity.observed,
            &grants.layout,
            &intent.recommended,
        ));
        let target = grants.target.as_ref();
        if let Some(target) = target {
            actions.extend(self.target_changes(&identity, target));
            outcome.target = Some((target.account.to_owned(), target.arn.clone()));
        }
        // With Pod Identity, the association names the target role, which the pods then get.
        let chained = target
            .filter(|_| self.settings.mode == crate::model::BindingMode::PodIdentity)
            .map(|t| &t.arn);
        let binding = self
            .session_policy(&identity, &grants.layout, target)
            .and_then(|session| self.do_plan_binding(&identity, session.as_ref(), chained));
        match binding {
            Ok((binding_actions, waiting)) => {
                actions.extend(binding_actions);
                actions.extend(cleanup);
                outcome.problem = waiting;
            }
            Err(conflict) => {
                // The role itself is still kept as declared; only the binding is refused.
                outcome.problem = Some(conflict.into());
            }
        }
        outcome.drift = self.role_drift(&identity, &actions, grants.intents_unchanged);
        outcome.actions = actions;
        outcome
    }
}

impl RoleOutcome {
    /// The role is not touched: `problem` says why, and no action is planned for it.
    fn stopped(mut self, problem: Problem) -> Self {
        self.actions.clear();
        self.drift.clear();
        self.problem = Some(problem);
        self
    }
}

#[cfg(test)]
mod addon_tests;
#[cfg(test)]
mod held_tests;
#[cfg(test)]
mod protect_tests;
#[cfg(test)]
mod target_tests;
#[cfg(test)]
mod tests;
