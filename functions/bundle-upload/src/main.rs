//! Lambda entry point of bundle-upload: clients and settings once, then the runtime loop.

use bundle_upload::{Context, handle, metrics};
use eks_intents::adapters::aws::{S3Adapter, SqsAdapter};
use eks_intents::intent::Limits;
use eks_intents::lambda::{clients, settings};
use lambda_runtime::Error;

#[tokio::main]
async fn main() -> Result<(), Error> {
    let (config, queue_url) = settings()?;
    let (clients, invocations) = clients(&config).await;
    let ctx = Context {
        store: S3Adapter::new(clients.s3, config.bucket.clone()),
        queue: SqsAdapter::new(clients.sqs, queue_url),
        bucket: config.bucket,
        limits: Limits::default(),
    };
    invocations
        .serve("bundle-upload failed", metrics, &ctx, handle)
        .await
}
