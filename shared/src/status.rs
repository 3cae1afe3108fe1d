//! The status report written to `status/<cluster>.json` after each reconcile: which bundles were
//! read, and per workload where its role and binding stand, in words a developer can act on.

use crate::intent::Diagnostic;
use crate::model::BindingMode;
use crate::plan::{
    Binding, DriftKind, OrphanPlan, OrphanState, Plan, WorkloadIdentity, WorkloadState,
};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

pub const SCHEMA_VERSION: u32 = 1;

pub use crate::intent::{status_key, upload_status_key};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BundleStatus {
    pub key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etag: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    pub valid: bool,
    /// Intents read from it.
    pub intents: usize,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<Diagnostic>,
    /// Documents and calls skipped as not this system's job.
    pub notices: usize,
}

impl BundleStatus {
    /// What a bundle gave, at the ETag and version it was read at.
    pub fn of(
        key: &str,
        etag: Option<String>,
        version: Option<String>,
        report: &crate::intent::BundleReport,
    ) -> Self {
        BundleStatus {
            key: key.to_owned(),
            etag,
            version,
            valid: report.is_valid(),
            intents: report.intents.len(),
            errors: report.errors.clone(),
            notices: report.notices.len(),
        }
    }
}

/// Where a workload stands after the run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum State {
    /// Role and binding are in place as declared.
    Ready,
    /// Waiting on the cluster (workload or ServiceAccount not there yet), or, in a dry run,
    /// changes that were planned but not made.
    Pending,
    /// Its bundle fails to read: left as it was.
    Held,
    Error,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkloadStatus {
    #[serde(flatten)]
    pub identity: WorkloadIdentity,
    pub state: State,
    pub message: String,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanSummary {
    pub create: usize,
    pub change: usize,
    pub remove: usize,
    pub applied: usize,
    pub failed: usize,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusReport {
    pub schema: u32,
    pub cluster: String,
    /// Seconds since the Unix epoch.
    pub generated_at: u64,
    /// When the run began reading the cluster's bundles, in milliseconds since the Unix epoch:
    /// a report is never replaced by that of a run that started earlier.
    #[serde(default)]
    pub started_at_ms: u64,
    pub mode: BindingMode,
    pub dry_run: bool,
    pub bundles: Vec<BundleStatus>,
    pub workloads: Vec<WorkloadStatus>,
    pub orphans: Vec<OrphanPlan>,
    pub warnings: Vec<String>,
    pub summary: PlanSummary,
    /// Hand changes found on this run, and those put back, by kind (`inline-policy`, `trust`,
    /// `annotation`, ...). In a dry run or report-only run nothing is repaired.
    #[serde(default)]
    pub drift: DriftReport,
    /// Where the roles whose intents are gone stand.
    #[serde(default)]
    pub cleanup: CleanupReport,
    /// Calls made to AWS during the run, by `service:Operation`.
    pub api_calls: BTreeMap<String, u64>,
    /// Requests sent to AWS, retries included, by `service:Operation`.
    #[serde(default)]
    pub api_attempts: BTreeMap<String, u64>,
    /// Requests AWS refused as throttled, by `service:Operation`: retried with backoff within
    /// the run's time budget.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub throttled: BTreeMap<String, u64>,
    /// Time spent waiting between attempts, in milliseconds.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub retry_wait_ms: u64,
    /// Set when the run could not observe the cluster (EKS or Kubernetes unreachable, access
    /// refused): nothing was planned or changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The last run before this report that found the report unchanged and so wrote nothing
    /// (seconds since the Unix epoch), as far as the function that wrote this report knows: a
    /// cold start forgets it. Every run, quiet or not, also emits its metrics.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_quiet_run_at: Option<u64>,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// The AWS calls of a run, by `service:Operation`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ApiCallCounts {
    /// Operations called, each once however many attempts it took.
    pub calls: BTreeMap<String, u64>,
    /// Requests sent, retries included.
    pub attempts: BTreeMap<String, u64>,
    /// Requests refused as throttled.
    pub throttled: BTreeMap<String, u64>,
    /// Time spent waiting between attempts, in milliseconds.
    pub retry_wait_ms: u64,
}

/// Operation counts alone (attempts unknown: one per call).
impl From<BTreeMap<String, u64>> for ApiCallCounts {
    fn from(calls: BTreeMap<String, u64>) -> Self {
        ApiCallCounts {
            attempts: calls.clone(),
            calls,
            ..ApiCallCounts::default()
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DriftReport {
    pub found: BTreeMap<DriftKind, usize>,
    pub repaired: BTreeMap<DriftKind, usize>,
}

impl DriftReport {
    pub fn found_total(&self) -> usize {
        self.found.values().sum()
    }
}

/// Roles whose intents are gone, by where they stand.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CleanupReport {
    /// Marked on this run.
    pub marked: usize,
    /// Marked earlier, in their grace period.
    pub waiting: usize,
    /// Deleted on this run.
    pub deleted: usize,
    /// Unbound and kept (soft delete).
    pub unbound: usize,
    /// Due, but held by the deletion breaker.
    pub held_by_breaker: usize,
    /// Set when the breaker tripped: why nothing was deleted and how to proceed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub breaker: Option<String>,
}

impl CleanupReport {
    fn of(plan: &Plan, dry_run: bool) -> Self {
        let count = |state| plan.orphans.iter().filter(|o| o.state == state).count();
        let done = |n: usize| if dry_run { 0 } else { n };
        CleanupReport {
            marked: count(OrphanState::Marked),
            waiting: count(OrphanState::Waiting),
            deleted: done(count(OrphanState::Deleting)),
            unbound: done(count(OrphanState::Unbound)),
            held_by_breaker: count(OrphanState::HeldByBreaker),
            breaker: plan.breaker.as_ref().map(|b| b.message()),
        }
    }
}

/// What happened to one role's actions, for the report: `None` when they all went through.
pub type RoleFailures<'a> = &'a dyn Fn(&crate::model::RoleName) -> Option<String>;

impl StatusReport {
    /// The report of a run: the plan, and for each role whether its actions went through
    /// (`failure_of` gives the error of a role whose actions did not).
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        cluster: &str,
        generated_at: u64,
        mode: BindingMode,
        dry_run: bool,
        bundles: Vec<BundleStatus>,
        plan: &Plan,
        failure_of: RoleFailures<'_>,
        applied: usize,
        api_calls: impl Into<ApiCallCounts>,
    ) -> Self {
        let api_calls = api_calls.into();
        let sign = |s| plan.actions.iter().filter(|a| a.sign() == s).count();
        let mut failed = 0;
        let workloads = plan
            .workloads
            .iter()
            .map(|w| {
                let failure = w.role.as_ref().and_then(failure_of);
                let (state, message) = match (w.state, failure) {
                    (_, Some(error)) => {
                        failed += 1;
                        (State::Error, error)
                    }
                    (WorkloadState::Ready, None) => (State::Ready, w.message()),
                    (WorkloadState::Changing, None) if dry_run => {
                        (State::Pending, format!("dry run: {}", w.outcome))
                    }
                    (WorkloadState::Changing, None) => {
                        let restart = match w.restart {
                            crate::plan::Restart::NotNeeded => String::new(),
                            crate::plan::Restart::Planned => {
                                "; its pods were restarted to get the role".to_owned()
                            }
                            crate::plan::Restart::Needed => format!(
                                "; {}: restart them (kubectl rollout restart {} -n {})",
                                if w.identity.binding == Some(Binding::PodIdentityAssociation) {
                                    "pods started before hold the credentials of the association as it was (the EKS Pod Identity agent caches them for hours)"
                                } else {
                                    "pods started before the binding lack the role"
                                },
                                w.identity.kind
                                    .map(|k| format!("{}/{}", k.as_str().to_ascii_lowercase(), w.identity.workload))
                                    .unwrap_or_else(|| w.identity.workload.to_string()),
                                w.identity.namespace
                            ),
                        };
                        (
                            State::Ready,
                            format!("role and binding updated ({} change(s)){restart}", w.actions),
                        )
                    }
                    (WorkloadState::Pending, None) => (State::Pending, w.message()),
                    (WorkloadState::Held, None) => (State::Held, w.message()),
                    (WorkloadState::Error, None) => (State::Error, w.message()),
                };
                WorkloadStatus {
                    identity: w.identity.clone(),
                    state,
                    message,
                }
            })
            .collect();
        let mut drift = DriftReport::default();
        for found in &plan.drift {
            *drift.found.entry(found.kind).or_default() += 1;
            let failed = found.role.as_ref().and_then(failure_of).is_some();
            if !dry_run && !failed {
                *drift.repaired.entry(found.kind).or_default() += 1;
            }
        }
        StatusReport {
            drift,
            cleanup: CleanupReport::of(plan, dry_run),
            schema: SCHEMA_VERSION,
            cluster: cluster.to_owned(),
            generated_at,
            started_at_ms: 0,
            mode,
            dry_run,
            bundles,
            workloads,
            orphans: plan.orphans.clone(),
            warnings: plan.warnings.iter().map(ToString::to_string).collect(),
            summary: PlanSummary {
                create: sign('+'),
                change: sign('~'),
                remove: sign('-'),
                applied,
                failed,
            },
            api_calls: api_calls.calls,
            api_attempts: api_calls.attempts,
            throttled: api_calls.throttled,
            retry_wait_ms: api_calls.retry_wait_ms,
            error: None,
            last_quiet_run_at: None,
        }
    }

    /// A digest of what the report says about the cluster, leaving out what differs from run to
    /// run of an unchanged cluster (times, call counts): equal digests, nothing worth writing.
    pub fn content_digest(&self) -> String {
        use sha2::{Digest, Sha256};
        let content = StatusReport {
            generated_at: 0,
            started_at_ms: 0,
            api_calls: BTreeMap::new(),
            api_attempts: BTreeMap::new(),
            throttled: BTreeMap::new(),
            retry_wait_ms: 0,
            last_quiet_run_at: None,
            ..self.clone()
        };
        let bytes = serde_json::to_vec(&content).unwrap_or_default();
        Sha256::digest(&bytes)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    /// The report as a table, for `eks-intents status`.
    pub fn table(&self) -> String {
        let mut rows = vec![[
            "NAMESPACE".to_owned(),
            "WORKLOAD".to_owned(),
            "SERVICEACCOUNT".to_owned(),
            "STATE".to_owned(),
            "BINDING".to_owned(),
            "ROLE".to_owned(),
            "MESSAGE".to_owned(),
        ]];
        for w in &self.workloads {
            rows.push([
                w.identity.namespace.to_string(),
                w.identity.workload.to_string(),
                w.identity
                    .service_account
                    .as_ref()
                    .map(|sa| sa.name.to_string())
                    .unwrap_or_else(|| "-".into()),
                format!("{:?}", w.state),
                w.identity
                    .binding
                    .as_ref()
                    .map(ToString::to_string)
                    .unwrap_or_else(|| "-".into()),
                w.identity
                    .role_arn
                    .as_ref()
                    .map(ToString::to_string)
                    .unwrap_or_else(|| "-".into()),
                w.message.clone(),
            ]);
        }
        let mut widths = [0usize; 7];
        for row in &rows {
            for (i, cell) in row.iter().enumerate().take(6) {
                widths[i] = widths[i].max(cell.chars().count());
            }
        }
        let mut out = format!(
            "cluster {} ({} mode{}), generated at {} (Unix time)\n",
            self.cluster,
            self.mode.as_str(),
            if self.dry_run { ", dry run" } else { "" },
            self.generated_at
        );
        if let Some(error) = &self.error {
            out.push_str(&format!("error: {error}\n"));
        }
        for row in &rows {
            let mut line = String::new();
            for (i, cell) in row.iter().enumerate() {
                if i < 6 {
                    line.push_str(&format!("{cell:<width$}  ", width = widths[i]));
                } else {
                    line.push_str(cell);
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        for bundle in self.bundles.iter().filter(|b| !b.valid) {
            out.push_str(&format!("\ninvalid bundle {}:\n", bundle.key));
            for error in &bundle.errors {
                out.push_str(&format!("  {error}\n"));
            }
        }
        for warning in &self.warnings {
            out.push_str(&format!("\nwarning: {warning}\n"));
        }
        if !self.drift.found.is_empty() {
            let kinds: Vec<String> = self
                .drift
                .found
                .iter()
                .map(|(kind, n)| {
                    let repaired = self.drift.repaired.get(kind).copied().unwrap_or_default();
                    format!("{} {n} found, {repaired} repaired", kind.as_str())
                })
                .collect();
            out.push_str(&format!("\ndrift: {}\n", kinds.join("; ")));
        }
        if let Some(breaker) = &self.cleanup.breaker {
            out.push_str(&format!("\n{breaker}\n"));
        }
        if !self.throttled.is_empty() {
            let calls: Vec<String> = self
                .throttled
                .iter()
                .map(|(call, n)| format!("{call} {n}x"))
                .collect();
            out.push_str(&format!(
                "\nthrottled by AWS: {} ({} request(s) for {} call(s) in all, {:.1} s spent waiting)\n",
                calls.join(", "),
                self.api_attempts.values().sum::<u64>(),
                self.api_calls.values().sum::<u64>(),
                self.retry_wait_ms as f64 / 1000.0
            ));
        }
        out.push_str(&format!(
            "\nplan: {} to add, {} to change, {} to remove; {} applied, {} workload(s) failed\n",
            self.summary.create,
            self.summary.change,
            self.summary.remove,
            self.summary.applied,
            self.summary.failed
        ));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{RoleArn, ServiceAccountRef};
    use crate::plan::Binding;

    /// A workload's entry keeps the flat shape readers of `status/<cluster>.json` know: the
    /// identity it shares with the plan is written inline, in the same order as before.
    #[test]
    fn a_workload_entry_is_written_flat_and_read_back() {
        let entry = WorkloadStatus {
            identity: WorkloadIdentity {
                namespace: "shop".into(),
                workload: "cart".into(),
                kind: None,
                service_account: Some(ServiceAccountRef {
                    namespace: "shop".into(),
                    name: "cart".into(),
                }),
                role_arn: Some(RoleArn::new("arn:aws:iam::123456789012:role/x")),
                binding: Some(Binding::ServiceAccountAnnotation),
                target_role_arn: None,
            },
            state: State::Ready,
            message: "role and binding are as declared".into(),
        };
        let text = serde_json::to_string(&entry).expect("serializes");
        assert_eq!(
            text,
            r#"{"namespace":"shop","workload":"cart","service_account":{"namespace":"shop","name":"cart"},"role_arn":"arn:aws:iam::123456789012:role/x","binding":{"kind":"service-account-annotation"},"state":"Ready","message":"role and binding are as declared"}"#
        );
        let back: WorkloadStatus = serde_json::from_str(&text).expect("reads back");
        assert_eq!(back, entry);
    }
}
