//! Lambda entry point of drift-sweep: clients and settings once, then the runtime loop.

use drift_sweep::{Context, InAccounts, handle_in_accounts, metrics};
use eks_intents::adapters::aws::{AccountSessions, S3Adapter, SqsAdapter};
use eks_intents::config::{ConfigError, variable};
use eks_intents::lambda::{clients, settings};
use eks_intents::reconcile::now;
use lambda_runtime::Error;

/// Also sweep every cluster `ListClusters` returns in the region (`true`/`false`).
const LIST_CLUSTERS: &str = "EKS_INTENTS_SWEEP_LIST_CLUSTERS";

#[tokio::main]
async fn main() -> Result<(), Error> {
    let (config, queue_url) = settings()?;
    let region = config.require_region("the region whose clusters are swept")?;
    let list_clusters = match variable(LIST_CLUSTERS).as_deref().map(str::trim) {
        None => false,
        Some(raw) => raw.parse().map_err(|_| ConfigError {
            variable: LIST_CLUSTERS,
            message: format!("{raw:?} is not true or false"),
        })?,
    };
    let (clients, invocations) = clients(&config).await;
    // Without EKS_INTENTS_ACCOUNT_ROLES there is no other account to read: the sweep is the
    // deployment's own, as before.
    let accounts = AccountSessions::new(&clients, config.accounts);
    let ctx = InAccounts {
        home: Context {
            store: S3Adapter::new(clients.s3, config.bucket),
            iam: clients.iam,
            eks: clients.eks,
            queue: SqsAdapter::new(clients.sqs, queue_url),
            iam_path: config.reconcile.plan.iam_path,
            region,
            list_clusters,
            now,
        },
        accounts,
    };
    invocations
        .serve("drift sweep failed", metrics, &ctx, handle_in_accounts)
        .await
}
