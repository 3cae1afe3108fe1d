//! Lambda entry point of the reconciler: clients and settings once, then the runtime loop.

use eks_intents::adapters::aws::{AccountSessions, S3Adapter, SqsAdapter};
use eks_intents::lambda::{clients, settings};
use eks_intents::metrics::Metrics;
use lambda_runtime::Error;
use reconciler::{Context, InAccounts, handle_in_accounts};

#[tokio::main]
async fn main() -> Result<(), Error> {
    let (config, queue_url) = settings()?;
    let (clients, invocations) = clients(&config).await;
    // Without EKS_INTENTS_ACCOUNT_ROLES no cluster resolves to a role: every run is in the
    // deployment's own account, as before.
    let accounts = AccountSessions::new(&clients, config.accounts);
    let ctx = InAccounts {
        home: Context {
            iam: clients.iam,
            eks: clients.eks,
            kube: clients.kubernetes,
            store: S3Adapter::new(clients.s3, config.bucket),
            retry: SqsAdapter::new(clients.sqs, queue_url),
            settings: config.reconcile,
            memory: Default::default(),
            calls: clients.calls,
            metrics: Box::new(Metrics::emit),
        },
        accounts,
    };
    invocations
        .run_until_deadline(&ctx, handle_in_accounts)
        .await
}
