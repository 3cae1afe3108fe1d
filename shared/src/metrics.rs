//! CloudWatch metrics as Embedded Metric Format: one JSON line on stdout per function run,
//! which Lambda's log pipeline turns into metrics without any API call. One namespace,
//! dimensions `Cluster` and `Function`.

use crate::plan::{Action, DriftKind, Plan};
use crate::status::{State, StatusReport};
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;
use std::io::Write;

pub const NAMESPACE: &str = "eks-intents";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unit {
    Count,
    Milliseconds,
}

impl Unit {
    fn as_str(self) -> &'static str {
        match self {
            Unit::Count => "Count",
            Unit::Milliseconds => "Milliseconds",
        }
    }
}

/// The figures of one run of one function, for one cluster (or none: a run that is about no
/// single cluster, like the drift sweep).
#[derive(Clone, Debug, PartialEq)]
pub struct Metrics {
    pub function: String,
    pub cluster: Option<String>,
    pub values: BTreeMap<String, (f64, Unit)>,
}

impl Metrics {
    pub fn new(function: &str, cluster: Option<&str>) -> Self {
        Metrics {
            function: function.to_owned(),
            cluster: cluster.map(str::to_owned),
            values: BTreeMap::new(),
        }
    }

    /// Adds to a count (a metric written twice sums).
    pub fn count(&mut self, name: impl Into<String>, n: usize) -> &mut Self {
        let entry = self.values.entry(name.into()).or_insert((0.0, Unit::Count));
        entry.0 += n as f64;
        self
    }

    pub fn milliseconds(&mut self, name: impl Into<String>, ms: u128) -> &mut Self {
        self.values
            .insert(name.into(), (ms as f64, Unit::Milliseconds));
        self
    }

    /// Adds the AWS calls of the run, by service (`ApiCalls.IAM`, ...), from counts by
    /// `service:Operation`.
    pub fn api_calls(&mut self, calls: &BTreeMap<String, u64>) -> &mut Self {
        for (call, n) in calls {
            let service = call.split(':').next().unwrap_or(call);
            self.count(format!("ApiCalls.{service}"), *n as usize);
        }
        self
    }

    /// Adds the throttled AWS requests of the run, by service (`Throttled.IAM`, ...), from
    /// counts by `service:Operation`.
    pub fn throttled(&mut self, throttled: &BTreeMap<String, u64>) -> &mut Self {
        for (call, n) in throttled {
            let service = call.split(':').next().unwrap_or(call);
            self.count(format!("Throttled.{service}"), *n as usize);
        }
        self
    }

    /// The EMF document, at `timestamp_ms`.
    pub fn to_emf(&self, timestamp_ms: u128) -> Value {
        let dimensions: Vec<&str> = if self.cluster.is_some() {
            vec!["Cluster", "Function"]
        } else {
            vec!["Function"]
        };
        let definitions: Vec<Value> = self
            .values
            .iter()
            .map(|(name, (_, unit))| json!({ "Name": name, "Unit": unit.as_str() }))
            .collect();
        let mut root = Map::new();
        root.insert(
            "_aws".into(),
            json!({
                "Timestamp": timestamp_ms as u64,
                "CloudWatchMetrics": [{
                    "Namespace": NAMESPACE,
                    "Dimensions": [dimensions],
                    "Metrics": definitions,
                }],
            }),
        );
        root.insert("Function".into(), json!(self.function));
        if let Some(cluster) = &self.cluster {
            root.insert("Cluster".into(), json!(cluster));
        }
        for (name, (value, _)) in &self.values {
            root.insert(name.clone(), json!(value));
        }
        Value::Object(root)
    }

    /// Writes the EMF line to stdout (logs go to stderr, so the two never interleave in a line).
    pub fn emit(&self) {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or_default();
        let line = self.to_emf(now).to_string();
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{line}");
        let _ = out.flush();
    }
}

