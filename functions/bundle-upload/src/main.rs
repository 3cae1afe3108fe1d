//! Lambda entry point of bundle-upload: clients and settings once, then the runtime loop.

use bundle_upload::{Context, handle, metrics};
use eks_intents::adapters::aws::{AwsClients, DEADLINE_RESERVE, S3Adapter, SqsAdapter};
use eks_intents::config::Config;
use eks_intents::intent::Limits;
use lambda_runtime::{Diagnostic, Error, LambdaEvent, run, service_fn};
use serde_json::Value;
use std::time::Instant;

#[tokio::main]
async fn main() -> Result<(), Error> {
    eks_intents::telemetry::init();
    let config = Config::from_env()?;
    let queue_url = config.require_queue()?.to_owned();
    let clients = AwsClients::from_env(&config.aws).await;
    let calls = clients.calls.clone();
    let budget = clients.retry.clone();
    let ctx = Context {
        store: S3Adapter::new(clients.s3, config.bucket.clone()),
        queue: SqsAdapter::new(clients.sqs, queue_url),
        bucket: config.bucket,
        limits: Limits::default(),
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
            tracing::error!(%error, retryable = error.is_retryable(), "bundle-upload failed");
            Diagnostic::from(error)
        })?;
        serde_json::to_value(response).map_err(|e| Diagnostic::from(e.to_string()))
    }))
    .await
}
