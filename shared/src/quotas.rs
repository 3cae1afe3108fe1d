//! Live quotas: the account's IAM quotas and how many roles it holds, read from IAM's
//! `GetAccountSummary` and planned against instead of the fixed defaults of the settings, which
//! stay as the fallback when the summary cannot be read (the plan then warns).
//!
//! A warm function reads an account's summary at most once per `refresh` (quotas change when
//! AWS raises them, rarely). The role count changes with every role made, so a plan that
//! creates roles from a remembered summary, or is refused one for the roles quota, is made
//! again from one read in this run: the room for new roles is never judged on an old count.

use crate::desired::Memory;
use crate::model::{AccountSummary, ObservedState, Settings};
use crate::plan::{Action, Plan, Problem, Refusal, Warning, WorkloadOutcome};
use crate::ports::IamPort;
use std::time::Duration;

/// The summary a plan is made against.
#[derive(Clone, Debug)]
pub enum Quotas {
    /// Read in this run.
    Read(AccountSummary),
    /// Remembered from an earlier run of this function.
    Remembered(AccountSummary),
    /// Could not be read: the fixed defaults apply, and no roles quota is checked.
    Unread(String),
}

impl Quotas {
    /// The summary of `account`: the one remembered unless it is older than `refresh`, else
    /// read (and remembered).
    pub async fn of_account(
        iam: &impl IamPort,
        memory: &Memory,
        account: &str,
        refresh: Duration,
        now: u64,
    ) -> Self {
        match memory.account_summary(account, now, refresh.as_secs()) {
            Some(summary) => Quotas::Remembered(summary),
            None => Self::read(iam, memory, account, now).await,
        }
    }

    /// The summary of `account` as IAM says it now (remembered for the runs after).
    pub async fn read(iam: &impl IamPort, memory: &Memory, account: &str, now: u64) -> Self {
        match iam.account_summary().await {
            Ok(summary) => {
                memory.remember_account_summary(account, now, summary.clone());
                Quotas::Read(summary)
            }
            Err(error) => {
                tracing::warn!(%error, "the account's IAM quotas could not be read; planning against the fixed defaults");
                Quotas::Unread(error.to_string())
            }
        }
    }

    /// `settings` with these quotas, and `observed` with the account's role count.
    pub fn apply(&self, settings: &Settings, observed: &mut ObservedState) -> Settings {
        let mut settings = settings.clone();
        match self {
            Quotas::Read(summary) | Quotas::Remembered(summary) => {
                settings.quotas = settings.quotas.of_account(summary);
                observed.usage.roles_in_account = Some(summary.roles);
            }
            Quotas::Unread(_) => observed.usage.roles_in_account = None,
        }
        settings
    }

    /// Plans against these quotas; a plan that creates roles from a remembered summary is made
    /// again from one read now.
    pub async fn plan(
        self,
        plan: impl Fn(&Settings, &ObservedState) -> Plan,
        settings: &Settings,
        observed: &mut ObservedState,
        again: impl AsyncFnOnce() -> Quotas,
    ) -> Plan {
        let mut quotas = self;
        let mut planned = plan(&quotas.apply(settings, observed), observed);
        if matches!(quotas, Quotas::Remembered(_)) && creates_roles(&planned) {
            quotas = again().await;
            planned = plan(&quotas.apply(settings, observed), observed);
        }
        if let Quotas::Unread(reason) = quotas {
            planned.warnings.push(Warning::QuotasUnread { reason });
        }
        planned
    }
}

/// The plan creates a role, or would but for the roles quota: either way it depends on the
/// account's role count.
fn creates_roles(plan: &Plan) -> bool {
    plan.actions
        .iter()
        .any(|a| matches!(a, Action::CreateRole { .. }))
        || plan.workloads.iter().any(|w| {
            matches!(
                w.outcome,
                WorkloadOutcome::Problem(Problem::Refused(Refusal::RolesQuotaReached { .. }))
            )
        })
}
