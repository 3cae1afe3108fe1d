//! Lambda entry point of bundle-upload: clients and settings once, then the runtime loop.

use bundle_upload::{Context, handle, metrics};
use eks_intents::adapters::aws::{AwsClients, S3Adapter, SqsAdapter};
use eks_intents::intent::Limits;
use eks_intents::lambda::{Invocations, settings};
use lambda_runtime::Error;

#[tokio::main]
async fn main() -> Result<(), Error> {
    let (config, queue_url) = settings()?;
    let clients = AwsClients::from_env(&config.aws).await;
    let invocations = Invocations::new(&clients);
    let ctx = Context {
        store: S3Adapter::new(clients.s3, config.bucket.clone()),
        queue: SqsAdapter::new(clients.sqs, queue_url),
        bucket: config.bucket,
        limits: Limits::default(),
    };
    let ctx = &ctx;
    invocations
        .serve("bundle-upload failed", metrics, |payload| async move {
            handle(ctx, &payload).await
        })
        .await
}
