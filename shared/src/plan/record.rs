//! Recording a planned role: one entry per workload that runs as its ServiceAccount, with the
//! state and outcome the role's planning came to and the restarts its binding calls for. A
//! role made for an add-on's recommended policies has no workload: the add-on stands for it.

use super::{
    Action, Plan, Planner, RoleIntent, RoleOutcome, WorkloadIdentity, WorkloadOutcome,
    WorkloadPlan, WorkloadState,
};
use crate::model::{ServiceAccountRef, WorkloadName};

impl Planner<'_> {
    /// Reports each workload of the role, with the restarts its binding calls for; returns
    /// the role's actions, restarts included.
    pub(super) fn record_role(
        &self,
        service_account: &ServiceAccountRef,
        intent: &RoleIntent,
        mut outcome: RoleOutcome,
        plan: &mut Plan,
    ) -> Vec<Action> {
        let (state, told) = match &outcome.problem {
            Some(problem) => (problem.state(), WorkloadOutcome::Problem(problem.clone())),
            None if outcome.actions.is_empty() => {
                (WorkloadState::Ready, WorkloadOutcome::AsDeclared)
            }
            None => (
                WorkloadState::Changing,
                WorkloadOutcome::Changes(outcome.actions.len()),
            ),
        };
        let restarts = self.plan_restarts(&outcome.role, intent, &mut outcome.actions);
        if intent.workloads.is_empty() {
            self.record_addon_role(service_account, &outcome, (state, told.clone()), plan);
        }
        for (workload, restart) in intent.workloads.iter().zip(restarts) {
            plan.workloads.push(WorkloadPlan {
                identity: WorkloadIdentity {
                    namespace: workload.workload.namespace.clone(),
                    workload: workload.workload.name.clone(),
                    kind: workload.workload.kind.or(workload.observed_kind),
                    service_account: Some(service_account.clone()),
                    role_arn: Some(outcome.arn.clone()),
                    binding: outcome.binding.clone(),
                    target_role_arn: outcome.target.as_ref().map(|(_, arn)| arn.clone()),
                },
                role: Some(outcome.role.clone()),
                state,
                outcome: told.clone(),
                actions: outcome.actions.len(),
                restart,
            });
        }
        outcome.actions
    }

    /// The entry of a role made for an add-on's recommended policies, named after the add-on.
    fn record_addon_role(
        &self,
        service_account: &ServiceAccountRef,
        outcome: &RoleOutcome,
        (state, told): (WorkloadState, WorkloadOutcome),
        plan: &mut Plan,
    ) {
        let Some(addon) = self.addons.get(service_account) else {
            return;
        };
        plan.workloads.push(WorkloadPlan {
            identity: WorkloadIdentity {
                namespace: service_account.namespace.clone(),
                workload: WorkloadName::from(addon.name.as_str()),
                kind: None,
                service_account: Some(service_account.clone()),
                role_arn: Some(outcome.arn.clone()),
                binding: outcome.binding.clone(),
                target_role_arn: None,
            },
            role: Some(outcome.role.clone()),
            state,
            outcome: told,
            actions: outcome.actions.len(),
            restart: Default::default(),
        });
    }
}
