//! Lambda entry point of drift-sweep: clients and settings once, then the runtime loop.

use drift_sweep::{Context, handle, metrics};
use eks_intents::adapters::aws::{AwsClients, DEADLINE_RESERVE, S3Adapter, SqsAdapter};
use eks_intents::config::{Config, ConfigError};
use eks_intents::reconcile::now;
use lambda_runtime::{Diagnostic, Error, LambdaEvent, run, service_fn};
use serde_json::Value;
use std::time::Instant;

/// Also sweep every cluster `ListClusters` returns in the region (`true`/`false`).
const LIST_CLUSTERS: &str = "EKS_INTENTS_SWEEP_LIST_CLUSTERS";
/// The deployment's region, set by the Lambda runtime.
const REGION: &str = "AWS_REGION";

#[tokio::main]
async fn main() -> Result<(), Error> {
    eks_intents::telemetry::init();
    let config = Config::from_env()?;
    let queue_url = config.require_queue()?.to_owned();
    let region = env(REGION).ok_or(ConfigError {
        variable: REGION,
        message: "not set; it names the region whose clusters are swept".into(),
    })?;
    let list_clusters = match env(LIST_CLUSTERS).as_deref().map(str::trim) {
        None => false,
        Some(raw) => raw.parse().map_err(|_| ConfigError {
            variable: LIST_CLUSTERS,
            message: format!("{raw:?} is not true or false"),
        })?,
    };
    let clients = AwsClients::from_env(&config.aws).await;
    let calls = clients.calls.clone();
    let budget = clients.retry.clone();
    let ctx = Context {
        store: S3Adapter::new(clients.s3, config.bucket),
        iam: clients.iam,
        eks: clients.eks,
        queue: SqsAdapter::new(clients.sqs, queue_url),
        iam_path: config.reconcile.plan.iam_path,
        region,
        list_clusters,
        now,
    };
    let ctx = &ctx;
    let calls = &calls;
    let budget = &budget;
    run(service_fn(move |event: LambdaEvent<Value>| async move {
        let started = Instant::now();
        // Retries of throttled calls stop in time to answer before the function times out.
        budget.until_epoch_millis(event.context.deadline, DEADLINE_RESERVE);
        calls.reset();
        let result = handle(ctx, &event.payload).await;
        let counts = calls.counts();
        metrics(&result)
            .api_calls(&counts.calls)
            .throttled(&counts.throttled)
            .milliseconds("Duration", started.elapsed().as_millis())
            .emit();
        let response = result.map_err(|error| {
            tracing::error!(%error, retryable = error.is_retryable(), "drift sweep failed");
            Diagnostic::from(error)
        })?;
        serde_json::to_value(response).map_err(|e| Diagnostic::from(e.to_string()))
    }))
    .await
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}
