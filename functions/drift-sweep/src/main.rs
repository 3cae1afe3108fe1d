//! Lambda entry point of drift-sweep: clients and settings once, then the runtime loop.

use drift_sweep::{Context, handle, metrics};
use eks_intents::adapters::aws::{AwsClients, S3Adapter, SqsAdapter};
use eks_intents::config::ConfigError;
use eks_intents::lambda::{Invocations, settings};
use eks_intents::reconcile::now;
use lambda_runtime::Error;

/// Also sweep every cluster `ListClusters` returns in the region (`true`/`false`).
const LIST_CLUSTERS: &str = "EKS_INTENTS_SWEEP_LIST_CLUSTERS";
/// The deployment's region, set by the Lambda runtime.
const REGION: &str = "AWS_REGION";

#[tokio::main]
async fn main() -> Result<(), Error> {
    let (config, queue_url) = settings()?;
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
    let invocations = Invocations::new(&clients);
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
    invocations
        .serve("drift sweep failed", metrics, |payload| async move {
            handle(ctx, &payload).await
        })
        .await
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}
