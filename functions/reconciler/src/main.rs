//! Lambda entry point of the reconciler: clients and settings once, then the runtime loop.

use eks_intents::adapters::aws::{AwsClients, DEADLINE_RESERVE, S3Adapter, SqsAdapter};
use eks_intents::config::Config;
use eks_intents::metrics::Metrics;
use lambda_runtime::{Error, LambdaEvent, run, service_fn};
use reconciler::{Context, handle};

#[tokio::main]
async fn main() -> Result<(), Error> {
    eks_intents::telemetry::init();
    let config = Config::from_env()?;
    let queue_url = config.require_queue()?.to_owned();
    let clients = AwsClients::from_env(&config.aws).await;
    let calls = clients.calls.clone();
    let reset = clients.calls.clone();
    let budget = clients.retry.clone();
    let ctx = Context {
        iam: clients.iam,
        eks: clients.eks,
        kube: clients.kubernetes,
        store: S3Adapter::new(clients.s3, config.bucket),
        retry: SqsAdapter::new(clients.sqs, queue_url),
        settings: config.reconcile,
        memory: Default::default(),
        calls: Box::new(move || calls.counts()),
        reset_calls: Box::new(move || reset.reset()),
        metrics: Box::new(Metrics::emit),
    };
    let ctx = &ctx;
    let budget = &budget;
    run(service_fn(move |event: LambdaEvent<_>| async move {
        // Throttled calls are retried until shortly before the invocation's deadline; past it
        // the run fails and its messages return to the queue.
        budget.until_epoch_millis(event.context.deadline, DEADLINE_RESERVE);
        Ok::<_, Error>(handle(ctx, event.payload).await)
    }))
    .await
}