/// The figures of one reconcile: roles created, updated and deleted, drift found and repaired
/// by kind, roles held by a bad bundle, deletions held by the breaker, errors, AWS calls by
/// service.
pub fn reconcile_metrics(report: &StatusReport, plan: &Plan, duration_ms: u128) -> Metrics {
    let mut metrics = Metrics::new("reconciler", Some(&report.cluster));
    let mut created = 0;
    let mut deleted = 0;
    let mut touched = std::collections::BTreeSet::new();
    for action in &plan.actions {
        match action {
            Action::CreateRole { .. } => created += 1,
            Action::DeleteRole { .. } => deleted += 1,
            _ => {
                if let Some(role) = action.role() {
                    touched.insert(role);
                }
            }
        }
    }
    let created_or_deleted: std::collections::BTreeSet<_> = plan
        .actions
        .iter()
        .filter(|a| matches!(a, Action::CreateRole { .. } | Action::DeleteRole { .. }))
        .filter_map(Action::role)
        .collect();
    let updated = touched.difference(&created_or_deleted).count();
    // A dry run applied nothing: it counts what it found, never what it did.
    let done = |n: usize| if report.dry_run { 0 } else { n };
    metrics
        .count("Reconciles", 1)
        .count("RolesCreated", done(created))
        .count("RolesUpdated", done(updated))
        .count("RolesDeleted", done(deleted))
        .count(
            "RolesHeld",
            report
                .workloads
                .iter()
                .filter(|w| w.state == State::Held)
                .count(),
        )
        .count("DeletionsHeldByBreaker", report.cleanup.held_by_breaker)
        .count(
            "Errors",
            report.summary.failed + usize::from(report.error.is_some()),
        )
        .count("DriftFound", report.drift.found_total())
        .milliseconds("Duration", duration_ms);
    for kind in DriftKind::ALL {
        let found = report.drift.found.get(&kind).copied().unwrap_or_default();
        let repaired = report
            .drift
            .repaired
            .get(&kind)
            .copied()
            .unwrap_or_default();
        if found > 0 {
            metrics.count(format!("DriftFound.{}", kind.as_str()), found);
            metrics.count(format!("DriftRepaired.{}", kind.as_str()), repaired);
        }
    }
    metrics
        .api_calls(&report.api_calls)
        .throttled(&report.throttled)
        .milliseconds("RetryWait", u128::from(report.retry_wait_ms));
    metrics
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_emf_document_declares_every_value_under_both_dimensions() {
        let mut metrics = Metrics::new("reconciler", Some("demo"));
        metrics
            .count("Reconciles", 1)
            .count("ApiCalls.IAM", 2)
            .count("ApiCalls.IAM", 3)
            .milliseconds("Duration", 42);
        let emf = metrics.to_emf(1_795_000_000_000);
        assert_eq!(emf["_aws"]["Timestamp"], 1_795_000_000_000u64);
        let directive = &emf["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(directive["Namespace"], NAMESPACE);
        assert_eq!(directive["Dimensions"], json!([["Cluster", "Function"]]));
        let names: Vec<&str> = directive["Metrics"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["Name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["ApiCalls.IAM", "Duration", "Reconciles"]);
        assert_eq!(directive["Metrics"][1]["Unit"], "Milliseconds");
        // Every declared metric and dimension has its value at the top level.
        assert_eq!(emf["Cluster"], "demo");
        assert_eq!(emf["Function"], "reconciler");
        assert_eq!(emf["ApiCalls.IAM"], 5.0);
        assert_eq!(emf["Reconciles"], 1.0);
        assert_eq!(emf["Duration"], 42.0);
    }

    #[test]
    fn a_run_about_no_cluster_has_the_function_dimension_only() {
        let emf = Metrics::new("drift-sweep", None)
            .count("Clusters", 3)
            .to_emf(0);
        assert_eq!(
            emf["_aws"]["CloudWatchMetrics"][0]["Dimensions"],
            json!([["Function"]])
        );
        assert!(emf.get("Cluster").is_none());
    }
}
